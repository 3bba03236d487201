//! Used private_key_jwt assertions (RFC 7523 §3 item 7), by (client, jti), until they expire:
//! one conditional INSERT, so of two requests racing with one assertion on any replicas, one
//! wins.

use super::{AssertionStore, Store, StoreResult};

impl AssertionStore for Store {
    async fn first_use_of_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> StoreResult<bool> {
        let done = self
            .sql(
                "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )
            .bind(client_id)
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
