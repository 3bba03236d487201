//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2),
//! and a short grace window for concurrent use that keeps reuse detection (issue 11 item 4).

use super::super::client_auth::{AssertionKeys, ClientLookup};
use super::super::issue::{grant_user, issue_user_tokens, new_refresh_token, Issue, Refresh};
use super::super::params::Params;
use super::super::token::{TokenContext, TokenResponse};
use super::super::OAuthError;
use crate::audit::{self, AuditEvent};
use crate::domain::{Client, GrantType, RefreshRotation, ScopeSet, Successor};
use crate::keys::seal::{open_successor, seal_successor};
use crate::secret::sha256;
use crate::store::{AuditStore, GrantStore, UserStore};

const MAX_TOKEN: usize = 256;

pub async fn grant<L: ClientLookup + AssertionKeys, S: GrantStore + UserStore + AuditStore>(
    ctx: &TokenContext<'_, L, S>,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let (store, settings, now) = (ctx.store, ctx.settings, ctx.now);
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
    // With the grace window on, it is stored sealed too (master key; the associated data names
    // this token's hash), so that a second presentation of this token in the window can get
    // the same one back (issue 11 item 4).
    let (new_token, new_hash) = new_refresh_token();
    let grace = settings.refresh_reuse_grace_secs;
    let sealed = if grace > 0 {
        Some(seal_successor(ctx.master, &hash, &new_hash, &new_token).map_err(|e| OAuthError::server_error(&e))?)
    } else {
        None
    };
    let successor = Successor { hash: new_hash, sealed, sealed_until: now + grace };
    let (grant, token_scopes, refresh_token) = match store
        .rotate_refresh_token(&hash, &successor, &client.id, now, settings.refresh_idle_secs)
        .await?
    {
        RefreshRotation::Rotated { grant, scopes } => (grant, scopes, new_token),
        RefreshRotation::Repeated { grant, scopes, successor_hash, sealed } => {
            // Issue 11 item 4: this token was rotated moments ago and its successor is
            // still unused — a second tab, or a retry whose answer was lost. Answer with
            // that same successor (the family does not branch) and fresh access and ID
            // tokens. Whoever uses the successor first makes every other holder's next
            // use reuse.
            match open_successor(ctx.master, &hash, &successor_hash, &sealed) {
                Ok(successor) => (grant, scopes, successor),
                Err(e) => {
                    // Only another master key or an altered row does this; the family is
                    // left alone (the first caller holds its successor).
                    tracing::error!(client_id = %client.id, grant_id = %grant.id, error = %e,
                            "sealed refresh token successor does not open");
                    return Err(OAuthError::invalid_grant("the refresh token was already used"));
                }
            }
        }
        RefreshRotation::Reused { grant_id, user_sub, successor_used } => {
            // A rotated token came back outside the grace rules (window passed or off, or
            // its successor already used): it was stolen, or a client raced itself. Either
            // way the whole family ends (RFC 9700 §4.14.2), and the audit trail says so
            // once, from the request that ended it.
            let revoked = store.revoke_grant(&grant_id, now).await?;
            tracing::warn!(client_id = %client.id, grant_id = %grant_id, revoked, "refresh token reused; grant revoked");
            if revoked {
                let event = AuditEvent::new(audit::kind::REFRESH_TOKEN_REUSE_DETECTED, now, ctx.origin)
                    .client(&client.id)
                    .user(&user_sub)
                    .detail(serde_json::json!({ "grant_id": grant_id, "successor_used": successor_used }));
                audit::record(store, event).await;
            }
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
        ctx.keys,
        settings,
        Issue {
            client,
            user: &user,
            grant: &grant,
            access_scopes: &access_scopes,
            refresh: Refresh::Rotated(refresh_token),
        },
        now,
    )
    .await
}
