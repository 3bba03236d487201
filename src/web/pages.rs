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

/// A page handler's result as the response: the success or the error page it already is.
pub fn respond(result: crate::web::session::WebResult<Response>) -> Response {
    match result {
        Ok(r) | Err(r) => r,
    }
}

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

/// Seconds a browser (or a person) is told to wait before retrying after a 503; the same as
/// the API's `Retry-After` (http::error).
const RETRY_AFTER_SECS: &str = "5";

/// The database (or the session store on it) failed: 503 with `Retry-After` and a readable
/// page (issue 9, item 3). The cause is logged, never shown — database error text names
/// tables and columns (the consent page once showed `relation "consents" does not exist`).
pub fn unavailable(state: &AppState, cause: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %cause, "page failed: dependency unavailable");
    unavailable_page(state)
}

/// The 503 page itself, for callers that logged the cause already.
pub fn unavailable_page(state: &AppState) -> Response {
    let mut response = error_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "This service is unavailable for a moment and nothing was changed. Please try again shortly.",
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// A page parameter that is not in its expected form (issue 9, item 6): 400, never a 5xx.
pub fn malformed(state: &AppState, name: &str) -> Response {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "Invalid request",
        &format!("The link is damaged (its `{name}` parameter is malformed). Go back and start again."),
    )
}

/// `path?name=value&…` with every name and value form-encoded (WHATWG URL, application/
/// x-www-form-urlencoded serializer), so what a redirect carries can't break out of its
/// parameter or the `Location` header (issue 9, item 6).
pub fn page_url(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{path}?{query}")
}

/// POST → 303 See Other (RFC 9110 §15.4.4), so a reload never re-submits a form.
///
/// Every location is built encoded ([`page_url`], `url::Url`); as a last guard, any byte that
/// is not visible ASCII is percent-encoded (RFC 3986 §2.1) rather than failing the response,
/// so a `Location` is always a valid header value and never a 500.
pub fn see_other(location: &str) -> Response {
    let encoded;
    let location = if location.bytes().all(|b| b.is_ascii_graphic()) {
        location
    } else {
        encoded = encode_unsafe_bytes(location);
        encoded.as_str()
    };
    // Visible ASCII only now, so this can't fail; "/" keeps the fallback a redirect, not a 500.
    let value = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, value);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn encode_unsafe_bytes(location: &str) -> String {
    let mut out = String::with_capacity(location.len());
    for b in location.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
