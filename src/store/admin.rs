//! What the admin API reads and changes beyond the CLI's operations (issue 13 item 1): users a
//! page at a time, a user's live grants and browser sessions, and ending one of them. Every
//! statement is driven by an index (tests/api/query_plans.rs).

use super::clients::{client_from_row, COLUMNS as CLIENT_COLUMNS};
use super::grants::grant_from_row;
use super::logout::Ending;
use super::users::{user_from_row, COLUMNS};
use super::{AdminStore, Backend, Store, StoreResult};
use crate::domain::{Client, Grant, SessionSummary, User};

/// What a stored session says about its sign-in (the session's data as DbSessionStore writes
/// it; `user` as the web layer keeps it: `sub`, `sid`, `auth_time`, `amr`).
fn session_summary(id: String, data: &str, expires_at: i64) -> SessionSummary {
    let record: serde_json::Value = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
    let user = record.get("user");
    SessionSummary {
        id,
        sid: user.and_then(|u| u.get("sid")).and_then(|s| s.as_str()).map(str::to_string),
        auth_time: user.and_then(|u| u.get("auth_time")).and_then(serde_json::Value::as_i64),
        amr: user
            .and_then(|u| u.get("amr"))
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        expires_at,
    }
}

/// The smallest string greater than every string that starts with `prefix`, in byte order:
/// the prefix followed by the largest code point (nothing longer is ever stored after it in an
/// email address).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl AdminStore for Store {
    async fn page_clients(&self, after_id: Option<&str>, limit: i64) -> StoreResult<Vec<Client>> {
        // A range of the primary key from the start ('' sorts first) or after the cursor.
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = self.sql(&sql).bind(after_id.unwrap_or("").to_string()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn page_users(
        &self,
        email_prefix: Option<&str>,
        after_email: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        // Byte order on both stores (migration 13): a prefix is a range of the index.
        let collate = match self.backend() {
            Backend::Postgres => " COLLATE \"C\"",
            Backend::Sqlite => "",
        };
        // Where the page starts: after the cursor, else at the prefix, else at the beginning.
        let (start, from) = match (after_email, email_prefix) {
            (Some(after), _) => (format!("email{collate} > $2 AND "), Some(after)),
            (None, Some(prefix)) => (format!("email{collate} >= $2 AND "), Some(prefix)),
            (None, None) => (String::new(), None),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE {start}email{collate} < $1 ORDER BY email{collate} LIMIT {}",
            if from.is_some() { "$3" } else { "$2" }
        );
        let end = prefix_end(email_prefix.unwrap_or(""));
        let mut query = self.sql(&sql).bind(end);
        if let Some(from) = from {
            query = query.bind(from.to_string());
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        let users = rows.iter().map(user_from_row).collect::<StoreResult<Vec<_>>>()?;
        // The range is exact in byte order; this keeps it exact whatever a server does.
        Ok(users.into_iter().filter(|u| email_prefix.is_none_or(|p| u.email.starts_with(p))).collect())
    }

    async fn set_user_name(&self, sub: &str, name: Option<&str>, now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE users SET name = $1, updated_at = $2 WHERE sub = $3")
            .bind(name.map(str::to_string))
            .bind(now)
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_grants(&self, sub: &str, now: i64) -> StoreResult<Vec<Grant>> {
        let rows = self
            .sql(
                "SELECT id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, expires_at, revoked_at \
                 FROM grants WHERE user_sub = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at, id",
            )
            .bind(sub)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn revoke_user_grant(&self, sub: &str, grant_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let live = self
            .sql("SELECT id FROM grants WHERE id = $1 AND user_sub = $2 AND revoked_at IS NULL AND expires_at > $3")
            .bind(grant_id)
            .bind(sub)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if live.is_none() {
            return Ok(false);
        }
        // The app hears of it (back-channel logout) in the same transaction that revokes it.
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

    async fn user_sessions(&self, sub: &str, now: i64) -> StoreResult<Vec<SessionSummary>> {
        let rows = self
            .sql("SELECT id_hash, data, expires_at FROM sessions WHERE user_sub = $1 AND expires_at > $2 ORDER BY expires_at, id_hash")
            .bind(sub)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let data: String = row.try_get("data")?;
                Ok(session_summary(row.try_get("id_hash")?, &data, row.try_get("expires_at")?))
            })
            .collect()
    }

    async fn end_user_session(&self, sub: &str, session_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let row = self
            .sql("SELECT id_hash, data, expires_at FROM sessions WHERE id_hash = $1 AND user_sub = $2")
            .bind(session_id)
            .bind(sub)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let data: String = row.try_get("data")?;
        let session = session_summary(row.try_get("id_hash")?, &data, row.try_get("expires_at")?);
        // As at RP-initiated logout: the grants given in this session end with it, and the apps
        // that registered a back-channel logout URI hear of it.
        if let Some(sid) = &session.sid {
            self.queue_backchannel_logouts_on(&mut tx, Ending::Session(sid), now).await?;
            self.sql("UPDATE grants SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(sid.as_str())
                .execute(&mut *tx)
                .await?;
        }
        self.sql("DELETE FROM sessions WHERE id_hash = $1").bind(session_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_record_gives_its_sign_in() {
        let data = r#"{"user":{"sub":"s1","sid":"sid-1","auth_time":7,"amr":["pwd","otp"]},"csrf":"c"}"#;
        let s = session_summary("h".into(), data, 9);
        assert_eq!(s.sid.as_deref(), Some("sid-1"));
        assert_eq!(s.auth_time, Some(7));
        assert_eq!(s.amr, vec!["pwd", "otp"]);
        assert_eq!(s.expires_at, 9);
    }

    #[test]
    fn a_prefix_end_sorts_after_every_address_with_that_prefix() {
        let end = prefix_end("ann");
        assert!("ann@example.com" < end.as_str());
        assert!("anna@example.com" < end.as_str());
        assert!("ano@example.com" > end.as_str());
    }
}
