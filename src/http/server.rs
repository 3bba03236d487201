//! Our own HTTP/1 accept loop in place of `axum::serve` (issue 9, items 2 and 8).
//!
//! `axum::serve` has no header-read timeout, no idle timeout and no connection cap, and it closes
//! the listener the moment shutdown starts. Here each connection is served by hyper's HTTP/1
//! connection with our own clock:
//!
//! - **header-read timeout**: a connection must deliver a request's complete headers within
//!   `header_read_timeout` of being accepted (first request) or of the first byte of the next
//!   request (keep-alive), else it is closed. A socket that sends nothing, or stops in the middle
//!   of its headers, no longer holds a slot for ever.
//! - **idle timeout**: a kept-alive connection waiting for its next request is closed after
//!   `idle_timeout`. It is separate from the header timeout because hyper's own
//!   `header_read_timeout` also runs while a kept-alive connection is idle (hyper 1.x
//!   `proto/h1/conn.rs` restarts it when the connection goes idle), which would cap the idle
//!   time at the header timeout; load balancers want backends to keep idle connections open
//!   longer than they do (else a request races the backend's close).
//! - **connection cap**: at most `max_connections` ordinary connections. A connection arriving
//!   past it first makes the idle kept-alive connections close (their clients reconnect when
//!   they have a request) and, if there were any, waits for a freed slot. Failing that, a small
//!   reserve of slots serves one request per connection with `Connection: close`; only the
//!   health endpoints are answered there, everything else gets 503 with `Retry-After`, so probes
//!   keep working while the server is full. When the reserve is full too, new connections wait
//!   in the kernel's backlog until a slot frees.
//! - **accept errors** (out of file descriptors, …) back off from 10 ms doubling to 1 s and are
//!   logged once per streak and then at most every few seconds, never a hot loop.
//! - **shutdown**: when `stop` resolves the listener closes, every connection finishes its
//!   in-flight request (the response carries `Connection: close`) and closes; connections still
//!   open after `grace` are closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::paths;
use crate::state::AppState;

/// Connections past `max_connections` that may still be accepted to answer health checks.
pub const HEALTH_RESERVE: usize = 16;

/// Longest a connection past the cap waits for an idle connection to close and free its slot
/// (it takes milliseconds; this bounds the wait should they all turn busy meanwhile).
const RESERVE_WAIT: Duration = Duration::from_secs(2);

/// Header-read timeout on a reserve connection: a health probe sends its request at once, and
/// a reserve slot held by a silent socket is a slot a probe cannot have.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Accept back-off: first pause, and the longest one.
const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// While accept keeps failing, one log line per this period (with the count of failures).
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// What the server enforces per connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// How long in-flight requests get once the listener has closed.
    pub grace: Duration,
}

/// Where the server is in its life; every connection watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Serving,
    /// The listener is closed: finish the request in flight, then close.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

/// Serves `router` on `listener` until `stop` resolves, then drains (see the module comment).
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`, as with
/// `into_make_service_with_connect_info` (http::client_ip reads it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stage_tx, stage_rx) = watch::channel(Stage::Serving);
    // Bumped whenever a connection arrives past the cap: idle kept-alive connections close to
    // make room (as nginx reuses its idle keep-alive connections when it runs out).
    let (pressure_tx, _) = watch::channel(0u64);
    let idle = Arc::new(AtomicUsize::new(0));
    let ordinary = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(HEALTH_RESERVE));
    let mut backoff = Backoff::default();
    let busy_router = busy_router(state.settings().issuer.starts_with("https://"));
    tokio::pin!(stop);
    loop {
        // A slot before accepting: past the cap and the reserve, new connections wait in the
        // kernel's backlog instead of taking a file descriptor.
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = Slot::acquire(&ordinary, &reserve) => slot,
        };
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff.reset();
                pair
            }
            // The peer gave up between SYN and accept: nothing wrong with us, take the next one.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let pause = backoff.next(&e);
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        // A connection that waited in `accept` for a reserve slot takes an ordinary one if one
        // freed meanwhile.
        let slot = slot.upgrade(&ordinary);
        // Responses are small and written whole; don't let Nagle's algorithm hold the last
        // segment back waiting for an ACK. A failure only costs latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if slot.reserve {
            pressure_tx.send_modify(|n| *n = n.wrapping_add(1));
        }
        let connection = Connection {
            router: router.clone(),
            busy_router: busy_router.clone(),
            state: state.clone(),
            peer,
            limits,
            stage: stage_rx.clone(),
            pressure: pressure_tx.subscribe(),
            ordinary: ordinary.clone(),
            idle: idle.clone(),
        };
        tokio::spawn(connection.serve(stream, slot));
    }
    // Stop accepting: the port closes now; connections already open finish their requests.
    drop(listener);
    stage_tx.send_replace(Stage::Draining);
    drop(stage_rx);
    // Every connection task holds a receiver: `closed` resolves when the last one has ended.
    if tokio::time::timeout(limits.grace, stage_tx.closed()).await.is_err() {
        tracing::warn!(
            open = stage_tx.receiver_count(),
            "shutdown grace period over; closing the remaining connections"
        );
        stage_tx.send_replace(Stage::Closing);
        // Closing is immediate (each task drops its connection); this wait only lets them run.
        let _ = tokio::time::timeout(Duration::from_secs(1), stage_tx.closed()).await;
    }
    Ok(())
}

/// Errors of the one connection being accepted, not of the listener (as in axum::serve).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Growing pause after failed accepts (EMFILE, ENFILE, ENOBUFS, …): retrying at once would spin
/// a core and flood the log while nothing can change.
#[derive(Default)]
struct Backoff {
    pause: Option<Duration>,
    failures: u64,
    last_log: Option<Instant>,
}

impl Backoff {
    fn next(&mut self, e: &io::Error) -> Duration {
        let pause = self.pause.map_or(BACKOFF_START, |p| (p * 2).min(BACKOFF_MAX));
        self.pause = Some(pause);
        self.failures += 1;
        let now = Instant::now();
        if self.last_log.is_none_or(|at| now.duration_since(at) >= ACCEPT_ERROR_LOG_EVERY) {
            tracing::error!(
                error = %e,
                failures = self.failures,
                retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "accept error; backing off (if this is `Too many open files`, lower `max_connections` or raise `ulimit -n`)"
            );
            self.last_log = Some(now);
        }
        pause
    }

    fn reset(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
        }
        *self = Self::default();
    }
}

/// The permit a connection holds for its whole life.
struct Slot {
    /// Past the cap: one request, health endpoints only.
    reserve: bool,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn ordinary(permit: OwnedSemaphorePermit) -> Self {
        Self { reserve: false, _permit: permit }
    }

    fn reserve(permit: OwnedSemaphorePermit) -> Self {
        Self { reserve: true, _permit: permit }
    }

    async fn acquire(ordinary: &Arc<Semaphore>, reserve: &Arc<Semaphore>) -> Self {
        if let Ok(permit) = ordinary.clone().try_acquire_owned() {
            return Slot::ordinary(permit);
        }
        if let Ok(permit) = reserve.clone().try_acquire_owned() {
            return Slot::reserve(permit);
        }
        loop {
            // The semaphores are never closed, so neither acquire fails; the loop only keeps
            // the code free of an unwrap.
            tokio::select! {
                permit = ordinary.clone().acquire_owned() => {
                    if let Ok(p) = permit {
                        return Slot::ordinary(p);
                    }
                }
                permit = reserve.clone().acquire_owned() => {
                    if let Ok(p) = permit {
                        return Slot::reserve(p);
                    }
                }
            }
        }
    }

    fn upgrade(self, ordinary: &Arc<Semaphore>) -> Self {
        if !self.reserve {
            return self;
        }
        match ordinary.clone().try_acquire_owned() {
            Ok(permit) => Slot::ordinary(permit),
            Err(_) => self,
        }
    }
}

struct Connection {
    router: Router,
    /// Answers what a reserve connection may not ask (see `busy_router`).
    busy_router: Router,
    state: AppState,
    peer: SocketAddr,
    limits: Limits,
    stage: watch::Receiver<Stage>,
    /// Changes when a connection arrives past the cap.
    pressure: watch::Receiver<u64>,
    ordinary: Arc<Semaphore>,
    /// How many connections are idle (kept alive between requests) right now.
    idle: Arc<AtomicUsize>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, mut slot: Slot) {
        if slot.reserve {
            // Idle connections were told to close (see `serve`). A closing connection frees its
            // slot before it leaves the idle count, so: count first, then look for a slot.
            let idle_left = self.idle.load(Ordering::SeqCst);
            if let Ok(permit) = self.ordinary.clone().try_acquire_owned() {
                slot = Slot::ordinary(permit);
            } else if idle_left > 0 {
                if let Ok(Ok(permit)) = tokio::time::timeout(RESERVE_WAIT, self.ordinary.clone().acquire_owned()).await
                {
                    slot = Slot::ordinary(permit);
                }
            }
        }
        let reserved = slot.reserve;
        let header_timeout = if reserved {
            self.limits.header_read_timeout.min(RESERVE_HEADER_TIMEOUT)
        } else {
            self.limits.header_read_timeout
        };
        let clock = Arc::new(Clock::new(self.idle.clone()));
        let io = TokioIo::new(Watched { inner: stream, clock: clock.clone() });
        let service = ConnectionService {
            router: if reserved { self.busy_router.clone() } else { self.router.clone() },
            health_router: self.router.clone(),
            state: self.state.clone(),
            peer: self.peer,
            clock: clock.clone(),
            reserved,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper's own header timeout would also bound the idle wait (see the module comment);
        // the clock below does both.
        builder.keep_alive(!reserved).header_read_timeout(None);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        // A connection accepted as the server began draining still gets its one request.
        if *self.stage.borrow_and_update() != Stage::Serving {
            conn.as_mut().graceful_shutdown();
        }
        let mut pressure_open = true;
        loop {
            let deadline = clock.deadline(header_timeout, self.limits.idle_timeout);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = sleep_until(deadline) => {
                    if let Some(why) = clock.expired(header_timeout, self.limits.idle_timeout) {
                        tracing::debug!(peer = %self.peer, "closing connection: {why}");
                        break;
                    }
                }
                _ = clock.changed.notified() => {}
                changed = self.pressure.changed(), if pressure_open => match changed {
                    // Past the cap, an idle connection gives its slot to one that has a request.
                    Ok(()) if clock.is_idle() => {
                        tracing::debug!(peer = %self.peer, "closing an idle connection: max_connections reached");
                        break;
                    }
                    Ok(()) => {}
                    Err(_) => pressure_open = false,
                },
                changed = self.stage.changed() => match changed.map(|()| *self.stage.borrow_and_update()) {
                    Ok(Stage::Serving) => {}
                    // Finish the request in flight (hyper marks its response `Connection:
                    // close`); an idle connection closes at once.
                    Ok(Stage::Draining) => conn.as_mut().graceful_shutdown(),
                    // The grace period is over, or the server is gone.
                    Ok(Stage::Closing) | Err(_) => break,
                },
            }
        }
        // The slot first, then the idle count (see the reserve wait above).
        drop(slot);
        clock.close();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its timeouts.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Reading a request's headers since this instant (accept, or the first byte after idle).
    Headers(Instant),
    /// A request is being served (its body read, its response written): the request timeout
    /// (http::router) bounds it, not the clock.
    InRequest,
    /// Kept alive, waiting for the next request since this instant.
    Idle(Instant),
    /// The connection task has ended; nothing changes any more.
    Closed,
}

struct Clock {
    phase: Mutex<Phase>,
    /// Wakes the connection task when a deadline may have moved earlier.
    changed: Notify,
    /// The server's count of idle connections, kept by `set`.
    idle: Arc<AtomicUsize>,
}

impl Clock {
    fn new(idle: Arc<AtomicUsize>) -> Self {
        Self { phase: Mutex::new(Phase::Headers(Instant::now())), changed: Notify::new(), idle }
    }

    fn phase(&self) -> Phase {
        match self.phase.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set(&self, update: impl FnOnce(Phase) -> Option<Phase>) {
        let changed = {
            let mut guard = match self.phase.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let current = *guard;
            match update(current) {
                Some(next) if !matches!(current, Phase::Closed) => {
                    match (matches!(current, Phase::Idle(_)), matches!(next, Phase::Idle(_))) {
                        (false, true) => {
                            self.idle.fetch_add(1, Ordering::SeqCst);
                        }
                        (true, false) => {
                            self.idle.fetch_sub(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                    *guard = next;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: on an idle connection they begin the next request's headers.
    fn bytes_arrived(&self) {
        self.set(|phase| match phase {
            Phase::Idle(_) => Some(Phase::Headers(Instant::now())),
            _ => None,
        });
    }

    fn request_started(&self) {
        self.set(|_| Some(Phase::InRequest));
    }

    fn response_finished(&self) {
        self.set(|_| Some(Phase::Idle(Instant::now())));
    }

    fn close(&self) {
        self.set(|_| Some(Phase::Closed));
    }

    fn is_idle(&self) -> bool {
        matches!(self.phase(), Phase::Idle(_))
    }

    fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Instant> {
        match self.phase() {
            Phase::Headers(since) => Some(since + header_timeout),
            Phase::Idle(since) => Some(since + idle_timeout),
            Phase::InRequest | Phase::Closed => None,
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<&'static str> {
        let now = Instant::now();
        match self.phase() {
            Phase::Headers(since) if now >= since + header_timeout => Some("no complete request headers in time"),
            Phase::Idle(since) if now >= since + idle_timeout => Some("idle keep-alive timeout"),
            _ => None,
        }
    }
}

/// The socket, telling the clock when bytes arrive.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_arrived();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One connection's hyper service: the router, with the peer address and the clock.
#[derive(Clone)]
struct ConnectionService {
    /// The app, or on a reserve connection the busy answer.
    router: Router,
    /// The app, for health checks on a reserve connection.
    health_router: Router,
    state: AppState,
    peer: SocketAddr,
    clock: Arc<Clock>,
    reserved: bool,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.clock.request_started();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = if self.reserved && is_health_check(request.uri().path()) {
            self.health_router.clone()
        } else {
            self.router.clone()
        };
        let state = self.state.clone();
        let clock = self.clock.clone();
        let reserved = self.reserved;
        Box::pin(async move {
            let mut response = match tower_service::Service::call(&mut router, request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // Issue 9 item 8: from SIGTERM on, every response closes its connection, so clients
            // with kept-alive connections reconnect (through the load balancer, to a replica that
            // stays) instead of finding the connection closed once the listener is gone.
            if reserved || state.is_shutting_down() {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| TrackedBody { inner: body, clock }))
        })
    }
}

fn is_health_check(path: &str) -> bool {
    path == paths::HEALTHZ || path == paths::READYZ
}

/// What a reserve connection gets for anything but a health check: `busy`, with the security
/// headers every response carries (http::headers).
fn busy_router(https: bool) -> Router {
    super::headers::security_headers(https)
        .into_iter()
        .fold(Router::new().fallback(busy), |router, layer| router.layer(layer))
}

/// The answer past the connection cap: RFC 9110 §15.6.4 503 with `Retry-After`, and the
/// RFC 6749 `temporarily_unavailable` code that clients of the token endpoint understand.
async fn busy() -> Response<Body> {
    let body = r#"{"error":"temporarily_unavailable","error_description":"too many open connections; retry shortly"}"#;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A response body that tells the clock when hyper is done with it (written, or abandoned):
/// from then on the connection is idle.
struct TrackedBody {
    inner: Body,
    clock: Arc<Clock>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.clock.response_finished();
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
