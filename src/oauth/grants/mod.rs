//! One file per grant type (RFC 6749 §4).

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
