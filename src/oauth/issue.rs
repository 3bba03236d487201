//! Issuing a user's tokens for a grant: access token (its `jti` names the grant, so revocation
//! reaches userinfo), ID token when `openid` was granted, and the refresh token.

use super::access_token::{mint, AccessTokenRequest};
use super::token::{TokenResponse, TokenSettings};
use super::OAuthError;
use crate::domain::{Client, Grant, ScopeSet, User};
use crate::keys::KeyRing;
use crate::oidc::id_token;
use crate::secret::{random_token, sha256};
use crate::store::{GrantStore, UserStore};

/// What to do about the refresh token.
pub enum Refresh<'a> {
    None,
    /// Store a new one with these scopes (after a code exchange).
    Issue(&'a ScopeSet),
    /// Already stored by the rotation that used up the old one (same transaction).
    Rotated(String),
}

pub struct Issue<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub grant: &'a Grant,
    /// What the access token carries (may be narrower than the grant on refresh).
    pub access_scopes: &'a ScopeSet,
    pub refresh: Refresh<'a>,
}

/// The user a grant was given by, if they can still sign in; a disabled or deleted user's
/// grants yield nothing more (shared/security.md: disable ends the family).
pub async fn grant_user<S: UserStore>(store: &S, grant: &Grant) -> Result<User, OAuthError> {
    store
        .find_user(&grant.user_sub)
        .await?
        .filter(|u| u.is_enabled())
        .ok_or_else(|| OAuthError::invalid_grant("the user of this grant can no longer sign in"))
}

/// A new opaque refresh token: 256 random bits; only its SHA-256 is stored.
pub fn new_refresh_token() -> (String, [u8; 32]) {
    let token = random_token(32);
    let hash = sha256(&token);
    (token, hash)
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
            grant_id: Some(&issue.grant.id),
            subject: &issue.user.sub,
            audience,
            // OIDC Core §5.3: the token that granted `openid` may call userinfo.
            for_userinfo: issue.access_scopes.contains("openid"),
            client_id: &issue.client.id,
            scope: issue.access_scopes,
            roles,
        },
        now,
    )
    .map_err(|e| OAuthError::server_error(&e))?;

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

    let refresh_token = match issue.refresh {
        Refresh::None => None,
        Refresh::Rotated(token) => Some(token),
        Refresh::Issue(scopes) => {
            let (token, hash) = new_refresh_token();
            let expires_at = (now + settings.refresh_idle_secs).min(issue.grant.expires_at);
            store.insert_refresh_token(&hash, &issue.grant.id, scopes, now, expires_at).await?;
            Some(token)
        }
    };

    let mut response = TokenResponse::bearer(access.token, access.expires_in, issue.access_scopes.to_string());
    response.id_token = id_token;
    response.refresh_token = refresh_token;
    Ok(response)
}
