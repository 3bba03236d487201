//! Token revocation (RFC 7009) and the introspection reads (RFC 7662), issue 11 items 2 and 3.

use super::{RevocationStore, Store, StoreError, StoreResult};
use crate::domain::{LiveRefreshToken, ScopeSet};

impl RevocationStore for Store {
    async fn revoke_grant_of_refresh_token(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        // RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of
        // the same grant: the whole grant goes. The grant is found by the token's key and then
        // by its own (a scalar subquery: one row each), and only if it is the caller's.
        let done = self
            .sql(
                "UPDATE grants SET revoked_at = $1 \
                 WHERE id = (SELECT grant_id FROM refresh_tokens WHERE token_hash = $2) \
                 AND client_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(token_hash.to_vec())
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_grant_of_client(&self, grant_id: &str, client_id: &str, now: i64) -> StoreResult<bool> {
        let done = self
            .sql("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND client_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(grant_id)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_access_token(&self, jti: &str, client_id: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        self.sql(
            "INSERT INTO revoked_access_tokens (jti, client_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(client_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn access_token_is_revoked(&self, jti: &str) -> StoreResult<bool> {
        let row = self
            .sql("SELECT 1 AS revoked FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn live_refresh_token(
        &self,
        token_hash: &[u8; 32],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<LiveRefreshToken>> {
        let row = self
            .sql(
                "SELECT r.grant_id, r.scopes, r.created_at, r.expires_at, g.client_id, g.user_sub \
                 FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
                 WHERE r.token_hash = $1 AND g.client_id = $2 AND r.used_at IS NULL AND r.expires_at > $3 \
                 AND g.revoked_at IS NULL AND g.expires_at > $3",
            )
            .bind(token_hash.to_vec())
            .bind(client_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let grant_id: String = row.try_get("grant_id")?;
        let scopes = ScopeSet::parse(&row.try_get::<String, _>("scopes")?)
            .map_err(|e| StoreError::Corrupt(format!("refresh token of grant {grant_id}: scopes: {e}")))?;
        Ok(Some(LiveRefreshToken {
            client_id: row.try_get("client_id")?,
            user_sub: row.try_get("user_sub")?,
            scopes,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            grant_id,
        }))
    }
}
