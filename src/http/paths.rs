//! The one path table: the router and the discovery document both read these.

pub const DISCOVERY: &str = "/.well-known/openid-configuration";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/.well-known/jwks.json";
pub const TOKEN: &str = "/token";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
