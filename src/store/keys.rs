use sqlx::any::AnyRow;
use sqlx::Row;

use super::{KeyStore, Store, StoreError, StoreResult};
use crate::domain::{KeyRecord, KeyStatus, SigningAlg};

fn key_from_row(row: &AnyRow) -> StoreResult<KeyRecord> {
    let kid: String = row.try_get("kid")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("signing key {kid}: {what}"));
    let alg: SigningAlg = row.try_get::<String, _>("alg")?.parse().map_err(corrupt)?;
    let status: KeyStatus = row.try_get::<String, _>("status")?.parse().map_err(corrupt)?;
    let public_jwk = serde_json::from_str(&row.try_get::<String, _>("public_jwk")?)
        .map_err(|e| corrupt(format!("public_jwk: {e}")))?;
    Ok(KeyRecord {
        alg,
        status,
        sealed_private_key: row.try_get("private_key")?,
        public_jwk,
        created_at: row.try_get("created_at")?,
        activates_at: row.try_get("activates_at")?,
        retired_at: row.try_get("retired_at")?,
        removes_at: row.try_get("removes_at")?,
        kid,
    })
}

impl KeyStore for Store {
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, status, private_key, public_jwk, created_at, activates_at, retired_at, removes_at \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert_key_unless_active_exists(&self, key: &KeyRecord) -> StoreResult<bool> {
        // The partial unique index signing_keys_one_active makes this atomic on both backends.
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, status, private_key, public_jwk, created_at, activates_at, \
             retired_at, removes_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(key.status.as_str())
        .bind(key.sealed_private_key.clone())
        .bind(key.public_jwk.to_string())
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .bind(key.removes_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
