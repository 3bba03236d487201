//! The UserInfo endpoint's core (OIDC Core §5.3): a valid, live access token with `openid`
//! gets the claims its scopes release.

use serde_json::{Map, Value};

use super::claims::user_claims;
use crate::domain::ScopeSet;
use crate::keys::KeyRing;
use crate::oauth::verify::{verify_jwt, Expect};
use crate::oauth::{Challenge, ErrorCode, OAuthError};
use crate::store::{GrantStore, UserStore};

/// Latchkey's audience for its own UserInfo endpoint: the endpoint's URL (as Auth0 and others
/// name theirs), distinct from the issuer that `default_audience` falls back to, so a service's
/// token for the default audience is never one for userinfo.
pub fn userinfo_audience(issuer: &str) -> String {
    format!("{issuer}{}", crate::http::paths::USERINFO)
}

/// True when the `aud` claim (a string or an array, RFC 7519 §4.1.3) names `audience`.
fn audience_includes(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(one)) => one == audience,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

pub async fn userinfo<S: GrantStore + UserStore>(
    store: &S,
    keys: &KeyRing,
    issuer: &str,
    token: &str,
    now: i64,
) -> Result<Map<String, Value>, OAuthError> {
    let claims =
        verify_jwt(keys, token, issuer, Expect::AccessToken).map_err(|e| OAuthError::invalid_token(e.to_string()))?;
    let scopes = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|_| OAuthError::invalid_token("the token's scope is malformed"))?
        .unwrap_or_default();
    // RFC 6750 §3.1: a valid token without the needed scope is 403 insufficient_scope.
    if !scopes.contains("openid") {
        return Err(OAuthError::new(ErrorCode::InsufficientScope, "the access token was not granted the openid scope")
            .with_challenge(Challenge::Bearer));
    }
    // RFC 9068 §4 / RFC 8725 §3.9: a resource server accepts only tokens meant for it. A token
    // for another API must not be replayable here by whoever holds it (issue 9 item 5).
    if !audience_includes(&claims, &userinfo_audience(issuer)) {
        return Err(OAuthError::invalid_token("the access token is not meant for the userinfo endpoint"));
    }
    // A user's token names its grant in the jti (`<grant>.<random>`). Tokens of revoked grants
    // (logout, replayed code, reused refresh token, password change) stop working here at once,
    // though their signature is still good. Tokens without a grant were not issued to a user.
    let grant_id = claims
        .get("jti")
        .and_then(Value::as_str)
        .and_then(|jti| jti.split_once('.'))
        .map(|(grant, _)| grant)
        .ok_or_else(|| OAuthError::invalid_token("the access token was not issued to a user"))?;
    if !store.grant_is_live(grant_id, now).await? {
        return Err(OAuthError::invalid_token("the access token was revoked"));
    }
    let sub =
        claims.get("sub").and_then(Value::as_str).ok_or_else(|| OAuthError::invalid_token("the token has no sub"))?;
    let user = store
        .find_user(sub)
        .await?
        .filter(|u| u.is_enabled())
        .ok_or_else(|| OAuthError::invalid_token("the user can no longer sign in"))?;
    Ok(user_claims(&user, &scopes))
}
