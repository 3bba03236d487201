//! Shared application state: cheap to clone, one per process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::accounts::{AccountSettings, Letters};
use crate::endpoints::client_keys::{ClientAuthenticator, JwksCache};

use crate::authn::{ClientAuthFailureLimiter, IpFailureLimiter, PasswordHasher, ThrottlePolicy};
use crate::config::Settings;
use crate::domain::SigningAlg;
use crate::keys::{KeyRing, MasterKey};
use crate::oauth::access_token::AccessTokenSettings;
use crate::oauth::token::TokenSettings;
use crate::oidc::id_token::IdTokenSettings;
use crate::store::{ClientCache, Store};
use crate::web::templates::Templates;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: Settings,
    store: Store,
    clients: ClientCache,
    keys: RwLock<Arc<KeyRing>>,
    /// Seals TOTP seeds (and, with key rotation, new signing keys) at run time.
    master_key: MasterKey,
    throttle: ThrottlePolicy,
    /// Failed sign-ins, codes and account-form checks per client address (hosted pages).
    sign_in_failures: IpFailureLimiter,
    /// Failed client authentication per (address, client_id) (token endpoint).
    client_auth_failures: ClientAuthFailureLimiter,
    /// Requests that send email (sign-up, reset, resend) per client address (issue 12).
    email_requests: IpFailureLimiter,
    accounts: AccountSettings,
    /// Wakes this replica's outbox sender when a request wrote a message.
    outbox_wake: Arc<Notify>,
    /// private_key_jwt clients' fetched keys (issue 13 item 5).
    jwks_cache: JwksCache,
    tokens: TokenSettings,
    passwords: PasswordHasher,
    templates: Templates,
    discovery: Bytes,
    public_cache_control: HeaderValue,
    shutting_down: AtomicBool,
}

/// Seconds since the Unix epoch: the `now` every core function takes (design rule 7).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl AppState {
    pub fn new(
        settings: Settings,
        store: Store,
        master_key: MasterKey,
        keys: KeyRing,
        passwords: PasswordHasher,
        templates: Templates,
        jwks_cache: JwksCache,
    ) -> Self {
        let tokens = TokenSettings {
            access: AccessTokenSettings {
                issuer: settings.issuer.clone(),
                default_audience: settings.default_audience.clone(),
                userinfo_audience: crate::oidc::userinfo::userinfo_audience(&settings.issuer),
                admin_audience: crate::admin::access::admin_audience(&settings.issuer),
                ttl_secs: settings.access_token_ttl.as_secs(),
                alg: settings.access_token_alg,
            },
            id: IdTokenSettings {
                issuer: settings.issuer.clone(),
                ttl_secs: settings.id_token_ttl.as_secs(),
                alg: SigningAlg::Rs256,
            },
            refresh_idle_secs: settings.refresh_token_idle_ttl.as_secs(),
            refresh_absolute_secs: settings.refresh_token_absolute_ttl.as_secs(),
            refresh_reuse_grace_secs: settings.refresh_token_reuse_grace.as_secs(),
        };
        let discovery = Bytes::from(crate::oidc::discovery::metadata(&settings.issuer).to_string());
        let public_cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", settings.jwks_max_age.as_secs()))
                .unwrap_or(HeaderValue::from_static("no-cache"));
        let clients = ClientCache::new(store.clone(), settings.client_cache_ttl.0);
        let throttle = ThrottlePolicy::from_settings(&settings);
        // Separate buckets with the same quota (issue 9 item 1): failures at one never throttle the other.
        let sign_in_failures = IpFailureLimiter::new(settings.ip_failure_burst, settings.ip_failures_per_minute);
        let client_auth_failures =
            ClientAuthFailureLimiter::new(settings.ip_failure_burst, settings.ip_failures_per_minute);
        let email_requests = IpFailureLimiter::per_hour(settings.email_ip_burst, settings.email_ip_per_hour);
        let accounts = AccountSettings::from_settings(&settings);
        Self(Arc::new(Inner {
            settings,
            store,
            clients,
            keys: RwLock::new(Arc::new(keys)),
            master_key,
            throttle,
            sign_in_failures,
            client_auth_failures,
            email_requests,
            accounts,
            outbox_wake: Arc::new(Notify::new()),
            jwks_cache,
            tokens,
            passwords,
            templates,
            discovery,
            public_cache_control,
            shutting_down: AtomicBool::new(false),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    pub fn clients(&self) -> &ClientCache {
        &self.0.clients
    }
    /// Reloads the key set from the database; swaps in a new ring only if the keys changed.
    /// True when it did.
    pub async fn reload_keys(&self) -> Result<bool, crate::keys::KeyRingError> {
        use crate::store::KeyStore;
        let records = self.0.store.list_keys().await?;
        if self.keys().is_built_from(&records) {
            return Ok(false);
        }
        let ring = KeyRing::from_records(&records, &self.0.master_key)?;
        match self.0.keys.write() {
            Ok(mut guard) => *guard = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        Ok(true)
    }

    /// The current key ring (a reload swaps in a new one; holders of the old one finish with it).
    pub fn keys(&self) -> Arc<KeyRing> {
        match self.0.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    pub fn token_settings(&self) -> &TokenSettings {
        &self.0.tokens
    }
    pub fn templates(&self) -> &Templates {
        &self.0.templates
    }
    pub fn passwords(&self) -> &PasswordHasher {
        &self.0.passwords
    }
    pub fn master_key(&self) -> &MasterKey {
        &self.0.master_key
    }
    pub fn throttle(&self) -> &ThrottlePolicy {
        &self.0.throttle
    }
    /// The hosted pages' per-address failure buckets.
    pub fn sign_in_failures(&self) -> &IpFailureLimiter {
        &self.0.sign_in_failures
    }
    /// The token endpoint's per-(address, client_id) failure buckets.
    pub fn client_auth_failures(&self) -> &ClientAuthFailureLimiter {
        &self.0.client_auth_failures
    }
    /// The per-address buckets of requests that send email.
    pub fn email_requests(&self) -> &IpFailureLimiter {
        &self.0.email_requests
    }
    pub fn account_settings(&self) -> &AccountSettings {
        &self.0.accounts
    }
    /// What renders and seals messages for the outbox.
    pub fn letters(&self) -> Letters<'_> {
        Letters { templates: &self.0.templates, master: &self.0.master_key, issuer: &self.0.settings.issuer }
    }
    /// Tells this replica's sender that a message is waiting (after the write committed).
    pub fn wake_outbox(&self) {
        self.0.outbox_wake.notify_one();
    }
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.0.outbox_wake.clone()
    }
    pub fn jwks_cache(&self) -> &JwksCache {
        &self.0.jwks_cache
    }
    /// Client authentication with everything it needs: the cache, keys, used assertions.
    pub fn client_auth(&self) -> ClientAuthenticator<'_> {
        ClientAuthenticator { state: self }
    }
    /// The discovery document, serialised once at start.
    pub fn discovery_json(&self) -> Bytes {
        self.0.discovery.clone()
    }
    /// `Cache-Control` of the public documents (JWKS, discovery).
    pub fn public_cache_control(&self) -> HeaderValue {
        self.0.public_cache_control.clone()
    }
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Relaxed)
    }
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Relaxed);
    }
}
