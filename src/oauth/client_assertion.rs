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
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.set_audience(audiences);
    // Times are checked against `now` below (design rule 7), not the library's own clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
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
    let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else { return refused("exp is not a number") };
    // RFC 7523 §3 item 4: expired (beyond the skew leeway) is refused…
    if exp + leeway <= now {
        return refused("the assertion has expired");
    }
    // …and so is one that lives long: an assertion is meant for one request, now.
    if exp > now + MAX_LIFETIME_SECS {
        return refused("exp is too far ahead: assertions must be short-lived");
    }
    // Item 5 (nbf) and iat: not in the future beyond the leeway.
    for claim in ["nbf", "iat"] {
        if claims.get(claim).and_then(Value::as_i64).is_some_and(|t| t > now + leeway) {
            return refused("nbf or iat is in the future");
        }
    }
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI => jti.to_string(),
        _ => return refused("jti is missing (RFC 7523 §3 item 7)"),
    };
    Ok(VerifiedAssertion { jti, exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use p256::pkcs8::EncodePrivateKey;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const CLIENT: &str = "svc";
    const AUD: &str = "https://id.example/token";

    struct Key {
        encoding: EncodingKey,
        jwks: JwkSet,
    }

    fn key(kid: &str) -> Key {
        let secret = p256::SecretKey::random(&mut rand::thread_rng());
        let der = secret.to_pkcs8_der().unwrap();
        let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
        jwk["kid"] = json!(kid);
        Key {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwks: serde_json::from_value(json!({ "keys": [jwk] })).unwrap(),
        }
    }

    fn claims() -> Value {
        json!({ "iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": NOW + 60, "iat": NOW, "jti": "j-1" })
    }

    fn sign(key: &Key, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, &key.encoding).unwrap()
    }

    fn check(assertion: &str, keys: &JwkSet) -> Result<VerifiedAssertion, AssertionError> {
        verify(assertion, CLIENT, keys, &[AUD.to_string()], NOW)
    }

    #[test]
    fn a_good_assertion_verifies_with_or_without_kid() {
        let k = key("k1");
        let expected = VerifiedAssertion { jti: "j-1".into(), exp: NOW + 60 };
        assert_eq!(check(&sign(&k, Some("k1"), &claims()), &k.jwks), Ok(expected));
        assert!(check(&sign(&k, None, &claims()), &k.jwks).is_ok());
        assert_eq!(claimed_client_id(&sign(&k, None, &claims())).as_deref(), Some(CLIENT));
    }

    #[test]
    fn every_claim_rule_is_enforced() {
        let k = key("k1");
        let refused = |change: &dyn Fn(&mut Value)| {
            let mut c = claims();
            change(&mut c);
            check(&sign(&k, Some("k1"), &c), &k.jwks)
        };
        assert!(matches!(refused(&|c| c["sub"] = json!("other")), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["iss"] = json!("other")), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["aud"] = json!("https://elsewhere")), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["exp"] = json!(NOW + MAX_LIFETIME_SECS + 1)), Err(AssertionError::Refused(_))));
        assert!(refused(&|c| c["exp"] = json!(NOW + MAX_LIFETIME_SECS)).is_ok(), "exactly the longest lifetime");
        assert!(matches!(refused(&|c| c["exp"] = json!(NOW - 120)), Err(AssertionError::Refused(_))));
        let leeway = LEEWAY_SECS as i64;
        assert!(matches!(refused(&|c| c["exp"] = json!(NOW - leeway)), Err(AssertionError::Refused(_))));
        assert!(refused(&|c| c["exp"] = json!(NOW - leeway + 1)).is_ok(), "within the leeway");
        assert!(refused(&|c| c["iat"] = json!(NOW + leeway)).is_ok(), "iat within the leeway");
        assert!(matches!(refused(&|c| c["iat"] = json!(NOW + 120)), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["nbf"] = json!(NOW + 120)), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["jti"] = json!("")), Err(AssertionError::Refused(_))));
        assert!(matches!(refused(&|c| c["jti"] = json!("x".repeat(257))), Err(AssertionError::Refused(_))));
        assert!(refused(&|c| c["jti"] = json!("x".repeat(256))).is_ok(), "the longest jti");
        assert!(matches!(
            refused(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            Err(AssertionError::Refused(_))
        ));
    }

    #[test]
    fn keys_and_headers_are_the_registered_ones() {
        let (k1, k2) = (key("k1"), key("k2"));
        // Another key with the registered kid: the signature fails.
        assert!(matches!(check(&sign(&k2, Some("k1"), &claims()), &k1.jwks), Err(AssertionError::Refused(_))));
        // A kid nobody registered: no key (the caller may refetch a jwks_uri).
        assert_eq!(check(&sign(&k1, Some("nope"), &claims()), &k1.jwks), Err(AssertionError::NoKey));
        // An embedded key or key URL is refused even when the signature is good.
        let mut header = Header::new(Algorithm::ES256);
        header.jku = Some("https://evil.example/jwks".into());
        let with_jku = encode(&header, &claims(), &k1.encoding).unwrap();
        assert!(matches!(check(&with_jku, &k1.jwks), Err(AssertionError::Refused(_))));
        // HS256 keyed with the public JWK's text: refused before any key is tried.
        let secret = serde_json::to_vec(&k1.jwks).unwrap();
        let hs = encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert!(matches!(check(&hs, &k1.jwks), Err(AssertionError::Refused(_))));
        // An `oct` key in the set is never a candidate, whatever the header says.
        let oct: JwkSet =
            serde_json::from_value(json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0", "kid": "k1" }] })).unwrap();
        assert_eq!(check(&sign(&k1, Some("k1"), &claims()), &oct), Err(AssertionError::NoKey));
        // Not three parts, or too long.
        assert!(matches!(check("a.b", &k1.jwks), Err(AssertionError::Malformed(_))));
        assert!(matches!(check(&"a.".repeat(MAX_ASSERTION_BYTES), &k1.jwks), Err(AssertionError::Malformed(_))));
    }

    /// The size bound sits at 8 KiB exactly: an assertion of a few kilobytes (many claims, a
    /// long kid) verifies, one of exactly 8,192 bytes too, and one byte more is refused before
    /// any parsing.
    #[test]
    fn the_size_bound_is_eight_kib() {
        let padded = |k: &Key, kid: &str, pad: usize| {
            let mut c = claims();
            c["pad"] = json!("x".repeat(pad));
            sign(k, Some(kid), &c)
        };
        let k = key("k1");
        let big = padded(&k, "k1", 3000);
        assert!(big.len() > 4000 && big.len() < MAX_ASSERTION_BYTES, "{}", big.len());
        assert!(check(&big, &k.jwks).is_ok());
        // Base64 lengths skip some values, so the kid's length is varied too until the whole
        // assertion is exactly at the bound.
        let exact = (1..8)
            .find_map(|n| {
                let kid = "k".repeat(n);
                let k = key(&kid);
                (5500..6200).map(|pad| padded(&k, &kid, pad)).find(|a| a.len() == MAX_ASSERTION_BYTES).map(|a| (k, a))
            })
            .expect("some kid and padding make exactly 8 KiB");
        assert!(check(&exact.1, &exact.0.jwks).is_ok(), "exactly {} bytes", exact.1.len());
        let over = padded(&k, "k1", 6200);
        assert!(over.len() > MAX_ASSERTION_BYTES, "{}", over.len());
        assert!(matches!(check(&over, &k.jwks), Err(AssertionError::Malformed(_))));
    }

    /// Only RSA and P-256 keys verify anything: a P-384 key (as a fetched jwks_uri may hold) is
    /// never a candidate, so it can't be paired with ES256.
    #[test]
    fn only_rsa_and_p256_keys_have_an_algorithm() {
        let p256 = key("k1");
        assert_eq!(algorithm_of(&p256.jwks.keys[0]), Some(Algorithm::ES256));
        let coordinate = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 48]);
        let p384: Jwk = serde_json::from_value(json!({
            "kty": "EC", "crv": "P-384", "x": coordinate, "y": coordinate, "kid": "k2"
        }))
        .unwrap();
        assert_eq!(algorithm_of(&p384), None);
    }

    /// Each way a header can bring its own key or key URL is refused on its own, with a good
    /// signature by a registered key (RFC 8725 §3.10).
    #[test]
    fn every_header_that_brings_a_key_is_refused_alone() {
        let k = key("k1");
        assert!(check(&sign(&k, Some("k1"), &claims()), &k.jwks).is_ok(), "the control");
        let with = |edit: &dyn Fn(&mut Header)| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k1".into());
            edit(&mut header);
            encode(&header, &claims(), &k.encoding).unwrap()
        };
        type Edit<'a> = &'a dyn Fn(&mut Header);
        let cases: [(&str, Edit); 4] = [
            ("jku", &|h| h.jku = Some("https://evil.example/jwks".into())),
            ("jwk", &|h| h.jwk = Some(k.jwks.keys[0].clone())),
            ("x5u", &|h| h.x5u = Some("https://evil.example/cert.pem".into())),
            ("x5c", &|h| h.x5c = Some(vec!["MIIB".into()])),
        ];
        for (name, edit) in cases {
            assert!(matches!(check(&with(edit), &k.jwks), Err(AssertionError::Refused(_))), "{name}");
        }
    }
}
