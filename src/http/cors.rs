//! CORS for browser apps (issue 11 item 1; shared/security.md "Browser apps (CORS)").
//!
//! - Discovery and the JWKS are public documents: `Access-Control-Allow-Origin: *`.
//! - The token, userinfo and revocation endpoints answer per client: a response (errors
//!   included) is readable only by an origin of the calling client's own redirect URIs or one it
//!   registered explicitly ([`crate::domain::Client::allows_origin`]); the origin is echoed,
//!   never `*` or `null`, with `Vary: Origin`. A token or revocation request from an origin the
//!   client has not registered is refused before anything is spent.
//! - Preflights carry no credentials and name no client, so they are answered for any
//!   well-formed origin; what they allow is only the actual request, which is checked as above.
//! - The authorization endpoint, the hosted pages and introspection send no CORS headers.

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::Client;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The request's `Origin`, when it is a real one (`scheme://host[:port]`, http or https). The
/// opaque origin `null` (sandboxed frames, `file:` pages) and anything malformed give `None`.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(ORIGIN)?.to_str().ok()?;
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || url.query().is_some() {
        return None;
    }
    match url.origin() {
        origin @ url::Origin::Tuple(..) => {
            let serialized = origin.ascii_serialization();
            (serialized == raw.trim_end_matches('/')).then_some(serialized)
        }
        url::Origin::Opaque(_) => None,
    }
}

/// Whether the request came from a browser page (it sent `Origin`, even `null` or a malformed
/// one): such a request is answered only for an origin the client registered.
pub fn sent_origin(headers: &HeaderMap) -> bool {
    headers.contains_key(ORIGIN)
}

/// Makes `response` readable by `origin` (already checked against the client).
pub fn allow(mut response: Response, origin: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("WWW-Authenticate, Retry-After"));
    }
    vary_origin(response)
}

/// `Vary: Origin` on every answer whose CORS headers depend on the origin, so caches keep them
/// apart.
pub fn vary_origin(mut response: Response) -> Response {
    response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
    response
}

/// `response` made readable by the request's origin when `client` registered it; otherwise left
/// unreadable to the page.
pub fn for_client(response: Response, headers: &HeaderMap, client: Option<&Client>) -> Response {
    match (request_origin(headers), client) {
        (Some(origin), Some(client)) if client.allows_origin(&origin) => allow(response, &origin),
        (Some(_), _) => vary_origin(response),
        (None, _) => response,
    }
}

/// For the endpoints that act for a client (token, revocation), before anything runs: a request
/// from no page (no `Origin`) goes ahead (`Ok(None)`); one from a page whose origin the named
/// client registered goes ahead and its answer is made readable (`Ok(Some(origin))`); any other
/// page — an unregistered origin, `null`, an unknown client — is refused with an answer the page
/// can't read, so a code or refresh token it carries is never spent.
pub async fn check_client_origin(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    client_id: Option<&str>,
) -> Result<Option<String>, Response> {
    use crate::oauth::client_auth::ClientLookup;
    if !sent_origin(headers) {
        return Ok(None);
    }
    let refused = || {
        let error = crate::oauth::OAuthError::invalid_request(
            "this web origin is not registered for the client (register it with --allowed-origin)",
        );
        vary_origin(error.into_response())
    };
    let (Some(origin), Some(client_id)) = (request_origin(headers), client_id) else {
        return Err(refused());
    };
    match state.clients().lookup_client(client_id).await {
        Ok(Some(client)) if client.allows_origin(&origin) => Ok(Some(origin)),
        Ok(_) => Err(refused()),
        Err(e) => Err(vary_origin(crate::oauth::OAuthError::from(e).into_response())),
    }
}

/// `OPTIONS` on the token, userinfo and revocation endpoints (Fetch standard, CORS preflight):
/// 204 with the methods and the two request headers these endpoints read.
pub async fn preflight(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(origin) = request_origin(&headers) {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            let h = response.headers_mut();
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
            h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
        }
    }
    vary_origin(response)
}

/// Public documents (discovery, JWKS): readable from any origin; a preflight gets 204.
pub async fn public_documents(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
        return response;
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_real_origins_are_read() {
        assert_eq!(request_origin(&with_origin("http://127.0.0.1:9999")).as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!(request_origin(&with_origin("https://app.example")).as_deref(), Some("https://app.example"));
        for bad in ["null", "*", "https://app.example/path", "file://", "app.example", "https://APP.example"] {
            assert_eq!(request_origin(&with_origin(bad)), None, "{bad}");
        }
        assert_eq!(request_origin(&HeaderMap::new()), None);
    }
}
