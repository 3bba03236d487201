use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        state.discovery_json(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&state.public_cache_control()) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
