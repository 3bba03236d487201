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
    /// Latchkey's own audience for its UserInfo endpoint (the endpoint's URL): a user's token
    /// from a flow that granted `openid` carries it beside the API audience, and `/userinfo`
    /// accepts no token without it (issue 9 item 5).
    pub userinfo_audience: String,
    /// The admin API's own audience (its base URL, `{issuer}/admin/v1`): the only `aud` of a
    /// token that carries an admin scope, and the only one the admin API accepts (issue 13).
    pub admin_audience: String,
    pub ttl_secs: i64,
    pub alg: SigningAlg,
}

/// RFC 9068 §2.2 claims.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: Audience<'a>,
    pub client_id: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub roles: &'a [String],
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// RFC 7519 §4.1.3 / RFC 9068 §2.2: `aud` is one string, or an array when the token is meant
/// for more than one recipient.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Audience<'a> {
    One(&'a str),
    Two([&'a str; 2]),
}

pub struct MintedAccessToken {
    pub token: String,
    pub jti: String,
    pub expires_in: i64,
}

pub struct AccessTokenRequest<'a> {
    /// The grant a user's token is issued under: it leads the `jti` (`<grant>.<random>`), so
    /// userinfo can tell a revoked grant's tokens without a database write per token.
    pub grant_id: Option<&'a str>,
    pub subject: &'a str,
    /// The API the token is for (the client's audience, or `default_audience`).
    pub audience: &'a str,
    /// Also for Latchkey's UserInfo endpoint: a user's token whose scope has `openid`.
    pub for_userinfo: bool,
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
    let aud = if request.for_userinfo && request.audience != settings.userinfo_audience {
        Audience::Two([request.audience, &settings.userinfo_audience])
    } else if request.for_userinfo {
        Audience::One(&settings.userinfo_audience)
    } else {
        Audience::One(request.audience)
    };
    let claims = AccessTokenClaims {
        iss: &settings.issuer,
        sub: request.subject,
        aud,
        client_id: request.client_id,
        scope: request.scope.to_string(),
        roles: request.roles,
        iat: now,
        exp: now + settings.ttl_secs,
        // 128 random bits: unique per token, so a resource server can detect replays if it wants.
        jti: jti.clone(),
    };
    let token = keys.sign(settings.alg, ACCESS_TOKEN_TYP, &claims)?;
    Ok(MintedAccessToken { token, jti, expires_in: settings.ttl_secs })
}
