//! Single use under real concurrency (issue 10 item 3): codes, refresh tokens, TOTP steps and
//! recovery codes, each raced by many callers on a multi-threaded runtime, through the store's
//! own pool (separate connections on Postgres).
//!
//! The interleaving is forced, not hoped for: a separate connection holds the table's write
//! lock (Postgres: `LOCK TABLE … IN EXCLUSIVE MODE`, which still lets reads through; SQLite:
//! `BEGIN IMMEDIATE`) while every caller starts. A check-then-update implementation would let
//! each caller's check pass before any update could run, and then every update would "win";
//! only a conditional write that re-checks under the lock gives exactly one winner.

use std::sync::Arc;
use std::time::Duration;

use latchkey::domain::{CodeRedemption, RefreshRotation, Successor};
use latchkey::secret::sha256;
use latchkey::state::unix_now;
use latchkey::store::{GrantStore, MfaStore, Store};
use sqlx::{Connection, Executor};

use crate::helpers::*;

const CALLERS: usize = 12;
/// Races per test: on SQLite (one pooled connection) the interleaving happens at the pool's
/// turns, so a broken implementation is caught in most races rather than all; four races make
/// a miss in one run vanishingly rare.
const ROUNDS: usize = 4;

/// Holds the write lock of `table` on its own connection until dropped by `release`.
struct WriteLock(sqlx::AnyConnection);

impl WriteLock {
    async fn take(db: &TestDatabase, table: &str) -> WriteLock {
        sqlx::any::install_default_drivers();
        let sqlite = db.url.starts_with("sqlite:");
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        if sqlite {
            conn.execute("PRAGMA busy_timeout = 10000").await.unwrap();
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
        } else {
            conn.execute("BEGIN").await.unwrap();
            conn.execute(format!("LOCK TABLE {table} IN EXCLUSIVE MODE").as_str()).await.unwrap();
        }
        WriteLock(conn)
    }

    async fn release(mut self) {
        self.0.execute("COMMIT").await.unwrap();
        self.0.close().await.unwrap();
    }
}

/// Starts `CALLERS` tasks of `op` on the runtime's worker threads while `table` is write-locked,
/// lets them all run into the lock, releases it, and returns every result.
async fn race<T, F, Fut>(app: &TestApp, table: &str, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    // Open a connection per caller first (Postgres): a cold pool would connect them one by one
    // while the lock is held, and callers that connect late would no longer race.
    let warm: Vec<_> = (0..CALLERS)
        .map(|_| {
            let store = app.state.store().clone();
            tokio::spawn(async move { store.grant_is_live("warm-up", unix_now()).await.unwrap() })
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let lock = WriteLock::take(&app.db, table).await;
    let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(op(app.state.store().clone()))).collect();
    // Give every caller time to reach the lock (ordering, not an assertion: a slow machine only
    // narrows the window the test forces open).
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn signed_in_code(app: &TestApp) -> (AppClient, String, crate::helpers::Pkce) {
    app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let pair = pkce();
    let code = app.code_for(&browser(), &client, "ann@example.com", "openid offline_access", &pair).await;
    (client, code, pair)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_is_redeemed_once_under_forced_interleaving() {
    let app = spawn_app().await;
    app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let client_id = Arc::new(client.id.clone());
    let b = browser();
    for round in 0..ROUNDS {
        let code = app.code_for(&b, &client, "ann@example.com", "openid", &pkce()).await;
        let hash = sha256(&code);
        let results = race(&app, "authorization_codes", |store| {
            let client_id = client_id.clone();
            async move { store.redeem_code(&hash, &client_id, unix_now()).await.unwrap() }
        })
        .await;
        let won = results.iter().filter(|r| matches!(r, CodeRedemption::Redeemed { .. })).count();
        let replayed = results.iter().filter(|r| matches!(r, CodeRedemption::Replayed { .. })).count();
        assert_eq!((won, replayed), (1, CALLERS - 1), "round {round}");
    }
}

/// Races one refresh token `ROUNDS` times; each caller offers its own successor, sealed when
/// `grace` is on. Returns, per round, each caller's successor hash and what it got.
async fn race_refreshes(app: &TestApp, grace: bool) -> Vec<Vec<([u8; 32], RefreshRotation)>> {
    app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let client_id = Arc::new(client.id.clone());
    let b = browser();
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let pair = pkce();
        let code = app.code_for(&b, &client, "ann@example.com", "openid offline_access", &pair).await;
        let (status, tokens) = app.redeem(&client, &code, Some(&pair.verifier)).await;
        assert_eq!(status, 200, "round {round}: {tokens}");
        let hash = sha256(tokens["refresh_token"].as_str().unwrap());
        let results = race(app, "refresh_tokens", |store| {
            let client_id = client_id.clone();
            async move {
                let token = latchkey::secret::random_token(32);
                let now = unix_now();
                let successor = Successor {
                    hash: sha256(&token),
                    sealed: grace.then(|| format!("sealed {token}").into_bytes()),
                    sealed_until: now + 60,
                };
                let result = store.rotate_refresh_token(&hash, &successor, &client_id, now, 3600).await.unwrap();
                (successor.hash, result)
            }
        })
        .await;
        rounds.push(results);
    }
    rounds
}

/// Strict rotation (`refresh_token_reuse_grace = 0`): exactly one caller rotates, every other
/// one sees reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_token_rotates_once_under_forced_interleaving() {
    let app = spawn_app().await;
    for (round, results) in race_refreshes(&app, false).await.iter().enumerate() {
        let won = results.iter().filter(|(_, r)| matches!(r, RefreshRotation::Rotated { .. })).count();
        let reused = results.iter().filter(|(_, r)| matches!(r, RefreshRotation::Reused { .. })).count();
        assert_eq!((won, reused), (1, CALLERS - 1), "round {round}");
    }
}

/// With the grace window (issue 11 item 4): still exactly one caller rotates and stores a
/// successor; every other caller gets that same successor back (its sealed copy), never one of
/// its own and never reuse — the family does not branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_grace_window_every_racer_gets_the_one_winners_successor() {
    let app = spawn_app().await;
    for (round, results) in race_refreshes(&app, true).await.iter().enumerate() {
        let winners: Vec<&[u8; 32]> =
            results.iter().filter(|(_, r)| matches!(r, RefreshRotation::Rotated { .. })).map(|(h, _)| h).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one rotation");
        let winner = winners[0];
        for (mine, result) in results {
            match result {
                RefreshRotation::Rotated { .. } => assert_eq!(mine, winner),
                RefreshRotation::Repeated { successor_hash, sealed, .. } => {
                    assert_eq!(successor_hash, winner, "round {round}: the winner's successor");
                    assert!(sealed.starts_with(b"sealed "), "the stored sealed copy");
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_step_is_accepted_once_under_forced_interleaving() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let store = app.state.store();
    let now = unix_now();
    assert!(store.begin_totp_enrolment(&user.sub, b"sealed seed", now).await.unwrap());
    assert!(store.enable_totp(&user.sub, 1000, now).await.unwrap());
    let sub = Arc::new(user.sub.clone());
    for round in 0..ROUNDS {
        let step = 1001 + i64::try_from(round).unwrap();
        let results = race(&app, "totp_factors", |store| {
            let sub = sub.clone();
            async move { store.use_totp_step(&sub, step).await.unwrap() }
        })
        .await;
        assert_eq!(results.iter().filter(|won| **won).count(), 1, "round {round}: {results:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_code_is_used_once_under_forced_interleaving() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let sub = Arc::new(user.sub.clone());
    for round in 0..ROUNDS {
        let hash = sha256(&format!("abcd-efgh-{round}"));
        app.state.store().replace_recovery_codes(&user.sub, &[hash], unix_now()).await.unwrap();
        let results = race(&app, "recovery_codes", |store| {
            let sub = sub.clone();
            async move { store.use_recovery_code(&sub, &hash, unix_now()).await.unwrap() }
        })
        .await;
        assert_eq!(results.iter().filter(|won| **won).count(), 1, "round {round}: {results:?}");
        assert_eq!(app.state.store().recovery_codes_left(&user.sub).await.unwrap(), 0);
    }
}

/// The same through HTTP: separate connections, many worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_redemptions_over_separate_connections_yield_one_token() {
    let app = spawn_app().await;
    let (client, code, pair) = signed_in_code(&app).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (url, id, secret) = (app.token_url(), client.id.clone(), client.secret.clone());
            let form = vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code.clone()),
                ("redirect_uri", client.redirect_uri.clone()),
                ("code_verifier", pair.verifier.clone()),
            ];
            tokio::spawn(async move {
                // A client of its own: its own connection.
                let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                let response = http.post(url).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
                response.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
}
