//! What client authentication needs beyond the client cache (src/oauth/client_auth.rs):
//! private_key_jwt clients' keys — inline, or fetched from their `jwks_uri` with a timeout, a
//! size cap and a cache — the audiences an assertion may name, and the shared record of used
//! assertion `jti`s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use crate::domain::{Client, MAX_JWKS_BYTES};
use crate::http::paths;
use crate::oauth::client_auth::{AssertionKeys, ClientLookup};
use crate::state::AppState;
use crate::store::{AssertionStore, StoreResult};

/// How long a fetched JWKS is used before it is fetched again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches at most this often per URL, so assertions with made-up key ids
/// can't turn Latchkey into a request generator against the client's server.
const MIN_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CACHED: usize = 1000;

/// Fetched JWKS documents by URL.
pub struct JwksCache {
    http: reqwest::Client,
    entries: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

impl JwksCache {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, entries: Mutex::new(HashMap::new()) })
    }

    fn cached(&self, uri: &str, max_age: Duration) -> Option<Arc<JwkSet>> {
        let entries = self.entries.lock().ok()?;
        entries.get(uri).filter(|(at, _)| at.elapsed() < max_age).map(|(_, keys)| keys.clone())
    }

    async fn get(&self, uri: &str, refresh: bool) -> Result<Arc<JwkSet>, String> {
        let max_age = if refresh { MIN_REFETCH } else { CACHE_TTL };
        if let Some(keys) = self.cached(uri, max_age) {
            return Ok(keys);
        }
        let keys = Arc::new(self.fetch(uri).await?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
            entries.insert(uri.to_string(), (Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    /// GET with a timeout, no redirects, at most [`MAX_JWKS_BYTES`], and only public RSA and
    /// P-256 keys accepted (the same rules as an inline registration).
    async fn fetch(&self, uri: &str) -> Result<JwkSet, String> {
        let mut response = self.http.get(uri).send().await.map_err(|e| format!("GET {uri}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {uri}: {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(format!("GET {uri}: larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("GET {uri}: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {uri}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| format!("GET {uri}: not UTF-8"))?;
        let checked = crate::domain::client_keys::validate_jwks(&text)?;
        serde_json::from_str(&checked).map_err(|e| e.to_string())
    }
}

/// Client authentication's view of the application (cache, keys, used assertions).
pub struct ClientAuthenticator<'a> {
    pub state: &'a AppState,
}

impl ClientLookup for ClientAuthenticator<'_> {
    async fn lookup_client(&self, id: &str) -> StoreResult<Option<Arc<Client>>> {
        self.state.clients().lookup_client(id).await
    }
}

impl AssertionKeys for ClientAuthenticator<'_> {
    /// RFC 7523 §3 item 3: the token endpoint's URL; OIDC Core §9 and common practice also
    /// accept the issuer. The revocation and introspection endpoints authenticate clients the
    /// same way, so their URLs count too.
    fn audiences(&self) -> Vec<String> {
        let issuer = &self.state.settings().issuer;
        vec![
            issuer.clone(),
            format!("{issuer}{}", paths::TOKEN),
            format!("{issuer}{}", paths::REVOKE),
            format!("{issuer}{}", paths::INTROSPECT),
        ]
    }

    async fn client_keys(&self, client: &Client, refresh: bool) -> Result<JwkSet, String> {
        if let Some(inline) = &client.jwks {
            return serde_json::from_str(inline).map_err(|e| format!("registered JWKS: {e}"));
        }
        match &client.jwks_uri {
            Some(uri) => Ok(self.state.jwks_cache().get(uri, refresh).await?.as_ref().clone()),
            None => Err("no keys registered".into()),
        }
    }

    async fn first_use(&self, client_id: &str, jti: &str, expires_at: i64) -> StoreResult<bool> {
        self.state.store().first_use_of_assertion(client_id, jti, expires_at).await
    }
}
