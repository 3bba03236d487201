//! The hosted pages in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver). A person opens the authorization URL, types into the real login form, clicks
//! Allow on the consent page and lands on the app's callback; the app then redeems the code.
//! Another turns on an authenticator app through the enrolment page, signs out, and signs in
//! again with a code computed from the key the page showed.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (or CHROME_BIN / CHROMEDRIVER); `.ci/run`
//! installs them. Without them (and without `CI` set) `build.rs` marks the tests ignored, so the
//! test summary says so; under CI their absence fails the run. Set
//! LATCHKEY_SCREENSHOTS_DIR to keep PNGs of the login, consent, enrolment (totp-setup.png) and
//! code (mfa.png) pages.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use latchkey::authn::totp;
use latchkey::domain::NewClient;
use latchkey::state::unix_now;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{jwt_part, spawn_app, RegisteredClient, TestApp, TEST_PASSWORD};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const CALLBACK_PAGE: &str = "<!doctype html><title>Example App</title><h1>Example App callback</h1>";
/// How long any one step (a page load, a redirect chain) may take.
const STEP: Duration = Duration::from_secs(15);

#[tokio::test]
#[cfg_attr(
    no_browser,
    ignore = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
)]
async fn a_person_signs_in_and_consents_in_chromium() {
    let (chromedriver_bin, chromium_bin) = browser_binaries();
    let driver = ChromeDriver::start(&chromedriver_bin).await;

    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let callback = serve_callback_page().await;
    let client = example_app(&app, &callback).await;

    let browser = driver.session(&chromium_bin).await;
    let (code, request) = drive(&browser, sign_in(&browser, &app, &client.id, &callback, &user.email)).await;

    // The app redeems the code the browser brought back.
    let claims = redeem(&app, &client, &callback, &code, &request).await;
    assert_eq!(claims["sub"], user.sub.as_str());
}

/// Issue 4: a person turns on two-step verification through the real enrolment page, typing a
/// code computed from the key shown for manual entry, signs out, and signs in to an app again
/// with a fresh code on the MFA page; the app's ID token says a one-time password was used.
#[tokio::test]
#[cfg_attr(
    no_browser,
    ignore = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
)]
async fn a_person_enrols_an_authenticator_app_and_signs_in_with_a_code_in_chromium() {
    let (chromedriver_bin, chromium_bin) = browser_binaries();
    let driver = ChromeDriver::start(&chromedriver_bin).await;

    let app = spawn_app().await;
    let user = app.user("bea@example.com").await;
    let callback = serve_callback_page().await;
    let client = example_app(&app, &callback).await;

    let browser = driver.session(&chromium_bin).await;
    let (code, request) =
        drive(&browser, enrol_and_sign_in_again(&browser, &app, &client.id, &callback, &user.email)).await;

    let claims = redeem(&app, &client, &callback, &code, &request).await;
    assert_eq!(claims["sub"], user.sub.as_str());
    let amr: Vec<&str> = claims["amr"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
    assert!(amr.contains(&"otp"), "amr names the one-time password: {claims}");
    assert!(amr.contains(&"pwd"), "amr names the password: {claims}");
}

/// Registers the example app (not first-party: it gets a consent page) with `callback`.
async fn example_app(app: &TestApp, callback: &str) -> RegisteredClient {
    app.register(NewClient {
        name: "Example App".into(),
        redirect_uris: vec![callback.to_string()],
        ..NewClient::default()
    })
    .await
}

/// Runs `flow` in the browser and ends the WebDriver session whatever happens, so Chromium
/// exits before chromedriver is killed; then reports the flow's panic, if any.
async fn drive<T>(browser: &Client, flow: impl Future<Output = T>) -> T {
    let outcome = std::panic::AssertUnwindSafe(flow).catch_unwind().await;
    let closed = browser.clone().close().await;
    let value = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    closed.expect("the WebDriver session ends");
    value
}

/// An authorization request of the example app: the URL to open and what the app keeps.
struct AuthRequest {
    url: String,
    state: String,
    verifier: String,
    nonce: String,
}

fn auth_request(app: &TestApp, client_id: &str, callback: &str) -> AuthRequest {
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
    AuthRequest { url: format!("{}/authorize?{query}", app.address), state, verifier, nonce }
}

/// Drives the browser from the authorization URL to the callback: login form, consent. Returns
/// the code and the request it answers.
async fn sign_in(
    browser: &Client,
    app: &TestApp,
    client_id: &str,
    callback: &str,
    email: &str,
) -> (String, AuthRequest) {
    let request = auth_request(app, client_id, callback);

    // /authorize → 303 → the login page.
    browser.goto(&request.url).await.expect("open the authorization URL");
    wait_for_url(browser, &app.url("/login?rid=")).await;
    assert_eq!(text_of(browser, Locator::Id("page-title")).await, "Sign in");
    assert_eq!(text_of(browser, Locator::Css("p.lead strong")).await, "Example App");
    assert_eq!(browser.title().await.expect("title"), "Sign in to Example App");
    screenshot(browser, "login.png").await;

    submit_password(browser, email).await;

    // POST /login → /authorize/continue → 303 → the consent page (not a first-party client).
    approve_consent(browser, app, email, Some("consent.png")).await;

    // POST /consent → 303 → the app's callback, served by serve_callback_page.
    let code = code_at_callback(browser, app, callback, &request).await;
    (code, request)
}

/// Signs in on the account page, turns on an authenticator app through the enrolment page
/// (reading the key shown for manual entry), saves the recovery codes, signs out, then signs in
/// to the app with password and a fresh code. Returns the code the app got and its request.
async fn enrol_and_sign_in_again(
    browser: &Client,
    app: &TestApp,
    client_id: &str,
    callback: &str,
    email: &str,
) -> (String, AuthRequest) {
    // No app involved: the account page's own sign-in.
    browser.goto(&app.url("/login?next=account")).await.expect("open the sign-in page");
    wait_for_url(browser, &app.url("/login?next=account")).await;
    assert_eq!(text_of(browser, Locator::Id("page-title")).await, "Sign in");
    submit_password(browser, email).await;
    wait_for_title(browser, "Your account").await;
    assert_eq!(browser.current_url().await.expect("url").path(), "/account");
    assert!(page_text(browser).await.contains("Authenticator app — off"), "no authenticator app yet");

    // The enrolment page: QR code, the key for typing, the otpauth:// URI.
    click(browser, Locator::LinkText("Set up an authenticator app")).await;
    wait_for_url(browser, &app.url("/account/totp")).await;
    wait_for_title(browser, "Set up an authenticator app").await;
    let shown = text_of(browser, Locator::Id("totp-secret")).await;
    let groups: Vec<&str> = shown.split(' ').collect();
    assert!(
        groups.len() > 1
            && groups.iter().all(|g| (1..=4).contains(&g.len()))
            && groups[..groups.len() - 1].iter().all(|g| g.len() == 4),
        "the key is shown in groups of four: {shown:?}"
    );
    let secret = totp::decode_base32(&shown).unwrap_or_else(|| panic!("the key shown is base32: {shown:?}"));
    assert!(secret.len() >= 16, "≥128-bit seed (RFC 4226 §4), got {} bytes", secret.len());
    // The setup link (inside a closed <details>, so not visible text) carries the same key.
    let uri = browser
        .find(Locator::Id("totp-uri"))
        .await
        .expect("the setup link")
        .prop("textContent")
        .await
        .expect("textContent")
        .unwrap_or_default();
    let uri = url::Url::parse(uri.trim()).unwrap_or_else(|e| panic!("the setup link is a URI ({e}): {uri:?}"));
    assert_eq!(uri.scheme(), "otpauth");
    let params: HashMap<String, String> = uri.query_pairs().into_owned().collect();
    assert_eq!(params.get("secret").map(String::as_str), Some(shown.replace(' ', "").as_str()), "{uri}");
    // The QR code is an image the browser could decode and lay out at its full size.
    let qr = browser
        .execute(
            "const img = document.querySelector('img.qr'); \
             return img && img.complete ? [img.naturalWidth, img.getBoundingClientRect().width] : null;",
            vec![],
        )
        .await
        .expect("inspect the QR image");
    let natural = qr[0].as_f64().unwrap_or_else(|| panic!("the QR image loaded: {qr}"));
    assert!(natural >= 200.0 && qr[1].as_f64() >= Some(200.0), "the QR image is shown at 200 px or more: {qr}");
    screenshot(browser, "totp-setup.png").await;

    let enrolled_step = type_code(browser, &secret, None, "form[action='/account/totp']").await;

    // POST /account/totp → 303 → the recovery codes, shown once.
    wait_for_url(browser, &app.url("/account/recovery-codes")).await;
    wait_for_title(browser, "Save your recovery codes").await;
    let mut codes = Vec::new();
    for item in browser.find_all(Locator::Css("#recovery-codes li")).await.expect("the recovery codes") {
        codes.push(item.text().await.expect("a recovery code"));
    }
    assert_eq!(codes.len(), 10, "ten recovery codes: {codes:?}");
    assert!(codes.iter().all(|c| c.trim().len() >= 8), "the codes are not blank: {codes:?}");
    let distinct: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10, "the codes differ: {codes:?}");
    click(browser, Locator::LinkText("I have saved them — continue")).await;
    wait_for_title(browser, "Your account").await;
    assert_eq!(browser.current_url().await.expect("url").path(), "/account");
    let account = page_text(browser).await;
    assert!(account.contains("Authenticator app — on since"), "the account page shows the app: {account}");
    assert!(account.contains("Recovery codes — 10 left"), "and the recovery codes: {account}");

    // Sign out: the account page's button → the confirmation page → signed out.
    click(browser, Locator::Css("form[action='/logout'] button[type='submit']")).await;
    wait_for_url(browser, &app.url("/logout")).await;
    wait_for_title(browser, "Sign out?").await;
    click(browser, Locator::Css("form[method='post'][action='/logout'] button[type='submit']")).await;
    wait_for_title(browser, "You are signed out").await;

    // The app asks again: password, then the code page.
    let request = auth_request(app, client_id, callback);
    browser.goto(&request.url).await.expect("open the authorization URL");
    wait_for_url(browser, &app.url("/login?rid=")).await;
    wait_for_title(browser, "Sign in").await;
    submit_password(browser, email).await;
    wait_for_url(browser, &app.url("/login/mfa?rid=")).await;
    wait_for_title(browser, "Two-step verification").await;
    screenshot(browser, "mfa.png").await;
    // A code of the enrolment's step was used already and is refused: wait for a later one.
    let used_step = type_code(browser, &secret, Some(enrolled_step), "form[action='/login/mfa']").await;
    assert!(used_step > enrolled_step);

    // POST /login/mfa → /authorize/continue → the consent page (this app was never allowed).
    approve_consent(browser, app, email, None).await;
    let code = code_at_callback(browser, app, callback, &request).await;
    (code, request)
}

/// Types the email and the test password into the sign-in form and submits it.
async fn submit_password(browser: &Client, email: &str) {
    browser.find(Locator::Id("email")).await.expect("email input").send_keys(email).await.expect("type the email");
    browser
        .find(Locator::Id("password"))
        .await
        .expect("password input")
        .send_keys(TEST_PASSWORD)
        .await
        .expect("type the password");
    click(browser, Locator::Css("form[action='/login'] button[type='submit']")).await;
}

/// Waits for the consent page, checks it, optionally keeps a screenshot, clicks Allow.
async fn approve_consent(browser: &Client, app: &TestApp, email: &str, screenshot_name: Option<&str>) {
    wait_for_url(browser, &app.url("/consent?rid=")).await;
    assert_eq!(text_of(browser, Locator::Id("page-title")).await, "Allow Example App?");
    let lead = text_of(browser, Locator::Css("p.lead")).await;
    assert_eq!(lead, format!("Signed in as {email}. Example App asks to:"));
    if let Some(name) = screenshot_name {
        screenshot(browser, name).await;
    }
    click(browser, Locator::Css("button[name='decision'][value='approve']")).await;
}

/// Waits for the app's callback page and checks its parameters; returns the code.
async fn code_at_callback(browser: &Client, app: &TestApp, callback: &str, request: &AuthRequest) -> String {
    let landed = wait_for_url(browser, &format!("{callback}?")).await;
    assert_eq!(text_of(browser, Locator::Css("h1")).await, "Example App callback");
    let params: HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(params.get("state"), Some(&request.state));
    assert_eq!(params.get("iss"), Some(&app.address), "RFC 9207 iss");
    assert!(!params.contains_key("error"), "no error: {landed}");
    let code = params.get("code").unwrap_or_else(|| panic!("a code in {landed}")).clone();
    assert!(code.len() >= 43, "≥256-bit code");
    code
}

/// The app redeems `code` at the token endpoint; checks the answer and returns the ID token's
/// claims.
async fn redeem(
    app: &TestApp,
    client: &RegisteredClient,
    callback: &str,
    code: &str,
    request: &AuthRequest,
) -> serde_json::Value {
    let response = app
        .http
        .post(app.token_url())
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback),
            ("code_verifier", request.verifier.as_str()),
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
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["nonce"], request.nonce.as_str());
    claims
}

/// Computes the current code the way an authenticator app does, types it into the form's
/// `#code` and submits. Waits first for a step later than `after` (a step already used is
/// refused) and with more than 2 s left (so the server checks it in the same step). Returns the
/// step of the code typed.
async fn type_code(browser: &Client, secret: &[u8], after: Option<i64>, form: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(2 * totp::STEP_SECS as u64 + 5);
    let (step, code) = loop {
        let now = unix_now();
        let step = now.div_euclid(totp::STEP_SECS);
        let left = totp::STEP_SECS - now.rem_euclid(totp::STEP_SECS);
        if after.is_none_or(|used| step > used) && left > 2 {
            break (step, totp::code_at(secret, now).expect("a code"));
        }
        assert!(Instant::now() < deadline, "no usable TOTP step came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let input = browser.find(Locator::Css(&format!("{form} input#code"))).await.expect("the code input");
    input.send_keys(&code).await.expect("type the code");
    click(browser, Locator::Css(&format!("{form} button[type='submit']"))).await;
    step
}

async fn click(browser: &Client, locator: Locator<'_>) {
    browser
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("no {locator:?} on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {locator:?}: {e}"));
}

/// Waits until the page's `#page-title` reads `title` (a form posted to the same URL changes
/// only the page).
async fn wait_for_title(browser: &Client, title: &str) {
    poll(&format!("the page titled {title:?}"), || async move {
        let element = browser.find(Locator::Id("page-title")).await.ok()?;
        (element.text().await.ok()? == title).then_some(())
    })
    .await
}

/// Waits for the document's `<title>` (pages of the test's own apps have no #page-title).
async fn wait_for_document_title(browser: &Client, title: &str) {
    poll(
        &format!("the document titled {title:?}"),
        || async move { (browser.title().await.ok()? == title).then_some(()) },
    )
    .await
}

/// The visible text of the page's main card.
async fn page_text(browser: &Client) -> String {
    text_of(browser, Locator::Css("main")).await
}

/// The chromedriver and Chromium binaries. A machine without them never runs this (build.rs
/// marks the tests ignored there), so their absence here is a failure, never a silent pass.
fn browser_binaries() -> (PathBuf, PathBuf) {
    let find = |var: &str, default: &str| {
        let path = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()));
        path.is_file().then_some(path)
    };
    match (find("CHROMEDRIVER", "/usr/bin/chromedriver"), find("CHROME_BIN", "/usr/bin/chromium")) {
        (Some(driver), Some(chromium)) => (driver, chromium),
        _ => panic!(
            "chromium/chromedriver are missing (looked at CHROME_BIN or /usr/bin/chromium and CHROMEDRIVER or \
             /usr/bin/chromedriver); .ci/run installs them"
        ),
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
    let origin = serve_pages(vec![("/", "text/html; charset=utf-8", CALLBACK_PAGE.as_bytes().to_vec())]).await;
    format!("{origin}/callback")
}

/// A static web server on its own origin: each GET gets the first page whose path prefix
/// matches (the query is ignored), else 404. Returns the origin, `http://127.0.0.1:PORT`.
async fn serve_pages(pages: Vec<(&'static str, &'static str, Vec<u8>)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a page server");
    let port = listener.local_addr().expect("addr").port();
    let pages = std::sync::Arc::new(pages);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split(' ').nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
                let page = pages.iter().find(|(prefix, _, _)| path.starts_with(prefix));
                let (status, content_type, body): (&str, &str, &[u8]) = match page {
                    Some((_, content_type, body)) => ("200 OK", content_type, body),
                    None => ("404 Not Found", "text/plain", b"not found"),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
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
/// when that is set. A page taller than the window (the enrolment page) is shot whole: the
/// window grows for the shot and shrinks back.
async fn screenshot(browser: &Client, name: &str) {
    let overflow = browser
        .execute("return Math.max(0, document.documentElement.scrollHeight - window.innerHeight);", vec![])
        .await
        .expect("measure the page")
        .as_f64()
        .map_or(0, |px| px.ceil() as u32);
    let (width, height) = browser.get_window_size().await.expect("window size");
    let (width, height) = (u32::try_from(width).expect("width"), u32::try_from(height).expect("height"));
    if overflow > 0 {
        browser.set_window_size(width, height + overflow).await.expect("grow the window to the page");
        browser.execute("window.scrollTo(0, 0);", vec![]).await.expect("scroll to the top");
    }
    let png = browser.screenshot().await.expect("screenshot");
    if overflow > 0 {
        browser.set_window_size(width, height).await.expect("restore the window size");
    }
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

/// The pinned browser OIDC library the single-page-app test runs (from npm, installed on first
/// use into the test's temp dir; `.ci/run` makes sure npm is there).
const OIDC_CLIENT_TS: &str = "oidc-client-ts@3.5.0";

/// The library's browser bundle (a global `oidc`), installed with npm when missing.
fn oidc_client_ts_bundle() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("spa-deps");
    let bundle = dir.join("node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js");
    if !bundle.is_file() {
        std::fs::create_dir_all(&dir).expect("spa-deps dir");
        let status = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(OIDC_CLIENT_TS)
            .status()
            .expect("npm is installed (.ci/run installs it)");
        assert!(status.success(), "npm install {OIDC_CLIENT_TS} failed");
    }
    std::fs::read(&bundle).expect("the oidc-client-ts bundle")
}

/// The SPA: `/` starts the sign-in (client_id and authority from its own query string), and
/// `/callback` finishes it with the library, calls userinfo and refreshes — every call to
/// Latchkey cross-origin — then writes what it saw as JSON into #result.
const SPA_INDEX: &str = r#"<!doctype html><title>SPA</title><script src="/oidc-client-ts.js"></script>
<script>
const q = new URLSearchParams(location.search);
sessionStorage.setItem("cfg", JSON.stringify({ authority: q.get("authority"), client_id: q.get("client_id") }));
const cfg = JSON.parse(sessionStorage.getItem("cfg"));
new oidc.UserManager({ authority: cfg.authority, client_id: cfg.client_id, redirect_uri: location.origin + "/callback",
  response_type: "code", scope: "openid email offline_access" }).signinRedirect();
</script>"#;

const SPA_CALLBACK: &str = r#"<!doctype html><title>SPA callback</title><pre id="result"></pre>
<script src="/oidc-client-ts.js"></script>
<script>
(async () => {
  const cfg = JSON.parse(sessionStorage.getItem("cfg"));
  const mgr = new oidc.UserManager({ authority: cfg.authority, client_id: cfg.client_id,
    redirect_uri: location.origin + "/callback", response_type: "code", scope: "openid email offline_access" });
  const out = {};
  const show = (step) => { out.step = step; document.getElementById("result").textContent = JSON.stringify(out); };
  try {
    show("callback");
    const user = await mgr.signinCallback();
    show("userinfo");
    out.sub = user.profile.sub;
    out.first_refresh = user.refresh_token;
    const info = await fetch(cfg.authority + "/userinfo", { headers: { Authorization: "Bearer " + user.access_token } });
    out.userinfo_status = info.status;
    out.userinfo = await info.json();
    show("refresh");
    const renewed = await mgr.signinSilent();
    out.renewed_access_differs = renewed.access_token !== user.access_token;
    out.refresh = renewed.refresh_token;
  } catch (e) { out.error = String(e && e.message || e); }
  document.getElementById("result").textContent = JSON.stringify(out);
  document.title = "SPA done";
})();
</script>"#;

/// A page on an origin no client registered: it tries to spend a refresh token at /token.
const FOREIGN_PAGE: &str = r#"<!doctype html><title>Foreign</title><pre id="result"></pre><script>
(async () => {
  const q = new URLSearchParams(location.search);
  let outcome;
  try {
    const r = await fetch(q.get("authority") + "/token", { method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", client_id: q.get("client_id"), refresh_token: q.get("rt") }) });
    outcome = "read " + r.status;
  } catch (e) { outcome = "blocked"; }
  document.getElementById("result").textContent = outcome;
  document.title = "Foreign done";
})();
</script>"#;

/// Issue 11 item 1: a real single-page-app library (oidc-client-ts) in Chromium, on its own
/// origin, as a public client: sign-in through the hosted pages, the code exchange, userinfo and
/// a refresh, all cross-origin. A page on an unregistered origin can't read the token endpoint's
/// answer, and its request spends nothing.
#[tokio::test]
#[cfg_attr(
    no_browser,
    ignore = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
)]
async fn a_single_page_app_signs_in_reads_userinfo_and_refreshes_cross_origin() {
    let (chromedriver_bin, chromium_bin) = browser_binaries();
    let bundle = oidc_client_ts_bundle();
    let driver = ChromeDriver::start(&chromedriver_bin).await;
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let spa_origin = serve_pages(vec![
        ("/oidc-client-ts.js", "text/javascript", bundle),
        ("/callback", "text/html; charset=utf-8", SPA_CALLBACK.as_bytes().to_vec()),
        ("/", "text/html; charset=utf-8", SPA_INDEX.as_bytes().to_vec()),
    ])
    .await;
    let foreign_origin = serve_pages(vec![("/", "text/html; charset=utf-8", FOREIGN_PAGE.as_bytes().to_vec())]).await;
    let client = app
        .register(NewClient {
            name: "Example App".into(),
            public: true,
            redirect_uris: vec![format!("{spa_origin}/callback")],
            ..NewClient::default()
        })
        .await;

    let browser = driver.session(&chromium_bin).await;
    let (result, foreign) = drive(&browser, async {
        let start = format!("{spa_origin}/?authority={}&client_id={}", app.address, client.id);
        browser.goto(&start).await.expect("open the SPA");
        wait_for_url(&browser, &app.url("/login?rid=")).await;
        submit_password(&browser, &user.email).await;
        approve_consent(&browser, &app, &user.email, None).await;
        wait_for_url(&browser, &format!("{spa_origin}/callback")).await;
        let waited = tokio::time::timeout(STEP, wait_for_document_title(&browser, "SPA done")).await;
        if waited.is_err() {
            panic!("the SPA did not finish: {}", text_of(&browser, Locator::Id("result")).await);
        }
        let result: serde_json::Value =
            serde_json::from_str(&text_of(&browser, Locator::Id("result")).await).expect("the SPA's JSON");
        let rt = result["refresh"].as_str().unwrap_or_default().to_string();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("authority", app.address.as_str()), ("client_id", client.id.as_str()), ("rt", rt.as_str())])
            .finish();
        browser.goto(&format!("{foreign_origin}/?{query}")).await.expect("open the foreign page");
        wait_for_document_title(&browser, "Foreign done").await;
        (result, text_of(&browser, Locator::Id("result")).await)
    })
    .await;

    assert!(result.get("error").is_none(), "the SPA failed: {result}");
    assert_eq!(result["sub"], user.sub.as_str());
    assert_eq!(result["userinfo_status"], 200);
    assert_eq!(result["userinfo"]["email"], "ann@example.com");
    assert_eq!(result["renewed_access_differs"], true, "{result}");
    let (first, renewed) = (result["first_refresh"].as_str().unwrap(), result["refresh"].as_str().unwrap());
    assert_ne!(first, renewed, "the refresh token rotated");
    assert_eq!(foreign, "blocked", "an unregistered origin can't read /token's answer");
    // The foreign page's request spent nothing: the SPA's refresh token still works.
    let (status, body) = {
        let response = app
            .http
            .post(app.token_url())
            .form(&[("grant_type", "refresh_token"), ("client_id", client.id.as_str()), ("refresh_token", renewed)])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
}

/// Issue 12: a new person signs up from an app's sign-in page in Chromium, follows the link
/// the real SMTP server received, signs in and lands back in the app, whose ID token says the
/// address is verified. Screenshots: register.png, check-email.png.
#[tokio::test]
#[cfg_attr(
    no_browser,
    ignore = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
)]
async fn a_person_signs_up_follows_the_emailed_link_and_lands_in_the_app_in_chromium() {
    let (chromedriver_bin, chromium_bin) = browser_binaries();
    let driver = ChromeDriver::start(&chromedriver_bin).await;
    let (app, smtp) = crate::mailbox::spawn_mail_app(|_| {}).await;
    let callback = serve_callback_page().await;
    let client = example_app(&app, &callback).await;

    let browser = driver.session(&chromium_bin).await;
    let email = "newcomer@example.com";
    let (code, request) = drive(&browser, async {
        let request = auth_request(&app, &client.id, &callback);
        browser.goto(&request.url).await.expect("open the authorization URL");
        wait_for_url(&browser, &app.url("/login?rid=")).await;
        click(&browser, Locator::LinkText("Create account")).await;
        wait_for_url(&browser, &app.url("/register?rid=")).await;
        assert_eq!(browser.title().await.expect("title"), "Create account for Example App");
        for (id, value) in
            [("email", email), ("name", "Sam Newcomer"), ("password", TEST_PASSWORD), ("confirm", TEST_PASSWORD)]
        {
            browser.find(Locator::Id(id)).await.expect("a field").send_keys(value).await.expect("type");
        }
        screenshot(&browser, "register.png").await;
        click(&browser, Locator::Css("form[action='/register'] button[type='submit']")).await;
        wait_for_url(&browser, &app.url("/check-email?")).await;
        assert_eq!(text_of(&browser, Locator::Id("page-title")).await, "Check your email");
        screenshot(&browser, "check-email.png").await;

        // The link from the message the SMTP server received, opened in the same browser.
        let message = smtp.nth(email, 1).await;
        browser.goto(&message.link(&app.url("/verify-email?token="))).await.expect("open the emailed link");
        wait_for_title(&browser, "Verify your email address").await;
        click(&browser, Locator::Css("form[action='/verify-email'] button[type='submit']")).await;
        wait_for_url(&browser, &app.url("/login?")).await;
        assert_eq!(
            text_of(&browser, Locator::Id("notice")).await,
            "Your email address is verified. Sign in to continue."
        );
        let typed = browser.find(Locator::Id("email")).await.expect("email input").prop("value").await.expect("value");
        assert_eq!(typed.as_deref(), Some(email), "the address is filled in");
        browser.find(Locator::Id("password")).await.expect("password").send_keys(TEST_PASSWORD).await.expect("type");
        click(&browser, Locator::Css("form[action='/login'] button[type='submit']")).await;
        approve_consent(&browser, &app, email, None).await;
        let code = code_at_callback(&browser, &app, &callback, &request).await;
        (code, request)
    })
    .await;
    let claims = redeem(&app, &client, &callback, &code, &request).await;
    assert_eq!(claims["email"], email);
    assert_eq!(claims["email_verified"], true);
}

/// Issue 12: "Forgot password?" in Chromium, through the emailed link to the new-password page
/// and back to sign-in. Screenshots: forgot-password.png, reset-password.png.
#[tokio::test]
#[cfg_attr(
    no_browser,
    ignore = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
)]
async fn a_person_resets_a_forgotten_password_in_chromium() {
    let (chromedriver_bin, chromium_bin) = browser_binaries();
    let driver = ChromeDriver::start(&chromedriver_bin).await;
    let (app, smtp) = crate::mailbox::spawn_mail_app(|_| {}).await;
    let user = app.user("forgetful@example.com").await;
    let browser = driver.session(&chromium_bin).await;
    let new_password = crate::mailbox::NEW_PASSWORD;
    drive(&browser, async {
        browser.goto(&app.url("/login")).await.expect("open the sign-in page");
        click(&browser, Locator::LinkText("Forgot password?")).await;
        wait_for_url(&browser, &app.url("/forgot-password")).await;
        browser.find(Locator::Id("email")).await.expect("email").send_keys(&user.email).await.expect("type");
        screenshot(&browser, "forgot-password.png").await;
        click(&browser, Locator::Css("form[action='/forgot-password'] button[type='submit']")).await;
        wait_for_url(&browser, &app.url("/check-email?sent=reset")).await;

        let message = smtp.nth(&user.email, 1).await;
        browser.goto(&message.link(&app.url("/reset-password?token="))).await.expect("open the emailed link");
        wait_for_title(&browser, "Choose a new password").await;
        for id in ["password", "confirm"] {
            browser.find(Locator::Id(id)).await.expect("a field").send_keys(new_password).await.expect("type");
        }
        screenshot(&browser, "reset-password.png").await;
        click(&browser, Locator::Css("form[action='/reset-password'] button[type='submit']")).await;
        wait_for_url(&browser, &app.url("/login?")).await;
        let notice = text_of(&browser, Locator::Id("notice")).await;
        assert!(notice.starts_with("Your password was changed"), "{notice}");
        browser.find(Locator::Id("password")).await.expect("password").send_keys(new_password).await.expect("type");
        click(&browser, Locator::Css("form[action='/login'] button[type='submit']")).await;
        wait_for_title(&browser, "You are signed in").await;
    })
    .await;
    assert_eq!(smtp.nth(&user.email, 2).await.subject, "Your password was changed");
}
