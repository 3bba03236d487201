//! Userinfo and the verifier behind it (shared/security.md, "Every verifier in Latchkey
//! refuses …").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey::domain::SigningAlg;
use latchkey::state::unix_now;
use serde_json::json;

use crate::helpers::{browser, jwt_part, pkce, spawn_app, TestApp};

async fn signed_in_tokens(app: &TestApp) -> (crate::helpers::TestUser, serde_json::Value) {
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid profile email roles", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200);
    (user, tokens)
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn get(app: &TestApp, token: &str) -> (u16, String, serde_json::Value) {
    let response = app.http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, challenge, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn userinfo_returns_the_claims_of_the_granted_scopes() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let (status, _, body) = get(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"sub": user.sub, "name": "Ann Example", "email": "ann@example.com", "email_verified": false, "roles": ["admin", "billing"]})
    );
    // POST with the token in the body (RFC 6750 §2.2) works too; both at once does not.
    let token = tokens["access_token"].as_str().unwrap();
    let posted = app.http.post(app.url("/userinfo")).form(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    let both =
        app.http.post(app.url("/userinfo")).bearer_auth(token).form(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(both.status().as_u16(), 400);
    // Never from the query string.
    let query = app.http.get(app.url("/userinfo")).query(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(query.status().as_u16(), 401);
}

#[tokio::test]
async fn missing_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm=\"latchkey\""));
}

#[tokio::test]
async fn a_token_without_openid_is_403_insufficient_scope() {
    let app = spawn_app().await;
    let service = app.service_client(&["read"], &[]).await;
    let (_, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    let (status, challenge, body) = get(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
}

#[tokio::test]
async fn the_verifier_refuses_forged_and_misused_tokens() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let header = jwt_part(access, 0);
    let claims = jwt_part(access, 1);
    let signature = access.rsplit('.').next().unwrap();
    let keys = app.state.keys();
    let sign = |claims: &serde_json::Value, typ: &str| keys.sign(SigningAlg::Es256, typ, claims).unwrap();
    let now = unix_now();

    let mut cases: Vec<(&str, String)> = Vec::new();
    // alg: none.
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]});
    cases.push(("alg none", format!("{}.{}.", b64(&none), b64(&claims))));
    // HS256 "signed" with our public key (the classic key-confusion attack).
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    let public = jwks["keys"][0].to_string();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            typ: Some("at+jwt".into()),
            kid: header["kid"].as_str().map(String::from),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 with the public key", hs));
    // Unknown and odd kids.
    for kid in ["unknown", "../../etc/passwd", ""] {
        let h = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        cases.push(("odd kid", format!("{}.{}.{}", b64(&h), b64(&claims), signature)));
    }
    // Key or key URL in the header.
    for (name, value) in [
        ("jku", json!("https://evil.example.com/jwks")),
        ("x5u", json!("https://evil.example.com/cert")),
        ("jwk", json!({"kty": "EC"})),
    ] {
        let mut h = header.clone();
        h[name] = value;
        cases.push(("key in header", format!("{}.{}.{}", b64(&h), b64(&claims), signature)));
    }
    // Tampered payload.
    let mut tampered = claims.clone();
    tampered["sub"] = json!("someone-else");
    cases.push(("tampered", format!("{}.{}.{}", b64(&header), b64(&tampered), signature)));
    // Properly signed by our key, but expired / not yet valid / another issuer.
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 120);
    cases.push(("expired", sign(&expired, "at+jwt")));
    let mut future = claims.clone();
    future["nbf"] = json!(now + 3600);
    cases.push(("not yet valid", sign(&future, "at+jwt")));
    let mut foreign = claims.clone();
    foreign["iss"] = json!("https://evil.example.com");
    cases.push(("wrong iss", sign(&foreign, "at+jwt")));
    // An ID token is not an access token.
    cases.push(("id token", tokens["id_token"].as_str().unwrap().to_string()));
    // Garbage.
    cases.push(("garbage", "not.a.jwt".into()));
    cases.push(("huge", "a".repeat(10_000)));

    for (name, token) in cases {
        let (status, challenge, body) = get(&app, &token).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{name}: {body}");
        assert!(challenge.starts_with("Bearer ") && challenge.contains("invalid_token"), "{name}: {challenge}");
    }
    // The genuine token still works after all that.
    let (status, _, body) = get(&app, access).await;
    assert_eq!((status, body["sub"].as_str()), (200, Some(user.sub.as_str())));
}

#[tokio::test]
async fn a_disabled_user_or_revoked_grant_gets_nothing() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    latchkey::admin::users::disable(app.state.store(), &user.sub, unix_now()).await.unwrap();
    let (status, _, _) = get(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
}

/// Issue 9 item 5: a token meant for another API (validly signed, live grant, `openid` scope)
/// can't be replayed at userinfo; the tokens Latchkey issues for an `openid` flow carry the
/// userinfo audience beside the client's API audience, so relying parties keep working.
#[tokio::test]
async fn userinfo_accepts_only_tokens_with_its_audience() {
    use latchkey::domain::{NewClient, ScopeSet};
    use latchkey::oauth::access_token::{mint, AccessTokenRequest};
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let registered = app
        .register(NewClient {
            name: "App with an API".into(),
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            first_party: true,
            audience: Some("https://api.example.com".into()),
            ..NewClient::default()
        })
        .await;
    let client = crate::helpers::AppClient {
        id: registered.id,
        secret: registered.secret,
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        post_logout_uri: String::new(),
    };
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid email", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo_aud = format!("{}/userinfo", app.address);
    assert_eq!(jwt_part(access, 1)["aud"], json!(["https://api.example.com", userinfo_aud]));
    assert_eq!(get(&app, access).await.0, 200);

    // The same grant, scope and signing key, but meant for the API alone.
    let claims = jwt_part(access, 1);
    let grant_id = claims["jti"].as_str().unwrap().split_once('.').unwrap().0.to_string();
    let settings = app.state.token_settings().access.clone();
    let scope = ScopeSet::parse("openid email").unwrap();
    let api_only = mint(
        &app.state.keys(),
        &settings,
        AccessTokenRequest {
            grant_id: Some(&grant_id),
            subject: &user.sub,
            audience: "https://api.example.com",
            for_userinfo: false,
            client_id: &client.id,
            scope: &scope,
            roles: &[],
        },
        unix_now(),
    )
    .unwrap()
    .token;
    assert_eq!(jwt_part(&api_only, 1)["aud"], "https://api.example.com");
    let (status, challenge, _) = get(&app, &api_only).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("not meant for the userinfo endpoint"), "{challenge}");

    // A service's token for the default audience (the issuer) is not one for userinfo either,
    // even with `openid` among its scopes.
    let service = app.service_client(&["openid"], &[]).await;
    let (_, _, body) = app
        .post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), service.secret.as_str())))
        .await;
    let service_token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(service_token, 1)["aud"], app.address.as_str());
    let (status, challenge, _) = get(&app, service_token).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("not meant for the userinfo endpoint"), "{challenge}");
}

/// A token without `openid` carries only the API audience: it was never meant for userinfo.
#[tokio::test]
async fn tokens_without_openid_carry_only_the_api_audience() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "email offline_access", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(jwt_part(tokens["access_token"].as_str().unwrap(), 1)["aud"], app.address.as_str());
    // With openid, the default audience and the userinfo audience.
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid", &p).await;
    let (_, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["aud"],
        json!([app.address, format!("{}/userinfo", app.address)])
    );
}
