//! The token endpoint's core (RFC 6749 §3.2): authenticate the client, dispatch on grant type.

use serde::Serialize;

use super::access_token::AccessTokenSettings;
use super::client_auth::{authenticate, presented_client, ClientLookup};
use super::grants::client_credentials;
use super::params::Params;
use super::OAuthError;
use crate::keys::KeyRing;

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

impl TokenResponse {
    pub fn bearer(access_token: String, expires_in: i64, scope: String) -> Self {
        Self {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope,
        }
    }
}

/// What the token endpoint needs besides the request.
pub struct TokenContext<'a, L: ClientLookup> {
    pub clients: &'a L,
    pub keys: &'a KeyRing,
    pub access_tokens: &'a AccessTokenSettings,
    pub now: i64,
}

/// Handles one token request: `params` is the parsed body, `authorization` the raw header.
pub async fn exchange<L: ClientLookup>(
    ctx: TokenContext<'_, L>,
    params: &Params,
    authorization: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let presented = presented_client(authorization, params)?;
    let client = authenticate(ctx.clients, presented).await?;
    match grant_type {
        "client_credentials" => {
            client_credentials::grant(&client, params, ctx.keys, ctx.access_tokens, ctx.now)
        }
        // The resource owner password grant is deliberately absent (RFC 9700 §2.4: MUST NOT).
        other => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{}` is not supported here; supported: client_credentials",
            other.chars().take(64).collect::<String>()
        ))),
    }
}
