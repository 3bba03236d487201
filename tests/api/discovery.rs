use crate::helpers::spawn_app;

#[tokio::test]
async fn both_metadata_documents_describe_what_is_served() {
    let app = spawn_app().await;
    let (status, headers, oidc) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let (status, _, rfc8414) = app.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(status, 200);
    assert_eq!(oidc, rfc8414);

    assert_eq!(oidc["issuer"], app.address.as_str());
    assert_eq!(oidc["token_endpoint"], app.url("/token"));
    assert_eq!(oidc["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(oidc["authorization_endpoint"], app.url("/authorize"));
    assert_eq!(oidc["userinfo_endpoint"], app.url("/userinfo"));
    assert_eq!(oidc["end_session_endpoint"], app.url("/logout"));
    assert_eq!(
        oidc["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        oidc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    );
    assert_eq!(oidc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(oidc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    // Nothing unimplemented is advertised.
    assert_eq!(oidc["request_parameter_supported"], false);
    assert!(oidc.get("registration_endpoint").is_none());
    // Issue 11 items 2 and 3: revocation (RFC 7009) and introspection (RFC 7662).
    assert_eq!(oidc["revocation_endpoint"], app.url("/revoke"));
    assert_eq!(
        oidc["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    );
    assert_eq!(oidc["introspection_endpoint"], app.url("/introspect"));
    assert_eq!(
        oidc["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );

    // Every advertised URL is served.
    let jwks = app.http.get(oidc["jwks_uri"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(jwks.status().as_u16(), 200);
    let token =
        app.http.post(oidc["token_endpoint"].as_str().unwrap()).form(&[("grant_type", "x")]).send().await.unwrap();
    assert_eq!(token.status().as_u16(), 401, "the token endpoint answers (client auth needed), not 404");
    for endpoint in ["revocation_endpoint", "introspection_endpoint"] {
        let served = app.http.post(oidc[endpoint].as_str().unwrap()).form(&[("token", "x")]).send().await.unwrap();
        assert_eq!(served.status().as_u16(), 401, "{endpoint} answers (client auth needed), not 404");
    }
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/.well-known/openid-configuration", "/.well-known/jwks.json", "/healthz", "/no-such-page"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS on a plain-http issuer");
        // Issue 11 item 1: the public documents are readable from any origin; nothing else is.
        let public = path.starts_with("/.well-known/");
        let acao = h.get("access-control-allow-origin").map(|v| v.to_str().unwrap());
        assert_eq!(acao, public.then_some("*"), "{path}");
    }
    let missing = app.http.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
