use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::error::no_store;
use crate::oauth::params::Params;
use crate::oauth::token::{exchange, TokenContext};
use crate::oauth::OAuthError;
use crate::state::{unix_now, AppState};

/// `POST /token` (RFC 6749 §3.2).
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match handle(&state, &headers, body).await {
        Ok(response) => no_store((StatusCode::OK, Json(response)).into_response()),
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<crate::oauth::token::TokenResponse, OAuthError> {
    // RFC 6749 §3.2: parameters come as application/x-www-form-urlencoded.
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OAuthError::invalid_request("the request body is too large"),
        _ => OAuthError::invalid_request("the request body could not be read"),
    })?;
    let params = Params::parse(&body)?;
    let authorization = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?),
    };
    let keys = state.keys();
    let ctx = TokenContext {
        clients: state.clients(),
        store: state.store(),
        keys: &keys,
        settings: state.token_settings(),
        now: unix_now(),
    };
    exchange(ctx, &params, authorization).await
}
