//! The signing-key lifecycle as a pure function of the stored keys and the time (design rule 7:
//! `now` is an argument, so tests move the clock): next → active → retired → removed.
//!
//! - **Publish ahead.** A new key is stored as `next` with `activates_at = now + publish_ahead`,
//!   so it is in every JWKS for at least that long before it signs. `publish_ahead` is at least
//!   the JWKS max-age plus the replicas' reload interval (config validation): by the time it
//!   signs, every resource server honouring the cache headers has fetched it.
//! - **Rotation.** The next key is made `publish_ahead` before the active key has served
//!   `rotation_interval`, so the switch lands on schedule.
//! - **Activation.** Once `activates_at` has passed, the next key becomes active and the active
//!   one retires, together (one active key per algorithm).
//! - **Retention.** A retired key stays published for `retention` — at least the longest token
//!   lifetime plus the reload interval (a replica may sign with it until it reloads) plus
//!   clock-skew leeway — then it is removed.

use crate::domain::{KeyRecord, KeyStatus, SigningAlg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub rotation_interval: i64,
    pub publish_ahead: i64,
    pub retention: i64,
}

/// One step of the lifecycle, applied by the store under its key lock.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyChange {
    /// Store a new `next` key.
    Publish(KeyRecord),
    /// `kid` starts signing; `retire` (the active key of its algorithm) stops and stays
    /// published until `removes_at`.
    Activate { kid: String, retire: Option<String>, retired_at: i64, removes_at: i64 },
    /// A retired key whose tokens have all expired leaves the JWKS.
    Remove { kid: String },
}

/// Algorithms whose active key is due for a successor and that have no `next` key yet.
pub fn due_for_rotation(records: &[KeyRecord], now: i64, policy: &LifecyclePolicy) -> Vec<SigningAlg> {
    SigningAlg::ALL
        .into_iter()
        .filter(|alg| {
            let mine = || records.iter().filter(move |r| r.alg == *alg);
            let has_next = mine().any(|r| r.status == KeyStatus::Next);
            let active_since = mine().filter(|r| r.status == KeyStatus::Active).map(|r| r.activates_at).max();
            !has_next
                && active_since.is_some_and(|since| now >= since + policy.rotation_interval - policy.publish_ahead)
        })
        .collect()
}

/// What should change now. `fresh` supplies a new key for an algorithm that needs one (key
/// generation is slow, so the caller makes them before taking the lock).
pub fn plan(
    records: &[KeyRecord],
    now: i64,
    policy: &LifecyclePolicy,
    fresh: &mut dyn FnMut(SigningAlg) -> Option<KeyRecord>,
) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    for alg in due_for_rotation(records, now, policy) {
        if let Some(mut key) = fresh(alg) {
            key.status = KeyStatus::Next;
            key.created_at = now;
            // `now` is whole seconds, rounded down: one more second makes the real time
            // published at least `publish_ahead`.
            key.activates_at = now + policy.publish_ahead + 1;
            key.retired_at = None;
            key.removes_at = None;
            changes.push(KeyChange::Publish(key));
        }
    }
    for alg in SigningAlg::ALL {
        let mine: Vec<&KeyRecord> = records.iter().filter(|r| r.alg == alg).collect();
        // The oldest next key whose time has come (there is at most one; be robust anyway).
        let ready = mine
            .iter()
            .filter(|r| r.status == KeyStatus::Next && r.activates_at <= now)
            .min_by_key(|r| (r.activates_at, r.kid.clone()));
        if let Some(ready) = ready {
            let retire = mine.iter().find(|r| r.status == KeyStatus::Active).map(|r| r.kid.clone());
            changes.push(KeyChange::Activate {
                kid: ready.kid.clone(),
                retire,
                retired_at: now,
                removes_at: now + policy.retention + 1,
            });
        }
    }
    for record in records {
        if record.status == KeyStatus::Retired && record.removes_at.is_some_and(|at| at <= now) {
            changes.push(KeyChange::Remove { kid: record.kid.clone() });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const POLICY: LifecyclePolicy = LifecyclePolicy { rotation_interval: 30 * DAY, publish_ahead: DAY, retention: DAY };

    fn key(kid: &str, alg: SigningAlg, status: KeyStatus, activates_at: i64) -> KeyRecord {
        KeyRecord {
            kid: kid.into(),
            alg,
            status,
            sealed_private_key: vec![],
            public_jwk: serde_json::json!({ "kid": kid }),
            created_at: activates_at,
            activates_at,
            retired_at: None,
            removes_at: None,
        }
    }

    /// Applies changes the way the store does, for a simulated timeline.
    fn apply(records: &mut Vec<KeyRecord>, changes: Vec<KeyChange>) {
        for change in changes {
            match change {
                KeyChange::Publish(k) => records.push(k),
                KeyChange::Activate { kid, retire, retired_at, removes_at } => {
                    for r in records.iter_mut() {
                        if Some(&r.kid) == retire.as_ref() {
                            r.status = KeyStatus::Retired;
                            r.retired_at = Some(retired_at);
                            r.removes_at = Some(removes_at);
                        }
                        if r.kid == kid {
                            r.status = KeyStatus::Active;
                        }
                    }
                }
                KeyChange::Remove { kid } => records.retain(|r| r.kid != kid),
            }
        }
    }

    #[test]
    fn a_year_of_hourly_steps_keeps_the_invariants() {
        let mut records = vec![
            key("rs-0", SigningAlg::Rs256, KeyStatus::Active, 0),
            key("es-0", SigningAlg::Es256, KeyStatus::Active, 0),
        ];
        let mut counter = 0;
        let mut first_seen: std::collections::HashMap<String, i64> = Default::default();
        let mut activations = 0;
        for now in (0..365 * DAY).step_by(3600) {
            let changes = plan(&records, now, &POLICY, &mut |alg| {
                counter += 1;
                Some(key(&format!("{alg}-{counter}"), alg, KeyStatus::Next, 0))
            });
            activations += changes.iter().filter(|c| matches!(c, KeyChange::Activate { .. })).count();
            let before = records.clone();
            apply(&mut records, changes);
            for r in &records {
                first_seen.entry(r.kid.clone()).or_insert(now);
            }
            for alg in SigningAlg::ALL {
                let active: Vec<_> = records.iter().filter(|r| r.alg == alg && r.status == KeyStatus::Active).collect();
                assert_eq!(active.len(), 1, "one active {alg} key at {now}");
                // Published at least publish_ahead before it signs.
                assert!(now - first_seen[&active[0].kid] >= POLICY.publish_ahead || active[0].kid.ends_with("-0"));
                assert!(records.iter().filter(|r| r.alg == alg && r.status == KeyStatus::Next).count() <= 1);
            }
            // A key is removed only after it was retired for the retention period.
            for gone in before.iter().filter(|b| !records.iter().any(|r| r.kid == b.kid)) {
                assert!(now - gone.retired_at.unwrap() >= POLICY.retention, "{} removed early", gone.kid);
            }
        }
        // 30-day rotation for a year: 12 activations per algorithm.
        assert_eq!(activations, 2 * 12);
    }

    #[test]
    fn next_key_is_made_publish_ahead_before_the_interval_ends() {
        let records = vec![key("rs-0", SigningAlg::Rs256, KeyStatus::Active, 0)];
        let mut fresh = |alg| Some(key("new", alg, KeyStatus::Next, 0));
        assert!(plan(&records, 29 * DAY - 1, &POLICY, &mut fresh).is_empty());
        let changes = plan(&records, 29 * DAY, &POLICY, &mut fresh);
        assert!(
            matches!(&changes[..], [KeyChange::Publish(k)] if k.activates_at == 30 * DAY + 1 && k.status == KeyStatus::Next)
        );
    }

    /// Each algorithm's keys are judged on their own (mutation testing: with both algorithms
    /// rotating in step, mixing them up went unnoticed).
    #[test]
    fn each_algorithm_rotates_on_its_own_schedule() {
        let records = vec![
            key("rs-0", SigningAlg::Rs256, KeyStatus::Active, 0),
            key("es-0", SigningAlg::Es256, KeyStatus::Active, 10 * DAY),
        ];
        assert_eq!(due_for_rotation(&records, 29 * DAY, &POLICY), vec![SigningAlg::Rs256]);
        assert_eq!(due_for_rotation(&records, 39 * DAY, &POLICY), vec![SigningAlg::Rs256, SigningAlg::Es256]);
        let with_next = [records.clone(), vec![key("rs-1", SigningAlg::Rs256, KeyStatus::Next, 30 * DAY)]].concat();
        assert_eq!(due_for_rotation(&with_next, 39 * DAY, &POLICY), vec![SigningAlg::Es256], "RS256 has its next key");
    }

    /// A `next` key activates for its own algorithm only, and the key it retires leaves the JWKS
    /// exactly `retention` (+1 s for whole seconds) later (mutation testing: both survived).
    #[test]
    fn activation_is_per_algorithm_and_retirement_lasts_retention() {
        let records = vec![
            key("rs-0", SigningAlg::Rs256, KeyStatus::Active, 0),
            key("rs-1", SigningAlg::Rs256, KeyStatus::Next, 30 * DAY),
            key("es-0", SigningAlg::Es256, KeyStatus::Active, 0),
            key("es-1", SigningAlg::Es256, KeyStatus::Next, 31 * DAY),
        ];
        let mut fresh = |_| None;
        let now = 30 * DAY;
        let changes = plan(&records, now, &POLICY, &mut fresh);
        assert_eq!(
            changes,
            vec![KeyChange::Activate {
                kid: "rs-1".into(),
                retire: Some("rs-0".into()),
                retired_at: now,
                removes_at: now + DAY + 1,
            }]
        );
    }
}
