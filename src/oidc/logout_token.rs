//! Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4): a JWT signed like the app's
//! ID tokens, saying that the user's session at the app has ended.

use serde_json::{json, Map, Value};

use crate::domain::SigningAlg;
use crate::keys::{KeyRing, KeyRingError};

/// §2.4: the member of `events` that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// §2.4 recommends a short life; the app checks `iat`, and a retry mints a fresh token.
pub const LOGOUT_TOKEN_TTL_SECS: i64 = 120;
/// §2.4: explicit typing, so a logout token can't pass for an ID token or the reverse.
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// What a logout token says.
pub struct LogoutClaims<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    pub sid: Option<&'a str>,
    pub jti: &'a str,
}

/// §2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `events`, and `sub` and/or `sid` (both when the
/// grant has a session); never `nonce` (§2.4: it would let it pass for an ID token).
pub fn claims(c: &LogoutClaims<'_>, now: i64) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), Value::from(c.issuer));
    claims.insert("aud".into(), Value::from(c.client_id));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + LOGOUT_TOKEN_TTL_SECS));
    claims.insert("jti".into(), Value::from(c.jti));
    claims.insert("sub".into(), Value::from(c.sub));
    if let Some(sid) = c.sid {
        claims.insert("sid".into(), Value::from(sid));
    }
    claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
    claims
}

pub fn mint(keys: &KeyRing, alg: SigningAlg, c: &LogoutClaims<'_>, now: i64) -> Result<String, KeyRingError> {
    keys.sign(alg, LOGOUT_TOKEN_TYP, &claims(c, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_token_has_the_events_claim_and_no_nonce() {
        let c = LogoutClaims { issuer: "https://id.example", client_id: "app", sub: "u1", sid: Some("s1"), jti: "j" };
        let claims = claims(&c, 1000);
        assert_eq!(claims["events"], json!({ "http://schemas.openid.net/event/backchannel-logout": {} }));
        assert_eq!((claims["iat"].as_i64(), claims["exp"].as_i64()), (Some(1000), Some(1120)));
        assert_eq!((claims["sub"].as_str(), claims["sid"].as_str()), (Some("u1"), Some("s1")));
        assert!(!claims.contains_key("nonce"));
        let without_sid = LogoutClaims { sid: None, ..c };
        assert!(!super::claims(&without_sid, 1000).contains_key("sid"));
    }
}
