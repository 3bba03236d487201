//! The key ring: the keys this replica signs with, and the JWKS it publishes.

use std::collections::HashMap;

use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use super::generate::KeyGenError;
use super::seal::{open, SealError};
use super::MasterKey;
use crate::domain::{KeyRecord, KeyStatus, SigningAlg};
use crate::store::{KeyStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid}: {source}")]
    Seal { kid: String, source: SealError },
    #[error(transparent)]
    Generate(#[from] KeyGenError),
    #[error("no active {0} signing key")]
    NoActiveKey(SigningAlg),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("key generation task failed: {0}")]
    Task(String),
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
}

/// What one replica holds in memory. Immutable; a reload builds a new one.
pub struct KeyRing {
    signing: HashMap<SigningAlg, SigningKey>,
    /// Every published key (next, active, retired), for verifying our own tokens.
    verifying: HashMap<String, (SigningAlg, DecodingKey)>,
    jwks: Bytes,
    /// What the ring was built from (kid and status of each key): a reload rebuilds only when
    /// this changes.
    fingerprint: Vec<(String, KeyStatus)>,
}

fn decoding_key(record: &KeyRecord) -> Option<DecodingKey> {
    let jwk = &record.public_jwk;
    let field = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    match record.alg {
        SigningAlg::Rs256 => DecodingKey::from_rsa_components(field("n")?, field("e")?).ok(),
        SigningAlg::Es256 => DecodingKey::from_ec_components(field("x")?, field("y")?).ok(),
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.signing.values().map(|k| &k.kid).collect::<Vec<_>>()).finish()
    }
}

fn fingerprint(records: &[KeyRecord]) -> Vec<(String, KeyStatus)> {
    let mut list: Vec<(String, KeyStatus)> = records.iter().map(|r| (r.kid.clone(), r.status)).collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::Es256 => Algorithm::ES256,
    }
}

impl KeyRing {
    /// Builds the ring from stored keys: every stored key is published; per algorithm, the
    /// active key signs. Only the lifecycle step makes a key active, and only once its
    /// publish-ahead period has passed (keys::lifecycle), so a `next` key never signs here.
    pub fn from_records(records: &[KeyRecord], master: &MasterKey) -> Result<Self, KeyRingError> {
        let mut signing: HashMap<SigningAlg, (i64, SigningKey)> = HashMap::new();
        for record in records.iter().filter(|r| r.status == KeyStatus::Active) {
            if signing.get(&record.alg).is_some_and(|(at, _)| *at >= record.activates_at) {
                continue;
            }
            let der = open(master, &record.sealed_private_key, record.kid.as_bytes())
                .map_err(|source| KeyRingError::Seal { kid: record.kid.clone(), source })?;
            let encoding = match record.alg {
                SigningAlg::Rs256 => EncodingKey::from_rsa_der(&der),
                SigningAlg::Es256 => EncodingKey::from_ec_der(&der),
            };
            signing.insert(record.alg, (record.activates_at, SigningKey { kid: record.kid.clone(), encoding }));
        }
        let verifying =
            records.iter().filter_map(|r| decoding_key(r).map(|key| (r.kid.clone(), (r.alg, key)))).collect();
        let keys: Vec<&serde_json::Value> = records.iter().map(|r| &r.public_jwk).collect();
        let jwks = serde_json::json!({ "keys": keys }).to_string();
        Ok(Self {
            signing: signing.into_iter().map(|(alg, (_, key))| (alg, key)).collect(),
            verifying,
            jwks: jwks.into(),
            fingerprint: fingerprint(records),
        })
    }

    /// Whether `records` would build the same ring.
    pub fn is_built_from(&self, records: &[KeyRecord]) -> bool {
        self.fingerprint == fingerprint(records)
    }

    /// The JWKS document (RFC 7517 §5), serialised once per reload.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The public key published under `kid`, with its algorithm.
    pub fn verifying_key(&self, kid: &str) -> Option<(SigningAlg, &DecodingKey)> {
        self.verifying.get(kid).map(|(alg, key)| (*alg, key))
    }

    pub fn signing_kid(&self, alg: SigningAlg) -> Option<&str> {
        self.signing.get(&alg).map(|k| k.kid.as_str())
    }

    /// Signs `claims` as a JWS with the active key for `alg`; `typ` goes in the header
    /// (`at+jwt` for access tokens, RFC 9068 §2.1).
    pub fn sign<T: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &T) -> Result<String, KeyRingError> {
        let key = self.signing.get(&alg).ok_or(KeyRingError::NoActiveKey(alg))?;
        let mut header = Header::new(jwt_alg(alg));
        header.typ = Some(typ.to_string());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| KeyRingError::Sign(e.to_string()))
    }
}

/// Makes sure every algorithm has an active key, generating the missing ones, and returns the
/// ring as stored. Safe when several replicas start at once: the store lets exactly one insert
/// win per algorithm, and everyone then loads the winners.
///
/// A brand-new installation's first keys sign at once: nobody can have cached a JWKS without
/// them yet. Keys made by rotation are published ahead of use instead (docs/keys.md).
pub async fn ensure_initial_keys<S: KeyStore>(
    store: &S,
    master: &MasterKey,
    now: i64,
) -> Result<KeyRing, KeyRingError> {
    let existing = store.list_keys().await?;
    for alg in SigningAlg::ALL {
        if existing.iter().any(|r| r.alg == alg && r.status == KeyStatus::Active) {
            continue;
        }
        let record = super::rotation::new_key(master, alg, KeyStatus::Active, now).await?;
        if store.insert_key_unless_active_exists(&record).await? {
            tracing::info!(kid = %record.kid, alg = %alg, "generated signing key");
        }
    }
    let records = store.list_keys().await?;
    let ring = KeyRing::from_records(&records, master)?;
    for alg in SigningAlg::ALL {
        if ring.signing_kid(alg).is_none() {
            return Err(KeyRingError::NoActiveKey(alg));
        }
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_key, seal};

    fn active(kid_suffix: i64, master: &MasterKey) -> KeyRecord {
        let generated = generate_key(SigningAlg::Es256).unwrap();
        KeyRecord {
            kid: generated.kid.clone(),
            alg: SigningAlg::Es256,
            status: KeyStatus::Active,
            sealed_private_key: seal::seal(master, &generated.private_der, generated.kid.as_bytes()).unwrap(),
            public_jwk: generated.public_jwk,
            created_at: kid_suffix,
            activates_at: kid_suffix,
            retired_at: None,
            removes_at: None,
        }
    }

    /// Should two keys of one algorithm ever both be active, the newer one signs, in any order
    /// (mutation testing: the comparison had no test).
    #[test]
    fn the_newest_active_key_signs() {
        let master = MasterKey::from_bytes([7; 32]);
        let (older, newer) = (active(100, &master), active(200, &master));
        for records in [vec![older.clone(), newer.clone()], vec![newer.clone(), older.clone()]] {
            let ring = KeyRing::from_records(&records, &master).unwrap();
            assert_eq!(ring.signing_kid(SigningAlg::Es256), Some(newer.kid.as_str()));
        }
    }

    /// The reload swaps the ring only when the keys changed (mutation testing: "always
    /// rebuild" passed every test, at the cost of a rebuild and a log line every interval).
    #[test]
    fn a_ring_knows_the_records_it_was_built_from() {
        let master = MasterKey::from_bytes([7; 32]);
        let records = vec![active(100, &master)];
        let ring = KeyRing::from_records(&records, &master).unwrap();
        assert!(ring.is_built_from(&records));
        let mut retired = records.clone();
        retired[0].status = KeyStatus::Retired;
        assert!(!ring.is_built_from(&retired));
        assert!(!ring.is_built_from(&[records[0].clone(), active(200, &master)]));
    }
}
