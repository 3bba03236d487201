//! What the endpoints where clients authenticate (token, revocation, introspection) share:
//! reading the form request, and the CORS and throttling guards around the handler.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::authn::client_auth_key;
use crate::http::client_ip::Requester;
use crate::http::cors as http_cors;
use crate::http::error::no_store;
use crate::oauth::client_auth::presented_client_id;
use crate::oauth::params::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::state::AppState;

/// Runs `handle` for a request of an endpoint where clients authenticate (token, revocation,
/// introspection), behind the guards they share:
///
/// - CORS (issue 11 item 1): with [`Cors::ForClient`], a page of an origin the client has not
///   registered is refused before anything runs, and a registered one may read the answer,
///   errors included.
/// - Throttling (issue 9 item 1): guessing here means guessing a client secret, so every
///   `invalid_client` drains the bucket of the caller's address *and the client_id it
///   presented*, and a blocked pair gets 429 with `Retry-After` before anything is checked.
///   Nothing else counts: codes and refresh tokens carry 256 random bits, so guessing one is
///   hopeless, while an app server renewing its users' expired refresh tokens makes
///   `invalid_grant` ordinary traffic — counting it would take the app, and every other service
///   at its address, offline. (Nor is there a per-client counter: locking a client out would
///   hand attackers a way to stop a service.)
pub(super) async fn client_authenticated<F, Fut>(
    state: &AppState,
    requester: &Requester,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    cors: Cors,
    handle: F,
) -> Response
where
    F: FnOnce(Params, Option<String>) -> Fut,
    Fut: Future<Output = Result<Response, OAuthError>>,
{
    let (params, authorization) = match read_request(headers, body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let client_id = presented_client_id(authorization.as_deref(), &params);
    // A page of an origin the client has not registered is refused before anything runs.
    let web_origin = match cors {
        Cors::ForClient => match http_cors::check_client_origin(state, headers, client_id.as_deref()).await {
            Ok(origin) => origin,
            Err(refused) => return refused,
        },
        Cors::None => None,
    };
    let readable = |response: Response| match &web_origin {
        Some(origin) => http_cors::allow(response, origin),
        None => response,
    };
    let bucket = requester.ip.map(|ip| client_auth_key(ip, client_id.as_deref()));
    if let Some(wait) = bucket.as_ref().and_then(|key| state.client_auth_failures().retry_after(key)) {
        return readable(too_many(wait.as_secs()));
    }
    match handle(params, authorization).await {
        Ok(response) => readable(response),
        Err(error) => {
            if error.code == ErrorCode::InvalidClient {
                if let Some(key) = bucket {
                    state.client_auth_failures().record_failure(key);
                }
            }
            readable(error.into_response())
        }
    }
}

/// Whether browser pages may call the endpoint (shared/security.md, "Browser apps").
pub(super) enum Cors {
    /// Token and revocation: readable by the client's own origins, refused for any other page.
    ForClient,
    /// Introspection: for resource servers, never for pages; no CORS headers at all.
    None,
}

/// RFC 6585 §4: 429 with `Retry-After`; the body is an RFC 6749 §5.2 error so OAuth client
/// libraries can show it.
fn too_many(secs: u64) -> Response {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!("too many failed requests from this address; retry after {} seconds", secs.max(1)),
    });
    crate::metrics::count_throttled("token");
    let mut response = no_store((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response());
    if let Ok(value) = header::HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The form parameters and the raw `Authorization` header of a token request.
fn read_request(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Params, Option<String>), OAuthError> {
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
        Some(v) => {
            Some(v.to_str().map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?.to_string())
        }
    };
    Ok((params, authorization))
}
