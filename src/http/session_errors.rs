//! Turns a failed session save into a 503 page (issue 9, item 3).
//!
//! tower-sessions saves a changed session *after* the handler has answered; when the save fails
//! (our database is unreachable, refusing connections or read-only) it throws the handler's
//! answer away and returns a bare `500` with an empty body (tower-sessions 0.15,
//! `service.rs`). The handler's answer ("signed in, continue") was not persisted, so it must
//! not be shown either way; but the right answer is a readable 503 page with `Retry-After`,
//! the same as every other outage answer on the hosted pages.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;
use crate::web::pages::unavailable_page;

/// Wraps the session layer. Every response a page handler makes carries a `Content-Type`
/// (pages, JSON, axum's rejections) or is a redirect, so a 500 without one can only be the
/// session layer's failed save.
pub async fn session_save_failures(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        // tower-sessions logged the store's error already.
        tracing::warn!("the session could not be saved; answering 503");
        return unavailable_page(&state);
    }
    response
}
