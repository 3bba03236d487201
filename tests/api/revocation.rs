//! Token revocation (RFC 7009; issue 11 item 2), through the `oauth2` crate's revocation client
//! where it applies: a refresh token or a user's access token ends its whole grant; a
//! client-credentials token is remembered as revoked; unknown, malformed and already-revoked
//! tokens answer 200; another client's token is left alone; client authentication and its
//! throttle are the token endpoint's.

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError, RevocationUrl,
    StandardRevocableToken,
};
use serde_json::Value;

use crate::helpers::*;

type Revoker = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointNotSet>;

/// A revocation client as an app builds it from discovery (`revocation_endpoint`). RFC 7009 §2
/// requires TLS and the library refuses a plain-http URL, while the test server speaks http on
/// loopback: the library gets the https form of the advertised URL, and [`tls_terminator`]
/// delivers its request unchanged to the http address, as a TLS proxy in front would.
async fn revoker(app: &TestApp, id: &str, secret: Option<&str>) -> Revoker {
    let (_, _, discovery) = app.get_json("/.well-known/openid-configuration").await;
    let url = discovery["revocation_endpoint"].as_str().expect("revocation_endpoint advertised");
    assert_eq!(url, app.url("/revoke"));
    let url = url.replacen("http://", "https://", 1);
    let client = BasicClient::new(ClientId::new(id.into())).set_revocation_url(RevocationUrl::new(url).unwrap());
    match secret {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.into())),
        None => client,
    }
}

/// Sends the library's request (method, headers, body) to the test server over plain http.
async fn tls_terminator(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let url = request.uri().to_string().replacen("https://", "http://", 1);
    let response = http
        .request(request.method().clone(), url)
        .headers(request.headers().clone())
        .body(request.body().clone())
        .send()
        .await?;
    let mut answer = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    Ok(answer.body(response.bytes().await?.to_vec()).expect("a response"))
}

async fn revoke(
    client: &Revoker,
    app: &TestApp,
    token: StandardRevocableToken,
) -> Result<(), RequestTokenError<reqwest::Error, oauth2::basic::BasicRevocationErrorResponse>> {
    let send = |request: oauth2::HttpRequest| tls_terminator(app.http.clone(), request);
    client.revoke_token(token).unwrap().request_async(&send).await
}

async fn revoke_ok(client: &Revoker, app: &TestApp, token: StandardRevocableToken) {
    revoke(client, app, token).await.expect("revocation answers 200");
}

/// Ann signed in to `client` with a refresh token: (access token, refresh token).
async fn signed_in_tokens(app: &TestApp, client: &AppClient, email: &str) -> (String, String) {
    let p = pkce();
    let code = app.code_for(&browser(), client, email, "openid email offline_access", &p).await;
    let (status, tokens) = app.redeem(client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    (tokens["access_token"].as_str().unwrap().into(), tokens["refresh_token"].as_str().unwrap().into())
}

/// A resource server allowed to introspect the default audience's tokens (the issuer).
async fn resource_server(app: &TestApp) -> RegisteredClient {
    app.register(latchkey::domain::NewClient {
        name: "api".into(),
        introspect: true,
        audience: Some(app.address.clone()),
        ..Default::default()
    })
    .await
}

async fn introspect(app: &TestApp, rs: &RegisteredClient, token: &str) -> Value {
    let response = app.http.post(app.url("/introspect")).basic_auth(&rs.id, Some(&rs.secret)).form(&[("token", token)]);
    let response = response.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

async fn cc_token(app: &TestApp, service: &RegisteredClient) -> String {
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// Form POST to /revoke with optional Basic credentials: status, headers, body text.
async fn post_revoke(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = app.http.post(app.url("/revoke")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn a_revoked_refresh_token_ends_its_grant_and_the_grants_access_tokens() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let rs = resource_server(&app).await;
    let (access, refresh) = signed_in_tokens(&app, &client, &user.email).await;
    // A second access token of the same grant, from a refresh.
    let (status, refreshed) = app.refresh(&client, &refresh, None).await;
    assert_eq!(status, 200, "{refreshed}");
    let access2 = refreshed["access_token"].as_str().unwrap().to_string();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&app, &rs, &access).await["active"], true);
    assert_eq!(app.userinfo_status(&access2).await, 200);

    let revoker = revoker(&app, &client.id, Some(&client.secret)).await;
    revoke_ok(&revoker, &app, RefreshToken::new(refresh2.clone()).into()).await;

    for token in [&access, &access2] {
        assert_eq!(introspect(&app, &rs, token).await, serde_json::json!({"active": false}));
        assert_eq!(app.userinfo_status(token).await, 401, "userinfo refuses the revoked grant's token");
    }
    let (status, body) = app.refresh(&client, &refresh2, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the refresh token is dead");
    // Revoking it again: 200, nothing more to do (RFC 7009 §2.2).
    revoke_ok(&revoker, &app, RefreshToken::new(refresh2).into()).await;
}

#[tokio::test]
async fn a_revoked_user_access_token_ends_its_grant() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let (access, refresh) = signed_in_tokens(&app, &client, &user.email).await;
    let (other_access, _) = signed_in_tokens(&app, &client, &user.email).await;

    // With a wrong hint: a hint only (RFC 7009 §2.1), the token is still found.
    let (status, headers, body) = post_revoke(
        &app,
        &[("token", access.as_str()), ("token_type_hint", "refresh_token")],
        Some((&client.id, &client.secret)),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(app.userinfo_status(&access).await, 401);
    let (status, body) = app.refresh(&client, &refresh, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the grant's refresh token died");
    assert_eq!(app.userinfo_status(&other_access).await, 200, "another grant of the same user and app lives");
}

#[tokio::test]
async fn a_client_can_never_revoke_another_clients_tokens() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let victim = app.web_app(false).await;
    let attacker = app.web_app(false).await;
    let rs = resource_server(&app).await;
    let service = app.service_client(&[], &[]).await;
    let other_service = app.service_client(&[], &[]).await;
    let (access, refresh) = signed_in_tokens(&app, &victim, &user.email).await;
    let service_token = cc_token(&app, &service).await;

    let revoker = revoker(&app, &attacker.id, Some(&attacker.secret)).await;
    revoke_ok(&revoker, &app, RefreshToken::new(refresh.clone()).into()).await;
    revoke_ok(&revoker, &app, AccessToken::new(access.clone()).into()).await;
    let revoker = revoker_for(&app, &other_service).await;
    revoke_ok(&revoker, &app, AccessToken::new(service_token.clone()).into()).await;

    assert_eq!(app.userinfo_status(&access).await, 200, "the victim's grant lives");
    assert_eq!(introspect(&app, &rs, &access).await["active"], true);
    assert_eq!(introspect(&app, &rs, &service_token).await["active"], true);
    let (status, body) = app.refresh(&victim, &refresh, None).await;
    assert_eq!(status, 200, "the victim's refresh token still works: {body}");
}

async fn revoker_for(app: &TestApp, client: &RegisteredClient) -> Revoker {
    revoker(app, &client.id, Some(&client.secret)).await
}

#[tokio::test]
async fn a_revoked_client_credentials_token_is_inactive_and_the_others_stay_active() {
    let app = spawn_app().await;
    let rs = resource_server(&app).await;
    let service = app.service_client(&["read"], &["reporting"]).await;
    let revoked = cc_token(&app, &service).await;
    let kept = cc_token(&app, &service).await;
    assert_eq!(introspect(&app, &rs, &revoked).await["active"], true);

    revoke_ok(&revoker_for(&app, &service).await, &app, AccessToken::new(revoked.clone()).into()).await;
    assert_eq!(introspect(&app, &rs, &revoked).await, serde_json::json!({"active": false}));
    let answer = introspect(&app, &rs, &kept).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], format!("client:{}", service.id));
    let fresh = cc_token(&app, &service).await;
    assert_eq!(introspect(&app, &rs, &fresh).await["active"], true, "new tokens are not affected");
    // Revoked twice: still 200.
    revoke_ok(&revoker_for(&app, &service).await, &app, AccessToken::new(revoked).into()).await;
}

#[tokio::test]
async fn unknown_malformed_and_revoked_tokens_answer_200() {
    let app = spawn_app().await;
    let service = app.service_client(&[], &[]).await;
    let creds = Some((service.id.as_str(), service.secret.as_str()));
    let tampered = {
        let token = cc_token(&app, &service).await;
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    let long = "x".repeat(5000);
    for token in ["unknown-refresh-token", "a.b.c", "not base64.!!.??", tampered.as_str(), long.as_str()] {
        let (status, _, body) = post_revoke(&app, &[("token", token)], creds).await;
        assert_eq!((status, body.as_str()), (200, ""), "{token:.40}");
    }
    let (status, _, body) = post_revoke(&app, &[("token", "x"), ("token_type_hint", "id_token")], creds).await;
    assert_eq!((status, body.as_str()), (200, ""), "an unknown hint is ignored, not unsupported_token_type");
    // RFC 7009 §2.1: `token` is required.
    let (status, _, body) = post_revoke(&app, &[("token_type_hint", "refresh_token")], creds).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn revocation_authenticates_clients_as_the_token_endpoint_does() {
    let app = spawn_app_with(|s| s.ip_failure_burst = 3).await;
    let user = app.user("ann@example.com").await;
    let service = app.service_client(&[], &[]).await;

    // A public client authenticates by client_id alone and revokes its own refresh token.
    let public = app
        .register(latchkey::domain::NewClient {
            name: "spa".into(),
            public: true,
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            ..Default::default()
        })
        .await;
    let public_app = AppClient {
        id: public.id.clone(),
        secret: String::new(),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        post_logout_uri: String::new(),
    };
    let p = pkce();
    let code = app.code_for(&browser(), &public_app, &user.email, "openid offline_access", &p).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/callback"),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", public.id.as_str()),
    ];
    let (status, _, tokens) = app.post_token(&form, None).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, _) = post_revoke(&app, &[("token", refresh), ("client_id", public.id.as_str())], None).await;
    assert_eq!(status, 200);
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", public.id.as_str())];
    let (status, _, body) = app.post_token(&form, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "revoked");

    // No credentials, or wrong ones: 401 invalid_client, with a Basic challenge when Basic was used.
    let (status, _, body) = post_revoke(&app, &[("token", "x")], None).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let failed = revoker(&app, &service.id, Some("wrong secret")).await;
    match revoke(&failed, &app, AccessToken::new("x".into()).into()).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error().to_string(), "invalid_client"),
        other => panic!("a wrong secret must fail with invalid_client: {other:?}"),
    }
    let (status, headers, _) = post_revoke(&app, &[("token", "x")], Some((&service.id, "wrong"))).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"), "{headers:?}");

    // Guessing the secret is throttled per (address, client_id), as at /token, and the same
    // bucket: the token endpoint refuses too.
    let mut blocked = None;
    for _ in 0..5 {
        let (status, headers, _) = post_revoke(&app, &[("token", "x")], Some((&service.id, "wrong"))).await;
        if status == 429 {
            blocked = Some(headers);
            break;
        }
        assert_eq!(status, 401);
    }
    let headers = blocked.expect("failed client authentication at /revoke is throttled");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = post_revoke(&app, &[("token", "x")], Some((&service.id, &service.secret))).await;
    assert_eq!(status, 429, "blocked before anything is checked");
    let (status, _, _) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    assert_eq!(status, 429, "the token endpoint shares the bucket");
}
