//! Prometheus metrics (issue 13 item 4), served at `/metrics` in the OpenMetrics text format.
//!
//! Counters and histograms live in one process-wide registry, so the code that counts (the
//! audit trail, the token endpoint, the HTTP layer, the outbox, the key lifecycle) needs no
//! handle passed down; the gauges that describe current state (database pool, outbox depth,
//! active keys' ages, the password-hash queue) are read when Prometheus scrapes.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    /// The route's pattern (`/token`, `/account/totp`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: String,
    pub client_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlgLabels {
    pub alg: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: String,
}

pub struct Metrics {
    pub requests: Family<RouteLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram>,
    pub tokens_issued: Family<TokenLabels, Counter>,
    /// One per audit event kind: sign-ins by result, MFA results, lockouts, reuse detections…
    pub security_events: Family<EventLabels, Counter>,
    /// 429 answers, by where (`sign_in`, `token`, `email`).
    pub throttled: Family<KindLabels, Counter>,
    pub key_lifecycle: Family<KindLabels, Counter>,
    pub outbox_deliveries: Family<OutcomeLabels, Counter>,
    pub database_errors: Family<KindLabels, Counter>,
    pub password_hash_waiting: Gauge,
    pub password_hash_seconds: Histogram,
    // Read at scrape time.
    pub database_connections: Family<PoolLabels, Gauge>,
    pub outbox_pending: Gauge,
    pub active_key_age_seconds: Family<AlgLabels, Gauge<f64, AtomicU64>>,
    registry: Registry,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 0.5 ms … ~8 s.
    exponential_buckets(0.0005, 2.0, 15)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("latchkey");
        let requests = Family::<RouteLabels, Counter>::default();
        let request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        let security_events = Family::<EventLabels, Counter>::default();
        let throttled = Family::<KindLabels, Counter>::default();
        let key_lifecycle = Family::<KindLabels, Counter>::default();
        let outbox_deliveries = Family::<OutcomeLabels, Counter>::default();
        let database_errors = Family::<KindLabels, Counter>::default();
        let password_hash_waiting = Gauge::default();
        let password_hash_seconds = Histogram::new(exponential_buckets(0.002, 2.0, 12));
        let database_connections = Family::<PoolLabels, Gauge>::default();
        let outbox_pending = Gauge::default();
        let active_key_age_seconds = Family::<AlgLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("http_requests", "HTTP requests answered, by route pattern and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route pattern and status",
            request_duration.clone(),
        );
        registry.register("tokens_issued", "Token responses, by grant type and client", tokens_issued.clone());
        registry.register(
            "security_events",
            "Audit events by kind: sign_in.succeeded/failed, mfa.failed, account.locked, refresh_token.reuse_detected, …",
            security_events.clone(),
        );
        registry.register("throttled", "429 answers, by where: sign_in, token, email", throttled.clone());
        registry.register(
            "key_lifecycle_events",
            "Signing-key changes: published, activated, removed",
            key_lifecycle.clone(),
        );
        registry.register("outbox_deliveries", "Outbox attempts by kind and outcome", outbox_deliveries.clone());
        registry.register("database_errors", "Database errors by kind (unavailable, other)", database_errors.clone());
        registry.register("password_hash_waiting", "Password hashes waiting for a slot", password_hash_waiting.clone());
        registry.register(
            "password_hash_duration_seconds",
            "Time from asking for a password hash to its result, queueing included",
            password_hash_seconds.clone(),
        );
        registry.register(
            "database_connections",
            "Database pool connections, by state (in_use, idle)",
            database_connections.clone(),
        );
        registry.register("outbox_pending", "Outbox messages neither delivered nor given up", outbox_pending.clone());
        registry.register(
            "active_signing_key_age_seconds",
            "Age of each algorithm's active signing key",
            active_key_age_seconds.clone(),
        );
        Self {
            requests,
            request_duration,
            tokens_issued,
            security_events,
            throttled,
            key_lifecycle,
            outbox_deliveries,
            database_errors,
            password_hash_waiting,
            password_hash_seconds,
            database_connections,
            outbox_pending,
            active_key_age_seconds,
            registry,
        }
    }

    /// The text exposition (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Every metric name as exposed (prefix included; counters end in `_total`), for docs/tests.
pub const EXPOSED: [&str; 13] = [
    "latchkey_http_requests_total",
    "latchkey_http_request_duration_seconds",
    "latchkey_tokens_issued_total",
    "latchkey_security_events_total",
    "latchkey_throttled_total",
    "latchkey_key_lifecycle_events_total",
    "latchkey_outbox_deliveries_total",
    "latchkey_database_errors_total",
    "latchkey_password_hash_waiting",
    "latchkey_password_hash_duration_seconds",
    "latchkey_database_connections",
    "latchkey_outbox_pending",
    "latchkey_active_signing_key_age_seconds",
];

pub fn metrics() -> &'static Metrics {
    &METRICS
}

pub fn count_security_event(event: &str) {
    metrics().security_events.get_or_create(&EventLabels { event: event.to_string() }).inc();
}

pub fn count_throttled(kind: &str) {
    metrics().throttled.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
}

pub fn count_token(grant_type: &str, client_id: &str) {
    let labels = TokenLabels { grant_type: grant_type.to_string(), client_id: client_id.to_string() };
    metrics().tokens_issued.get_or_create(&labels).inc();
}

pub fn count_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = RouteLabels { method: method.to_string(), route: route.to_string(), status };
    let m = metrics();
    m.requests.get_or_create(&labels).inc();
    m.request_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
}

pub fn count_outbox(kind: &str, outcome: &str) {
    let labels = OutcomeLabels { kind: kind.to_string(), outcome: outcome.to_string() };
    metrics().outbox_deliveries.get_or_create(&labels).inc();
}

pub fn count_database_error(kind: &str) {
    metrics().database_errors.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
}

pub fn count_key_change(kind: &str) {
    metrics().key_lifecycle.get_or_create(&KindLabels { kind: kind.to_string() }).inc();
}

/// Sets the scrape-time gauges.
pub fn set_pool(in_use: i64, idle: i64) {
    let m = metrics();
    m.database_connections.get_or_create(&PoolLabels { state: "in_use".into() }).set(in_use);
    m.database_connections.get_or_create(&PoolLabels { state: "idle".into() }).set(idle);
}

pub fn set_outbox_pending(pending: i64) {
    metrics().outbox_pending.set(pending);
}

pub fn set_active_key_age(alg: &str, secs: f64) {
    metrics().active_key_age_seconds.get_or_create(&AlgLabels { alg: alg.to_string() }).set(secs);
}

/// Tracks one password hash from the request for a slot to its result.
pub struct HashTimer {
    started: std::time::Instant,
    waiting: bool,
}

impl HashTimer {
    pub fn start() -> Self {
        metrics().password_hash_waiting.inc();
        Self { started: std::time::Instant::now(), waiting: true }
    }
    /// The hash got its slot.
    pub fn running(&mut self) {
        if self.waiting {
            metrics().password_hash_waiting.dec();
            self.waiting = false;
        }
    }
}

impl Drop for HashTimer {
    fn drop(&mut self) {
        self.running();
        metrics().password_hash_seconds.observe(self.started.elapsed().as_secs_f64());
    }
}
