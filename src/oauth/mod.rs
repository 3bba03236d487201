//! OAuth 2.0 core, one file per concern. Functions here take typed requests, a store handle and
//! `now`, and return `Result<_, OAuthError>`; they never see HTTP types (shared/design.md rule 1).

pub mod access_token;
pub mod authorize;
pub mod client_assertion;
pub mod client_auth;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod issue;
pub mod params;
pub mod pkce;
pub mod revoke;
pub mod token;
pub mod verify;

pub use error::{Challenge, ErrorCode, OAuthError};
