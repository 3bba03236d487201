//! Second factors through the hosted pages: TOTP enrolment, sign-in with a code or a recovery
//! code, replay and skew, the step that cannot be skipped, and MFA policy (issue 4).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey::authn::sign_in::{open_seed, seal_seed};
use latchkey::authn::totp::{code_at, decode_base32, matching_step, new_secret, STEP_SECS};
use latchkey::domain::NewClient;
use latchkey::keys::MasterKey;
use latchkey::state::unix_now;
use latchkey::store::MfaStore;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MFA_ACR: &str = "https://refeds.org/profile/mfa";
const SFA_ACR: &str = "https://refeds.org/profile/sfa";
/// What the one-time-code page says when it refuses a code.
const CODE_REFUSED: &str = "That code is not right. Codes change every 30 seconds; each works once.";

// ---------------------------------------------------------------------------------------------
// Time steps (RFC 6238: 30 s). The server accepts the current step and one either side, and
// never a step at or before the last one it accepted.
// ---------------------------------------------------------------------------------------------

fn current_step() -> i64 {
    unix_now().div_euclid(STEP_SECS)
}

fn code_for_step(seed: &[u8], step: i64) -> String {
    code_at(seed, step * STEP_SECS).expect("a code")
}

fn millis_into_step() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    (now % (STEP_SECS as u128 * 1000)) as u64
}

/// Sleeps until the next step has begun.
async fn wait_for_next_step() {
    let left = STEP_SECS as u64 * 1000 - millis_into_step();
    tokio::time::sleep(Duration::from_millis(left + 250)).await;
}

/// Makes sure at least `need` seconds of the current step are left, waiting for the next step
/// otherwise, so what a test does next happens within one step.
async fn settle_in_step(need: i64) {
    if STEP_SECS as u64 * 1000 - millis_into_step() < need as u64 * 1000 {
        wait_for_next_step().await;
    }
}

/// A code the server has not seen yet: the earliest step it still accepts after `last_used`.
/// (Right after enrolment that is the next step: one step of drift, as a phone a little ahead.)
async fn unused_code(seed: &[u8], last_used: i64) -> (String, i64) {
    loop {
        let current = current_step();
        // The step before is accepted too, unless it leaves the window before the server looks.
        let earliest = if millis_into_step() >= 27_000 { current } else { current - 1 };
        let step = earliest.max(last_used + 1);
        if step <= current + 1 {
            return (code_for_step(seed, step), step);
        }
        wait_for_next_step().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Pages.
// ---------------------------------------------------------------------------------------------

fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start} in page:\n{html}")) + start.len();
    let to = html[from..].find(end).expect("end marker") + from;
    &html[from..to]
}

/// The text of `<code … id="ID">…</code>`.
fn code_element(html: &str, id: &str) -> String {
    unescape(between(html, &format!("id=\"{id}\">"), "</code>"))
}

fn optional_field(html: &str, name: &str) -> Option<String> {
    html.contains(&format!("name=\"{name}\" value=\"")).then(|| hidden_field(html, name))
}

async fn get(app: &TestApp, b: &reqwest::Client, path: &str) -> reqwest::Response {
    b.get(app.url(path)).send().await.unwrap()
}

/// GETs a page that must answer 200 and returns it.
async fn page(app: &TestApp, b: &reqwest::Client, path: &str) -> String {
    let response = get(app, b, path).await;
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response.text().await.unwrap()
}

/// Where a GET sends the browser (it must be a 303).
async fn redirect_of(app: &TestApp, b: &reqwest::Client, path: &str) -> String {
    let response = get(app, b, path).await;
    assert_eq!(response.status().as_u16(), 303, "GET {path}");
    location(&response)
}

/// Answers the sign-in page at `login_path` with the right password; returns the 303's target.
async fn submit_password(app: &TestApp, b: &reqwest::Client, login_path: &str, email: &str) -> String {
    let html = page(app, b, login_path).await;
    let mut form = vec![
        ("csrf", hidden_field(&html, "csrf")),
        ("email", email.to_string()),
        ("password", TEST_PASSWORD.to_string()),
    ];
    for name in ["rid", "next"] {
        if let Some(value) = optional_field(&html, name) {
            form.push((name, value));
        }
    }
    let response = b.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "POST /login");
    location(&response)
}

/// Starts an authorization request and gives the password; returns the request's rid and
/// where the password step sent the browser.
async fn start_with_password(app: &TestApp, b: &reqwest::Client, url: &str, email: &str) -> (String, String) {
    let start = b.get(url).send().await.unwrap();
    assert_eq!(start.status().as_u16(), 303, "GET /authorize");
    let login = location(&start);
    let rid = login.strip_prefix("/login?rid=").unwrap_or_else(|| panic!("not the sign-in page: {login}")).to_string();
    let after = submit_password(app, b, &login, email).await;
    (rid, after)
}

/// A browser signed in with the password alone, for a user without a second factor.
async fn password_only_browser(app: &TestApp, email: &str) -> reqwest::Client {
    let b = browser();
    assert_eq!(submit_password(app, &b, "/login?next=account", email).await, "/account");
    b
}

/// Answers the one-time-code page at `mfa_path` with `code`.
async fn submit_code(app: &TestApp, b: &reqwest::Client, mfa_path: &str, code: &str) -> reqwest::Response {
    let html = page(app, b, mfa_path).await;
    let mut form = vec![("csrf", hidden_field(&html, "csrf")), ("code", code.to_string())];
    for name in ["rid", "next"] {
        if let Some(value) = optional_field(&html, name) {
            form.push((name, value));
        }
    }
    b.post(app.url("/login/mfa")).form(&form).send().await.unwrap()
}

/// A refused code: the code page again (200) with the message.
async fn assert_code_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.status().as_u16(), 200, "{what}: refused codes answer with the page again");
    let html = response.text().await.unwrap();
    assert!(html.contains(CODE_REFUSED), "{what}: no refusal message in:\n{html}");
    assert!(html.contains("action=\"/login/mfa\""), "{what}: still the code page");
}

/// An accepted code: 303 to where the sign-in continues.
fn assert_code_accepted(response: &reqwest::Response, expected_next: &str, what: &str) {
    assert_eq!(response.status().as_u16(), 303, "{what}: accepted");
    assert_eq!(location(response), expected_next, "{what}");
}

/// A fresh browser signs in for `url` with the password, owes a code, and gives `code`.
async fn sign_in_with_code(
    app: &TestApp,
    url: &str,
    email: &str,
    code: &str,
) -> (reqwest::Client, String, reqwest::Response) {
    let b = browser();
    let (rid, after) = start_with_password(app, &b, url, email).await;
    assert_eq!(after, format!("/login/mfa?rid={rid}"), "an enrolled user owes a code after the password");
    let response = submit_code(app, &b, &after, code).await;
    (b, rid, response)
}

fn continue_path(rid: &str) -> String {
    format!("/authorize/continue?rid={rid}")
}

/// What enrolment through the pages showed and used.
struct Enrolment {
    setup_page: String,
    seed: Vec<u8>,
    secret: String,
    uri: String,
    /// The step of the code that turned TOTP on (the server will not take it again).
    step: i64,
    recovery_codes: Vec<String>,
    /// The recovery-code page's "continue" link.
    continue_to: String,
}

/// Enrols TOTP for the signed-in browser `b` the way a person does: reads the key shown for
/// manual entry, types the current code, and keeps the recovery codes shown once. `rid`: the
/// app's request that policy interrupted for this.
async fn enrol_through_pages(app: &TestApp, b: &reqwest::Client, rid: Option<&str>) -> Enrolment {
    let query = rid.map(|r| format!("?rid={r}")).unwrap_or_default();
    let setup_page = page(app, b, &format!("/account/totp{query}")).await;
    let secret = code_element(&setup_page, "totp-secret");
    let uri = code_element(&setup_page, "totp-uri");
    let seed = decode_base32(&secret).expect("the key shown decodes as base32");
    settle_in_step(5).await;
    let step = current_step();
    let mut form = vec![("csrf", hidden_field(&setup_page, "csrf")), ("code", code_for_step(&seed, step))];
    if let Some(rid) = rid {
        form.push(("rid", rid.to_string()));
    }
    let confirmed = b.post(app.url("/account/totp")).form(&form).send().await.unwrap();
    assert_eq!(confirmed.status().as_u16(), 303, "POST /account/totp with the current code");
    assert_eq!(location(&confirmed), format!("/account/recovery-codes{query}"));
    let codes_page = page(app, b, &format!("/account/recovery-codes{query}")).await;
    let list = between(&codes_page, "<ul class=\"codes\" id=\"recovery-codes\">", "</ul>");
    let recovery_codes: Vec<String> =
        list.split("<li><code>").skip(1).map(|item| item[..item.find("</code>").unwrap()].to_string()).collect();
    let continue_to = unescape(between(&codes_page, "class=\"button\" href=\"", "\""));
    Enrolment { setup_page, seed, secret, uri, step, recovery_codes, continue_to }
}

/// TOTP turned on in the store directly, as for a user who enrolled long ago: the last step
/// used is far behind, so only the acceptance window decides which codes work.
async fn enrolled_long_ago(app: &TestApp, sub: &str) -> Vec<u8> {
    let seed = new_secret().to_vec();
    let sealed = seal_seed(app.state.master_key(), sub, &seed).unwrap();
    let store = app.state.store();
    assert!(store.begin_totp_enrolment(sub, &sealed, unix_now()).await.unwrap());
    assert!(store.enable_totp(sub, current_step() - 100, unix_now()).await.unwrap());
    seed
}

async fn totp_enabled(app: &TestApp, sub: &str) -> bool {
    app.state.store().totp_factor(sub).await.unwrap().is_some_and(|f| f.is_enabled())
}

/// A web app (confidential, asks for consent unless first-party) with the MFA flag as given.
async fn app_client(app: &TestApp, first_party: bool, require_mfa: bool) -> AppClient {
    let redirect_uri = "http://127.0.0.1:9/callback".to_string();
    let client = app
        .register(NewClient {
            name: "Payroll".into(),
            redirect_uris: vec![redirect_uri.clone()],
            first_party,
            require_mfa,
            ..NewClient::default()
        })
        .await;
    AppClient { id: client.id, secret: client.secret, redirect_uri, post_logout_uri: String::new() }
}

/// Redeems the code in the app's callback; returns the ID token's claims.
async fn id_token_claims(app: &TestApp, client: &AppClient, callback: &url::Url, pkce: &Pkce) -> Value {
    let query = query_of(callback.as_str());
    assert!(callback.as_str().starts_with(&client.redirect_uri), "{callback}");
    assert_eq!(query.get("state").map(String::as_str), Some("st-123"));
    let code = query.get("code").unwrap_or_else(|| panic!("no code in {callback}"));
    let (status, body) = app.redeem(client, code, Some(&pkce.verifier)).await;
    assert_eq!(status, 200, "{body}");
    jwt_part(body["id_token"].as_str().expect("an ID token"), 1)
}

fn assert_two_factor(claims: &Value, sub: &str) {
    assert_eq!(claims["sub"], sub);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]), "{claims}");
    assert_eq!(claims["acr"], MFA_ACR, "{claims}");
}

async fn db(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&app.db.url).await.expect("connect to the test database")
}

async fn grants_issued(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM grants").fetch_one(&mut db(app).await).await.unwrap();
    n
}

// ---------------------------------------------------------------------------------------------
// Enrolment and sign-in.
// ---------------------------------------------------------------------------------------------

/// Enrolment through the pages (QR, key for manual entry, otpauth URI, recovery codes); after
/// signing out, the password alone is not enough, and a computed code completes a sign-in whose
/// ID token says two factors: amr ["pwd","otp"], acr REFEDS MFA.
#[tokio::test]
async fn enrol_sign_out_and_sign_in_with_a_totp_code() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    let b = password_only_browser(&app, &user.email).await;
    assert!(page(&app, &b, "/account").await.contains("Authenticator app — off"));

    let enrolment = enrol_through_pages(&app, &b, None).await;
    assert!(
        unescape(&enrolment.setup_page).contains("<img class=\"qr\" src=\"data:image/svg+xml;base64,"),
        "an inline QR code"
    );
    assert_eq!(enrolment.seed.len(), 20, "160-bit seed (RFC 4226 §4)");
    let groups: Vec<&str> = enrolment.secret.split(' ').collect();
    assert_eq!(groups.len(), 8, "32 base32 characters in groups of four: {}", enrolment.secret);
    assert!(groups.iter().all(|g| g.len() == 4), "{}", enrolment.secret);
    assert!(enrolment.uri.starts_with("otpauth://totp/Latchkey:ann%40example.com?"), "{}", enrolment.uri);
    assert!(enrolment.uri.contains(&format!("secret={}", enrolment.secret.replace(' ', ""))), "{}", enrolment.uri);
    assert!(enrolment.uri.contains("issuer=Latchkey"), "{}", enrolment.uri);
    assert_eq!(enrolment.recovery_codes.len(), 10);
    for code in &enrolment.recovery_codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert!(groups.len() == 4 && groups.iter().all(|g| g.len() == 4), "{code}");
    }
    assert_eq!(enrolment.continue_to, "/account");
    // Shown once: the page is gone on the next visit.
    assert_eq!(redirect_of(&app, &b, "/account/recovery-codes").await, "/account");
    let account = page(&app, &b, "/account").await;
    assert!(account.contains("Authenticator app — on since"), "{account}");
    assert!(account.contains("Recovery codes — 10 left"), "{account}");

    // Sign out through the confirmation form.
    let confirm = page(&app, &b, "/logout").await;
    let signed_out = b
        .post(app.url("/logout"))
        .form(&[("csrf", hidden_field(&confirm, "csrf").as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status().as_u16(), 200);
    assert_eq!(redirect_of(&app, &b, "/account").await, "/login?next=account", "signed out");

    // Sign in to the app: password, then the code page, then the app.
    let pkce = pkce();
    let url = authorize_url(&app, &client, "openid email", &pkce.challenge, &[]);
    let (rid, after_password) = start_with_password(&app, &b, &url, &user.email).await;
    assert_eq!(after_password, format!("/login/mfa?rid={rid}"));
    let mfa_page = page(&app, &b, &after_password).await;
    assert!(mfa_page.contains("<strong>Latchkey</strong>"), "names the issuer shown in the app");
    let (code, _) = unused_code(&enrolment.seed, enrolment.step).await;
    let accepted = submit_code(&app, &b, &after_password, &code).await;
    assert_code_accepted(&accepted, &continue_path(&rid), "TOTP code");
    let callback = app.sign_in_through_pages(&b, &app.url(&continue_path(&rid)), &user.email).await;
    let claims = id_token_claims(&app, &client, &callback, &pkce).await;
    assert_two_factor(&claims, &user.sub);
    assert_eq!(claims["nonce"], "n-456");
}

/// A recovery code completes the sign-in in place of a TOTP code, once: the same code is
/// refused the second time, while another code of the set still works.
#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let enrolment = enrol_through_pages(&app, &password_only_browser(&app, &user.email).await, None).await;
    let first = &enrolment.recovery_codes[0];

    let pkce = pkce();
    let url = authorize_url(&app, &client, "openid", &pkce.challenge, &[]);
    let (b, rid, response) = sign_in_with_code(&app, &url, &user.email, first).await;
    assert_code_accepted(&response, &continue_path(&rid), "first use of a recovery code");
    let callback = app.sign_in_through_pages(&b, &app.url(&continue_path(&rid)), &user.email).await;
    assert_two_factor(&id_token_claims(&app, &client, &callback, &pkce).await, &user.sub);
    assert!(page(&app, &b, "/account").await.contains("Recovery codes — 9 left"));

    let (b, rid, response) = sign_in_with_code(&app, &url, &user.email, first).await;
    assert_code_refused(response, "second use of a recovery code").await;
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, format!("/login/mfa?rid={rid}"), "not signed in");
    let response = submit_code(&app, &b, &format!("/login/mfa?rid={rid}"), &enrolment.recovery_codes[1]).await;
    assert_code_accepted(&response, &continue_path(&rid), "another recovery code");
}

/// A TOTP code is taken once (RFC 6238 §5.2): neither the code that turned TOTP on nor a code
/// that signed in works again, though both are still inside the time window.
#[tokio::test]
async fn a_replayed_totp_code_is_refused() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    // Everything below happens within one 30-second step.
    settle_in_step(20).await;
    let enrolment = enrol_through_pages(&app, &password_only_browser(&app, &user.email).await, None).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);

    let enrolment_code = code_for_step(&enrolment.seed, enrolment.step);
    let (_, _, response) = sign_in_with_code(&app, &url, &user.email, &enrolment_code).await;
    assert_code_refused(response, "the code used at enrolment").await;
    assert!(matching_step(&enrolment.seed, &enrolment_code, unix_now()).is_some(), "still inside the window");

    let (code, _) = unused_code(&enrolment.seed, enrolment.step).await;
    let (_, rid, response) = sign_in_with_code(&app, &url, &user.email, &code).await;
    assert_code_accepted(&response, &continue_path(&rid), "a code not used before");

    let (b, rid, response) = sign_in_with_code(&app, &url, &user.email, &code).await;
    assert_code_refused(response, "the same code again").await;
    assert!(matching_step(&enrolment.seed, &code, unix_now()).is_some(), "still inside the window");
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, format!("/login/mfa?rid={rid}"), "not signed in");
}

/// Clock drift through the code page: one step either way is accepted, two are refused, and a
/// step before the last accepted one is refused even though it was never used.
#[tokio::test]
async fn one_step_of_drift_is_accepted_and_two_are_refused() {
    let app = spawn_app().await;
    let client = app.web_app(true).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);
    // The five sign-ins must fall in one time step. Rather than fail when a busy machine lets the
    // step roll over midway (a wall-clock bound, issue 10 item 8), start again with a fresh user
    // in the next step; the outcomes are judged only for a run that stayed within its step.
    for attempt in 0..3 {
        let user = app.user(&format!("ann{attempt}@example.com")).await;
        let seed = enrolled_long_ago(&app, &user.sub).await;
        settle_in_step(20).await;
        let now = current_step();
        let mut outcomes = Vec::new();
        for (offset, accepted) in [(-2, false), (2, false), (-1, true), (1, true), (0, false)] {
            let (_, rid, response) =
                sign_in_with_code(&app, &url, &user.email, &code_for_step(&seed, now + offset)).await;
            outcomes.push((offset, accepted, rid, response));
        }
        if current_step() != now {
            continue;
        }
        for (offset, accepted, rid, response) in outcomes {
            let what = format!("code of step {offset:+}");
            if accepted {
                assert_code_accepted(&response, &continue_path(&rid), &what);
            } else {
                assert_code_refused(response, &what).await;
            }
        }
        return;
    }
    panic!("three runs in a row crossed a 30-second step");
}

/// After the password, an enrolled user is not signed in: continuing the request, the consent
/// page (GET and POST), a new request, the account pages all lead back to the code page, and no
/// code is issued until the second factor is given.
#[tokio::test]
async fn the_second_factor_cannot_be_skipped() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let seed = enrolled_long_ago(&app, &user.sub).await;
    let client = app.web_app(false).await;
    let b = browser();
    // Without even the password, the code page sends to the sign-in page.
    assert_eq!(redirect_of(&app, &b, "/login/mfa?rid=abc").await, "/login?rid=abc");

    let pkce = pkce();
    let url = authorize_url(&app, &client, "openid email", &pkce.challenge, &[]);
    let (rid, after_password) = start_with_password(&app, &b, &url, &user.email).await;
    let mfa = format!("/login/mfa?rid={rid}");
    assert_eq!(after_password, mfa);

    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, mfa, "/authorize/continue");
    assert_eq!(redirect_of(&app, &b, &format!("/consent?rid={rid}")).await, mfa, "GET /consent");
    let csrf = hidden_field(&page(&app, &b, &mfa).await, "csrf");
    let consent = b
        .post(app.url("/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("rid", &rid),
            ("decision", "approve"),
            ("scope", "openid"),
            ("scope", "email"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status().as_u16(), 303, "POST /consent");
    assert_eq!(location(&consent), mfa, "POST /consent");
    let again = redirect_of(&app, &b, url.strip_prefix(&app.address).unwrap()).await;
    assert!(again.starts_with("/login/mfa?rid="), "a new request: {again}");
    assert_eq!(redirect_of(&app, &b, "/account").await, "/login/mfa?next=account", "GET /account");
    assert_eq!(redirect_of(&app, &b, "/account/totp").await, "/login/mfa?next=account", "GET /account/totp");
    let remove =
        b.post(app.url("/account/totp/remove")).form(&[("csrf", csrf.as_str()), ("code", "")]).send().await.unwrap();
    assert_eq!(remove.status().as_u16(), 303);
    assert_eq!(location(&remove), "/login/mfa?next=account", "POST /account/totp/remove");
    // prompt=none does not count the half-finished sign-in either.
    let silent = authorize_url(&app, &client, "openid", &pkce.challenge, &[("prompt", "none")]);
    let silent = b.get(&silent).send().await.unwrap();
    assert_eq!(silent.status().as_u16(), 303);
    let answer = query_of(&location(&silent));
    assert_eq!(answer.get("error").map(String::as_str), Some("login_required"));
    assert!(!answer.contains_key("code"));
    // A wrong code changes nothing.
    assert_code_refused(submit_code(&app, &b, &mfa, "000000").await, "wrong code").await;
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, mfa);
    assert_eq!(grants_issued(&app).await, 0, "no code was issued");

    // The code completes it: consent, then the app.
    let (code, _) = unused_code(&seed, current_step() - 100).await;
    assert_code_accepted(&submit_code(&app, &b, &mfa, &code).await, &continue_path(&rid), "right code");
    let callback = app.sign_in_through_pages(&b, &app.url(&continue_path(&rid)), &user.email).await;
    assert_two_factor(&id_token_claims(&app, &client, &callback, &pkce).await, &user.sub);
    assert_eq!(grants_issued(&app).await, 1);
}

/// Enrolment turns TOTP on only after a valid code: a wrong one leaves it off (no code page at
/// the next sign-in, no recovery codes), and the page shows the same key again.
#[tokio::test]
async fn a_wrong_code_at_enrolment_keeps_totp_off() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let b = password_only_browser(&app, &user.email).await;
    let setup = page(&app, &b, "/account/totp").await;
    let secret = code_element(&setup, "totp-secret");
    let seed = decode_base32(&secret).unwrap();
    settle_in_step(5).await;
    let right = code_for_step(&seed, current_step());
    let wrong: String = right.chars().map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10)).collect();
    assert!(matching_step(&seed, &wrong, unix_now()).is_none(), "the altered code is wrong");

    let refused = b
        .post(app.url("/account/totp"))
        .form(&[("csrf", hidden_field(&setup, "csrf")), ("code", wrong)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 303);
    assert_eq!(location(&refused), "/account/totp");
    let again = page(&app, &b, "/account/totp").await;
    assert!(again.contains("That code is not right. Check the app and try again."), "{again}");
    assert_eq!(code_element(&again, "totp-secret"), secret, "the same key while scanning");

    assert!(!totp_enabled(&app, &user.sub).await);
    assert_eq!(app.state.store().recovery_codes_left(&user.sub).await.unwrap(), 0);
    assert_eq!(redirect_of(&app, &b, "/account/recovery-codes").await, "/account", "no codes to show");
    assert!(page(&app, &b, "/account").await.contains("Authenticator app — off"));
    assert_eq!(
        submit_password(&app, &browser(), "/login?next=account", &user.email).await,
        "/account",
        "the password alone still signs in"
    );

    // The right code still turns it on.
    let confirmed = b
        .post(app.url("/account/totp"))
        .form(&[("csrf", hidden_field(&again, "csrf")), ("code", right)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&confirmed), "/account/recovery-codes");
    assert!(totp_enabled(&app, &user.sub).await);
}

/// Turning TOTP off takes a fresh second factor: a wrong, empty or already-used code is refused
/// and TOTP stays on; a current code (or, after enrolling again, a recovery code) removes it and
/// the recovery codes with it.
#[tokio::test]
async fn removing_totp_needs_a_valid_code() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let b = password_only_browser(&app, &user.email).await;
    settle_in_step(15).await;
    let enrolment = enrol_through_pages(&app, &b, None).await;
    let used = code_for_step(&enrolment.seed, enrolment.step);
    let remove = |code: String| {
        let (app, b) = (&app, &b);
        async move {
            let csrf = hidden_field(&page(app, b, "/account").await, "csrf");
            let response =
                b.post(app.url("/account/totp/remove")).form(&[("csrf", csrf), ("code", code)]).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 303);
            assert_eq!(location(&response), "/account");
            page(app, b, "/account").await
        }
    };

    for (what, code) in [("wrong", "123456".to_string()), ("empty", String::new()), ("already used", used)] {
        let account = remove(code).await;
        assert!(account.contains("That code is not right; two-step verification is still on."), "{what}: {account}");
        assert!(account.contains("Authenticator app — on since"), "{what}");
        assert!(totp_enabled(&app, &user.sub).await, "{what}");
    }

    let (code, _) = unused_code(&enrolment.seed, enrolment.step).await;
    let account = remove(code).await;
    assert!(account.contains("Two-step verification is off. Your recovery codes no longer work."), "{account}");
    assert!(account.contains("Authenticator app — off"));
    assert!(app.state.store().totp_factor(&user.sub).await.unwrap().is_none());
    assert_eq!(app.state.store().recovery_codes_left(&user.sub).await.unwrap(), 0);
    assert_eq!(submit_password(&app, &browser(), "/login?next=account", &user.email).await, "/account");

    // Enrolled again: a recovery code is a fresh factor too.
    let enrolment = enrol_through_pages(&app, &b, None).await;
    let account = remove(enrolment.recovery_codes[3].clone()).await;
    assert!(account.contains("Authenticator app — off"), "{account}");
    assert!(!totp_enabled(&app, &user.sub).await);
}

// ---------------------------------------------------------------------------------------------
// Policy: client flag, acr_values, setting, prompt=none.
// ---------------------------------------------------------------------------------------------

/// A client registered with require_mfa sends a password-only user to enrolment (consent can't
/// be reached first), then on to the app with a two-factor ID token.
#[tokio::test]
async fn an_app_requiring_mfa_sends_a_user_without_totp_to_enrolment_then_on() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app_client(&app, false, true).await;
    let b = browser();
    let pkce = pkce();
    let url = authorize_url(&app, &client, "openid email", &pkce.challenge, &[]);
    let (rid, after_password) = start_with_password(&app, &b, &url, &user.email).await;
    assert_eq!(after_password, continue_path(&rid), "no TOTP yet: the password completes the sign-in");
    let setup = format!("/account/totp?rid={rid}");
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, setup);
    assert_eq!(redirect_of(&app, &b, &format!("/consent?rid={rid}")).await, continue_path(&rid), "consent waits");
    assert_eq!(grants_issued(&app).await, 0);

    let enrolment = enrol_through_pages(&app, &b, Some(&rid)).await;
    assert!(enrolment.setup_page.contains("This sign-in needs a second step."), "{}", enrolment.setup_page);
    assert_eq!(hidden_field(&enrolment.setup_page, "rid"), rid);
    assert_eq!(enrolment.continue_to, continue_path(&rid));
    let callback = app.sign_in_through_pages(&b, &app.url(&enrolment.continue_to), &user.email).await;
    assert_two_factor(&id_token_claims(&app, &client, &callback, &pkce).await, &user.sub);
}

/// acr_values naming the REFEDS MFA profile steps up a password-only session of an enrolled user
/// through the code page; the SFA profile alone asks for nothing more.
#[tokio::test]
async fn acr_values_mfa_steps_up_a_password_only_session() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    let pkce = pkce();
    // Signed in with the password alone, before TOTP was turned on.
    let url = authorize_url(&app, &client, "openid", &pkce.challenge, &[("acr_values", SFA_ACR)]);
    let callback = app.sign_in_through_pages(&b, &url, &user.email).await;
    let claims = id_token_claims(&app, &client, &callback, &pkce).await;
    assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");
    assert_eq!(claims["acr"], SFA_ACR, "{claims}");
    let seed = enrolled_long_ago(&app, &user.sub).await;

    let url =
        authorize_url(&app, &client, "openid", &pkce.challenge, &[("acr_values", &format!("{SFA_ACR} {MFA_ACR}"))]);
    let step_up = redirect_of(&app, &b, url.strip_prefix(&app.address).unwrap()).await;
    let rid = step_up.strip_prefix("/login/mfa?rid=").unwrap_or_else(|| panic!("not a step-up: {step_up}")).to_string();
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, step_up, "no code without the step-up");
    let (code, _) = unused_code(&seed, current_step() - 100).await;
    assert_code_accepted(&submit_code(&app, &b, &step_up, &code).await, &continue_path(&rid), "step-up code");
    let callback = app.sign_in_through_pages(&b, &app.url(&continue_path(&rid)), &user.email).await;
    assert_two_factor(&id_token_claims(&app, &client, &callback, &pkce).await, &user.sub);
}

/// The mfa_required setting: every app's sign-in needs a second factor; a user without one
/// enrols before continuing.
#[tokio::test]
async fn the_mfa_required_setting_applies_to_every_app() {
    let app = spawn_app_with(|s| s.mfa_required = true).await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let b = browser();
    let pkce = pkce();
    let url = authorize_url(&app, &client, "openid", &pkce.challenge, &[]);
    let (rid, after_password) = start_with_password(&app, &b, &url, &user.email).await;
    assert_eq!(after_password, continue_path(&rid));
    assert_eq!(redirect_of(&app, &b, &continue_path(&rid)).await, format!("/account/totp?rid={rid}"));
    let enrolment = enrol_through_pages(&app, &b, Some(&rid)).await;
    let callback = app.sign_in_through_pages(&b, &app.url(&enrolment.continue_to), &user.email).await;
    assert_two_factor(&id_token_claims(&app, &client, &callback, &pkce).await, &user.sub);
}

/// prompt=none can't show the enrolment or code page: when a second factor is owed, the app gets
/// error=interaction_required (OIDC Core §3.1.2.6), with its state and our iss, and no code.
#[tokio::test]
async fn prompt_none_answers_interaction_required_when_mfa_is_owed() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let plain = app.web_app(true).await;
    let strict = app_client(&app, true, true).await;
    let b = browser();
    let pkce = pkce();
    app.sign_in_through_pages(&b, &authorize_url(&app, &plain, "openid", &pkce.challenge, &[]), &user.email).await;

    let cases = [
        ("client require_mfa", authorize_url(&app, &strict, "openid", &pkce.challenge, &[("prompt", "none")])),
        (
            "acr_values",
            authorize_url(&app, &plain, "openid", &pkce.challenge, &[("prompt", "none"), ("acr_values", MFA_ACR)]),
        ),
    ];
    for (what, url) in cases {
        let response = b.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303, "{what}");
        let target = location(&response);
        assert!(target.starts_with("http://127.0.0.1:9/callback?"), "{what}: {target}");
        let answer = query_of(&target);
        assert_eq!(answer.get("error").map(String::as_str), Some("interaction_required"), "{what}");
        assert_eq!(answer.get("state").map(String::as_str), Some("st-123"), "{what}");
        assert_eq!(answer.get("iss"), Some(&app.address), "{what}");
        assert!(!answer.contains_key("code"), "{what}");
    }
    // The same session without prompt=none is sent to enrolment, and silently to a plain app.
    let enrol = redirect_of(
        &app,
        &b,
        authorize_url(&app, &strict, "openid", &pkce.challenge, &[]).strip_prefix(&app.address).unwrap(),
    )
    .await;
    assert!(enrol.starts_with("/account/totp?rid="), "{enrol}");
    let silent =
        b.get(authorize_url(&app, &plain, "openid", &pkce.challenge, &[("prompt", "none")])).send().await.unwrap();
    assert!(query_of(&location(&silent)).contains_key("code"), "a plain app needs no second factor");
}

// ---------------------------------------------------------------------------------------------
// Storage and administration.
// ---------------------------------------------------------------------------------------------

/// The seed is sealed at rest (XChaCha20-Poly1305 with the master key, bound to the user): the
/// stored bytes contain neither the seed nor its base32 text, and open only with the right key
/// for the right user.
#[tokio::test]
async fn totp_seeds_are_sealed_at_rest() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let enrolment = enrol_through_pages(&app, &password_only_browser(&app, &user.email).await, None).await;

    let (sealed,): (Vec<u8>,) = sqlx::query_as("SELECT secret_sealed FROM totp_factors WHERE user_sub = $1")
        .bind(&user.sub)
        .fetch_one(&mut db(&app).await)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1 + 24 + 20 + 16, "version, nonce, sealed seed, tag");
    assert!(!sealed.windows(enrolment.seed.len()).any(|w| w == enrolment.seed.as_slice()), "seed in clear");
    let base32 = enrolment.secret.replace(' ', "");
    for text in [base32.clone(), base32.to_lowercase()] {
        assert!(!sealed.windows(text.len()).any(|w| w == text.as_bytes()), "base32 seed in clear");
    }
    assert_eq!(open_seed(app.state.master_key(), &user.sub, &sealed).unwrap().to_vec(), enrolment.seed);
    assert!(open_seed(&MasterKey::from_bytes([7; 32]), &user.sub, &sealed).is_err(), "another master key");
    assert!(open_seed(app.state.master_key(), "someone-else", &sealed).is_err(), "another user's row");
}

/// `latchkey user mfa-reset <email>` (lost phone): TOTP and recovery codes are gone, and the
/// password alone signs in again.
#[tokio::test]
async fn mfa_reset_from_the_cli() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    enrol_through_pages(&app, &password_only_browser(&app, &user.email).await, None).await;
    let (_, after) = start_with_password(
        &app,
        &browser(),
        &authorize_url(&app, &app.web_app(true).await, "openid", &pkce().challenge, &[]),
        &user.email,
    )
    .await;
    assert!(after.starts_with("/login/mfa?rid="), "enrolled: {after}");

    let reset = latchkey_cli(&app.db, &["user", "mfa-reset", "ANN@example.com"], &[], None).await;
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let out: Value = serde_json::from_slice(&reset.stdout).unwrap();
    assert_eq!(out, json!({ "sub": user.sub, "email": "ann@example.com", "mfa_reset": true, "had_mfa": true }));
    assert!(app.state.store().totp_factor(&user.sub).await.unwrap().is_none());
    assert_eq!(app.state.store().recovery_codes_left(&user.sub).await.unwrap(), 0);
    assert_eq!(submit_password(&app, &browser(), "/login?next=account", &user.email).await, "/account");

    let again = latchkey_cli(&app.db, &["user", "mfa-reset", "ann@example.com"], &[], None).await;
    let out: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(out["had_mfa"], false, "nothing left to reset");
    let unknown = latchkey_cli(&app.db, &["user", "mfa-reset", "nobody@example.com"], &[], None).await;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no user"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// A seed whose enrolment was never confirmed is not a second factor: a code from it neither
/// counts at `/account/totp/remove` nor anywhere else (found by mutation testing: the "enabled"
/// check in `check_second_factor` had no test).
#[tokio::test]
async fn an_unconfirmed_enrolment_is_not_a_second_factor() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let b = password_only_browser(&app, &user.email).await;
    settle_in_step(15).await;
    // The setup page stores an unconfirmed seed and shows it.
    let setup = page(&app, &b, "/account/totp").await;
    let seed = latchkey::authn::totp::decode_base32(text_between(&setup, "id=\"totp-secret\">", "</code>")).unwrap();
    assert!(!totp_enabled(&app, &user.sub).await);
    let code = latchkey::authn::totp::code_at(&seed, latchkey::state::unix_now()).unwrap();
    let csrf = hidden_field(&page(&app, &b, "/account").await, "csrf");
    let response =
        b.post(app.url("/account/totp/remove")).form(&[("csrf", csrf), ("code", code)]).send().await.unwrap();
    assert_eq!(location(&response), "/account");
    let account = page(&app, &b, "/account").await;
    assert!(account.contains("That code is not right"), "{account}");
    let factor = app.state.store().totp_factor(&user.sub).await.unwrap();
    assert!(factor.is_some_and(|f| !f.is_enabled()), "the unconfirmed enrolment is still there, still off");
}

/// One user's code lock never locks another (found by mutation testing: a shared counter key
/// passed every test).
#[tokio::test]
async fn a_code_lock_is_one_users_alone() {
    let app = spawn_app_with(|s| s.lockout_threshold = 2).await;
    let client = app_client(&app, true, false).await;
    let (ann, bob) = (app.user("ann@example.com").await, app.user("bob@example.com").await);
    enrolled_long_ago(&app, &ann.sub).await;
    let bob_seed = enrolled_long_ago(&app, &bob.sub).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);
    for _ in 0..2 {
        let (_, _, response) = sign_in_with_code(&app, &url, &ann.email, "000000").await;
        assert_code_refused(response, "ann's wrong code").await;
    }
    let key = format!("otp:{}", ann.sub);
    let locked_until =
        query_i64(&app.db, "SELECT locked_until FROM throttles WHERE key = $1", &[SqlValue::Text(&key)]).await;
    assert!(locked_until.is_some(), "ann's codes are locked");
    let code = latchkey::authn::totp::code_at(&bob_seed, unix_now()).unwrap();
    let (_, rid, response) = sign_in_with_code(&app, &url, &bob.email, &code).await;
    assert_code_accepted(&response, &continue_path(&rid), "bob is not locked by ann's failures");
}
