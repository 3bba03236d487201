//! Storage: narrow traits whose methods are atomic intents (shared/design.md rule 3), and one
//! implementation on sqlx's `Any` driver that runs the same SQL on Postgres and SQLite.
//!
//! This module is the only one that names sqlx. Protocol code sees [`ClientStore`] and
//! [`KeyStore`] and plain domain types.

mod client_cache;
mod clients;
mod connect;
mod keys;
mod migrate;

use std::future::Future;

use crate::domain::{Client, KeyRecord};

pub use client_cache::ClientCache;
pub use connect::{Backend, Store};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database can't be reached or is too busy; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row does not parse: a bug or a hand edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Registered clients.
pub trait ClientStore: Send + Sync {
    fn insert_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send;
    fn find_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send;
    fn list_clients(&self) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Replaces the secret hash; false when no such client exists.
    fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8; 32],
        now: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Marks the client disabled (first time only); false when no such client exists.
    fn disable_client(&self, id: &str, now: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    fn delete_client(&self, id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Signing keys.
pub trait KeyStore: Send + Sync {
    /// Every key that is still published (next, active, retired), oldest first.
    fn list_keys(&self) -> impl Future<Output = StoreResult<Vec<KeyRecord>>> + Send;
    /// Inserts `key` unless the insert would break "one active key per algorithm"; true when
    /// inserted. Replicas racing to create the first key all call this; exactly one wins.
    fn insert_key_unless_active_exists(
        &self,
        key: &KeyRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}
