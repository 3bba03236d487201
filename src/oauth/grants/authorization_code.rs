//! The authorization code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.5–4.6).

use super::super::issue::{grant_user, issue_user_tokens, Issue, Refresh};
use super::super::params::Params;
use super::super::pkce;
use super::super::token::{TokenResponse, TokenSettings};
use super::super::OAuthError;
use crate::domain::{Client, CodeRedemption, GrantType};
use crate::keys::KeyRing;
use crate::secret::sha256;
use crate::store::{GrantStore, UserStore};

const MAX_CODE: usize = 256;

pub async fn grant<S: GrantStore + UserStore>(
    store: &S,
    keys: &KeyRing,
    settings: &TokenSettings,
    client: &Client,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::unauthorized_client("this client may not use the authorization_code grant"));
    }
    let code = params.require("code")?;
    if code.len() > MAX_CODE {
        return Err(OAuthError::invalid_grant("the authorization code is invalid"));
    }
    // The code is consumed here, atomically and bound to this client: a second redemption, in
    // parallel or later, finds it used (RFC 6749 §4.1.2: codes are single use).
    let (code, grant) = match store.redeem_code(&sha256(code), &client.id, now).await? {
        CodeRedemption::Redeemed { code, grant } => (code, grant),
        CodeRedemption::Replayed { grant_id } => {
            // RFC 6749 §4.1.2: a reused code SHOULD revoke every token issued from it.
            store.revoke_grant(&grant_id, now).await?;
            tracing::warn!(client_id = %client.id, grant_id = %grant_id, "authorization code replayed; grant revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; tokens issued from it are revoked",
            ));
        }
        CodeRedemption::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is invalid, expired, or was issued to another client",
            ))
        }
    };
    // RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request.
    match params.get("redirect_uri") {
        Some(uri) if uri != code.redirect_uri => {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"))
        }
        None if code.redirect_uri_sent => {
            return Err(OAuthError::invalid_grant("redirect_uri is required: the authorization request had one"))
        }
        _ => {}
    }
    // RFC 7636 §4.6. The code is already consumed, so a wrong guess kills it.
    let Some(verifier) = params.get("code_verifier") else {
        return Err(OAuthError::invalid_grant("code_verifier is required (PKCE)"));
    };
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let user = grant_user(store, &grant).await?;
    let refresh = grant.scopes.contains("offline_access") && client.allows_grant(GrantType::RefreshToken);
    issue_user_tokens(
        store,
        keys,
        settings,
        Issue {
            client,
            user: &user,
            grant: &grant,
            access_scopes: &grant.scopes,
            refresh: if refresh { Refresh::Issue(&grant.scopes) } else { Refresh::None },
        },
        now,
    )
    .await
}
