//! `id_token_hint` at the authorization endpoint (OIDC Core §3.1.2.1; issue 9 item 4): a hint
//! must be an ID token this issuer signed (expired is fine), else `invalid_request`; when it
//! names someone other than the signed-in user, `prompt=none` gets `login_required` and
//! otherwise the user signs in again — never a code for someone else.

use latchkey::domain::SigningAlg;
use latchkey::state::unix_now;
use serde_json::json;

use crate::helpers::*;

struct Setup {
    app: TestApp,
    client: AppClient,
    alice: TestUser,
    bob: TestUser,
    /// Alice's browser, signed in.
    alice_browser: reqwest::Client,
    alice_id_token: String,
    bob_id_token: String,
}

async fn id_token(app: &TestApp, b: &reqwest::Client, client: &AppClient, email: &str) -> String {
    let pair = pkce();
    let code = app.code_for(b, client, email, "openid", &pair).await;
    let (status, body) = app.redeem(client, &code, Some(&pair.verifier)).await;
    assert_eq!(status, 200, "{body}");
    body["id_token"].as_str().unwrap().to_string()
}

async fn setup() -> Setup {
    let app = spawn_app().await;
    let client = app.web_app(true).await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let alice_browser = browser();
    let alice_id_token = id_token(&app, &alice_browser, &client, &alice.email).await;
    let bob_id_token = id_token(&app, &browser(), &client, &bob.email).await;
    Setup { app, client, alice, bob, alice_browser, alice_id_token, bob_id_token }
}

/// GET /authorize in `b` with these extra parameters; the Location it answers with.
async fn authorize(s: &Setup, b: &reqwest::Client, extra: &[(&str, &str)]) -> String {
    let pair = pkce();
    let url = authorize_url(&s.app, &s.client, "openid", &pair.challenge, extra);
    let response = b.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "{}", response.text().await.unwrap());
    location(&response)
}

fn assert_app_error(location: &str, s: &Setup, error: &str) {
    assert!(location.starts_with(&s.client.redirect_uri), "{location}");
    let query = query_of(location);
    assert_eq!(query.get("error").map(String::as_str), Some(error), "{location}");
    assert!(!query.contains_key("code"), "{location}");
    assert_eq!(query["state"], "st-123");
    assert_eq!(query["iss"], s.app.address);
}

#[tokio::test]
async fn prompt_none_with_another_users_hint_is_login_required() {
    let s = setup().await;
    let location = authorize(&s, &s.alice_browser, &[("prompt", "none"), ("id_token_hint", &s.bob_id_token)]).await;
    assert_app_error(&location, &s, "login_required");
    // Alice's own hint, and no hint at all, get a code.
    let location = authorize(&s, &s.alice_browser, &[("prompt", "none"), ("id_token_hint", &s.alice_id_token)]).await;
    assert!(query_of(&location).contains_key("code"), "{location}");
    let location = authorize(&s, &s.alice_browser, &[("prompt", "none")]).await;
    assert!(query_of(&location).contains_key("code"), "{location}");
}

#[tokio::test]
async fn a_hint_that_does_not_verify_is_invalid_request() {
    let s = setup().await;
    let keys = s.app.state.keys();
    let now = unix_now();
    let claims =
        |iss: &str| json!({"iss": iss, "sub": s.alice.sub, "aud": s.client.id, "iat": now - 60, "exp": now + 600});
    let foreign_issuer = keys.sign(SigningAlg::Rs256, "JWT", &claims("https://evil.example.com")).unwrap();
    // Signed by this issuer, but naming nobody (mutation testing: the empty-sub guard had no test).
    let no_subject = keys
        .sign(
            SigningAlg::Rs256,
            "JWT",
            &json!({"iss": s.app.address, "sub": "", "aud": s.client.id, "iat": now - 60, "exp": now + 600}),
        )
        .unwrap();
    let access_token_as_hint = keys.sign(SigningAlg::Es256, "at+jwt", &claims(&s.app.address)).unwrap();
    let mut tampered = s.alice_id_token.clone();
    tampered.pop();
    tampered.push(if s.alice_id_token.ends_with('A') { 'B' } else { 'A' });
    let payload = crate::helpers::jwt_part(&s.bob_id_token, 1);
    let (h, _, sig) = {
        let mut parts = s.alice_id_token.split('.');
        (parts.next().unwrap().to_string(), parts.next(), parts.next().unwrap().to_string())
    };
    use base64::Engine;
    let swapped_payload =
        format!("{h}.{}.{sig}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string()));
    for (what, hint) in [
        ("garbage", "not-a-jwt"),
        ("three garbage parts", "a.b.c"),
        ("foreign issuer", foreign_issuer.as_str()),
        ("an empty subject", no_subject.as_str()),
        ("an access token", access_token_as_hint.as_str()),
        ("a tampered signature", tampered.as_str()),
        ("Bob's claims under Alice's signature", swapped_payload.as_str()),
    ] {
        for prompt in ["none", ""] {
            let location = authorize(&s, &s.alice_browser, &[("prompt", prompt), ("id_token_hint", hint)]).await;
            assert_app_error(&location, &s, "invalid_request");
            assert!(query_of(&location)["error_description"].contains("id_token_hint"), "{what}: {location}");
        }
    }
}

#[tokio::test]
async fn an_expired_hint_signed_here_is_accepted() {
    let s = setup().await;
    let now = unix_now();
    let expired =
        json!({"iss": s.app.address, "sub": s.alice.sub, "aud": s.client.id, "iat": now - 7200, "exp": now - 3600});
    let hint = s.app.state.keys().sign(SigningAlg::Rs256, "JWT", &expired).unwrap();
    let location = authorize(&s, &s.alice_browser, &[("prompt", "none"), ("id_token_hint", &hint)]).await;
    assert!(query_of(&location).contains_key("code"), "{location}");
    let expired_bob =
        json!({"iss": s.app.address, "sub": s.bob.sub, "aud": s.client.id, "iat": now - 7200, "exp": now - 3600});
    let hint = s.app.state.keys().sign(SigningAlg::Rs256, "JWT", &expired_bob).unwrap();
    let location = authorize(&s, &s.alice_browser, &[("prompt", "none"), ("id_token_hint", &hint)]).await;
    assert_app_error(&location, &s, "login_required");
}

/// Without prompt=none, a hint for someone else sends the user to sign in again; signing in as
/// the hinted user gets that user's code, signing in as anyone else gets `login_required`.
#[tokio::test]
async fn another_users_hint_means_signing_in_again() {
    let s = setup().await;
    for (email, expect_code) in [(s.alice.email.clone(), false), (s.bob.email.clone(), true)] {
        let b = &s.alice_browser;
        let pair = pkce();
        let url = authorize_url(&s.app, &s.client, "openid", &pair.challenge, &[("id_token_hint", &s.bob_id_token)]);
        let response = b.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303);
        let to_login = location(&response);
        assert!(to_login.starts_with("/login?rid="), "a signed-in user is asked to sign in again: {to_login}");
        let callback = s.app.sign_in_through_pages(b, &s.app.url(&to_login), &email).await;
        let query: std::collections::HashMap<String, String> = callback.query_pairs().into_owned().collect();
        if expect_code {
            let code = query.get("code").unwrap_or_else(|| panic!("{callback}"));
            let (status, body) = s.app.redeem(&s.client, code, Some(&pair.verifier)).await;
            assert_eq!(status, 200, "{body}");
            let claims = jwt_part(body["id_token"].as_str().unwrap(), 1);
            assert_eq!(claims["sub"], s.bob.sub.as_str(), "the hinted user's code");
        } else {
            assert_eq!(query.get("error").map(String::as_str), Some("login_required"), "{callback}");
            assert!(!query.contains_key("code"), "never a code for someone else: {callback}");
        }
    }
}
