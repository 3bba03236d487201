//! Running the key lifecycle: one step now (every replica calls this on a timer; the store's
//! key lock lets one perform each change), a rotation on demand, and the emergency revoke.

use std::collections::HashMap;

use super::generate::generate_key;
use super::lifecycle::{due_for_rotation, plan, KeyChange, LifecyclePolicy};
use super::ring::KeyRingError;
use super::seal::seal;
use super::MasterKey;
use crate::domain::{KeyRecord, KeyStatus, SigningAlg};
use crate::store::KeyStore;

/// A freshly generated key, sealed, as the store keeps it (`status`/times are set by the plan).
pub(crate) async fn new_key(
    master: &MasterKey,
    alg: SigningAlg,
    status: KeyStatus,
    now: i64,
) -> Result<KeyRecord, KeyRingError> {
    // RSA generation takes 100+ ms even optimised: keep it off the async runtime.
    let generated = tokio::task::spawn_blocking(move || generate_key(alg))
        .await
        .map_err(|e| KeyRingError::Task(e.to_string()))??;
    let sealed = seal(master, &generated.private_der, generated.kid.as_bytes())
        .map_err(|source| KeyRingError::Seal { kid: generated.kid.clone(), source })?;
    Ok(KeyRecord {
        kid: generated.kid,
        alg,
        status,
        sealed_private_key: sealed,
        public_jwk: generated.public_jwk,
        created_at: now,
        activates_at: now,
        retired_at: None,
        removes_at: None,
    })
}

async fn spares(
    master: &MasterKey,
    algs: &[SigningAlg],
    now: i64,
) -> Result<HashMap<SigningAlg, KeyRecord>, KeyRingError> {
    let mut made = HashMap::new();
    for alg in algs {
        made.insert(*alg, new_key(master, *alg, KeyStatus::Next, now).await?);
    }
    Ok(made)
}

/// One scheduled step: publish a successor when one is due, activate a next key whose time
/// has come, remove retired keys whose tokens have expired. Returns what this replica changed
/// (nothing when another replica got there first).
pub async fn step<S: KeyStore>(
    store: &S,
    master: &MasterKey,
    policy: &LifecyclePolicy,
    now: i64,
) -> Result<Vec<KeyChange>, KeyRingError> {
    // Keys are generated before the lock is taken, from a snapshot; the plan under the lock
    // decides again and uses them only if still needed.
    let due = due_for_rotation(&store.list_keys().await?, now, policy);
    let mut spare = spares(master, &due, now).await?;
    let changes = store.key_step(&mut |records| plan(records, now, policy, &mut |alg| spare.remove(&alg))).await?;
    log(&changes);
    Ok(changes)
}

/// `latchkey keys rotate`: publish a successor for every algorithm that has none, now,
/// whatever the schedule says. It activates after the publish-ahead period like any other.
pub async fn rotate_now<S: KeyStore>(
    store: &S,
    master: &MasterKey,
    policy: &LifecyclePolicy,
    now: i64,
) -> Result<Vec<KeyChange>, KeyRingError> {
    let forced = LifecyclePolicy { rotation_interval: 0, ..*policy };
    let snapshot = store.list_keys().await?;
    let due: Vec<SigningAlg> = SigningAlg::ALL
        .into_iter()
        .filter(|alg| !snapshot.iter().any(|r| r.alg == *alg && r.status == KeyStatus::Next))
        .collect();
    let mut spare = spares(master, &due, now).await?;
    // Only publishing: activation and removal keep their own schedule.
    let changes = store
        .key_step(&mut |records| {
            plan(records, now, &forced, &mut |alg| spare.remove(&alg))
                .into_iter()
                .filter(|c| matches!(c, KeyChange::Publish(_)))
                .collect()
        })
        .await?;
    log(&changes);
    Ok(changes)
}

/// `latchkey keys revoke KID`: the key leaves the JWKS at once (every replica drops it at its
/// next reload), and if it was signing, a new key signs immediately — without the usual
/// publish-ahead, so resource servers holding a cached JWKS will fail tokens signed with the
/// new key until they refetch. That is the price of an emergency, stated in docs/keys.md.
pub async fn revoke<S: KeyStore>(
    store: &S,
    master: &MasterKey,
    kid: &str,
    now: i64,
) -> Result<Option<(KeyRecord, Option<KeyRecord>)>, KeyRingError> {
    let Some(target) = store.list_keys().await?.into_iter().find(|r| r.kid == kid) else { return Ok(None) };
    let replacement = if target.status == KeyStatus::Active {
        Some(new_key(master, target.alg, KeyStatus::Active, now).await?)
    } else {
        None
    };
    let Some(removed) = store.revoke_key(kid, replacement.as_ref()).await? else { return Ok(None) };
    tracing::warn!(kid = %removed.kid, alg = %removed.alg, "signing key revoked; tokens it signed no longer verify");
    let replacement = replacement.filter(|_| removed.status == KeyStatus::Active);
    if let Some(new) = &replacement {
        tracing::warn!(kid = %new.kid, alg = %new.alg, "replacement signing key active at once");
    }
    Ok(Some((removed, replacement)))
}

fn log(changes: &[KeyChange]) {
    for change in changes {
        match change {
            KeyChange::Publish(key) => {
                tracing::info!(kid = %key.kid, alg = %key.alg, activates_at = key.activates_at, "published next signing key")
            }
            KeyChange::Activate { kid, retire, .. } => {
                tracing::info!(kid = %kid, retired = retire.as_deref().unwrap_or(""), "signing key activated")
            }
            KeyChange::Remove { kid } => tracing::info!(kid = %kid, "retired signing key removed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each change the lifecycle makes is logged for the operator, with the key it concerns
    /// (mutation testing: `log` → `()` survived, as nothing else reads these lines).
    #[test]
    fn every_key_change_is_logged() {
        let key = KeyRecord {
            kid: "kid-next".into(),
            alg: SigningAlg::Es256,
            status: KeyStatus::Next,
            sealed_private_key: Vec::new(),
            public_jwk: serde_json::json!({}),
            created_at: 100,
            activates_at: 160,
            retired_at: None,
            removes_at: None,
        };
        let changes = [
            KeyChange::Publish(key),
            KeyChange::Activate {
                kid: "kid-new".into(),
                retire: Some("kid-old".into()),
                retired_at: 160,
                removes_at: 999,
            },
            KeyChange::Remove { kid: "kid-gone".into() },
        ];
        let ((), text) = crate::keys::logged(|| log(&changes));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("published next signing key") && lines[0].contains("kid=kid-next"), "{text}");
        assert!(lines[0].contains("alg=ES256") && lines[0].contains("activates_at=160"), "{text}");
        assert!(lines[1].contains("signing key activated") && lines[1].contains("kid=kid-new"), "{text}");
        assert!(lines[1].contains("kid-old"), "{text}");
        assert!(lines[2].contains("retired signing key removed") && lines[2].contains("kid=kid-gone"), "{text}");
    }
}
