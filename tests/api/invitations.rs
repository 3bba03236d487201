//! Issue 12 item 6: `latchkey user invite`, whatever `registration` says; the server sends the
//! invitation through the outbox (written by the CLI process) and the link sets the password.

use crate::helpers::*;
use crate::mailbox::*;

#[tokio::test]
async fn an_invited_person_sets_a_password_and_signs_in_with_a_verified_address() {
    // Registration closed (the default): invitations still work.
    let (app, smtp) = spawn_mail_app(|s| s.registration = latchkey::config::Registration::Closed).await;
    let master = app.settings.master_key.expose().to_string();
    let env = [
        ("LATCHKEY_MASTER_KEY", master.as_str()),
        ("LATCHKEY_ISSUER", app.address.as_str()),
        ("LATCHKEY_SMTP_URL", "smtp://127.0.0.1:9"),
    ];
    let output = latchkey_cli(
        &app.db,
        &["user", "invite", "--email", "Invitee@Example.com", "--name", "Ivy Invitee", "--role", "editor"],
        &env,
        None,
    )
    .await;
    let printed = cli_json(&output);
    assert_eq!(printed["user"]["email"], "invitee@example.com");
    assert_eq!(printed["user"]["created_via"], "invited");
    assert_eq!(printed["user"]["email_verified"], false);
    assert_eq!(printed["user"]["roles"], serde_json::json!(["editor"]));
    let sub = printed["user"]["sub"].as_str().unwrap().to_string();
    assert!(printed["invitation_expires_at"].as_i64().unwrap() >= latchkey::state::unix_now() + 7 * 86_400 - 5);

    // The server's sender picks the CLI's message up from the outbox.
    let message = smtp.nth("invitee@example.com", 1).await;
    assert_eq!(message.subject, "You are invited to create your account");
    assert!(message.text.contains("7 days"));
    let token = message.token(&format!("{}/invitation", app.address));

    // Before accepting, no password signs in.
    assert_eq!(try_sign_in(&app, "invitee@example.com", TEST_PASSWORD).await.status().as_u16(), 200);
    let b = browser();
    let accepted = set_password_by_link(&app, &b, "/invitation", &token, TEST_PASSWORD).await;
    assert_eq!(accepted.status().as_u16(), 303);
    assert_eq!(location(&accepted), "/login?login_hint=invitee%40example.com");
    assert_eq!(set_password_by_link_status(&app, &token).await, 410, "single use");

    let client = app.web_app(true).await;
    let pkce = pkce();
    let code = app.code_for(&browser(), &client, "invitee@example.com", "openid email roles", &pkce).await;
    let (_, tokens) = app.redeem(&client, &code, Some(&pkce.verifier)).await;
    let id = jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["roles"], serde_json::json!(["editor"]));

    let events = latchkey::store::AuditStore::list_audit_events(
        app.state.store(),
        &latchkey::audit::AuditFilter { user_sub: Some(sub), limit: 20, ..Default::default() },
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in ["user.invited", "invitation.accepted", "email.verified"] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
}

async fn set_password_by_link_status(app: &TestApp, token: &str) -> u16 {
    browser().get(app.url(&format!("/invitation?token={token}"))).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn inviting_again_replaces_the_link_and_an_existing_account_is_refused() {
    let (app, smtp) = spawn_mail_app(|s| s.registration = latchkey::config::Registration::Invite).await;
    let master = app.settings.master_key.expose().to_string();
    let env = [("LATCHKEY_MASTER_KEY", master.as_str()), ("LATCHKEY_ISSUER", app.address.as_str())];
    cli_json(&latchkey_cli(&app.db, &["user", "invite", "--email", "twice@example.com"], &env, None).await);
    let first = smtp.nth("twice@example.com", 1).await.token(&format!("{}/invitation", app.address));
    cli_json(&latchkey_cli(&app.db, &["user", "invite", "--email", "twice@example.com"], &env, None).await);
    let second = smtp.nth("twice@example.com", 2).await.token(&format!("{}/invitation", app.address));
    assert_eq!(set_password_by_link_status(&app, &first).await, 410, "the newer invitation voids the older");
    assert_eq!(set_password_by_link_status(&app, &second).await, 200);
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(1));

    app.user("member@example.com").await;
    let refused = latchkey_cli(&app.db, &["user", "invite", "--email", "member@example.com"], &env, None).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("a user with email member@example.com exists already"));
    assert_eq!(outbox_rows(&app, "member@example.com").await, 0);
    // Once accepted, the person is a member too: no more invitations.
    assert_eq!(
        set_password_by_link(&app, &browser(), "/invitation", &second, NEW_PASSWORD).await.status().as_u16(),
        303
    );
    let again = latchkey_cli(&app.db, &["user", "invite", "--email", "twice@example.com"], &env, None).await;
    assert!(!again.status.success());
}

#[tokio::test]
async fn admin_made_accounts_can_be_marked_verified() {
    let app = spawn_app().await;
    let env: [(&str, &str); 0] = [];
    let made = cli_json(
        &latchkey_cli(
            &app.db,
            &["user", "create", "--email", "vouched@example.com", "--password-stdin", "--email-verified"],
            &env,
            Some(&format!("{NEW_PASSWORD}\n")),
        )
        .await,
    );
    assert_eq!(made["email_verified"], true);
    assert_eq!(made["created_via"], "admin");
    let plain = cli_json(
        &latchkey_cli(
            &app.db,
            &["user", "create", "--email", "plain@example.com", "--password-stdin"],
            &env,
            Some(&format!("{NEW_PASSWORD}\n")),
        )
        .await,
    );
    assert_eq!(plain["email_verified"], false);
    // An admin-made account signs in unverified, as before issue 12.
    assert_eq!(try_sign_in(&app, "plain@example.com", NEW_PASSWORD).await.status().as_u16(), 303);
}
