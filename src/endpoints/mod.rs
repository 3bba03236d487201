//! Thin protocol handlers, one file per endpoint: extract → core function → render.

pub mod admin;
pub mod authorize;
pub mod client_keys;
mod client_request;
pub mod discovery;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod metrics;
pub mod revoke;
pub mod token;
pub mod userinfo;

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// `Content-Type` of every JSON document served from memory.
fn json_content_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Unknown paths get a JSON 404 rather than an empty body.
pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not_found", "error_description": "no such endpoint"})))
}
