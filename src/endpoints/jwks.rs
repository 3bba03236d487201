use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// `GET /.well-known/jwks.json` (RFC 7517 §5): public keys only, served from memory. The
/// max-age tells resource servers how long they may cache it; key rotation publishes new keys
/// at least that long before they sign.
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, super::json_content_type()), (header::CACHE_CONTROL, state.public_cache_control())],
        state.keys().jwks_json(),
    )
        .into_response()
}
