//! The token endpoint's core (RFC 6749 §3.2): authenticate the client, dispatch on grant type.

use serde::Serialize;

use super::access_token::AccessTokenSettings;
use super::client_auth::{authenticate, presented_client, AssertionKeys, ClientLookup};
use super::grants::{authorization_code, client_credentials, refresh_token};
use super::params::Params;
use super::OAuthError;
use crate::audit::Origin;
use crate::keys::{KeyRing, MasterKey};
use crate::oidc::id_token::IdTokenSettings;
use crate::store::{AuditStore, GrantStore, UserStore};

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl TokenResponse {
    pub fn bearer(access_token: String, expires_in: i64, scope: String) -> Self {
        Self { access_token, token_type: "Bearer", expires_in, scope, refresh_token: None, id_token: None }
    }
}

/// Lifetimes and algorithms of everything the token endpoint issues.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub access: AccessTokenSettings,
    pub id: IdTokenSettings,
    pub refresh_idle_secs: i64,
    pub refresh_absolute_secs: i64,
    /// `refresh_token_reuse_grace`: how long after a rotation a second presentation of the old
    /// token is answered with the same successor (0: never; issue 11 item 4).
    pub refresh_reuse_grace_secs: i64,
}

/// What the token endpoint needs besides the request.
pub struct TokenContext<'a, L: ClientLookup + AssertionKeys, S: GrantStore + UserStore + AuditStore> {
    pub clients: &'a L,
    pub store: &'a S,
    pub keys: &'a KeyRing,
    /// Seals a rotated refresh token's successor for the reuse grace window.
    pub master: &'a MasterKey,
    /// Who is asking, for the audit trail (refresh token reuse).
    pub origin: &'a Origin,
    pub settings: &'a TokenSettings,
    pub now: i64,
}

/// Handles one token request: `params` is the parsed body, `authorization` the raw header.
pub async fn exchange<L: ClientLookup + AssertionKeys, S: GrantStore + UserStore + AuditStore>(
    ctx: TokenContext<'_, L, S>,
    params: &Params,
    authorization: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let presented = presented_client(authorization, params)?;
    let client = authenticate(ctx.clients, presented, ctx.now).await?;
    let issued = match grant_type {
        "client_credentials" => client_credentials::grant(&client, params, ctx.keys, &ctx.settings.access, ctx.now),
        "authorization_code" => {
            authorization_code::grant(ctx.store, ctx.keys, ctx.settings, &client, params, ctx.now).await
        }
        "refresh_token" => refresh_token::grant(&ctx, &client, params).await,
        // The resource owner password grant is deliberately absent (RFC 9700 §2.4: MUST NOT).
        other => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{}` is not supported here; supported: authorization_code, refresh_token, client_credentials",
            other.chars().take(64).collect::<String>()
        ))),
    }?;
    crate::metrics::count_token(grant_type, &client.id);
    Ok(issued)
}
