//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use super::super::issue::{grant_user, issue_user_tokens, new_refresh_token, Issue, Refresh};
use super::super::params::Params;
use super::super::token::{TokenResponse, TokenSettings};
use super::super::OAuthError;
use crate::domain::{Client, GrantType, RefreshRotation, ScopeSet};
use crate::keys::KeyRing;
use crate::secret::sha256;
use crate::store::{GrantStore, UserStore};

const MAX_TOKEN: usize = 256;

pub async fn grant<S: GrantStore + UserStore>(
    store: &S,
    keys: &KeyRing,
    settings: &TokenSettings,
    client: &Client,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::unauthorized_client("this client may not use the refresh_token grant"));
    }
    let token = params.require("refresh_token")?;
    if token.len() > MAX_TOKEN {
        return Err(OAuthError::invalid_grant("the refresh token is invalid"));
    }
    let hash = sha256(token);
    let requested =
        params.get("scope").map(ScopeSet::parse).transpose().map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    // RFC 6749 §6: a narrower scope is allowed; anything beyond the original is not. Checked
    // before rotation, so a refused request does not burn a good token.
    if let (Some(requested), Some(live_scopes)) =
        (&requested, store.live_refresh_token_scopes(&hash, &client.id, now).await?)
    {
        let wider: Vec<&str> = requested.not_in(&live_scopes).collect();
        if !wider.is_empty() {
            return Err(OAuthError::invalid_scope(format!("not granted originally: {}", wider.join(" "))));
        }
    }
    // The new token is stored in the same transaction that uses up the old one: one commit.
    let (new_token, new_hash) = new_refresh_token();
    let (grant, token_scopes) =
        match store.rotate_refresh_token(&hash, &new_hash, &client.id, now, settings.refresh_idle_secs).await? {
            RefreshRotation::Rotated { grant, scopes } => (grant, scopes),
            RefreshRotation::Reused { grant_id } => {
                // A rotated token came back: it was stolen, or a client raced itself. Either way
                // the whole family ends (RFC 9700 §4.14.2).
                store.revoke_grant(&grant_id, now).await?;
                tracing::warn!(client_id = %client.id, grant_id = %grant_id, "refresh token reused; grant revoked");
                return Err(OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"));
            }
            RefreshRotation::Invalid => {
                return Err(OAuthError::invalid_grant(
                    "the refresh token is invalid, expired, revoked, or was issued to another client",
                ))
            }
        };
    let access_scopes = match requested {
        None => token_scopes.clone(),
        // Re-checked against the rotated token's own scopes (the pre-check read may be stale).
        Some(requested) if requested.is_subset_of(&token_scopes) => requested,
        Some(_) => return Err(OAuthError::invalid_scope("the requested scope exceeds the original grant")),
    };
    let user = grant_user(store, &grant).await?;
    issue_user_tokens(
        store,
        keys,
        settings,
        Issue {
            client,
            user: &user,
            grant: &grant,
            access_scopes: &access_scopes,
            refresh: Refresh::Rotated(new_token),
        },
        now,
    )
    .await
}
