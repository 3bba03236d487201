//! The hosted pages in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver). A person opens the authorization URL, types into the real login form, clicks
//! Allow on the consent page and lands on the app's callback; the app then redeems the code.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (or CHROME_BIN / CHROMEDRIVER); `.ci/run`
//! installs them. Without them the test is skipped locally and fails under CI. Set
//! LATCHKEY_SCREENSHOTS_DIR to keep PNGs of the login and consent pages.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use latchkey::domain::NewClient;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{jwt_part, spawn_app, TestApp, TEST_PASSWORD};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const CALLBACK_PAGE: &str = "<!doctype html><title>Example App</title><h1>Example App callback</h1>";
/// How long any one step (a page load, a redirect chain) may take.
const STEP: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_person_signs_in_and_consents_in_chromium() {
    let Some((chromedriver_bin, chromium_bin)) = browser_binaries() else { return };
    let driver = ChromeDriver::start(&chromedriver_bin).await;

    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let callback = serve_callback_page().await;
    let client = app
        .register(NewClient {
            name: "Example App".into(),
            redirect_uris: vec![callback.clone()],
            ..NewClient::default()
        })
        .await;

    let browser = driver.session(&chromium_bin).await;
    // Whatever happens in the flow, end the session so Chromium exits before chromedriver is
    // killed; then report the flow's panic, if any.
    let outcome =
        std::panic::AssertUnwindSafe(sign_in(&browser, &app, &client.id, &callback, &user.email)).catch_unwind().await;
    let closed = browser.close().await;
    let (code, verifier, nonce) = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    closed.expect("the WebDriver session ends");

    // The app redeems the code the browser brought back.
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status().as_u16(), 200, "the code from the browser redeems");
    let tokens: serde_json::Value = response.json().await.expect("token response is JSON");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["access_token"].as_str().is_some_and(|t| !t.is_empty()), "an access token: {tokens}");
    let id_token = tokens["id_token"].as_str().unwrap_or_else(|| panic!("an ID token: {tokens}"));
    let claims = jwt_part(id_token, 1);
    assert_eq!(claims["sub"], user.sub.as_str());
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["nonce"], nonce.as_str());
}

/// Drives the browser from the authorization URL to the callback. Returns the code, the PKCE
/// verifier and the nonce.
async fn sign_in(
    browser: &Client,
    app: &TestApp,
    client_id: &str,
    callback: &str,
    email: &str,
) -> (String, String, String) {
    let verifier = latchkey::secret::random_token(32);
    assert!(verifier.len() >= 43, "RFC 7636 verifier length");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state = latchkey::secret::random_token(16);
    let nonce = latchkey::secret::random_token(16);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", callback),
            ("scope", "openid profile email"),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();

    // /authorize → 303 → the login page.
    browser.goto(&format!("{}/authorize?{query}", app.address)).await.expect("open the authorization URL");
    let login_url = app.url("/login?rid=");
    wait_for_url(browser, &login_url).await;
    assert_eq!(text_of(browser, Locator::Id("page-title")).await, "Sign in");
    assert_eq!(text_of(browser, Locator::Css("p.lead strong")).await, "Example App");
    assert_eq!(browser.title().await.expect("title"), "Sign in to Example App");
    screenshot(browser, "login.png").await;

    browser.find(Locator::Id("email")).await.expect("email input").send_keys(email).await.expect("type the email");
    browser
        .find(Locator::Id("password"))
        .await
        .expect("password input")
        .send_keys(TEST_PASSWORD)
        .await
        .expect("type the password");
    browser
        .find(Locator::Css("form[action='/login'] button[type='submit']"))
        .await
        .expect("Sign in")
        .click()
        .await
        .expect("click Sign in");

    // POST /login → /authorize/continue → 303 → the consent page (not a first-party client).
    wait_for_url(browser, &app.url("/consent?rid=")).await;
    assert_eq!(text_of(browser, Locator::Id("page-title")).await, "Allow Example App?");
    let lead = text_of(browser, Locator::Css("p.lead")).await;
    assert_eq!(lead, format!("Signed in as {email}. Example App asks to:"));
    screenshot(browser, "consent.png").await;

    browser
        .find(Locator::Css("button[name='decision'][value='approve']"))
        .await
        .expect("Allow button")
        .click()
        .await
        .expect("click Allow");

    // POST /consent → 303 → the app's callback, served by serve_callback_page.
    let landed = wait_for_url(browser, &format!("{callback}?")).await;
    assert_eq!(text_of(browser, Locator::Css("h1")).await, "Example App callback");
    let params: HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(params.get("state"), Some(&state));
    assert_eq!(params.get("iss"), Some(&app.address), "RFC 9207 iss");
    assert!(!params.contains_key("error"), "no error: {landed}");
    let code = params.get("code").unwrap_or_else(|| panic!("a code in {landed}")).clone();
    assert!(code.len() >= 43, "≥256-bit code");
    (code, verifier, nonce)
}

/// The chromedriver and Chromium binaries, or None (after saying so) when this machine lacks
/// them. Under CI their absence is a failure: the CI script installs them.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, default: &str| {
        let path = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()));
        path.is_file().then_some(path)
    };
    match (find("CHROMEDRIVER", "/usr/bin/chromedriver"), find("CHROME_BIN", "/usr/bin/chromium")) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but chromium/chromedriver are missing (looked at CHROME_BIN or /usr/bin/chromium and \
             CHROMEDRIVER or /usr/bin/chromedriver); .ci/run installs them"
        ),
        _ => {
            eprintln!("browser test skipped: chromium/chromedriver not installed (.ci/run installs them)");
            None
        }
    }
}

/// A chromedriver child process on a free port; killed on drop, even when the test fails.
struct ChromeDriver {
    child: Child,
    url: String,
    // Dropped after the process is killed (fields drop after `Drop::drop`).
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    async fn start(binary: &Path) -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().expect("a Chromium profile directory"),
        };
        let status = format!("{}/status", driver.url);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
        poll(&format!("chromedriver at {status} to be ready"), || {
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited early: {exit}");
            }
            let request = http.get(&status).send();
            async move {
                let body: serde_json::Value = request.await.ok()?.json().await.ok()?;
                (body["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        driver
    }

    /// A WebDriver session with a fresh headless Chromium.
    async fn session(&self, chromium: &Path) -> Client {
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1024,800".into(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium.display().to_string(), "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        // chromedriver speaks plain http on localhost: no TLS in the WebDriver client.
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the app's callback: any GET gets a 200 with a small page. Returns the callback URL.
async fn serve_callback_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the callback server");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{CALLBACK_PAGE}",
                    CALLBACK_PAGE.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/callback")
}

/// Waits until the browser's URL starts with `prefix`; returns that URL.
async fn wait_for_url(browser: &Client, prefix: &str) -> url::Url {
    poll(&format!("the browser to reach {prefix}"), || async move {
        let url = browser.current_url().await.ok()?;
        url.as_str().starts_with(prefix).then_some(url)
    })
    .await
}

/// The visible text of the element, once it is there.
async fn text_of(browser: &Client, locator: Locator<'_>) -> String {
    let element = browser.wait().at_most(STEP).for_element(locator).await.unwrap_or_else(|e| {
        panic!("no {locator:?} on the page: {e}");
    });
    element.text().await.expect("element text")
}

/// Screenshots the page: always checked to be a PNG; kept as `name` in LATCHKEY_SCREENSHOTS_DIR
/// when that is set.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.len() > PNG_MAGIC.len() && png.starts_with(PNG_MAGIC), "{name} is a PNG");
    if let Some(dir) = std::env::var_os("LATCHKEY_SCREENSHOTS_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }
}

/// Calls `check` every 50 ms until it gives a value; panics after `STEP`.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {STEP:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
