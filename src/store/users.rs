use super::db::DbRow;

use super::{Store, StoreError, StoreResult, UserStore};
use crate::domain::{CreatedVia, EmailPurpose, User};

pub(super) const COLUMNS: &str =
    "sub, email, name, password_hash, roles, created_at, password_changed_at, disabled_at, email_verified_at, created_via";

pub(super) fn user_from_row(row: &DbRow) -> StoreResult<User> {
    let sub: String = row.try_get("sub")?;
    let roles: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("roles")?)
        .map_err(|e| StoreError::Corrupt(format!("user {sub}: roles: {e}")))?;
    let via: String = row.try_get("created_via")?;
    let created_via =
        CreatedVia::parse(&via).ok_or_else(|| StoreError::Corrupt(format!("user {sub}: created_via `{via}`")))?;
    Ok(User {
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        roles,
        created_at: row.try_get("created_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
        disabled_at: row.try_get("disabled_at")?,
        email_verified_at: row.try_get("email_verified_at")?,
        created_via,
        sub,
    })
}

pub(super) fn roles_json(roles: &[String]) -> String {
    serde_json::Value::from(roles.to_vec()).to_string()
}

impl Store {
    /// Revokes every live grant of a user and deletes their sessions: what a password change
    /// or a disable must do (shared/security.md: "Password change, logout, user or client
    /// disable end the family").
    pub(super) async fn end_everything_of(&self, tx: &mut super::db::Tx, sub: &str, now: i64) -> StoreResult<()> {
        self.queue_backchannel_logouts_on(tx, super::logout::Ending::User(sub), now).await?;
        self.sql("UPDATE grants SET revoked_at = $1 WHERE user_sub = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(sub)
            .execute(&mut **tx)
            .await?;
        self.sql("DELETE FROM sessions WHERE user_sub = $1").bind(sub).execute(&mut **tx).await?;
        // Issue 12 item 4: a reset link is dead after any password change (and a disable).
        self.sql("DELETE FROM email_tokens WHERE user_sub = $1 AND purpose = $2")
            .bind(sub)
            .bind(EmailPurpose::ResetPassword.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Store {
    pub(super) async fn insert_user_on(&self, conn: &mut super::db::Conn, u: &User) -> StoreResult<()> {
        self.sql(
            "INSERT INTO users (sub, email, name, password_hash, roles, created_at, updated_at, password_changed_at, \
             disabled_at, email_verified_at, created_via) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10)",
        )
        .bind(&u.sub)
        .bind(&u.email)
        .bind(u.name.clone())
        .bind(&u.password_hash)
        .bind(roles_json(&u.roles))
        .bind(u.created_at)
        .bind(u.password_changed_at)
        .bind(u.disabled_at)
        .bind(u.email_verified_at)
        .bind(u.created_via.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl UserStore for Store {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_user_on(&mut conn, u).await
    }

    async fn find_user(&self, sub: &str) -> StoreResult<Option<User>> {
        let row = self
            .sql(&format!("SELECT {COLUMNS} FROM users WHERE sub = $1"))
            .bind(sub)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = self
            .sql(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows =
            self.sql(&format!("SELECT {COLUMNS} FROM users ORDER BY created_at, sub")).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn change_password(&self, sub: &str, password_hash: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self
            .sql("UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE sub = $3")
            .bind(password_hash)
            .bind(now)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.end_everything_of(&mut tx, sub, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rehash_password(&self, sub: &str, old_hash: &str, new_hash: &str) -> StoreResult<()> {
        // Conditional: a password changed meanwhile is never overwritten by the old one's rehash.
        self.sql("UPDATE users SET password_hash = $1 WHERE sub = $2 AND password_hash = $3")
            .bind(new_hash)
            .bind(sub)
            .bind(old_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn disable_user(&self, sub: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self
            .sql("UPDATE users SET disabled_at = COALESCE(disabled_at, $1), updated_at = $1 WHERE sub = $2")
            .bind(now)
            .bind(sub)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.end_everything_of(&mut tx, sub, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_roles(&self, sub: &str, roles: &[String], now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE users SET roles = $1, updated_at = $2 WHERE sub = $3")
            .bind(roles_json(roles))
            .bind(now)
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
