//! A short-lived in-memory copy of clients, so the token endpoint does not read the database on
//! every request. Bound: a disabled client or a rotated secret keeps working on a replica for
//! at most `client_cache_ttl` (docs/configuration.md). Unknown ids are not cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{ClientStore, Store, StoreResult};
use crate::domain::{is_plausible_client_id, Client};
use crate::oauth::client_auth::ClientLookup;

/// A bound on memory; a full cache is cleared (clients are few, this is a guard against floods).
const MAX_ENTRIES: usize = 10_000;

pub struct ClientCache {
    store: Store,
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, Arc<Client>)>>,
}

impl ClientCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Self { store, ttl, entries: RwLock::new(HashMap::new()) }
    }
}

impl ClientLookup for ClientCache {
    async fn lookup_client(&self, id: &str) -> StoreResult<Option<Arc<Client>>> {
        if !is_plausible_client_id(id) {
            return Ok(None);
        }
        if !self.ttl.is_zero() {
            let hit = self
                .entries
                .read()
                .ok()
                .and_then(|map| map.get(id).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, c)| c.clone()));
            if hit.is_some() {
                return Ok(hit);
            }
        }
        let Some(client) = self.store.find_client(id).await?.map(Arc::new) else {
            return Ok(None);
        };
        if !self.ttl.is_zero() {
            if let Ok(mut map) = self.entries.write() {
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
                map.insert(id.to_string(), (Instant::now(), client.clone()));
            }
        }
        Ok(Some(client))
    }
}
