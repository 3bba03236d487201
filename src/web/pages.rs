//! Page responses: HTML with the page CSP, never cached; 303 redirects; error pages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Serialize;

use crate::state::AppState;

/// Pages load only our stylesheet: no script at all, no inline anything, no framing
/// (shared/security.md, "Headers on every page").
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders `template`; a rendering failure becomes a plain 500 page (and a log line).
pub fn render<C: Serialize>(state: &AppState, status: StatusCode, template: &str, context: C) -> Response {
    match state.templates().render(template, context) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".into(),
            )
        }
    }
}

pub fn error_page(state: &AppState, status: StatusCode, title: &str, detail: &str) -> Response {
    render(state, status, "error.html", context! { title, detail })
}

/// POST → 303 See Other (RFC 9110 §15.4.4), so a reload never re-submits a form.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
