//! The one OAuth error type (shared/design.md rule 4). Protocol code returns it; the HTTP layer
//! renders it exactly as RFC 6749 §5.2 (token endpoint) and RFC 6750 §3.1 (resource access) say.

use std::borrow::Cow;
use std::fmt;

/// The closed set of error codes Latchkey ever sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// The client authenticated but may not use this endpoint (introspection without
    /// `client create --introspect`, issue 11 item 3): sent as `unauthorized_client` with 403.
    NotPermitted,
    InvalidToken,
    InsufficientScope,
    ServerError,
    TemporarilyUnavailable,
    // Authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
    AccessDenied,
    UnsupportedResponseType,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient | ErrorCode::NotPermitted => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
        }
    }

    /// The HTTP status, from one exhaustive match so a new code can't be sent with a guessed one.
    pub fn http_status(self) -> u16 {
        match self {
            // RFC 6749 §5.2: invalid_client may be 401; it MUST be when the client used the
            // Authorization header. We always use 401 so clients see one behaviour.
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            // RFC 7662 §2.3 keeps 401 for failed authentication; a client that did authenticate
            // but lacks the permission is forbidden, which 403 says (RFC 9110 §15.5.4).
            ErrorCode::InsufficientScope | ErrorCode::NotPermitted => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::InvalidScope
            | ErrorCode::AccessDenied
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::LoginRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::RequestNotSupported
            | ErrorCode::RequestUriNotSupported => 400,
        }
    }
}

/// How the client tried to authenticate, which decides the `WWW-Authenticate` challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    None,
    /// RFC 6749 §5.2: the client used HTTP Basic, so a 401 MUST carry a Basic challenge.
    Basic,
    /// RFC 6750 §3: a protected resource answers with a Bearer challenge.
    Bearer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// Human-readable text for the developer (RFC 6749 §5.2 `error_description`). Never holds
    /// internal causes: those are logged where the error is made.
    pub description: Cow<'static, str>,
    pub challenge: Challenge,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into(), challenge: Challenge::None }
    }

    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidToken, d).with_challenge(Challenge::Bearer)
    }
    /// An internal failure. The cause is logged here; the client sees only a generic text.
    pub fn server_error(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::ServerError, "the server failed to handle the request")
    }
    /// The database (or another dependency) is unreachable: retry later, nothing was done.
    pub fn unavailable(cause: &dyn fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(ErrorCode::TemporarilyUnavailable, "the service is temporarily unavailable; retry later")
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(_) => OAuthError::unavailable(&e),
            _ => OAuthError::server_error(&e),
        }
    }
}
