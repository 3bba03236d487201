//! Self-service accounts (issue 12): single-use links sent by email and the changes they make.
//! Each link is used by one conditional DELETE … RETURNING, so of two requests racing with one
//! link exactly one wins; the change it makes and the message it causes are written in the
//! same transaction (shared/design.md, "Effects that leave the process").

use super::db::Conn;
use super::db::DbRow;

use super::users::{user_from_row, COLUMNS};
use super::{AccountStore, Store, StoreError, StoreResult};
use crate::domain::{EmailPurpose, EmailToken, OutboxMessage, User};

const TOKEN_COLUMNS: &str = "token_hash, purpose, user_sub, email, resume, created_at, expires_at";

fn token_from_row(row: &DbRow, purpose: EmailPurpose) -> StoreResult<EmailToken> {
    let raw: Vec<u8> = row.try_get("token_hash")?;
    let token_hash: [u8; 32] =
        raw.try_into().map_err(|_| StoreError::Corrupt("email token hash is not 32 bytes".into()))?;
    Ok(EmailToken {
        token_hash,
        purpose,
        user_sub: row.try_get("user_sub")?,
        email: row.try_get("email")?,
        resume: row.try_get("resume")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

impl Store {
    pub(super) async fn insert_outbox_on(&self, conn: &mut Conn, m: &OutboxMessage) -> StoreResult<()> {
        self.sql(
            "INSERT INTO outbox (id, kind, recipient, payload, created_at, attempts, next_attempt_at) \
             VALUES ($1, 'email', $2, $3, $4, 0, $4)",
        )
        .bind(&m.id)
        .bind(&m.recipient)
        .bind(m.payload_sealed.clone())
        .bind(m.created_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A newer link voids the older ones of its purpose (issue 12 items 3 and 4).
    async fn insert_token_on(&self, conn: &mut Conn, t: &EmailToken) -> StoreResult<()> {
        self.sql("DELETE FROM email_tokens WHERE user_sub = $1 AND purpose = $2")
            .bind(&t.user_sub)
            .bind(t.purpose.as_str())
            .execute(&mut *conn)
            .await?;
        self.sql(&format!("INSERT INTO email_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(t.token_hash.to_vec())
            .bind(t.purpose.as_str())
            .bind(&t.user_sub)
            .bind(&t.email)
            .bind(t.resume.clone())
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Uses up a live link of `purpose` whose user is enabled: one DELETE … RETURNING, so one
    /// caller gets it. Run inside the transaction of the change it allows; a link of a disabled
    /// user is refused (and rolled back with the rest).
    async fn use_token_on(
        &self,
        conn: &mut Conn,
        token_hash: &[u8; 32],
        purpose: EmailPurpose,
        now: i64,
    ) -> StoreResult<Option<EmailToken>> {
        let row = self
            .sql(&format!(
                "DELETE FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                 AND EXISTS (SELECT 1 FROM users u WHERE u.sub = email_tokens.user_sub AND u.disabled_at IS NULL) \
                 RETURNING {TOKEN_COLUMNS}"
            ))
            .bind(token_hash.to_vec())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(|r| token_from_row(r, purpose)).transpose()
    }
}

impl Store {
    /// A password set through a reset link or an invitation: reading mail at the address is
    /// what the link proved, so the address counts as verified; every session and grant of the
    /// user ends (and the reset links with them). False when the account no longer has the
    /// address the link went to.
    async fn set_password_by_link_on(
        &self,
        tx: &mut super::db::Tx,
        token: &EmailToken,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = self
            .sql(
                "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2, \
                 email_verified_at = COALESCE(email_verified_at, $2) WHERE sub = $3 AND email = $4",
            )
            .bind(password_hash)
            .bind(now)
            .bind(&token.user_sub)
            .bind(&token.email)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.end_everything_of(tx, &token.user_sub, now).await?;
        Ok(true)
    }
}

impl AccountStore for Store {
    async fn create_user_with_link(&self, user: &User, token: &EmailToken, message: &OutboxMessage) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        self.insert_user_on(&mut tx, user).await?;
        self.insert_token_on(&mut tx, token).await?;
        self.insert_outbox_on(&mut tx, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn issue_link(&self, token: &EmailToken, message: &OutboxMessage) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        self.insert_token_on(&mut tx, token).await?;
        self.insert_outbox_on(&mut tx, message).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enqueue_message(&self, message: &OutboxMessage) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_outbox_on(&mut conn, message).await
    }

    async fn find_link(
        &self,
        token_hash: &[u8; 32],
        purpose: EmailPurpose,
        now: i64,
    ) -> StoreResult<Option<(EmailToken, User)>> {
        let user_cols = COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
        let row = self
            .sql(&format!(
                "SELECT t.token_hash, t.user_sub, t.email AS token_email, t.resume, t.created_at AS token_created_at, \
                 t.expires_at, {user_cols} FROM email_tokens t JOIN users u ON u.sub = t.user_sub \
                 WHERE t.token_hash = $1 AND t.purpose = $2 AND t.expires_at > $3 AND u.disabled_at IS NULL"
            ))
            .bind(token_hash.to_vec())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let raw: Vec<u8> = row.try_get("token_hash")?;
        let token = EmailToken {
            token_hash: raw.try_into().map_err(|_| StoreError::Corrupt("email token hash is not 32 bytes".into()))?,
            purpose,
            user_sub: row.try_get("user_sub")?,
            email: row.try_get("token_email")?,
            resume: row.try_get("resume")?,
            created_at: row.try_get("token_created_at")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok(Some((token, user_from_row(&row)?)))
    }

    async fn verify_email(&self, token_hash: &[u8; 32], now: i64) -> StoreResult<Option<EmailToken>> {
        let mut tx = self.pool.begin().await?;
        let Some(token) = self.use_token_on(&mut tx, token_hash, EmailPurpose::VerifyEmail, now).await? else {
            return Ok(None);
        };
        // Only while the address is still the account's: a link sent before an email change
        // proves nothing about the new address.
        let done = self
            .sql(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 \
                 WHERE sub = $2 AND email = $3",
            )
            .bind(now)
            .bind(&token.user_sub)
            .bind(&token.email)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn reset_password(
        &self,
        token_hash: &[u8; 32],
        password_hash: &str,
        now: i64,
        notice: &OutboxMessage,
    ) -> StoreResult<Option<EmailToken>> {
        let mut tx = self.pool.begin().await?;
        let Some(token) = self.use_token_on(&mut tx, token_hash, EmailPurpose::ResetPassword, now).await? else {
            return Ok(None);
        };
        if !self.set_password_by_link_on(&mut tx, &token, password_hash, now).await? {
            return Ok(None);
        }
        self.insert_outbox_on(&mut tx, notice).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        password_hash: &str,
        now: i64,
    ) -> StoreResult<Option<EmailToken>> {
        let mut tx = self.pool.begin().await?;
        let Some(token) = self.use_token_on(&mut tx, token_hash, EmailPurpose::Invitation, now).await? else {
            return Ok(None);
        };
        if !self.set_password_by_link_on(&mut tx, &token, password_hash, now).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn change_email(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        notice: &OutboxMessage,
    ) -> StoreResult<Option<EmailToken>> {
        let mut tx = self.pool.begin().await?;
        let Some(token) = self.use_token_on(&mut tx, token_hash, EmailPurpose::ChangeEmail, now).await? else {
            return Ok(None);
        };
        // Unique (the column is UNIQUE and addresses are stored lower-cased): a taken address
        // fails with Conflict and the whole transaction, the link's use included, rolls back.
        self.sql("UPDATE users SET email = $1, email_verified_at = $2, updated_at = $2 WHERE sub = $3")
            .bind(&token.email)
            .bind(now)
            .bind(&token.user_sub)
            .execute(&mut *tx)
            .await?;
        // Links sent to the old address are about an address the account no longer has.
        self.sql("DELETE FROM email_tokens WHERE user_sub = $1 AND purpose IN ($2, $3)")
            .bind(&token.user_sub)
            .bind(EmailPurpose::VerifyEmail.as_str())
            .bind(EmailPurpose::ResetPassword.as_str())
            .execute(&mut *tx)
            .await?;
        self.insert_outbox_on(&mut tx, notice).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    async fn set_email_verified(&self, sub: &str, now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE sub = $2")
            .bind(now)
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
