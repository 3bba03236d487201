//! OpenID Connect: discovery now; ID tokens, claims, userinfo and logout as they land.

pub mod acr;
pub mod claims;
pub mod discovery;
pub mod id_token;
pub mod logout_token;
pub mod userinfo;
