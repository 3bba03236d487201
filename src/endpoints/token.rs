use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::client_ip::Requester;
use crate::http::error::no_store;
use crate::oauth::params::Params;
use crate::oauth::token::{exchange, TokenContext};
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::{unix_now, AppState};

/// `POST /token` (RFC 6749 §3.2).
///
/// Guessing here means guessing a client secret, a code or a refresh token: every
/// `invalid_client` and `invalid_grant` drains the caller's per-IP failure bucket, and an
/// address whose bucket is empty gets 429 with `Retry-After` before anything is checked.
/// (Secrets, codes and refresh tokens carry 256 random bits, so no per-account counter is
/// needed: guessing one is hopeless, and locking a client out would hand attackers a way to
/// stop a service.)
pub async fn token(
    State(state): State<AppState>,
    requester: Requester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(wait) = requester.ip.and_then(|ip| state.ip_failures().retry_after(ip)) {
        return too_many(wait.as_secs());
    }
    match handle(&state, &headers, body).await {
        Ok(response) => no_store((StatusCode::OK, Json(response)).into_response()),
        Err(error) => {
            if matches!(error.code, ErrorCode::InvalidClient | ErrorCode::InvalidGrant) {
                if let Some(ip) = requester.ip {
                    state.ip_failures().record_failure(ip);
                }
            }
            error.into_response()
        }
    }
}

/// RFC 6585 §4: 429 with `Retry-After`; the body is an RFC 6749 §5.2 error so OAuth client
/// libraries can show it.
fn too_many(secs: u64) -> Response {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!("too many failed requests from this address; retry after {} seconds", secs.max(1)),
    });
    let mut response = no_store((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response());
    if let Ok(value) = header::HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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
