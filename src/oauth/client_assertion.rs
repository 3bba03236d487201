//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): the client
//! signs a short-lived JWT with one of its registered keys instead of sending a secret.
//!
//! What an assertion must be, and why:
//! - RS256 with a registered RSA key, or ES256 with a registered P-256 key. The algorithm comes
//!   from the key, never from the header alone: `none`, HMAC (a "public" key used as a shared
//!   secret) and any other pairing are refused.
//! - No key or key URL in the header (`jwk`, `jku`, `x5u`, `x5c`): the keys are the registered
//!   ones, not whatever the assertion brings.
//! - `iss` = `sub` = the client_id (RFC 7523 §3 items 1–2); `aud` names this server (its issuer
//!   or the endpoint's URL, item 3); `exp` present and at most [`MAX_LIFETIME_SECS`] ahead
//!   (item 4: a short-lived assertion); `nbf`/`iat` not in the future beyond the leeway; a
//!   `jti` (item 7) that was never used before, checked by the caller across replicas.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may live, counted from now to its `exp`.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;
/// Longest assertion read (a few keys' worth of claims; ours are under 1 KiB).
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;
const MAX_JTI: usize = 256;

/// A verified assertion's replay key and how long it must be remembered.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
}

/// Why an assertion was refused (for the log; the client sees `invalid_client`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("malformed assertion: {0}")]
    Malformed(String),
    /// No registered key matches the header's `kid`/`alg`: the caller may refetch a jwks_uri.
    #[error("no registered key matches the assertion")]
    NoKey,
    #[error("signature or claims refused: {0}")]
    Refused(String),
}

/// The `sub` an assertion claims, unverified: only to find which client's keys to try.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub").and_then(Value::as_str).map(str::to_string)
}

/// The algorithm a registered key may verify, from its type: RSA → RS256, P-256 → ES256.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

/// Verifies `assertion` for `client_id` against its registered `keys`; `audiences` are the URLs
/// that name this server. The caller checks the `jti` has not been used.
pub fn verify(
    assertion: &str,
    client_id: &str,
    keys: &JwkSet,
    audiences: &[String],
    now: i64,
) -> Result<VerifiedAssertion, AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES || assertion.split('.').count() != 3 {
        return Err(AssertionError::Malformed("not a compact JWS of bounded size".into()));
    }
    let header = decode_header(assertion).map_err(|e| AssertionError::Malformed(e.to_string()))?;
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some() {
        return Err(AssertionError::Refused("the header brings its own key or key URL".into()));
    }
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(AssertionError::Refused(format!("alg {:?} is not RS256 or ES256", header.alg)));
    }
    // Candidates: the key named by `kid`, else every key of the header's algorithm.
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter(|k| algorithm_of(k) == Some(header.alg))
        .collect();
    if candidates.is_empty() {
        return Err(AssertionError::NoKey);
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.set_audience(audiences);
    validation.validate_nbf = true;
    let mut last = AssertionError::NoKey;
    for jwk in candidates {
        let key = DecodingKey::from_jwk(jwk).map_err(|e| AssertionError::Malformed(e.to_string()))?;
        match decode::<Map<String, Value>>(assertion, &key, &validation) {
            Ok(data) => return check_claims(&data.claims, client_id, now),
            Err(e) => last = AssertionError::Refused(e.to_string()),
        }
    }
    Err(last)
}

fn check_claims(claims: &Map<String, Value>, client_id: &str, now: i64) -> Result<VerifiedAssertion, AssertionError> {
    let refused = |why: &str| Err(AssertionError::Refused(why.into()));
    if claims.get("sub").and_then(Value::as_str) != Some(client_id) {
        return refused("sub is not the client_id (RFC 7523 §3 item 2)");
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else { return refused("exp is not a number") };
    if exp > now + MAX_LIFETIME_SECS {
        return refused("exp is too far ahead: assertions must be short-lived");
    }
    let leeway = LEEWAY_SECS as i64;
    if claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat > now + leeway) {
        return refused("iat is in the future");
    }
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI => jti.to_string(),
        _ => return refused("jti is missing (RFC 7523 §3 item 7)"),
    };
    Ok(VerifiedAssertion { jti, exp })
}
