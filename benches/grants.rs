//! Cost of code redemption and refresh rotation as live grants pile up (issue 9 item 10), on
//! SQLite and Postgres, through the store the server uses (`latchkey::store::Store`), release
//! build.
//!
//! Run: `cargo bench --bench grants` (both backends, 1,000 then 100,000 live grants, 3 s per
//! measurement). For each backend and size it starts from an empty database, as a deployment
//! does: a warm-up redeems codes and rotates refresh tokens while the tables are tiny (so each
//! pooled connection has prepared and, on Postgres, planned its statements on tiny tables), then
//! seeds N live grants of the bench app, each with a code and a refresh token (codes: at least
//! 20,000, so the measurement never runs out), and measures without running ANALYZE
//! ("whatever the planner's statistics say"; on Postgres autovacuum is off for the three
//! tables, so it cannot analyse them at an arbitrary moment during the measurement):
//!
//! - redeem: one caller redeems seeded codes back to back (`GrantStore::redeem_code`);
//! - refresh: one caller rotates a chain of refresh tokens (`GrantStore::rotate_refresh_token`).
//!
//! Settings (environment): BENCH_BACKENDS ("sqlite postgres"), BENCH_POSTGRES_URL
//! (postgres://postgres:postgres@127.0.0.1:5432/postgres; the bench creates and drops
//! `latchkey_grants_bench`), BENCH_SIZES ("1000 100000"), BENCH_SECONDS (3 per measurement).
//! Figures go to stdout and benches/results/grants-<timestamp>.txt.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use latchkey::domain::{CodeRedemption, RefreshRotation, Successor};
use latchkey::store::{Backend, GrantStore, Store};
use reqwest::Url;
use sqlx::{Connection, Row};

const CLIENT_ID: &str = "bench-app";
const PG_DATABASE: &str = "latchkey_grants_bench";
/// Codes seeded at least, whatever the number of grants: a fast store redeems thousands a second.
const MIN_CODES: u64 = 20_000;
/// Grants, codes and refresh tokens of the warm-up, on tiny tables.
const WARMUP: u64 = 20;
const IDLE_SECS: i64 = 14 * 86_400;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| anyhow!("{name}={v} is not a valid value")),
        _ => Ok(default),
    }
}

fn now() -> i64 {
    latchkey::state::unix_now()
}

/// The stored hash of seeded item `i` of `phase`: one phase byte, then `i` big-endian in the
/// last 31 bytes — what the seeding SQL computes (`phase || %062x`).
fn hash(phase: u8, i: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = phase;
    h[24..].copy_from_slice(&i.to_be_bytes());
    h
}

/// Seeds `grants` live grants of the bench app (ids `<phase>-<i>`), `codes` unused codes spread
/// over them and one live refresh token per grant, in three statements.
async fn seed(store_url: &str, backend: Backend, phase: u8, grants: u64, codes: u64) -> anyhow::Result<()> {
    let mut conn = sqlx::AnyConnection::connect(store_url).await?;
    let (series, hex) = match backend {
        Backend::Postgres => {
            ("WITH s(i) AS (SELECT generate_series(1, $1::bigint))", "decode($2 || lpad(to_hex(i), 62, '0'), 'hex')")
        }
        Backend::Sqlite => (
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1)",
            "unhex($2 || printf('%062x', i))",
        ),
    };
    let now = now();
    let phase_hex = format!("{phase:02x}");
    sqlx::query(&format!(
        "{series} INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, \
         expires_at, revoked_at) SELECT $2 || '-' || i, $3, 'user-' || (i % 5000), 'openid offline_access', $4, \
         '[\"pwd\"]', NULL, 'sid-' || $2 || '-' || i, $4, $4 + 7776000, NULL FROM s"
    ))
    .bind(i64::try_from(grants)?)
    .bind(&phase_hex)
    .bind(CLIENT_ID)
    .bind(now)
    .execute(&mut conn)
    .await
    .context("seeding grants")?;
    sqlx::query(&format!(
        "{series} INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_sent, \
         code_challenge, created_at, expires_at, consumed_at) SELECT {hex}, $2 || '-' || (1 + (i - 1) % $5), $3, \
         'http://127.0.0.1:9/callback', 1, 'challenge', $4, $4 + 3600, NULL FROM s"
    ))
    .bind(i64::try_from(codes)?)
    .bind(&phase_hex)
    .bind(CLIENT_ID)
    .bind(now)
    .bind(i64::try_from(grants)?)
    .execute(&mut conn)
    .await
    .context("seeding codes")?;
    sqlx::query(&format!(
        "{series} INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at) \
         SELECT {hex}, $2 || '-' || i, 'openid offline_access', $3, $3 + {IDLE_SECS}, NULL FROM s"
    ))
    .bind(i64::try_from(grants)?)
    .bind(&phase_hex)
    .bind(now)
    .execute(&mut conn)
    .await
    .context("seeding refresh tokens")?;
    let _ = conn.close().await;
    Ok(())
}

struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Measured {
    fn line(&mut self, backend: &str, grants: u64, op: &str) -> String {
        self.latencies.sort();
        let n = self.latencies.len();
        let pick = |p: f64| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let index = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1)) - 1;
            self.latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        #[allow(clippy::cast_precision_loss)]
        let rate = n as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "| {backend} | {grants} | {op} | {n} | {rate:.0}/s | {:.3} ms | {:.3} ms | {:.3} ms |",
            pick(0.5),
            pick(0.99),
            pick(1.0)
        )
    }
}

/// Redeems seeded codes of `phase` for `seconds` (or until they run out), in a scattered order:
/// in seeding order, a plan that reads `grants` until it finds the code's grant would stop
/// early and look cheaper than it is for the code of an arbitrary grant.
async fn redeem(store: &Store, phase: u8, codes: u64, seconds: f64) -> anyhow::Result<Measured> {
    let start = Instant::now();
    let mut latencies = Vec::new();
    for k in 0..codes {
        // 7,919 is prime and divides neither 2 nor 5, so with the seeded counts (multiples of
        // ten) this visits every code once.
        let i = 1 + (k * 7_919) % codes;
        let t = Instant::now();
        match store.redeem_code(&hash(phase, i), CLIENT_ID, now()).await? {
            CodeRedemption::Redeemed { .. } => {}
            other => bail!("code {i} of phase {phase} was not redeemed: {other:?}"),
        }
        latencies.push(t.elapsed());
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    Ok(Measured { latencies, elapsed: start.elapsed() })
}

/// Rotates, for `seconds`, the chain that starts at seeded refresh token `first` of `phase`.
async fn refresh(store: &Store, phase: u8, first: u64, seconds: f64, limit: u64) -> anyhow::Result<Measured> {
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut token = hash(phase, first);
    for k in 1..=limit {
        let next = hash(phase | 0x80, k);
        // As the default settings store it: with a sealed copy for the 10 s reuse grace window
        // (issue 11 item 4; 84 bytes: version, nonce, 43-character token, tag).
        let successor = Successor { hash: next, sealed: Some(vec![0u8; 84]), sealed_until: now() + 10 };
        let t = Instant::now();
        match store.rotate_refresh_token(&token, &successor, CLIENT_ID, now(), IDLE_SECS).await? {
            RefreshRotation::Rotated { .. } => {}
            other => bail!("rotation {k} of phase {phase} failed: {other:?}"),
        }
        latencies.push(t.elapsed());
        token = next;
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    Ok(Measured { latencies, elapsed: start.elapsed() })
}

/// Postgres: sequential scans of `grants` and rows they read so far (`pg_stat_user_tables`),
/// after letting the store's connection publish its counters (a backend does when it goes
/// idle a second or more after it last did). SQLite: none.
async fn grant_scans(store: &Store, url: &str) -> anyhow::Result<Option<(i64, i64)>> {
    if store.backend() != Backend::Postgres {
        return Ok(None);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.ping().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let row = sqlx::query("SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'grants'")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(Some((row.try_get(0)?, row.try_get(1)?)))
}

fn scan_cell(before: Option<(i64, i64)>, after: Option<(i64, i64)>) -> String {
    match (before, after) {
        (Some((s0, r0)), Some((s1, r1))) => format!(" {} scans, {} rows |", s1 - s0, r1 - r0),
        _ => " - |".to_string(),
    }
}

async fn postgres_database(admin_url: &str, create: bool) -> anyhow::Result<String> {
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .context("cannot connect to BENCH_POSTGRES_URL (is Postgres running?)")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")).execute(&mut conn).await?;
    if create {
        sqlx::query(&format!("CREATE DATABASE {PG_DATABASE}")).execute(&mut conn).await?;
    }
    let _ = conn.close().await;
    let mut url = Url::parse(admin_url).context("BENCH_POSTGRES_URL is not a URL")?;
    url.set_path(&format!("/{PG_DATABASE}"));
    Ok(url.to_string())
}

async fn one_size(backend_name: &str, url: &str, grants: u64, seconds: f64) -> anyhow::Result<Vec<String>> {
    let store = Store::connect(url, 16, Duration::from_secs(30)).await?;
    store.migrate().await?;
    let backend = store.backend();
    if backend == Backend::Postgres {
        // Autovacuum would analyse the tables at some moment after the seeding, which replans
        // (or not) in the middle of a measurement; off, the bench shows the plans as they are
        // until then, whatever that moment is.
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        for table in ["grants", "authorization_codes", "refresh_tokens"] {
            sqlx::query(&format!("ALTER TABLE {table} SET (autovacuum_enabled = false)")).execute(&mut conn).await?;
        }
        let _ = conn.close().await;
    }
    // Warm-up on tiny tables, as a fresh deployment starts.
    seed(url, backend, 1, WARMUP, WARMUP).await?;
    redeem(&store, 1, WARMUP, f64::MAX).await?;
    refresh(&store, 1, 1, f64::MAX, WARMUP).await?;
    let started = Instant::now();
    let codes = grants.max(MIN_CODES);
    seed(url, backend, 2, grants, codes).await?;
    eprintln!("  seeded {grants} live grants, {codes} codes in {:.1} s", started.elapsed().as_secs_f64());
    let mut lines = Vec::new();
    let scans = grant_scans(&store, url).await?;
    let mut redeemed = redeem(&store, 2, codes, seconds).await?;
    let scans_after = grant_scans(&store, url).await?;
    lines.push(redeemed.line(backend_name, grants, "code redemption") + &scan_cell(scans, scans_after));
    eprintln!("  {}", lines.last().map_or("", String::as_str));
    // A grant from the middle of the table: as far from its start as an average one.
    let mut rotated = refresh(&store, 2, grants / 2 + 1, seconds, u64::MAX).await?;
    let scans_end = grant_scans(&store, url).await?;
    lines.push(rotated.line(backend_name, grants, "refresh rotation") + &scan_cell(scans_after, scans_end));
    eprintln!("  {}", lines.last().map_or("", String::as_str));
    store.close().await;
    Ok(lines)
}

async fn run() -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let backends: Vec<String> = env_or("BENCH_BACKENDS", "sqlite postgres".to_string())?
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let sizes: Vec<u64> = env_or("BENCH_SIZES", "1000 100000".to_string())?
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| anyhow!("BENCH_SIZES: `{s}` is not a number")))
        .collect::<anyhow::Result<_>>()?;
    let seconds: f64 = env_or("BENCH_SECONDS", 3.0)?;
    let pg_admin = env_or("BENCH_POSTGRES_URL", "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_string())?;
    let mut lines = vec![
        "| backend | live grants | operation | ops | rate (one caller) | p50 | p99 | max | seq. scans of grants |"
            .to_string(),
        "|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    for backend in &backends {
        for &grants in &sizes {
            eprintln!("{backend}, {grants} live grants …");
            let (url, _dir) = match backend.as_str() {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    (format!("sqlite:{}", dir.path().join("grants.db").display()), Some(dir))
                }
                "postgres" => (postgres_database(&pg_admin, true).await?, None),
                other => bail!("BENCH_BACKENDS: unknown backend `{other}` (sqlite, postgres)"),
            };
            let result = one_size(backend, &url, grants, seconds).await;
            if backend == "postgres" {
                postgres_database(&pg_admin, false).await?;
            }
            lines.extend(result?);
        }
    }
    Ok(lines.join("\n") + "\n")
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(report) => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let report = format!(
                "Latchkey grants bench (issue 9 item 10), {cores} cores, one caller per measurement, \
                 statements planned on tiny tables first, no ANALYZE after seeding \
                 (Postgres: autovacuum off for grants, codes and refresh tokens)\n\n{report}"
            );
            println!("\n{report}");
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let path = dir.join(format!("grants-{stamp}.txt"));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &report)) {
                eprintln!("grants bench: cannot write {}: {e}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("grants bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
