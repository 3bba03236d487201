use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::error::no_store;
use crate::oauth::params::Params;
use crate::oauth::OAuthError;
use crate::state::{unix_now, AppState};

/// `GET` / `POST /userinfo` (OIDC Core §5.3). The token comes in the Authorization header
/// (RFC 6750 §2.1) or, for POST, as `access_token` in a form body (§2.2); never both, never in
/// the query (RFC 9700 §2.1.2 / RFC 6750 §2.3 is not supported).
pub async fn userinfo(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &method, &headers, &body).await {
        Ok(claims) => no_store((StatusCode::OK, Json(claims)).into_response()),
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
    let from_header = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?;
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(OAuthError::invalid_token("use the Bearer scheme"));
            }
            Some(token.trim().to_string())
        }
    };
    let from_body = if method == Method::POST && !body.is_empty() {
        Params::parse(body)?.get("access_token").map(str::to_string)
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send the access token once: header or body, not both"))
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(OAuthError::invalid_token("an access token is required")),
    };
    let keys = state.keys();
    crate::oidc::userinfo::userinfo(state.store(), &keys, &state.settings().issuer, &token, unix_now()).await
}
