//! Builds the application on any address (port 0 for tests) and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::authn::PasswordHasher;
use crate::config::Settings;
use crate::keys::{ensure_initial_keys, install_cached_signer, MasterKey};
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
        // Building the hasher computes the dummy hash once: off the runtime.
        let passwords = tokio::task::spawn_blocking(move || PasswordHasher::new(&password_settings)).await??;
        let templates = Templates::load(settings.templates_dir.clone()).context("cannot load the page templates")?;
        let state = AppState::new(settings, store, master_key, keys, passwords, templates);
        let router = crate::http::router::build(state.clone());
        Ok(Self { listener, router, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves; then readiness turns false, the listener closes, and
    /// in-flight requests get `shutdown_grace` to finish before the future returns anyway.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let grace = state.settings().shutdown_grace.0;
        let draining = Arc::new(Notify::new());
        let signal_draining = draining.clone();
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let key_lifecycle = tokio::spawn(key_lifecycle(self.state.clone()));
        let key_reload = tokio::spawn(key_reload(self.state.clone()));
        // The peer address is the client IP for per-IP throttling (http::client_ip).
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, service).with_graceful_shutdown(async move {
            shutdown.await;
            state.begin_shutdown();
            tracing::info!("shutting down: finishing in-flight requests");
            signal_draining.notify_one();
        });
        let result = tokio::select! {
            result = server => result,
            _ = async { draining.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
                Ok(())
            }
        };
        housekeeping.abort();
        key_lifecycle.abort();
        key_reload.abort();
        self.state.store().close().await;
        result
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
        if let Err(e) = crate::keys::rotation::step(state.store(), state.master_key(), &policy, unix_now()).await {
            tracing::warn!(error = %e, "key lifecycle step failed; retrying at the next interval");
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

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
        _ = interrupt => {},
        _ = terminate => {},
    }
}
