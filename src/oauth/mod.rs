//! OAuth 2.0 core, one file per concern. Functions here take typed requests, a store handle and
//! `now`, and return `Result<_, OAuthError>`; they never see HTTP types (shared/design.md rule 1).

pub mod access_token;
pub mod client_auth;
pub mod error;
pub mod grants;
pub mod params;
pub mod token;

pub use error::{Challenge, ErrorCode, OAuthError};
