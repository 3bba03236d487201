//! Issue 9 item 8: a shutdown a load balancer can follow. The real binary under a bounded load
//! gets SIGTERM: `/readyz` turns 503 while the server keeps serving for `shutdown_delay`, then
//! the listener closes, the request still in flight completes, and the process exits 0.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{cli_json, fresh_database, latchkey_cli, TestDatabase};

/// Load clients, like a load balancer's connection pools.
const CLIENTS: usize = 4;
/// Requests each client sends at most.
const MAX_REQUESTS_PER_CLIENT: usize = 250;
const SHUTDOWN_DELAY_SECS: u64 = 4;
/// How long the load goes on after `/readyz` said 503 (less than the delay, as it must be).
const PROPAGATION: Duration = Duration::from_secs(1);

/// `latchkey serve` on a free port; killed on drop if the test fails before it exits.
pub struct Server {
    pub child: Child,
    pub port: u16,
    _logs: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `master_key` must be the same for every server on one database (it seals the keys).
    async fn start(db: &TestDatabase, master_key: &str, delay: &str) -> Server {
        Self::start_with(db, master_key, &[("LATCHKEY_SHUTDOWN_DELAY", delay)], None).await
    }

    /// With more settings in `env`, and under `ulimit -n open_files` when given.
    pub async fn start_with(
        db: &TestDatabase,
        master_key: &str,
        env: &[(&str, &str)],
        open_files: Option<u32>,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let logs = tempfile::NamedTempFile::new().unwrap();
        let binary = env!("CARGO_BIN_EXE_latchkey");
        let mut command = match open_files {
            None => Command::new(binary),
            // `exec` keeps the pid, so signals reach the server itself.
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", "ulimit -n \"$0\" && exec \"$@\"", &n.to_string(), binary]);
                sh
            }
        };
        let child = command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LATCHKEY_DATABASE_URL", &db.url)
            .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_ISSUER", format!("http://127.0.0.1:{port}"))
            .env("LATCHKEY_MASTER_KEY", master_key)
            .env("LATCHKEY_CLIENT_CACHE_TTL", "0s")
            .env("LATCHKEY_LOG_LEVEL", "info")
            .env("LATCHKEY_SHUTDOWN_GRACE", "30s")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(logs.reopen().unwrap())
            .spawn()
            .expect("run latchkey serve");
        let server = Server { child, port, _logs: logs };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(server.url("/readyz")).send().await {
                if r.status().as_u16() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server never became ready; logs:\n{}", server.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit; `None` if it still runs after `bound`.
    async fn exit_within(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self._logs.path()).unwrap_or_default()
    }
}

#[tokio::test]
async fn sigterm_under_load_readiness_turns_503_no_request_fails_and_in_flight_work_completes() {
    let db = fresh_database().await;
    let created = cli_json(
        &latchkey_cli(&db, &["client", "create", "--name", "svc", "--grant-type", "client_credentials"], &[], None)
            .await,
    );
    let (id, secret) =
        (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().unwrap().to_string());
    let mut server = Server::start(&db, &latchkey::secret::random_token(32), &format!("{SHUTDOWN_DELAY_SECS}s")).await;

    // The load balancer: polls /readyz and, soon after it answers 503, sends no new requests.
    let draining = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let poller = {
        let (draining, url) = (draining.clone(), server.url("/readyz"));
        let failures = failures.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(120) {
                match http.get(&url).send().await {
                    Ok(r) if r.status().as_u16() == 503 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        // Like Kubernetes endpoints, the news takes a while to reach every
                        // sender: traffic goes on for a second (within shutdown_delay).
                        tokio::time::sleep(PROPAGATION).await;
                        draining.store(true, Ordering::SeqCst);
                        return Some(body["status"].as_str().unwrap_or_default().to_string());
                    }
                    Ok(r) if r.status().as_u16() == 200 => {}
                    Ok(r) => failures.lock().unwrap().push(format!("/readyz answered {}", r.status())),
                    // The listener closed before readiness ever said 503: nobody could follow.
                    Err(e) => {
                        failures.lock().unwrap().push(format!("/readyz unreachable before it said 503: {e}"));
                        draining.store(true, Ordering::SeqCst);
                        return None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        })
    };
    // Keep-alive clients getting service tokens.
    let mut load = Vec::new();
    for _ in 0..CLIENTS {
        let (draining, ok, failures) = (draining.clone(), ok.clone(), failures.clone());
        let (url, id, secret) = (server.url("/token"), id.clone(), secret.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            for _ in 0..MAX_REQUESTS_PER_CLIENT {
                if draining.load(Ordering::SeqCst) {
                    break;
                }
                let sent = http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        if body["access_token"].is_string() {
                            ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            failures.lock().unwrap().push(format!("200 without a token: {body}"));
                        }
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("/token answered {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("/token failed: {e}")),
                }
            }
        }));
    }
    // Let the load run a little, then start a slow request: headers sent, half the body.
    let warmup = Instant::now();
    while ok.load(Ordering::SeqCst) < 200 {
        assert!(warmup.elapsed() < Duration::from_secs(60), "no load got through: {:?}", failures.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let body = "grant_type=client_credentials";
    let (first_half, second_half) = body.split_at(10);
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{first_half}",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();

    let terminated = Instant::now();
    let before_sigterm = ok.load(Ordering::SeqCst);
    server.signal("-TERM");
    for task in load {
        task.await.unwrap();
    }
    let readyz = poller.await.unwrap();
    let failed = failures.lock().unwrap().clone();
    assert_eq!(
        readyz.as_deref(),
        Some("shutting_down"),
        "readiness said 503 while still serving; failures: {failed:?}"
    );
    assert!(failed.is_empty(), "{} failed requests: {failed:?}", failed.len());
    assert!(ok.load(Ordering::SeqCst) >= 200);

    // After shutdown_delay the listener closes…
    let listener_closed = loop {
        if TcpStream::connect(("127.0.0.1", server.port)).await.is_err() {
            break terminated.elapsed();
        }
        assert!(terminated.elapsed() < Duration::from_secs(60), "the listener never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        listener_closed >= Duration::from_secs(SHUTDOWN_DELAY_SECS),
        "the listener closed {listener_closed:?} after SIGTERM, before shutdown_delay"
    );
    // …while the slow request is still in flight, and the process waits for it.
    assert!(server.child.try_wait().unwrap().is_none(), "exited with a request in flight");
    slow.write_all(second_half.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut response))
        .await
        .expect("the in-flight request is answered and its connection closed")
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    let status = server.exit_within(Duration::from_secs(30)).await.expect("the server exits after draining");
    assert!(status.success(), "exit status {status:?}; logs:\n{}", server.logs());
    eprintln!(
        "SIGTERM under load: {} tokens ({} after SIGTERM), 0 failed; listener closed {listener_closed:?} after SIGTERM; exited {:?} after",
        ok.load(Ordering::SeqCst),
        ok.load(Ordering::SeqCst) - before_sigterm,
        terminated.elapsed()
    );
}

#[tokio::test]
async fn sigint_skips_the_shutdown_delay() {
    let db = fresh_database().await;
    let master_key = latchkey::secret::random_token(32);
    // A delay far longer than the bound below: exiting in time shows it was skipped.
    let mut server = Server::start(&db, &master_key, "300s").await;
    server.signal("-INT");
    let status = server.exit_within(Duration::from_secs(60)).await;
    let status = status.unwrap_or_else(|| panic!("still running 60s after SIGINT; logs:\n{}", server.logs()));
    assert!(status.success(), "exit status {status:?}; logs:\n{}", server.logs());

    // The same server under SIGTERM honours the delay: still serving (readiness 503) after it.
    let mut server = Server::start(&db, &master_key, "300s").await;
    server.signal("-TERM");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(server.url("/readyz")).send().await.expect("still serving during shutdown_delay");
        if r.status().as_u16() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "readiness never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = http.get(server.url("/healthz")).send().await.expect("still serving during shutdown_delay");
    assert_eq!(r.status().as_u16(), 200);
    // A second signal (SIGINT) cuts the delay short, as an operator at a terminal expects.
    server.signal("-INT");
    let status = server.exit_within(Duration::from_secs(60)).await;
    assert!(status.is_some_and(|s| s.success()), "logs:\n{}", server.logs());
}
