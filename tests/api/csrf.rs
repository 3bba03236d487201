//! Every hosted form refuses a POST without its session's CSRF token, or with another session's
//! (shared/security.md: "Every form has a CSRF token; a missing or wrong one → 403"), and the
//! refused POST changes nothing. Each form is also posted once with the right token, as the
//! control that shows the forbidden request would otherwise have succeeded (issue 10 item 6).

use latchkey::audit::AuditFilter;
use latchkey::store::{AuditStore, GrantStore, MfaStore};

use crate::helpers::*;

/// A CSRF token that is valid — for another session.
async fn foreign_csrf(app: &TestApp) -> String {
    let other = browser();
    let page = other.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    hidden_field(&page, "csrf")
}

/// POSTs `fields` to `path` in `b` without a token and with `foreign`; both must be 403.
async fn assert_forbidden(app: &TestApp, b: &reqwest::Client, path: &str, fields: &[(&str, &str)], foreign: &str) {
    for csrf in [None, Some(foreign), Some("")] {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if let Some(token) = csrf {
            form.push(("csrf", token));
        }
        let response = b.post(app.url(path)).form(&form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "POST {path} with csrf {csrf:?}");
    }
}

/// POSTs `fields` with the page's own token; returns the response (the control).
async fn post_with(
    app: &TestApp,
    b: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
    csrf: &str,
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf", csrf));
    b.post(app.url(path)).form(&form).send().await.unwrap()
}

async fn count(app: &TestApp, event: &str) -> usize {
    let filter = AuditFilter { user_sub: None, event: Some(event.to_string()), limit: 1000, ..Default::default() };
    app.state.store().list_audit_events(&filter).await.unwrap().len()
}

async fn account_csrf(app: &TestApp, b: &reqwest::Client) -> String {
    let page = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    hidden_field(&page.text().await.unwrap(), "csrf")
}

/// A signed-in browser with TOTP on, and the recovery codes it was shown.
async fn with_totp(app: &TestApp, email: &str) -> (reqwest::Client, Vec<String>) {
    let b = signed_in(app, email, TEST_PASSWORD).await;
    enrol_totp(app, &b).await;
    let page = b.get(app.url("/account/recovery-codes")).send().await.unwrap().text().await.unwrap();
    let list = text_between(&page, "id=\"recovery-codes\">", "</ul>");
    let codes = list.split("<code>").skip(1).map(|c| c[..c.find('<').unwrap()].to_string()).collect();
    (b, codes)
}

#[tokio::test]
async fn login() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = browser();
    let page = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let fields = [("email", user.email.as_str()), ("password", TEST_PASSWORD)];
    assert_forbidden(&app, &b, "/login", &fields, &foreign).await;
    assert_eq!(count(&app, "sign_in.succeeded").await, 0);
    let response = post_with(&app, &b, "/login", &fields, &hidden_field(&page, "csrf")).await;
    assert_eq!(response.status().as_u16(), 303);
}

#[tokio::test]
async fn login_mfa() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let (_, codes) = with_totp(&app, &user.email).await;
    let foreign = foreign_csrf(&app).await;
    // A new browser: the password, then the code page.
    let b = browser();
    let page = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let response = post_with(
        &app,
        &b,
        "/login",
        &[("email", &user.email), ("password", TEST_PASSWORD)],
        &hidden_field(&page, "csrf"),
    )
    .await;
    assert_eq!(location(&response), "/login/mfa");
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let fields = [("code", codes[0].as_str())];
    assert_forbidden(&app, &b, "/login/mfa", &fields, &foreign).await;
    assert_eq!(app.state.store().recovery_codes_left(&user.sub).await.unwrap(), 10, "no code was used");
    let account = b.get(app.url("/account")).send().await.unwrap();
    assert!(location(&account).starts_with("/login/mfa"), "still owes the second factor");
    let response = post_with(&app, &b, "/login/mfa", &fields, &hidden_field(&page, "csrf")).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn consent() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);
    let to_consent = location(&b.get(&url).send().await.unwrap());
    assert!(to_consent.starts_with("/consent?rid="), "{to_consent}");
    let page = b.get(app.url(&to_consent)).send().await.unwrap().text().await.unwrap();
    let rid = hidden_field(&page, "rid");
    let fields = [("rid", rid.as_str()), ("decision", "approve"), ("scope", "openid")];
    assert_forbidden(&app, &b, "/consent", &fields, &foreign).await;
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_none());
    let response = post_with(&app, &b, "/consent", &fields, &hidden_field(&page, "csrf")).await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_some());
}

#[tokio::test]
async fn logout() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let page = b.get(app.url("/logout")).send().await.unwrap().text().await.unwrap();
    assert_forbidden(&app, &b, "/logout", &[("confirm", "yes")], &foreign).await;
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200, "still signed in");
    let response = post_with(&app, &b, "/logout", &[("confirm", "yes")], &hidden_field(&page, "csrf")).await;
    assert!(response.status().is_success() || response.status().as_u16() == 303);
    assert_ne!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200, "signed out");
}

#[tokio::test]
async fn account_password() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let csrf = account_csrf(&app, &b).await;
    let new = "a completely different passphrase 42";
    let fields = [("current", TEST_PASSWORD), ("new", new), ("confirm", new)];
    assert_forbidden(&app, &b, "/account/password", &fields, &foreign).await;
    assert_eq!(count(&app, "password.changed").await, 0);
    let response = post_with(&app, &b, "/account/password", &fields, &csrf).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(count(&app, "password.changed").await, 1);
}

#[tokio::test]
async fn account_totp_confirm() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let page = b.get(app.url("/account/totp")).send().await.unwrap().text().await.unwrap();
    let seed = latchkey::authn::totp::decode_base32(text_between(&page, "id=\"totp-secret\">", "</code>")).unwrap();
    let code = latchkey::authn::totp::code_at(&seed, latchkey::state::unix_now()).unwrap();
    assert_forbidden(&app, &b, "/account/totp", &[("code", &code)], &foreign).await;
    let factor = app.state.store().totp_factor(&user.sub).await.unwrap();
    assert!(!factor.is_some_and(|f| f.is_enabled()), "not turned on");
    let response = post_with(&app, &b, "/account/totp", &[("code", &code)], &hidden_field(&page, "csrf")).await;
    assert_eq!(location(&response), "/account/recovery-codes");
    assert!(app.state.store().totp_factor(&user.sub).await.unwrap().is_some_and(|f| f.is_enabled()));
}

#[tokio::test]
async fn account_totp_remove() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let (b, codes) = with_totp(&app, &user.email).await;
    let foreign = foreign_csrf(&app).await;
    let csrf = account_csrf(&app, &b).await;
    let fields = [("code", codes[0].as_str())];
    assert_forbidden(&app, &b, "/account/totp/remove", &fields, &foreign).await;
    assert!(app.state.store().totp_factor(&user.sub).await.unwrap().is_some_and(|f| f.is_enabled()), "still on");
    let response = post_with(&app, &b, "/account/totp/remove", &fields, &csrf).await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(app.state.store().totp_factor(&user.sub).await.unwrap().is_none(), "removed");
}

#[tokio::test]
async fn account_recovery_codes() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let (b, _) = with_totp(&app, &user.email).await;
    let foreign = foreign_csrf(&app).await;
    let csrf = account_csrf(&app, &b).await;
    let generated = count(&app, "recovery_codes.generated").await;
    assert_forbidden(&app, &b, "/account/recovery-codes", &[], &foreign).await;
    assert_eq!(count(&app, "recovery_codes.generated").await, generated, "no new set");
    let response = post_with(&app, &b, "/account/recovery-codes", &[], &csrf).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(count(&app, "recovery_codes.generated").await, generated + 1);
}

#[tokio::test]
async fn account_apps_revoke() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let foreign = foreign_csrf(&app).await;
    let b = browser();
    app.code_for(&b, &client, &user.email, "openid", &pkce()).await;
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_some());
    let csrf = account_csrf(&app, &b).await;
    let fields = [("client_id", client.id.as_str())];
    assert_forbidden(&app, &b, "/account/apps/revoke", &fields, &foreign).await;
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_some(), "consent kept");
    let response = post_with(&app, &b, "/account/apps/revoke", &fields, &csrf).await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_none(), "revoked");
}

// Issue 12's forms: sign-up, resend, verification, forgot and reset password, invitation,
// email change and its confirmation, and the account page's verification request.

use crate::mailbox::{outbox_rows, spawn_mail_app, NEW_PASSWORD};

async fn page_csrf(app: &TestApp, b: &reqwest::Client, path: &str) -> String {
    let page = b.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "GET {path}");
    hidden_field(&page.text().await.unwrap(), "csrf")
}

async fn users(app: &TestApp) -> Option<i64> {
    query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await
}

#[tokio::test]
async fn register() {
    let (app, _smtp) = spawn_mail_app(|_| {}).await;
    let foreign = foreign_csrf(&app).await;
    let b = browser();
    let csrf = page_csrf(&app, &b, "/register").await;
    let fields = [("email", "sam@example.com"), ("name", "Sam"), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    assert_forbidden(&app, &b, "/register", &fields, &foreign).await;
    assert_eq!(users(&app).await, Some(0));
    assert_eq!(post_with(&app, &b, "/register", &fields, &csrf).await.status().as_u16(), 303);
    assert_eq!(users(&app).await, Some(1));
}

/// Sign-up, then the resend and verify forms of that account.
#[tokio::test]
async fn verify_email_and_resend() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let foreign = foreign_csrf(&app).await;
    let email = "sam@example.com";
    crate::mailbox::sign_up(&app, &browser(), email, NEW_PASSWORD).await;
    let first = smtp.nth(email, 1).await.token(&app.url("/verify-email"));
    let b = browser();
    let csrf = page_csrf(&app, &b, "/login").await;
    assert_forbidden(&app, &b, "/verify-email/resend", &[("email", email)], &foreign).await;
    assert_eq!(outbox_rows(&app, email).await, 1, "nothing resent");
    assert_eq!(post_with(&app, &b, "/verify-email/resend", &[("email", email)], &csrf).await.status().as_u16(), 303);
    let token = smtp.nth(email, 2).await.token(&app.url("/verify-email"));
    assert_ne!(first, token);
    let csrf = page_csrf(&app, &b, &format!("/verify-email?token={token}")).await;
    assert_forbidden(&app, &b, "/verify-email", &[("token", &token)], &foreign).await;
    let user = latchkey::admin::users::show(app.state.store(), email).await.unwrap();
    assert!(!user.email_verified(), "not verified by a forged form");
    assert_eq!(post_with(&app, &b, "/verify-email", &[("token", &token)], &csrf).await.status().as_u16(), 303);
    assert!(latchkey::admin::users::show(app.state.store(), email).await.unwrap().email_verified());
}

#[tokio::test]
async fn forgot_and_reset_password() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = browser();
    let csrf = page_csrf(&app, &b, "/forgot-password").await;
    assert_forbidden(&app, &b, "/forgot-password", &[("email", &user.email)], &foreign).await;
    assert_eq!(outbox_rows(&app, &user.email).await, 0, "no reset mail from a forged form");
    assert_eq!(post_with(&app, &b, "/forgot-password", &[("email", &user.email)], &csrf).await.status().as_u16(), 303);
    let token = smtp.nth(&user.email, 1).await.token(&app.url("/reset-password"));
    let csrf = page_csrf(&app, &b, &format!("/reset-password?token={token}")).await;
    let fields = [("token", token.as_str()), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    assert_forbidden(&app, &b, "/reset-password", &fields, &foreign).await;
    assert_eq!(count(&app, "password_reset.completed").await, 0);
    assert_eq!(post_with(&app, &b, "/reset-password", &fields, &csrf).await.status().as_u16(), 303);
    assert_eq!(count(&app, "password_reset.completed").await, 1);
}

#[tokio::test]
async fn invitation() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let foreign = foreign_csrf(&app).await;
    let letters = app.state.letters();
    let invited = latchkey::admin::users::invite(
        app.state.store(),
        app.state.passwords(),
        &letters,
        app.state.account_settings(),
        latchkey::admin::users::NewInvitation { email: "ivy@example.com".into(), name: None, roles: vec![] },
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    app.state.wake_outbox();
    let token = smtp.nth(&invited.email, 1).await.token(&app.url("/invitation"));
    let b = browser();
    let csrf = page_csrf(&app, &b, &format!("/invitation?token={token}")).await;
    let fields = [("token", token.as_str()), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    assert_forbidden(&app, &b, "/invitation", &fields, &foreign).await;
    assert_eq!(count(&app, "invitation.accepted").await, 0);
    assert_eq!(post_with(&app, &b, "/invitation", &fields, &csrf).await.status().as_u16(), 303);
    assert_eq!(count(&app, "invitation.accepted").await, 1);
}

#[tokio::test]
async fn account_email_and_its_confirmation() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let csrf = account_csrf(&app, &b).await;
    let fields = [("email", "ann2@example.com"), ("password", TEST_PASSWORD)];
    assert_forbidden(&app, &b, "/account/email", &fields, &foreign).await;
    assert_eq!(outbox_rows(&app, "ann2@example.com").await, 0);
    assert_eq!(post_with(&app, &b, "/account/email", &fields, &csrf).await.status().as_u16(), 303);
    let token = smtp.nth("ann2@example.com", 1).await.token(&app.url("/confirm-email-change"));
    let csrf = page_csrf(&app, &b, &format!("/confirm-email-change?token={token}")).await;
    assert_forbidden(&app, &b, "/confirm-email-change", &[("token", &token)], &foreign).await;
    assert_eq!(latchkey::admin::users::show(app.state.store(), &user.sub).await.unwrap().email, "ann@example.com");
    let response = post_with(&app, &b, "/confirm-email-change", &[("token", &token)], &csrf).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(latchkey::admin::users::show(app.state.store(), &user.sub).await.unwrap().email, "ann2@example.com");
}

#[tokio::test]
async fn account_verify_email() {
    let (app, _smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("ann@example.com").await;
    let foreign = foreign_csrf(&app).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let csrf = account_csrf(&app, &b).await;
    assert_forbidden(&app, &b, "/account/verify-email", &[], &foreign).await;
    assert_eq!(outbox_rows(&app, &user.email).await, 0);
    assert_eq!(post_with(&app, &b, "/account/verify-email", &[], &csrf).await.status().as_u16(), 303);
    assert_eq!(outbox_rows(&app, &user.email).await, 1);
}
