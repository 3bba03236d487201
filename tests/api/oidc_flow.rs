//! The whole OpenID Connect code flow with an unmodified certified relying-party library
//! (`openidconnect`): discovery → authorize → login → consent → code exchange with ID-token
//! verification → userinfo → refresh → logout.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};

use crate::helpers::{browser, location, spawn_app};

#[tokio::test]
async fn a_relying_party_logs_in_refreshes_reads_userinfo_and_logs_out() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let registered = app.web_app(false).await;
    let rp_http = app.http.clone();

    // Discovery (fetches the JWKS too).
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &rp_http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        Some(ClientSecret::new(registered.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(registered.redirect_uri.clone()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf_state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_scope(Scope::new("roles".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = browser();
    let callback = app.sign_in_through_pages(&browser, authorize_url.as_str(), &user.email).await;
    assert!(callback.as_str().starts_with(&registered.redirect_uri), "{callback}");
    let query: std::collections::HashMap<String, String> = callback.query_pairs().into_owned().collect();
    assert_eq!(query.get("state"), Some(csrf_state.secret()));
    assert_eq!(query.get("iss"), Some(&app.address), "RFC 9207 iss on success");
    let code = query.get("code").expect("a code");
    assert!(code.len() >= 43, "≥256-bit code");

    // Code exchange; the library verifies the ID token's signature, iss, aud, exp and nonce.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("ID token verifies");
    assert_eq!(claims.subject().as_str(), user.sub);
    assert_eq!(claims.issuer().as_str(), app.address);
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ann@example.com"));
    assert!(claims.auth_time().is_some());
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, vec!["pwd"]);
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&client.id_token_verifier()).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash matches");
    assert_eq!(crate::helpers::jwt_part(&id_token.to_string(), 0)["alg"], "RS256", "RS256 by default");
    let access_claims = crate::helpers::jwt_part(tokens.access_token().secret(), 1);
    assert_eq!(access_claims["sub"], user.sub.as_str());
    assert_eq!(access_claims["client_id"], registered.id.as_str());
    assert_eq!(access_claims["roles"], serde_json::json!(["admin", "billing"]));
    let refresh = tokens.refresh_token().expect("offline_access gives a refresh token").clone();

    // Userinfo.
    let info: CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&rp_http).await.expect("userinfo");
    assert_eq!(info.subject().as_str(), user.sub);
    assert_eq!(info.email().map(|e| e.as_str()), Some("ann@example.com"));
    assert_eq!(info.name().and_then(|n| n.get(None)).map(|n| n.as_str()), Some("Ann Example"));

    // Refresh: rotates. Presented again at once, while its successor is unused, the old token
    // gets that same successor (the grace window, issue 11 item 4); once the successor has been
    // used, the old token is dead and its reuse revokes the family.
    let refreshed = client.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http).await.expect("refresh");
    let rotated = refreshed.refresh_token().expect("a rotated refresh token").clone();
    assert_ne!(rotated.secret(), refresh.secret());
    let again = client.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http).await.expect("in the window");
    assert_eq!(again.refresh_token().map(|t| t.secret()), Some(rotated.secret()), "the same successor");
    let refreshed = client.exchange_refresh_token(&rotated).unwrap().request_async(&rp_http).await.expect("refresh");
    let rotated = refreshed.refresh_token().expect("a rotated refresh token").clone();
    match client.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(e.error().to_string(), "invalid_grant"),
        other => panic!("reused refresh token must fail: {other:?}"),
    }
    match client.exchange_refresh_token(&rotated).unwrap().request_async(&rp_http).await {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().to_string(), "invalid_grant", "family revoked")
        }
        other => panic!("the family must be revoked after reuse: {other:?}"),
    }

    // A fresh login for the logout part (the family above is gone).
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let callback = app.sign_in_through_pages(&browser, authorize_url.as_str(), &user.email).await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    id_token.claims(&client.id_token_verifier(), &nonce).unwrap();

    // RP-initiated logout with the hint: back to the registered URI with state, session gone,
    // the session's tokens revoked at userinfo.
    let logout = browser
        .get(app.url("/logout"))
        .query(&[
            ("id_token_hint", id_token.to_string().as_str()),
            ("post_logout_redirect_uri", registered.post_logout_uri.as_str()),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status().as_u16(), 303);
    assert_eq!(location(&logout), format!("{}?state=bye", registered.post_logout_uri));
    let after = app.http.get(app.url("/userinfo")).bearer_auth(tokens.access_token().secret()).send().await.unwrap();
    assert_eq!(after.status().as_u16(), 401, "tokens of the ended session are revoked");
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let again = browser.get(authorize_url.as_str()).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 303);
    assert!(location(&again).starts_with("/login?rid="), "the session ended server-side: sign in again");
}

#[tokio::test]
async fn a_client_registered_for_es256_gets_es256_id_tokens() {
    use openidconnect::core::CoreJwsSigningAlgorithm;
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let registered = app
        .register(latchkey::domain::NewClient {
            name: "ES256 app".into(),
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            first_party: true,
            id_token_alg: Some("ES256".into()),
            ..Default::default()
        })
        .await;
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &app.http).await.unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        Some(ClientSecret::new(registered.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:9/callback".into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let callback = app.sign_in_through_pages(&browser(), url.as_str(), &user.email).await;
    let code = callback.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&app.http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    assert_eq!(crate::helpers::jwt_part(&id_token.to_string(), 0)["alg"], "ES256");
    let verifier = client.id_token_verifier().set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&verifier, &nonce).expect("ES256 ID token verifies against the JWKS");
    assert_eq!(claims.subject().as_str(), user.sub);
}
