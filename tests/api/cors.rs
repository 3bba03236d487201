//! CORS for browser apps (issue 11 item 1; shared/security.md "Browser apps (CORS)"): public
//! documents for anyone; token and userinfo answers only for the calling client's own origins;
//! a token request from any other origin refused before it spends anything.

use latchkey::domain::NewClient;
use reqwest::header::HeaderMap;

use crate::helpers::*;

const SPA_ORIGIN: &str = "http://127.0.0.1:9999";

fn acao(headers: &HeaderMap) -> Option<&str> {
    headers.get("access-control-allow-origin").map(|v| v.to_str().unwrap())
}

fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers.get_all("vary").iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
}

/// A public browser app at SPA_ORIGIN, and a code for it.
async fn spa(app: &TestApp, extra_origins: Vec<String>) -> (AppClient, String, Pkce) {
    let redirect_uri = format!("{SPA_ORIGIN}/callback");
    let registered = app
        .register(NewClient {
            name: "SPA".into(),
            public: true,
            first_party: true,
            redirect_uris: vec![redirect_uri.clone()],
            allowed_origins: extra_origins,
            ..NewClient::default()
        })
        .await;
    let client = AppClient { id: registered.id, secret: String::new(), redirect_uri, post_logout_uri: String::new() };
    app.user("ann@example.com").await;
    let pair = pkce();
    let code = app.code_for(&browser(), &client, "ann@example.com", "openid offline_access", &pair).await;
    (client, code, pair)
}

async fn token_from(app: &TestApp, origin: Option<&str>, form: &[(&str, &str)]) -> (u16, HeaderMap, serde_json::Value) {
    let mut request = app.http.post(app.token_url()).form(form);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or_default())
}

fn code_form<'a>(client: &'a AppClient, code: &'a str, pair: &'a Pkce) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", client.id.as_str()),
        ("code", code),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", pair.verifier.as_str()),
    ]
}

#[tokio::test]
async fn discovery_and_jwks_are_readable_from_any_origin() {
    let app = spawn_app().await;
    for path in
        ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/.well-known/jwks.json"]
    {
        let response = app.http.get(app.url(path)).header("origin", "https://anyone.example").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(acao(response.headers()), Some("*"), "{path}");
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://anyone.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status().as_u16(), 204, "{path}");
        assert_eq!(acao(preflight.headers()), Some("*"), "{path}");
    }
}

#[tokio::test]
async fn the_token_endpoint_answers_only_the_clients_own_origins() {
    let app = spawn_app().await;
    let (client, code, pair) = spa(&app, vec![]).await;
    // Another client's origin, another port, opaque and made-up origins: refused before the
    // grant runs, and unreadable.
    app.register(NewClient {
        name: "Other".into(),
        redirect_uris: vec!["https://other.example/cb".into()],
        allowed_origins: vec!["https://other-spa.example".into()],
        ..NewClient::default()
    })
    .await;
    for origin in
        ["https://other.example", "https://other-spa.example", "http://127.0.0.1:9998", "null", "https://evil.example"]
    {
        let (status, headers, body) = token_from(&app, Some(origin), &code_form(&client, &code, &pair)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{origin}: {body}");
        assert_eq!(acao(&headers), None, "{origin}");
        assert!(varies_on_origin(&headers), "{origin}");
    }
    // Nothing was spent: the code still works, from the app's own origin, and the answer is
    // readable there.
    let (status, headers, tokens) = token_from(&app, Some(SPA_ORIGIN), &code_form(&client, &code, &pair)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(acao(&headers), Some(SPA_ORIGIN));
    assert!(varies_on_origin(&headers));
    assert_ne!(acao(&headers), Some("*"));
    // Errors are readable by the app too (a replayed code).
    let (status, headers, body) = token_from(&app, Some(SPA_ORIGIN), &code_form(&client, &code, &pair)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(acao(&headers), Some(SPA_ORIGIN));
    // A refresh token is not spent by a refused origin either.
    let pair = pkce();
    let code = app.code_for(&browser(), &client, "ann@example.com", "openid offline_access", &pair).await;
    let (_, _, tokens) = token_from(&app, Some(SPA_ORIGIN), &code_form(&client, &code, &pair)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("client_id", client.id.as_str()), ("refresh_token", refresh)];
    let (status, _, _) = token_from(&app, Some("https://evil.example"), &form).await;
    assert_eq!(status, 400);
    let (status, headers, body) = token_from(&app, Some(SPA_ORIGIN), &form).await;
    assert_eq!(status, 200, "the refused request spent nothing: {body}");
    assert_eq!(acao(&headers), Some(SPA_ORIGIN));
    // Without Origin (a server-side or native app), nothing changes.
    let (status, headers, again) = token_from(&app, None, &form).await;
    assert_eq!(status, 200, "within refresh_token_reuse_grace the same successor comes back: {again}");
    assert_eq!(again["refresh_token"], body["refresh_token"]);
    assert_eq!(acao(&headers), None);
}

#[tokio::test]
async fn explicitly_registered_origins_are_allowed() {
    let app = spawn_app().await;
    let (client, code, pair) = spa(&app, vec!["https://App.Example.com/".into()]).await;
    let (status, headers, body) =
        token_from(&app, Some("https://app.example.com"), &code_form(&client, &code, &pair)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(acao(&headers), Some("https://app.example.com"));
}

#[tokio::test]
async fn preflights_allow_the_methods_and_headers_the_endpoints_read() {
    let app = spawn_app().await;
    for path in ["/token", "/userinfo"] {
        let response = app
            .http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", SPA_ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204, "{path}");
        let h = response.headers();
        assert_eq!(acao(h), Some(SPA_ORIGIN), "{path}");
        let methods = h["access-control-allow-methods"].to_str().unwrap();
        assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
        let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
        // An opaque origin gets nothing to go on.
        let null =
            app.http.request(reqwest::Method::OPTIONS, app.url(path)).header("origin", "null").send().await.unwrap();
        assert_eq!(null.status().as_u16(), 204);
        assert_eq!(acao(null.headers()), None);
    }
}

#[tokio::test]
async fn userinfo_is_readable_only_by_the_token_clients_origins() {
    let app = spawn_app().await;
    let (client, code, pair) = spa(&app, vec![]).await;
    let (_, _, tokens) = token_from(&app, Some(SPA_ORIGIN), &code_form(&client, &code, &pair)).await;
    let access = tokens["access_token"].as_str().unwrap();
    let get = |origin: &'static str, token: String| {
        let app = &app;
        async move {
            let r =
                app.http.get(app.url("/userinfo")).bearer_auth(token).header("origin", origin).send().await.unwrap();
            (r.status().as_u16(), r.headers().clone())
        }
    };
    let (status, headers) = get(SPA_ORIGIN, access.to_string()).await;
    assert_eq!((status, acao(&headers)), (200, Some(SPA_ORIGIN)));
    let (status, headers) = get("https://evil.example", access.to_string()).await;
    assert_eq!((status, acao(&headers)), (200, None));
    assert!(varies_on_origin(&headers));
    let (status, headers) = get(SPA_ORIGIN, "not-a-token".to_string()).await;
    assert_eq!((status, acao(&headers)), (401, None));
}

#[tokio::test]
async fn the_authorization_endpoint_and_the_pages_send_no_cors_headers() {
    let app = spawn_app().await;
    let (client, _, _) = spa(&app, vec![]).await;
    let url = authorize_url(&app, &client, "openid", &pkce().challenge, &[]);
    for target in [url, app.url("/login"), app.url("/account"), app.url("/")] {
        let response = browser().get(&target).header("origin", SPA_ORIGIN).send().await.unwrap();
        assert_eq!(acao(response.headers()), None, "{target}");
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, &target)
            .header("origin", SPA_ORIGIN)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(preflight.headers()), None, "{target}");
    }
}

/// Revocation (a browser app signing out) follows the token endpoint's rule; introspection is
/// for resource servers and never answers a page.
#[tokio::test]
async fn revocation_is_for_the_clients_origins_and_introspection_for_none() {
    let app = spawn_app().await;
    let (client, code, pair) = spa(&app, vec![]).await;
    let (_, _, tokens) = token_from(&app, Some(SPA_ORIGIN), &code_form(&client, &code, &pair)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let revoke = |origin: &'static str| {
        let app = &app;
        let form = vec![("client_id", client.id.clone()), ("token", refresh.to_string())];
        async move {
            let r = app.http.post(app.url("/revoke")).header("origin", origin).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.headers().clone())
        }
    };
    let (status, headers) = revoke("https://evil.example").await;
    assert_eq!((status, acao(&headers)), (400, None));
    // Nothing was revoked by the refused page.
    let form = [("grant_type", "refresh_token"), ("client_id", client.id.as_str()), ("refresh_token", refresh)];
    let (status, _, rotated) = token_from(&app, Some(SPA_ORIGIN), &form).await;
    assert_eq!(status, 200, "{rotated}");
    let refresh = rotated["refresh_token"].as_str().unwrap();
    let form = vec![("client_id", client.id.clone()), ("token", refresh.to_string())];
    let r = app.http.post(app.url("/revoke")).header("origin", SPA_ORIGIN).form(&form).send().await.unwrap();
    assert_eq!((r.status().as_u16(), acao(r.headers())), (200, Some(SPA_ORIGIN)));
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/revoke"))
        .header("origin", SPA_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!((preflight.status().as_u16(), acao(preflight.headers())), (204, Some(SPA_ORIGIN)));
    let introspect = app
        .http
        .post(app.url("/introspect"))
        .header("origin", SPA_ORIGIN)
        .form(&[("client_id", client.id.as_str()), ("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(acao(introspect.headers()), None);
}
