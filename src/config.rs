//! Typed settings: defaults, then an optional TOML file, then `LATCHKEY_*` environment variables.
//!
//! Every setting is validated once at start; an error names the setting (as written in the TOML
//! file and, upper-cased with the `LATCHKEY_` prefix, as an environment variable) so an operator
//! can fix it without reading code. Every key here is documented in `docs/configuration.md`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::domain::SigningAlg;

/// A string that never prints: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    // Serialised only to seed figment's defaults; a secret is never written out with its value.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A duration written the human way (`90s`, `15m`, `12h`, `30d`) or as a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
    pub fn as_secs(&self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(secs) => Ok(Self(Duration::from_secs(secs))),
            Raw::Text(text) => {
                let text = text.trim();
                if let Ok(secs) = text.parse::<u64>() {
                    return Ok(Self(Duration::from_secs(secs)));
                }
                humantime::parse_duration(text).map(Self).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not a duration ({e}); write it like 90s, 15m, 12h or 30d"
                    ))
                })
            }
        }
    }
}

/// Who may create an account on the hosted pages (issue 12 item 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Accounts come from an operator (`latchkey user create`, `latchkey user invite`).
    #[default]
    Closed,
    /// Anyone may sign up at `/register`.
    Open,
    /// Only through invitations (`latchkey user invite`).
    Invite,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// All settings. Field names are the TOML keys; `LATCHKEY_<FIELD>` overrides each one.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The issuer identifier (OpenID Connect Discovery §3, RFC 8414 §2): the public base URL.
    pub issuer: String,
    /// Address and port to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// `sqlite:FILE` (created on first start) or `postgres://…`.
    pub database_url: Secret,
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before answering 503.
    pub database_acquire_timeout: HumanDuration,
    /// The 256-bit master key, base64url or hex, that seals private signing keys at rest.
    pub master_key: Secret,
    /// Where the master key is read from (and created on first start) when `master_key` is unset.
    pub master_key_file: PathBuf,
    pub access_token_ttl: HumanDuration,
    /// Algorithm of access tokens: ES256 (default) or RS256.
    pub access_token_alg: SigningAlg,
    /// `aud` of access tokens for clients that registered no audience of their own.
    pub default_audience: String,
    /// How long a replica may answer from its in-memory copy of a client: the longest time a
    /// disabled client or a rotated secret keeps working on a replica.
    pub client_cache_ttl: HumanDuration,
    /// `Cache-Control: max-age` of the JWKS and discovery documents.
    pub jwks_max_age: HumanDuration,
    /// How long each signing key signs before its successor takes over (docs/keys.md).
    pub key_rotation_interval: HumanDuration,
    /// How long a new key is published before it signs; at least `jwks_max_age` plus
    /// `key_reload_interval`, so every resource server honouring the cache headers has it.
    pub key_publish_ahead: HumanDuration,
    /// How long a retired key stays published; at least the longest token lifetime plus
    /// `key_reload_interval` plus one minute of clock-skew leeway.
    pub key_retention: HumanDuration,
    /// How often each replica runs the key lifecycle step and reloads the key set from the
    /// database: the longest a replica signs with a retired key or serves a revoked one.
    pub key_reload_interval: HumanDuration,
    /// Lifetime of ID tokens.
    pub id_token_ttl: HumanDuration,
    /// Lifetime of authorization codes (RFC 6749 §4.1.2 recommends at most 10 minutes;
    /// shared/security.md asks for at most 60 s).
    pub authorization_code_ttl: HumanDuration,
    /// A refresh token unused for this long expires.
    pub refresh_token_idle_ttl: HumanDuration,
    /// No refresh token of a grant outlives this, however often it is rotated.
    pub refresh_token_absolute_ttl: HumanDuration,
    /// After a refresh token is rotated, a second presentation of it within this window, while
    /// its successor is unused, is answered with that same successor instead of revoking the
    /// family (two tabs refreshing at once; issue 11 item 4). 0 turns it off.
    pub refresh_token_reuse_grace: HumanDuration,
    /// A browser session ends this long after it was last written (sign-in or an answered
    /// page); reads alone do not extend it, so they cost no write.
    pub session_idle_ttl: HumanDuration,
    /// argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    pub password_hash_memory_kib: u32,
    /// argon2id passes.
    pub password_hash_iterations: u32,
    /// argon2id lanes.
    pub password_hash_parallelism: u32,
    /// Password hashes computed at once; the rest queue. Default: the number of CPUs.
    pub password_hash_concurrency: usize,
    /// Shortest accepted password, in characters.
    pub password_min_length: usize,
    /// Lowest zxcvbn strength score (0–4) a new password must reach; 3 refuses common,
    /// breached-list and keyboard-pattern passwords.
    pub password_min_score: u8,
    /// Every user must sign in with a second factor; users without one enrol at next sign-in.
    pub mfa_required: bool,
    /// Issuer label shown in authenticator apps for TOTP enrolment.
    pub totp_issuer: String,
    /// Failed attempts per account (password per email, codes per user) before it is locked.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked.
    pub lockout_duration: HumanDuration,
    /// Failures older than this are forgotten.
    pub failure_window: HumanDuration,
    /// After this many failures in the window, each further failed attempt is answered after
    /// a delay that doubles, from `failure_delay` up to `failure_delay_max`.
    pub failure_delay_after: u32,
    pub failure_delay: HumanDuration,
    pub failure_delay_max: HumanDuration,
    /// Failed attempts one client IP may make in a burst (sign-in, codes, token endpoint)…
    pub ip_failure_burst: u32,
    /// …and per minute after that; beyond it, 429 with Retry-After.
    pub ip_failures_per_minute: u32,
    /// Proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` is believed; from anyone
    /// else the header is ignored and the peer address is the client IP.
    pub trusted_proxies: Vec<String>,
    /// `trusted_proxies`, parsed by `validated()` (what it holds before that is ignored).
    #[serde(skip)]
    pub trusted_proxy_nets: Vec<ipnet::IpNet>,
    /// A directory whose templates replace the built-in hosted pages of the same name.
    pub templates_dir: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a client has to send a request's complete headers, counted from the accept (first
    /// request) or from the first byte of the next request on a kept-alive connection; then the
    /// connection is closed (issue 9 item 2: slow and silent sockets).
    pub header_read_timeout: HumanDuration,
    /// How long a kept-alive connection may wait for its next request. Keep it longer than the
    /// idle timeout of the load balancer in front (AWS ALB: 60 s), so the balancer closes first.
    pub idle_timeout: HumanDuration,
    /// Most connections served at once; past it a small reserve answers only `/healthz` and
    /// `/readyz` (others get 503), and beyond that new connections wait. Keep it well below the
    /// process's open-file limit (`ulimit -n`).
    pub max_connections: usize,
    /// After SIGTERM: how long the server keeps accepting and serving, with `/readyz` already
    /// 503, so load balancers and Kubernetes endpoints stop sending it traffic first. SIGINT
    /// skips it.
    pub shutdown_delay: HumanDuration,
    /// Once the listener has closed: how long in-flight requests get to finish before the
    /// remaining connections are closed and the process exits anyway.
    pub shutdown_grace: HumanDuration,
    /// Where email goes, in lettre's URL form: `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (TLS), `smtp://127.0.0.1:2525` (a local relay,
    /// no TLS). Unset: messages are written to the log (development only).
    pub smtp_url: Secret,
    /// The `From` of every message: `Latchkey <no-reply@example.com>` or a bare address.
    pub email_from: String,
    /// `closed` (default), `open` (a sign-up page) or `invite` (invitations only).
    pub registration: Registration,
    /// Self-registered accounts can't sign in until their address is verified.
    pub require_verified_email: bool,
    /// Lifetime of an email-verification link (sign-up, account page, email change).
    pub email_verification_ttl: HumanDuration,
    /// Lifetime of a password-reset link.
    pub password_reset_ttl: HumanDuration,
    /// Lifetime of an invitation link.
    pub invitation_ttl: HumanDuration,
    /// Messages one client address may cause in a burst (sign-up, reset, resend)…
    pub email_ip_burst: u32,
    /// …and per hour after that; beyond it, 429 with Retry-After.
    pub email_ip_per_hour: u32,
    /// Messages one address may be sent per hour by requests of the public pages (sign-up,
    /// reset, resend): no mail-bombing of one inbox from many addresses. Beyond it, the page
    /// answers as usual and nothing is sent.
    pub email_per_address_per_hour: u32,
    /// The first retry of an undelivered message waits this long; each further one twice as
    /// long, up to 15 minutes.
    pub email_retry_base: HumanDuration,
    /// A message not delivered within this long is given up (and logged).
    pub email_give_up_after: HumanDuration,
    /// How often each replica looks for messages written elsewhere (other replicas, the CLI)
    /// and for retries that are due; its own messages go at once.
    pub email_poll_interval: HumanDuration,
    /// Serve `/metrics` on this address instead of the main listener (so it needn't be
    /// public); unset: on the main listener.
    pub metrics_bind: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `latchkey=debug,tower_http=info`.
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: "http://localhost:8080".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: Secret::new("sqlite:latchkey.db"),
            database_max_connections: 16,
            database_acquire_timeout: HumanDuration::secs(5),
            master_key: Secret::default(),
            master_key_file: PathBuf::from("keys/master.key"),
            access_token_ttl: HumanDuration::secs(15 * 60),
            access_token_alg: SigningAlg::Es256,
            default_audience: String::new(),
            client_cache_ttl: HumanDuration::secs(10),
            jwks_max_age: HumanDuration::secs(300),
            key_rotation_interval: HumanDuration::secs(30 * 86_400),
            key_publish_ahead: HumanDuration::secs(86_400),
            key_retention: HumanDuration::secs(86_400),
            key_reload_interval: HumanDuration::secs(10),
            id_token_ttl: HumanDuration::secs(15 * 60),
            authorization_code_ttl: HumanDuration::secs(60),
            refresh_token_idle_ttl: HumanDuration::secs(14 * 86400),
            refresh_token_absolute_ttl: HumanDuration::secs(90 * 86400),
            refresh_token_reuse_grace: HumanDuration::secs(10),
            session_idle_ttl: HumanDuration::secs(8 * 3600),
            password_hash_memory_kib: 19 * 1024,
            password_hash_iterations: 2,
            password_hash_parallelism: 1,
            password_hash_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            password_min_length: 8,
            password_min_score: 3,
            mfa_required: false,
            totp_issuer: "Latchkey".into(),
            lockout_threshold: 10,
            lockout_duration: HumanDuration::secs(15 * 60),
            failure_window: HumanDuration::secs(15 * 60),
            failure_delay_after: 3,
            failure_delay: HumanDuration::secs(1),
            failure_delay_max: HumanDuration::secs(8),
            ip_failure_burst: 20,
            ip_failures_per_minute: 30,
            trusted_proxies: Vec::new(),
            trusted_proxy_nets: Vec::new(),
            templates_dir: None,
            max_body_bytes: 64 * 1024,
            header_read_timeout: HumanDuration::secs(10),
            idle_timeout: HumanDuration::secs(75),
            max_connections: 512,
            shutdown_delay: HumanDuration::secs(5),
            shutdown_grace: HumanDuration::secs(30),
            smtp_url: Secret::default(),
            email_from: "Latchkey <no-reply@localhost>".into(),
            registration: Registration::Closed,
            require_verified_email: true,
            email_verification_ttl: HumanDuration::secs(24 * 3600),
            password_reset_ttl: HumanDuration::secs(30 * 60),
            invitation_ttl: HumanDuration::secs(7 * 86_400),
            email_ip_burst: 5,
            email_ip_per_hour: 20,
            email_per_address_per_hour: 5,
            email_retry_base: HumanDuration::secs(10),
            email_give_up_after: HumanDuration::secs(24 * 3600),
            email_poll_interval: HumanDuration::secs(5),
            metrics_bind: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

/// Clock difference between Latchkey and resource servers that a retired key's retention
/// allows for.
pub const CLOCK_SKEW_LEEWAY_SECS: i64 = 60;

/// A setting that failed validation; the message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn invalid(key: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("setting `{key}` (env LATCHKEY_{}) {why}", key.to_ascii_uppercase()))
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("the configuration file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        // LATCHKEY_CONFIG names the file, it is not a setting.
        figment = figment.merge(Env::prefixed("LATCHKEY_").ignore(&["CONFIG"]));
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                ConfigError(e.to_string())
            } else {
                invalid(&key, format!("is invalid: {}", e.kind))
            }
        })?;
        settings.validated()
    }

    /// Checks values that parse but make no sense, and fills derived defaults.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| invalid("issuer", format!("is not a URL: {e}")))?;
        // OpenID Connect Discovery §3 / RFC 8414 §2: https, no query, no fragment. Plain http is
        // allowed only for a loopback host, so a development setup works and a real one can't leak.
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(invalid("issuer", "must not have a query or fragment"));
        }
        if issuer.cannot_be_a_base() || issuer.host_str().is_none() {
            return Err(invalid("issuer", "must be an absolute https URL"));
        }
        match issuer.scheme() {
            "https" => {}
            "http" if crate::domain::is_loopback_host(&issuer) => {}
            _ => {
                return Err(invalid(
                    "issuer",
                    "must use https (plain http is allowed only for localhost and loopback addresses)",
                ))
            }
        }
        // The issuer is compared as a string by relying parties; keep it exactly as written but
        // without a trailing slash so `{issuer}/token` never has a double slash.
        self.issuer = self.issuer.trim_end_matches('/').to_string();
        if self.default_audience.trim().is_empty() {
            self.default_audience = self.issuer.clone();
        }
        if self.database_max_connections == 0 {
            return Err(invalid("database_max_connections", "must be at least 1"));
        }
        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(invalid(
                "database_url",
                "must start with sqlite: or postgres:// (the value is not shown: it may hold a password)",
            ));
        }
        let ttl = self.access_token_ttl.0.as_secs();
        if !(60..=24 * 3600).contains(&ttl) {
            return Err(invalid("access_token_ttl", "must be between 1m and 24h"));
        }
        if !(60..=24 * 3600).contains(&self.id_token_ttl.0.as_secs()) {
            return Err(invalid("id_token_ttl", "must be between 1m and 24h"));
        }
        if !(1..=60).contains(&self.authorization_code_ttl.0.as_secs()) {
            return Err(invalid("authorization_code_ttl", "must be between 1s and 60s"));
        }
        if self.refresh_token_idle_ttl.0.as_secs() < 60 {
            return Err(invalid("refresh_token_idle_ttl", "must be at least 1m"));
        }
        if self.refresh_token_absolute_ttl.0 < self.refresh_token_idle_ttl.0 {
            return Err(invalid("refresh_token_absolute_ttl", "must be at least refresh_token_idle_ttl"));
        }
        // Issue 11 item 4: the window only has to cover requests already in flight when the
        // rotation committed (two tabs, a retried request). Each second longer is a second in
        // which a thief who replays a just-rotated token gets the live successor too, and the
        // successor is kept (sealed) that long.
        if self.refresh_token_reuse_grace.as_secs() > 60 {
            return Err(invalid("refresh_token_reuse_grace", "must be at most 60s (0 turns it off)"));
        }
        if self.session_idle_ttl.0.as_secs() < 60 {
            return Err(invalid("session_idle_ttl", "must be at least 1m"));
        }
        if argon2::Params::new(
            self.password_hash_memory_kib,
            self.password_hash_iterations,
            self.password_hash_parallelism,
            None,
        )
        .is_err()
        {
            return Err(invalid(
                "password_hash_memory_kib",
                "with password_hash_iterations and password_hash_parallelism is not a valid argon2id cost (memory ≥ 8 × parallelism KiB, iterations ≥ 1)",
            ));
        }
        if self.password_hash_concurrency == 0 {
            return Err(invalid("password_hash_concurrency", "must be at least 1"));
        }
        if !(8..=128).contains(&self.password_min_length) {
            return Err(invalid("password_min_length", "must be between 8 and 128"));
        }
        if self.password_min_score > 4 {
            return Err(invalid("password_min_score", "must be between 0 and 4"));
        }
        if self.totp_issuer.trim().is_empty() || self.totp_issuer.contains(':') || self.totp_issuer.len() > 64 {
            return Err(invalid("totp_issuer", "must be 1 to 64 characters without `:`"));
        }
        if !(1..=1000).contains(&self.lockout_threshold) {
            return Err(invalid("lockout_threshold", "must be between 1 and 1000"));
        }
        // Housekeeping forgets counters untouched for a day, so neither may be longer.
        for (key, value) in [("lockout_duration", self.lockout_duration), ("failure_window", self.failure_window)] {
            if !(1..=86_400).contains(&value.0.as_secs()) {
                return Err(invalid(key, "must be between 1s and 24h"));
            }
        }
        if self.failure_delay_max.0 < self.failure_delay.0 || self.failure_delay_max.0.as_secs() > 60 {
            return Err(invalid("failure_delay_max", "must be at least failure_delay and at most 60s"));
        }
        if self.ip_failure_burst == 0 || self.ip_failures_per_minute == 0 {
            return Err(invalid("ip_failure_burst", "and ip_failures_per_minute must be at least 1"));
        }
        self.trusted_proxy_nets = self
            .trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| invalid("trusted_proxies", format!("`{entry}` is not an IP address or CIDR block")))
            })
            .collect::<Result<_, _>>()?;
        if let Some(dir) = &self.templates_dir {
            if !dir.is_dir() {
                return Err(invalid("templates_dir", format!("{} is not a directory", dir.display())));
            }
        }
        if self.client_cache_ttl.0.as_secs() > 300 {
            return Err(invalid("client_cache_ttl", "must be at most 5m"));
        }
        if self.jwks_max_age.0.as_secs() > 24 * 3600 {
            return Err(invalid("jwks_max_age", "must be at most 24h"));
        }
        self.validate_key_lifecycle()?;
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(invalid("max_body_bytes", "must be between 1024 and 16777216"));
        }
        self.validate_connections()?;
        self.validate_email()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(invalid("log_level", "is not a valid filter such as `info` or `latchkey=debug`"));
        }
        Ok(self)
    }

    /// Connection limits and shutdown timing (issue 9 items 2 and 8).
    fn validate_email(&self) -> Result<(), ConfigError> {
        if !self.smtp_url.is_empty() {
            let url = Url::parse(self.smtp_url.expose())
                .map_err(|_| invalid("smtp_url", "is not a URL (the value is not shown: it may hold a password)"))?;
            if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
                return Err(invalid("smtp_url", "must look like smtp://host:587?tls=required or smtps://host:465"));
            }
        }
        if self.email_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "email_from",
                "must be an address, optionally with a name: `Latchkey <no-reply@example.com>`",
            ));
        }
        for (key, value, min, max) in [
            ("email_verification_ttl", self.email_verification_ttl, 300, 30 * 86_400),
            ("password_reset_ttl", self.password_reset_ttl, 60, 86_400),
            ("invitation_ttl", self.invitation_ttl, 3600, 90 * 86_400),
        ] {
            if !(min..=max).contains(&value.as_secs()) {
                return Err(invalid(
                    key,
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(Duration::from_secs(min.unsigned_abs())),
                        humantime::format_duration(Duration::from_secs(max.unsigned_abs()))
                    ),
                ));
            }
        }
        if self.email_ip_burst == 0 || self.email_ip_per_hour == 0 || self.email_per_address_per_hour == 0 {
            return Err(invalid(
                "email_ip_burst",
                "email_ip_per_hour and email_per_address_per_hour must be at least 1",
            ));
        }
        if !(1..=3600).contains(&self.email_retry_base.as_secs()) {
            return Err(invalid("email_retry_base", "must be between 1s and 1h"));
        }
        if !(60..=30 * 86_400).contains(&self.email_give_up_after.as_secs()) {
            return Err(invalid("email_give_up_after", "must be between 1m and 30d"));
        }
        if !(1..=300).contains(&self.email_poll_interval.as_secs()) {
            return Err(invalid("email_poll_interval", "must be between 1s and 5m"));
        }
        Ok(())
    }

    fn validate_connections(&self) -> Result<(), ConfigError> {
        if !(1..=300).contains(&self.header_read_timeout.as_secs()) {
            return Err(invalid("header_read_timeout", "must be between 1s and 5m"));
        }
        if !(1..=3600).contains(&self.idle_timeout.as_secs()) {
            return Err(invalid("idle_timeout", "must be between 1s and 1h"));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(invalid("max_connections", "must be between 1 and 1000000"));
        }
        if self.shutdown_delay.as_secs() > 300 {
            return Err(invalid("shutdown_delay", "must be at most 5m"));
        }
        if !(1..=3600).contains(&self.shutdown_grace.as_secs()) {
            return Err(invalid("shutdown_grace", "must be between 1s and 1h"));
        }
        Ok(())
    }

    /// The key lifecycle's safety rules (docs/keys.md): nobody sees a token signed with a key
    /// they could not have fetched, and no key leaves while a token it signed is alive.
    fn validate_key_lifecycle(&self) -> Result<(), ConfigError> {
        let reload = self.key_reload_interval.as_secs();
        if !(1..=300).contains(&reload) {
            return Err(invalid("key_reload_interval", "must be between 1s and 5m"));
        }
        let ahead = self.key_publish_ahead.as_secs();
        let min_ahead = self.jwks_max_age.as_secs() + reload;
        if ahead < min_ahead {
            return Err(invalid(
                "key_publish_ahead",
                format!("must be at least jwks_max_age + key_reload_interval ({min_ahead}s)"),
            ));
        }
        if self.key_rotation_interval.as_secs() <= ahead {
            return Err(invalid("key_rotation_interval", "must be longer than key_publish_ahead"));
        }
        let longest_token = self.access_token_ttl.as_secs().max(self.id_token_ttl.as_secs());
        let min_retention = longest_token + reload + CLOCK_SKEW_LEEWAY_SECS;
        if self.key_retention.as_secs() < min_retention {
            return Err(invalid(
                "key_retention",
                format!(
                    "must be at least the longest token lifetime + key_reload_interval + {CLOCK_SKEW_LEEWAY_SECS}s ({min_retention}s)"
                ),
            ));
        }
        Ok(())
    }

    pub fn key_lifecycle(&self) -> crate::keys::lifecycle::LifecyclePolicy {
        crate::keys::lifecycle::LifecyclePolicy {
            rotation_interval: self.key_rotation_interval.as_secs(),
            publish_ahead: self.key_publish_ahead.as_secs(),
            retention: self.key_retention.as_secs(),
        }
    }

    pub fn trusted_proxy_nets(&self) -> &[ipnet::IpNet] {
        &self.trusted_proxy_nets
    }

    pub fn is_postgres(&self) -> bool {
        !self.database_url.expose().starts_with("sqlite:")
    }
}

impl Settings {
    pub fn password_settings(&self) -> crate::authn::PasswordSettings {
        crate::authn::PasswordSettings {
            memory_kib: self.password_hash_memory_kib,
            iterations: self.password_hash_iterations,
            parallelism: self.password_hash_parallelism,
            min_length: self.password_min_length,
            min_score: self.password_min_score,
            max_concurrent: self.password_hash_concurrency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        let d: HumanDuration = serde_json::from_str("\"90s\"").unwrap();
        assert_eq!(d.0.as_secs(), 90);
        let d: HumanDuration = serde_json::from_str("\"30d\"").unwrap();
        assert_eq!(d.0.as_secs(), 30 * 86400);
        let d: HumanDuration = serde_json::from_str("120").unwrap();
        assert_eq!(d.0.as_secs(), 120);
        assert!(serde_json::from_str::<HumanDuration>("\"soon\"").is_err());
    }

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        let mut s = Settings { issuer: "http://id.example.com".into(), ..Settings::default() };
        let err = s.clone().validated().unwrap_err().to_string();
        assert!(err.contains("`issuer`"), "{err}");
        s.issuer = "https://id.example.com/".into();
        assert_eq!(s.clone().validated().unwrap().issuer, "https://id.example.com");
        s.issuer = "http://127.0.0.1:9000".into();
        assert!(s.clone().validated().is_ok());
        s.issuer = "https://id.example.com/?x=1".into();
        assert!(s.validated().is_err());
    }

    #[test]
    fn key_lifecycle_settings_keep_tokens_verifiable() {
        let ok = Settings::default().validated().unwrap();
        assert_eq!(ok.key_lifecycle().publish_ahead, 86_400);
        // A key must be published for at least the JWKS max-age plus one reload interval…
        let s = Settings {
            jwks_max_age: HumanDuration::secs(600),
            key_publish_ahead: HumanDuration::secs(605),
            ..Settings::default()
        };
        assert!(s.validated().unwrap_err().to_string().contains("`key_publish_ahead`"));
        // …kept for the longest token lifetime plus reload and leeway after it retires…
        let s = Settings { key_retention: HumanDuration::secs(15 * 60), ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`key_retention`"));
        // …and rotated less often than it is published ahead.
        let s = Settings { key_rotation_interval: HumanDuration::secs(86_400), ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`key_rotation_interval`"));
    }

    #[test]
    fn email_settings_are_checked_and_errors_hide_the_smtp_password() {
        let with = |f: &dyn Fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s.validated()
        };
        assert!(with(&|s| s.smtp_url = Secret::new("smtps://user:pass@smtp.example.com:465")).is_ok());
        let err = with(&|s| s.smtp_url = Secret::new("imap://user:hunter2@mail.example.com")).unwrap_err().to_string();
        assert!(err.contains("`smtp_url`") && !err.contains("hunter2"), "{err}");
        let err = with(&|s| s.smtp_url = Secret::new("not a url hunter2")).unwrap_err().to_string();
        assert!(err.contains("`smtp_url`") && !err.contains("hunter2"), "{err}");
        let err = with(&|s| s.email_from = "no address here".into()).unwrap_err().to_string();
        assert!(err.contains("`email_from`"), "{err}");
        assert!(with(&|s| s.email_from = "no-reply@example.com".into()).is_ok());
        let err = with(&|s| s.password_reset_ttl = HumanDuration::secs(2 * 86_400)).unwrap_err().to_string();
        assert!(err.contains("`password_reset_ttl`") && err.contains("between 1m and 1day"), "{err}");
        let err = with(&|s| s.email_per_address_per_hour = 0).unwrap_err().to_string();
        assert!(err.contains("email_per_address_per_hour"), "{err}");
        let registration: Registration = serde_json::from_str("\"invite\"").unwrap();
        assert_eq!(registration, Registration::Invite);
        assert!(serde_json::from_str::<Registration>("\"anyone\"").is_err());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_blocks() {
        let s = Settings { trusted_proxies: vec!["10.0.0.0/8".into(), "192.0.2.7".into()], ..Settings::default() };
        let nets = s.validated().unwrap().trusted_proxy_nets;
        assert_eq!(nets.len(), 2);
        assert!(nets[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
        let bad = Settings { trusted_proxies: vec!["proxy.example".into()], ..Settings::default() };
        assert!(bad.validated().unwrap_err().to_string().contains("`trusted_proxies`"));
    }

    #[test]
    fn connection_limits_and_shutdown_timing_are_bounded() {
        let ok = Settings::default().validated().unwrap();
        assert_eq!((ok.header_read_timeout.as_secs(), ok.max_connections), (10, 512));
        let s = Settings { header_read_timeout: HumanDuration::secs(0), ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`header_read_timeout`"));
        let s = Settings { max_connections: 0, ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`max_connections`"));
        let s = Settings { shutdown_delay: HumanDuration::secs(3600), ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`shutdown_delay`"));
        // Zero delay is allowed: no load balancer in front.
        assert!(Settings { shutdown_delay: HumanDuration::secs(0), ..Settings::default() }.validated().is_ok());
    }

    #[test]
    fn the_refresh_reuse_grace_is_short() {
        assert_eq!(Settings::default().validated().unwrap().refresh_token_reuse_grace.as_secs(), 10);
        assert!(Settings { refresh_token_reuse_grace: HumanDuration::secs(0), ..Settings::default() }
            .validated()
            .is_ok());
        let s = Settings { refresh_token_reuse_grace: HumanDuration::secs(61), ..Settings::default() };
        assert!(s.validated().unwrap_err().to_string().contains("`refresh_token_reuse_grace`"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings { master_key: Secret::new("supersecret"), ..Settings::default() };
        assert!(!format!("{s:?}").contains("supersecret"));
    }
}
