//! Userinfo and the verifier behind it (shared/security.md, "Every verifier in Latchkey
//! refuses …").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey::domain::SigningAlg;
use latchkey::state::unix_now;
use serde_json::json;

use crate::helpers::{browser, jwt_part, pkce, spawn_app, TestApp};

async fn signed_in_tokens(app: &TestApp) -> (crate::helpers::TestUser, serde_json::Value) {
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid profile email roles", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200);
    (user, tokens)
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn get(app: &TestApp, token: &str) -> (u16, String, serde_json::Value) {
    let response = app.http.get(app.url("/userinfo")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, challenge, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn userinfo_returns_the_claims_of_the_granted_scopes() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let (status, _, body) = get(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"sub": user.sub, "name": "Ann Example", "email": "ann@example.com", "email_verified": false, "roles": ["admin", "billing"]})
    );
    // POST with the token in the body (RFC 6750 §2.2) works too; both at once does not.
    let token = tokens["access_token"].as_str().unwrap();
    let posted = app.http.post(app.url("/userinfo")).form(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    let both =
        app.http.post(app.url("/userinfo")).bearer_auth(token).form(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(both.status().as_u16(), 400);
    // Never from the query string.
    let query = app.http.get(app.url("/userinfo")).query(&[("access_token", token)]).send().await.unwrap();
    assert_eq!(query.status().as_u16(), 401);
}

#[tokio::test]
async fn missing_token_is_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm=\"latchkey\""));
}

#[tokio::test]
async fn a_token_without_openid_is_403_insufficient_scope() {
    let app = spawn_app().await;
    let service = app.service_client(&["read"], &[]).await;
    let (_, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    let (status, challenge, body) = get(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
}

#[tokio::test]
async fn the_verifier_refuses_forged_and_misused_tokens() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let header = jwt_part(access, 0);
    let claims = jwt_part(access, 1);
    let signature = access.rsplit('.').next().unwrap();
    let keys = app.state.keys();
    let sign = |claims: &serde_json::Value, typ: &str| keys.sign(SigningAlg::Es256, typ, claims).unwrap();
    let now = unix_now();

    let mut cases: Vec<(&str, String)> = Vec::new();
    // alg: none.
    let none = json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]});
    cases.push(("alg none", format!("{}.{}.", b64(&none), b64(&claims))));
    // HS256 "signed" with our public key (the classic key-confusion attack).
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    let public = jwks["keys"][0].to_string();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            typ: Some("at+jwt".into()),
            kid: header["kid"].as_str().map(String::from),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    cases.push(("HS256 with the public key", hs));
    // Unknown and odd kids.
    for kid in ["unknown", "../../etc/passwd", ""] {
        let h = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        cases.push(("odd kid", format!("{}.{}.{}", b64(&h), b64(&claims), signature)));
    }
    // Key or key URL in the header.
    for (name, value) in [
        ("jku", json!("https://evil.example.com/jwks")),
        ("x5u", json!("https://evil.example.com/cert")),
        ("jwk", json!({"kty": "EC"})),
    ] {
        let mut h = header.clone();
        h[name] = value;
        cases.push(("key in header", format!("{}.{}.{}", b64(&h), b64(&claims), signature)));
    }
    // Tampered payload.
    let mut tampered = claims.clone();
    tampered["sub"] = json!("someone-else");
    cases.push(("tampered", format!("{}.{}.{}", b64(&header), b64(&tampered), signature)));
    // Properly signed by our key, but expired / not yet valid / another issuer.
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 120);
    cases.push(("expired", sign(&expired, "at+jwt")));
    let mut future = claims.clone();
    future["nbf"] = json!(now + 3600);
    cases.push(("not yet valid", sign(&future, "at+jwt")));
    let mut foreign = claims.clone();
    foreign["iss"] = json!("https://evil.example.com");
    cases.push(("wrong iss", sign(&foreign, "at+jwt")));
    // An ID token is not an access token.
    cases.push(("id token", tokens["id_token"].as_str().unwrap().to_string()));
    // Garbage.
    cases.push(("garbage", "not.a.jwt".into()));
    cases.push(("huge", "a".repeat(10_000)));

    for (name, token) in cases {
        let (status, challenge, body) = get(&app, &token).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{name}: {body}");
        assert!(challenge.starts_with("Bearer ") && challenge.contains("invalid_token"), "{name}: {challenge}");
    }
    // The genuine token still works after all that.
    let (status, _, body) = get(&app, access).await;
    assert_eq!((status, body["sub"].as_str()), (200, Some(user.sub.as_str())));
}

#[tokio::test]
async fn a_disabled_user_or_revoked_grant_gets_nothing() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    latchkey::admin::users::disable(app.state.store(), &user.sub, &latchkey::admin::actor::Actor::Cli, unix_now())
        .await
        .unwrap();
    let (status, _, _) = get(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
}

/// Issue 9 item 5: a token meant for another API (validly signed, live grant, `openid` scope)
/// can't be replayed at userinfo; the tokens Latchkey issues for an `openid` flow carry the
/// userinfo audience beside the client's API audience, so relying parties keep working.
#[tokio::test]
async fn userinfo_accepts_only_tokens_with_its_audience() {
    use latchkey::domain::{NewClient, ScopeSet};
    use latchkey::oauth::access_token::{mint, AccessTokenRequest};
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let registered = app
        .register(NewClient {
            name: "App with an API".into(),
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            first_party: true,
            audience: Some("https://api.example.com".into()),
            ..NewClient::default()
        })
        .await;
    let client = crate::helpers::AppClient {
        id: registered.id,
        secret: registered.secret,
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        post_logout_uri: String::new(),
    };
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid email", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo_aud = format!("{}/userinfo", app.address);
    assert_eq!(jwt_part(access, 1)["aud"], json!(["https://api.example.com", userinfo_aud]));
    assert_eq!(get(&app, access).await.0, 200);

    // The same grant, scope and signing key, but meant for the API alone.
    let claims = jwt_part(access, 1);
    let grant_id = claims["jti"].as_str().unwrap().split_once('.').unwrap().0.to_string();
    let settings = app.state.token_settings().access.clone();
    let scope = ScopeSet::parse("openid email").unwrap();
    let api_only = mint(
        &app.state.keys(),
        &settings,
        AccessTokenRequest {
            grant_id: Some(&grant_id),
            subject: &user.sub,
            audience: "https://api.example.com",
            for_userinfo: false,
            client_id: &client.id,
            scope: &scope,
            roles: &[],
        },
        unix_now(),
    )
    .unwrap()
    .token;
    assert_eq!(jwt_part(&api_only, 1)["aud"], "https://api.example.com");
    let (status, challenge, _) = get(&app, &api_only).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("not meant for the userinfo endpoint"), "{challenge}");

    // A service's token for the default audience (the issuer) is not one for userinfo either,
    // even with `openid` among its scopes.
    let service = app.service_client(&["openid"], &[]).await;
    let (_, _, body) = app
        .post_token(&[("grant_type", "client_credentials")], Some((service.id.as_str(), service.secret.as_str())))
        .await;
    let service_token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(service_token, 1)["aud"], app.address.as_str());
    let (status, challenge, _) = get(&app, service_token).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("not meant for the userinfo endpoint"), "{challenge}");
}

/// A token without `openid` carries only the API audience: it was never meant for userinfo.
#[tokio::test]
async fn tokens_without_openid_carry_only_the_api_audience() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "email offline_access", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(jwt_part(tokens["access_token"].as_str().unwrap(), 1)["aud"], app.address.as_str());
    // With openid, the default audience and the userinfo audience.
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid", &p).await;
    let (_, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["aud"],
        json!([app.address, format!("{}/userinfo", app.address)])
    );
}

/// The active key of `alg` as the server holds it: (kid, private key DER, public JWK). Tests
/// forge with the real key, so a forgery fails only on the rule it targets, never on its
/// signature (issue 10 item 1).
async fn real_key(app: &TestApp, alg: SigningAlg) -> (String, Vec<u8>, serde_json::Value) {
    use latchkey::domain::KeyStatus;
    use latchkey::store::KeyStore;
    let records = app.state.store().list_keys().await.unwrap();
    let record = records.iter().find(|r| r.alg == alg && r.status == KeyStatus::Active).unwrap();
    let der = latchkey::keys::seal::open(app.state.master_key(), &record.sealed_private_key, record.kid.as_bytes())
        .unwrap()
        .to_vec();
    (record.kid.clone(), der, record.public_jwk.clone())
}

/// Signs `claims` under `header` with the server's real private key for `alg`.
fn sign_with_real_key(
    alg: SigningAlg,
    der: &[u8],
    header: &jsonwebtoken::Header,
    claims: &serde_json::Value,
) -> String {
    let key = match alg {
        SigningAlg::Rs256 => jsonwebtoken::EncodingKey::from_rsa_der(der),
        SigningAlg::Es256 => jsonwebtoken::EncodingKey::from_ec_der(der),
    };
    jsonwebtoken::encode(header, claims, &key).unwrap()
}

fn b64_bytes(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The forms of a public key that key-confusion attacks use as an HMAC secret (RFC 8725 §2.1):
/// the JWK's JSON, PEM and DER SubjectPublicKeyInfo, PKCS#1 DER (RSA), the raw modulus (RSA)
/// or the uncompressed point (EC).
fn public_key_forms(jwk: &serde_json::Value) -> Vec<(&'static str, Vec<u8>)> {
    let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let mut forms = vec![("JWK JSON", jwk.to_string().into_bytes())];
    if jwk["kty"] == "RSA" {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let key =
            rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&field("n")), rsa::BigUint::from_bytes_be(&field("e")))
                .unwrap();
        forms.push(("PEM", key.to_public_key_pem(LineEnding::LF).unwrap().into_bytes()));
        forms.push(("DER", key.to_public_key_der().unwrap().as_bytes().to_vec()));
        forms.push(("PKCS#1 DER", key.to_pkcs1_der().unwrap().as_bytes().to_vec()));
        forms.push(("modulus", field("n")));
    } else {
        use p256::pkcs8::EncodePublicKey;
        let mut point = vec![4u8];
        point.extend(field("x"));
        point.extend(field("y"));
        let key = p256::PublicKey::from_sec1_bytes(&point).unwrap();
        forms.push(("DER", key.to_public_key_der().unwrap().as_bytes().to_vec()));
        forms.push(("point", point));
    }
    forms
}

#[tokio::test]
async fn forged_headers_signed_with_the_real_key_are_refused() {
    use jsonwebtoken::{Algorithm, Header};
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let claims = jwt_part(access, 1);
    let (kid, der, jwk) = real_key(&app, SigningAlg::Es256).await;
    let header = |kid: Option<&str>| Header {
        typ: Some("at+jwt".into()),
        kid: kid.map(str::to_string),
        ..Header::new(Algorithm::ES256)
    };
    // The control: the real key under a plain header is accepted, so each refusal below is the
    // header rule's doing.
    let genuine = sign_with_real_key(SigningAlg::Es256, &der, &header(Some(&kid)), &claims);
    assert_eq!(get(&app, &genuine).await.0, 200);

    let mut cases: Vec<(String, String)> = Vec::new();
    for odd in ["unknown", "../../etc/passwd", "", &format!("{kid} "), &kid.to_uppercase()] {
        cases.push((format!("kid {odd:?}"), sign_with_real_key(SigningAlg::Es256, &der, &header(Some(odd)), &claims)));
    }
    cases.push(("no kid".into(), sign_with_real_key(SigningAlg::Es256, &der, &header(None), &claims)));
    let mut with_jku = header(Some(&kid));
    with_jku.jku = Some("https://evil.example.com/jwks".into());
    let mut with_x5u = header(Some(&kid));
    with_x5u.x5u = Some("https://evil.example.com/cert".into());
    let mut with_jwk = header(Some(&kid));
    with_jwk.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
    let mut with_x5c = header(Some(&kid));
    with_x5c.x5c = Some(vec![b64_bytes(b"not really a certificate")]);
    for (name, h) in [("jku", with_jku), ("x5u", with_x5u), ("embedded jwk", with_jwk), ("x5c", with_x5c)] {
        cases.push((name.into(), sign_with_real_key(SigningAlg::Es256, &der, &h, &claims)));
    }
    // HS256 with each form of each published public key as the secret, under that key's kid.
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    for public in jwks["keys"].as_array().unwrap() {
        for (form, secret) in public_key_forms(public) {
            let h = Header {
                typ: Some("at+jwt".into()),
                kid: public["kid"].as_str().map(String::from),
                ..Header::new(Algorithm::HS256)
            };
            let token = jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
            cases.push((format!("HS256 with the {} key's {form}", public["kty"]), token));
        }
    }
    // RS256 under the ES256 key's kid (and the other way round): algorithm from our key only.
    let (rsa_kid, rsa_der, _) = real_key(&app, SigningAlg::Rs256).await;
    let rs_under_es_kid =
        Header { typ: Some("at+jwt".into()), kid: Some(kid.clone()), ..Header::new(Algorithm::RS256) };
    cases.push((
        "RS256 under the EC kid".into(),
        sign_with_real_key(SigningAlg::Rs256, &rsa_der, &rs_under_es_kid, &claims),
    ));
    let es_under_rs_kid = header(Some(&rsa_kid));
    cases.push((
        "ES256 under the RSA kid".into(),
        sign_with_real_key(SigningAlg::Es256, &der, &es_under_rs_kid, &claims),
    ));

    // Above the verifier's size bound (8 KiB), refused before parsing however well signed.
    let mut padded = claims.clone();
    padded["pad"] = json!("x".repeat(9000));
    cases.push(("oversized".into(), sign_with_real_key(SigningAlg::Es256, &der, &header(Some(&kid)), &padded)));

    assert!(cases.len() >= 20, "{}", cases.len());
    for (name, token) in cases {
        let (status, challenge, body) = get(&app, &token).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{name}: {body}");
        assert!(challenge.contains("invalid_token"), "{name}: {challenge}");
    }
    let (status, _, body) = get(&app, access).await;
    assert_eq!((status, body["sub"].as_str()), (200, Some(user.sub.as_str())));
}

/// Issue 10 item 2: a disabled user whose grant is still live (disabled behind Latchkey's back,
/// so nothing revoked the grant) gets nothing: the 401 must come from the user check itself.
#[tokio::test]
async fn a_disabled_user_with_a_live_grant_gets_nothing() {
    let app = spawn_app().await;
    let (user, tokens) = signed_in_tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get(&app, access).await.0, 200);
    use crate::helpers::{exec_sql, SqlValue};
    exec_sql(
        &app.db,
        "UPDATE users SET disabled_at = $1 WHERE sub = $2",
        &[SqlValue::Int(unix_now()), SqlValue::Text(&user.sub)],
    )
    .await;
    let grant = jwt_part(access, 1)["jti"].as_str().unwrap().split_once('.').unwrap().0.to_string();
    use latchkey::store::GrantStore;
    assert!(app.state.store().grant_is_live(&grant, unix_now()).await.unwrap(), "the grant is still live");
    let (status, challenge, body) = get(&app, access).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    assert!(challenge.contains("can no longer sign in"), "{challenge}");
}

/// Tokens are refused above a size bound before any parsing (`oauth/verify.rs`), but a large
/// legitimate one — a user with many roles — still verifies: the bound is generous (8 KiB), not
/// a cut that real tokens can reach.
#[tokio::test]
async fn a_large_legitimate_token_verifies() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    use latchkey::store::UserStore;
    let roles: Vec<String> = (0..60).map(|i| format!("department-{i:02}-reader")).collect();
    app.state.store().set_roles(&user.sub, &roles, unix_now()).await.unwrap();
    let client = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &client, &user.email, "openid roles", &p).await;
    let (status, tokens) = app.redeem(&client, &code, Some(&p.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(access.len() > 2048, "a large token: {} bytes", access.len());
    let (status, _, body) = get(&app, access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"].as_array().unwrap().len(), 60);
}

/// The size bound's edge: a well-signed token of exactly 8 KiB verifies; one byte more does not.
#[tokio::test]
async fn the_size_bound_is_exactly_eight_kib() {
    use jsonwebtoken::{Algorithm, Header};
    let app = spawn_app().await;
    let (_, tokens) = signed_in_tokens(&app).await;
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    let (kid, der, _) = real_key(&app, SigningAlg::Es256).await;
    // base64url never makes some lengths, so the header's optional `cty` shifts the total.
    let of_length = |target: usize| {
        ["", "a", "ab", "abc"].iter().find_map(|cty| {
            let header = Header {
                typ: Some("at+jwt".into()),
                kid: Some(kid.clone()),
                cty: (!cty.is_empty()).then(|| cty.to_string()),
                ..Header::new(Algorithm::ES256)
            };
            (4000..7000).find_map(|n| {
                let mut padded = claims.clone();
                padded["pad"] = json!("x".repeat(n));
                let token = sign_with_real_key(SigningAlg::Es256, &der, &header, &padded);
                (token.len() == target).then_some(token)
            })
        })
    };
    let at_bound = of_length(8192).expect("a token of exactly 8192 bytes");
    assert_eq!(get(&app, &at_bound).await.0, 200);
    let over = of_length(8193).or_else(|| of_length(8194)).expect("a token just over the bound");
    assert_eq!(get(&app, &over).await.0, 401);
}
