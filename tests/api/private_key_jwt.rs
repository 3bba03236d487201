//! Issue 13 item 5: private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core
//! §9). Assertions are made with an independent JWT library (jwt-simple); the keys are
//! registered inline or served from a `jwks_uri` by a small HTTP server in the test.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use latchkey::domain::NewClient;
use serde_json::{json, Value};

use crate::helpers::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn es256_key(kid: &str) -> (ES256KeyPair, Value) {
    let pair = ES256KeyPair::generate().with_key_id(kid);
    let public = p256::PublicKey::from_sec1_bytes(&pair.public_key().to_bytes()).unwrap();
    let mut jwk: Value = serde_json::from_str(&public.to_jwk_string()).unwrap();
    jwk["kid"] = json!(kid);
    (pair, jwk)
}

fn rs256_key(kid: &str) -> (RS256KeyPair, Value) {
    // The rsa crate (optimised in debug builds, Cargo.toml) makes the key; jwt-simple signs.
    use rsa::pkcs8::EncodePrivateKey;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let pair = RS256KeyPair::from_pem(&pem).unwrap().with_key_id(kid);
    let components = pair.public_key().to_components();
    let jwk = json!({
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(&components.n), "e": URL_SAFE_NO_PAD.encode(&components.e),
    });
    (pair, jwk)
}

fn claims_for(app: &TestApp, client_id: &str, aud: &str, valid_for: u64) -> JWTClaims<NoCustomClaims> {
    let _ = app;
    Claims::create(Duration::from_secs(valid_for))
        .with_issuer(client_id)
        .with_subject(client_id)
        .with_audience(aud)
        .with_jwt_id(latchkey::secret::random_token(16))
}

async fn service_with(app: &TestApp, jwks: Option<Value>, jwks_uri: Option<String>, introspect: bool) -> String {
    let (client, secret) = latchkey::admin::clients::create(
        app.state.store(),
        NewClient {
            name: "keyed service".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["read".into()],
            jwks: jwks.map(|j| j.to_string()),
            jwks_uri,
            introspect,
            // A resource server introspects tokens meant for its audience (issue 11 item 3).
            audience: introspect.then(|| "https://api.keyed.example".to_string()),
            ..NewClient::default()
        },
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    assert!(secret.is_none(), "a private_key_jwt client gets no secret");
    client.id
}

async fn token_with(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app.http.post(app.token_url()).form(form).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn token_with_assertion(app: &TestApp, assertion: &str) -> (u16, Value) {
    token_with(
        app,
        &[("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)],
    )
    .await
}

fn assert_invalid_client(answer: (u16, Value), why: &str) {
    assert_eq!(answer.0, 401, "{why}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{why}");
}

#[tokio::test]
async fn a_client_signs_in_with_its_key_and_every_bad_assertion_is_refused() {
    let app = spawn_app().await;
    let (es, es_jwk) = es256_key("es-1");
    let (rs, rs_jwk) = rs256_key("rs-1");
    let id = service_with(&app, Some(json!({ "keys": [es_jwk, rs_jwk.clone()] })), None, false).await;
    let token_endpoint = app.token_url();

    // ES256 and RS256, aud the token endpoint or the issuer: accepted.
    let es_assertion = es.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
    let (status, body) = token_with_assertion(&app, &es_assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(jwt_part(body["access_token"].as_str().unwrap(), 1)["client_id"], id.as_str());
    let rs_assertion = rs.sign(claims_for(&app, &id, &app.address, 60)).unwrap();
    assert_eq!(token_with_assertion(&app, &rs_assertion).await.0, 200);
    // With the client_id in the body too.
    let with_id = es.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
    let (status, _) = token_with(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &with_id),
        ],
    )
    .await;
    assert_eq!(status, 200);

    // A replayed jti.
    assert_invalid_client(token_with_assertion(&app, &es_assertion).await, "replay");
    // Wrong audience.
    let wrong_aud = es.sign(claims_for(&app, &id, "https://elsewhere.example/token", 60)).unwrap();
    assert_invalid_client(token_with_assertion(&app, &wrong_aud).await, "wrong aud");
    // Expired (beyond the leeway).
    let mut old = claims_for(&app, &id, &token_endpoint, 60);
    old.expires_at = Some(UnixTimeStamp::from_secs(latchkey::state::unix_now() as u64 - 120));
    old.issued_at = Some(UnixTimeStamp::from_secs(latchkey::state::unix_now() as u64 - 180));
    assert_invalid_client(token_with_assertion(&app, &es.sign(old).unwrap()).await, "expired");
    // Not short-lived: an hour.
    let long = es.sign(claims_for(&app, &id, &token_endpoint, 3600)).unwrap();
    assert_invalid_client(token_with_assertion(&app, &long).await, "exp an hour ahead");
    // No jti.
    let mut no_jti = claims_for(&app, &id, &token_endpoint, 60);
    no_jti.jwt_id = None;
    assert_invalid_client(token_with_assertion(&app, &es.sign(no_jti).unwrap()).await, "no jti");
    // iss is not the client.
    let other_iss = claims_for(&app, &id, &token_endpoint, 60).with_issuer("someone-else");
    assert_invalid_client(token_with_assertion(&app, &es.sign(other_iss).unwrap()).await, "iss");
    // alg none.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = jwt_part(&es.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap(), 1);
    let none = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(payload.to_string()));
    assert_invalid_client(token_with_assertion(&app, &none).await, "alg none");
    // HMAC with the public key as the secret, in the forms key-confusion attacks use.
    let n = URL_SAFE_NO_PAD.decode(rs_jwk["n"].as_str().unwrap()).unwrap();
    for secret in [rs.public_key().to_pem().unwrap().into_bytes(), rs_jwk.to_string().into_bytes(), n] {
        let hmac = HS256Key::from_bytes(&secret).with_key_id("rs-1");
        let forged = hmac.authenticate(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
        assert_invalid_client(token_with_assertion(&app, &forged).await, "HS256 with the public key");
    }
    // Another client's key, and this client's key for another client.
    let (stranger, stranger_jwk) = es256_key("es-1");
    let other = service_with(&app, Some(json!({ "keys": [stranger_jwk] })), None, false).await;
    let foreign = stranger.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
    assert_invalid_client(token_with_assertion(&app, &foreign).await, "another client's key");
    let borrowed = es.sign(claims_for(&app, &other, &token_endpoint, 60)).unwrap();
    assert_invalid_client(token_with_assertion(&app, &borrowed).await, "this key for another client");
    // A body client_id that differs from the assertion's sub.
    let mismatch = es.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
    let answer = token_with(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &other),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &mismatch),
        ],
    )
    .await;
    assert_invalid_client(answer, "client_id differs from sub");
    // A wrong assertion type, and an assertion plus a secret.
    let typed = es.sign(claims_for(&app, &id, &token_endpoint, 60)).unwrap();
    let answer = token_with(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &typed),
        ],
    )
    .await;
    assert_invalid_client(answer, "assertion type");
    let both = app
        .http
        .post(app.token_url())
        .basic_auth(&id, Some("x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &typed),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status().as_u16(), 400, "two methods at once");
}

/// A key client never authenticates with a secret, and a secret client never with an assertion.
#[tokio::test]
async fn each_client_authenticates_only_the_way_it_registered() {
    let app = spawn_app().await;
    let (es, es_jwk) = es256_key("k");
    let keyed = service_with(&app, Some(json!({ "keys": [es_jwk.clone()] })), None, false).await;
    let secret_client = app.service_client(&["read"], &[]).await;
    let answer = app
        .http
        .post(app.token_url())
        .basic_auth(&keyed, Some(""))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let assertion = es.sign(claims_for(&app, &secret_client.id, &app.token_url(), 60)).unwrap();
    assert_invalid_client(token_with_assertion(&app, &assertion).await, "assertion for a secret client");
    let rotate = latchkey_cli(&app.db, &["client", "rotate-secret", &keyed], &[], None).await;
    assert!(!rotate.status.success(), "no secret to rotate");
    let shown = cli_json(&latchkey_cli(&app.db, &["client", "show", &keyed], &[], None).await);
    assert_eq!(shown["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(shown["jwks"]["keys"][0]["kid"], "k");
}

/// Keys served from a `jwks_uri`: fetched, cached, and refetched when the client rotates in a
/// key the cache has not seen. The same assertion works at /revoke and /introspect.
#[tokio::test]
async fn keys_from_a_jwks_uri_follow_rotation_and_work_at_every_client_endpoint() {
    let app = spawn_app().await;
    let (first, first_jwk) = es256_key("first");
    let served = Arc::new(Mutex::new(json!({ "keys": [first_jwk] })));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let fetches = Arc::new(Mutex::new(0usize));
    {
        let (served, fetches) = (served.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (served, fetches) = (served.clone(), fetches.clone());
                async move {
                    *fetches.lock().unwrap() += 1;
                    axum::Json(served.lock().unwrap().clone())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let id = service_with(&app, None, Some(jwks_uri), true).await;
    let aud = app.token_url();
    assert_eq!(token_with_assertion(&app, &first.sign(claims_for(&app, &id, &aud, 60)).unwrap()).await.0, 200);
    assert_eq!(token_with_assertion(&app, &first.sign(claims_for(&app, &id, &aud, 60)).unwrap()).await.0, 200);
    assert_eq!(*fetches.lock().unwrap(), 1, "cached");

    // The client rotates: the new key is unknown to the cache, so the JWKS is fetched again,
    // at most once per 10 s per URL (waited out here).
    let (second, second_jwk) = es256_key("second");
    *served.lock().unwrap() = json!({ "keys": [second_jwk] });
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let (status, tokens) = token_with_assertion(&app, &second.sign(claims_for(&app, &id, &aud, 60)).unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(*fetches.lock().unwrap(), 2);
    let access_token = tokens["access_token"].as_str().unwrap();

    // /introspect and /revoke take the same assertion.
    let introspected: Value = app
        .http
        .post(app.url("/introspect"))
        .form(&[
            ("token", access_token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &second.sign(claims_for(&app, &id, &app.url("/introspect"), 60)).unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    let revoked = app
        .http
        .post(app.url("/revoke"))
        .form(&[
            ("token", access_token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &second.sign(claims_for(&app, &id, &app.url("/revoke"), 60)).unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
}

#[tokio::test]
async fn registration_refuses_keys_that_are_not_public_rsa_or_p256_and_discovery_tells_the_truth() {
    let app = spawn_app().await;
    for (jwks, uri) in [
        (Some(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_string()), None),
        (Some(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#.to_string()), None),
        (None, Some("http://keys.example/jwks.json".to_string())),
    ] {
        let refused = latchkey::admin::clients::create(
            app.state.store(),
            NewClient { name: "x".into(), jwks, jwks_uri: uri, ..NewClient::default() },
            &latchkey::admin::actor::Actor::Cli,
            latchkey::state::unix_now(),
        )
        .await;
        assert!(refused.is_err());
    }
    let (_, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    for field in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert!(metadata[field].as_array().unwrap().contains(&json!("private_key_jwt")), "{field}");
    }
    assert_eq!(metadata["token_endpoint_auth_signing_alg_values_supported"], json!(["RS256", "ES256"]));
}
