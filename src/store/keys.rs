use super::db::DbRow;

use super::{Backend, KeyStore, Store, StoreError, StoreResult};
use crate::domain::{KeyRecord, KeyStatus, SigningAlg};
use crate::keys::lifecycle::KeyChange;

const KEY_COLUMNS: &str = "kid, alg, status, private_key, public_jwk, created_at, activates_at, retired_at, removes_at";
const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, status, private_key, public_jwk, created_at, \
     activates_at, retired_at, removes_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
/// Any number will do, as long as nothing else in the database uses it: "LKEY".
const KEY_LOCK_ID: i64 = 0x4c4b_4559;

async fn insert_key<'e, E: Into<super::db::Target<'e>>>(
    store: &Store,
    executor: E,
    key: &KeyRecord,
) -> StoreResult<bool> {
    let done = store
        .sql(INSERT_KEY)
        .bind(key.kid.clone())
        .bind(key.alg.as_str())
        .bind(key.status.as_str())
        .bind(key.sealed_private_key.clone())
        .bind(key.public_jwk.to_string())
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .bind(key.removes_at)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Begins a transaction that holds the key lock until it ends.
    async fn begin_key_locked(&self) -> StoreResult<super::db::Tx> {
        let mut tx = self.pool.begin().await?;
        match self.backend() {
            Backend::Postgres => {
                self.sql("SELECT pg_advisory_xact_lock($1)").bind(KEY_LOCK_ID).execute(&mut *tx).await?;
            }
            // A write statement takes SQLite's write lock for the rest of the transaction.
            Backend::Sqlite => {
                self.sql("DELETE FROM signing_keys WHERE 1 = 0").execute(&mut *tx).await?;
            }
        }
        Ok(tx)
    }
}

fn key_from_row(row: &DbRow) -> StoreResult<KeyRecord> {
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
        let rows = self
            .sql(&format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_step(
        &self,
        plan: &mut (dyn FnMut(&[KeyRecord]) -> Vec<KeyChange> + Send),
    ) -> StoreResult<Vec<KeyChange>> {
        let mut tx = self.begin_key_locked().await?;
        let rows = self
            .sql(&format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"))
            .fetch_all(&mut *tx)
            .await?;
        let records = rows.iter().map(key_from_row).collect::<StoreResult<Vec<_>>>()?;
        let changes = plan(&records);
        let mut applied = Vec::new();
        for change in changes {
            let done = match &change {
                KeyChange::Publish(key) => insert_key(self, &mut *tx, key).await?,
                KeyChange::Activate { kid, retire, retired_at, removes_at } => {
                    // Retire first: the partial unique index allows one active key per algorithm.
                    if let Some(old) = retire {
                        self.sql(
                            "UPDATE signing_keys SET status = 'retired', retired_at = $1, removes_at = $2 \
                             WHERE kid = $3 AND status = 'active'",
                        )
                        .bind(*retired_at)
                        .bind(*removes_at)
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                    }
                    self.sql("UPDATE signing_keys SET status = 'active' WHERE kid = $1 AND status = 'next'")
                        .bind(kid)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1
                }
                KeyChange::Remove { kid } => {
                    self.sql("DELETE FROM signing_keys WHERE kid = $1 AND status = 'retired'")
                        .bind(kid)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1
                }
            };
            if done {
                applied.push(change);
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn revoke_key(&self, kid: &str, replacement: Option<&KeyRecord>) -> StoreResult<Option<KeyRecord>> {
        let mut tx = self.begin_key_locked().await?;
        let row = self
            .sql(&format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE kid = $1"))
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(removed) = row.as_ref().map(key_from_row).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        self.sql("DELETE FROM signing_keys WHERE kid = $1").bind(kid).execute(&mut *tx).await?;
        if removed.status == KeyStatus::Active {
            if let Some(replacement) = replacement {
                if !insert_key(self, &mut *tx, replacement).await? {
                    return Err(StoreError::Conflict("the replacement key could not be stored".into()));
                }
            }
        }
        tx.commit().await?;
        Ok(Some(removed))
    }

    async fn insert_key_unless_active_exists(&self, key: &KeyRecord) -> StoreResult<bool> {
        // The partial unique index signing_keys_one_active makes this atomic on both backends.
        insert_key(self, &self.pool, key).await
    }
}
