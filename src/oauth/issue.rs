//! Issuing a user's tokens for a grant: access token (tracked by `jti` so revocation reaches
//! userinfo), ID token when `openid` was granted, and a new refresh token when asked.

use super::access_token::{mint, AccessTokenRequest};
use super::token::{TokenResponse, TokenSettings};
use super::OAuthError;
use crate::domain::{Client, Grant, ScopeSet, User};
use crate::keys::KeyRing;
use crate::oidc::id_token;
use crate::secret::{random_token, sha256};
use crate::store::GrantStore;

pub struct Issue<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub grant: &'a Grant,
    /// What the access token carries (may be narrower than the grant on refresh).
    pub access_scopes: &'a ScopeSet,
    /// The scopes of a new refresh token, when one is to be issued (RFC 6749 §6: identical to
    /// the one it replaces).
    pub refresh_scopes: Option<&'a ScopeSet>,
}

pub async fn issue_user_tokens<S: GrantStore>(
    store: &S,
    keys: &KeyRing,
    settings: &TokenSettings,
    issue: Issue<'_>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let no_roles: [String; 0] = [];
    let roles: &[String] = if issue.access_scopes.contains("roles") { &issue.user.roles } else { &no_roles };
    let audience = issue.client.audience.as_deref().unwrap_or(&settings.access.default_audience);
    let access = mint(
        keys,
        &settings.access,
        AccessTokenRequest {
            subject: &issue.user.sub,
            audience,
            client_id: &issue.client.id,
            scope: issue.access_scopes,
            roles,
        },
        now,
    )
    .map_err(|e| OAuthError::server_error(&e))?;
    store.record_access_token(&access.jti, &issue.grant.id, access.expires_at).await?;

    let id_token = if issue.access_scopes.contains("openid") {
        // A client may have registered ES256 for its ID tokens; RS256 otherwise.
        let id_settings = id_token::IdTokenSettings {
            alg: issue.client.id_token_alg.unwrap_or(settings.id.alg),
            ..settings.id.clone()
        };
        let token =
            id_token::mint(keys, &id_settings, issue.user, issue.grant, issue.access_scopes, &access.token, now)
                .map_err(|e| OAuthError::server_error(&e))?;
        Some(token)
    } else {
        None
    };

    let refresh_token = match issue.refresh_scopes {
        Some(scopes) => {
            let token = random_token(32);
            let expires_at = (now + settings.refresh_idle_secs).min(issue.grant.expires_at);
            store.insert_refresh_token(&sha256(&token), &issue.grant.id, scopes, now, expires_at).await?;
            Some(token)
        }
        None => None,
    };

    let mut response = TokenResponse::bearer(access.token, access.expires_in, issue.access_scopes.to_string());
    response.id_token = id_token;
    response.refresh_token = refresh_token;
    Ok(response)
}
