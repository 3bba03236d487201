//! Brute-force defence and password policy: per-account lockout (atomic, across parallel
//! requests), equal answers, progressive delay, per-IP 429s (issue 4).

use std::process::Output;
use std::time::{Duration, Instant};

use latchkey::admin::clients::AdminError;
use latchkey::admin::users::{self, NewUser};
use latchkey::audit::{AuditEvent, AuditFilter};
use latchkey::authn::totp::code_at;
use latchkey::authn::PasswordError;
use latchkey::config::HumanDuration;
use latchkey::state::unix_now;
use latchkey::store::{AuditStore, UserStore};
use reqwest::header::HeaderMap;

use crate::helpers::*;

/// The one sign-in failure message (web/login.rs), for every kind of failure.
const FAILED: &str =
    "The email or password is incorrect. After several failed attempts, sign-in for an account pauses for a while.";

/// A POST /login answer, with what is needed to compare it with another.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
    csrf: String,
    email: String,
}

impl Answer {
    fn location(&self) -> Option<&str> {
        self.headers.get("location").map(|v| v.to_str().unwrap())
    }

    /// What an observer can compare: the page without the CSRF token and the echoed email.
    fn normalised(&self) -> String {
        assert!(!self.csrf.is_empty() && !self.email.is_empty());
        self.body.replace(&self.csrf, "CSRF").replace(&self.email, "EMAIL")
    }

    fn retry_after(&self) -> Option<u64> {
        self.headers.get("retry-after").map(|v| v.to_str().unwrap().parse().expect("Retry-After is delay-seconds"))
    }

    /// The failure page, exactly as every kind of failure must look.
    fn assert_failure_page(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert!(self.location().is_none());
        assert!(self.retry_after().is_none(), "a per-account failure says nothing about timing");
        assert!(self.body.contains(&format!("<p class=\"error\" role=\"alert\" id=\"login-error\">{FAILED}</p>")));
        assert!(self.body.contains("action=\"/login\""));
    }

    fn assert_signed_in(&self) {
        assert_eq!(self.status, 303, "{}", self.body);
        assert_eq!(self.location(), Some("/"));
    }
}

/// The sign-in page's CSRF token for `b` (which gets a session on the way).
async fn login_csrf(app: &TestApp, b: &reqwest::Client) -> String {
    let page = b.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    hidden_field(&page.text().await.unwrap(), "csrf")
}

async fn post_login(
    app: &TestApp,
    b: &reqwest::Client,
    csrf: &str,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Answer {
    let mut request = b.post(app.url("/login")).form(&[("csrf", csrf), ("email", email), ("password", password)]);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Answer { status, headers, body, csrf: csrf.to_string(), email: email.to_string() }
}

/// One sign-in attempt from a new browser.
async fn attempt(app: &TestApp, email: &str, password: &str) -> Answer {
    attempt_from(app, email, password, None).await
}

async fn attempt_from(app: &TestApp, email: &str, password: &str, forwarded_for: Option<&str>) -> Answer {
    let b = browser();
    let csrf = login_csrf(app, &b).await;
    post_login(app, &b, &csrf, email, password, forwarded_for).await
}

/// Events of one type, oldest first.
async fn events(app: &TestApp, event: &str) -> Vec<AuditEvent> {
    let filter = AuditFilter { user_sub: None, event: Some(event.to_string()), limit: 10_000, ..Default::default() };
    let mut events = app.state.store().list_audit_events(&filter).await.unwrap();
    events.reverse();
    events
}

/// The `reason` of each sign_in.failed event, oldest first.
async fn failure_reasons(app: &TestApp) -> Vec<String> {
    events(app, "sign_in.failed").await.iter().map(|e| e.detail["reason"].as_str().unwrap().to_string()).collect()
}

fn count(reasons: &[String], reason: &str) -> usize {
    reasons.iter().filter(|r| *r == reason).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_on_two_replicas_check_at_most_the_threshold() {
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 5;
        s.ip_failure_burst = 1000;
    })
    .await;
    // A second replica on the same database: the counter lives there, not in either process.
    let replica = spawn_app_on(app.db.alias(), app.settings.clone(), |_| {}).await;
    let user = app.user("ann@example.com").await;
    let (a, b) = (browser(), browser());
    let (csrf_a, csrf_b) = (login_csrf(&app, &a).await, login_csrf(&replica, &b).await);

    let guesses = (0..20).map(|i| {
        let (server, client, csrf) = if i % 2 == 0 { (&app, &a, &csrf_a) } else { (&replica, &b, &csrf_b) };
        let email = user.email.clone();
        async move { post_login(server, client, csrf, &email, &format!("wrong guess number {i}"), None).await }
    });
    let answers = futures::future::join_all(guesses).await;
    for answer in &answers {
        answer.assert_failure_page();
        assert_eq!(answer.normalised(), answers[0].normalised(), "checked and locked guesses look alike");
    }
    let reasons = failure_reasons(&app).await;
    assert_eq!(reasons.len(), 20);
    assert_eq!(count(&reasons, "wrong_password"), 5, "only the threshold's worth of guesses was checked: {reasons:?}");
    assert_eq!(count(&reasons, "locked"), 15, "{reasons:?}");
    let locked = events(&app, "account.locked").await;
    assert_eq!(locked.len(), 1, "exactly one guess started the lock");
    assert_eq!(locked[0].detail["email"], "ann@example.com");
    assert_eq!(locked[0].detail["factor"], "password");

    // Now the right password is refused on both replicas with the very same page, unchecked.
    for server in [&app, &replica] {
        let answer = attempt(server, &user.email, TEST_PASSWORD).await;
        answer.assert_failure_page();
        assert_eq!(answer.normalised(), answers[0].normalised());
    }
    let reasons = failure_reasons(&app).await;
    assert_eq!((count(&reasons, "wrong_password"), count(&reasons, "locked")), (5, 17), "{reasons:?}");
    assert!(events(&app, "sign_in.succeeded").await.is_empty());
    assert_eq!(events(&app, "account.locked").await.len(), 1, "the lock is recorded once");
    replica.stop().await;
}

#[tokio::test]
async fn a_lock_ends_after_lockout_duration() {
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 2;
        s.lockout_duration = HumanDuration::secs(2);
    })
    .await;
    let user = app.user("ann@example.com").await;
    for _ in 0..2 {
        attempt(&app, &user.email, "not the password").await.assert_failure_page();
    }
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_failure_page();
    assert_eq!(failure_reasons(&app).await, ["wrong_password", "wrong_password", "locked"]);

    tokio::time::sleep(Duration::from_millis(3200)).await;
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();
    assert_eq!(events(&app, "sign_in.succeeded").await.len(), 1);
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_failure_count() {
    let app = spawn_app_with(|s| s.lockout_threshold = 3).await;
    let user = app.user("ann@example.com").await;
    for round in 0..3 {
        for _ in 0..2 {
            attempt(&app, &user.email, "not the password").await.assert_failure_page();
        }
        // The third attempt of each round: the last one allowed, and it succeeds.
        let answer = attempt(&app, &user.email, TEST_PASSWORD).await;
        assert_eq!(answer.status, 303, "round {round}: {}", answer.body);
    }
    let reasons = failure_reasons(&app).await;
    assert_eq!(reasons.len(), 6);
    assert_eq!(count(&reasons, "wrong_password"), 6, "nothing was ever locked: {reasons:?}");
    assert!(events(&app, "account.locked").await.is_empty());
}

#[tokio::test]
async fn failures_older_than_the_window_are_forgotten() {
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 3;
        s.failure_window = HumanDuration::secs(2);
    })
    .await;
    let user = app.user("ann@example.com").await;
    for _ in 0..2 {
        attempt(&app, &user.email, "not the password").await.assert_failure_page();
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;
    for _ in 0..2 {
        attempt(&app, &user.email, "not the password").await.assert_failure_page();
    }
    // Four failures in all, but only two in the window: the password is still checked.
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();
    assert_eq!(count(&failure_reasons(&app).await, "locked"), 0);
}

#[tokio::test]
async fn unknown_wrong_disabled_and_locked_answers_are_identical() {
    let app = spawn_app_with(|s| s.lockout_threshold = 2).await;
    let ann = app.user("ann@example.com").await;
    let dis = app.user("dis@example.com").await;
    users::disable(app.state.store(), &dis.sub, &latchkey::admin::actor::Actor::Cli, unix_now()).await.unwrap();
    let bob = app.user("bob@example.com").await;
    for _ in 0..2 {
        attempt(&app, &bob.email, "not the password").await.assert_failure_page();
    }

    let answers = [
        attempt(&app, "nobody@example.com", TEST_PASSWORD).await,
        attempt(&app, &ann.email, "not the password").await,
        attempt(&app, &dis.email, TEST_PASSWORD).await,
        // Locked, and the password is right.
        attempt(&app, &bob.email, TEST_PASSWORD).await,
    ];
    let header_names = |a: &Answer| {
        let mut names: Vec<String> =
            a.headers.keys().map(|k| k.to_string()).filter(|k| k != "date" && k != "content-length").collect();
        names.sort();
        names
    };
    for answer in &answers {
        answer.assert_failure_page();
        assert_eq!(answer.normalised(), answers[0].normalised(), "{} differs", answer.email);
        assert_eq!(header_names(answer), header_names(&answers[0]), "{} differs", answer.email);
        for name in ["content-type", "cache-control"] {
            assert_eq!(answer.headers.get(name), answers[0].headers.get(name), "{name}");
        }
    }
    // Only the audit trail knows the difference.
    let reasons = failure_reasons(&app).await;
    assert_eq!(reasons[2..], ["unknown_user", "wrong_password", "disabled", "locked"]);
}

#[tokio::test]
async fn unknown_emails_lock_exactly_like_known_ones() {
    let app = spawn_app_with(|s| s.lockout_threshold = 3).await;
    let ann = app.user("ann@example.com").await;
    let ghost = "ghost@example.com";
    for step in 0..5 {
        let known = attempt(&app, &ann.email, "not the password").await;
        let unknown = attempt(&app, ghost, "not the password").await;
        known.assert_failure_page();
        unknown.assert_failure_page();
        assert_eq!(known.normalised(), unknown.normalised(), "step {step}");
    }
    let locked = events(&app, "account.locked").await;
    let emails: Vec<&str> = locked.iter().map(|e| e.detail["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["ann@example.com", ghost], "an email without an account locks too");
    let reasons = failure_reasons(&app).await;
    assert_eq!(
        reasons,
        [
            "wrong_password",
            "unknown_user",
            "wrong_password",
            "unknown_user",
            "wrong_password",
            "unknown_user",
            "locked",
            "locked",
            "locked",
            "locked"
        ]
    );
    // The counter is per email as typed, ignoring case and surrounding spaces: another spelling
    // of the address does not get fresh guesses, not even with the right password.
    attempt(&app, " ANN@Example.com ", TEST_PASSWORD).await.assert_failure_page();
    attempt(&app, "Ghost@EXAMPLE.com", TEST_PASSWORD).await.assert_failure_page();
    let reasons = failure_reasons(&app).await;
    assert_eq!(reasons[10..], ["locked", "locked"]);
    // Other accounts are not affected.
    let carl = app.user("carl@example.com").await;
    attempt(&app, &carl.email, TEST_PASSWORD).await.assert_signed_in();
}

/// The delay each failure was given is read from the audit trail (`delay_ms`), so nothing here
/// depends on how fast the machine is (issue 10 item 8); elapsed time is checked only from
/// below (a delay is really waited), which a busy machine can't break.
#[tokio::test]
async fn failed_answers_are_delayed_progressively_per_account() {
    let delay = Duration::from_secs(1);
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 20;
        s.failure_delay_after = 1;
        s.failure_delay = HumanDuration(delay);
        s.failure_delay_max = HumanDuration(delay * 2);
    })
    .await;
    let user = app.user("ann@example.com").await;
    let timed = |email: String, password: &'static str| {
        let app = &app;
        async move {
            let b = browser();
            let csrf = login_csrf(app, &b).await;
            let started = Instant::now();
            let answer = post_login(app, &b, &csrf, &email, password, None).await;
            (answer, started.elapsed())
        }
    };
    let delays = || async {
        events(&app, "sign_in.failed").await.iter().map(|e| e.detail["delay_ms"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    for _ in 0..4 {
        let (answer, elapsed) = timed(user.email.clone(), "not the password").await;
        answer.assert_failure_page();
        let applied = *delays().await.last().unwrap();
        assert!(elapsed >= Duration::from_millis(applied), "the delay is really waited: {elapsed:?} < {applied} ms");
    }
    // At once, then failure_delay, doubling, capped at failure_delay_max.
    assert_eq!(delays().await, [0, 1000, 2000, 2000]);
    // The delay belongs to the account: another email's first failure is not held back…
    timed("someone.else@example.com".into(), "not the password").await.0.assert_failure_page();
    assert_eq!(delays().await, [0, 1000, 2000, 2000, 0]);
    // …and the right password is answered, and clears the count: the next failure is not held.
    timed(user.email.clone(), TEST_PASSWORD).await.0.assert_signed_in();
    timed(user.email.clone(), "not the password").await.0.assert_failure_page();
    assert_eq!(delays().await, [0, 1000, 2000, 2000, 0, 0]);
}

/// shared/security.md: an unknown email costs the same argon2 verification as a wrong password
/// (the same argon2 computation on a fresh salt). Counted, not timed (issue 10 item 6); a lock costs none.
#[tokio::test]
async fn unknown_wrong_and_disabled_each_cost_exactly_one_verification() {
    let app = spawn_app_with(|s| s.lockout_threshold = 2).await;
    let user = app.user("ann@example.com").await;
    let disabled = app.user("dis@example.com").await;
    latchkey::admin::users::disable(app.state.store(), &disabled.sub, &latchkey::admin::actor::Actor::Cli, unix_now())
        .await
        .unwrap();
    let hasher = app.state.passwords();
    for (email, password) in [
        ("nobody@example.com", "a guess"),
        (user.email.as_str(), "not the password"),
        (disabled.email.as_str(), TEST_PASSWORD),
    ] {
        let before = hasher.verifications_computed();
        attempt(&app, email, password).await.assert_failure_page();
        assert_eq!(hasher.verifications_computed() - before, 1, "{email}");
    }
    // ann now has one failure; the second locks, and a locked email costs no verification.
    attempt(&app, &user.email, "not the password").await.assert_failure_page();
    let before = hasher.verifications_computed();
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_failure_page();
    assert_eq!(hasher.verifications_computed(), before, "a locked email is refused without a verification");
}

#[tokio::test]
async fn an_address_with_too_many_failures_gets_429_on_the_login_page() {
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 100;
        s.ip_failure_burst = 3;
        s.ip_failures_per_minute = 1;
    })
    .await;
    let user = app.user("ann@example.com").await;
    // Spread over several accounts, so the per-account counter is no help to the defender.
    for i in 0..4 {
        attempt(&app, &format!("target{i}@example.com"), "guess").await.assert_failure_page();
    }
    // The fourth emptied the bucket: now even the right password is refused before any check.
    let blocked = attempt(&app, &user.email, TEST_PASSWORD).await;
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    let retry = blocked.retry_after().expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        blocked.body.contains(&format!("Too many failed attempts from your network. Try again in {retry} seconds.")),
        "{}",
        blocked.body
    );
    assert!(blocked.body.contains("action=\"/login\""), "the sign-in page, with the reason");
    assert_eq!(failure_reasons(&app).await.len(), 4, "the refused attempt was not checked");
    assert!(events(&app, "sign_in.succeeded").await.is_empty());
    // People guessing passwords and services authenticating are counted apart (issue 9 item 1):
    // a service at the same address is still served.
    let service = app.service_client(&["read"], &[]).await;
    let (status, headers, body) = app
        .post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), service.secret.as_str())))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!headers.contains_key("retry-after"));
}

#[tokio::test]
async fn failed_client_authentication_gets_429_per_address_and_client() {
    let app = spawn_app_with(|s| {
        s.ip_failure_burst = 4;
        s.ip_failures_per_minute = 20;
    })
    .await;
    let service = app.service_client(&["read"], &[]).await;
    let other = app.service_client(&["read"], &[]).await;
    let good = (service.id.as_str(), service.secret.as_str());
    // Errors of a client that authenticated are not guesses and never drain a bucket.
    for _ in 0..6 {
        let (status, _, body) =
            app.post_token(&[("grant_type", "client_credentials"), ("scope", "admin")], Some(good)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    }
    // Wrong secrets (invalid_client) do: the burst is answered, the failure that empties the
    // bucket too.
    for _ in 0..5 {
        let (status, _, body) =
            app.post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), "wrong-secret"))).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    }

    // Blocked: the correct secret gets 429 before anything is checked, with an RFC 6749 body.
    let (status, headers, body) = app.post_token(&[("grant_type", "client_credentials")], Some(good)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "one failure is forgiven every 3 s: {retry}");
    // The same secret sent in the body names the same client, and is blocked the same way.
    let (status, _, _) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", service.id.as_str()),
                ("client_secret", service.secret.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(status, 429);

    // Another service at the same address has its own bucket, and so do the people signing in.
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((other.id.as_str(), other.secret.as_str()))).await;
    assert_eq!(status, 200, "another client is not blocked: {body}");
    let user = app.user("ann@example.com").await;
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();

    // A client that waits as told is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], Some(good)).await;
    assert_eq!(status, 200, "after Retry-After: {body}");
    assert!(body["access_token"].is_string());
}

/// Issue 9 item 1: an app server renews tokens for all its users from one address, and expired
/// or revoked refresh tokens are ordinary traffic. They must never block the app, nor a
/// different service at the same address.
#[tokio::test]
async fn stale_refresh_tokens_and_codes_never_block_an_address() {
    let app = spawn_app_with(|s| {
        s.ip_failure_burst = 3;
        s.ip_failures_per_minute = 1;
    })
    .await;
    let web = app.web_app(false).await;
    let service = app.service_client(&["read"], &[]).await;
    for i in 0..25 {
        let (status, body) = app.refresh(&web, &format!("expired-refresh-token-{i}"), None).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "attempt {i}: {body}");
        let (status, _, body) = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", "made-up-code"),
                    ("redirect_uri", &web.redirect_uri),
                    ("code_verifier", &pkce().verifier),
                ],
                Some((web.id.as_str(), web.secret.as_str())),
            )
            .await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "attempt {i}: {body}");
    }
    let (status, _, body) = app
        .post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), service.secret.as_str())))
        .await;
    assert_eq!(status, 200, "another service at the same address: {body}");
    // The app itself still gets through with a real code.
    let b = browser();
    app.user("ann@example.com").await;
    let pair = pkce();
    let code = app.code_for(&b, &web, "ann@example.com", "openid", &pair).await;
    let (status, body) = app.redeem(&web, &code, Some(&pair.verifier)).await;
    assert_eq!(status, 200, "{body}");
}

/// Issue 9 item 1: services guessing secrets never throttle the sign-in pages at their address.
#[tokio::test]
async fn failed_client_authentication_never_throttles_the_sign_in_pages() {
    let app = spawn_app_with(|s| {
        s.ip_failure_burst = 2;
        s.ip_failures_per_minute = 1;
    })
    .await;
    let user = app.user("ann@example.com").await;
    let service = app.service_client(&["read"], &[]).await;
    for _ in 0..3 {
        let (status, _, _) =
            app.post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), "wrong"))).await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = app
        .post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), service.secret.as_str())))
        .await;
    assert_eq!(status, 429, "the service's own bucket is empty");
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_escape_the_block() {
    // No trusted proxies (the default): the header is only the client's say-so.
    let app = spawn_app_with(|s| {
        s.ip_failure_burst = 2;
        s.ip_failures_per_minute = 1;
    })
    .await;
    let user = app.user("ann@example.com").await;
    let service = app.service_client(&["read"], &[]).await;
    let token = |xff: String, secret: String| {
        let app = &app;
        let id = service.id.clone();
        async move {
            let response = app
                .http
                .post(app.token_url())
                .header("x-forwarded-for", xff)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    // A failure is recorded with the real peer address, not the claimed one.
    attempt_from(&app, &user.email, "not the password", Some("198.51.100.79")).await.assert_failure_page();
    let ips: Vec<Option<String>> = events(&app, "sign_in.failed").await.into_iter().map(|e| e.ip).collect();
    assert_eq!(ips, [Some("127.0.0.1".to_string())]);
    // Each further guess claims another address; they all drain 127.0.0.1's buckets.
    for i in 1..=3 {
        assert_eq!(token(format!("203.0.113.{i}"), "wrong-secret".into()).await, 401);
    }
    assert_eq!(token("198.51.100.77".into(), service.secret.clone()).await, 429, "a made-up address is no escape");
    for i in 1..=2 {
        attempt_from(&app, &user.email, "not the password", Some(&format!("198.51.100.{i}")))
            .await
            .assert_failure_page();
    }
    let blocked = attempt_from(&app, &user.email, TEST_PASSWORD, Some("198.51.100.78")).await;
    assert_eq!(blocked.status, 429);
    assert!(blocked.retry_after().is_some());
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client_that_is_throttled() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.ip_failure_burst = 2;
        s.ip_failures_per_minute = 1;
    })
    .await;
    let user = app.user("ann@example.com").await;
    let service = app.service_client(&["read"], &[]).await;
    let token = |xff: Option<&'static str>, secret: String| {
        let app = &app;
        let id = service.id.clone();
        async move {
            let mut request = app
                .http
                .post(app.token_url())
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")]);
            if let Some(xff) = xff {
                request = request.header("x-forwarded-for", xff);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    // Three sign-in failures from 203.0.113.7, behind the proxy.
    for _ in 0..3 {
        attempt_from(&app, &user.email, "not the password", Some("203.0.113.7")).await.assert_failure_page();
    }
    let ips: Vec<Option<String>> = events(&app, "sign_in.failed").await.into_iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![Some("203.0.113.7".to_string()); 3], "the audit trail names the forwarded client");

    // That address is blocked at sign-in (its services are counted apart)…
    let blocked = attempt_from(&app, &user.email, TEST_PASSWORD, Some("203.0.113.7")).await;
    assert_eq!(blocked.status, 429);
    assert!(blocked.retry_after().is_some());
    assert_eq!(token(Some("203.0.113.7"), service.secret.clone()).await, 200);
    // …also when it prepends a made-up address (the proxy appends the real one; read right to left)…
    let blocked = attempt_from(&app, &user.email, TEST_PASSWORD, Some("192.0.2.99, 203.0.113.7")).await;
    assert_eq!(blocked.status, 429);
    // …while another client behind the same proxy, and the proxy itself, have their own buckets.
    assert_eq!(token(Some("198.51.100.9"), service.secret.clone()).await, 200);
    attempt_from(&app, &user.email, TEST_PASSWORD, Some("198.51.100.9")).await.assert_signed_in();
    assert_eq!(token(None, service.secret.clone()).await, 200);

    // And 198.51.100.9 runs dry on its own failures, separately from 203.0.113.7's, also when
    // it prepends a made-up address.
    for _ in 0..3 {
        assert_eq!(token(Some("198.51.100.9"), "wrong-secret".into()).await, 401);
    }
    assert_eq!(token(Some("198.51.100.9"), service.secret.clone()).await, 429);
    assert_eq!(token(Some("192.0.2.99, 198.51.100.9"), service.secret.clone()).await, 429);
    assert_eq!(token(Some("198.51.100.10"), service.secret.clone()).await, 200);
}

// ---- The one-time-code page ----

/// A six-digit code that is not valid anywhere near now.
fn wrong_code(seed: &[u8]) -> String {
    let now = unix_now();
    let near: Vec<String> = (-3..=3).map(|k| code_at(seed, now + k * 30).unwrap()).collect();
    (0..10).map(|d| d.to_string().repeat(6)).find(|c| !near.contains(c)).unwrap()
}

#[tokio::test]
async fn wrong_codes_on_the_mfa_page_lock_the_second_step() {
    let app = spawn_app_with(|s| {
        s.lockout_threshold = 3;
        s.lockout_duration = HumanDuration::secs(2);
        s.ip_failure_burst = 1000;
    })
    .await;
    let user = app.user("ann@example.com").await;
    let seed = enrol_totp(&app, &signed_in(&app, &user.email, TEST_PASSWORD).await).await;

    let b = browser();
    let csrf = login_csrf(&app, &b).await;
    let password = post_login(&app, &b, &csrf, &user.email, TEST_PASSWORD, None).await;
    assert_eq!((password.status, password.location()), (303, Some("/login/mfa")));
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_field(&page, "csrf");
    let submit = |code: String| {
        let (b, app, csrf) = (&b, &app, &csrf);
        async move {
            let response =
                b.post(app.url("/login/mfa")).form(&[("csrf", csrf.as_str()), ("code", &code)]).send().await.unwrap();
            let status = response.status().as_u16();
            let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_string());
            (status, location, response.text().await.unwrap())
        }
    };
    for _ in 0..3 {
        let (status, location, body) = submit(wrong_code(&seed)).await;
        assert_eq!((status, location), (200, None));
        assert!(body.contains("That code is not right."), "{body}");
    }
    // The right code (the next step's, so not a replay of the enrolment code) is refused unchecked.
    let (status, location, body) = submit(code_at(&seed, unix_now() + 30).unwrap()).await;
    assert_eq!((status, location), (200, None), "locked: even the right code is refused");
    assert!(body.contains("Too many wrong codes."), "{body}");
    assert!(b.get(app.url("/account")).send().await.unwrap().status().is_redirection(), "not signed in");
    assert_eq!(events(&app, "mfa.failed").await.len(), 4);
    let locked = events(&app, "account.locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0].user_sub.as_deref(), Some(user.sub.as_str()));
    assert_eq!(locked[0].detail["factor"], "otp");
    assert!(events(&app, "sign_in.succeeded").await.iter().all(|e| e.detail["amr"].as_array().unwrap().len() == 1));

    // When the lock has run out, the right code completes the sign-in.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, location, _) = submit(code_at(&seed, unix_now() + 30).unwrap()).await;
    assert_eq!((status, location.as_deref()), (303, Some("/")));
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200);
}

// ---- Password policy ----

/// The account page's notice (shown once) and its CSRF token.
async fn account_page(app: &TestApp, b: &reqwest::Client) -> (Option<String>, String) {
    let response = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let page = response.text().await.unwrap();
    let notice = page.contains("id=\"notice\">").then(|| text_between(&page, "id=\"notice\">", "</p>").to_string());
    (notice, hidden_field(&page, "csrf"))
}

/// POST /account/password; returns the notice the account page then shows.
async fn change_password(app: &TestApp, b: &reqwest::Client, current: &str, new: &str, confirm: &str) -> String {
    let (_, csrf) = account_page(app, b).await;
    let response = b
        .post(app.url("/account/password"))
        .form(&[("csrf", csrf.as_str()), ("current", current), ("new", new), ("confirm", confirm)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(location(&response), "/account");
    account_page(app, b).await.0.expect("a notice")
}

#[tokio::test]
async fn the_account_page_enforces_the_password_policy_and_ends_other_sessions() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let older = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let strong = "maple quartz lantern drifts";

    let notice = change_password(&app, &b, TEST_PASSWORD, "password123", "password123").await;
    assert!(
        notice.starts_with("The new password was not accepted: the password is too easy to guess: "),
        "the reason is shown: {notice}"
    );
    assert!(notice.contains("This is a very common password."), "zxcvbn's reason: {notice}");
    let notice = change_password(&app, &b, TEST_PASSWORD, "ann@example.com", "ann@example.com").await;
    assert!(notice.contains("too easy to guess"), "the user's own email counts as guessable: {notice}");
    let notice = change_password(&app, &b, TEST_PASSWORD, "x7#Kq", "x7#Kq").await;
    assert_eq!(notice, "The new password was not accepted: the password must be at least 8 characters long.");
    let notice = change_password(&app, &b, TEST_PASSWORD, strong, "maple quartz lantern drift").await;
    assert_eq!(notice, "The two new passwords are not the same.");
    let notice = change_password(&app, &b, "not my password", strong, strong).await;
    assert_eq!(notice, "Your current password is not right.");
    // Nothing changed: the older session lives and the old password still works.
    assert_eq!(older.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200);
    assert!(events(&app, "password.changed").await.is_empty());
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();

    let notice = change_password(&app, &b, TEST_PASSWORD, strong, strong).await;
    assert_eq!(notice, "Your password was changed. You were signed out everywhere else.");
    // This session continues; the older one is over.
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200);
    let ended = older.get(app.url("/account")).send().await.unwrap();
    assert_eq!(ended.status().as_u16(), 303);
    assert_eq!(location(&ended), "/login?next=account");
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_failure_page();
    attempt(&app, &user.email, strong).await.assert_signed_in();
    assert_eq!(events(&app, "password.changed").await.len(), 1);
}

#[tokio::test]
async fn the_current_password_on_the_account_page_counts_toward_the_lock() {
    let app = spawn_app_with(|s| s.lockout_threshold = 3).await;
    let user = app.user("ann@example.com").await;
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let strong = "maple quartz lantern drifts";
    for _ in 0..3 {
        let notice = change_password(&app, &b, "a guess at it", strong, strong).await;
        assert_eq!(notice, "Your current password is not right.");
    }
    // A stolen session can't go on guessing: the right current password is refused now…
    let notice = change_password(&app, &b, TEST_PASSWORD, strong, strong).await;
    assert_eq!(notice, "Your current password is not right.");
    assert!(events(&app, "password.changed").await.is_empty());
    // …and so is signing in with it, because it is the same counter.
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_failure_page();
}

fn new_user(email: &str, name: Option<&str>, password: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: name.map(Into::into),
        roles: vec![],
        password: password.into(),
        email_verified: false,
    }
}

fn refusal(result: Result<latchkey::domain::User, AdminError>) -> String {
    match result {
        Err(AdminError::Invalid(message)) => message,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(user) => panic!("accepted {}", user.email),
    }
}

#[tokio::test]
async fn admin_user_creation_enforces_the_policy_and_keeps_long_unicode_passwords_whole() {
    let app = spawn_app().await;
    let (store, hasher, now) = (app.state.store(), app.state.passwords(), unix_now());
    let create = |email: &str, password: &str| {
        users::create(store, hasher, new_user(email, None, password), &latchkey::admin::actor::Actor::Cli, now)
    };

    assert_eq!(refusal(create("a@example.com", "Qz7!x").await), PasswordError::TooShort(8).to_string());
    // Length counts characters, not bytes: seven two-byte letters are too short.
    assert_eq!(refusal(create("a@example.com", "ÄÖÜäöüß").await), PasswordError::TooShort(8).to_string());
    for weak in ["password", "password123", "qwertyuiop", "iloveyou2", "11111111", "abcdefgh"] {
        let message = refusal(create("a@example.com", weak).await);
        assert!(message.starts_with("the password is too easy to guess"), "{weak}: {message}");
    }
    // The user's own email and name are guessable words: a password another user may have is
    // refused for the user it names.
    let jane = |password: &str| {
        users::create(
            store,
            hasher,
            new_user("jane.doe@example.com", Some("Jane Doe"), password),
            &latchkey::admin::actor::Actor::Cli,
            now,
        )
    };
    for named in ["jane.doe@example.com", "jane.doe@example.com!", "Jane.Doe@Example.com"] {
        let message = refusal(jane(named).await);
        assert!(message.starts_with("the password is too easy to guess"), "{named}: {message}");
    }
    users::create(
        store,
        hasher,
        new_user("bob@elsewhere.org", Some("Bob"), "jane.doe@example.com!"),
        &latchkey::admin::actor::Actor::Cli,
        now,
    )
    .await
    .expect("not guessable for Bob");
    assert_eq!(refusal(create("a@example.com", &"ẞ".repeat(400)).await), PasswordError::TooLong.to_string());
    let over = format!("{}z", latchkey::secret::random_token(768));
    assert_eq!(over.len(), 1025);
    assert_eq!(refusal(create("a@example.com", &over).await), PasswordError::TooLong.to_string());
    assert!(store.find_user_by_email("a@example.com").await.unwrap().is_none(), "nothing was created");
    assert!(store.find_user_by_email("jane.doe@example.com").await.unwrap().is_none());

    // A long Unicode passphrase is accepted and used whole: neither a prefix nor a one-letter
    // change signs in.
    let long: String =
        "Ünïcödé pässwörds — 日本語のパスフレーズ — ☃ ❄ and some plain words too; ".repeat(6).trim_end().to_string();
    assert!(long.chars().count() > 300 && long.len() <= 1024, "{} bytes", long.len());
    create("uni@example.com", &long).await.expect("a long Unicode password is accepted");
    let cut = |bytes: usize| {
        let mut end = bytes;
        while !long.is_char_boundary(end) {
            end -= 1;
        }
        long[..end].to_string()
    };
    for wrong in [cut(72), cut(128), cut(256), cut(long.len() - 1), long.replacen('☃', "⛄", 1)] {
        attempt(&app, "uni@example.com", &wrong).await.assert_failure_page();
    }
    attempt(&app, "uni@example.com", &long).await.assert_signed_in();
    // The longest allowed password, exactly 1024 bytes, works too.
    let longest = latchkey::secret::random_token(768);
    assert_eq!(longest.len(), 1024);
    create("max@example.com", &longest).await.expect("1024 bytes is allowed");
    attempt(&app, "max@example.com", &longest[..1023]).await.assert_failure_page();
    attempt(&app, "max@example.com", &longest).await.assert_signed_in();
}

#[tokio::test]
async fn admin_set_password_enforces_the_policy() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let (store, hasher, now) = (app.state.store(), app.state.passwords(), unix_now());
    let set = |password: String| {
        let sub = user.sub.clone();
        async move { users::set_password(store, hasher, &sub, &password, &latchkey::admin::actor::Actor::Cli, now).await }
    };
    assert_eq!(refusal(set("short".into()).await), PasswordError::TooShort(8).to_string());
    assert!(refusal(set("letmein123".into()).await).starts_with("the password is too easy to guess"));
    assert!(refusal(set("ann@example.com".into()).await).starts_with("the password is too easy to guess"));
    assert_eq!(refusal(set("x".repeat(1025)).await), PasswordError::TooLong.to_string());
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_signed_in();
    set("maple quartz lantern drifts".into()).await.expect("a strong password is set");
    attempt(&app, &user.email, TEST_PASSWORD).await.assert_failure_page();
    attempt(&app, &user.email, "maple quartz lantern drifts").await.assert_signed_in();
}

async fn latchkey_stdin(db: &TestDatabase, args: &[&str], stdin: &str) -> Output {
    latchkey_cli(db, args, &[], Some(stdin)).await
}

#[tokio::test]
async fn the_user_commands_refuse_weak_passwords_and_say_why() {
    let db = fresh_database().await;
    let create = |password: &'static str| {
        latchkey_stdin(&db, &["user", "create", "--email", "ann@example.com", "--password-stdin"], password)
    };
    for (password, reason) in [
        ("short\n", "the password must be at least 8 characters long"),
        ("password1\n", "the password is too easy to guess"),
        ("ann@example.com\n", "the password is too easy to guess"),
    ] {
        let output = create(password).await;
        assert!(!output.status.success(), "{password:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{password:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    // A password with spaces at both ends and Unicode in it is taken as typed.
    let output = create("  Ünïcödé maple quartz lantern  \n").await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output =
        latchkey_stdin(&db, &["user", "set-password", "ann@example.com", "--password-stdin"], "qwerty123\n").await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the password is too easy to guess"));

    let app = spawn_app_on(db.alias(), test_settings(&db.url), |_| {}).await;
    attempt(&app, "ann@example.com", "Ünïcödé maple quartz lantern").await.assert_failure_page();
    attempt(&app, "ann@example.com", "  Ünïcödé maple quartz lantern  ").await.assert_signed_in();
}
