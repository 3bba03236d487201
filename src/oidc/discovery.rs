//! Provider metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one document for both).
//! Every URL comes from the same path table as the router, so what is advertised is what is
//! served; only what is implemented is listed.

use serde_json::{json, Value};

use crate::http::paths;

pub fn metadata(issuer: &str) -> Value {
    let url = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "token_endpoint": url(paths::TOKEN),
        "jwks_uri": url(paths::JWKS),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // No authorization endpoint yet, so no response type is supported (RFC 8414 §2 lists
        // the values "this authorization server supports": none, truthfully).
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    })
}
