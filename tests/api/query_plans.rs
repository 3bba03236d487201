//! Issue 9 item 10: no statement on a request path scans a table that grows with use, on either
//! store, whatever the planner's statistics say.
//!
//! The statements are collected from the running code, not from a hand-kept list: the store
//! records the text of every distinct statement it runs while recording is on
//! (`Store::record_statements`), the test drives every request path (sign-in with a wrong and a
//! right password, consent, code, code replay, refresh, refresh within the grace window,
//! refresh reuse (with its audit event), userinfo,
//! client_credentials, a session's second code, TOTP enrolment and sign-in, recovery codes, the
//! account pages, password change, app revocation, logout; and issue 12's sign-up, verification,
//! resend, reset, email change, invitation and the outbox sender), then asks the database for the plan
//! of each recorded statement:
//!
//! - SQLite: `EXPLAIN QUERY PLAN`, once as Latchkey runs it (no statistics) and once after
//!   seeding and `ANALYZE`; any `SCAN <table>` is a full scan (an indexed lookup is `SEARCH`),
//!   and a `LIST SUBQUERY` rebuilds a list from a table on every call.
//! - Postgres: the growing tables seeded to 20,000 rows and analysed, the statement prepared
//!   with the plan forced generic (`plan_cache_mode = force_generic_plan`: the plan must not
//!   depend on the values), `EXPLAIN EXECUTE`; any `Seq Scan on <table>` fails.
//!
//! Tables that grow with use: everything except `signing_keys` (a handful of rows: each key is
//! deleted once its tokens have expired, docs/keys.md). `clients` counts as growing: an
//! operator may register thousands. Housekeeping's DELETEs (`delete_expired`) are not on a
//! request path; the test runs them so they are recorded, holds them to the rule on SQLite (they
//! have `expires_at` indexes since migration 5) and leaves them out on Postgres, whose planner
//! rightly prefers a sequential scan when it can't see how many rows will go.
//!
//! A second test covers what a hand-run EXPLAIN misses on Postgres (the issue's "although a
//! hand-run EXPLAIN on a freshly analysed table picks the primary key"): plans a connection made
//! on tiny tables and kept while they grew. A source check makes sure no statement in
//! `src/store/` bypasses the recorder.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use latchkey::authn::sign_in::seal_seed;
use latchkey::authn::totp::{code_at, decode_base32, STEP_SECS};
use latchkey::state::unix_now;
use latchkey::store::{GrantStore, MfaStore};
use sqlx::{Connection, Row};

use crate::helpers::*;
use crate::mailbox::SmtpServer;

/// Tables that do not grow with use, with the reason.
const SMALL_TABLES: &[&str] = &[
    // A few keys per algorithm (next, active, retired until its tokens expire).
    "signing_keys",
];

/// Rows seeded into each growing table before `ANALYZE`.
const SEED_ROWS: i64 = 20_000;

fn is_housekeeping(sql: &str) -> bool {
    sql.starts_with("DELETE FROM") && (sql.contains("expires_at < $1") || sql.contains("updated_at < $1"))
}

/// The highest `$N` in a statement: how many parameters to give it.
fn parameter_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut max = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'$' {
            let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
    }
    max
}

fn current_step() -> i64 {
    unix_now().div_euclid(STEP_SECS)
}

fn millis_into_step() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    (now % (STEP_SECS as u128 * 1000)) as u64
}

async fn page(app: &TestApp, b: &reqwest::Client, path: &str) -> String {
    let response = b.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response.text().await.unwrap()
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start} in page:\n{html}")) + start.len();
    let to = html[from..].find(end).expect("end marker") + from;
    &html[from..to]
}

/// Signs a fresh browser in for `url` with the password and then `code` at the one-time-code
/// page; returns the browser, now signed in, and where the sign-in continues.
async fn sign_in_with_second_factor(app: &TestApp, url: &str, email: &str, code: &str) -> (reqwest::Client, String) {
    let b = browser();
    let start = b.get(url).send().await.unwrap();
    assert_eq!(start.status().as_u16(), 303, "GET /authorize");
    let login = location(&start);
    let html = page(app, &b, &login).await;
    let form = [
        ("csrf", hidden_field(&html, "csrf")),
        ("rid", hidden_field(&html, "rid")),
        ("email", email.to_string()),
        ("password", TEST_PASSWORD.to_string()),
    ];
    let posted = b.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 303, "POST /login");
    let mfa = location(&posted);
    assert!(mfa.starts_with("/login/mfa?rid="), "a second factor is owed: {mfa}");
    let html = page(app, &b, &mfa).await;
    let form = [("csrf", hidden_field(&html, "csrf")), ("rid", hidden_field(&html, "rid")), ("code", code.to_string())];
    let posted = b.post(app.url("/login/mfa")).form(&form).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 303, "POST /login/mfa with {code}");
    let next = location(&posted);
    (b, app.url(&next))
}

/// Drives every request path once, asserting each answer, so the store records what they run.
async fn drive_every_request_path(app: &TestApp) {
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let service = app.service_client(&["read"], &[]).await;

    // A wrong password: the attempt counter and the audit trail.
    let b = browser();
    let html = page(app, &b, "/login?next=account").await;
    let wrong = [
        ("csrf", hidden_field(&html, "csrf")),
        ("next", "account".to_string()),
        ("email", user.email.clone()),
        ("password", "not the password".to_string()),
    ];
    assert_eq!(b.post(app.url("/login")).form(&wrong).send().await.unwrap().status().as_u16(), 200);

    // Sign-in, consent, code, tokens, userinfo.
    let p = pkce();
    let code = app.code_for(&b, &client, &user.email, "openid email offline_access", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(app.userinfo_status(tokens["access_token"].as_str().unwrap()).await, 200);

    // Refresh (narrower scope); the rotated token again within the grace window (the same
    // successor back); the successor; then reuse of the rotated token.
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, refreshed) = app.refresh(&client, &first, Some("openid offline_access")).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, repeated) = app.refresh(&client, &first, None).await;
    assert_eq!((status, &repeated["refresh_token"]), (200, &refreshed["refresh_token"]), "{repeated}");
    let (status, next) = app.refresh(&client, refreshed["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "{next}");
    let (status, reused) = app.refresh(&client, &first, None).await;
    assert_eq!((status, reused["error"].as_str()), (400, Some("invalid_grant")));

    // A second code through the session (consent remembered), then its replay.
    let p = pkce();
    let url = authorize_url(app, &client, "openid email offline_access", &p.challenge, &[]);
    let callback = app.sign_in_through_pages(&b, &url, &user.email).await;
    let code = query_of(callback.as_str())["code"].clone();
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, replayed) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!((status, replayed["error"].as_str()), (400, Some("invalid_grant")));

    // A service's token.
    let (status, _, body) = app
        .post_token(&[("grant_type", "client_credentials"), ("scope", "read")], Some((&service.id, &service.secret)))
        .await;
    assert_eq!(status, 200, "{body}");

    // Introspection and revocation (issue 11 items 2 and 3): a resource server introspects the
    // user's and the service's tokens, the service revokes its token (remembered by jti), the
    // app introspects its own refresh token and revokes the grants of a refresh token and of
    // an access token.
    let api = app
        .register(latchkey::domain::NewClient {
            name: "api".into(),
            introspect: true,
            audience: Some(app.address.clone()),
            ..Default::default()
        })
        .await;
    let cc_token = body["access_token"].as_str().unwrap().to_string();
    let introspect = |caller: (String, String), token: String| async move {
        let response = app.http.post(app.url("/introspect")).basic_auth(caller.0, Some(caller.1));
        let json: serde_json::Value = response.form(&[("token", token)]).send().await.unwrap().json().await.unwrap();
        json["active"].as_bool().unwrap()
    };
    let revoke = |caller: (String, String), token: String| async move {
        let response = app.http.post(app.url("/revoke")).basic_auth(caller.0, Some(caller.1));
        response.form(&[("token", token)]).send().await.unwrap().status().as_u16()
    };
    let api_creds = (api.id.clone(), api.secret.clone());
    let app_creds = (client.id.clone(), client.secret.clone());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    // The code replay above revoked this grant: inactive, after the same statements.
    assert!(!introspect(api_creds.clone(), access.clone()).await, "the replayed code's grant is revoked");
    assert!(introspect(api_creds.clone(), cc_token.clone()).await, "the service's token is active");
    assert_eq!(revoke((service.id.clone(), service.secret.clone()), cc_token.clone()).await, 200);
    assert!(!introspect(api_creds.clone(), cc_token).await, "the revoked service token");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(!introspect(app_creds.clone(), refresh.clone()).await, "the app's own refresh token, revoked");
    assert_eq!(revoke(app_creds.clone(), refresh).await, 200);
    assert_eq!(revoke(app_creds, refreshed["access_token"].as_str().unwrap().to_string()).await, 200);

    // Account pages: TOTP enrolment and recovery codes.
    let html = page(app, &b, "/account").await;
    assert!(html.contains("Example App"), "the app is listed");
    let setup = page(app, &b, "/account/totp").await;
    let secret = between(&setup, "id=\"totp-secret\">", "</code>").to_string();
    let seed = decode_base32(&secret).expect("base32 key");
    if millis_into_step() > 25_000 {
        tokio::time::sleep(std::time::Duration::from_millis(STEP_SECS as u64 * 1000 - millis_into_step() + 250)).await;
    }
    let confirm =
        [("csrf", hidden_field(&setup, "csrf")), ("code", code_at(&seed, current_step() * STEP_SECS).unwrap())];
    let done = b.post(app.url("/account/totp")).form(&confirm).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 303, "TOTP turned on");
    let codes_page = page(app, &b, "/account/recovery-codes").await;
    let list = between(&codes_page, "id=\"recovery-codes\">", "</ul>");
    let recovery: Vec<String> =
        list.split("<li><code>").skip(1).map(|item| item[..item.find("</code>").unwrap()].to_string()).collect();
    assert_eq!(recovery.len(), 10);

    // Sign-in with a recovery code (and the count left on the account page).
    let p = pkce();
    let url = authorize_url(app, &client, "openid", &p.challenge, &[]);
    let (b2, next) = sign_in_with_second_factor(app, &url, &user.email, &recovery[0]).await;
    let callback = app.sign_in_through_pages(&b2, &next, &user.email).await;
    assert!(query_of(callback.as_str()).contains_key("code"));
    assert!(page(app, &b2, "/account").await.contains("9 left"));
    let html = page(app, &b2, "/account").await;
    let again = b2.post(app.url("/account/recovery-codes")).form(&[("csrf", hidden_field(&html, "csrf"))]);
    assert_eq!(again.send().await.unwrap().status().as_u16(), 303, "a new set of recovery codes");
    let codes_page = page(app, &b2, "/account/recovery-codes").await;
    let list = between(&codes_page, "id=\"recovery-codes\">", "</ul>");
    let recovery: Vec<String> =
        list.split("<li><code>").skip(1).map(|item| item[..item.find("</code>").unwrap()].to_string()).collect();
    assert_eq!(recovery.len(), 10, "the new set");

    // Sign-in with a TOTP code, for a user who enrolled long ago.
    let bob = app.user("bob@example.com").await;
    let bob_seed = latchkey::authn::totp::new_secret().to_vec();
    let sealed = seal_seed(app.state.master_key(), &bob.sub, &bob_seed).unwrap();
    assert!(app.state.store().begin_totp_enrolment(&bob.sub, &sealed, unix_now()).await.unwrap());
    assert!(app.state.store().enable_totp(&bob.sub, current_step() - 100, unix_now()).await.unwrap());
    let code = code_at(&bob_seed, current_step() * STEP_SECS).unwrap();
    let p = pkce();
    let url = authorize_url(app, &client, "openid", &p.challenge, &[]);
    let (b3, next) = sign_in_with_second_factor(app, &url, &bob.email, &code).await;
    let callback = app.sign_in_through_pages(&b3, &next, &bob.email).await;
    assert!(query_of(callback.as_str()).contains_key("code"));

    // Turning TOTP off with a recovery code, revoking the app, changing the password.
    let html = page(app, &b, "/account").await;
    let form = [("csrf", hidden_field(&html, "csrf")), ("code", recovery[0].clone())];
    assert_eq!(b.post(app.url("/account/totp/remove")).form(&form).send().await.unwrap().status().as_u16(), 303);
    let html = page(app, &b, "/account").await;
    let form = [("csrf", hidden_field(&html, "csrf")), ("client_id", client.id.clone())];
    assert_eq!(b.post(app.url("/account/apps/revoke")).form(&form).send().await.unwrap().status().as_u16(), 303);
    let html = page(app, &b, "/account").await;
    let strong = "maple quartz lantern drifts";
    let csrf = hidden_field(&html, "csrf");
    let form = [("csrf", csrf.as_str()), ("current", TEST_PASSWORD), ("new", strong), ("confirm", strong)];
    assert_eq!(b.post(app.url("/account/password")).form(&form).send().await.unwrap().status().as_u16(), 303);

    // Logout (ends the session and its grants).
    let html = page(app, &b3, "/logout").await;
    let csrf = hidden_field(&html, "csrf");
    let form = [("confirm", "yes"), ("csrf", csrf.as_str())];
    assert_eq!(b3.post(app.url("/logout")).form(&form).send().await.unwrap().status().as_u16(), 200);

    // Housekeeping, so its statements are recorded every time (the timer may or may not fire).
    app.state.store().delete_expired(unix_now()).await.unwrap();
}

/// Issue 12's request paths: sign-up, the unverified refusal, resend, verification, reset,
/// email change, the account page's verification request, an invitation; and the outbox's
/// sender, which delivers every one of their messages through a real SMTP server.
async fn drive_self_service(app: &TestApp, smtp: &SmtpServer) {
    use crate::mailbox::{set_password_by_link, sign_up, submit_form, try_sign_in, use_link, NEW_PASSWORD};
    let email = "newcomer@example.com";
    sign_up(app, &browser(), email, NEW_PASSWORD).await;
    sign_up(app, &browser(), email, NEW_PASSWORD).await;
    assert_eq!(try_sign_in(app, email, NEW_PASSWORD).await.status().as_u16(), 403);
    let b = browser();
    submit_form(app, &b, "/login", "/verify-email/resend", &[("email", email)]).await;
    let token = smtp.nth(email, 3).await.token(&app.url("/verify-email"));
    assert_eq!(use_link(app, &b, "/verify-email", &token).await.status().as_u16(), 303);

    submit_form(app, &b, "/forgot-password", "/forgot-password", &[("email", email)]).await;
    submit_form(app, &b, "/forgot-password", "/forgot-password", &[("email", "unknown@example.com")]).await;
    let token = smtp.nth(email, 4).await.token(&app.url("/reset-password"));
    assert_eq!(set_password_by_link(app, &b, "/reset-password", &token, TEST_PASSWORD).await.status().as_u16(), 303);

    let signed = signed_in(app, email, TEST_PASSWORD).await;
    let fields = [("email", "moved@example.com"), ("password", TEST_PASSWORD)];
    assert_eq!(submit_form(app, &signed, "/account", "/account/email", &fields).await.status().as_u16(), 303);
    let token = smtp.nth("moved@example.com", 1).await.token(&app.url("/confirm-email-change"));
    assert_eq!(use_link(app, &signed, "/confirm-email-change", &token).await.status().as_u16(), 303);

    let admin_made = app.user("admin-made@example.com").await;
    let other = signed_in(app, &admin_made.email, TEST_PASSWORD).await;
    assert_eq!(submit_form(app, &other, "/account", "/account/verify-email", &[]).await.status().as_u16(), 303);

    let letters = app.state.letters();
    let invitation =
        latchkey::admin::users::NewInvitation { email: "ivy@example.com".into(), name: None, roles: vec![] };
    latchkey::admin::users::invite(
        app.state.store(),
        app.state.passwords(),
        &letters,
        app.state.account_settings(),
        invitation,
        &latchkey::admin::actor::Actor::Cli,
        unix_now(),
    )
    .await
    .unwrap();
    app.state.wake_outbox();
    let token = smtp.nth("ivy@example.com", 1).await.token(&app.url("/invitation"));
    assert_eq!(set_password_by_link(app, &browser(), "/invitation", &token, NEW_PASSWORD).await.status().as_u16(), 303);
    smtp.wait_for(&admin_made.email, 1).await;

    // Issue 13: a private_key_jwt service (the used-assertion record), and an app with a
    // back-channel logout URI whose user signs out (the logout notice in the outbox).
    use jwt_simple::prelude::*;
    let pair = ES256KeyPair::generate().with_key_id("qp");
    let public = p256::PublicKey::from_sec1_bytes(&pair.public_key().to_bytes()).unwrap();
    let mut jwk: serde_json::Value = serde_json::from_str(&public.to_jwk_string()).unwrap();
    jwk["kid"] = serde_json::json!("qp");
    let (keyed, _) = latchkey::admin::clients::create(
        app.state.store(),
        latchkey::domain::NewClient {
            name: "keyed".into(),
            grant_types: vec!["client_credentials".into()],
            jwks: Some(serde_json::json!({ "keys": [jwk] }).to_string()),
            ..latchkey::domain::NewClient::default()
        },
        &latchkey::admin::actor::Actor::Cli,
        unix_now(),
    )
    .await
    .unwrap();
    let claims = Claims::create(Duration::from_secs(60))
        .with_issuer(&keyed.id)
        .with_subject(&keyed.id)
        .with_audience(app.token_url())
        .with_jwt_id(latchkey::secret::random_token(16));
    let assertion = pair.sign(claims).unwrap();
    let answer = app
        .http
        .post(app.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

/// Statements the flow must have recorded: a check that recording sees the request paths.
const EXPECTED: &[&str] = &[
    "UPDATE authorization_codes",
    "refresh_tokens",
    "FROM sessions",
    "INSERT INTO throttles",
    "recovery_codes",
    "totp_factors",
    "consents",
    "INSERT INTO audit_events",
    "FROM clients",
    "revoked_access_tokens",
    "SELECT grant_id FROM refresh_tokens WHERE token_hash",
    "INSERT INTO outbox",
    "UPDATE outbox SET claimed_until",
    "DELETE FROM email_tokens WHERE token_hash",
    "FROM email_tokens t JOIN users u",
    "INSERT INTO client_assertions",
    "SELECT DISTINCT g.client_id, g.user_sub, g.sid, c.backchannel_logout_uri",
    "FROM users WHERE email",
    "FROM grants WHERE user_sub = $1 AND revoked_at IS NULL",
    "FROM sessions WHERE user_sub = $1",
    "FROM sessions WHERE id_hash = $1 AND user_sub = $2",
    "FROM audit_events WHERE client_id = $1",
    "FROM audit_events WHERE user_sub = $1",
    "FROM audit_events WHERE event = $1 AND id <",
    "FROM audit_events WHERE id <",
];

/// Issue 13: every read and write of the admin API that touches a growing table — users a
/// page at a time (with and without a search and a cursor), a user's grants and sessions and
/// ending them, the audit trail by user, client, type and cursor.
async fn drive_admin_api(app: &TestApp) {
    let admin = app.service_client(&["latchkey:admin"], &[]).await;
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&admin.id, &admin.secret))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let get = |path: String| {
        let request = app.http.get(app.url(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(status, 200, "GET {path}: {body}");
            body
        }
    };
    let delete = |path: String| {
        let request = app.http.delete(app.url(&path)).bearer_auth(&token);
        async move { assert_eq!(request.send().await.unwrap().status().as_u16(), 204, "DELETE {path}") }
    };
    let user = app.user("admin-api@example.com").await;
    let web = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &web, &user.email, "openid offline_access", &p).await;
    assert_eq!(app.redeem(&web, &code, Some(&p.verifier)).await.0, 200);

    let page = get("/admin/v1/users?limit=2".into()).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    get(format!("/admin/v1/users?limit=2&cursor={cursor}")).await;
    get("/admin/v1/users?search=admin-api&limit=2".into()).await;
    get(format!("/admin/v1/users?search=a&limit=1&cursor={cursor}")).await;
    get(format!("/admin/v1/users/{}", user.sub)).await;
    get(format!("/admin/v1/users/{}", user.email)).await;
    let grants = get(format!("/admin/v1/users/{}/grants", user.sub)).await;
    let sessions = get(format!("/admin/v1/users/{}/sessions", user.sub)).await;
    delete(format!("/admin/v1/users/{}/grants/{}", user.sub, grants["items"][0]["id"].as_str().unwrap())).await;
    delete(format!("/admin/v1/users/{}/sessions/{}", user.sub, sessions["items"][0]["id"].as_str().unwrap())).await;
    let events = get("/admin/v1/audit-events?limit=2".into()).await;
    let cursor = events["next_cursor"].as_str().unwrap().to_string();
    get(format!("/admin/v1/audit-events?limit=2&cursor={cursor}")).await;
    get(format!("/admin/v1/audit-events?user={}", user.sub)).await;
    get(format!("/admin/v1/audit-events?client_id={}", web.id)).await;
    get("/admin/v1/audit-events?type=sign_in.succeeded&limit=3".into()).await;
    get("/admin/v1/clients".into()).await;
    get("/admin/v1/keys".into()).await;
}

#[tokio::test]
async fn no_request_path_statement_scans_a_table_that_grows_with_use() {
    let (app, smtp) = crate::mailbox::spawn_mail_app(|s| s.email_ip_burst = 100).await;
    let store = app.state.store();
    store.record_statements(true);
    drive_every_request_path(&app).await;
    drive_self_service(&app, &smtp).await;
    drive_admin_api(&app).await;
    store.record_statements(false);
    let statements = store.recorded_statements();
    for expected in EXPECTED {
        assert!(
            statements.iter().any(|s| s.contains(expected)),
            "no recorded statement mentions `{expected}`; recorded:\n{}",
            statements.join("\n")
        );
    }

    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let failures = if postgres_admin_url().is_some() {
        seed_postgres(&mut conn).await;
        postgres_full_scans(&mut conn, &statements).await
    } else {
        let mut failures = sqlite_full_scans(&mut conn, &statements, "no statistics").await;
        seed_sqlite(&mut conn).await;
        failures.extend(sqlite_full_scans(&mut conn, &statements, "after ANALYZE").await);
        failures
    };
    assert!(
        failures.is_empty(),
        "{} statement(s) scan a table that grows with use (issue 9 item 10):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// SQLite: every `SCAN x` line of `EXPLAIN QUERY PLAN`, unless x is a small table.
async fn sqlite_full_scans(conn: &mut sqlx::AnyConnection, statements: &[String], when: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for sql in statements {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
        for _ in 0..parameter_count(sql) {
            query = query.bind(None::<i64>);
        }
        let plan = query.fetch_all(&mut *conn).await.unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN {sql}: {e}"));
        let details: Vec<String> = plan.into_iter().map(|(_, _, _, detail)| detail).collect();
        // `LIST SUBQUERY`: a list built from a subquery on every call, as `grant_id IN (SELECT
        // id FROM grants WHERE client_id = …)` did with all of an app's grants.
        let scans = details.iter().any(|d| {
            d.contains("LIST SUBQUERY")
                || d.strip_prefix("SCAN ").is_some_and(|rest| {
                    let table = rest.split_whitespace().next().unwrap_or("");
                    !SMALL_TABLES.contains(&table) && table != "CONSTANT"
                })
        });
        if scans {
            failures.push(format!("[SQLite, {when}] {sql}\n    {}", details.join("\n    ")));
        }
    }
    failures
}

/// Postgres: every `Seq Scan on x` of the generic plan, unless x is a small table or the
/// statement is housekeeping.
async fn postgres_full_scans(conn: &mut sqlx::AnyConnection, statements: &[String]) -> Vec<String> {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    let mut failures = Vec::new();
    for sql in statements.iter().filter(|s| !is_housekeeping(s)) {
        if let Err(e) = sqlx::raw_sql(&format!("PREPARE latchkey_plan AS {sql}")).execute(&mut *conn).await {
            // Postgres could not infer a parameter's type from the text alone (sqlx sends the
            // types with the statement): declare those that an INSERT's column list fixes.
            let types = insert_parameter_types(conn, sql).await;
            sqlx::raw_sql(&format!("PREPARE latchkey_plan ({}) AS {sql}", types.join(", ")))
                .execute(&mut *conn)
                .await
                .unwrap_or_else(|e2| panic!("PREPARE {sql}: {e}; with types {types:?}: {e2}"));
        }
        let args = vec!["NULL"; parameter_count(sql)].join(", ");
        let explain = if args.is_empty() {
            "EXPLAIN EXECUTE latchkey_plan".to_string()
        } else {
            format!("EXPLAIN EXECUTE latchkey_plan({args})")
        };
        let rows = sqlx::raw_sql(&explain).fetch_all(&mut *conn).await.unwrap_or_else(|e| panic!("{explain}: {e}"));
        sqlx::raw_sql("DEALLOCATE latchkey_plan").execute(&mut *conn).await.unwrap();
        let lines: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0).unwrap()).collect();
        let scans = lines.iter().any(|l| {
            l.split("Seq Scan on ").nth(1).is_some_and(|rest| {
                let table = rest.split_whitespace().next().unwrap_or("");
                !SMALL_TABLES.contains(&table)
            })
        });
        if scans {
            failures.push(format!("[Postgres, generic plan, {SEED_ROWS} rows analysed] {sql}\n{}", lines.join("\n")));
        }
    }
    failures
}

/// The type of each parameter of an `INSERT INTO t (c1, …) VALUES (e1, …)` whose value is a
/// bare `$N`, from the column it goes into; `unknown` (left to Postgres) for the others.
async fn insert_parameter_types(conn: &mut sqlx::AnyConnection, sql: &str) -> Vec<String> {
    let mut types = vec!["unknown".to_string(); parameter_count(sql)];
    let Some(rest) = sql.strip_prefix("INSERT INTO ") else { return types };
    let table = rest.split_whitespace().next().unwrap_or("");
    let columns = between(rest, "(", ")");
    let values = between(rest, "VALUES (", ")");
    for (column, value) in columns.split(',').zip(values.split(',')) {
        let Some(n) = value.trim().strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else { continue };
        let row = sqlx::query(
            "SELECT data_type::text FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
        )
        .bind(table)
        .bind(column.trim())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        types[n - 1] = row.try_get::<String, _>(0).unwrap();
    }
    types
}

/// Rows for every growing table, spread the way real use spreads them: many users, a few
/// hundred apps, grants mostly live, codes mostly consumed, rotated refresh tokens.
fn seed_statements(series: &str, blob: &str) -> Vec<String> {
    let n = SEED_ROWS;
    vec![
        format!(
            "{series} INSERT INTO clients (id, name, kind, secret_hash, first_party, redirect_uris, \
             post_logout_redirect_uris, grant_types, scopes, roles, audience, created_at, updated_at, disabled_at, \
             id_token_alg, require_mfa) SELECT 'seed-client-' || i, 'app', 'confidential', {blob}, 0, '[]', '[]', \
             '[\"authorization_code\"]', 'openid', '[]', NULL, 0, 0, NULL, NULL, 0 FROM s WHERE i <= {}",
            n / 10
        ),
        format!(
            "{series} INSERT INTO users (sub, email, name, password_hash, roles, created_at, updated_at, \
             password_changed_at, disabled_at) SELECT 'seed-user-' || i, 'seed' || i || '@example.com', NULL, 'x', \
             '[]', 0, 0, 0, NULL FROM s"
        ),
        format!(
            "{series} INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, \
             expires_at, revoked_at) SELECT 'seed-grant-' || i, 'seed-client-' || (i % 200), 'seed-user-' || (i % {n}), \
             'openid', 0, '[]', NULL, 'seed-sid-' || (i % 5000), 0, 9999999999, CASE WHEN i % 10 = 0 THEN 1 ELSE NULL END \
             FROM s"
        ),
        format!(
            "{series} INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_sent, \
             code_challenge, created_at, expires_at, consumed_at) SELECT {blob}, 'seed-grant-' || i, \
             'seed-client-' || (i % 200), 'https://app.example/cb', 1, 'x', 0, 9999999999, \
             CASE WHEN i % 50 = 0 THEN NULL ELSE 1 END FROM s"
        ),
        format!(
            "{series} INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at) \
             SELECT {blob}, 'seed-grant-' || (i % {}), 'openid', 0, 9999999999, CASE WHEN i % 3 = 0 THEN NULL ELSE 1 END \
             FROM s",
            n / 3
        ),
        format!(
            "{series} INSERT INTO sessions (id_hash, data, user_sub, expires_at) SELECT 'seed-session-' || i, '{{}}', \
             'seed-user-' || i, 9999999999 FROM s"
        ),
        format!(
            "{series} INSERT INTO consents (user_sub, client_id, scopes, granted_at) SELECT 'seed-user-' || i, \
             'seed-client-' || (i % 200), 'openid', 0 FROM s"
        ),
        format!(
            "{series} INSERT INTO totp_factors (user_sub, secret_sealed, created_at, enabled_at, last_step) \
             SELECT 'seed-user-' || i, {blob}, 0, 0, 0 FROM s"
        ),
        format!(
            "{series} INSERT INTO recovery_codes (user_sub, code_hash, created_at, used_at) \
             SELECT 'seed-user-' || (i % 2000), {blob}, 0, NULL FROM s"
        ),
        format!(
            "{series} INSERT INTO throttles (key, failures, window_start, locked_until, updated_at) \
             SELECT 'pwd:seed-' || i, 1, 0, NULL, 0 FROM s"
        ),
        format!(
            "{series} INSERT INTO revoked_access_tokens (jti, client_id, revoked_at, expires_at) \
             SELECT 'seed-jti-' || i, 'seed-client-' || (i % 200), 0, 9999999999 FROM s"
        ),
        format!(
            "{series} INSERT INTO scope_descriptions (scope, description, updated_at) \
             SELECT 'seed:scope' || i, 'Seeded scope', 0 FROM s"
        ),
        format!(
            "{series} INSERT INTO roles (name, description, updated_at) SELECT 'seed-role-' || i, NULL, 0 FROM s"
        ),
        format!(
            "{series} INSERT INTO client_assertions (client_id, jti, expires_at) \
             SELECT 'seed-client-' || (i % 200), 'seed-jti-' || i, i FROM s"
        ),
        format!(
            "{series} INSERT INTO email_tokens (token_hash, purpose, user_sub, email, resume, created_at, expires_at) \
             SELECT {blob}, 'reset_password', 'seed-user-' || i, 'seed' || i || '@example.com', NULL, 0, 9999999999 FROM s"
        ),
        format!(
            "{series} INSERT INTO outbox (id, kind, recipient, payload, created_at, attempts, next_attempt_at, \
             claimed_until, last_error, sent_at, failed_at) SELECT 'seed-message-' || i, 'email', \
             'seed' || i || '@example.com', {blob}, i, 1, i, NULL, NULL, CASE WHEN i % 100 = 0 THEN NULL ELSE i END, NULL \
             FROM s"
        ),
        format!(
            "{series} INSERT INTO audit_events (at, event, user_sub, client_id, ip, user_agent, detail) \
             SELECT i, 'login_succeeded', 'seed-user-' || (i % 2000), NULL, NULL, NULL, NULL FROM s"
        ),
    ]
}

async fn seed_postgres(conn: &mut sqlx::AnyConnection) {
    let series = format!("WITH s(i) AS (SELECT generate_series(1, {SEED_ROWS}))");
    for sql in seed_statements(&series, "sha256(i::text::bytea)") {
        sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await.unwrap();
}

async fn seed_sqlite(conn: &mut sqlx::AnyConnection) {
    let series = format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {SEED_ROWS})");
    for sql in seed_statements(&series, "randomblob(32)") {
        sqlx::raw_sql(&sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await.unwrap();
}

/// Every statement in `src/store/` goes through the recorder (`Store::sql`); a direct
/// `sqlx::query`, rusqlite call or `Stmt::new` would run unchecked by the test above. `db.rs`
/// runs what `Store::sql` built (and the transaction control), `connect.rs` sets connections up.
#[test]
fn every_store_statement_goes_through_the_recorder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut offenders = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "statements.rs" || n == "db.rs") {
            continue; // the recorder itself, and the executor of what it built
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut needles = vec!["sqlx::query", "sqlx::raw_sql", "query_as(", "query_scalar(", "Stmt::new", "run_sqlite"];
        if !path.ends_with("connect.rs") {
            needles.extend(["rusqlite::", "execute_batch", "prepare_cached", "query_row"]);
        }
        for needle in needles {
            if text.contains(needle) {
                offenders.insert(format!("{} uses {needle}", path.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "statements that bypass Store::sql:\n{}",
        offenders.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Sequential scans of every growing table and the rows they read (Postgres statistics).
async fn sequential_scans(conn: &mut sqlx::AnyConnection) -> Vec<(String, i64, i64)> {
    let rows = sqlx::query("SELECT relname::text, seq_scan, seq_tup_read FROM pg_stat_user_tables ORDER BY relname")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.try_get::<String, _>(0).unwrap(), r.try_get::<i64, _>(1).unwrap(), r.try_get::<i64, _>(2).unwrap()))
        .filter(|(table, _, _)| !SMALL_TABLES.contains(&table.as_str()) && !table.starts_with("_sqlx"))
        .collect()
}

/// The counters once the server's connection has published everything it counted: a backend
/// does when it goes idle a second or more after it last did (best effort), so this waits
/// until two readings a request apart agree.
async fn settled_counters(app: &TestApp, conn: &mut sqlx::AnyConnection) -> Vec<(String, i64, i64)> {
    let mut last = sequential_scans(conn).await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status().as_u16(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = sequential_scans(conn).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the statistics did not settle");
}

/// A signed-in browser's code flow and a refresh, `times` times; returns the last refresh token.
async fn code_and_refresh(app: &TestApp, b: &reqwest::Client, client: &AppClient, email: &str, times: usize) {
    for _ in 0..times {
        let p = pkce();
        let code = app.code_for(b, client, email, "openid offline_access", &p).await;
        let (status, tokens) = app.redeem(client, &code, Some(&p.verifier)).await;
        assert_eq!(status, 200, "{tokens}");
        let mut refresh = tokens["refresh_token"].as_str().unwrap().to_string();
        for _ in 0..2 {
            let (status, body) = app.refresh(client, &refresh, None).await;
            assert_eq!(status, 200, "{body}");
            refresh = body["refresh_token"].as_str().unwrap().to_string();
        }
    }
}

/// Postgres, as the running server plans (issue 9 item 10: 11,546 code flows caused 6,435
/// sequential scans of `grants`, though a hand-run EXPLAIN picked the primary key). A
/// connection keeps the generic plan it made for a prepared statement after five executions;
/// made while the tables were tiny (a new deployment), it scans them. Here the server's one
/// connection runs the code and refresh flows on tiny tables, the tables then grow to 20,000
/// rows without ANALYZE (autovacuum off for them), and the same flows run again: they may not
/// read a growing table sequentially. (Without the fix this fails unless something resets the
/// connection's plan cache in between, e.g. a burst of catalog changes elsewhere on a shared
/// server: 3 of 4 runs failed on the project's shared test server.) SQLite plans without statistics and is covered above.
#[tokio::test]
async fn flows_never_scan_a_table_that_grew_after_the_plans_were_made() {
    if postgres_admin_url().is_none() {
        return;
    }
    let app = spawn_app_with(|s| s.database_max_connections = 1).await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    // Before any plan is made: an ALTER TABLE later would invalidate them.
    for table in ["grants", "authorization_codes", "refresh_tokens", "sessions", "users", "clients", "consents"] {
        sqlx::raw_sql(&format!("ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    // Eight of each on tiny tables: past the five custom plans after which a plan may stay.
    code_and_refresh(&app, &b, &client, &user.email, 8).await;
    let series = format!("WITH s(i) AS (SELECT generate_series(1, {SEED_ROWS}))");
    for sql in seed_statements(&series, "sha256(i::text::bytea)") {
        sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let before = settled_counters(&app, &mut conn).await;
    code_and_refresh(&app, &b, &client, &user.email, 3).await;
    // A backend surely publishes its counters when it exits.
    app.state.store().close().await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let after = sequential_scans(&mut conn).await;
    let grew: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|((_, scans, _), (_, scans_after, _))| scans_after > scans)
        .map(|((table, scans, rows), (_, scans_after, rows_after))| {
            format!("{table}: {} sequential scans read {} rows", scans_after - scans, rows_after - rows)
        })
        .collect();
    assert!(grew.is_empty(), "code and refresh flows read whole tables (issue 9 item 10): {grew:?}");
}
