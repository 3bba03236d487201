//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0; issue 13 item 6): when grants
//! are revoked because a session ended (logout, a password change or reset, a disabled user, a
//! withdrawn consent, a replayed code or refresh token), every app those grants were given to
//! that registered a `backchannel_logout_uri` gets a logout token. The messages are written to
//! the outbox in the transaction that revokes the grants, before the revoking UPDATE (it is the
//! live grants that say which sessions the apps know), and the sender signs and POSTs them.

use super::db::Conn;

use super::{Store, StoreResult};
use crate::secret::{random_id, random_token};

/// Which live grants are about to be revoked.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ending<'a> {
    /// Every grant of a user (password change or reset, disable).
    User(&'a str),
    /// The grants given in one browser session (RP-initiated logout).
    Session(&'a str),
    /// A user's grants to one app (consent withdrawn on the account page).
    UserClient(&'a str, &'a str),
    /// One grant (a replayed code or refresh token).
    Grant(&'a str),
}

/// What the sender needs to make one logout token: the app, the user and the session.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
    /// The token's `jti`: the same on every attempt, so an app can drop a repeat.
    pub jti: String,
}

pub const BACKCHANNEL_LOGOUT_KIND: &str = "backchannel_logout";

impl Store {
    pub(super) async fn queue_backchannel_logouts_on(
        &self,
        conn: &mut Conn,
        ending: Ending<'_>,
        now: i64,
    ) -> StoreResult<usize> {
        let (condition, first, second) = match ending {
            Ending::User(sub) => ("g.user_sub = $2", sub, None),
            Ending::Session(sid) => ("g.sid = $2", sid, None),
            Ending::UserClient(sub, client_id) => ("g.user_sub = $2 AND g.client_id = $3", sub, Some(client_id)),
            Ending::Grant(id) => ("g.id = $2", id, None),
        };
        let sql = format!(
            "SELECT DISTINCT g.client_id, g.user_sub, g.sid, c.backchannel_logout_uri FROM grants g \
             JOIN clients c ON c.id = g.client_id WHERE {condition} AND g.revoked_at IS NULL AND g.expires_at > $1 \
             AND c.backchannel_logout_uri IS NOT NULL AND c.disabled_at IS NULL"
        );
        let mut query = self.sql(&sql).bind(now).bind(first.to_string());
        if let Some(second) = second {
            query = query.bind(second.to_string());
        }
        let rows = query.fetch_all(&mut *conn).await?;
        for row in &rows {
            let notice = LogoutNotice {
                client_id: row.try_get("client_id")?,
                sub: row.try_get("user_sub")?,
                sid: row.try_get("sid")?,
                jti: random_token(16),
            };
            let uri: String = row.try_get("backchannel_logout_uri")?;
            let payload = serde_json::to_vec(&notice).map_err(|e| super::StoreError::Other(e.to_string()))?;
            self.sql(
                "INSERT INTO outbox (id, kind, recipient, payload, created_at, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $5)",
            )
            .bind(random_id(22))
            .bind(BACKCHANNEL_LOGOUT_KIND)
            .bind(uri)
            .bind(payload)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(rows.len())
    }
}
