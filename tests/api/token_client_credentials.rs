//! The client-credentials grant through the `oauth2` crate, verified as a resource server would:
//! fetch the JWKS, pick the key by `kid`, check signature and claims with an independent JWT
//! library (jwt-simple).

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use latchkey::domain::{NewClient, SigningAlg};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::helpers::{jwt_part, spawn_app, spawn_app_with, RegisteredClient, TestApp};

type Claims = JWTClaims<serde_json::Map<String, Value>>;

async fn oauth2_token(
    app: &TestApp,
    client: &RegisteredClient,
    auth: AuthType,
    scopes: &[&str],
) -> oauth2::basic::BasicTokenResponse {
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.token_url()).unwrap())
        .set_auth_type(auth);
    let mut request = oauth.exchange_client_credentials();
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    request.request_async(&app.http).await.expect("client-credentials token")
}

/// Verifies `token` against the served JWKS the way a resource server does.
async fn verify_with_jwks(app: &TestApp, token: &str, audience: &str) -> Claims {
    let header = jwt_part(token, 0);
    let kid = header["kid"].as_str().expect("kid in header");
    let (status, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    let b64 = |field: &str| URL_SAFE_NO_PAD.decode(jwk[field].as_str().unwrap()).unwrap();
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([app.address.clone()])),
        allowed_audiences: Some(HashSet::from([audience.to_string()])),
        ..VerificationOptions::default()
    };
    match header["alg"].as_str().unwrap() {
        "ES256" => {
            assert_eq!(jwk["kty"], "EC");
            let mut sec1 = vec![4u8];
            sec1.extend(b64("x"));
            sec1.extend(b64("y"));
            ES256PublicKey::from_bytes(&sec1)
                .unwrap()
                .verify_token::<serde_json::Map<String, Value>>(token, Some(options))
        }
        "RS256" => {
            assert_eq!(jwk["kty"], "RSA");
            RS256PublicKey::from_components(&b64("n"), &b64("e"))
                .unwrap()
                .verify_token::<serde_json::Map<String, Value>>(token, Some(options))
        }
        other => panic!("unexpected alg {other}"),
    }
    .expect("token verifies against the JWKS")
}

#[tokio::test]
async fn service_gets_a_token_that_verifies_against_the_jwks() {
    let app = spawn_app().await;
    let client = app.service_client(&["orders:read", "orders:write"], &["billing", "reader"]).await;

    let token = oauth2_token(&app, &client, AuthType::BasicAuth, &["orders:read"]).await;
    assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(token.expires_in().unwrap().as_secs(), 900);
    assert!(token.refresh_token().is_none(), "RFC 6749 §4.4.3: no refresh token");
    let scopes: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, vec!["orders:read"]);

    let jwt = token.access_token().secret();
    let header = jwt_part(jwt, 0);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1");
    assert_eq!(header["alg"], "ES256");

    let claims = verify_with_jwks(&app, jwt, &app.address).await;
    assert_eq!(claims.issuer.as_deref(), Some(app.address.as_str()));
    assert_eq!(claims.subject.as_deref(), Some(format!("client:{}", client.id).as_str()));
    assert_eq!(claims.custom["client_id"], client.id.as_str());
    assert_eq!(claims.custom["scope"], "orders:read");
    assert_eq!(claims.custom["roles"], serde_json::json!(["billing", "reader"]));
    assert!(claims.jwt_id.as_deref().is_some_and(|j| j.len() >= 22));
    let (iat, exp) = (claims.issued_at.unwrap().as_secs(), claims.expires_at.unwrap().as_secs());
    assert_eq!(exp - iat, 900);
}

#[tokio::test]
async fn client_secret_post_works_and_no_scope_means_the_clients_scopes() {
    let app = spawn_app().await;
    let client = app.service_client(&["a", "b"], &[]).await;
    let token = oauth2_token(&app, &client, AuthType::RequestBody, &[]).await;
    let claims = verify_with_jwks(&app, token.access_token().secret(), &app.address).await;
    assert_eq!(claims.custom["scope"], "a b");
    assert_eq!(claims.custom["roles"], serde_json::json!([]));
}

#[tokio::test]
async fn token_response_headers_and_body_follow_rfc_6749() {
    let app = spawn_app().await;
    let client = app.service_client(&["a"], &[]).await;
    let (status, headers, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &client.secret))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "a");
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn the_clients_own_audience_goes_in_aud() {
    let app = spawn_app().await;
    let client = app
        .register(NewClient {
            name: "svc".into(),
            audience: Some("https://api.example.com".into()),
            ..NewClient::default()
        })
        .await;
    let token = oauth2_token(&app, &client, AuthType::BasicAuth, &[]).await;
    let claims = verify_with_jwks(&app, token.access_token().secret(), "https://api.example.com").await;
    assert_eq!(claims.audiences.unwrap().into_set(), HashSet::from(["https://api.example.com".to_string()]));
}

#[tokio::test]
async fn default_audience_is_a_setting() {
    let app = spawn_app_with(|s| s.default_audience = "urn:example:api".into()).await;
    let client = app.service_client(&[], &[]).await;
    let token = oauth2_token(&app, &client, AuthType::BasicAuth, &[]).await;
    verify_with_jwks(&app, token.access_token().secret(), "urn:example:api").await;
}

#[tokio::test]
async fn access_token_algorithm_is_a_setting() {
    let app = spawn_app_with(|s| s.access_token_alg = SigningAlg::Rs256).await;
    let client = app.service_client(&["a"], &[]).await;
    let token = oauth2_token(&app, &client, AuthType::BasicAuth, &["a"]).await;
    assert_eq!(jwt_part(token.access_token().secret(), 0)["alg"], "RS256");
    verify_with_jwks(&app, token.access_token().secret(), &app.address).await;
}

#[tokio::test]
async fn tampered_token_does_not_verify() {
    let app = spawn_app().await;
    let client = app.service_client(&["a"], &[]).await;
    let token = oauth2_token(&app, &client, AuthType::BasicAuth, &[]).await;
    let jwt = token.access_token().secret();
    let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
    let mut claims = jwt_part(jwt, 1);
    claims["scope"] = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = parts.join(".");
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["alg"] == "ES256").unwrap().clone();
    let mut sec1 = vec![4u8];
    sec1.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = ES256PublicKey::from_bytes(&sec1).unwrap();
    assert!(key.verify_token::<serde_json::Map<String, Value>>(jwt, None).is_ok());
    assert!(key.verify_token::<serde_json::Map<String, Value>>(&forged, None).is_err());
}

#[tokio::test]
async fn every_token_is_distinct() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let a = oauth2_token(&app, &client, AuthType::BasicAuth, &[]).await;
    let b = oauth2_token(&app, &client, AuthType::BasicAuth, &[]).await;
    assert_ne!(jwt_part(a.access_token().secret(), 1)["jti"], jwt_part(b.access_token().secret(), 1)["jti"]);
}
