//! Audit trail: an event for each security action, and `latchkey audit` (issue 4).

use std::process::Output;

use latchkey::audit::{AuditEvent, AuditFilter};
use latchkey::authn::totp::{code_at, decode_base32};
use latchkey::state::unix_now;
use latchkey::store::AuditStore;
use serde_json::{json, Value};

use crate::helpers::*;

const AGENT: &str = "AuditTest/1.0 (integration; +https://example.com/bot)";

/// A browser that names itself.
fn browser_as(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

/// Events, newest first, optionally of one type.
async fn events(app: &TestApp, event: Option<&str>) -> Vec<AuditEvent> {
    let filter = AuditFilter { user_sub: None, event: event.map(str::to_string), limit: 10_000, ..Default::default() };
    app.state.store().list_audit_events(&filter).await.unwrap()
}

/// The only event of a type.
async fn the_event(app: &TestApp, event: &str) -> AuditEvent {
    let mut found = events(app, Some(event)).await;
    assert_eq!(found.len(), 1, "one {event}: {found:?}");
    found.remove(0)
}

fn assert_from_browser(event: &AuditEvent) {
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"), "{event:?}");
    assert_eq!(event.user_agent.as_deref(), Some(AGENT), "{event:?}");
}

/// POST /login from `b` (after GET /login for its CSRF token); returns status and Location.
async fn sign_in(app: &TestApp, b: &reqwest::Client, email: &str, password: &str, next: Option<&str>) -> (u16, String) {
    let path = if next.is_some() { "/login?next=account" } else { "/login" };
    let page = b.get(app.url(path)).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&page, "csrf");
    let mut form = vec![("csrf", csrf.as_str()), ("email", email), ("password", password)];
    if let Some(next) = next {
        form.push(("next", next));
    }
    let response = b.post(app.url("/login")).form(&form).send().await.unwrap();
    let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (response.status().as_u16(), location)
}

async fn account_csrf(app: &TestApp, b: &reqwest::Client) -> String {
    let page = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    hidden_field(&page.text().await.unwrap(), "csrf")
}

/// The account page's notice (removed as it is shown).
async fn notice(app: &TestApp, b: &reqwest::Client) -> String {
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    text_between(&page, "id=\"notice\">", "</p>").to_string()
}

fn text_between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("no {start} in page:\n{page}")) + start.len();
    let to = page[from..].find(end).expect("end marker") + from;
    &page[from..to]
}

#[tokio::test]
async fn sign_in_success_and_failure_are_recorded_with_address_and_user_agent() {
    let app = spawn_app().await;
    // Before the account is made: making it is recorded too (`user.created`, by the helper's
    // admin service call), and every event below must fall between these two times.
    let started = unix_now();
    let ann = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser_as(AGENT);

    assert_eq!(sign_in(&app, &b, &ann.email, "not the password", None).await.0, 200);
    assert_eq!(sign_in(&app, &b, " Nobody@Example.com ", TEST_PASSWORD, None).await.0, 200);
    let failed = events(&app, Some("sign_in.failed")).await;
    assert_eq!(failed.len(), 2);
    let (unknown, wrong) = (&failed[0], &failed[1]);
    assert_eq!(wrong.detail, json!({ "reason": "wrong_password", "email": "ann@example.com", "delay_ms": 0 }));
    assert_eq!(
        unknown.detail,
        json!({ "reason": "unknown_user", "email": "Nobody@Example.com", "delay_ms": 0 }),
        "as typed, trimmed"
    );
    // The user is named when the email is an account's, so `latchkey audit --user` finds it.
    assert_eq!(wrong.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(unknown.user_sub, None);
    for event in &failed {
        assert_from_browser(event);
        assert_eq!(event.client_id, None);
    }
    assert!(events(&app, Some("sign_in.succeeded")).await.is_empty());

    // A sign-in for an app names the app.
    let url = authorize_url(&app, &client, "openid email", &pkce().challenge, &[]);
    let callback = app.sign_in_through_pages(&b, &url, &ann.email).await;
    assert!(callback.query_pairs().any(|(k, _)| k == "code"));
    let success = the_event(&app, "sign_in.succeeded").await;
    assert_eq!(success.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(success.client_id.as_deref(), Some(client.id.as_str()));
    assert_eq!(success.detail, json!({ "amr": ["pwd"] }));
    assert_from_browser(&success);
    let finished = unix_now();
    for event in events(&app, None).await {
        assert!(event.at >= started && event.at <= finished, "{event:?}");
    }
    // Newest first, ids increasing with time.
    let ids: Vec<i64> = events(&app, None).await.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // A sign-in to the account page has no app; no user agent is recorded as none, and a very
    // long one is cut to 256 characters.
    assert_eq!(sign_in(&app, &browser(), &ann.email, TEST_PASSWORD, Some("account")).await, (303, "/account".into()));
    let long_agent = format!("Mozilla/5.0 {}", "x".repeat(400));
    assert_eq!(sign_in(&app, &browser_as(&long_agent), &ann.email, TEST_PASSWORD, None).await, (303, "/".into()));
    let latest = events(&app, Some("sign_in.succeeded")).await;
    assert_eq!(latest.len(), 3);
    assert_eq!(latest[1].client_id, None);
    assert_eq!(latest[1].user_agent, None);
    assert_eq!(latest[0].user_agent.as_deref(), Some(&long_agent[..256]));
}

#[tokio::test]
async fn lockout_is_recorded_once_with_the_email_as_typed() {
    let app = spawn_app_with(|s| s.lockout_threshold = 2).await;
    let ann = app.user("ann@example.com").await;
    let b = browser_as(AGENT);
    for _ in 0..4 {
        assert_eq!(sign_in(&app, &b, "Ann@Example.com", "not the password", None).await.0, 200);
    }
    let locked = the_event(&app, "account.locked").await;
    assert_eq!(locked.detail, json!({ "factor": "password", "email": "Ann@Example.com" }));
    assert_eq!(locked.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_from_browser(&locked);
    let reasons: Vec<Value> =
        events(&app, Some("sign_in.failed")).await.iter().rev().map(|e| e.detail["reason"].clone()).collect();
    assert_eq!(reasons, [json!("wrong_password"), json!("wrong_password"), json!("locked"), json!("locked")]);
}

#[tokio::test]
async fn a_password_change_is_recorded() {
    let app = spawn_app().await;
    let ann = app.user("ann@example.com").await;
    let b = browser_as(AGENT);
    assert_eq!(sign_in(&app, &b, &ann.email, TEST_PASSWORD, Some("account")).await.0, 303);
    let change = |current: &'static str, new: &'static str| {
        let (app, b) = (&app, &b);
        async move {
            let csrf = account_csrf(app, b).await;
            let response = b
                .post(app.url("/account/password"))
                .form(&[("csrf", csrf.as_str()), ("current", current), ("new", new), ("confirm", new)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 303);
            notice(app, b).await
        }
    };
    assert_eq!(change("wrong current", "maple quartz lantern drifts").await, "Your current password is not right.");
    assert!(change(TEST_PASSWORD, "password1").await.contains("too easy to guess"));
    assert!(events(&app, Some("password.changed")).await.is_empty(), "refused changes are not changes");
    // The wrong current password is a failed password check like any other.
    let failed = the_event(&app, "sign_in.failed").await;
    assert_eq!(failed.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(failed.detail, json!({ "reason": "wrong_password", "page": "change_password" }));
    assert_from_browser(&failed);

    let changed = change(TEST_PASSWORD, "maple quartz lantern drifts").await;
    assert_eq!(changed, "Your password was changed. You were signed out everywhere else.");
    let event = the_event(&app, "password.changed").await;
    assert_eq!(event.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(event.client_id, None);
    assert_from_browser(&event);
}

#[tokio::test]
async fn consent_granted_and_revoked_are_recorded() {
    let app = spawn_app().await;
    let ann = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let first_party = app.web_app(true).await;
    let b = browser_as(AGENT);

    let url = authorize_url(&app, &first_party, "openid email", &pkce().challenge, &[]);
    app.sign_in_through_pages(&b, &url, &ann.email).await;
    assert!(events(&app, Some("consent.granted")).await.is_empty(), "a first-party app asks no consent");

    let url = authorize_url(&app, &client, "openid profile email", &pkce().challenge, &[]);
    app.sign_in_through_pages(&b, &url, &ann.email).await;
    let granted = the_event(&app, "consent.granted").await;
    assert_eq!(granted.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(granted.client_id.as_deref(), Some(client.id.as_str()));
    let mut scopes: Vec<&str> = granted.detail["scopes"].as_str().unwrap().split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["email", "openid", "profile"]);
    assert_from_browser(&granted);

    let revoke = |client_id: String| {
        let (app, b) = (&app, &b);
        async move {
            let csrf = account_csrf(app, b).await;
            let response = b
                .post(app.url("/account/apps/revoke"))
                .form(&[("csrf", csrf.as_str()), ("client_id", &client_id)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 303);
            assert_eq!(location(&response), "/account");
            notice(app, b).await
        }
    };
    assert_eq!(revoke(client.id.clone()).await, "The app&#x27;s access was removed.");
    let revoked = the_event(&app, "consent.revoked").await;
    assert_eq!(revoked.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(revoked.client_id.as_deref(), Some(client.id.as_str()));
    assert_from_browser(&revoked);
    // Nothing left to revoke: no second event.
    assert_eq!(revoke(client.id.clone()).await, "That app had no access.");
    assert_eq!(events(&app, Some("consent.revoked")).await.len(), 1);
    // The next sign-in to the app asks again, and is recorded again.
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);
    app.sign_in_through_pages(&b, &url, &ann.email).await;
    assert_eq!(events(&app, Some("consent.granted")).await.len(), 2);
}

// ---- The command line ----

async fn latchkey(db: &TestDatabase, args: &[&str]) -> Output {
    latchkey_cli(db, args, &[], None).await
}

fn json_out(output: &Output) -> Value {
    cli_json(output)
}

/// `latchkey audit ARGS…` as a list of events.
async fn audit(db: &TestDatabase, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    json_out(&latchkey(db, &all).await).as_array().expect("a JSON array").clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn client_commands_are_recorded() {
    let db = fresh_database().await;
    let created =
        json_out(&latchkey(&db, &["client", "create", "--name", "Billing", "--scope", "invoices:read"]).await);
    let id = created["client_id"].as_str().unwrap();
    json_out(&latchkey(&db, &["client", "rotate-secret", id]).await);
    json_out(&latchkey(&db, &["client", "disable", id]).await);
    // Commands that fail record nothing.
    assert!(!latchkey(&db, &["client", "rotate-secret", "no-such-client"]).await.status.success());
    assert!(!latchkey(&db, &["client", "disable", "no-such-client"]).await.status.success());

    let events = audit(&db, &[]).await;
    assert_eq!(kinds(&events), ["client.disabled", "client.secret_rotated", "client.created"], "newest first");
    for event in &events {
        assert_eq!(event["client_id"], id);
        assert_eq!(event["detail"]["by"], "cli");
        assert_eq!(
            (&event["user_sub"], &event["ip"], &event["user_agent"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8, "{keys:?}");
    }
    assert_eq!(events[2]["detail"]["name"], "Billing");
    assert!(!events.iter().any(|e| e.to_string().contains(created["client_secret"].as_str().unwrap())));
    let only = audit(&db, &["--type", "client.secret_rotated"]).await;
    assert_eq!(kinds(&only), ["client.secret_rotated"]);
    assert_eq!(only[0]["id"], events[1]["id"]);
}

#[tokio::test]
async fn the_audit_command_filters_by_user_and_type_and_refuses_unknown_types() {
    let app = spawn_app().await;
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let b = browser_as(AGENT);
    for (email, password) in [
        (&ann.email, TEST_PASSWORD),
        (&ann.email, "not the password"),
        (&bob.email, TEST_PASSWORD),
        (&ann.email, TEST_PASSWORD),
    ] {
        sign_in(&app, &b, email, password, None).await;
    }
    let all = audit(&app.db, &[]).await;
    // Newest first: the sign-ins after the two accounts were made (the helper uses the admin
    // service layer, which records each creation).
    assert_eq!(
        kinds(&all),
        [
            "sign_in.succeeded",
            "sign_in.succeeded",
            "sign_in.failed",
            "sign_in.succeeded",
            "user.created",
            "user.created"
        ]
    );
    // The same rows as the store gives.
    let stored: Vec<Value> = events(&app, None).await.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(all, stored);
    assert_eq!(all[0]["ip"], "127.0.0.1");
    assert_eq!(all[0]["user_agent"], AGENT);

    // By user: by email or by sub, the same events.
    let anns = audit(&app.db, &["--user", "ann@example.com"]).await;
    assert_eq!(kinds(&anns), ["sign_in.succeeded", "sign_in.failed", "sign_in.succeeded", "user.created"]);
    assert!(anns.iter().all(|e| e["user_sub"] == ann.sub.as_str()));
    assert_eq!(audit(&app.db, &["--user", &ann.sub]).await, anns);
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&anns), [all[0]["id"].clone(), all[2]["id"].clone(), all[3]["id"].clone(), all[5]["id"].clone()]);
    let bobs = audit(&app.db, &["--user", &bob.email]).await;
    assert_eq!(ids(&bobs), [all[1]["id"].clone(), all[4]["id"].clone()]);
    // By type, and both at once, and a limit (the newest are kept).
    let failed = audit(&app.db, &["--type", "sign_in.failed"]).await;
    assert_eq!(kinds(&failed), ["sign_in.failed"]);
    assert_eq!(failed[0]["detail"]["reason"], "wrong_password");
    assert_eq!(audit(&app.db, &["--user", "ann@example.com", "--type", "sign_in.failed"]).await, failed);
    assert_eq!(audit(&app.db, &["--type", "sign_in.succeeded"]).await.len(), 3);
    let newest = audit(&app.db, &["--user", "ann@example.com", "--type", "sign_in.succeeded", "--limit", "1"]).await;
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["id"], all[0]["id"]);
    assert_eq!(audit(&app.db, &["--limit", "2"]).await, all[..2]);
    assert!(audit(&app.db, &["--user", &bob.sub, "--type", "sign_in.failed"]).await.is_empty());
    assert!(audit(&app.db, &["--type", "password.changed"]).await.is_empty(), "a known type with no events: []");

    // Refused: an unknown type (not silently an empty list), an unknown user.
    let unknown = latchkey(&app.db, &["audit", "--type", "sign_in.bogus"]).await;
    assert!(!unknown.status.success());
    assert_ne!(unknown.status.code(), Some(0));
    assert!(unknown.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("unknown event type `sign_in.bogus`"), "{stderr}");
    assert!(stderr.contains("sign_in.succeeded"), "the known types are listed: {stderr}");
    let nobody = latchkey(&app.db, &["audit", "--user", "nobody@example.com"]).await;
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user"), "{}", String::from_utf8_lossy(&nobody.stderr));
}

// ---- Second factors ----

/// Turns on TOTP for the signed-in user of `b`; returns the seed. The recovery codes page
/// follows; its codes are returned too.
async fn enrol_totp(app: &TestApp, b: &reqwest::Client) -> (Vec<u8>, Vec<String>) {
    let page = b.get(app.url("/account/totp")).send().await.unwrap().text().await.unwrap();
    let seed = decode_base32(text_between(&page, "id=\"totp-secret\">", "</code>")).expect("base32 key");
    let code = code_at(&seed, unix_now()).unwrap();
    let confirmed = b
        .post(app.url("/account/totp"))
        .form(&[("csrf", hidden_field(&page, "csrf").as_str()), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&confirmed), "/account/recovery-codes");
    (seed, recovery_codes(app, b).await)
}

async fn recovery_codes(app: &TestApp, b: &reqwest::Client) -> Vec<String> {
    let page = b.get(app.url("/account/recovery-codes")).send().await.unwrap().text().await.unwrap();
    let list = text_between(&page, "id=\"recovery-codes\">", "</ul>");
    list.split("<code>").skip(1).map(|c| c[..c.find("</code>").unwrap()].to_string()).collect()
}

#[tokio::test]
async fn second_factor_events_are_recorded() {
    let app = spawn_app().await;
    let ann = app.user("ann@example.com").await;
    let b = browser_as(AGENT);
    assert_eq!(sign_in(&app, &b, &ann.email, TEST_PASSWORD, Some("account")).await.0, 303);
    let (seed, codes) = enrol_totp(&app, &b).await;
    assert_eq!(codes.len(), 10);
    let enrolled = the_event(&app, "mfa.enrolled").await;
    assert_eq!(enrolled.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_from_browser(&enrolled);
    let generated = the_event(&app, "recovery_codes.generated").await;
    assert_eq!(generated.detail, json!({ "count": 10 }));
    assert_from_browser(&generated);

    // A new sign-in: a wrong code, then a recovery code.
    let other = browser_as(AGENT);
    assert_eq!(sign_in(&app, &other, &ann.email, TEST_PASSWORD, None).await, (303, "/login/mfa".into()));
    let mfa_csrf = hidden_field(&other.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap(), "csrf");
    let submit = |code: String| {
        let (app, other, csrf) = (&app, &other, &mfa_csrf);
        async move {
            let response = other
                .post(app.url("/login/mfa"))
                .form(&[("csrf", csrf.as_str()), ("code", &code)])
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let near: Vec<String> = (-3..=3).map(|k| code_at(&seed, unix_now() + k * 30).unwrap()).collect();
    let wrong = (0..10).map(|d| d.to_string().repeat(6)).find(|c| !near.contains(c)).unwrap();
    assert_eq!(submit(wrong).await, 200);
    let failed = the_event(&app, "mfa.failed").await;
    assert_eq!(failed.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_from_browser(&failed);
    assert!(events(&app, Some("recovery_code.used")).await.is_empty());
    assert_eq!(submit(codes[3].to_uppercase()).await, 303);
    let used = the_event(&app, "recovery_code.used").await;
    assert_eq!(used.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_eq!(used.detail, json!({ "left": 9 }));
    assert_from_browser(&used);
    let success = &events(&app, Some("sign_in.succeeded")).await[0];
    assert_eq!(success.detail, json!({ "amr": ["pwd", "otp"] }));

    // New codes, then turning the app off with a current code.
    let csrf = account_csrf(&app, &other).await;
    let response =
        other.post(app.url("/account/recovery-codes")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(location(&response), "/account/recovery-codes");
    assert_eq!(recovery_codes(&app, &other).await.len(), 10);
    assert_eq!(events(&app, Some("recovery_codes.generated")).await.len(), 2);
    let csrf = account_csrf(&app, &other).await;
    let code = code_at(&seed, unix_now() + 30).unwrap();
    let response = other
        .post(app.url("/account/totp/remove"))
        .form(&[("csrf", csrf.as_str()), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/account");
    assert!(notice(&app, &other).await.starts_with("Two-step verification is off."));
    let removed = the_event(&app, "mfa.removed").await;
    assert_eq!(removed.user_sub.as_deref(), Some(ann.sub.as_str()));
    assert_from_browser(&removed);

    // An admin reset from the command line.
    enrol_totp(&app, &other).await;
    let reset = json_out(&latchkey(&app.db, &["user", "mfa-reset", "ann@example.com"]).await);
    assert_eq!(reset["had_mfa"], true);
    let events_cli = audit(&app.db, &["--type", "mfa.reset"]).await;
    assert_eq!(events_cli.len(), 1);
    assert_eq!(events_cli[0]["user_sub"], ann.sub.as_str());
    assert_eq!(events_cli[0]["detail"], json!({ "by": "cli", "had_mfa": true }));
    assert_eq!(events_cli[0]["ip"], Value::Null);
    let anns = audit(&app.db, &["--user", "ann@example.com"]).await;
    let mut kinds_seen: Vec<&str> = kinds(&anns);
    kinds_seen.sort_unstable();
    kinds_seen.dedup();
    assert_eq!(
        kinds_seen,
        [
            "mfa.enrolled",
            "mfa.failed",
            "mfa.removed",
            "mfa.reset",
            "recovery_code.used",
            "recovery_codes.generated",
            "sign_in.succeeded",
            "user.created"
        ]
    );
}
