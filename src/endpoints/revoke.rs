use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_request::{client_authenticated, Cors};
use crate::http::client_ip::Requester;
use crate::http::error::no_store;
use crate::oauth::revoke::{revoke as revoke_token, RevocationContext};
use crate::state::{unix_now, AppState};

/// `POST /revoke` (RFC 7009 §2). 200 with an empty body whenever the client authenticated and
/// sent a token (§2.2), whether or not there was anything of its own to revoke. A database that
/// is down answers 503 (shared/security.md, Reliability: never a 200 that did not revoke).
pub async fn revoke(
    State(state): State<AppState>,
    requester: Requester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &state;
    // Browser apps revoke at sign-out: CORS as at the token endpoint (issue 11 item 1).
    client_authenticated(state, &requester, &headers, body, Cors::ForClient, |params, authorization| async move {
        let keys = state.keys();
        let ctx = RevocationContext {
            clients: &state.client_auth(),
            store: state.store(),
            keys: &keys,
            issuer: &state.settings().issuer,
            now: unix_now(),
        };
        let what = revoke_token(ctx, &params, authorization.as_deref()).await?;
        tracing::debug!(?what, "revocation request");
        Ok(no_store(StatusCode::OK.into_response()))
    })
    .await
}
