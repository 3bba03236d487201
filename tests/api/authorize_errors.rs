//! The authorization endpoint's refusals (shared/security.md, "Authorization endpoint").

use crate::helpers::{authorize_url, browser, location, pkce, query_of, spawn_app, AppClient};

/// Asserts an error page: status 400, HTML, and above all no Location (no redirect).
async fn assert_error_page(browser: &reqwest::Client, url: &str) {
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400, "{url}");
    assert!(response.headers().get("location").is_none(), "never a redirect: {url}");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

/// Asserts a redirect to the verified redirect URI with `error`, `state` and `iss`.
async fn assert_error_redirect(
    app: &crate::helpers::TestApp,
    browser: &reqwest::Client,
    client: &AppClient,
    url: &str,
    error: &str,
) {
    let response = browser.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "{url}");
    let target = location(&response);
    assert!(target.starts_with(&client.redirect_uri), "{target}");
    let q = query_of(&target);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{target}");
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(q.get("iss"), Some(&app.address), "RFC 9207");
    assert!(!q.contains_key("code") && !q.contains_key("access_token"));
}

#[tokio::test]
async fn redirect_uri_near_misses_get_an_error_page_never_a_redirect() {
    let app = spawn_app().await;
    let client = app.web_app(false).await; // registered: http://127.0.0.1:9/callback
    let b = browser();
    let p = pkce();
    for near in [
        "http://127.0.0.1:9/callback/",
        "http://127.0.0.1:9/Callback",
        "http://127.0.0.1:9/callback?x=1",
        "http://127.0.0.1:9/callback#frag",
        "https://127.0.0.1:9/callback",
        "http://127.0.0.1:9/callback/../callback",
        "http://127.0.0.1:9/%63allback",
        "http://127.0.0.2:9/callback",
        "http://localhost:9/callback",
        "http://user@127.0.0.1:9/callback",
        "http://127.0.0.1.evil.com:9/callback",
        "https://evil.example.com/callback",
        "javascript:alert(1)",
    ] {
        assert_error_page(&b, &authorize_url(&app, &client, "openid", &p.challenge, &[("redirect_uri", near)])).await;
    }
    // RFC 8252 §7.3: a loopback IP literal may vary only its port.
    let other_port =
        authorize_url(&app, &client, "openid", &p.challenge, &[("redirect_uri", "http://127.0.0.1:5555/callback")]);
    let response = b.get(&other_port).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(location(&response).starts_with("/login?rid="));
}

#[tokio::test]
async fn unknown_disabled_or_missing_client_gets_an_error_page() {
    let app = spawn_app().await;
    let client = app.web_app(false).await;
    let b = browser();
    let p = pkce();
    assert_error_page(&b, &authorize_url(&app, &client, "openid", &p.challenge, &[("client_id", "")])).await;
    assert_error_page(&b, &authorize_url(&app, &client, "openid", &p.challenge, &[("client_id", "nope")])).await;
    let repeated = format!("{}&client_id={}", authorize_url(&app, &client, "openid", &p.challenge, &[]), client.id);
    assert_error_page(&b, &repeated).await;
    latchkey::admin::clients::disable(
        app.state.store(),
        &client.id,
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    assert_error_page(&b, &authorize_url(&app, &client, "openid", &p.challenge, &[])).await;
}

#[tokio::test]
async fn missing_redirect_uri_is_allowed_only_with_a_single_registered_one() {
    let app = spawn_app().await;
    let single = app.web_app(false).await;
    let b = browser();
    let p = pkce();
    let ok = b.get(authorize_url(&app, &single, "openid", &p.challenge, &[("redirect_uri", "")])).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    let two = app
        .register(latchkey::domain::NewClient {
            name: "two".into(),
            redirect_uris: vec!["https://a.example.com/cb".into(), "https://b.example.com/cb".into()],
            ..Default::default()
        })
        .await;
    let two = AppClient {
        id: two.id,
        secret: two.secret,
        redirect_uri: "https://a.example.com/cb".into(),
        post_logout_uri: String::new(),
    };
    assert_error_page(&b, &authorize_url(&app, &two, "openid", &p.challenge, &[("redirect_uri", "")])).await;
}

#[tokio::test]
async fn errors_after_the_redirect_is_verified_go_back_with_state_and_iss() {
    let app = spawn_app().await;
    let client = app.web_app(false).await;
    let b = browser();
    let p = pkce();
    let url = |o: &[(&str, &str)]| authorize_url(&app, &client, "openid", &p.challenge, o);
    assert_error_redirect(&app, &b, &client, &url(&[("response_type", "")]), "invalid_request").await;
    // Only the code flow: never a token in a URL.
    assert_error_redirect(&app, &b, &client, &url(&[("response_type", "token")]), "unsupported_response_type").await;
    assert_error_redirect(&app, &b, &client, &url(&[("response_type", "id_token")]), "unsupported_response_type").await;
    // PKCE: required, S256 only.
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge", "")]), "invalid_request").await;
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge_method", "plain")]), "invalid_request").await;
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge_method", "")]), "invalid_request").await;
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge", "too-short")]), "invalid_request").await;
    // The right length, a character base64url lacks (RFC 7636 §4.2: BASE64URL, no padding).
    let plus = format!("{}+", &p.challenge[..42]);
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge", &plus)]), "invalid_request").await;
    let padded = format!("{}=", &p.challenge[..42]);
    assert_error_redirect(&app, &b, &client, &url(&[("code_challenge", &padded)]), "invalid_request").await;
    // Scopes the client may not have.
    assert_error_redirect(&app, &b, &client, &url(&[("scope", "openid admin")]), "invalid_scope").await;
    assert_error_redirect(&app, &b, &client, &url(&[("scope", "")]), "invalid_scope").await;
    // Repeated parameters.
    assert_error_redirect(&app, &b, &client, &format!("{}&scope=openid", url(&[])), "invalid_request").await;
    // Options we do not support.
    assert_error_redirect(&app, &b, &client, &url(&[("request", "eyJ.x.y")]), "request_not_supported").await;
    assert_error_redirect(&app, &b, &client, &url(&[("response_mode", "fragment")]), "invalid_request").await;
    assert_error_redirect(&app, &b, &client, &url(&[("prompt", "none login")]), "invalid_request").await;
    assert_error_redirect(&app, &b, &client, &url(&[("max_age", "-1")]), "invalid_request").await;
    // A client not registered for the code flow.
    let service = app.service_client(&[], &[]).await;
    let service = AppClient {
        id: service.id,
        secret: service.secret,
        redirect_uri: client.redirect_uri.clone(),
        post_logout_uri: String::new(),
    };
    assert_error_page(&b, &authorize_url(&app, &service, "openid", &p.challenge, &[])).await;
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_post_works_like_get() {
    let app = spawn_app().await;
    let client = app.web_app(false).await;
    let b = browser();
    let p = pkce();
    let response = b.get(authorize_url(&app, &client, "openid", &p.challenge, &[("foo", "bar")])).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(location(&response).starts_with("/login?rid="));

    let url = authorize_url(&app, &client, "openid", &p.challenge, &[]);
    let body = url.split_once('?').unwrap().1.to_string();
    let posted = b
        .post(app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 303);
    assert!(location(&posted).starts_with("/login?rid="));
}

#[tokio::test]
async fn no_cors_on_the_authorization_endpoint() {
    let app = spawn_app().await;
    let client = app.web_app(false).await;
    let p = pkce();
    let response = browser()
        .get(authorize_url(&app, &client, "openid", &p.challenge, &[]))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let b = browser();
    let p = pkce();
    // No session: login_required.
    assert_error_redirect(
        &app,
        &b,
        &client,
        &authorize_url(&app, &client, "openid", &p.challenge, &[("prompt", "none")]),
        "login_required",
    )
    .await;
    // Signed in, no consent yet for `email`: consent_required.
    app.code_for(&b, &client, &user.email, "openid", &p).await;
    assert_error_redirect(
        &app,
        &b,
        &client,
        &authorize_url(&app, &client, "openid email", &p.challenge, &[("prompt", "none")]),
        "consent_required",
    )
    .await;
    // Signed in and consented: straight to a code.
    let response =
        b.get(authorize_url(&app, &client, "openid", &p.challenge, &[("prompt", "none")])).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let q = query_of(&location(&response));
    assert!(q.contains_key("code"), "{q:?}");
    assert_eq!(q.get("iss"), Some(&app.address));
}

/// `state` is echoed back, so its length is bounded: 2,048 characters are taken and returned,
/// 2,049 are refused (found by mutation testing: the bound's edge had no test).
#[tokio::test]
async fn state_is_bounded_at_exactly_2048_characters() {
    let app = spawn_app().await;
    let client = app.web_app(true).await;
    let b = browser();
    let longest = "s".repeat(2048);
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[("state", &longest)]);
    let response = b.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert!(location(&response).starts_with("/login?rid="), "accepted: on to sign-in");
    let too_long = "s".repeat(2049);
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[("state", &too_long)]);
    let response = b.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let target = location(&response);
    assert!(target.starts_with(&client.redirect_uri), "{target}");
    let q = query_of(&target);
    assert_eq!(q.get("error").map(String::as_str), Some("invalid_request"));
    assert!(!q.contains_key("state"), "an over-long state is not echoed");
}

/// The other bounded parameters, at their edges (mutation testing: none had a test there):
/// `nonce` 512 characters taken, 513 refused; `acr_values` 2,048 taken, 2,049 refused (never
/// silently dropped: an app asking for MFA must not get less); `login_hint` 254 kept for the
/// sign-in page, 255 dropped.
#[tokio::test]
async fn nonce_acr_values_and_login_hint_are_bounded_at_their_edges() {
    let app = spawn_app().await;
    let client = app.web_app(true).await;
    let b = browser();
    let answer = |extra: Vec<(&'static str, String)>| {
        let (app, client, b) = (&app, &client, &b);
        async move {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let url = authorize_url(app, client, "openid", &pkce().challenge, &extra);
            let response = b.get(&url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 303);
            location(&response)
        }
    };
    assert!(answer(vec![("nonce", "n".repeat(512))]).await.starts_with("/login?rid="));
    let target = answer(vec![("nonce", "n".repeat(513))]).await;
    assert_eq!(query_of(&target).get("error").map(String::as_str), Some("invalid_request"), "{target}");
    let mfa = "https://refeds.org/profile/mfa";
    let longest = format!("{mfa}{}", " x".repeat((2048 - mfa.len()) / 2));
    assert_eq!(longest.len(), 2048);
    assert!(answer(vec![("acr_values", longest.clone())]).await.starts_with("/login?rid="));
    let target = answer(vec![("acr_values", format!("{longest}x"))]).await;
    assert_eq!(query_of(&target).get("error").map(String::as_str), Some("invalid_request"), "{target}");
    // login_hint: shown on the sign-in page when at most 254 characters.
    let hint = format!("{}@example.com", "a".repeat(254 - 12));
    assert_eq!(hint.len(), 254);
    let login = answer(vec![("login_hint", hint.clone())]).await;
    let page = b.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("value=\"{hint}\"")), "the hint fills the field");
    let too_long = format!("a{hint}");
    let login = answer(vec![("login_hint", too_long.clone())]).await;
    let page = b.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(&too_long), "a longer hint is dropped");
}
