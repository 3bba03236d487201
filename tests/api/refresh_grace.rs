//! Issue 11 item 4: refresh rotation that survives concurrent use and still detects theft.
//! Within `refresh_token_reuse_grace` of a rotation, while the successor is unused, the old
//! token gets that same successor again (fresh access and ID tokens); any other reuse revokes
//! the family and writes `refresh_token.reuse_detected`. With the grace at 0: strict rotation.

use std::time::Duration;

use latchkey::audit::{AuditEvent, AuditFilter};
use latchkey::config::HumanDuration;
use latchkey::secret::sha256;
use latchkey::state::unix_now;
use latchkey::store::{AuditStore, GrantStore};
use sqlx::{Connection, Row};

use crate::helpers::*;

const SCOPES: &str = "openid email offline_access";
const REUSE: &str = "refresh_token.reuse_detected";

/// A signed-in user's first tokens from a new confidential client.
async fn first_tokens(app: &TestApp) -> (TestUser, AppClient, serde_json::Value) {
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, SCOPES, &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    (user, client, tokens)
}

async fn reuse_events(app: &TestApp) -> Vec<AuditEvent> {
    let filter = AuditFilter { user_sub: None, event: Some(REUSE.into()), limit: 100, ..Default::default() };
    app.state.store().list_audit_events(&filter).await.unwrap()
}

fn text(body: &serde_json::Value, field: &str) -> String {
    body[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}")).to_string()
}

/// The stored refresh token row of `token`: (sealed copy, end of its window).
async fn sealed_copy(app: &TestApp, token: &str) -> (Option<Vec<u8>>, Option<i64>) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let row = sqlx::query("SELECT sealed_token, sealed_until FROM refresh_tokens WHERE token_hash = $1")
        .bind(sha256(token).to_vec())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let found = (row.try_get(0).unwrap(), row.try_get(1).unwrap());
    conn.close().await.unwrap();
    found
}

/// The test: 10 parallel refreshes of one token all get 200 and one and the same new
/// refresh token, the family lives and the successor works; the old token after the successor
/// was used is `invalid_grant`, the family is dead, and the audit event names client, user and
/// address. The window is the longest allowed so that a slow machine can't close it mid-test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_share_one_successor_and_later_reuse_kills_the_family() {
    let app = spawn_app_with(|s| s.refresh_token_reuse_grace = HumanDuration::secs(60)).await;
    let (user, client, tokens) = first_tokens(&app).await;
    let first = text(&tokens, "refresh_token");

    let results = futures::future::join_all((0..10).map(|_| app.refresh(&client, &first, None))).await;
    assert!(results.iter().all(|(status, _)| *status == 200), "{results:?}");
    let successor = text(&results[0].1, "refresh_token");
    assert_ne!(successor, first);
    assert!(results.iter().all(|(_, body)| text(body, "refresh_token") == successor), "one successor: {results:?}");
    // Fresh access and ID tokens for every caller (each access token its own jti).
    let jtis: std::collections::HashSet<String> =
        results.iter().map(|(_, body)| jwt_part(&text(body, "access_token"), 1)["jti"].to_string()).collect();
    assert_eq!(jtis.len(), 10, "ten distinct access tokens");
    assert!(results.iter().all(|(_, body)| body["id_token"].is_string()));
    assert!(reuse_events(&app).await.is_empty(), "a repeat within the window is not reuse");

    // Another client can't use the window to get the successor.
    let thief = app.web_app(true).await;
    let (status, body) = app.refresh(&thief, &first, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // The family lives: the successor works (and every caller's access token is good).
    assert_eq!(app.userinfo_status(&text(&results[9].1, "access_token")).await, 200);
    let (status, next) = app.refresh(&client, &successor, None).await;
    assert_eq!(status, 200, "{next}");
    let newest = text(&next, "refresh_token");

    // The old token once its successor was used: reuse. The family ends.
    let (status, body) = app.refresh(&client, &first, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = app.refresh(&client, &newest, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family is dead: {body}");
    assert_eq!(app.userinfo_status(&text(&next, "access_token")).await, 401, "its access tokens too");

    let events = reuse_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.client_id.as_deref(), Some(client.id.as_str()));
    assert_eq!(event.user_sub.as_deref(), Some(user.sub.as_str()));
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.detail["successor_used"], true, "{event:?}");
    assert!(event.detail["grant_id"].is_string(), "{event:?}");
}

/// `refresh_token_reuse_grace = 0`: today's strict behaviour. Of 10 parallel refreshes one
/// wins; the others are reuse, which ends the family (the winner's tokens included) and is
/// audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_grace_off_parallel_refreshes_end_the_family() {
    let app = spawn_app_with(|s| s.refresh_token_reuse_grace = HumanDuration::secs(0)).await;
    let (user, client, tokens) = first_tokens(&app).await;
    let first = text(&tokens, "refresh_token");
    let results = futures::future::join_all((0..10).map(|_| app.refresh(&client, &first, None))).await;
    let winners: Vec<&serde_json::Value> = results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|(s, b)| *s == 200 || (*s == 400 && b["error"] == "invalid_grant")), "{results:?}");
    let (status, body) = app.refresh(&client, &text(winners[0], "refresh_token"), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family is dead: {body}");
    let events = reuse_events(&app).await;
    assert_eq!(events.len(), 1, "once per family: {events:?}");
    assert_eq!(events[0].user_sub.as_deref(), Some(user.sub.as_str()));
    assert_eq!(events[0].detail["successor_used"], false);
    let (sealed, until) = sealed_copy(&app, &text(winners[0], "refresh_token")).await;
    assert_eq!((sealed, until), (None, None), "nothing is kept with the grace off");
}

/// After the window the old token is reuse even though its successor was never used.
#[tokio::test]
async fn after_the_window_the_old_token_is_reuse() {
    let app = spawn_app_with(|s| s.refresh_token_reuse_grace = HumanDuration::secs(1)).await;
    let (_, client, tokens) = first_tokens(&app).await;
    let first = text(&tokens, "refresh_token");
    let (status, rotated) = app.refresh(&client, &first, None).await;
    assert_eq!(status, 200, "{rotated}");
    // The rotation happened at or before `done`; the 1 s window is closed once the clock has
    // passed done + 1 (waiting longer only makes that surer).
    let done = unix_now();
    while unix_now() <= done + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = app.refresh(&client, &first, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = app.refresh(&client, &text(&rotated, "refresh_token"), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family is dead: {body}");
    let events = reuse_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].detail["successor_used"], false);
}

/// The successor is kept sealed (never in the clear) only while it can be served: its own use
/// wipes it, and housekeeping wipes it once the window has closed.
#[tokio::test]
async fn the_sealed_successor_is_kept_only_for_the_window() {
    let app = spawn_app().await;
    let (_, client, tokens) = first_tokens(&app).await;
    let before = unix_now();
    let (status, rotated) = app.refresh(&client, &text(&tokens, "refresh_token"), None).await;
    let after = unix_now();
    assert_eq!(status, 200, "{rotated}");
    let successor = text(&rotated, "refresh_token");
    let (sealed, until) = sealed_copy(&app, &successor).await;
    let sealed = sealed.expect("a sealed copy while the window is open");
    assert!(!sealed.windows(successor.len()).any(|w| w == successor.as_bytes()), "never in the clear");
    let until = until.expect("the window's end");
    assert!((before + 10..=after + 10).contains(&until), "the default 10 s window: {until}");

    // Its use wipes it.
    let (status, next) = app.refresh(&client, &successor, None).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(sealed_copy(&app, &successor).await, (None, None));

    // Never used: housekeeping wipes it after the window (and not before).
    let newest = text(&next, "refresh_token");
    let until = sealed_copy(&app, &newest).await.1.expect("the window's end");
    app.state.store().delete_expired(until - 1).await.unwrap();
    assert!(sealed_copy(&app, &newest).await.0.is_some(), "the window is still open");
    app.state.store().delete_expired(until + 1).await.unwrap();
    assert_eq!(sealed_copy(&app, &newest).await, (None, None));
    let (status, body) = app.refresh(&client, &newest, None).await;
    assert_eq!(status, 200, "the token itself lives on: {body}");
}

/// The grace rule at its edges, through the store with a chosen `now` (mutation testing of
/// `store/grants.rs`, issue 10): a repeat within the window gets the same successor only while
/// the grant is live — neither revoked nor at its absolute end — only while the successor
/// itself has not expired, and only before the window closes. Each case is set behind the server's back and is the only thing that differs from
/// the control.
#[tokio::test]
async fn the_grace_window_ends_with_the_grant_and_at_its_own_last_second() {
    use latchkey::domain::{RefreshRotation, Successor};
    let app = spawn_app().await;
    let (_, client, tokens) = first_tokens(&app).await;
    let first = text(&tokens, "refresh_token");
    let (status, _) = app.refresh(&client, &first, None).await;
    assert_eq!(status, 200);
    let store = app.state.store();
    let hash = sha256(&first);
    let grant_id: String = {
        let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
        let row = sqlx::query("SELECT grant_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash.to_vec())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        row.try_get(0).unwrap()
    };
    // Every time far from now: the window, the successor's life and the grant's all end at
    // fixed points, so `now` below can sit exactly on an edge.
    let now = unix_now() + 10;
    let set = |sql: &'static str, value: i64| {
        let db = &app.db;
        let grant_id = grant_id.clone();
        async move {
            let values = [SqlValue::Int(value), SqlValue::Text(&grant_id)];
            exec_sql(db, sql, &values).await;
        }
    };
    set("UPDATE refresh_tokens SET sealed_until = $1 WHERE grant_id = $2 AND used_at IS NULL", now + 100).await;
    set("UPDATE refresh_tokens SET expires_at = $1 WHERE grant_id = $2 AND used_at IS NULL", now + 1000).await;
    set("UPDATE grants SET expires_at = $1 WHERE id = $2", now + 1000).await;
    let client_id = client.id.as_str();
    let hash = &hash;
    let attempt = |at: i64| async move {
        let successor = Successor { hash: sha256("never stored"), sealed: Some(b"x".to_vec()), sealed_until: at + 60 };
        match store.rotate_refresh_token(hash, &successor, client_id, at, 3600).await.unwrap() {
            RefreshRotation::Repeated { .. } => "repeated",
            RefreshRotation::Reused { .. } => "reused",
            RefreshRotation::Rotated { .. } => "rotated",
            RefreshRotation::Invalid => "invalid",
        }
    };
    // The control: inside the window, the grant live.
    assert_eq!(attempt(now).await, "repeated");
    assert_eq!(attempt(now + 99).await, "repeated", "the window's last second");
    assert_eq!(attempt(now + 100).await, "reused", "the window has closed");
    // The successor at its own end: nothing left to hand out again, whatever the window says.
    set("UPDATE refresh_tokens SET expires_at = $1 WHERE grant_id = $2 AND used_at IS NULL", now).await;
    assert_eq!(attempt(now).await, "reused", "a successor is over at its expires_at");
    assert_eq!(attempt(now - 1).await, "repeated", "and can be handed out the second before");
    set("UPDATE refresh_tokens SET expires_at = $1 WHERE grant_id = $2 AND used_at IS NULL", now + 1000).await;
    // The grant at its absolute end: not live, whatever the window says.
    set("UPDATE grants SET expires_at = $1 WHERE id = $2", now).await;
    assert_eq!(attempt(now).await, "reused", "a grant is over at its expires_at");
    assert_eq!(attempt(now - 1).await, "repeated", "and live the second before");
    // A revoked grant that has not expired: not live.
    set("UPDATE grants SET expires_at = $1 WHERE id = $2", now + 1000).await;
    set("UPDATE grants SET revoked_at = $1 WHERE id = $2", now - 5).await;
    assert_eq!(attempt(now).await, "reused", "a revoked grant gets no repeat");
}

/// A repeat within the window is held to the successor's scope like any refresh. The old token
/// is already used, so the check before the rotation finds no live token to compare with, and
/// only the check after it refuses a wider scope (mutation testing: that check → `true`
/// survived, and a repeat could widen the scope past the grant).
#[tokio::test]
async fn a_repeat_in_the_window_cannot_widen_the_scope() {
    let app = spawn_app_with(|s| s.refresh_token_reuse_grace = HumanDuration::secs(60)).await;
    let (_, client, tokens) = first_tokens(&app).await;
    let first = text(&tokens, "refresh_token");
    let (status, rotated) = app.refresh(&client, &first, None).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, body) = app.refresh(&client, &first, Some("openid email offline_access profile")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    // The control: a narrower repeat gets the same successor, and the family lives.
    let (status, narrow) = app.refresh(&client, &first, Some("openid")).await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "openid");
    assert_eq!(text(&narrow, "refresh_token"), text(&rotated, "refresh_token"));
    assert!(reuse_events(&app).await.is_empty());
}
