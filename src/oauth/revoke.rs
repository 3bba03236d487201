//! Token revocation (RFC 7009), issue 11 item 2: a client ends a token it was issued.
//!
//! - A refresh token ends its whole grant (RFC 7009 §2.1: the access tokens of the same grant
//!   SHOULD go too): the refresh family dies, and the grant's access tokens stop at userinfo and
//!   introspect `active: false`.
//! - A user's access token names its grant in its `jti` (`<grant>.<random>`): the grant ends.
//! - A client-credentials access token names no grant: its `jti` is remembered as revoked until
//!   the token's `exp`.
//! - Unknown, malformed, expired and already-revoked tokens answer 200 as well (RFC 7009 §2.2:
//!   "invalid tokens do not cause an error response"), and so does another client's token, which
//!   is left alone: a 4xx there would tell a client that it holds someone else's live token.
//!   (RFC 7009 §2.1 lets the server refuse that request; answering 200 and changing nothing keeps
//!   both promises: no revocation across clients, no token scanning.)

use super::client_auth::{authenticate, presented_client, AssertionKeys, ClientLookup};
use super::params::Params;
use super::verify::{verify_jwt, Expect};
use super::OAuthError;
use crate::keys::KeyRing;
use crate::secret::sha256;
use crate::store::RevocationStore;

/// Longest token looked up: our refresh tokens are 43 characters, access tokens under 2 KiB
/// (`verify_jwt` has its own bound).
const MAX_REFRESH_TOKEN: usize = 256;

/// What revocation needs besides the request.
pub struct RevocationContext<'a, L: ClientLookup + AssertionKeys, S: RevocationStore> {
    pub clients: &'a L,
    pub store: &'a S,
    pub keys: &'a KeyRing,
    pub issuer: &'a str,
    pub now: i64,
}

/// What a revocation request did (for the log; the answer is 200 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A live grant of the caller ended.
    Grant,
    /// A client-credentials access token of the caller is remembered as revoked.
    AccessToken,
    /// Nothing: unknown, invalid, expired, already revoked, or another client's token.
    Nothing,
}

/// Whether `token` has the shape of a JWT (our access tokens); anything else can only be one of
/// our opaque refresh tokens.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Handles one revocation request: authenticates the client exactly as the token endpoint does
/// (RFC 7009 §2.1), then revokes what the token names if it is the caller's.
pub async fn revoke<L: ClientLookup + AssertionKeys, S: RevocationStore>(
    ctx: RevocationContext<'_, L, S>,
    params: &Params,
    authorization: Option<&str>,
) -> Result<Revoked, OAuthError> {
    let client = authenticate(ctx.clients, presented_client(authorization, params)?, ctx.now).await?;
    // RFC 7009 §2.1: `token` is REQUIRED; its absence is invalid_request (§2.2.1).
    let token = params.require("token")?;
    // RFC 7009 §2.1: `token_type_hint` is only a hint, and a wrong one must not fail the request.
    // Our access tokens (JWTs) and refresh tokens (opaque) can be told apart by their shape, so
    // the hint never needs to be read, and `unsupported_token_type` is never sent: both kinds
    // can be revoked.
    if looks_like_jwt(token) {
        revoke_access_token(&ctx, &client.id, token).await
    } else if token.len() <= MAX_REFRESH_TOKEN {
        let revoked = ctx.store.revoke_grant_of_refresh_token(&sha256(token), &client.id, ctx.now).await?;
        Ok(if revoked { Revoked::Grant } else { Revoked::Nothing })
    } else {
        Ok(Revoked::Nothing)
    }
}

async fn revoke_access_token<L: ClientLookup + AssertionKeys, S: RevocationStore>(
    ctx: &RevocationContext<'_, L, S>,
    client_id: &str,
    token: &str,
) -> Result<Revoked, OAuthError> {
    // A token that does not verify (foreign, tampered, expired) is no live token of ours:
    // nothing to revoke.
    let Ok(claims) = verify_jwt(ctx.keys, token, ctx.issuer, Expect::AccessToken) else {
        return Ok(Revoked::Nothing);
    };
    if claims.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
        return Ok(Revoked::Nothing);
    }
    let Some(jti) = claims.get("jti").and_then(|v| v.as_str()) else {
        return Ok(Revoked::Nothing);
    };
    match jti.split_once('.') {
        // A user's token: its grant ends (the store checks again that the grant is the caller's).
        Some((grant_id, _)) => {
            let revoked = ctx.store.revoke_grant_of_client(grant_id, client_id, ctx.now).await?;
            Ok(if revoked { Revoked::Grant } else { Revoked::Nothing })
        }
        None => {
            let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(ctx.now);
            ctx.store.revoke_access_token(jti, client_id, ctx.now, exp).await?;
            Ok(Revoked::AccessToken)
        }
    }
}
