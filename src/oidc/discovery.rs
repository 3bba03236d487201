//! Provider metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one document for both).
//! Every URL comes from the same path table as the router, so what is advertised is what is
//! served; only what is implemented is listed.

use serde_json::{json, Value};

use super::claims::{KNOWN_SCOPES, SUPPORTED_CLAIMS};
use crate::http::paths;

pub fn metadata(issuer: &str) -> Value {
    let url = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "userinfo_endpoint": url(paths::USERINFO),
        "jwks_uri": url(paths::JWKS),
        "end_session_endpoint": url(paths::LOGOUT),
        // RFC 8414 §2: revocation (RFC 7009) authenticates clients as the token endpoint does;
        // introspection (RFC 7662) only confidential clients (a public one proves nothing).
        "revocation_endpoint": url(paths::REVOKE),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "introspection_endpoint": url(paths::INTROSPECT),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": KNOWN_SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        // RFC 7523 §2.2 / OIDC Core §9: private_key_jwt with the client's registered RSA or
        // P-256 keys; `none` and HMAC algorithms are refused.
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": SUPPORTED_CLAIMS.iter().chain(["email_verified", "roles"].iter()).collect::<Vec<_>>(),
        "prompt_values_supported": ["none", "login", "consent"],
        // OIDC Core §3.1.2.1: asking for the multi-factor profile makes the second factor
        // mandatory for that sign-in.
        "acr_values_supported": super::acr::SUPPORTED,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        // RFC 9207: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        // OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens to registered
        // `backchannel_logout_uri`s, with `sid` when the grant came from a browser session.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
