//! The client credentials grant (RFC 6749 §4.4).

use super::super::access_token::{mint, AccessTokenRequest, AccessTokenSettings};
use super::super::params::Params;
use super::super::token::TokenResponse;
use super::super::OAuthError;
use crate::domain::{Client, ClientKind, GrantType, ScopeSet};
use crate::keys::KeyRing;

/// The `sub` of a token issued to a client acting for itself. User subjects are base64url and
/// never contain `:`, so this can never equal a user's `sub` (RFC 9068 §2.2 / §5).
pub fn client_subject(client_id: &str) -> String {
    format!("client:{client_id}")
}

pub fn grant(
    client: &Client,
    params: &Params,
    keys: &KeyRing,
    settings: &AccessTokenSettings,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    // RFC 6749 §4.4: only confidential clients, and only those registered for this grant.
    if client.kind != ClientKind::Confidential || !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client("this client is not allowed to use the client_credentials grant"));
    }
    // RFC 6749 §3.3: no scope requested → the client's pre-defined default (all it may have).
    let scope = match params.get("scope") {
        None => client.scopes.clone(),
        Some(raw) => {
            let requested = ScopeSet::parse(raw).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            let refused: Vec<&str> = requested.not_in(&client.scopes).collect();
            if !refused.is_empty() {
                return Err(OAuthError::invalid_scope(format!("this client may not request: {}", refused.join(" "))));
            }
            requested
        }
    };
    // A token for the admin API carries its scopes alone and is meant for it alone, so it is
    // worth nothing at any other resource server, and no other token is worth anything there.
    let audience = if crate::domain::has_admin_scope(&scope) {
        if let Some(other) = scope.iter().find(|s| !crate::domain::is_admin_scope(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "the admin API's scopes are granted alone: request them without `{other}`"
            )));
        }
        settings.admin_audience.as_str()
    } else {
        client.audience.as_deref().unwrap_or(&settings.default_audience)
    };
    let subject = client_subject(&client.id);
    let minted = mint(
        keys,
        settings,
        AccessTokenRequest {
            grant_id: None,
            subject: &subject,
            audience,
            // A service's token names no user: userinfo has nothing to answer it with.
            for_userinfo: false,
            client_id: &client.id,
            scope: &scope,
            roles: &client.roles,
        },
        now,
    )
    .map_err(|e| OAuthError::server_error(&e))?;
    // RFC 6749 §4.4.3: a refresh token SHOULD NOT be included.
    Ok(TokenResponse::bearer(minted.token, minted.expires_in, scope.to_string()))
}
