//! Issue 13 item 6: OpenID Connect Back-Channel Logout 1.0. A test relying party listens on a
//! local port; when a session it signed into ends, it receives a logout token, which it
//! verifies against the served JWKS with an independent JWT library (jwt-simple).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use latchkey::config::HumanDuration;
use latchkey::domain::NewClient;
use serde_json::Value;

use crate::helpers::*;
use crate::mailbox::{set_password_by_link, spawn_mail_app, submit_form, NEW_PASSWORD};

/// A relying party's back-channel logout endpoint: keeps every `logout_token` it is sent and
/// answers 200.
#[derive(Clone, Default)]
struct TestRp {
    received: Arc<Mutex<Vec<String>>>,
}

impl TestRp {
    async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let rp = TestRp::default();
        let received = rp.received.clone();
        let router = axum::Router::new().route(
            "/backchannel-logout",
            axum::routing::post(move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let received = received.clone();
                async move {
                    if let Some(token) = form.get("logout_token") {
                        received.lock().unwrap().push(token.clone());
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        rp
    }

    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/backchannel-logout", listener.local_addr().unwrap());
        (Self::start_on(listener).await, uri)
    }

    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= count {
                return got;
            }
            assert!(Instant::now() < deadline, "{count} logout token(s) did not arrive; got {}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn app_with_backchannel(app: &TestApp, uri: &str, session_required: bool) -> AppClient {
    let redirect_uri = "http://127.0.0.1:9/callback".to_string();
    let post_logout_uri = "http://127.0.0.1:9/signed-out".to_string();
    let client = app
        .register(NewClient {
            name: "Logout App".into(),
            redirect_uris: vec![redirect_uri.clone()],
            post_logout_redirect_uris: vec![post_logout_uri.clone()],
            first_party: true,
            backchannel_logout_uri: Some(uri.to_string()),
            backchannel_logout_session_required: session_required,
            ..NewClient::default()
        })
        .await;
    AppClient { id: client.id, secret: client.secret, redirect_uri, post_logout_uri }
}

/// Verifies a logout token as an RP must (Back-Channel Logout §2.6), with jwt-simple against
/// the JWKS; returns its claims.
async fn verify_logout_token(app: &TestApp, token: &str, client_id: &str) -> Value {
    let header = jwt_part(token, 0);
    assert_eq!(header["typ"], "logout+jwt", "explicitly typed (§2.4)");
    let kid = header["kid"].as_str().expect("kid");
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    let b64 = |field: &str| URL_SAFE_NO_PAD.decode(jwk[field].as_str().unwrap()).unwrap();
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([app.address.clone()])),
        allowed_audiences: Some(HashSet::from([client_id.to_string()])),
        ..VerificationOptions::default()
    };
    assert_eq!(header["alg"], "RS256", "signed like the app's ID tokens (RS256 by default)");
    let claims = RS256PublicKey::from_components(&b64("n"), &b64("e"))
        .unwrap()
        .verify_token::<serde_json::Map<String, Value>>(token, Some(options))
        .expect("the logout token verifies against the JWKS");
    let payload = jwt_part(token, 1);
    assert_eq!(payload["events"], serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} }));
    assert!(payload.get("nonce").is_none(), "§2.4: no nonce");
    assert!(payload["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let (iat, exp) = (payload["iat"].as_i64().unwrap(), payload["exp"].as_i64().unwrap());
    assert!(exp > iat && exp - iat <= 120, "short-lived");
    assert!(claims.custom.contains_key("events"));
    payload
}

/// Signs `email` in to `client` and returns the tokens (the ID token carries `sid`).
async fn sign_in(app: &TestApp, b: &reqwest::Client, client: &AppClient, email: &str) -> Value {
    let pkce = pkce();
    let code = app.code_for(b, client, email, "openid email offline_access", &pkce).await;
    let (status, tokens) = app.redeem(client, &code, Some(&pkce.verifier)).await;
    assert_eq!(status, 200);
    tokens
}

#[tokio::test]
async fn rp_initiated_logout_sends_a_verifiable_logout_token_with_sub_and_sid() {
    let app = spawn_app_with(|s| s.email_poll_interval = HumanDuration::secs(1)).await;
    let (rp, uri) = TestRp::start().await;
    let client = app_with_backchannel(&app, &uri, true).await;
    let other = app.web_app(true).await;
    let user = app.user("ann@example.com").await;
    let b = browser();
    let tokens = sign_in(&app, &b, &client, &user.email).await;
    sign_in(&app, &b, &other, &user.email).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = jwt_part(id_token, 1)["sid"].as_str().unwrap().to_string();

    let logout = b
        .get(app.url("/logout"))
        .query(&[("id_token_hint", id_token), ("post_logout_redirect_uri", client.post_logout_uri.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status().as_u16(), 303);
    let received = rp.wait_for(1).await;
    let claims = verify_logout_token(&app, &received[0], &client.id).await;
    assert_eq!(claims["sub"], user.sub.as_str());
    assert_eq!(claims["sid"], sid.as_str(), "the sid of the app's ID token");
    // One token for the one session this app was signed into; the app without a URI gets none.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rp.received.lock().unwrap().len(), 1);
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM outbox WHERE kind = 'backchannel_logout'", &[]).await, Some(1));
    let (status, _) = app.refresh(&client, tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(status, 400, "the session's grants are revoked too");
}

/// A password reset, an admin disable and a withdrawn consent end sessions too.
#[tokio::test]
async fn a_password_reset_a_disable_and_a_withdrawn_consent_each_log_the_app_out() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let (rp, uri) = TestRp::start().await;
    let client = app_with_backchannel(&app, &uri, false).await;

    let reset = app.user("reset@example.com").await;
    sign_in(&app, &browser(), &client, &reset.email).await;
    submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &reset.email)]).await;
    let token = smtp.nth(&reset.email, 1).await.token(&app.url("/reset-password"));
    assert_eq!(
        set_password_by_link(&app, &browser(), "/reset-password", &token, NEW_PASSWORD).await.status().as_u16(),
        303
    );
    let first = rp.wait_for(1).await;
    assert_eq!(verify_logout_token(&app, &first[0], &client.id).await["sub"], reset.sub.as_str());

    let disabled = app.user("disabled@example.com").await;
    sign_in(&app, &browser(), &client, &disabled.email).await;
    let output = latchkey_cli(&app.db, &["user", "disable", &disabled.email], &[], None).await;
    cli_json(&output);
    let second = rp.wait_for(2).await;
    assert_eq!(verify_logout_token(&app, &second[1], &client.id).await["sub"], disabled.sub.as_str());

    // Consent withdrawn on the account page (a third-party app this time).
    let third_party = app
        .register(NewClient {
            name: "Third".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb3".into()],
            backchannel_logout_uri: Some(uri.clone()),
            ..NewClient::default()
        })
        .await;
    let third = AppClient {
        id: third_party.id.clone(),
        secret: third_party.secret.clone(),
        redirect_uri: "http://127.0.0.1:9/cb3".into(),
        post_logout_uri: String::new(),
    };
    let user = app.user("consent@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    sign_in(&app, &b, &third, &user.email).await;
    let revoked = submit_form(&app, &b, "/account", "/account/apps/revoke", &[("client_id", &third.id)]).await;
    assert_eq!(revoked.status().as_u16(), 303);
    let all = rp.wait_for(3).await;
    let claims = verify_logout_token(&app, &all[2], &third.id).await;
    assert_eq!(claims["sub"], user.sub.as_str());
}

/// The app is down for the first attempts and still hears of the logout later.
#[tokio::test]
async fn an_app_that_is_down_gets_its_logout_token_when_it_is_back() {
    let app = spawn_app_with(|s| {
        s.email_retry_base = HumanDuration::secs(1);
        s.email_poll_interval = HumanDuration::secs(1);
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let uri = format!("http://127.0.0.1:{port}/backchannel-logout");
    let client = app_with_backchannel(&app, &uri, false).await;
    let user = app.user("ann@example.com").await;
    let b = browser();
    sign_in(&app, &b, &client, &user.email).await;
    let logout_page = b.get(app.url("/logout")).send().await.unwrap().text().await.unwrap();
    let confirmed = b
        .post(app.url("/logout"))
        .form(&[("csrf", hidden_field(&logout_page, "csrf").as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert!(confirmed.status().is_success() || confirmed.status().as_u16() == 303);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts =
            query_i64(&app.db, "SELECT MAX(attempts) FROM outbox WHERE kind = 'backchannel_logout'", &[]).await;
        if attempts.unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the sender retries");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let rp = TestRp::start_on(listener).await;
    let received = rp.wait_for(1).await;
    assert_eq!(verify_logout_token(&app, &received[0], &client.id).await["sub"], user.sub.as_str());
}

#[tokio::test]
async fn registration_checks_the_uri_and_discovery_advertises_support() {
    let app = spawn_app().await;
    for bad in ["http://rp.example/logout", "https://rp.example/logout#frag", "not a url", "ftp://rp.example/x"] {
        let refused = latchkey::admin::clients::create(
            app.state.store(),
            NewClient {
                name: "x".into(),
                redirect_uris: vec!["https://rp.example/cb".into()],
                backchannel_logout_uri: Some(bad.into()),
                ..NewClient::default()
            },
            &latchkey::admin::actor::Actor::Cli,
            latchkey::state::unix_now(),
        )
        .await;
        assert!(refused.is_err(), "{bad}");
    }
    let output = latchkey_cli(
        &app.db,
        &[
            "client",
            "create",
            "--name",
            "RP",
            "--redirect-uri",
            "https://rp.example/cb",
            "--backchannel-logout-uri",
            "https://rp.example/backchannel?x=1",
            "--backchannel-logout-session-required",
        ],
        &[],
        None,
    )
    .await;
    let created = cli_json(&output);
    assert_eq!(created["backchannel_logout_uri"], "https://rp.example/backchannel?x=1");
    assert_eq!(created["backchannel_logout_session_required"], true);
    let id = created["client_id"].as_str().unwrap();
    let updated =
        cli_json(&latchkey_cli(&app.db, &["client", "update", id, "--no-backchannel-logout"], &[], None).await);
    assert_eq!(updated["backchannel_logout_uri"], Value::Null);
    assert_eq!(updated["backchannel_logout_session_required"], false);

    let (_, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(metadata["backchannel_logout_supported"], true);
    assert_eq!(metadata["backchannel_logout_session_supported"], true);
}
