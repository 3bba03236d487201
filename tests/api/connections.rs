//! Issue 9 item 2: slow, silent and idle connections are closed, and open connections are capped
//! without starving health checks. Raw sockets against the real server.

use std::time::{Duration, Instant};

use latchkey::config::HumanDuration;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, TestApp};

/// Far longer than any timeout under test: a socket still open after this was never closed.
const NEVER: Duration = Duration::from_secs(15);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.settings.bind).await.expect("connect")
}

/// Reads until the server closes the socket (EOF or reset). `None` if it is still open after
/// `bound`, or if it sent bytes (it should send nothing to these sockets).
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(bound, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
        Ok(Ok(n)) => panic!("the server sent {n} bytes: {}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => None,
    }
}

/// One HTTP/1.1 response read off a raw socket: status, lower-cased headers, body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(NEVER, stream.read(&mut buf)).await.expect("response in time").expect("read");
        assert!(n > 0, "connection closed before a response: {}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().expect("length"))
        .expect("responses here have a Content-Length");
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(NEVER, stream.read(&mut buf)).await.expect("body in time").expect("read");
        assert!(n > 0, "connection closed in the body");
        body.extend_from_slice(&buf[..n]);
    }
    RawResponse { status, headers, body }
}

/// A GET on its own new connection (HTTP/1.1: keep-alive unless the server says otherwise).
async fn get_on(stream: &mut TcpStream, path: &str) -> RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    read_response(stream).await
}

#[tokio::test]
async fn silent_and_half_sent_sockets_are_closed_after_the_header_read_timeout() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout = HumanDuration::secs(1);
        s.idle_timeout = HumanDuration::secs(60);
    })
    .await;
    // The server's clock starts at the accept, after this: nothing may be cut before +1s.
    let opened = Instant::now();
    let mut silent = connect(&app).await;
    let mut half_line = connect(&app).await;
    half_line.write_all(b"GET /hea").await.unwrap();
    let mut half_headers = connect(&app).await;
    half_headers.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:").await.unwrap();

    let sockets =
        [("silent", &mut silent), ("half a request line", &mut half_line), ("half the headers", &mut half_headers)];
    for (name, socket) in sockets {
        let closed = closed_within(socket, NEVER).await;
        assert!(closed.is_some(), "{name}: still open after {NEVER:?} (header_read_timeout is 1s)");
        assert!(opened.elapsed() >= Duration::from_secs(1), "{name}: closed {:?} after it opened", opened.elapsed());
    }

    // A slowloris dribbling a byte every 200 ms does not reset the clock: the headers as a whole
    // must arrive within the timeout.
    let mut dribble = connect(&app).await;
    let started = Instant::now();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\n\r\n", "a".repeat(80));
    let request = request.as_bytes();
    let mut cut_off = false;
    for byte in request.iter().take(request.len() - 2) {
        if dribble.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(200), dribble.read(&mut probe)).await {
            assert!(matches!(read, Ok(0) | Err(_)), "the server answered unfinished headers");
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "a dribbling client kept its connection for {:?}", started.elapsed());
    assert!(started.elapsed() >= Duration::from_secs(1), "cut before the timeout: {:?}", started.elapsed());

    // The server itself is fine: a prompt client is served.
    let mut prompt = connect(&app).await;
    let response = get_on(&mut prompt, "/healthz").await;
    assert_eq!((response.status, response.json()["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout = HumanDuration::secs(1);
        s.idle_timeout = HumanDuration::secs(3);
    })
    .await;
    let mut socket = connect(&app).await;
    let first = get_on(&mut socket, "/healthz").await;
    assert_eq!(first.status, 200);
    assert_ne!(first.header("connection"), Some("close"), "kept alive");
    // Idle longer than the header timeout: still open (a load balancer's pooled connection must
    // not be cut at the header timeout)…
    assert_eq!(closed_within(&mut socket, Duration::from_millis(1800)).await, None, "closed at the header timeout");
    // …and still usable.
    let asked = Instant::now();
    let second = get_on(&mut socket, "/healthz").await;
    assert_eq!(second.status, 200);
    // Then idle past the idle timeout (counted from the answer, after `asked`): closed.
    let closed = closed_within(&mut socket, NEVER).await;
    assert!(closed.is_some(), "an idle connection was still open after {NEVER:?}");
    assert!(asked.elapsed() >= Duration::from_secs(3), "closed before the idle timeout: {:?}", asked.elapsed());
}

#[tokio::test]
async fn past_the_connection_cap_health_checks_answer_and_other_requests_get_503() {
    const CAP: usize = 20;
    let app = spawn_app_with(|s| {
        s.max_connections = CAP;
        // Sockets below hold their slots for the whole test unless the test closes them.
        s.header_read_timeout = HumanDuration::secs(60);
        s.idle_timeout = HumanDuration::secs(120);
    })
    .await;
    // Fill every ordinary slot with clients in the middle of their headers (the listen queue is
    // first in, first out: these are accepted before any connection opened after them).
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut socket = connect(&app).await;
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        held.push(socket);
    }

    // Past the cap: an ordinary request is refused, with the reason and when to retry.
    let mut extra = connect(&app).await;
    let refused = get_on(&mut extra, "/.well-known/jwks.json").await;
    assert_eq!(refused.status, 503, "a request past the cap");
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    assert_eq!(refused.header("x-content-type-options"), Some("nosniff"), "security headers as on every response");
    assert!(closed_within(&mut extra, NEVER).await.is_some(), "a reserve connection serves one request");

    // Health checks still answer.
    for path in ["/healthz", "/readyz"] {
        let mut probe = connect(&app).await;
        let response = get_on(&mut probe, path).await;
        assert_eq!(response.status, 200, "{path} past the cap");
        assert_eq!(response.header("connection"), Some("close"));
    }

    // Silent sockets take the health reserve too, and more wait behind it: a probe polled now
    // is still answered (a silent socket holds a reserve slot for 2 s at most).
    let mut silent = Vec::new();
    for _ in 0..latchkey::http::server::HEALTH_RESERVE + 5 {
        silent.push(connect(&app).await);
    }
    let polling = Instant::now();
    let answered = loop {
        let probe = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        if let Ok(response) = probe.get(app.url("/healthz")).send().await {
            break response.status().as_u16();
        }
        assert!(polling.elapsed() < Duration::from_secs(60), "/healthz starved behind the connection cap");
    };
    assert_eq!(answered, 200);

    // Free the ordinary slots: ordinary requests are served again.
    drop(held);
    drop(silent);
    let deadline = Instant::now() + NEVER;
    loop {
        let mut socket = connect(&app).await;
        let response = get_on(&mut socket, "/.well-known/jwks.json").await;
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {}", response.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    // The reproduction, scaled down: `ulimit -n 100`, and more silent sockets than that.
    // `max_connections` is set above the limit on purpose, so accept itself fails (EMFILE).
    let db = crate::helpers::fresh_database().await;
    let key = latchkey::secret::random_token(32);
    let settings = [("LATCHKEY_MAX_CONNECTIONS", "1000"), ("LATCHKEY_HEADER_READ_TIMEOUT", "3s")];
    let server = crate::shutdown::Server::start_with(&db, &key, &settings, Some(100)).await;
    let addr = ("127.0.0.1", server.port);
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(TcpStream::connect(addr).await.expect("the kernel's backlog takes it"));
    }
    // The silent sockets are closed after the header timeout, file descriptors come back, and
    // the server answers again by itself.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let polling = Instant::now();
    loop {
        if let Ok(r) = http.get(server.url("/healthz")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(polling.elapsed() < Duration::from_secs(60), "never recovered; logs:\n{}", server.logs());
    }
    drop(silent);
    let logs = server.logs();
    assert!(logs.contains("open-file limit"), "start-up warns that max_connections exceeds ulimit -n:\n{logs}");
    // Logged once per streak (then at most every 5 s), not once per failed accept.
    let accept_errors = logs.lines().filter(|l| l.contains("accept error")).count();
    assert!((1..=4).contains(&accept_errors), "{accept_errors} accept-error lines:\n{logs}");
    assert!(logs.contains("Too many open files"), "{logs}");
}

#[tokio::test]
async fn at_the_cap_idle_kept_alive_connections_make_room_for_new_requests() {
    const CAP: usize = 10;
    let app = spawn_app_with(|s| {
        s.max_connections = CAP;
        s.idle_timeout = HumanDuration::secs(120);
    })
    .await;
    // Every slot taken by a kept-alive connection that has had its answer and now sits idle.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        let mut socket = connect(&app).await;
        let response = get_on(&mut socket, "/healthz").await;
        assert_eq!((response.status, response.header("connection")), (200, None));
        idle.push(socket);
    }
    // A new client with a real request is served, not refused: the idle connections give way
    // (nginx does the same with its idle keep-alive connections when it runs out).
    let mut newcomer = connect(&app).await;
    let response = get_on(&mut newcomer, "/.well-known/jwks.json").await;
    assert_eq!(response.status, 200, "a request past the cap while every other connection was idle");
    assert_ne!(response.header("connection"), Some("close"), "served on an ordinary slot");
    // The idle connections were closed by the server, well before their idle timeout.
    for socket in &mut idle {
        assert!(closed_within(socket, NEVER).await.is_some(), "an idle connection kept its slot");
    }
}
