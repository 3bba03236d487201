//! Hosted pages and sessions (shared/security.md, "Hosted pages and sessions").

use crate::helpers::{
    authorize_url, browser, hidden_field, location, pkce, query_of, spawn_app, spawn_app_with, TEST_PASSWORD,
};

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("latchkey_session=") || c.starts_with("__Host-latchkey="))
        .map(str::to_string)
}

/// Starts a flow and returns the login page's csrf and rid.
async fn open_login(
    app: &crate::helpers::TestApp,
    b: &reqwest::Client,
    client: &crate::helpers::AppClient,
) -> (String, String) {
    let start = b.get(authorize_url(app, client, "openid email", &pkce().challenge, &[])).send().await.unwrap();
    let page = b.get(app.url(&location(&start))).send().await.unwrap().text().await.unwrap();
    (hidden_field(&page, "csrf"), hidden_field(&page, "rid"))
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_forbidden() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let b = browser();
    let (csrf, rid) = open_login(&app, &b, &client).await;
    for token in [None, Some("wrong")] {
        let mut form = vec![("rid", rid.as_str()), ("email", user.email.as_str()), ("password", TEST_PASSWORD)];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let response = b.post(app.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{token:?}");
    }
    // Another browser's token is no good either.
    let other = browser();
    let (other_csrf, _) = open_login(&app, &other, &client).await;
    let response = b
        .post(app.url("/login"))
        .form(&[("csrf", other_csrf.as_str()), ("rid", &rid), ("email", &user.email), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // The right one works, and consent needs its token too.
    let response = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("email", &user.email), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let consent =
        b.post(app.url("/consent")).form(&[("rid", rid.as_str()), ("decision", "approve")]).send().await.unwrap();
    assert_eq!(consent.status().as_u16(), 403);
}

#[tokio::test]
async fn signing_in_issues_a_new_session_id_and_cookie_flags_are_strict() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let b = browser();
    let start = b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[])).send().await.unwrap();
    let before = session_cookie(&start).expect("a session cookie once a request is pending");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(before.contains(flag), "{before}");
    }
    assert!(!before.contains("Secure"), "no Secure flag on a plain-http development issuer");
    let page = b.get(app.url(&location(&start))).send().await.unwrap().text().await.unwrap();
    let login = b
        .post(app.url("/login"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("rid", &hidden_field(&page, "rid")),
            ("email", &user.email),
            ("password", TEST_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let after = session_cookie(&login).expect("a new cookie after sign-in");
    let id = |c: &str| c.split(';').next().unwrap().to_string();
    assert_ne!(id(&before), id(&after), "session fixation: the id changes at sign-in");
}

#[tokio::test]
async fn with_an_https_issuer_the_cookie_is_host_prefixed_and_secure() {
    let app = spawn_app_with(|s| s.issuer = s.issuer.replace("http://", "https://")).await;
    let client = app.web_app(false).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]).replace("https://", "http://");
    let start = browser().get(url).send().await.unwrap();
    let cookie = session_cookie(&start).expect("cookie");
    assert!(cookie.starts_with("__Host-latchkey="), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    assert!(start.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_account_look_the_same() {
    let app = spawn_app().await;
    let _ann = app.user("ann@example.com").await;
    let dis = app.user("dis@example.com").await;
    latchkey::admin::users::disable(
        app.state.store(),
        &dis.sub,
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    let client = app.web_app(false).await;
    let b = browser();
    let mut answers = Vec::new();
    for (email, password) in [
        ("nobody@example.com", TEST_PASSWORD),
        ("ann@example.com", "wrong password!"),
        ("dis@example.com", TEST_PASSWORD),
    ] {
        let (csrf, rid) = open_login(&app, &b, &client).await;
        let response = b
            .post(app.url("/login"))
            .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("email", email), ("password", password)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(body.contains("The email or password is incorrect."), "{body}");
        // Normalise what legitimately differs: the echoed email, the request id and token.
        let normalised = body.replace(email, "EMAIL").replace(&rid, "RID").replace(&csrf, "CSRF");
        answers.push((status, normalised));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    assert_eq!(answers[0].0, 200);
}

#[tokio::test]
async fn every_page_sends_the_security_headers() {
    let app = spawn_app().await;
    let client = app.web_app(false).await;
    let b = browser();
    let start = b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[])).send().await.unwrap();
    let pages = [
        app.url(&location(&start)),
        app.url("/"),
        app.url("/logout"),
        app.url("/authorize"),
        app.url("/consent?rid=nope"),
    ];
    for page in pages {
        let response = b.get(&page).send().await.unwrap();
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{page}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script at all: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{page}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{page}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(h["cache-control"], "no-store", "{page}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("<script"), "{page}");
        // No third-party resources: everything a page loads (src=, <link href=) is on this
        // server (a relative path) or inline data; CSP default-src 'none' says the same.
        for attribute in ["src=\"", "<link "] {
            for piece in body.split(attribute).skip(1) {
                let value = if attribute == "<link " {
                    let link = &piece[..piece.find('>').unwrap_or(piece.len())];
                    link.split("href=\"").nth(1).map(|v| &v[..v.find('"').unwrap()]).unwrap_or("")
                } else {
                    &piece[..piece.find('"').unwrap()]
                };
                let own = value.starts_with('/') && !value.starts_with("//");
                assert!(own || value.starts_with("data:image/"), "{page} loads {value:?}");
            }
        }
    }
    let css = b.get(app.url("/assets/latchkey.css")).send().await.unwrap();
    assert_eq!(css.status().as_u16(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn consent_is_asked_once_remembered_and_can_be_denied_or_narrowed() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let b = browser();
    // Deny: access_denied back to the app, with state and iss.
    let (csrf, rid) = open_login(&app, &b, &client).await;
    let login = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("email", &user.email), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cont = b.get(app.url(&location(&login))).send().await.unwrap();
    assert_eq!(location(&cont), format!("/consent?rid={rid}"));
    let page = b.get(app.url(&location(&cont))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Example App") && page.contains("See your email address"), "plain words per scope");
    let csrf = hidden_field(&page, "csrf");
    let deny = b
        .post(app.url("/consent"))
        .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    let q = query_of(&location(&deny));
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(q.get("iss"), Some(&app.address));

    // Approve with `email` unchecked: the code's scope is narrowed.
    let start = b.get(authorize_url(&app, &client, "openid email", &pkce().challenge, &[])).send().await.unwrap();
    let consent_url = location(&start);
    assert!(consent_url.starts_with("/consent?rid="), "still signed in: straight to consent, got {consent_url}");
    let rid = consent_url.trim_start_matches("/consent?rid=").to_string();
    // Posting more than was shown is refused.
    let wider = b
        .post(app.url("/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("rid", &rid),
            ("decision", "approve"),
            ("scope", "openid"),
            ("scope", "roles"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wider.status().as_u16(), 400);
    let p = pkce();
    let start = b.get(authorize_url(&app, &client, "openid email", &p.challenge, &[])).send().await.unwrap();
    let rid = location(&start).trim_start_matches("/consent?rid=").to_string();
    let approve = b
        .post(app.url("/consent"))
        .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("decision", "approve"), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    let done = b.get(app.url(&location(&approve))).send().await.unwrap();
    let code = query_of(&location(&done))["code"].clone();
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200);
    assert_eq!(tokens["scope"], "openid", "email was unchecked");

    // Remembered: asking for `openid` again shows no consent page; prompt=consent does.
    let again = b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[])).send().await.unwrap();
    assert!(query_of(&location(&again)).contains_key("code"), "consent remembered");
    let forced = b
        .get(authorize_url(&app, &client, "openid", &pkce().challenge, &[("prompt", "consent")]))
        .send()
        .await
        .unwrap();
    assert!(location(&forced).starts_with("/consent?rid="), "prompt=consent asks again");
    // prompt=login asks for the password again even with a session.
    let relogin =
        b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[("prompt", "login")])).send().await.unwrap();
    assert!(location(&relogin).starts_with("/login?rid="));
}

#[tokio::test]
async fn first_party_apps_skip_consent() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    let (csrf, rid) = open_login(&app, &b, &client).await;
    let login = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("rid", &rid), ("email", &user.email), ("password", TEST_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cont = b.get(app.url(&location(&login))).send().await.unwrap();
    assert!(query_of(&location(&cont)).contains_key("code"));
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_needs_csrf() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    app.code_for(&b, &client, &user.email, "openid", &pkce()).await;
    let confirm = b.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(confirm.status().as_u16(), 200);
    let page = confirm.text().await.unwrap();
    assert!(page.contains("Sign out?") && page.contains("ann@example.com"));
    let no_csrf = b.post(app.url("/logout")).form(&[("confirm", "yes")]).send().await.unwrap();
    assert_eq!(no_csrf.status().as_u16(), 403);
    let csrf = hidden_field(&page, "csrf");
    let done = b.post(app.url("/logout")).form(&[("confirm", "yes"), ("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    assert!(done.text().await.unwrap().contains("You are signed out"));
    let after = b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[])).send().await.unwrap();
    assert!(location(&after).starts_with("/login?rid="), "the session is gone server-side");
    // A post-logout URI that is not registered is refused.
    let bad = b
        .get(app.url("/logout"))
        .query(&[("client_id", client.id.as_str()), ("post_logout_redirect_uri", "https://evil.example.com/")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.headers().get("location").is_none());
}

#[tokio::test]
async fn max_age_and_login_hint_are_honoured() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    app.code_for(&b, &client, &user.email, "openid", &pkce()).await;
    let fresh =
        b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[("max_age", "3600")])).send().await.unwrap();
    assert!(query_of(&location(&fresh)).contains_key("code"), "signed in within max_age");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let stale =
        b.get(authorize_url(&app, &client, "openid", &pkce().challenge, &[("max_age", "0")])).send().await.unwrap();
    assert!(location(&stale).starts_with("/login?rid="), "older than max_age: sign in again");
    let other = browser();
    let hinted = other
        .get(authorize_url(&app, &client, "openid", &pkce().challenge, &[("login_hint", "hint@example.com")]))
        .send()
        .await
        .unwrap();
    let page = other.get(app.url(&location(&hinted))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("value=\"hint@example.com\""), "login_hint prefills the email field");
}

#[tokio::test]
async fn templates_can_be_overridden_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("error.html"),
        "{% extends \"layout.html\" %}{% block content %}<h1 id=\"page-title\">ACME: {{ title }}</h1>{% endblock %}",
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let app = spawn_app_with(move |s| s.templates_dir = Some(path)).await;
    let page = browser().get(app.url("/authorize")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 400);
    let body = page.text().await.unwrap();
    assert!(body.contains("ACME: Invalid request"), "{body}");
    assert!(body.contains("/assets/latchkey.css"), "the built-in layout still applies");
}

#[tokio::test]
async fn a_hash_made_with_old_parameters_is_replaced_at_sign_in() {
    use latchkey::store::UserStore;
    let app = spawn_app_with(|s| s.password_hash_memory_kib = 2048).await;
    // The user's hash was made with yesterday's (cheaper) parameters.
    let old = latchkey::authn::PasswordHasher::new(&latchkey::authn::PasswordSettings {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        min_length: 8,
        min_score: 3,
        max_concurrent: 1,
    })
    .unwrap();
    let user = latchkey::admin::users::create(
        app.state.store(),
        &old,
        latchkey::admin::users::NewUser {
            email: "old@example.com".into(),
            name: None,
            roles: vec![],
            password: TEST_PASSWORD.into(),
            email_verified: false,
        },
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    assert!(user.password_hash.contains("m=1024"));
    let client = app.web_app(true).await;
    app.code_for(&browser(), &client, "old@example.com", "openid", &pkce()).await;
    let stored = app.state.store().find_user(&user.sub).await.unwrap().unwrap();
    assert!(stored.password_hash.contains("m=2048"), "rehashed with today's parameters: {}", stored.password_hash);
    // Signing in again with today's parameters leaves the hash alone.
    app.code_for(&browser(), &client, "old@example.com", "openid", &pkce()).await;
    let again = app.state.store().find_user(&user.sub).await.unwrap().unwrap();
    assert_eq!(again.password_hash, stored.password_hash, "no rehash when the parameters match");
}

/// A password change ends every other session and carries on this one under a new id
/// (shared/security.md: a new session id after each sign-in event).
#[tokio::test]
async fn changing_the_password_continues_under_a_new_session_id() {
    let app = spawn_app().await;
    app.user("ann@example.com").await;
    let b = browser();
    let page = b.get(app.url("/login?next=account")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden_field(&page, "csrf")),
        ("next", "account".to_string()),
        ("email", "ann@example.com".to_string()),
        ("password", TEST_PASSWORD.to_string()),
    ];
    let signed = b.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 303);
    assert_eq!(location(&signed), "/account");
    let before = session_cookie(&signed).expect("a cookie after sign-in");
    let account = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let strong = "maple quartz lantern drifts";
    let changed = b
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", hidden_field(&account, "csrf").as_str()),
            ("current", TEST_PASSWORD),
            ("new", strong),
            ("confirm", strong),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status().as_u16(), 303);
    let after = session_cookie(&changed).expect("a new cookie after the password change");
    let id = |cookie: &str| cookie.split(';').next().unwrap().to_string();
    assert_ne!(id(&before), id(&after), "the session id changed");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200, "still signed in");
}
