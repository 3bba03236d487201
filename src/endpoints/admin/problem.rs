//! RFC 9457 problem details, the admin API's one error shape: `application/problem+json` with
//! `type`, `title`, `status` and `detail`. `type` is `about:blank` (RFC 9457 §4.2.1): the status
//! code says what kind of problem it is, `title` is its reason phrase, `detail` what to fix.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::access::Refusal;
use crate::admin::clients::AdminError;
use crate::domain::{ADMIN_READ_SCOPE, ADMIN_SCOPE};
use crate::store::StoreError;

/// The realm of the admin API's bearer challenges (RFC 6750 §3).
const REALM: &str = "latchkey-admin";

/// An RFC 9457 problem details object.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status code names the problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person to read.
    pub detail: String,
    #[serde(skip)]
    #[schema(ignore)]
    challenge: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            challenge: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

fn quoted(text: &str) -> String {
    text.replace(['"', '\\'], "'")
}

/// RFC 6750 §3.1: no token → 401 with a bare challenge; a bad token → 401 `invalid_token`;
/// a good token without the scope → 403 `insufficient_scope` naming the scope needed.
impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        let detail = refusal.to_string();
        match refusal {
            Refusal::NoToken => Problem::new(StatusCode::UNAUTHORIZED, detail)
                .with_challenge(format!(r#"Bearer realm="{REALM}", scope="{ADMIN_SCOPE} {ADMIN_READ_SCOPE}""#)),
            Refusal::InvalidToken(why) => Problem::new(StatusCode::UNAUTHORIZED, detail).with_challenge(format!(
                r#"Bearer realm="{REALM}", error="invalid_token", error_description="{}""#,
                quoted(why)
            )),
            Refusal::InsufficientScope(scope) => {
                let challenge = format!(
                    r#"Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}", error_description="{}""#,
                    quoted(&detail)
                );
                Problem::new(StatusCode::FORBIDDEN, detail).with_challenge(challenge)
            }
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(why) => Problem::new(StatusCode::CONFLICT, why),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "admin API: database unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again shortly")
            }
            other => {
                tracing::error!(error = %other, "admin API: database error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the server could not complete the request")
            }
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(why) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, why),
            AdminError::NotFound(why) => Problem::new(StatusCode::NOT_FOUND, why),
            AdminError::Conflict(why) => Problem::new(StatusCode::CONFLICT, why),
            AdminError::Store(e) => e.into(),
            AdminError::Unavailable(why) => {
                tracing::warn!(error = %why, "admin API: operation unavailable");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the operation is unavailable; try again shortly")
            }
        }
    }
}
