use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::helpers::spawn_app;

#[tokio::test]
async fn jwks_publishes_public_parts_only_with_unique_kids() {
    let app = spawn_app().await;
    let (status, headers, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 2, "one RS256 and one ES256 key on a fresh install");
    let algs: HashSet<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs, HashSet::from(["RS256", "ES256"]));
    let kids: HashSet<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), keys.len(), "kids are unique");
    for key in keys {
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(key.get(private).is_none(), "private member {private} published: {key}");
        }
        // kid is the RFC 7638 thumbprint, so anyone can check it against the key.
        let canonical = match key["kty"].as_str().unwrap() {
            "RSA" => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, key["e"].as_str().unwrap(), key["n"].as_str().unwrap())
            }
            "EC" => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                key["x"].as_str().unwrap(),
                key["y"].as_str().unwrap()
            ),
            other => panic!("unexpected kty {other}"),
        };
        assert_eq!(key["kid"], URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())));
    }
}

#[tokio::test]
async fn jwks_max_age_is_a_setting() {
    let app = crate::helpers::spawn_app_with(|s| s.jwks_max_age = latchkey::config::HumanDuration::secs(60)).await;
    let (_, headers, _) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(headers["cache-control"], "public, max-age=60");
}
