//! tower-sessions' `SessionStore` on our own database (one sqlx version, one pool — the issue's
//! second option). Ids are stored as SHA-256 hashes: a database leak gives nobody a cookie.

use std::collections::HashMap;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};
use tower_sessions::SessionStore;

use super::Store;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn id_hash(id: &Id) -> String {
    Sha256::digest(id.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// The signed-in user's subject, kept in its own column so a password change or a disable can
/// end all of that user's sessions with one statement.
fn user_of(record: &Record) -> Option<String> {
    record.data.get("user").and_then(|u| u.get("sub")).and_then(|s| s.as_str()).map(str::to_string)
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl DbSessionStore {
    async fn insert(&self, record: &Record, upsert: bool) -> Result<u64> {
        let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
        let conflict = if upsert {
            "ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, user_sub = excluded.user_sub, expires_at = excluded.expires_at"
        } else {
            "ON CONFLICT (id_hash) DO NOTHING"
        };
        let done = self
            .store
            .sql(&format!(
                "INSERT INTO sessions (id_hash, data, user_sub, expires_at) VALUES ($1, $2, $3, $4) {conflict}"
            ))
            .bind(id_hash(&record.id))
            .bind(data)
            .bind(user_of(record))
            .bind(record.expiry_date.unix_timestamp())
            .execute(&self.store.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // 128-bit ids practically never collide; if one does, draw again rather than overwrite.
        for _ in 0..8 {
            if self.insert(record, false).await? == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("could not find a free session id".into()))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.insert(record, true).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let row = self
            .store
            .sql("SELECT data, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash(id))
            .bind(now())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: HashMap<String, serde_json::Value> =
            serde_json::from_str(&row.try_get::<String, _>("data").map_err(backend)?)
                .map_err(|e| Error::Decode(e.to_string()))?;
        let expiry_date = OffsetDateTime::from_unix_timestamp(row.try_get::<i64, _>("expires_at").map_err(backend)?)
            .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store
            .sql("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash(id))
            .execute(&self.store.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
