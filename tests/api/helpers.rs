#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use latchkey::admin::clients;
use latchkey::config::{Secret, Settings};
use latchkey::domain::NewClient;
use latchkey::startup::Application;
use latchkey::state::{unix_now, AppState};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;

/// The Postgres server to create per-test databases on, when `TEST_DATABASE_URL` is set. Any
/// value that is not a `postgres://` or `postgresql://` URL (any case) stops the run: a typo
/// must never quietly run the suite on SQLite instead (issue 10 item 7).
pub fn postgres_admin_url() -> Option<String> {
    let raw = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty())?;
    match url::Url::parse(raw.trim()) {
        Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => Some(url.to_string()),
        _ => panic!(
            "TEST_DATABASE_URL must be a postgres:// or postgresql:// URL (got {raw:?}); unset it to run on SQLite"
        ),
    }
}

/// A fresh database for one test: a temp SQLite file, or a new Postgres database.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Another handle on the same database (a second replica); the original keeps it alive.
    pub fn alias(&self) -> TestDatabase {
        TestDatabase { url: self.url.clone(), _dir: None }
    }
}

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);
// CREATE DATABASE from template1 fails when several run at once; take turns.
static CREATE_DB: Mutex<bool> = Mutex::const_new(false);

pub async fn fresh_database() -> TestDatabase {
    match postgres_admin_url() {
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite:{}", dir.path().join("latchkey.db").display());
            TestDatabase { url, _dir: Some(dir) }
        }
        Some(admin) => {
            let name = format!(
                "latchkey_test_{}_{}_{}",
                std::process::id(),
                DB_COUNTER.fetch_add(1, Ordering::Relaxed),
                latchkey::secret::random_token(4).to_lowercase().replace(['-', '_'], "x")
            );
            let mut cleaned = CREATE_DB.lock().await;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&admin).await.expect("connect to TEST_DATABASE_URL");
            if !*cleaned {
                // Databases left by earlier runs (processes that have exited) are dropped once per run.
                let prefix = format!("latchkey_test_{}_", std::process::id());
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT datname::text FROM pg_database WHERE datname LIKE 'latchkey_test_%'")
                        .fetch_all(&mut conn)
                        .await
                        .expect("list databases");
                // Only databases whose test process is gone: another run on the same server
                // (a second checkout, a parallel CI job) keeps its own.
                let stale = |name: &str| {
                    name.strip_prefix("latchkey_test_")
                        .and_then(|rest| rest.split('_').next())
                        .and_then(|pid| pid.parse::<u32>().ok())
                        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                };
                for (old,) in rows.into_iter().filter(|(n,)| !n.starts_with(&prefix) && stale(n)) {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
                *cleaned = true;
            }
            sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
            drop(cleaned);
            let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            TestDatabase { url: url.to_string(), _dir: None }
        }
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub address: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub settings: Settings,
    /// Where `/metrics` is served when the test set `metrics_bind`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn test_settings(db_url: &str) -> Settings {
    Settings {
        database_url: Secret::new(db_url),
        master_key: Secret::new(latchkey::secret::random_token(32)),
        // Tests see every admin change at once; one test checks the cache bound itself.
        client_cache_ttl: latchkey::config::HumanDuration::secs(0),
        log_level: "warn".into(),
        // Cheap argon2id for tests, through settings only; production defaults stay.
        password_hash_memory_kib: 1024,
        password_hash_iterations: 1,
        // No waiting between failed attempts in tests; one test sets a delay and measures it.
        failure_delay: latchkey::config::HumanDuration::secs(0),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server on a random port; `configure` adjusts the settings first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = fresh_database().await;
    let settings = test_settings(&db.url);
    spawn_app_on(db, settings, configure).await
}

pub async fn spawn_app_on(db: TestDatabase, mut settings: Settings, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let address = format!("http://127.0.0.1:{port}");
    settings.issuer = address.clone();
    settings.bind = listener.local_addr().expect("addr");
    configure(&mut settings);
    let settings = settings.validated().expect("test settings are valid");
    let app = Application::build_on(settings.clone(), listener).await.expect("app builds");
    let state = app.state();
    let metrics_addr = app.metrics_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    TestApp { address, state, http, db, settings, metrics_addr, shutdown: Some(tx), server: Some(server) }
}

pub struct RegisteredClient {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn token_url(&self) -> String {
        self.url("/token")
    }

    /// Registers a service client (client_credentials) with these scopes and roles.
    pub async fn service_client(&self, scopes: &[&str], roles: &[&str]) -> RegisteredClient {
        self.register(NewClient {
            name: "test service".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            ..NewClient::default()
        })
        .await
    }

    pub async fn register(&self, request: NewClient) -> RegisteredClient {
        let (client, secret) =
            clients::create(self.state.store(), request, &latchkey::admin::actor::Actor::Cli, unix_now())
                .await
                .expect("client registers");
        RegisteredClient { id: client.id, secret: secret.unwrap_or_default() }
    }

    /// POSTs a form to /token with optional Basic credentials; returns status, headers, JSON.
    pub async fn post_token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.post(self.token_url()).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.expect("token request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json::<Value>().await.expect("token response is JSON");
        (status, headers, body)
    }

    pub async fn get_json(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json::<Value>().await.expect("JSON body"))
    }

    /// Stops the server the way SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Decodes a JWT segment without verifying (for asserting on headers).
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).expect("JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A browser: keeps cookies, never follows redirects (each hop is asserted).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("browser client")
}

/// The value of `<input … name="NAME" value="…">` in a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name} in page:\n{html}")) + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].replace("&#x2f;", "/").replace("&amp;", "&")
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_string()
}

pub const TEST_PASSWORD: &str = "correct horse battery staple";

pub struct TestUser {
    pub sub: String,
    pub email: String,
}

pub struct AppClient {
    pub id: String,
    pub secret: String,
    pub redirect_uri: String,
    pub post_logout_uri: String,
}

impl TestApp {
    pub async fn user(&self, email: &str) -> TestUser {
        let user = latchkey::admin::users::create(
            self.state.store(),
            self.state.passwords(),
            latchkey::admin::users::NewUser {
                email: email.into(),
                name: Some("Ann Example".into()),
                roles: vec!["admin".into(), "billing".into()],
                password: TEST_PASSWORD.into(),
                email_verified: false,
            },
            &latchkey::admin::actor::Actor::Cli,
            unix_now(),
        )
        .await
        .expect("user creates");
        TestUser { sub: user.sub, email: user.email }
    }

    /// A confidential web app with the standard OIDC scopes.
    pub async fn web_app(&self, first_party: bool) -> AppClient {
        let redirect_uri = "http://127.0.0.1:9/callback".to_string();
        let post_logout_uri = "http://127.0.0.1:9/signed-out".to_string();
        let client = self
            .register(NewClient {
                name: "Example App".into(),
                redirect_uris: vec![redirect_uri.clone()],
                post_logout_redirect_uris: vec![post_logout_uri.clone()],
                first_party,
                ..NewClient::default()
            })
            .await;
        AppClient { id: client.id, secret: client.secret, redirect_uri, post_logout_uri }
    }

    /// Drives the hosted pages from an authorization URL to the app's callback: login form
    /// (when asked), consent (when asked, approving everything). Returns the callback URL.
    pub async fn sign_in_through_pages(&self, browser: &reqwest::Client, authorize_url: &str, email: &str) -> url::Url {
        let mut next = authorize_url.to_string();
        for _ in 0..10 {
            let response = browser.get(&next).send().await.unwrap();
            let status = response.status().as_u16();
            if status == 303 {
                let target = location(&response);
                let absolute = if target.starts_with('/') { self.url(&target) } else { target };
                if !absolute.starts_with(&self.address) {
                    return url::Url::parse(&absolute).unwrap();
                }
                next = absolute;
                continue;
            }
            assert_eq!(status, 200, "unexpected page at {next}");
            let page = response.text().await.unwrap();
            let csrf = hidden_field(&page, "csrf");
            let rid = hidden_field(&page, "rid");
            let form: Vec<(String, String)> = if page.contains("action=\"/login\"") {
                vec![
                    ("csrf".into(), csrf),
                    ("rid".into(), rid),
                    ("email".into(), email.into()),
                    ("password".into(), TEST_PASSWORD.into()),
                ]
            } else if page.contains("action=\"/consent\"") {
                let mut form = vec![("csrf".into(), csrf), ("rid".into(), rid), ("decision".into(), "approve".into())];
                for scope in page.split("name=\"scope\" value=\"").skip(1) {
                    form.push(("scope".into(), scope[..scope.find('"').unwrap()].to_string()));
                }
                form
            } else {
                panic!("unexpected page at {next}:\n{page}");
            };
            let action = if page.contains("action=\"/login\"") { "/login" } else { "/consent" };
            let posted = browser.post(self.url(action)).form(&form).send().await.unwrap();
            assert_eq!(posted.status().as_u16(), 303, "POST {action} answers 303");
            next = self.url(&location(&posted));
        }
        panic!("sign-in did not reach the app");
    }
}

/// A PKCE pair (RFC 7636): random verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    use base64::Engine;
    use sha2::Digest;
    let verifier = latchkey::secret::random_token(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// An authorization URL for `client`. `overrides` replace defaults by name; an empty value
/// removes the parameter.
pub fn authorize_url(
    app: &TestApp,
    client: &AppClient,
    scope: &str,
    challenge: &str,
    overrides: &[(&str, &str)],
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client.id.clone()),
        ("redirect_uri".into(), client.redirect_uri.clone()),
        ("scope".into(), scope.into()),
        ("state".into(), "st-123".into()),
        ("nonce".into(), "n-456".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (name, value) in overrides {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name.to_string(), value.to_string()));
        }
    }
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{}/authorize?{query}", app.address)
}

/// Query parameters of a redirect target.
pub fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location).expect("absolute redirect").query_pairs().into_owned().collect()
}

impl TestApp {
    /// Signs `email` in through the pages for `client` and returns the code.
    pub async fn code_for(
        &self,
        browser: &reqwest::Client,
        client: &AppClient,
        email: &str,
        scope: &str,
        pkce: &Pkce,
    ) -> String {
        let url = authorize_url(self, client, scope, &pkce.challenge, &[]);
        let callback = self.sign_in_through_pages(browser, &url, email).await;
        callback.query_pairs().find(|(k, _)| k == "code").expect("code in callback").1.to_string()
    }

    /// Redeems a code as `client` (Basic auth). Returns status and JSON.
    pub async fn redeem(&self, client: &AppClient, code: &str, verifier: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", client.redirect_uri.clone()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_string()));
        }
        let response = self
            .http
            .post(self.token_url())
            .basic_auth(&client.id, Some(&client.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn refresh(&self, client: &AppClient, refresh_token: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(self.token_url())
            .basic_auth(&client.id, Some(&client.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn userinfo_status(&self, access_token: &str) -> u16 {
        self.http.get(self.url("/userinfo")).bearer_auth(access_token).send().await.unwrap().status().as_u16()
    }
}

/// The `latchkey` binary as an operator runs it, on `db`: a clean environment, cheap argon2id
/// through settings, `env` for anything else (a master key, say), `stdin` for --password-stdin.
pub async fn latchkey_cli(
    db: &TestDatabase,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    // Waited for without blocking the thread: the server under test runs on this test's
    // runtime, and a blocked thread would stall it mid-transaction, so that the command's
    // write waited out SQLite's busy timeout ("database is locked").
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LATCHKEY_DATABASE_URL", &db.url)
        .env("LATCHKEY_LOG_LEVEL", "warn")
        .env("LATCHKEY_PASSWORD_HASH_MEMORY_KIB", "1024")
        .env("LATCHKEY_PASSWORD_HASH_ITERATIONS", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run latchkey");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().await.expect("latchkey exits")
}

/// Standard output as JSON, after checking the command succeeded.
pub fn cli_json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

pub fn text_between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("no {start} in page:\n{page}")) + start.len();
    let to = page[from..].find(end).expect("end marker") + from;
    &page[from..to]
}

/// A browser signed in with the password alone, on /account.
pub async fn signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let b = browser();
    let page = b.get(app.url("/login?next=account")).send().await.unwrap().text().await.unwrap();
    let response = b
        .post(app.url("/login"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("next", "account"),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303, "{}", response.text().await.unwrap());
    assert_eq!(location(&response), "/account");
    b
}

/// Turns on TOTP for the signed-in user of `b` through the enrolment page; returns the seed.
pub async fn enrol_totp(app: &TestApp, b: &reqwest::Client) -> Vec<u8> {
    let page = b.get(app.url("/account/totp")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    let seed = latchkey::authn::totp::decode_base32(text_between(&page, "id=\"totp-secret\">", "</code>"))
        .expect("base32 key");
    let code = latchkey::authn::totp::code_at(&seed, unix_now()).unwrap();
    let confirmed = b
        .post(app.url("/account/totp"))
        .form(&[("csrf", hidden_field(&page, "csrf").as_str()), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status().as_u16(), 303);
    assert_eq!(location(&confirmed), "/account/recovery-codes");
    seed
}

/// Runs one statement on `db` directly, behind the server's back (to set up a state no
/// endpoint would make, such as a time in the past). `$1`… bind `values` as integers or text.
pub async fn exec_sql(db: &TestDatabase, statement: &str, values: &[SqlValue<'_>]) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database");
    let mut query = sqlx::query(statement);
    for value in values {
        query = match value {
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Text(v) => query.bind(v.to_string()),
            SqlValue::Bytes(v) => query.bind(v.to_vec()),
        };
    }
    query.execute(&mut conn).await.expect("statement runs");
    conn.close().await.expect("close");
}

pub enum SqlValue<'a> {
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// One integer from `db` (`COUNT(*)`, a timestamp), read behind the server's back; `None` for
/// no row or NULL.
pub async fn query_i64(db: &TestDatabase, statement: &str, values: &[SqlValue<'_>]) -> Option<i64> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database");
    let mut query = sqlx::query(statement);
    for value in values {
        query = match value {
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Text(v) => query.bind(v.to_string()),
            SqlValue::Bytes(v) => query.bind(v.to_vec()),
        };
    }
    let row = query.fetch_optional(&mut conn).await.expect("statement runs");
    conn.close().await.expect("close");
    row.and_then(|r| r.try_get::<Option<i64>, _>(0).ok().flatten())
}

/// The first column of every row, as bytes (BLOB on SQLite, BYTEA on Postgres).
pub async fn query_bytes(db: &TestDatabase, statement: &str) -> Vec<Vec<u8>> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database");
    let rows = sqlx::query(statement).fetch_all(&mut conn).await.expect("statement runs");
    conn.close().await.expect("close");
    rows.iter().map(|r| r.try_get::<Vec<u8>, _>(0).expect("a bytes column")).collect()
}
