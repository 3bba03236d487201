use super::db::DbRow;

use super::logout::Ending;
use super::{Backend, GrantStore, Store, StoreError, StoreResult};
use crate::domain::{CodeRecord, CodeRedemption, ConsentRecord, Grant, RefreshRotation, ScopeSet, Successor};

const GRANT_COLUMNS: &str =
    "id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, expires_at, revoked_at";

/// Uses up refresh token $1 at time $2 if it is live and its grant is client $3's and live, and
/// records its successor's hash $4 (issue 11 item 4: a second presentation within the grace
/// window finds the successor by its primary key). Its own sealed copy, kept for its
/// predecessor's grace window, goes in the same write: a used token is never handed out again.
/// Of any number of concurrent callers with one token, exactly one gets the row back.
/// The grant is checked by its key (`EXISTS … g.id = refresh_tokens.grant_id`), never as
/// `grant_id IN (SELECT id FROM grants WHERE client_id = …)`, which SQLite answers by building
/// the list of all of the app's grants on every call (issue 9 item 10).
const USE_UP_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2, successor_hash = $4, \
     sealed_token = NULL, sealed_until = NULL \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
     AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id \
     AND g.client_id = $3 AND g.revoked_at IS NULL AND g.expires_at > $2) \
     RETURNING grant_id, scopes";

/// Consumes code $1 of client $2 at time $3 if it is unused, unexpired and its grant is live: one
/// conditional UPDATE, so of any number of concurrent redemptions exactly one gets the row back
/// (shared/design.md rule 3). The grant is checked by its key: `grant_id IN (SELECT id FROM
/// grants WHERE …)` made SQLite list every live grant of every app on each redemption (issue 9
/// item 10). The code's own times and client are returned under `code_` names, so that Postgres
/// can return them beside its grant's in one statement.
const CONSUME_CODE: &str = "UPDATE authorization_codes SET consumed_at = $3 \
     WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NULL AND expires_at > $3 \
     AND EXISTS (SELECT 1 FROM grants g WHERE g.id = authorization_codes.grant_id \
     AND g.revoked_at IS NULL AND g.expires_at > $3) \
     RETURNING grant_id, client_id AS code_client_id, redirect_uri, redirect_uri_sent, code_challenge, \
     created_at AS code_created_at, expires_at AS code_expires_at";

/// The code a [`CONSUME_CODE`] row describes.
fn code_from_row(row: &DbRow, code_hash: &[u8; 32]) -> StoreResult<CodeRecord> {
    Ok(CodeRecord {
        code_hash: *code_hash,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("code_client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        redirect_uri_sent: row.try_get::<i64, _>("redirect_uri_sent")? != 0,
        code_challenge: row.try_get("code_challenge")?,
        created_at: row.try_get("code_created_at")?,
        expires_at: row.try_get("code_expires_at")?,
    })
}

fn scopes(raw: &str, what: &str) -> StoreResult<ScopeSet> {
    ScopeSet::parse(raw).map_err(|e| StoreError::Corrupt(format!("{what}: scopes: {e}")))
}

pub(super) fn grant_from_row(row: &DbRow) -> StoreResult<Grant> {
    let id: String = row.try_get("id")?;
    let amr: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("amr")?)
        .map_err(|e| StoreError::Corrupt(format!("grant {id}: amr: {e}")))?;
    Ok(Grant {
        client_id: row.try_get("client_id")?,
        user_sub: row.try_get("user_sub")?,
        scopes: scopes(&row.try_get::<String, _>("scopes")?, &id)?,
        auth_time: row.try_get("auth_time")?,
        amr,
        nonce: row.try_get("nonce")?,
        sid: row.try_get("sid")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        id,
    })
}

impl Store {
    /// Postgres: the rotation as one statement (data-modifying CTEs run atomically, and the
    /// UPDATE locks and re-checks the row like a plain UPDATE), so a refresh costs one round
    /// trip instead of five. SQLite has no UPDATE inside WITH and uses a transaction instead.
    async fn rotate_refresh_token_in_one_statement(
        &self,
        token_hash: &[u8; 32],
        successor: &Successor,
        client_id: &str,
        now: i64,
        idle_secs: i64,
    ) -> StoreResult<RefreshRotation> {
        let row = self
            .sql(&format!(
                "WITH used AS ({USE_UP_REFRESH_TOKEN}), successor AS ( \
                INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at, \
                sealed_token, sealed_until) \
                SELECT $4, used.grant_id, used.scopes, $2, LEAST($5, g.expires_at), NULL, $6, $7 \
                FROM used JOIN grants g ON g.id = used.grant_id \
                RETURNING grant_id \
             ) \
             SELECT {cols}, used.scopes AS token_scopes FROM used JOIN grants g ON g.id = used.grant_id",
                cols = GRANT_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .bind(token_hash.to_vec())
            .bind(now)
            .bind(client_id)
            .bind(successor.hash.to_vec())
            .bind(now + idle_secs)
            .bind(successor.sealed.clone())
            .bind(successor.sealed.as_ref().map(|_| successor.sealed_until))
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let grant = grant_from_row(&row)?;
            let token_scopes = scopes(&row.try_get::<String, _>("token_scopes")?, &grant.id)?;
            return Ok(RefreshRotation::Rotated { grant: Box::new(grant), scopes: token_scopes });
        }
        self.why_not_rotated(token_hash, client_id, now).await
    }

    /// After a rotation found nothing, one read (a new statement, so on Postgres it sees the
    /// rotation a concurrent caller just committed): a token of this client that was used
    /// within the grace window, whose successor is unused and whose grant is live, is a repeat
    /// (issue 11 item 4); any other used token of this client is reuse; anything else
    /// (unknown, expired, another client's) is simply invalid. The successor is found by its
    /// primary key through the used token's `successor_hash`.
    async fn why_not_rotated(&self, token_hash: &[u8; 32], client_id: &str, now: i64) -> StoreResult<RefreshRotation> {
        let row = self
            .sql(&format!(
                "SELECT {cols}, s.token_hash AS successor_hash, s.used_at AS successor_used_at, \
                 s.sealed_token AS successor_sealed, s.sealed_until AS successor_sealed_until, \
                 s.expires_at AS successor_expires_at, s.scopes AS successor_scopes \
                 FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
                 LEFT JOIN refresh_tokens s ON s.token_hash = r.successor_hash \
                 WHERE r.token_hash = $1 AND g.client_id = $2 AND r.used_at IS NOT NULL",
                cols = GRANT_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .bind(token_hash.to_vec())
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(RefreshRotation::Invalid) };
        let grant = grant_from_row(&row)?;
        let successor_used = row.try_get::<Option<i64>, _>("successor_used_at")?.is_some();
        let sealed: Option<Vec<u8>> = row.try_get("successor_sealed")?;
        let sealed_until: Option<i64> = row.try_get("successor_sealed_until")?;
        let successor_expires_at: Option<i64> = row.try_get("successor_expires_at")?;
        let grant_live = grant.revoked_at.is_none() && grant.expires_at > now;
        // The window is open, the successor unused (its sealed copy goes when it is used) and
        // still valid, and the family alive: the same successor again.
        if let (Some(sealed), Some(until), Some(expires), false, true) =
            (sealed, sealed_until, successor_expires_at, successor_used, grant_live)
        {
            if until > now && expires > now {
                let hash: Vec<u8> = row.try_get("successor_hash")?;
                let successor_hash = <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| StoreError::Corrupt(format!("grant {}: refresh token hash", grant.id)))?;
                let token_scopes = scopes(&row.try_get::<String, _>("successor_scopes")?, &grant.id)?;
                return Ok(RefreshRotation::Repeated {
                    grant: Box::new(grant),
                    scopes: token_scopes,
                    successor_hash,
                    sealed,
                });
            }
        }
        Ok(RefreshRotation::Reused { user_sub: grant.user_sub, grant_id: grant.id, successor_used })
    }

    async fn grant_by_id(&self, id: &str) -> StoreResult<Option<Grant>> {
        let row = self
            .sql(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }
}

impl Store {
    /// Postgres: grant and code in one statement (a data-modifying CTE is atomic like a
    /// transaction), one round trip instead of BEGIN, two INSERTs and COMMIT (issue 14).
    async fn create_grant_with_code_in_one_statement(&self, g: &Grant, c: &CodeRecord) -> StoreResult<()> {
        self.sql(
            "WITH g AS (INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, \
             expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL) RETURNING id) \
             INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_sent, \
             code_challenge, created_at, expires_at, consumed_at) SELECT $11, g.id, $12, $13, $14, $15, $16, $17, NULL FROM g",
        )
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(&g.user_sub)
        .bind(g.scopes.to_string())
        .bind(g.auth_time)
        .bind(serde_json::Value::from(g.amr.clone()).to_string())
        .bind(g.nonce.clone())
        .bind(g.sid.clone())
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(c.code_hash.to_vec())
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(i64::from(c.redirect_uri_sent))
        .bind(&c.code_challenge)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Postgres: the conditional UPDATE that consumes the code and the read of its grant in one
    /// statement (one round trip instead of two, issue 14). The UPDATE locks and re-checks the
    /// row like a plain UPDATE, so exactly one concurrent caller gets it.
    async fn redeem_code_in_one_statement(
        &self,
        code_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> StoreResult<CodeRedemption> {
        let row = self
            .sql(&format!(
                "WITH c AS ({CONSUME_CODE}) SELECT {cols}, c.grant_id, c.code_client_id, c.redirect_uri, \
                 c.redirect_uri_sent, c.code_challenge, c.code_created_at, c.code_expires_at \
                 FROM c JOIN grants g ON g.id = c.grant_id",
                cols = GRANT_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .bind(code_hash.to_vec())
            .bind(client_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return self.why_not_redeemed(code_hash, client_id).await };
        let grant = grant_from_row(&row)?;
        let code = code_from_row(&row, code_hash)?;
        Ok(CodeRedemption::Redeemed { code: Box::new(code), grant: Box::new(grant) })
    }

    /// After a redemption found nothing: a consumed code of this client is a replay (its grant
    /// is revoked by the caller, RFC 6749 §4.1.2); anything else is simply invalid.
    async fn why_not_redeemed(&self, code_hash: &[u8; 32], client_id: &str) -> StoreResult<CodeRedemption> {
        let previous = self
            .sql(
                "SELECT grant_id FROM authorization_codes WHERE code_hash = $1 AND client_id = $2 AND consumed_at IS NOT NULL",
            )
            .bind(code_hash.to_vec())
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match previous {
            Some(row) => CodeRedemption::Replayed { grant_id: row.try_get("grant_id")? },
            None => CodeRedemption::Invalid,
        })
    }
}

impl GrantStore for Store {
    async fn create_grant_with_code(&self, g: &Grant, c: &CodeRecord) -> StoreResult<()> {
        if self.backend() == Backend::Postgres {
            return self.create_grant_with_code_in_one_statement(g, c).await;
        }
        let mut tx = self.pool.begin().await?;
        self.sql(
            "INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
        )
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(&g.user_sub)
        .bind(g.scopes.to_string())
        .bind(g.auth_time)
        .bind(serde_json::Value::from(g.amr.clone()).to_string())
        .bind(g.nonce.clone())
        .bind(g.sid.clone())
        .bind(g.created_at)
        .bind(g.expires_at)
        .execute(&mut *tx)
        .await?;
        self.sql(
            "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_sent, code_challenge, \
             created_at, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
        )
        .bind(c.code_hash.to_vec())
        .bind(&c.grant_id)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(i64::from(c.redirect_uri_sent))
        .bind(&c.code_challenge)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &[u8; 32], client_id: &str, now: i64) -> StoreResult<CodeRedemption> {
        if self.backend() == Backend::Postgres {
            return self.redeem_code_in_one_statement(code_hash, client_id, now).await;
        }
        let row = self
            .sql(CONSUME_CODE)
            .bind(code_hash.to_vec())
            .bind(client_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return self.why_not_redeemed(code_hash, client_id).await };
        let code = code_from_row(&row, code_hash)?;
        // Liveness was checked inside the UPDATE; a concurrent replay may revoke the grant a
        // moment later, and this caller still won the race.
        Ok(match self.grant_by_id(&code.grant_id).await? {
            Some(grant) => CodeRedemption::Redeemed { code: Box::new(code), grant: Box::new(grant) },
            None => CodeRedemption::Invalid,
        })
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        self.queue_backchannel_logouts_on(&mut tx, Ending::Grant(grant_id), now).await?;
        let done = self
            .sql("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_grants_of_session(&self, sid: &str, now: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        self.queue_backchannel_logouts_on(&mut tx, Ending::Session(sid), now).await?;
        let done = self
            .sql("UPDATE grants SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &[u8; 32],
        grant_id: &str,
        scopes: &ScopeSet,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.sql(
            "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(token_hash.to_vec())
        .bind(grant_id)
        .bind(scopes.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &[u8; 32],
        successor: &Successor,
        client_id: &str,
        now: i64,
        idle_secs: i64,
    ) -> StoreResult<RefreshRotation> {
        if self.backend() == Backend::Postgres {
            return self.rotate_refresh_token_in_one_statement(token_hash, successor, client_id, now, idle_secs).await;
        }
        let mut tx = self.pool.begin().await?;
        // Marks the token used only if it is live and its grant is this client's and live:
        // parallel refreshes with one token get exactly one row back.
        let row = self
            .sql(USE_UP_REFRESH_TOKEN)
            .bind(token_hash.to_vec())
            .bind(now)
            .bind(client_id)
            .bind(successor.hash.to_vec())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return self.why_not_rotated(token_hash, client_id, now).await;
        };
        let grant_id: String = row.try_get("grant_id")?;
        let raw_scopes: String = row.try_get("scopes")?;
        let token_scopes = scopes(&raw_scopes, &grant_id)?;
        // The UPDATE checked the grant was live, atomically. Read it without that filter: a
        // concurrent reuse may revoke it a moment later, and this caller still won the race.
        let grant_row = self
            .sql(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
            .bind(&grant_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(grant) = grant_row.as_ref().map(grant_from_row).transpose()? else {
            return Ok(RefreshRotation::Invalid);
        };
        // RFC 6749 §6: the successor carries the same scope; it never outlives the grant.
        self.sql(
            "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at, \
             sealed_token, sealed_until) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
        )
        .bind(successor.hash.to_vec())
        .bind(&grant_id)
        .bind(raw_scopes)
        .bind(now)
        .bind((now + idle_secs).min(grant.expires_at))
        .bind(successor.sealed.clone())
        .bind(successor.sealed.as_ref().map(|_| successor.sealed_until))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshRotation::Rotated { grant: Box::new(grant), scopes: token_scopes })
    }

    async fn live_refresh_token_scopes(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<ScopeSet>> {
        let row = self
            .sql(
                "SELECT r.scopes FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
             WHERE r.token_hash = $1 AND g.client_id = $2 AND r.used_at IS NULL AND r.expires_at > $3 \
             AND g.revoked_at IS NULL AND g.expires_at > $3",
            )
            .bind(token_hash.to_vec())
            .bind(client_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| scopes(&r.try_get::<String, _>("scopes")?, "refresh token")).transpose()
    }

    async fn grant_is_live(&self, grant_id: &str, now: i64) -> StoreResult<bool> {
        let row = self
            .sql("SELECT 1 AS live FROM grants WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2")
            .bind(grant_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn find_consent(&self, user_sub: &str, client_id: &str) -> StoreResult<Option<ScopeSet>> {
        let row = self
            .sql("SELECT scopes FROM consents WHERE user_sub = $1 AND client_id = $2")
            .bind(user_sub)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| scopes(&r.try_get::<String, _>("scopes")?, "consent")).transpose()
    }

    async fn save_consent(&self, user_sub: &str, client_id: &str, granted: &ScopeSet, now: i64) -> StoreResult<()> {
        self.sql(
            "INSERT INTO consents (user_sub, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_sub, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user_sub)
        .bind(client_id)
        .bind(granted.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_consents(&self, user_sub: &str) -> StoreResult<Vec<ConsentRecord>> {
        let rows = self
            .sql(
                "SELECT client_id, scopes, granted_at FROM consents WHERE user_sub = $1 ORDER BY granted_at, client_id",
            )
            .bind(user_sub)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let client_id: String = r.try_get("client_id")?;
                Ok(ConsentRecord {
                    scopes: scopes(&r.try_get::<String, _>("scopes")?, &client_id)?,
                    granted_at: r.try_get("granted_at")?,
                    client_id,
                })
            })
            .collect()
    }

    async fn revoke_consent(&self, user_sub: &str, client_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = self
            .sql("DELETE FROM consents WHERE user_sub = $1 AND client_id = $2")
            .bind(user_sub)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        self.queue_backchannel_logouts_on(&mut tx, Ending::UserClient(user_sub, client_id), now).await?;
        self.sql("UPDATE grants SET revoked_at = $1 WHERE user_sub = $2 AND client_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(user_sub)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_expired(&self, now: i64) -> StoreResult<u64> {
        let mut removed = 0;
        // Failure counters nobody has touched for a day: every window and lock is long over.
        removed += self
            .sql("DELETE FROM throttles WHERE updated_at < $1")
            .bind(now - 86_400)
            .execute(&self.pool)
            .await?
            .rows_affected();
        for sql in [
            "DELETE FROM authorization_codes WHERE expires_at < $1",
            "DELETE FROM grants WHERE expires_at < $1",
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1",
            // Revoked client-credentials tokens are remembered only until they expire.
            "DELETE FROM revoked_access_tokens WHERE expires_at < $1",
            // Links sent by email (issue 12) that nobody used in time.
            "DELETE FROM email_tokens WHERE expires_at < $1",
            // Used client assertions: a replay after `exp` is refused by `exp` itself.
            "DELETE FROM client_assertions WHERE expires_at < $1",
        ] {
            removed += self.sql(sql).bind(now).execute(&self.pool).await?.rows_affected();
        }
        // Delivered and abandoned messages (already emptied) after a week.
        removed += self
            .sql("DELETE FROM outbox WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < $1")
            .bind(now - super::outbox::KEEP_DONE_SECS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Sealed successors whose grace window has closed (issue 11 item 4): never served after
        // it (the read checks `sealed_until`), and not kept either. A token's own use wipes its
        // copy at once; this catches those never used. Not counted: nothing is deleted.
        self.sql("UPDATE refresh_tokens SET sealed_token = NULL, sealed_until = NULL WHERE sealed_until < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(removed)
    }
}
