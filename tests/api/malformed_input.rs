//! Malformed input on every route and parameter (issue 9, item 6 and its table test;
//! shared/security.md, "Malformed input anywhere … a 4xx, never a panic or a 5xx").
//!
//! Every route of `src/http/paths.rs`, with GET and with POST where it serves them, and every
//! parameter its handler reads (query and form), gets control characters, invalid UTF-8
//! percent-encodings, raw non-ASCII and invalid bytes, and 10 KB values — one parameter at a
//! time, the others valid: a signed-in session, its CSRF token and a live pending
//! authorization request (`rid`), so the deep code paths run too. Every answer is below 500,
//! and every `Location` is a valid header value (visible ASCII) that parses as a URL.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{authorize_url, hidden_field, location, pkce, spawn_app_with, TestApp};

const SCOPES: &str = "openid email offline_access";

/// The malformed values, as they go on the wire (already percent-encoded where they are).
fn bad_values() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("%00", b"%00".to_vec()),
        ("%0a", b"%0a".to_vec()),
        ("%0d%0a", b"%0d%0a".to_vec()),
        ("CRLF + header", b"x%0d%0aSet-Cookie:%20a=b".to_vec()),
        ("%7f", b"%7f".to_vec()),
        ("%ff", b"%ff".to_vec()),
        ("%c3%28", b"%c3%28".to_vec()),
        ("%e2%80%ae (RTL override)", b"%e2%80%ae".to_vec()),
        ("encoded & = #", b"a%26b%3dc%23d%3f".to_vec()),
        ("raw non-ASCII", "é漢字".as_bytes().to_vec()),
        ("raw invalid UTF-8", vec![b'a', 0xff, 0xfe, b'b']),
        ("raw DEL", vec![b'a', 0x7f, b'b']),
        ("10 KB", vec![b'a'; 10 * 1024]),
        ("10 KB of %0a", b"%0a".repeat(10 * 1024 / 3)),
        ("10 KB of é", "é".repeat(5 * 1024).into_bytes()),
    ]
}

/// Bytes a URL parser would reject or rewrite: such values go over a raw socket.
fn needs_raw_socket(value: &[u8]) -> bool {
    !value.iter().all(|b| b.is_ascii_graphic())
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `name=value&…`, every pair encoded except the one under test, which goes as is.
fn wire(params: &[(&str, String)], tested: Option<(usize, &[u8])>, extra: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend_from_slice(encode(name).as_bytes());
        out.push(b'=');
        match tested {
            Some((at, bad)) if at == i => out.extend_from_slice(bad),
            _ => out.extend_from_slice(encode(value).as_bytes()),
        }
    }
    if let Some(junk) = extra {
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend_from_slice(b"x=");
        out.extend_from_slice(junk);
    }
    out
}

/// What came back: the status and the `Location` header's raw bytes.
struct Answer {
    status: u16,
    location: Option<Vec<u8>>,
}

struct Tester<'a> {
    app: &'a TestApp,
    jar: Arc<Jar>,
    browser: reqwest::Client,
    failures: Vec<String>,
    requests: usize,
}

impl Tester<'_> {
    fn cookie(&self) -> Option<String> {
        let url = url::Url::parse(&self.app.address).unwrap();
        self.jar.cookies(&url).and_then(|v| v.to_str().ok().map(str::to_string))
    }

    /// GET over a raw socket, so raw bytes reach the server exactly as given.
    async fn raw_get(&self, target: &[u8], headers: &[(&str, &[u8])]) -> Answer {
        let port = url::Url::parse(&self.app.address).unwrap().port().unwrap();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(format!(" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n").as_bytes());
        if let Some(cookie) = self.cookie() {
            request.extend_from_slice(format!("Cookie: {cookie}\r\n").as_bytes());
        }
        for (name, value) in headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
        let head = &response[..head_end];
        let status_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let status = String::from_utf8_lossy(status_line)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {:?}", String::from_utf8_lossy(head)));
        let location = head
            .split(|b| *b == b'\n')
            .find(|line| line.len() > 9 && line[..9].eq_ignore_ascii_case(b"location:"))
            .map(|line| line[9..].trim_ascii().to_vec());
        Answer { status, location }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            location: response.headers().get("location").map(|v| v.as_bytes().to_vec()),
        }
    }

    async fn get(&self, path: &str, query: &[u8], headers: &[(&str, &[u8])]) -> Answer {
        let mut target = path.as_bytes().to_vec();
        if !query.is_empty() {
            target.push(b'?');
            target.extend_from_slice(query);
        }
        if needs_raw_socket(&target) || !headers.is_empty() {
            return self.raw_get(&target, headers).await;
        }
        let url = format!("{}{}", self.app.address, String::from_utf8(target).unwrap());
        self.send(self.browser.get(url)).await
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Answer {
        let request = self
            .browser
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    fn check(&mut self, what: String, answer: Answer) {
        self.requests += 1;
        if answer.status >= 500 {
            self.failures.push(format!("{what}: {}", answer.status));
        }
        if (300..400).contains(&answer.status) {
            let Some(raw) = answer.location else {
                self.failures.push(format!("{what}: a {} without Location", answer.status));
                return;
            };
            let valid = raw.iter().all(|b| b.is_ascii_graphic())
                && std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|l| url::Url::parse(&self.app.address).unwrap().join(l).ok())
                    .is_some();
            if !valid {
                self.failures.push(format!(
                    "{what}: Location {:?} is not a valid URL",
                    String::from_utf8_lossy(&raw).chars().take(80).collect::<String>()
                ));
            }
        }
    }
}

/// A route and the parameters its handler reads, with valid values.
struct Route {
    path: &'static str,
    get: bool,
    post: bool,
    params: Vec<(&'static str, String)>,
}

fn route(path: &'static str, get: bool, post: bool, params: &[(&'static str, &str)]) -> Route {
    Route { path, get, post, params: params.iter().map(|(n, v)| (*n, v.to_string())).collect() }
}

#[tokio::test]
async fn every_parameter_of_every_route_answers_4xx_never_5xx_to_malformed_values() {
    let app = spawn_app_with(|s| {
        // Failures are the point here; no lock or per-address pause may hide a deeper path.
        s.lockout_threshold = 1000;
        s.ip_failure_burst = 1_000_000;
        s.ip_failures_per_minute = 1_000_000;
    })
    .await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let service = app.service_client(&[], &[]).await;
    let jar = Arc::new(Jar::default());
    let b = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Signed in, consent given, tokens in hand.
    let p = pkce();
    let code = app.code_for(&b, &client, &user.email, SCOPES, &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200);
    let access_token = tokens["access_token"].as_str().unwrap().to_string();
    let id_token = tokens["id_token"].as_str().unwrap().to_string();
    let mut t = Tester { app: &app, jar, browser: b.clone(), failures: Vec::new(), requests: 0 };
    // The same requests from a browser without a session take the other branches (sign-in
    // redirects that carry `rid`, CSRF refusals).
    let anonymous_jar = Arc::new(Jar::default());
    let anonymous_browser = reqwest::Client::builder()
        .cookie_provider(anonymous_jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut anonymous =
        Tester { app: &app, jar: anonymous_jar, browser: anonymous_browser, failures: Vec::new(), requests: 0 };

    // A live pending request (prompt=consent waits on the consent page) and the CSRF token.
    let pending = || async {
        let ask = b
            .get(authorize_url(&app, &client, SCOPES, &pkce().challenge, &[("prompt", "consent")]))
            .send()
            .await
            .unwrap();
        let consent = location(&ask);
        let rid = consent.trim_start_matches("/consent?rid=").to_string();
        let page = b.get(app.url(&consent)).send().await.unwrap().text().await.unwrap();
        (rid, hidden_field(&page, "csrf"))
    };

    let challenge = pkce().challenge;
    let authorize_params = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", SCOPES),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("prompt", "login"),
        ("max_age", "3600"),
        ("login_hint", "ann@example.com"),
        ("acr_values", "urn:example:pwd"),
        ("response_mode", "query"),
        ("id_token_hint", id_token.as_str()),
        ("request", "x"),
        ("request_uri", "x"),
        ("ui_locales", "en"),
    ];
    let fake = "A".repeat(43);
    // Built per route, so each starts with a fresh pending request.
    let routes = |rid: &str, csrf: &str| {
        vec![
            route(
                "/consent",
                true,
                true,
                &[("csrf", csrf), ("rid", rid), ("decision", "approve"), ("scope", "openid")],
            ),
            route("/authorize/continue", true, false, &[("rid", rid)]),
            route(
                "/login",
                true,
                true,
                &[
                    ("csrf", csrf),
                    ("rid", rid),
                    ("next", "account"),
                    ("email", "bob@example.com"),
                    ("password", "not the password"),
                ],
            ),
            route("/login/mfa", true, true, &[("csrf", csrf), ("rid", rid), ("next", "account"), ("code", "123456")]),
            route("/account", true, false, &[]),
            route(
                "/account/password",
                false,
                true,
                &[
                    ("csrf", csrf),
                    ("current", "not the password"),
                    ("new", "a new long passphrase"),
                    ("confirm", "a new long passphrase"),
                ],
            ),
            route("/account/totp", true, true, &[("csrf", csrf), ("rid", rid), ("code", "123456")]),
            route("/account/totp/remove", false, true, &[("csrf", csrf), ("rid", rid), ("code", "123456")]),
            route("/account/recovery-codes", true, true, &[("csrf", csrf), ("rid", rid)]),
            route("/account/apps/revoke", false, true, &[("csrf", csrf), ("client_id", "not-an-app")]),
            // No id_token_hint and no confirm in the baseline: the confirmation page, so the
            // session lives on for the other routes.
            route(
                "/logout",
                true,
                true,
                &[
                    ("csrf", csrf),
                    ("client_id", client.id.as_str()),
                    ("post_logout_redirect_uri", client.post_logout_uri.as_str()),
                    ("state", "st-1"),
                    ("confirm", "no"),
                ],
            ),
            // The hint on its own: a valid one would sign the session out on GET.
            route("/logout", true, true, &[("id_token_hint", "not-a-token")]),
            route("/userinfo", true, true, &[("access_token", access_token.as_str())]),
            route(
                "/token",
                false,
                true,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", fake.as_str()),
                    ("redirect_uri", client.redirect_uri.as_str()),
                    ("code_verifier", fake.as_str()),
                    ("client_id", client.id.as_str()),
                    ("client_secret", client.secret.as_str()),
                ],
            ),
            route(
                "/token",
                false,
                true,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", fake.as_str()),
                    ("scope", "openid"),
                    ("client_id", client.id.as_str()),
                    ("client_secret", client.secret.as_str()),
                ],
            ),
            route(
                "/token",
                false,
                true,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", service.id.as_str()),
                    ("client_secret", service.secret.as_str()),
                ],
            ),
            // Revocation and introspection (issue 11 items 2 and 3), as a service that may do
            // neither to this token: nothing is revoked, the session's grant lives on.
            route(
                "/revoke",
                false,
                true,
                &[
                    ("token", access_token.as_str()),
                    ("token_type_hint", "access_token"),
                    ("client_id", service.id.as_str()),
                    ("client_secret", service.secret.as_str()),
                ],
            ),
            route(
                "/introspect",
                false,
                true,
                &[
                    ("token", access_token.as_str()),
                    ("token_type_hint", "access_token"),
                    ("client_id", service.id.as_str()),
                    ("client_secret", service.secret.as_str()),
                ],
            ),
            route("/authorize", true, true, &authorize_params),
            route("/", true, false, &[]),
            route("/.well-known/openid-configuration", true, false, &[]),
            route("/.well-known/oauth-authorization-server", true, false, &[]),
            route("/.well-known/jwks.json", true, false, &[]),
            route("/healthz", true, false, &[]),
            route("/readyz", true, false, &[]),
            route("/assets/latchkey.css", true, false, &[]),
        ]
    };
    let count = routes("", "").len();
    for index in 0..count {
        let (rid, csrf) = pending().await;
        let route = routes(&rid, &csrf).swap_remove(index);
        for (label, bad) in bad_values() {
            // Each parameter in turn; with none, an unknown parameter `x` carries the value.
            let cases: Vec<(String, Vec<u8>)> = if route.params.is_empty() {
                vec![("x".to_string(), wire(&route.params, None, Some(&bad)))]
            } else {
                (0..route.params.len())
                    .map(|i| (route.params[i].0.to_string(), wire(&route.params, Some((i, &bad)), None)))
                    .collect()
            };
            for (name, encoded) in cases {
                for (who, tester) in [("signed in", &mut t), ("no session", &mut anonymous)] {
                    if route.get {
                        let answer = tester.get(route.path, &encoded, &[]).await;
                        tester.check(format!("{who}: GET {} {name}={label}", route.path), answer);
                    }
                    if route.post {
                        let answer = tester.post(route.path, encoded.clone()).await;
                        tester.check(format!("{who}: POST {} {name}={label}", route.path), answer);
                    }
                }
            }
        }
    }

    // Credentials in headers: Basic at /token (form-decoded by the server), Bearer at /userinfo.
    for (label, bad) in bad_values() {
        use base64::Engine;
        let mut pair = bad.clone();
        pair.extend_from_slice(b":secret");
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&pair));
        let request =
            app.http.post(app.token_url()).header("authorization", basic).form(&[("grant_type", "client_credentials")]);
        let answer = t.send(request).await;
        t.check(format!("POST /token Basic {label}"), answer);
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(&bad);
        if !bad.iter().any(|b| b.is_ascii_control()) {
            let answer = t.get("/userinfo", b"", &[("Authorization", &bearer)]).await;
            t.check(format!("GET /userinfo Bearer {label}"), answer);
        }
    }

    t.failures.append(&mut anonymous.failures);
    t.requests += anonymous.requests;
    assert!(
        t.failures.is_empty(),
        "{} of {} requests failed:\n{}",
        t.failures.len(),
        t.requests,
        t.failures.join("\n")
    );
    // The session lived through it all, so the deep paths ran signed in.
    let account = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status().as_u16(), 200, "still signed in");
    eprintln!("{} malformed requests, none answered 5xx", t.requests);
}

/// The reported case (issue 9, item 6): a malformed `rid` at `/consent` went into `Location`
/// unencoded and gave a 500. Each of these is a 400 page now, signed in or not.
#[tokio::test]
async fn malformed_rid_is_a_400_page_not_a_500() {
    let app = spawn_app_with(|_| {}).await;
    let t = Tester {
        app: &app,
        jar: Arc::new(Jar::default()),
        browser: app.http.clone(),
        failures: Vec::new(),
        requests: 0,
    };
    let cases: [&[u8]; 7] = [b"%0a", b"%00", b"%7f", b"%0d%0a", b"%ff", "é".as_bytes(), b"a%20b"];
    for path in ["/consent", "/authorize/continue", "/login", "/login/mfa"] {
        for rid in cases {
            let mut query = b"rid=".to_vec();
            query.extend_from_slice(rid);
            let answer = t.get(path, &query, &[]).await;
            assert_eq!(answer.status, 400, "GET {path}?rid={}", String::from_utf8_lossy(rid));
            assert!(answer.location.is_none());
        }
    }
}

/// Requests the page handlers' extractors refuse (a repeated query parameter, a form field given
/// twice) get the readable error page with their 4xx status, not axum's plain-text rejection.
#[tokio::test]
async fn requests_the_extractors_refuse_get_an_error_page() {
    let app = spawn_app_with(|_| {}).await;
    let checks = [
        ("GET", "/consent?rid=a&rid=b", ""),
        ("GET", "/login?next=account&next=x", ""),
        ("GET", "/account/totp?rid=a&rid=b", ""),
        ("POST", "/login", "csrf=a&csrf=b&email=x&password=y"),
        ("POST", "/login/mfa", "code=1&code=2"),
        ("POST", "/account/password", "new=a&new=b"),
    ];
    for (method, path, body) in checks {
        let request = match method {
            "GET" => app.http.get(app.url(path)),
            _ => app
                .http
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string()),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!((400..500).contains(&status), "{method} {path}: {status}");
        assert!(content_type.starts_with("text/html"), "{method} {path}: a page, got {content_type}");
        assert!(response.text().await.unwrap().contains("Invalid request"), "{method} {path}");
    }
}
