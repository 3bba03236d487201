//! Verifying Latchkey's own JWTs (userinfo, id_token_hint). RFC 8725 §3.1–3.2, §3.11: the
//! algorithm comes from our key, not the token; only RS256/ES256 with a `kid` we publish; no
//! key or key URL taken from the token (`jwk`, `jku`, `x5u`, `x5c`); `typ` separates access
//! tokens from ID tokens; nothing is ever fetched from a URL named in a token.

use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde_json::{Map, Value};

use crate::domain::SigningAlg;
use crate::keys::KeyRing;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An RFC 9068 access token: header `typ: at+jwt`.
    AccessToken,
    /// An ID token: never `at+jwt`. `allow_expired` for logout hints (RP-Initiated Logout §2).
    IdToken { allow_expired: bool },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token names a key by URL or embeds one; refused")]
    KeyInHeader,
    #[error("the token is not of the expected type")]
    WrongType,
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Longest token we parse; ours are well under 2 KiB.
const MAX_TOKEN: usize = 8 * 1024;

pub fn verify_jwt(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    expect: Expect,
) -> Result<Map<String, Value>, VerifyError> {
    if token.len() > MAX_TOKEN || token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let header = decode_header(token).map_err(|_| VerifyError::Malformed)?;
    let alg = match header.alg {
        Algorithm::RS256 => SigningAlg::Rs256,
        Algorithm::ES256 => SigningAlg::Es256,
        _ => return Err(VerifyError::Algorithm),
    };
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some() {
        return Err(VerifyError::KeyInHeader);
    }
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    let is_access = matches!(typ.as_deref(), Some("at+jwt") | Some("application/at+jwt"));
    match expect {
        Expect::AccessToken if !is_access => return Err(VerifyError::WrongType),
        Expect::IdToken { .. } if is_access => return Err(VerifyError::WrongType),
        _ => {}
    }
    let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
    let (key_alg, key) = keys.verifying_key(kid).ok_or(VerifyError::UnknownKey)?;
    if key_alg != alg {
        return Err(VerifyError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false; // audiences are checked by the caller where they matter
    validation.validate_nbf = true;
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    if let Expect::IdToken { allow_expired: true } = expect {
        validation.validate_exp = false;
    }
    decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| VerifyError::Invalid(e.to_string()))
}
