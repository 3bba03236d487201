//! A private_key_jwt client's registered keys (RFC 7523 §2.2, OIDC Core §9): a JWKS of public
//! RSA (RS256) and P-256 (ES256) keys, given inline or as an https URL.

use serde_json::Value;

/// Largest JWKS accepted, inline or fetched.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
const MAX_KEYS: usize = 20;
const MAX_URI: usize = 2000;

/// Checks a JWKS document and returns it compacted. Only public RSA and EC P-256 keys: a
/// symmetric (`oct`) key would turn the registered "public" key into an HMAC secret, and a
/// private part (`d`, …) has no business leaving the client.
pub fn validate_jwks(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_JWKS_BYTES {
        return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let doc: Value = serde_json::from_str(raw).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("the JWKS has no `keys` array")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("the JWKS must hold 1 to {MAX_KEYS} keys"));
    }
    for (i, key) in keys.iter().enumerate() {
        check_key(key).map_err(|why| format!("key {i} of the JWKS: {why}"))?;
    }
    let parsed: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(doc.clone()).map_err(|e| format!("the JWKS does not parse: {e}"))?;
    if parsed.keys.len() != keys.len() {
        return Err("the JWKS does not parse".into());
    }
    Ok(doc.to_string())
}

fn check_key(key: &Value) -> Result<(), String> {
    let field = |name: &str| key.get(name).and_then(Value::as_str);
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        if key.get(private).is_some() {
            return Err(format!("has a private or secret part (`{private}`); register public keys only"));
        }
    }
    match (field("kty"), field("crv")) {
        (Some("RSA"), _) if field("n").is_some() && field("e").is_some() => {}
        (Some("EC"), Some("P-256")) if field("x").is_some() && field("y").is_some() => {}
        (Some("EC"), _) => return Err("EC keys must be on P-256 (ES256)".into()),
        (Some(other), _) if other != "RSA" => return Err(format!("kty `{other}` is not RSA or EC")),
        _ => return Err("is incomplete (RSA needs n and e; EC needs crv, x and y)".into()),
    }
    match field("alg") {
        None | Some("RS256") | Some("ES256") => {}
        Some(other) => return Err(format!("alg `{other}` is not RS256 or ES256")),
    }
    if field("use").is_some_and(|u| u != "sig") {
        return Err("`use` must be `sig`".into());
    }
    Ok(())
}

/// The JWKS URL: https (http only on a loopback host, for development), no fragment, no
/// credentials.
pub fn validate_jwks_uri(raw: &str) -> Result<String, String> {
    let why = |what: &str| format!("JWKS URI `{}` {what}", raw.chars().take(100).collect::<String>());
    if raw.len() > MAX_URI {
        return Err(why(&format!("is longer than {MAX_URI} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| why(&format!("is not an absolute URL ({e})")))?;
    if url.fragment().is_some() || url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(why("must name a host, with no fragment, user or password"));
    }
    match url.scheme() {
        "https" => Ok(raw.to_string()),
        "http" if super::is_loopback_host(&url) => Ok(raw.to_string()),
        _ => Err(why("must use https (http only on localhost or a loopback address)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = r#"{"kty":"RSA","n":"sXch","e":"AQAB","kid":"r1"}"#;
    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"f83O","y":"x_FE","kid":"e1"}"#;

    #[test]
    fn public_rsa_and_p256_keys_only() {
        assert!(validate_jwks(&format!(r#"{{"keys":[{RSA},{EC}]}}"#)).is_ok());
        for bad in [
            r#"{"keys":[]}"#.to_string(),
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_string(),
            r#"{"keys":[{"kty":"RSA","n":"sXch","e":"AQAB","d":"c2VjcmV0"}]}"#.to_string(),
            r#"{"keys":[{"kty":"EC","crv":"P-384","x":"a","y":"b"}]}"#.to_string(),
            r#"{"keys":[{"kty":"RSA","n":"sXch","e":"AQAB","alg":"HS256"}]}"#.to_string(),
            r#"{"keys":[{"kty":"RSA","n":"sXch","e":"AQAB","use":"enc"}]}"#.to_string(),
            "not json".to_string(),
        ] {
            assert!(validate_jwks(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jwks_uris_are_https_unless_loopback() {
        assert!(validate_jwks_uri("https://app.example/jwks.json").is_ok());
        assert!(validate_jwks_uri("http://127.0.0.1:8080/jwks").is_ok());
        for bad in ["http://app.example/jwks", "https://app.example/jwks#x", "https://u:p@app.example/", "jwks.json"] {
            assert!(validate_jwks_uri(bad).is_err(), "{bad}");
        }
    }
}
