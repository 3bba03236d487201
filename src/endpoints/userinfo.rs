use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::cors;
use crate::http::error::no_store;
use crate::oauth::client_auth::ClientLookup;
use crate::oauth::params::Params;
use crate::oauth::verify::{verify_jwt, Expect};
use crate::oauth::OAuthError;
use crate::state::{unix_now, AppState};

/// `GET` / `POST /userinfo` (OIDC Core §5.3). The token comes in the Authorization header
/// (RFC 6750 §2.1) or, for POST, as `access_token` in a form body (§2.2); never both, never in
/// the query (RFC 9700 §2.1.2 / RFC 6750 §2.3 is not supported).
pub async fn userinfo(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let token = match presented_token(&method, &headers, &body) {
        Ok(token) => token,
        Err(error) => return cors::vary_origin(error.into_response()),
    };
    let keys = state.keys();
    let issuer = &state.settings().issuer;
    let response = match crate::oidc::userinfo::userinfo(state.store(), &keys, issuer, &token, unix_now()).await {
        Ok(claims) => no_store((StatusCode::OK, Json(claims)).into_response()),
        Err(error) => error.into_response(),
    };
    if cors::request_origin(&headers).is_none() {
        return response;
    }
    // Issue 11 item 1: a browser app may read the answer (errors included) when its origin is
    // registered by the client the token was issued to, as the token's signature proves.
    let client_id = verify_jwt(&keys, &token, issuer, Expect::AccessToken)
        .ok()
        .and_then(|claims| claims.get("client_id").and_then(|c| c.as_str()).map(str::to_string));
    let client = match client_id {
        Some(id) => state.clients().lookup_client(&id).await.ok().flatten(),
        None => None,
    };
    cors::for_client(response, &headers, client.as_deref())
}

/// The access token: in the Authorization header (RFC 6750 §2.1) or, for POST, the form body
/// (§2.2); never both, never in the query.
fn presented_token(method: &Method, headers: &HeaderMap, body: &[u8]) -> Result<String, OAuthError> {
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
    Ok(token)
}
