//! Signing keys for admins: list, rotate on demand, revoke in an emergency (docs/keys.md).

use serde_json::json;

use super::actor::{record, Actor, Subject};
use super::clients::AdminError;
use crate::audit::kind;
use crate::domain::KeyRecord;
use crate::keys::lifecycle::{KeyChange, LifecyclePolicy};
use crate::keys::{rotation, MasterKey};
use crate::store::{AuditStore, KeyStore};

fn unavailable(e: impl std::fmt::Display) -> AdminError {
    AdminError::Unavailable(e.to_string())
}

pub async fn list<S: KeyStore>(store: &S) -> Result<Vec<KeyRecord>, AdminError> {
    Ok(store.list_keys().await?)
}

/// Publishes a successor for each algorithm that has none yet; it signs after
/// `key_publish_ahead`, like a scheduled rotation. Returns the keys published (none when every
/// algorithm already has a next key).
pub async fn rotate<S: KeyStore + AuditStore>(
    store: &S,
    master: &MasterKey,
    policy: &LifecyclePolicy,
    actor: &Actor,
    now: i64,
) -> Result<Vec<KeyRecord>, AdminError> {
    let changes = rotation::rotate_now(store, master, policy, now).await.map_err(unavailable)?;
    let published: Vec<KeyRecord> = changes
        .into_iter()
        .filter_map(|c| match c {
            KeyChange::Publish(key) => Some(key),
            _ => None,
        })
        .collect();
    if !published.is_empty() {
        let kids: Vec<&str> = published.iter().map(|k| k.kid.as_str()).collect();
        record(store, actor, kind::SIGNING_KEY_ROTATED, Subject::None, json!({ "published": kids }), now).await;
    }
    Ok(published)
}

/// Removes a compromised key at once; a replacement signs at once if it was signing.
pub async fn revoke<S: KeyStore + AuditStore>(
    store: &S,
    master: &MasterKey,
    kid: &str,
    actor: &Actor,
    now: i64,
) -> Result<(KeyRecord, Option<KeyRecord>), AdminError> {
    let Some((removed, replacement)) = rotation::revoke(store, master, kid, now).await.map_err(unavailable)? else {
        return Err(AdminError::NotFound(format!("no signing key `{kid}`")));
    };
    let detail = json!({ "kid": removed.kid, "replacement": replacement.as_ref().map(|k| k.kid.clone()) });
    record(store, actor, kind::SIGNING_KEY_REVOKED, Subject::None, detail, now).await;
    Ok((removed, replacement))
}
