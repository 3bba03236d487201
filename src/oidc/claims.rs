//! Which user claims each scope releases (OIDC Core §5.4), shared by ID tokens and userinfo.

use serde_json::{Map, Value};

use crate::domain::{ScopeSet, User};

/// Scopes Latchkey knows, with the words the consent page shows for each.
pub const KNOWN_SCOPES: [(&str, &str); 5] = [
    ("openid", "Sign you in and know who you are"),
    ("profile", "See your name"),
    ("email", "See your email address"),
    ("offline_access", "Stay signed in to the app when you are not using it"),
    ("roles", "See the roles you have"),
];

pub const SUPPORTED_CLAIMS: [&str; 14] =
    ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "acr", "amr", "azp", "sid", "name", "email"];

/// Plain words for a scope on the consent page; unknown scopes are shown as they are.
pub fn describe(scope: &str) -> String {
    KNOWN_SCOPES
        .iter()
        .find(|(s, _)| *s == scope)
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| format!("Use “{scope}”"))
}

/// The user's claims released by `scopes` (always `sub`).
pub fn user_claims(user: &User, scopes: &ScopeSet) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(user.sub.clone()));
    if scopes.contains("profile") {
        if let Some(name) = &user.name {
            claims.insert("name".into(), Value::from(name.clone()));
        }
    }
    if scopes.contains("email") {
        claims.insert("email".into(), Value::from(user.email.clone()));
        // OIDC Core §5.1: true only when the user proved they read mail at the address (a
        // verification, invitation or email-change link) or an admin vouched for it.
        claims.insert("email_verified".into(), Value::from(user.email_verified()));
    }
    if scopes.contains("roles") {
        claims.insert("roles".into(), Value::from(user.roles.clone()));
    }
    claims
}
