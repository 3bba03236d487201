//! Issue 12 items 3 and 5: changing the account's address from the account page, and verifying
//! an admin-made account's address from there.

use crate::helpers::*;
use crate::mailbox::*;

async fn ask_change(app: &TestApp, b: &reqwest::Client, fields: &[(&str, &str)]) -> String {
    let response = submit_form(app, b, "/account", "/account/email", fields).await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), "/account");
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    text_between(&page, "id=\"notice\">", "</p>").to_string()
}

async fn email_of(app: &TestApp, sub: &str) -> latchkey::domain::User {
    latchkey::admin::users::show(app.state.store(), sub).await.unwrap()
}

#[tokio::test]
async fn the_address_changes_only_when_the_link_sent_to_it_is_used_and_the_old_one_is_told() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("old@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;

    let wrong = ask_change(&app, &b, &[("email", "new@example.com"), ("password", "not my password")]).await;
    assert_eq!(wrong, "Your current password is not right.");
    assert_eq!(outbox_rows(&app, "new@example.com").await, 0);

    let asked = ask_change(&app, &b, &[("email", "New@Example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(asked, "We sent a link to new@example.com. Your address changes when you follow it.");
    let message = smtp.nth("new@example.com", 1).await;
    assert_eq!(message.subject, "Confirm your new email address");
    assert!(message.text.contains("instead of old@example.com"));
    assert_eq!(email_of(&app, &user.sub).await.email, "old@example.com", "nothing changes before the link is used");

    let token = message.token(&format!("{}/confirm-email-change", app.address));
    let confirmed = use_link(&app, &browser(), "/confirm-email-change", &token).await;
    assert_eq!(confirmed.status().as_u16(), 303);
    let changed = email_of(&app, &user.sub).await;
    assert_eq!(changed.email, "new@example.com");
    assert!(changed.email_verified(), "following the link proved the new address");
    let told = smtp.nth("old@example.com", 1).await;
    assert_eq!(told.subject, "Your account's email address was changed");
    assert!(told.text.contains("new@example.com"));
    let used = browser().get(app.url(&format!("/confirm-email-change?token={token}"))).send().await.unwrap();
    assert_eq!(used.status().as_u16(), 410, "single use");

    // Signing in and tokens use the new address.
    assert_eq!(try_sign_in(&app, "old@example.com", TEST_PASSWORD).await.status().as_u16(), 200);
    let client = app.web_app(true).await;
    let pkce = pkce();
    let code = app.code_for(&browser(), &client, "new@example.com", "openid email", &pkce).await;
    let (_, tokens) = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    let id = jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!((id["email"].as_str(), id["email_verified"].as_bool()), (Some("new@example.com"), Some(true)));

    let events = latchkey::store::AuditStore::list_audit_events(
        app.state.store(),
        &latchkey::audit::AuditFilter { user_sub: Some(user.sub.clone()), limit: 50, ..Default::default() },
    )
    .await
    .unwrap();
    let requested = events.iter().find(|e| e.event == "email.change_requested").unwrap();
    assert_eq!(requested.detail["to"], "new@example.com");
    let done = events.iter().find(|e| e.event == "email.changed").unwrap();
    assert_eq!(
        (done.detail["from"].as_str(), done.detail["to"].as_str()),
        (Some("old@example.com"), Some("new@example.com"))
    );
}

#[tokio::test]
async fn with_an_authenticator_app_the_change_needs_a_code_too() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("mfa@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let seed = enrol_totp(&app, &b).await;
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"code\""), "the form asks for a code");
    let missing = ask_change(&app, &b, &[("email", "mfa2@example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(missing, "That code is not right; your address was not changed.");
    let wrong =
        ask_change(&app, &b, &[("email", "mfa2@example.com"), ("password", TEST_PASSWORD), ("code", "000000")]).await;
    assert_eq!(wrong, "That code is not right; your address was not changed.");
    assert_eq!(outbox_rows(&app, "mfa2@example.com").await, 0);
    // The enrolment used this time step's code; a code is accepted once (RFC 6238 §5.2).
    let code = latchkey::authn::totp::code_at(&seed, latchkey::state::unix_now() + 30).unwrap();
    let ok = ask_change(&app, &b, &[("email", "mfa2@example.com"), ("password", TEST_PASSWORD), ("code", &code)]).await;
    assert!(ok.starts_with("We sent a link to mfa2@example.com"), "{ok}");
    smtp.wait_for("mfa2@example.com", 1).await;
}

/// Addresses stay unique, ignoring case: asking for a taken address sends its owner a note
/// (and the asker learns nothing); a link whose address was taken meanwhile changes nothing.
#[tokio::test]
async fn a_taken_address_is_never_shared() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("mover@example.com").await;
    let owner = app.user("taken@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let answer = ask_change(&app, &b, &[("email", "TAKEN@example.com"), ("password", TEST_PASSWORD)]).await;
    assert_eq!(answer, "We sent a link to taken@example.com. Your address changes when you follow it.");
    let note = smtp.nth(&owner.email, 1).await;
    assert_eq!(note.subject, "Someone tried to move an account to your email address");
    assert!(!note.text.contains("token="));

    // The race: a link to a free address, which someone else takes before it is used.
    ask_change(&app, &b, &[("email", "free@example.com"), ("password", TEST_PASSWORD)]).await;
    let token = smtp.nth("free@example.com", 1).await.token(&format!("{}/confirm-email-change", app.address));
    app.user("free@example.com").await;
    let refused = use_link(&app, &browser(), "/confirm-email-change", &token).await;
    assert_eq!(refused.status().as_u16(), 409);
    assert_eq!(email_of(&app, &user.sub).await.email, "mover@example.com");
    assert_eq!(
        outbox_rows(&app, "mover@example.com").await,
        0,
        "no 'address changed' notice for a change that did not happen"
    );
}

#[tokio::test]
async fn an_admin_made_account_verifies_its_address_from_the_account_page() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("admin-made@example.com").await;
    assert!(!email_of(&app, &user.sub).await.email_verified());
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("admin-made@example.com — not verified"), "{page}");
    let sent = submit_form(&app, &b, "/account", "/account/verify-email", &[]).await;
    assert_eq!(sent.status().as_u16(), 303);
    let token = smtp.nth(&user.email, 1).await.token(&format!("{}/verify-email", app.address));
    assert_eq!(use_link(&app, &b, "/verify-email", &token).await.status().as_u16(), 303);
    assert!(email_of(&app, &user.sub).await.email_verified());
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("admin-made@example.com — verified"), "{page}");
    assert!(!page.contains("action=\"/account/verify-email\""));
}
