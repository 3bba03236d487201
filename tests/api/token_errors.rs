//! Every way a token request can be wrong, with the exact status, error code and headers
//! RFC 6749 §5.2 asks for.

use std::time::Duration;

use latchkey::admin::clients;
use latchkey::domain::NewClient;
use latchkey::state::unix_now;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenUrl};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!((status, body["error"].as_str().unwrap_or("<none>")), (want_status, want_code), "body: {body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "body: {body}");
}

async fn raw_post(
    app: &TestApp,
    content_type: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app.http.post(app.token_url()).header("content-type", content_type).body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn wrong_secret_is_401_invalid_client_with_basic_challenge() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let (status, headers, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, "not-the-secret"))).await;
    assert_error(status, &body, 401, "invalid_client");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic realm="));
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn wrong_secret_in_body_is_401_without_challenge() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let (status, headers, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("client_id", &client.id), ("client_secret", "wrong")],
            None,
        )
        .await;
    assert_error(status, &body, 401, "invalid_client");
    assert!(headers.get("www-authenticate").is_none());
}

#[tokio::test]
async fn unknown_client_and_missing_credentials_are_invalid_client() {
    let app = spawn_app().await;
    let (status, _, unknown) =
        app.post_token(&[("grant_type", "client_credentials")], Some(("no-such-client", "x"))).await;
    assert_error(status, &unknown, 401, "invalid_client");
    let client = app.service_client(&[], &[]).await;
    let (_, _, wrong) = app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, "x"))).await;
    assert_eq!(unknown, wrong, "unknown id and wrong secret must look the same");

    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], None).await;
    assert_error(status, &body, 401, "invalid_client");
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials"), ("client_id", &client.id)], None).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn oauth2_crate_sees_invalid_scope_for_a_scope_the_client_may_not_have() {
    let app = spawn_app().await;
    let client = app.service_client(&["read"], &[]).await;
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.token_url()).unwrap())
        .set_auth_type(AuthType::BasicAuth);
    let err = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .add_scope(Scope::new("admin".into()))
        .request_async(&app.http)
        .await
        .unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope);
            assert!(e.error_description().unwrap().contains("admin"));
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_scope_is_invalid_scope() {
    let app = spawn_app().await;
    let client = app.service_client(&["read"], &[]).await;
    let (status, _, body) = app
        .post_token(&[("grant_type", "client_credentials"), ("scope", "re\"ad")], Some((&client.id, &client.secret)))
        .await;
    assert_error(status, &body, 400, "invalid_scope");
}

#[tokio::test]
async fn a_client_not_registered_for_the_grant_is_unauthorized_client() {
    let app = spawn_app().await;
    let web_app = app
        .register(NewClient {
            name: "web".into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            ..NewClient::default()
        })
        .await;
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&web_app.id, &web_app.secret))).await;
    assert_error(status, &body, 400, "unauthorized_client");
}

#[tokio::test]
async fn password_implicit_and_unknown_grants_are_unsupported() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    for grant in ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "magic"] {
        let (status, _, body) = app
            .post_token(
                &[("grant_type", grant), ("username", "u"), ("password", "p")],
                Some((&client.id, &client.secret)),
            )
            .await;
        assert_error(status, &body, 400, "unsupported_grant_type");
    }
}

#[tokio::test]
async fn missing_grant_type_and_repeated_parameters_are_invalid_request() {
    let app = spawn_app().await;
    let client = app.service_client(&["a", "b"], &[]).await;
    let (status, _, body) = app.post_token(&[("scope", "a")], Some((&client.id, &client.secret))).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, _, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("scope"));
}

#[tokio::test]
async fn two_authentication_methods_are_invalid_request() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let (status, _, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("client_id", &client.id), ("client_secret", &client.secret)],
            Some((&client.id, &client.secret)),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let app = spawn_app().await;
    let (status, headers, body) =
        raw_post(&app, "application/json", br#"{"grant_type":"client_credentials"}"#.to_vec(), None).await;
    assert_error(status, &body, 400, "invalid_request");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn malformed_bodies_and_headers_get_a_4xx_never_a_5xx() {
    let app = spawn_app_with(|s| s.max_body_bytes = 4096).await;
    let form = "application/x-www-form-urlencoded";
    let huge = format!("grant_type=client_credentials&x={}", "a".repeat(10_000));
    let (status, _, body) = raw_post(&app, form, huge.into_bytes(), None).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, _, body) = raw_post(&app, form, b"grant_type=%ff%fe".to_vec(), None).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, _, body) = raw_post(&app, form, vec![0xff, 0xfe, 0x00, 0x80], None).await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, headers, body) =
        raw_post(&app, form, b"grant_type=client_credentials".to_vec(), Some("Basic %%%")).await;
    assert_error(status, &body, 401, "invalid_client");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, body) = raw_post(&app, form, b"grant_type=client_credentials".to_vec(), Some("Bearer abc")).await;
    assert_error(status, &body, 401, "invalid_client");
    let long_id = "i".repeat(5000);
    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], Some((&long_id, "s"))).await;
    assert_error(status, &body, 401, "invalid_client");
    // GET is not a token request.
    let response = app.http.get(app.token_url()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
}

#[tokio::test]
async fn disabled_client_and_rotated_secret_stop_working() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let store = app.state.store();

    let new_secret =
        clients::rotate_secret(store, &client.id, &latchkey::admin::actor::Actor::Cli, unix_now()).await.unwrap();
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &client.secret))).await;
    assert_error(status, &body, 401, "invalid_client");
    let (status, _, _) = app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &new_secret))).await;
    assert_eq!(status, 200);

    clients::disable(store, &client.id, &latchkey::admin::actor::Actor::Cli, unix_now()).await.unwrap();
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &new_secret))).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn client_cache_bounds_how_long_a_disabled_client_keeps_working() {
    let app = spawn_app_with(|s| s.client_cache_ttl = latchkey::config::HumanDuration::secs(1)).await;
    let client = app.service_client(&[], &[]).await;
    let creds = Some((client.id.as_str(), client.secret.as_str()));
    assert_eq!(app.post_token(&[("grant_type", "client_credentials")], creds).await.0, 200);
    clients::disable(app.state.store(), &client.id, &latchkey::admin::actor::Actor::Cli, unix_now()).await.unwrap();
    // Within the TTL the cached copy may still answer; after it, never.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], creds).await;
    assert_error(status, &body, 401, "invalid_client");
}

#[tokio::test]
async fn public_clients_cannot_use_client_credentials() {
    let app = spawn_app().await;
    let (client, secret) = clients::create(
        app.state.store(),
        NewClient {
            name: "spa".into(),
            public: true,
            redirect_uris: vec!["https://spa.example.com/cb".into()],
            ..NewClient::default()
        },
        &latchkey::admin::actor::Actor::Cli,
        unix_now(),
    )
    .await
    .unwrap();
    assert!(secret.is_none());
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials"), ("client_id", &client.id)], None).await;
    assert_error(status, &body, 400, "unauthorized_client");
}
