//! Token introspection (RFC 7662), issue 11 item 3: a resource server asks whether a token is
//! live and what it carries.
//!
//! Who may ask (RFC 7662 §2.1, §4: the endpoint requires authorization, against token
//! scanning): a confidential client, authenticated as at the token endpoint.
//! - A client registered with `--introspect` (a resource server) may introspect access tokens
//!   meant for it: tokens whose `aud` includes its registered `audience` or its `client_id`.
//!   Any other token, valid or not, is `{"active": false}`.
//! - Any confidential client may introspect its own refresh tokens (active while they could
//!   still be used at the token endpoint).
//! - A client without `--introspect` that sends an access token gets 403 `unauthorized_client`;
//!   failed authentication is 401 `invalid_client` (RFC 7662 §2.3).
//!
//! `active: false` says nothing more (RFC 7662 §2.2): expired, revoked (grant revoked, or the
//! client-credentials token's jti revoked, or its client disabled), another issuer's, tampered,
//! malformed, an ID token, or not meant for the caller all look the same.

use serde_json::{json, Map, Value};

use super::client_auth::{authenticate, presented_client, AssertionKeys, ClientLookup};
use super::params::Params;
use super::revoke::looks_like_jwt;
use super::verify::{verify_jwt, Expect};
use super::{ErrorCode, OAuthError};
use crate::domain::{Client, ClientKind};
use crate::keys::KeyRing;
use crate::secret::sha256;
use crate::store::{GrantStore, RevocationStore};

const MAX_REFRESH_TOKEN: usize = 256;

/// Claims of an access token an active answer repeats (RFC 7662 §2.2 names them all; `roles` is
/// ours, RFC 9068 §7.2.1.1).
const ACCESS_TOKEN_CLAIMS: [&str; 9] = ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "roles"];

pub struct IntrospectionContext<'a, L: ClientLookup + AssertionKeys, S: GrantStore + RevocationStore> {
    pub clients: &'a L,
    pub store: &'a S,
    pub keys: &'a KeyRing,
    pub issuer: &'a str,
    pub now: i64,
}

/// The answer for a token that is not active (RFC 7662 §2.2): nothing else is said.
pub fn inactive() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("active".into(), Value::Bool(false));
    map
}

/// Handles one introspection request; the map is the JSON answer.
pub async fn introspect<L: ClientLookup + AssertionKeys, S: GrantStore + RevocationStore>(
    ctx: IntrospectionContext<'_, L, S>,
    params: &Params,
    authorization: Option<&str>,
) -> Result<Map<String, Value>, OAuthError> {
    let client = authenticate(ctx.clients, presented_client(authorization, params)?, ctx.now).await?;
    if client.kind != ClientKind::Confidential {
        // RFC 7662 §2.1: the caller must be authorized; a public client proves nothing.
        return Err(OAuthError::invalid_client("introspection needs a confidential client's credentials"));
    }
    // RFC 7662 §2.1: `token` is REQUIRED. `token_type_hint` is optional and only a hint; our
    // two kinds of token can be told apart by their shape, so it is not needed.
    let token = params.require("token")?;
    if looks_like_jwt(token) {
        if !client.introspect {
            return Err(OAuthError::new(
                ErrorCode::NotPermitted,
                "this client may not introspect access tokens (register it with --introspect)",
            ));
        }
        access_token(&ctx, &client, token).await
    } else if token.len() <= MAX_REFRESH_TOKEN {
        refresh_token(&ctx, &client, token).await
    } else {
        Ok(inactive())
    }
}

/// True when `aud` (a string or an array, RFC 7519 §4.1.3) names one of `audiences`.
fn audience_includes_any(claims: &Map<String, Value>, audiences: &[&str]) -> bool {
    match claims.get("aud") {
        Some(Value::String(one)) => audiences.contains(&one.as_str()),
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).any(|a| audiences.contains(&a)),
        _ => false,
    }
}

async fn access_token<L: ClientLookup + AssertionKeys, S: GrantStore + RevocationStore>(
    ctx: &IntrospectionContext<'_, L, S>,
    caller: &Client,
    token: &str,
) -> Result<Map<String, Value>, OAuthError> {
    // The same verifier as userinfo (RFC 8725): our keys only, our issuer, `typ: at+jwt`.
    let Ok(claims) = verify_jwt(ctx.keys, token, ctx.issuer, Expect::AccessToken) else {
        return Ok(inactive());
    };
    // verify_jwt allows 30 s of clock skew for tokens a relying party checks; here the clock
    // is ours: a token past its `exp` is no longer active (RFC 7662 §2.2).
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp <= ctx.now) {
        return Ok(inactive());
    }
    // RFC 7662 §4: a resource server learns only about tokens meant for it.
    let mut audiences = vec![caller.id.as_str()];
    if let Some(audience) = caller.audience.as_deref() {
        audiences.push(audience);
    }
    if !audience_includes_any(&claims, &audiences) {
        return Ok(inactive());
    }
    // A disabled or deleted client's tokens are no longer good (a user token's grant was revoked
    // with the client; a client-credentials token has no grant, so this is what ends it).
    let Some(owner) = claims.get("client_id").and_then(Value::as_str) else { return Ok(inactive()) };
    if !ctx.clients.lookup_client(owner).await?.is_some_and(|c| c.is_enabled()) {
        return Ok(inactive());
    }
    // Revocation state: a user's token names its grant in its jti (`<grant>.<random>`), the
    // check userinfo makes; a client-credentials token is looked up by its jti.
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else { return Ok(inactive()) };
    let live = match jti.split_once('.') {
        Some((grant_id, _)) => ctx.store.grant_is_live(grant_id, ctx.now).await?,
        None => !ctx.store.access_token_is_revoked(jti).await?,
    };
    if !live {
        return Ok(inactive());
    }
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    for name in ACCESS_TOKEN_CLAIMS {
        if let Some(value) = claims.get(name) {
            answer.insert(name.into(), value.clone());
        }
    }
    // RFC 7662 §2.2: token_type as in RFC 6749 §5.1. `token_use` (as Ory Hydra names it) tells
    // access tokens from refresh tokens.
    answer.insert("token_type".into(), json!("Bearer"));
    answer.insert("token_use".into(), json!("access_token"));
    Ok(answer)
}

async fn refresh_token<L: ClientLookup + AssertionKeys, S: GrantStore + RevocationStore>(
    ctx: &IntrospectionContext<'_, L, S>,
    caller: &Client,
    token: &str,
) -> Result<Map<String, Value>, OAuthError> {
    // Only the caller's own refresh tokens: another client's looks like an unknown one.
    let Some(live) = ctx.store.live_refresh_token(&sha256(token), &caller.id, ctx.now).await? else {
        return Ok(inactive());
    };
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    if !live.scopes.is_empty() {
        answer.insert("scope".into(), json!(live.scopes.to_string()));
    }
    answer.insert("client_id".into(), json!(live.client_id));
    answer.insert("sub".into(), json!(live.user_sub));
    answer.insert("iss".into(), json!(ctx.issuer));
    answer.insert("exp".into(), json!(live.expires_at));
    answer.insert("iat".into(), json!(live.created_at));
    // A refresh token is not presented to resource servers, so it has no RFC 6749 §5.1 type.
    answer.insert("token_use".into(), json!("refresh_token"));
    Ok(answer)
}
