//! Issue 12 item 4: password reset by email, through the pages and a real SMTP server.

use crate::helpers::*;
use crate::mailbox::*;
use latchkey::state::unix_now;

async fn request_reset(app: &TestApp, email: &str) -> reqwest::Response {
    submit_form(app, &browser(), "/forgot-password", "/forgot-password", &[("email", email)]).await
}

fn reset_token(app: &TestApp, message: &Received) -> String {
    message.token(&format!("{}/reset-password", app.address))
}

/// A reset sets the password, ends every session and grant, tells the user, and does not sign
/// anyone in.
#[tokio::test]
async fn a_reset_sets_the_password_ends_every_session_and_grant_and_tells_the_user() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let pkce = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid email offline_access", &pkce).await;
    let (_, tokens) = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    let access_token = tokens["access_token"].as_str().unwrap().to_string();
    let other_device = signed_in(&app, &user.email, TEST_PASSWORD).await;

    let asked = request_reset(&app, "  ANN@example.com ").await;
    assert_eq!(asked.status().as_u16(), 303);
    let message = smtp.nth(&user.email, 1).await;
    assert_eq!(message.subject, "Reset your password");
    assert!(message.text.contains("30 minutes"), "{}", message.text);
    let token = reset_token(&app, &message);

    let b = browser();
    let page = b.get(app.url(&format!("/reset-password?token={token}"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("For <strong>ann@example.com</strong>"));
    let done = set_password_by_link(&app, &b, "/reset-password", &token, NEW_PASSWORD).await;
    assert_eq!(done.status().as_u16(), 303);
    assert_eq!(location(&done), "/login?login_hint=ann%40example.com");
    // Not signed in by the reset.
    let account = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status().as_u16(), 303);
    assert_eq!(location(&account), "/login?next=account");

    // Every session and grant of the user ended.
    let other = other_device.get(app.url("/account")).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 303, "the other device's session ended");
    let (status, body) = app.refresh(&client, &refresh_token, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(app.userinfo_status(&access_token).await, 401);

    let notice = smtp.nth(&user.email, 2).await;
    assert_eq!(notice.subject, "Your password was changed");
    assert!(!notice.text.contains("token="));
    assert_eq!(try_sign_in(&app, &user.email, TEST_PASSWORD).await.status().as_u16(), 200);
    assert_eq!(try_sign_in(&app, &user.email, NEW_PASSWORD).await.status().as_u16(), 303);

    let events = latchkey::store::AuditStore::list_audit_events(
        app.state.store(),
        &latchkey::audit::AuditFilter { user_sub: Some(user.sub.clone()), limit: 50, ..Default::default() },
    )
    .await
    .unwrap();
    let requested = events.iter().find(|e| e.event == "password_reset.requested").expect("request audited");
    assert_eq!(requested.detail["outcome"], "sent");
    assert!(events.iter().any(|e| e.event == "password_reset.completed"));
}

#[tokio::test]
async fn a_reset_link_works_once_expires_and_dies_with_a_newer_link_or_a_password_change() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("bo@example.com").await;

    // Single use.
    request_reset(&app, &user.email).await;
    let first = reset_token(&app, &smtp.nth(&user.email, 1).await);
    // Two browsers with the form open: the first to submit wins.
    let (b, late) = (browser(), browser());
    let mut forms = Vec::new();
    for tab in [&b, &late] {
        let page =
            tab.get(app.url(&format!("/reset-password?token={first}"))).send().await.unwrap().text().await.unwrap();
        forms.push(hidden_field(&page, "csrf"));
    }
    let form = |csrf: &str| {
        [
            ("csrf", csrf.to_string()),
            ("token", first.clone()),
            ("password", NEW_PASSWORD.into()),
            ("confirm", NEW_PASSWORD.into()),
        ]
    };
    assert_eq!(b.post(app.url("/reset-password")).form(&form(&forms[0])).send().await.unwrap().status().as_u16(), 303);
    let again = late.post(app.url("/reset-password")).form(&form(&forms[1])).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 410);
    assert_eq!(b.get(app.url(&format!("/reset-password?token={first}"))).send().await.unwrap().status().as_u16(), 410);

    // A newer link voids the older one (message 2 is the "password changed" notice).
    request_reset(&app, &user.email).await;
    let older = reset_token(&app, &smtp.nth(&user.email, 3).await);
    request_reset(&app, &user.email).await;
    let newer = reset_token(&app, &smtp.nth(&user.email, 4).await);
    assert_eq!(b.get(app.url(&format!("/reset-password?token={older}"))).send().await.unwrap().status().as_u16(), 410);
    assert_eq!(b.get(app.url(&format!("/reset-password?token={newer}"))).send().await.unwrap().status().as_u16(), 200);

    // Any password change kills it: here the account page's.
    let signed = signed_in(&app, &user.email, NEW_PASSWORD).await;
    let account = signed.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let changed = signed
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", hidden_field(&account, "csrf").as_str()),
            ("current", NEW_PASSWORD),
            ("new", "another fine passphrase 77"),
            ("confirm", "another fine passphrase 77"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status().as_u16(), 303);
    assert_eq!(b.get(app.url(&format!("/reset-password?token={newer}"))).send().await.unwrap().status().as_u16(), 410);

    // Expiry.
    request_reset(&app, &user.email).await;
    let late = reset_token(&app, &smtp.nth(&user.email, 5).await);
    exec_sql(
        &app.db,
        "UPDATE email_tokens SET expires_at = $1 WHERE user_sub = $2",
        &[SqlValue::Int(unix_now()), SqlValue::Text(&user.sub)],
    )
    .await;
    assert_eq!(b.get(app.url(&format!("/reset-password?token={late}"))).send().await.unwrap().status().as_u16(), 410);
    assert_eq!(try_sign_in(&app, &user.email, "another fine passphrase 77").await.status().as_u16(), 303);
}

#[tokio::test]
async fn a_weak_new_password_is_refused_with_its_reason_and_the_link_stays_usable() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("cy@example.com").await;
    request_reset(&app, &user.email).await;
    let token = reset_token(&app, &smtp.nth(&user.email, 1).await);
    let b = browser();
    let weak = set_password_by_link(&app, &b, "/reset-password", &token, "cy@example.com").await;
    assert_eq!(weak.status().as_u16(), 200);
    let page = weak.text().await.unwrap();
    assert!(page.contains("The password was not accepted: the password is too easy to guess"), "{page}");
    let good = set_password_by_link(&app, &b, "/reset-password", &token, NEW_PASSWORD).await;
    assert_eq!(good.status().as_u16(), 303);
}

/// The second factor is not bypassed: after a reset, signing in still asks for the code.
#[tokio::test]
async fn after_a_reset_an_mfa_user_still_needs_the_code() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("dee@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    enrol_totp(&app, &b).await;
    request_reset(&app, &user.email).await;
    let token = reset_token(&app, &smtp.nth(&user.email, 1).await);
    assert_eq!(
        set_password_by_link(&app, &browser(), "/reset-password", &token, NEW_PASSWORD).await.status().as_u16(),
        303
    );
    let fresh = browser();
    let answer = submit_form(
        &app,
        &fresh,
        "/login?next=account",
        "/login",
        &[("email", &user.email), ("password", NEW_PASSWORD), ("next", "account")],
    )
    .await;
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(location(&answer), "/login/mfa?next=account");
    let account = fresh.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&account), "/login/mfa?next=account", "not signed in without the code");
}

/// No enumeration: a known, an unknown, a disabled and a malformed address get byte-identical
/// answers; only the audit trail and the outbox tell them apart.
#[tokio::test]
async fn every_address_gets_the_same_answer() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let known = app.user("known@example.com").await;
    let disabled = app.user("gone@example.com").await;
    latchkey::admin::users::disable(
        app.state.store(),
        &disabled.email,
        &latchkey::admin::actor::Actor::Cli,
        unix_now(),
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for email in [known.email.as_str(), "unknown@example.com", disabled.email.as_str(), "not an address"] {
        let b = browser();
        let response = submit_form(&app, &b, "/forgot-password", "/forgot-password", &[("email", email)]).await;
        let status = response.status().as_u16();
        let target = location(&response);
        let page = b.get(app.url(&target)).send().await.unwrap().text().await.unwrap();
        answers.push((status, target, page));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    assert_eq!(answers[0].0, 303);
    smtp.wait_for(&known.email, 1).await;
    assert_eq!(outbox_rows(&app, "unknown@example.com").await, 0);
    assert_eq!(outbox_rows(&app, &disabled.email).await, 0);
    let events = latchkey::store::AuditStore::list_audit_events(
        app.state.store(),
        &latchkey::audit::AuditFilter {
            event: Some("password_reset.requested".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut outcomes: Vec<&str> = events.iter().map(|e| e.detail["outcome"].as_str().unwrap()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["disabled", "sent", "unknown_address", "unknown_address"]);
}
