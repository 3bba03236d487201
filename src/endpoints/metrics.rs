//! `GET /metrics` (issue 13 item 4): the Prometheus scrape, on the main listener or, with
//! `metrics_bind`, on a listener of its own.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::state::{unix_now, AppState};
use crate::store::{KeyStore, OutboxStore};

/// OpenMetrics 1.0 text, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(state): State<AppState>) -> Response {
    refresh_gauges(&state).await;
    let mut response = (StatusCode::OK, crate::metrics::metrics().encode()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The gauges that describe the present: read now. A failed read leaves the last value (and
/// counts as a database error), so a scrape never fails because the database is away.
async fn refresh_gauges(state: &AppState) {
    let (in_use, idle) = state.store().pool_state();
    crate::metrics::set_pool(in_use, idle);
    if let Ok(pending) = state.store().pending_messages().await {
        crate::metrics::set_outbox_pending(pending);
    }
    if let Ok(keys) = state.store().list_keys().await {
        let now = unix_now();
        for key in keys.iter().filter(|k| k.status == crate::domain::KeyStatus::Active) {
            // Precision loss is irrelevant: ages are far below 2^52 seconds.
            #[allow(clippy::cast_precision_loss)]
            let age = (now - key.activates_at).max(0) as f64;
            crate::metrics::set_active_key_age(key.alg.as_str(), age);
        }
    }
}
