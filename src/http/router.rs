use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::headers::security_headers;
use super::paths;
use crate::endpoints;
use crate::state::AppState;

/// Longest a request may take before the client gets a 408; bounds slow-loris style requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn build(state: AppState) -> Router {
    let https = state.settings().issuer.starts_with("https://");
    let max_body = state.settings().max_body_bytes;
    let mut router = Router::new()
        .route(paths::DISCOVERY, get(endpoints::discovery::metadata))
        .route(paths::AUTHORIZATION_SERVER_METADATA, get(endpoints::discovery::metadata))
        .route(paths::JWKS, get(endpoints::jwks::jwks))
        .route(paths::TOKEN, post(endpoints::token::token))
        .route(paths::HEALTHZ, get(endpoints::health::healthz))
        .route(paths::READYZ, get(endpoints::health::readyz))
        .fallback(endpoints::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT));
    for layer in security_headers(https) {
        router = router.layer(layer);
    }
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
    )
}
