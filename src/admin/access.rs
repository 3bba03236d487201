//! Who may call the admin API (issue 13 item 1): a service holding a Latchkey access token from
//! the client credentials grant, with scope `latchkey:admin` (read and write) or
//! `latchkey:admin.read` (read only), made for the admin API's own audience. Nothing else gets
//! in: an ID token, a user's token, another API's token, a token of a disabled or deleted client
//! or of a client no longer registered for the scope, a revoked or expired one.
//!
//! The answers follow RFC 6750 §3.1: no token is 401 with a bare challenge, a bad token 401
//! `invalid_token`, a good token without the needed scope 403 `insufficient_scope`.

use serde_json::{Map, Value};

use crate::domain::{ADMIN_READ_SCOPE, ADMIN_SCOPE};
use crate::keys::KeyRing;
use crate::oauth::grants::client_credentials::client_subject;
use crate::oauth::verify::{verify_jwt, Expect};
use crate::store::{ClientStore, RevocationStore, StoreError};

/// The admin API's audience: its base URL, as the UserInfo endpoint's is its own URL.
pub fn admin_audience(issuer: &str) -> String {
    format!("{}/admin/v1", issuer.trim_end_matches('/'))
}

/// What the operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// The client acting through the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCaller {
    pub client_id: String,
    pub can_write: bool,
}

/// Why a request was turned away (RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No bearer token at all: 401 with a challenge and no error code.
    #[error("this API needs a bearer access token with scope {ADMIN_SCOPE} or {ADMIN_READ_SCOPE}")]
    NoToken,
    /// 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`; names the scope the operation needs.
    #[error("this operation needs scope {0}")]
    InsufficientScope(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything the check reads.
pub struct AccessContext<'a, S: ClientStore + RevocationStore> {
    pub keys: &'a KeyRing,
    pub store: &'a S,
    pub issuer: &'a str,
    pub now: i64,
}

fn audience_is(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(one)) => one == audience,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// Checks a bearer token (the value after `Bearer `) for an operation that needs `need`.
pub async fn authorize<S: ClientStore + RevocationStore>(
    ctx: &AccessContext<'_, S>,
    bearer: Option<&str>,
    need: Need,
) -> Result<AdminCaller, Refusal> {
    let token = bearer.ok_or(Refusal::NoToken)?;
    // Our keys, our issuer, `typ: at+jwt` (RFC 8725 §3.11: an ID token is never accepted).
    let claims = verify_jwt(ctx.keys, token, ctx.issuer, Expect::AccessToken)
        .map_err(|_| Refusal::InvalidToken("the access token is malformed, not ours or not an access token"))?;
    // Our own clock, no skew: an expired token is expired here.
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp <= ctx.now) {
        return Err(Refusal::InvalidToken("the access token has expired"));
    }
    if !audience_is(&claims, &admin_audience(ctx.issuer)) {
        return Err(Refusal::InvalidToken("the access token is not meant for the admin API"));
    }
    let Some(client_id) = claims.get("client_id").and_then(Value::as_str) else {
        return Err(Refusal::InvalidToken("the access token names no client"));
    };
    // A service acting for itself (client credentials), never a user's token.
    if claims.get("sub").and_then(Value::as_str) != Some(client_subject(client_id).as_str()) {
        return Err(Refusal::InvalidToken("the admin API takes client credentials tokens only"));
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Err(Refusal::InvalidToken("the access token has no jti"));
    };
    if ctx.store.access_token_is_revoked(jti).await? {
        return Err(Refusal::InvalidToken("the access token was revoked"));
    }
    // The client as it is now, from the database (not the replica's cache): disabling an admin
    // client or taking its scope away takes effect on the next request.
    let Some(client) = ctx.store.find_client(client_id).await?.filter(|c| c.is_enabled()) else {
        return Err(Refusal::InvalidToken("the client of this access token is disabled or deleted"));
    };
    let granted: Vec<&str> =
        claims.get("scope").and_then(Value::as_str).map(|s| s.split(' ').collect()).unwrap_or_default();
    let holds = |scope: &str| granted.contains(&scope) && client.scopes.contains(scope);
    let can_write = holds(ADMIN_SCOPE);
    let can_read = can_write || holds(ADMIN_READ_SCOPE);
    match need {
        Need::Write if !can_write => Err(Refusal::InsufficientScope(ADMIN_SCOPE)),
        Need::Read if !can_read => Err(Refusal::InsufficientScope(ADMIN_READ_SCOPE)),
        _ => Ok(AdminCaller { client_id: client_id.to_string(), can_write }),
    }
}
