use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::client_request::{client_authenticated, Cors};
use crate::http::client_ip::Requester;
use crate::http::error::no_store;
use crate::oauth::token::{exchange, TokenContext};
use crate::state::{unix_now, AppState};

/// `POST /token` (RFC 6749 §3.2), behind the guards every client-authenticating endpoint shares
/// (`client_request`: CORS for the client's own origins, failed-authentication throttling).
pub async fn token(
    State(state): State<AppState>,
    requester: Requester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let state = &state;
    // Who asked, for the audit trail (a reused refresh token).
    let origin = requester.origin();
    let origin = &origin;
    client_authenticated(state, &requester, &headers, body, Cors::ForClient, |params, authorization| async move {
        let keys = state.keys();
        let ctx = TokenContext {
            clients: &state.client_auth(),
            store: state.store(),
            keys: &keys,
            master: state.master_key(),
            origin,
            settings: state.token_settings(),
            now: unix_now(),
        };
        let response = exchange(ctx, &params, authorization.as_deref()).await?;
        Ok(no_store((StatusCode::OK, Json(response)).into_response()))
    })
    .await
}
