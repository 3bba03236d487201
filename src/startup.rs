//! Builds the application on any address (port 0 for tests) and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::authn::PasswordHasher;
use crate::config::Settings;
use crate::keys::{ensure_initial_keys, install_cached_signer, MasterKey};
use crate::mail::transport::Transport;
use crate::outbox::{RetryPolicy, Sender};
use crate::state::{unix_now, AppState};
use crate::store::Store;
use crate::web::templates::Templates;

/// Connects to the database and brings its schema up to date.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(
        settings.database_url.expose(),
        settings.database_max_connections,
        settings.database_acquire_timeout.0,
    )
    .await
    .context("cannot open the database (setting `database_url`)")?;
    store.migrate().await.context("cannot migrate the database")?;
    Ok(store)
}

/// The master key from the `master_key` setting, else from `master_key_file` (created on first
/// start with a fresh random key).
pub fn load_master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    if !settings.master_key.is_empty() {
        return Ok(MasterKey::from_setting(settings.master_key.expose())?);
    }
    let (key, created) = MasterKey::load_or_create(&settings.master_key_file)?;
    if created {
        tracing::warn!(
            path = %settings.master_key_file.display(),
            "created a new master key file; back it up: without it the signing keys can't be opened"
        );
    }
    Ok(key)
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// The outbox sender's ways out (SMTP or the log; HTTP for logout tokens), taken by `run`.
    transport: Option<(Transport, reqwest::Client)>,
    /// `metrics_bind`'s listener, when set (issue 13 item 4).
    metrics_listener: Option<TcpListener>,
}

impl Application {
    /// Builds the app and binds `settings.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {} (setting `bind`)", settings.bind))?;
        Self::build_on(settings, listener).await
    }

    /// Builds the app on a listener the caller bound (tests bind port 0 first, so the issuer
    /// can name the real port).
    pub async fn build_on(settings: Settings, listener: std::net::TcpListener) -> anyhow::Result<Self> {
        install_cached_signer();
        let store = open_store(&settings).await?;
        let master_key = load_master_key(&settings)?;
        let keys =
            ensure_initial_keys(&store, &master_key, unix_now()).await.context("cannot load the signing keys")?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let password_settings = settings.password_settings();
        // Cheap: nothing is hashed at start (issue 14: start to ready, idle memory).
        let passwords = PasswordHasher::new(&password_settings)?;
        let templates = Templates::load(settings.templates_dir.clone()).context("cannot load the page templates")?;
        crate::mail::compose::check_templates(&templates).context("cannot use the email templates")?;
        let transport =
            Transport::from_url(settings.smtp_url.expose()).map_err(|e| anyhow::anyhow!("setting `smtp_url`: {e}"))?;
        if transport.is_log() {
            tracing::warn!(
                "smtp_url is not set: emails are written to the log instead of being sent (development only; docs/operations.md)"
            );
        }
        let jwks_cache = crate::endpoints::client_keys::JwksCache::new().context("cannot build the JWKS client")?;
        let state = AppState::new(settings, store, master_key, keys, passwords, templates, jwks_cache);
        let router = crate::http::router::build(state.clone());
        let http = crate::outbox::backchannel::http_client().context("cannot build the back-channel logout client")?;
        let metrics_listener = match state.settings().metrics_bind {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (setting `metrics_bind`)"))?;
                listener.set_nonblocking(true)?;
                Some(TcpListener::from_std(listener)?)
            }
            None => None,
        };
        Ok(Self { listener, router, state, transport: Some((transport, http)), metrics_listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then drains at once (as on SIGINT): readiness turns
    /// false, the listener closes, and in-flight requests get `shutdown_grace` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        self.run_until(async move {
            shutdown.await;
            Stop::Now
        })
        .await
    }

    /// Serves until `stop` resolves. Issue 9 item 8: readiness turns false at once; on
    /// `Stop::AfterDelay` (SIGTERM) the server keeps accepting and serving for `shutdown_delay`
    /// so load balancers see `/readyz` fail and move traffic away (a second SIGTERM or SIGINT
    /// cuts it short); then the listener closes and in-flight requests get `shutdown_grace` to
    /// finish before the remaining connections close.
    pub async fn run_until(mut self, stop: impl Future<Output = Stop> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let settings = state.settings();
        let delay = settings.shutdown_delay.0;
        let limits = crate::http::server::Limits {
            header_read_timeout: settings.header_read_timeout.0,
            idle_timeout: settings.idle_timeout.0,
            max_connections: settings.max_connections,
            grace: settings.shutdown_grace.0,
        };
        warn_if_file_limit_is_low(settings);
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let key_lifecycle = tokio::spawn(key_lifecycle(self.state.clone()));
        let key_reload = tokio::spawn(key_reload(self.state.clone()));
        let outbox = self
            .transport
            .take()
            .map(|(transport, http)| tokio::spawn(outbox_sender(self.state.clone(), transport, http)));
        let metrics = self.metrics_listener.take().map(|listener| {
            let router = crate::http::router::metrics_only(self.state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let stop_accepting = {
            let state = state.clone();
            async move {
                let how = stop.await;
                state.begin_shutdown();
                if how == Stop::AfterDelay && !delay.is_zero() {
                    tracing::info!(
                        delay_secs = delay.as_secs(),
                        "SIGTERM: /readyz now answers 503; serving on for shutdown_delay so load balancers move traffic away"
                    );
                    // A second signal (Ctrl-C after SIGTERM, say) cuts the delay short.
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown_signal() => tracing::info!("second signal: skipping the rest of shutdown_delay"),
                    }
                }
                tracing::info!("shutting down: no new connections; finishing in-flight requests");
            }
        };
        let result = crate::http::server::serve(self.listener, self.router, state, limits, stop_accepting).await;
        housekeeping.abort();
        key_lifecycle.abort();
        key_reload.abort();
        if let Some(outbox) = outbox {
            outbox.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.state.store().close().await;
        result
    }
}

/// How a running server was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM (an orchestrator): readiness off, serve on for `shutdown_delay`, then drain.
    AfterDelay,
    /// SIGINT (Ctrl-C at a terminal) or a test: drain at once.
    Now,
}

/// Open connections, the database pool and a few files each take a file descriptor: warn at
/// start when `max_connections` cannot fit under the soft `ulimit -n` (issue 9 item 2 saw
/// `Too many open files` take `/healthz` down). Linux only; elsewhere nothing is checked.
fn warn_if_file_limit_is_low(settings: &Settings) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    let Some(soft) = soft else { return };
    let reserve = crate::http::server::HEALTH_RESERVE;
    let needed = settings.max_connections + reserve + settings.database_max_connections as usize + 64;
    if soft < needed {
        tracing::warn!(
            open_file_limit = soft,
            max_connections = settings.max_connections,
            "the open-file limit (ulimit -n) is below max_connections + {reserve} reserve + the database pool + 64; \
             lower `max_connections` or raise the limit, or accepts will fail with `Too many open files`"
        );
    }
}

/// How often expired codes, tokens and sessions are deleted.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired rows now and then. Every replica runs it; the DELETEs are idempotent, so
/// replicas running it at once only repeat each other's work.
async fn housekeeping(state: AppState) {
    use crate::store::GrantStore;
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        state.sign_in_failures().forget_idle();
        state.client_auth_failures().forget_idle();
        match state.store().delete_expired(unix_now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "deleted expired codes, tokens and sessions"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
    }
}

/// The outbox's sender on this replica (email, issue 12 item 1; back-channel logout, issue 13
/// item 6).
async fn outbox_sender(state: AppState, transport: Transport, http: reqwest::Client) {
    let settings = state.settings();
    let Ok(from) = settings.email_from.parse::<lettre::message::Mailbox>() else {
        // validated() refused such a value at start; nothing to send from.
        tracing::error!("email_from is not an address: the outbox is not delivered");
        return;
    };
    let policy = RetryPolicy {
        base_secs: settings.email_retry_base.as_secs(),
        give_up_after_secs: settings.email_give_up_after.as_secs(),
        poll: settings.email_poll_interval.0,
    };
    let sender = Sender { state: state.clone(), transport, from, policy, http };
    sender.run().await;
}

/// Every `key_reload_interval`: one lifecycle step (publish, activate, remove; the store's
/// key lock lets one replica perform each change), then a reload so this replica sees its own
/// change at once.
async fn key_lifecycle(state: AppState) {
    let settings = state.settings();
    let policy = settings.key_lifecycle();
    let mut tick = tokio::time::interval(settings.key_reload_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match crate::keys::rotation::step(state.store(), state.master_key(), &policy, unix_now()).await {
            Ok(changes) => {
                for change in &changes {
                    crate::metrics::count_key_change(match change {
                        crate::keys::lifecycle::KeyChange::Publish(_) => "published",
                        crate::keys::lifecycle::KeyChange::Activate { .. } => "activated",
                        crate::keys::lifecycle::KeyChange::Remove { .. } => "removed",
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "key lifecycle step failed; retrying at the next interval"),
        }
        reload(&state).await;
    }
}

/// Every `key_reload_interval`, on its own timer: a step that generates a key (RSA takes a
/// while) must not delay the reload, because publish-ahead counts on every replica publishing
/// a new key within one interval (docs/keys.md).
async fn key_reload(state: AppState) {
    let mut tick = tokio::time::interval(state.settings().key_reload_interval.0);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reload(&state).await;
    }
}

async fn reload(state: &AppState) {
    match state.reload_keys().await {
        Ok(true) => tracing::info!("signing keys reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "key reload failed; keeping the current keys"),
    }
}

/// Resolves on SIGTERM (`Stop::AfterDelay`) or SIGINT (`Stop::Now`: a person at a terminal
/// wants it stopped, not a load balancer to notice).
pub async fn shutdown_signal() -> Stop {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => Stop::Now,
        _ = terminate => Stop::AfterDelay,
    }
}
