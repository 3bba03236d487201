//! Answers the hosted pages give when something outside their handlers fails: the session
//! layer's failed save (issue 9, item 3) and axum's extractor rejections (issue 9, item 6).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;
use crate::web::pages::{error_page, unavailable_page};

/// Turns a failed session save into the 503 page.
///
/// tower-sessions saves a changed session *after* the handler has answered; when the save fails
/// (the database is unreachable, refusing connections or read-only) it throws the handler's
/// answer away and returns a bare `500` with an empty body (tower-sessions 0.15,
/// `service.rs`). The handler's answer ("signed in, continue") was not persisted, so it must
/// not be shown either way; the right answer is a readable 503 page with `Retry-After`, the
/// same as every other outage answer on the hosted pages.
///
/// Sits outside the session layer. Every response a page handler makes carries a
/// `Content-Type` (pages, axum's rejections) or is a redirect, so a 500 without one can only be
/// the session layer's failed save.
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

/// Gives axum's extractor rejections on the hosted pages (a repeated query parameter, a form
/// that does not parse, a body over the limit) the error page, with their 4xx status: every
/// malformed page parameter gets a readable 400-class page (issue 9, item 6). Page handlers
/// answer HTML or redirects only, so a plain-text 4xx is a rejection.
pub async fn rejections_as_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if response.status().is_client_error() && plain_text {
        return error_page(
            &state,
            response.status(),
            "Invalid request",
            "The request could not be read: a parameter is repeated or malformed. Go back and try again.",
        );
    }
    response
}
