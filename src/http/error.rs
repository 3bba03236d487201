//! Renders [`OAuthError`] as RFC 6749 §5.2 says: JSON `{error, error_description}`, the status
//! from the error code, `WWW-Authenticate` where required, and never cached.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::oauth::{Challenge, OAuthError};

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1) on a token-bearing response.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(json!({"error": self.code.as_str(), "error_description": self.description}));
        let mut response = (status, body).into_response();
        let challenge = match self.challenge {
            Challenge::None => None,
            Challenge::Basic => Some(r#"Basic realm="latchkey", charset="UTF-8""#.to_string()),
            Challenge::Bearer => Some(format!(
                r#"Bearer realm="latchkey", error="{}", error_description="{}""#,
                self.code.as_str(),
                self.description.replace(['"', '\\'], "'")
            )),
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if self.code == crate::oauth::ErrorCode::TemporarilyUnavailable {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        no_store(response)
    }
}
