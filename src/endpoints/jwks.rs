use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /.well-known/jwks.json` (RFC 7517 §5): public keys only, served from memory. The
/// max-age tells resource servers how long they may cache it; key rotation publishes new keys
/// at least that long before they sign.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.keys().jwks_json();
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&state.public_cache_control()) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
