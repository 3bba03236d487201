//! ID tokens (OIDC Core §2, §3.1.3.6).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::claims::user_claims;
use crate::domain::{Grant, ScopeSet, SigningAlg, User};
use crate::keys::{KeyRing, KeyRingError};

#[derive(Clone, Debug)]
pub struct IdTokenSettings {
    pub issuer: String,
    pub ttl_secs: i64,
    pub alg: SigningAlg,
}

/// OIDC Core §3.1.3.6: base64url of the left half of the SHA-256 of the access token (for
/// RS256 and ES256, both SHA-256 based).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub fn mint(
    keys: &KeyRing,
    settings: &IdTokenSettings,
    user: &User,
    grant: &Grant,
    scopes: &ScopeSet,
    access_token: &str,
    now: i64,
) -> Result<String, KeyRingError> {
    let mut claims: Map<String, Value> = user_claims(user, scopes);
    claims.insert("iss".into(), Value::from(settings.issuer.clone()));
    claims.insert("aud".into(), Value::from(grant.client_id.clone()));
    claims.insert("azp".into(), Value::from(grant.client_id.clone()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + settings.ttl_secs));
    claims.insert("auth_time".into(), Value::from(grant.auth_time));
    claims.insert("amr".into(), Value::from(grant.amr.clone()));
    claims.insert("acr".into(), Value::from(super::acr::for_amr(&grant.amr)));
    claims.insert("at_hash".into(), Value::from(at_hash(access_token)));
    if let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), Value::from(nonce.clone()));
    }
    if let Some(sid) = &grant.sid {
        claims.insert("sid".into(), Value::from(sid.clone()));
    }
    keys.sign(settings.alg, "JWT", &claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_spec_example() {
        // OIDC Core appendix A.3's access token and at_hash (RS256 → SHA-256).
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
