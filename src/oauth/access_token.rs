//! JWT access tokens (RFC 9068).

use serde::Serialize;

use crate::domain::{ScopeSet, SigningAlg};
use crate::keys::{KeyRing, KeyRingError};
use crate::secret::random_token;

/// RFC 9068 §2.1: the header `typ` that tells an access token from an ID token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The settings that shape every access token.
#[derive(Clone, Debug)]
pub struct AccessTokenSettings {
    pub issuer: String,
    pub default_audience: String,
    pub ttl_secs: i64,
    pub alg: SigningAlg,
}

/// RFC 9068 §2.2 claims.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub client_id: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub roles: &'a [String],
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

pub struct MintedAccessToken {
    pub token: String,
    pub jti: String,
    pub expires_in: i64,
    pub expires_at: i64,
}

pub struct AccessTokenRequest<'a> {
    /// The grant a user's token is issued under: it leads the `jti` (`<grant>.<random>`), so
    /// userinfo can tell a revoked grant's tokens without a database write per token.
    pub grant_id: Option<&'a str>,
    pub subject: &'a str,
    pub audience: &'a str,
    pub client_id: &'a str,
    pub scope: &'a ScopeSet,
    pub roles: &'a [String],
}

/// Signs an access token with the active key for the configured algorithm.
pub fn mint(
    keys: &KeyRing,
    settings: &AccessTokenSettings,
    request: AccessTokenRequest<'_>,
    now: i64,
) -> Result<MintedAccessToken, KeyRingError> {
    let jti = match request.grant_id {
        Some(grant) => format!("{grant}.{}", random_token(16)),
        None => random_token(16),
    };
    let claims = AccessTokenClaims {
        iss: &settings.issuer,
        sub: request.subject,
        aud: request.audience,
        client_id: request.client_id,
        scope: request.scope.to_string(),
        roles: request.roles,
        iat: now,
        exp: now + settings.ttl_secs,
        // 128 random bits: unique per token, so a resource server can detect replays if it wants.
        jti: jti.clone(),
    };
    let token = keys.sign(settings.alg, ACCESS_TOKEN_TYP, &claims)?;
    Ok(MintedAccessToken { token, jti, expires_in: settings.ttl_secs, expires_at: now + settings.ttl_secs })
}
