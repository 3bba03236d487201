//! Token introspection (RFC 7662; issue 11 item 3), through the `oauth2` crate's introspection
//! client where it applies: a resource server (`--introspect`) learns about access tokens meant
//! for it; everything expired, revoked, foreign, malformed or meant for another audience is
//! `{"active": false}`; a client without the permission gets 403, a failed authentication 401;
//! a client may introspect its own refresh tokens.

use latchkey::domain::NewClient;
use latchkey::oauth::access_token::{mint, AccessTokenRequest};
use latchkey::state::unix_now;
use oauth2::basic::{BasicClient, BasicTokenType};
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, IntrospectionUrl, RequestTokenError,
    TokenIntrospectionResponse,
};
use serde_json::{json, Value};

use crate::helpers::*;

type Introspector = BasicClient<EndpointNotSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointNotSet>;

/// An introspection client as a resource server builds it from discovery.
async fn introspector(app: &TestApp, id: &str, secret: &str) -> Introspector {
    let (_, _, discovery) = app.get_json("/.well-known/openid-configuration").await;
    let url = discovery["introspection_endpoint"].as_str().expect("introspection_endpoint advertised").to_string();
    BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_introspection_url(IntrospectionUrl::new(url).unwrap())
}

async fn resource_server(app: &TestApp, audience: Option<&str>) -> RegisteredClient {
    app.register(NewClient {
        name: "api".into(),
        introspect: true,
        audience: audience.map(str::to_string),
        ..Default::default()
    })
    .await
}

/// The raw answer: status, headers, JSON.
async fn post_introspect(
    app: &TestApp,
    creds: Option<(&str, &str)>,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.http.post(app.url("/introspect")).form(&[("token", token)]);
    if let Some((id, secret)) = creds {
        request = request.basic_auth(id, Some(secret));
    }
    // Failures say what came back: a CI run once failed in here without a message.
    let response = request.send().await.unwrap_or_else(|e| panic!("POST /introspect failed: {e:?}"));
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.text().await.unwrap_or_else(|e| panic!("reading the {status} answer failed: {e:?}"));
    let json =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("a {status} answer that is not JSON ({e}): {body:?}"));
    (status, headers, json)
}

async fn user_tokens(app: &TestApp, client: &AppClient, email: &str, scope: &str) -> Value {
    let p = pkce();
    let code = app.code_for(&browser(), client, email, scope, &p).await;
    let (status, tokens) = app.redeem(client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

#[tokio::test]
async fn a_resource_server_introspects_a_users_access_token() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let rs = resource_server(&app, Some(&app.address)).await;
    let tokens = user_tokens(&app, &client, &user.email, "openid email roles offline_access").await;
    let access = tokens["access_token"].as_str().unwrap();

    let answer = introspector(&app, &rs.id, &rs.secret)
        .await
        .introspect(&AccessToken::new(access.into()))
        .request_async(&app.http)
        .await
        .expect("introspection");
    assert!(answer.active());
    assert_eq!(answer.sub(), Some(user.sub.as_str()));
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some(client.id.as_str()));
    assert_eq!(answer.iss(), Some(app.address.as_str()));
    assert_eq!(answer.token_type(), Some(&BasicTokenType::Bearer));
    let mut scopes: Vec<String> = answer.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    scopes.sort();
    assert_eq!(scopes, ["email", "offline_access", "openid", "roles"]);
    assert!(answer.aud().unwrap().contains(&app.address));
    let claims = jwt_part(access, 1);
    assert_eq!(answer.exp().unwrap().timestamp(), claims["exp"].as_i64().unwrap());
    assert_eq!(answer.iat().unwrap().timestamp(), claims["iat"].as_i64().unwrap());
    assert_eq!(answer.jti(), claims["jti"].as_str());

    let (status, headers, raw) = post_introspect(&app, Some((&rs.id, &rs.secret)), access).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("access-control-allow-origin").is_none(), "no CORS on introspection");
    assert_eq!(raw["roles"], json!(["admin", "billing"]));
    assert_eq!(raw["token_use"], "access_token");
    assert_eq!(raw["aud"], claims["aud"]);

    // Once the grant is revoked (here: the user revokes the app on the account page) the token
    // is inactive, though its signature is still good.
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", hidden_field(&page, "csrf")), ("client_id", client.id.clone())];
    assert_eq!(b.post(app.url("/account/apps/revoke")).form(&form).send().await.unwrap().status().as_u16(), 303);
    let (status, headers, raw) = post_introspect(&app, Some((&rs.id, &rs.secret)), access).await;
    assert_eq!((status, raw), (200, json!({"active": false})));
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn tokens_not_meant_for_the_caller_are_inactive() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let other_api = resource_server(&app, Some("https://other.example/api")).await;
    let no_audience = resource_server(&app, None).await;
    let tokens = user_tokens(&app, &client, &user.email, "openid").await;
    let access = tokens["access_token"].as_str().unwrap();
    for rs in [&other_api, &no_audience] {
        let (status, _, raw) = post_introspect(&app, Some((&rs.id, &rs.secret)), access).await;
        assert_eq!((status, raw), (200, json!({"active": false})));
    }

    // A service whose tokens are for the resource server by its client id: the resource server
    // sees them; another resource server does not.
    let service = app
        .register(NewClient {
            name: "caller of no_audience".into(),
            audience: Some(no_audience.id.clone()),
            scopes: vec!["read".into()],
            ..Default::default()
        })
        .await;
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    assert_eq!(status, 200, "{body}");
    let cc = body["access_token"].as_str().unwrap();
    let (_, _, raw) = post_introspect(&app, Some((&no_audience.id, &no_audience.secret)), cc).await;
    assert_eq!(raw["active"], true, "{raw}");
    assert_eq!(raw["aud"], no_audience.id.as_str());
    assert_eq!(raw["scope"], "read");
    let (_, _, raw) = post_introspect(&app, Some((&other_api.id, &other_api.secret)), cc).await;
    assert_eq!(raw, json!({"active": false}));

    // A disabled service's tokens are no longer active.
    latchkey::admin::clients::disable(app.state.store(), &service.id, &latchkey::admin::actor::Actor::Cli, unix_now())
        .await
        .unwrap();
    let (_, _, raw) = post_introspect(&app, Some((&no_audience.id, &no_audience.secret)), cc).await;
    assert_eq!(raw, json!({"active": false}));
}

#[tokio::test]
async fn expired_foreign_tampered_and_malformed_tokens_are_inactive() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let rs = resource_server(&app, Some(&app.address)).await;
    let creds = Some((rs.id.as_str(), rs.secret.as_str()));
    let tokens = user_tokens(&app, &client, &user.email, "openid").await;
    let keys = app.state.keys();
    let settings = &app.state.token_settings().access;
    let scope = latchkey::domain::ScopeSet::parse("read").unwrap();
    let request = |grant| AccessTokenRequest {
        grant_id: grant,
        subject: "client:x",
        audience: &app.address,
        for_userinfo: false,
        client_id: &rs.id,
        scope: &scope,
        roles: &[],
    };
    // Signed by us, for the caller, but expired a second ago (no leeway here).
    let expired = mint(&keys, settings, request(None), unix_now() - settings.ttl_secs - 1).unwrap().token;
    // Signed by our key but naming another issuer.
    let mut foreign_settings = settings.clone();
    foreign_settings.issuer = "https://elsewhere.example".into();
    let foreign = mint(&keys, &foreign_settings, request(None), unix_now()).unwrap().token;
    // The same token, live, as a control.
    let live = mint(&keys, settings, request(None), unix_now()).unwrap().token;
    let (_, _, raw) = post_introspect(&app, creds, &live).await;
    assert_eq!(raw["active"], true, "control: {raw}");
    let mut parts: Vec<&str> = live.split('.').collect();
    let other_payload = tokens["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
    parts[1] = &other_payload;
    let tampered = parts.join(".");
    let id_token = tokens["id_token"].as_str().unwrap();
    let none_alg = format!("{}.{}.", base64url(r#"{"alg":"none","typ":"at+jwt"}"#), live.split('.').nth(1).unwrap());
    for (what, token) in [
        ("expired", expired.as_str()),
        ("foreign issuer", foreign.as_str()),
        ("tampered", tampered.as_str()),
        ("an ID token", id_token),
        ("alg none", none_alg.as_str()),
        ("malformed", "a.b.c"),
        ("garbage", "%%%"),
        ("too long", &"x".repeat(10_000)),
    ] {
        let (status, headers, raw) = post_introspect(&app, creds, token).await;
        assert_eq!((status, &raw), (200, &json!({"active": false})), "{what}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
    }
}

fn base64url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_client_without_the_permission_gets_403_and_a_failed_authentication_401() {
    let app = spawn_app().await;
    let rs = resource_server(&app, None).await;
    let service = app.service_client(&[], &[]).await;
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    assert_eq!(status, 200);
    let token = AccessToken::new(body["access_token"].as_str().unwrap().into());

    // Authenticated, not allowed: 403 unauthorized_client.
    let (status, _, raw) = post_introspect(&app, Some((&service.id, &service.secret)), token.secret()).await;
    assert_eq!((status, raw["error"].as_str()), (403, Some("unauthorized_client")), "{raw}");
    match introspector(&app, &service.id, &service.secret).await.introspect(&token).request_async(&app.http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error().to_string(), "unauthorized_client"),
        other => panic!("a client without --introspect must be refused: {other:?}"),
    }
    // Wrong secret, no credentials, a public client: 401 invalid_client (RFC 7662 §2.3).
    match introspector(&app, &rs.id, "wrong").await.introspect(&token).request_async(&app.http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error().to_string(), "invalid_client"),
        other => panic!("a wrong secret must be refused: {other:?}"),
    }
    let (status, _, raw) = post_introspect(&app, None, token.secret()).await;
    assert_eq!((status, raw["error"].as_str()), (401, Some("invalid_client")));
    let public = app
        .register(NewClient {
            name: "spa".into(),
            public: true,
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            ..Default::default()
        })
        .await;
    let response = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", token.secret().as_str()), ("client_id", public.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The resource server itself: the service's token is for the default audience, not for it.
    let (status, _, raw) = post_introspect(&app, Some((&rs.id, &rs.secret)), token.secret()).await;
    assert_eq!((status, raw), (200, json!({"active": false})));
    // `token` is required.
    let response =
        app.http.post(app.url("/introspect")).basic_auth(&rs.id, Some(&rs.secret)).form(&[("x", "y")]).send().await;
    let response = response.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn a_client_introspects_its_own_refresh_tokens() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let other = app.web_app(false).await;
    let tokens = user_tokens(&app, &client, &user.email, "openid email offline_access").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let introspector = introspector(&app, &client.id, &client.secret).await;
    let answer = introspector
        .introspect(&AccessToken::new(refresh.into()))
        .set_token_type_hint("refresh_token")
        .request_async(&app.http)
        .await
        .expect("introspection of the app's own refresh token");
    assert!(answer.active());
    assert_eq!(answer.sub(), Some(user.sub.as_str()));
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some(client.id.as_str()));
    let mut scopes: Vec<String> = answer.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    scopes.sort();
    assert_eq!(scopes, ["email", "offline_access", "openid"]);
    assert!(answer.exp().unwrap().timestamp() > unix_now());
    let (_, headers, raw) = post_introspect(&app, Some((&client.id, &client.secret)), refresh).await;
    assert_eq!(raw["token_use"], "refresh_token");
    assert_eq!(headers["cache-control"], "no-store");

    // Another app learns nothing about it.
    let (status, _, raw) = post_introspect(&app, Some((&other.id, &other.secret)), refresh).await;
    assert_eq!((status, raw), (200, json!({"active": false})));

    // Rotated: the old one is no longer active, the new one is.
    let (status, refreshed) = app.refresh(&client, refresh, None).await;
    assert_eq!(status, 200);
    let (_, _, raw) = post_introspect(&app, Some((&client.id, &client.secret)), refresh).await;
    assert_eq!(raw, json!({"active": false}));
    let newer = refreshed["refresh_token"].as_str().unwrap();
    let (_, _, raw) = post_introspect(&app, Some((&client.id, &client.secret)), newer).await;
    assert_eq!(raw["active"], true);
}

#[tokio::test]
async fn a_resource_server_is_registered_with_the_cli_without_grant_types() {
    let app = spawn_app().await;
    let created = cli_json(
        &latchkey_cli(
            &app.db,
            &["client", "create", "--name", "orders api", "--introspect", "--audience", "https://orders.example"],
            &[],
            None,
        )
        .await,
    );
    assert_eq!(created["introspect"], true);
    assert_eq!(created["grant_types"], json!([]));
    assert_eq!(created["redirect_uris"], json!([]));
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    // It gets no tokens itself.
    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    // `--grant-type none` says the same explicitly; a service is introspect: false.
    let explicit = cli_json(
        &latchkey_cli(
            &app.db,
            &["client", "create", "--name", "api 2", "--introspect", "--grant-type", "none"],
            &[],
            None,
        )
        .await,
    );
    assert_eq!(explicit["grant_types"], json!([]));
    let service = cli_json(&latchkey_cli(&app.db, &["client", "create", "--name", "svc"], &[], None).await);
    assert_eq!(
        (service["introspect"].clone(), service["grant_types"].clone()),
        (json!(false), json!(["client_credentials"]))
    );
    let refused = latchkey_cli(
        &app.db,
        &["client", "create", "--name", "spa", "--public", "--introspect", "--redirect-uri", "http://127.0.0.1:9/cb"],
        &[],
        None,
    )
    .await;
    assert!(!refused.status.success(), "a public client cannot introspect");
    // The one the CLI made introspects tokens for its audience.
    let (status, _, raw) = post_introspect(&app, Some((id, secret)), "a.b.c").await;
    assert_eq!((status, raw), (200, json!({"active": false})));
}
