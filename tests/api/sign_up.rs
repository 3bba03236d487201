//! Issue 12 items 2, 3 and 7: sign-up with email verification, through the pages and a real
//! SMTP server, on both stores.

use crate::helpers::*;
use crate::mailbox::*;
use latchkey::config::Registration;
use latchkey::state::unix_now;

/// The whole path of a new user who arrives from an app: authorize → sign-in page → "Create
/// account" → verification mail → link → sign in → back at the app, whose ID token and
/// userinfo say `email_verified: true`.
#[tokio::test]
async fn sign_up_from_an_app_verifies_then_returns_to_the_app_with_email_verified() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let client = app.web_app(true).await;
    let b = browser();
    let pkce = pkce();
    let start = b.get(authorize_url(&app, &client, "openid email profile", &pkce.challenge, &[])).send().await.unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let login = location(&start);
    let rid = query_of(&app.url(&login))["rid"].clone();
    let login_page = b.get(app.url(&login)).send().await.unwrap().text().await.unwrap();
    assert!(login_page.contains(&format!("href=\"/register?rid={rid}\"")), "{login_page}");
    assert!(login_page.contains("href=\"/forgot-password?rid="), "{login_page}");

    let email = "newcomer@example.com";
    let fields = [
        ("rid", rid.as_str()),
        ("email", "NewComer@Example.com"),
        ("name", "Sam Newcomer"),
        ("password", NEW_PASSWORD),
        ("confirm", NEW_PASSWORD),
    ];
    let posted = submit_form(&app, &b, &format!("/register?rid={rid}"), "/register", &fields).await;
    assert_eq!(posted.status().as_u16(), 303);
    assert_eq!(location(&posted), format!("/check-email?sent=sign_up&rid={rid}"));

    // Not signed in yet, and not able to: the address is unverified.
    let refused = try_sign_in(&app, email, NEW_PASSWORD).await;
    assert_eq!(refused.status().as_u16(), 403);
    let message = smtp.nth(email, 1).await;
    assert_eq!(message.subject, "Verify your email address");
    assert!(message.raw.contains("multipart/alternative"), "a text and an HTML part");
    assert!(message.raw.contains("From: \"Latchkey Test\" <no-reply@latchkey.test>"), "{}", message.raw);
    // minijinja escapes `/` in HTML as `&#x2f;`, which every HTML reader decodes.
    let html = message.html.replace("&#x2f;", "/");
    assert!(html.contains(&format!("href=\"{}/verify-email?token=", app.address)), "{html}");
    let token = message.token(&format!("{}/verify-email", app.address));
    assert_eq!(token.len(), 43);

    let verified = use_link(&app, &b, "/verify-email", &token).await;
    assert_eq!(verified.status().as_u16(), 303);
    let next = location(&verified);
    let next_query = query_of(&app.url(&next));
    assert!(next.starts_with("/login?"), "{next}");
    assert_eq!(next_query["login_hint"], email);
    let resumed_rid = next_query["rid"].clone();
    let page = b.get(app.url(&next)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Your email address is verified. Sign in to continue."), "{page}");
    assert!(page.contains(&format!("value=\"{email}\"")), "the address is filled in:\n{page}");

    let form = [
        ("csrf", hidden_field(&page, "csrf")),
        ("rid", resumed_rid.clone()),
        ("email", email.to_string()),
        ("password", NEW_PASSWORD.to_string()),
    ];
    let signed = b.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 303);
    let continued = b.get(app.url(&location(&signed))).send().await.unwrap();
    assert_eq!(continued.status().as_u16(), 303);
    let callback = location(&continued);
    assert!(callback.starts_with(&client.redirect_uri), "back at the app: {callback}");
    let callback = query_of(&callback);
    assert_eq!(callback["state"], "st-123", "the app's own request, state and all");
    let (status, tokens) = app.redeem(&client, &callback["code"], Some(&pkce.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let id = jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!(id["email"], email);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["nonce"], "n-456");
    let info: serde_json::Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["name"], "Sam Newcomer");

    let events = latchkey::store::AuditStore::list_audit_events(
        app.state.store(),
        &latchkey::audit::AuditFilter { limit: 50, ..Default::default() },
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in ["user.registered", "email.verification_sent", "email.verified"] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    let refusal = events.iter().find(|e| e.event == "sign_in.failed").expect("the refusal is audited");
    assert_eq!(refusal.detail["reason"], "email_unverified");
}

#[tokio::test]
async fn an_unverified_account_cannot_sign_in_and_can_have_the_link_sent_again() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let email = "waiting@example.com";
    sign_up(&app, &browser(), email, NEW_PASSWORD).await;
    let first = smtp.nth(email, 1).await.token(&format!("{}/verify-email", app.address));

    let refused = try_sign_in(&app, email, NEW_PASSWORD).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.headers().get("set-cookie").is_none_or(|c| !c.to_str().unwrap().is_empty()));
    let page = refused.text().await.unwrap();
    assert!(page.contains("Verify your email address first"), "{page}");
    assert!(page.contains("action=\"/verify-email/resend\""), "{page}");
    // A wrong password still gets the usual answer: the verification state is not revealed.
    let wrong = try_sign_in(&app, email, "not the password at all").await;
    assert_eq!(wrong.status().as_u16(), 200);
    assert!(!wrong.text().await.unwrap().contains("Verify your email"));

    // The resend button, from the refusal page.
    let b = browser();
    let resent = submit_form(&app, &b, "/login", "/verify-email/resend", &[("email", email)]).await;
    assert_eq!(resent.status().as_u16(), 303);
    assert_eq!(location(&resent), "/check-email?sent=verify");
    let second = smtp.nth(email, 2).await.token(&format!("{}/verify-email", app.address));
    assert_ne!(first, second);
    // A newer link voids the older one.
    let old = b.get(app.url(&format!("/verify-email?token={first}"))).send().await.unwrap();
    assert_eq!(old.status().as_u16(), 410);
    // Resending for an unknown address answers the same and sends nothing.
    let unknown =
        submit_form(&app, &b, "/login", "/verify-email/resend", &[("email", "nobody-here@example.com")]).await;
    assert_eq!(unknown.status().as_u16(), 303);
    assert_eq!(location(&unknown), "/check-email?sent=verify");
    assert_eq!(outbox_rows(&app, "nobody-here@example.com").await, 0);

    assert_eq!(use_link(&app, &b, "/verify-email", &second).await.status().as_u16(), 303);
    assert_eq!(try_sign_in(&app, email, NEW_PASSWORD).await.status().as_u16(), 303);
}

#[tokio::test]
async fn verification_links_work_once_and_expire() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let email = "once@example.com";
    sign_up(&app, &browser(), email, NEW_PASSWORD).await;
    let token = smtp.nth(email, 1).await.token(&format!("{}/verify-email", app.address));
    let b = browser();
    let page = b.get(app.url(&format!("/verify-email?token={token}"))).send().await.unwrap().text().await.unwrap();
    // Two tabs with the same button: the first use wins, the second finds the link dead.
    let form = [("csrf", hidden_field(&page, "csrf")), ("token", token.clone())];
    let first = b.post(app.url("/verify-email")).form(&form).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 303);
    let second = b.post(app.url("/verify-email")).form(&form).send().await.unwrap();
    assert_eq!(second.status().as_u16(), 410);
    assert!(second.text().await.unwrap().contains("This link no longer works"));

    // Expiry: a link past `email_verification_ttl` is dead.
    let other = "later@example.com";
    sign_up(&app, &browser(), other, NEW_PASSWORD).await;
    let late = smtp.nth(other, 1).await.token(&format!("{}/verify-email", app.address));
    exec_sql(
        &app.db,
        "UPDATE email_tokens SET expires_at = $1 WHERE email = $2",
        &[SqlValue::Int(unix_now()), SqlValue::Text(other)],
    )
    .await;
    let expired = b.get(app.url(&format!("/verify-email?token={late}"))).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 410);
    // Damaged and made-up tokens: the same page, nothing looked up that can't exist.
    for bad in ["", "short", &"A".repeat(43), &format!("{}%00", &late[..42])] {
        let response = b.get(app.url(&format!("/verify-email?token={bad}"))).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 410, "{bad}");
    }
    let user = latchkey::admin::users::show(app.state.store(), other).await.unwrap();
    assert!(!user.email_verified());
    // Only the token's SHA-256 is stored.
    let hash = latchkey::secret::sha256(&late);
    let stored =
        query_i64(&app.db, "SELECT COUNT(*) FROM email_tokens WHERE token_hash = $1", &[SqlValue::Bytes(&hash)]).await;
    assert_eq!(stored, Some(1));
    for stored in query_bytes(&app.db, "SELECT token_hash FROM email_tokens").await {
        assert_eq!(stored.len(), 32);
        assert!(!String::from_utf8_lossy(&stored).contains(&late));
    }
}

#[tokio::test]
async fn a_taken_address_gets_the_same_answer_and_its_owner_is_told() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let owner = app.user("owner@example.com").await;
    let fresh = sign_up(&app, &browser(), "fresh@example.com", NEW_PASSWORD).await;
    let taken = sign_up(&app, &browser(), "Owner@Example.com", NEW_PASSWORD).await;
    assert_eq!(fresh, taken, "the same redirect for a new and a taken address");
    let b = browser();
    let fresh_page = b.get(app.url(&fresh)).send().await.unwrap().text().await.unwrap();
    let taken_page = b.get(app.url(&taken)).send().await.unwrap().text().await.unwrap();
    assert_eq!(fresh_page, taken_page);

    let told = smtp.nth(&owner.email, 1).await;
    assert_eq!(told.subject, "Someone tried to sign up with your email address");
    assert!(!told.text.contains("token="), "no link that could verify or sign in:\n{}", told.text);
    assert!(told.text.contains(&format!("{}/forgot-password", app.address)));
    // Still one account, the owner's, with its own password.
    let users = latchkey::store::UserStore::list_users(app.state.store()).await.unwrap();
    assert_eq!(users.iter().filter(|u| u.email == owner.email).count(), 1);
    assert_eq!(try_sign_in(&app, &owner.email, TEST_PASSWORD).await.status().as_u16(), 303);
    assert_eq!(try_sign_in(&app, &owner.email, NEW_PASSWORD).await.status().as_u16(), 200);
}

#[tokio::test]
async fn the_form_explains_what_it_refuses_and_keeps_what_was_typed() {
    let (app, _smtp) = spawn_mail_app(|_| {}).await;
    let b = browser();
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        ("not-an-address", "Sam", NEW_PASSWORD, NEW_PASSWORD, "Enter a valid email address."),
        ("sam@example.com", "", NEW_PASSWORD, NEW_PASSWORD, "Your name: name must be 1 to 200 printable characters."),
        ("sam@example.com", "Sam", NEW_PASSWORD, "something else entirely", "The two passwords are not the same."),
        (
            "sam@example.com",
            "Sam",
            "password123",
            "password123",
            "The password was not accepted: the password is too easy to guess",
        ),
    ];
    for (email, name, password, confirm, why) in cases {
        let fields = [("email", email), ("name", name), ("password", password), ("confirm", confirm)];
        let response = submit_form(&app, &b, "/register", "/register", &fields).await;
        assert_eq!(response.status().as_u16(), 200, "{why}");
        let page = response.text().await.unwrap();
        assert!(page.contains(why), "{why} in:\n{page}");
        assert!(page.contains(&format!("value=\"{email}\"")), "the address stays typed in");
        assert!(!page.contains(password), "a password is never sent back");
    }
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(0));
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM outbox", &[]).await, Some(0));
    // Refused forms send nothing and so spend none of the address's mail budget (5 by default):
    // the four above and another two, then a valid one still goes through.
    for _ in 0..2 {
        let fields = [("email", "x"), ("name", "Sam"), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
        assert_eq!(submit_form(&app, &b, "/register", "/register", &fields).await.status().as_u16(), 200);
    }
    let fields = [("email", "sam@example.com"), ("name", "Sam"), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    assert_eq!(submit_form(&app, &b, "/register", "/register", &fields).await.status().as_u16(), 303);
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(1));
    // No CSRF token, no account.
    let forged = b
        .post(app.url("/register"))
        .form(&[("email", "other@example.com"), ("name", "Sam"), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(1));
}

#[tokio::test]
async fn sign_up_exists_only_when_registration_is_open() {
    for registration in [Registration::Closed, Registration::Invite] {
        let (app, _smtp) = spawn_mail_app(|s| s.registration = registration).await;
        let b = browser();
        assert_eq!(b.get(app.url("/register")).send().await.unwrap().status().as_u16(), 404);
        let login = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        assert!(!login.contains("/register"), "no sign-up link:\n{login}");
        let csrf = hidden_field(&login, "csrf");
        let posted = b
            .post(app.url("/register"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", "x@example.com"),
                ("name", "X"),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status().as_u16(), 404, "{registration:?}");
        assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(0));
    }
}

/// Issue 12: sign-up, reset and resend are throttled per client address (429 with
/// Retry-After), and one inbox gets at most `email_per_address_per_hour` messages from them
/// however many addresses ask.
#[tokio::test]
async fn mail_sending_pages_are_throttled_per_address_and_per_inbox() {
    let (app, smtp) = spawn_mail_app(|s| {
        s.email_ip_burst = 3;
        s.email_ip_per_hour = 1;
        s.email_per_address_per_hour = 2;
    })
    .await;
    let victim = app.user("victim@example.com").await;
    let b = browser();
    for _ in 0..3 {
        let response = submit_form(&app, &b, "/forgot-password", "/forgot-password", &[("email", &victim.email)]).await;
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(location(&response), "/check-email?sent=reset");
    }
    // The third request answered like the others but sent nothing: the inbox's budget is two.
    assert_eq!(outbox_rows(&app, &victim.email).await, 2);
    smtp.wait_for(&victim.email, 2).await;
    // The fourth from this address is refused outright, sign-up and resend alike.
    let refused = submit_form(&app, &b, "/forgot-password", "/forgot-password", &[("email", "else@example.com")]).await;
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let fields = [("email", "new@example.com"), ("name", "New"), ("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)];
    assert_eq!(submit_form(&app, &b, "/register", "/register", &fields).await.status().as_u16(), 429);
    assert_eq!(
        submit_form(&app, &b, "/login", "/verify-email/resend", &[("email", "x@example.com")]).await.status().as_u16(),
        429
    );
    assert_eq!(query_i64(&app.db, "SELECT COUNT(*) FROM users", &[]).await, Some(1));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.messages_to(&victim.email).len(), 2);
}
