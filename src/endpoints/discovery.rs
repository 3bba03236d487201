use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, super::json_content_type()), (header::CACHE_CONTROL, state.public_cache_control())],
        state.discovery_json(),
    )
        .into_response()
}
