//! The admin REST API (issue 13 items 1–2) over HTTP, on whichever store the suite runs on:
//! every operation, who gets in (RFC 6750 answers), pagination, RFC 9457 problem details, the
//! audit trail naming the acting client, and the served OpenAPI document.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const ADMIN: &str = "latchkey:admin";
const ADMIN_READ: &str = "latchkey:admin.read";

/// The first admin client, made with the CLI as an operator would.
async fn admin_client(app: &TestApp, scope: &str) -> (String, String) {
    let created =
        cli_json(&latchkey_cli(&app.db, &["client", "create", "--name", "ops", "--scope", scope], &[], None).await);
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().unwrap().to_string())
}

async fn token_for(app: &TestApp, (id, secret): &(String, String), scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let (status, _, body) = app.post_token(&form, Some((id, secret))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A write-capable admin token (and its client).
async fn admin(app: &TestApp) -> (String, (String, String)) {
    let client = admin_client(app, ADMIN).await;
    (token_for(app, &client, None).await, client)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn challenge(&self) -> &str {
        self.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    /// An RFC 9457 problem with this status.
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["type"], "about:blank");
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()), "{}", self.body);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", self.body);
    }
}

async fn call(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status, headers, body }
}

async fn admin_events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let answer = call(app, Method::GET, &format!("/admin/v1/audit-events?{query}"), Some(token), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_admin_client_manages_clients_and_every_write_is_audited_with_it() {
    let app = spawn_app().await;
    let (token, (admin_id, _)) = admin(&app).await;

    let created = call(
        &app,
        Method::POST,
        "/admin/v1/clients",
        Some(&token),
        Some(json!({"name": "Orders", "scopes": ["orders:read", "orders:write"], "roles": ["svc"]})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers.get("cache-control").unwrap(), "no-store");
    let id = created.body["client_id"].as_str().unwrap().to_string();
    let secret = created.body["client_secret"].as_str().unwrap().to_string();
    assert_eq!(created.body["grant_types"], json!(["client_credentials"]));
    assert_eq!(created.body["scopes"], json!(["orders:read", "orders:write"]));
    // The new client works at the token endpoint at once.
    let (status, _, _) = app.post_token(&[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, 200);

    let listed = call(&app, Method::GET, "/admin/v1/clients", Some(&token), None).await;
    assert_eq!(listed.status, 200);
    let ids: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&admin_id.as_str()), "{ids:?}");
    assert!(listed.body["items"].as_array().unwrap().iter().all(|c| c.get("client_secret").is_none()));

    let shown = call(&app, Method::GET, &format!("/admin/v1/clients/{id}"), Some(&token), None).await;
    assert_eq!((shown.status, shown.body["name"].as_str()), (200, Some("Orders")));

    // PATCH: a list replaces the registered one, null clears, absent fields stay.
    let patched = call(
        &app,
        Method::PATCH,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        Some(json!({"name": "Orders API", "scopes": ["orders:read"], "audience": "https://orders.example"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["scopes"], json!(["orders:read"]));
    assert_eq!(patched.body["roles"], json!(["svc"]));
    assert_eq!(patched.body["audience"], "https://orders.example");
    let cleared =
        call(&app, Method::PATCH, &format!("/admin/v1/clients/{id}"), Some(&token), Some(json!({"audience": null})))
            .await;
    assert_eq!((cleared.status, cleared.body["audience"].clone()), (200, Value::Null));
    // An edit that breaks a registration rule changes nothing.
    let refused = call(
        &app,
        Method::PATCH,
        &format!("/admin/v1/clients/{id}"),
        Some(&token),
        Some(json!({"grant_types": ["authorization_code"]})),
    )
    .await;
    refused.assert_problem(422);
    assert!(refused.body["detail"].as_str().unwrap().contains("redirect"), "{}", refused.body);

    // Rotating the secret: the old one stops, the new one works.
    let rotated = call(&app, Method::POST, &format!("/admin/v1/clients/{id}/secret"), Some(&token), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let (old, _, body) = app.post_token(&[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!((old, body["error"].as_str()), (401, Some("invalid_client")));
    let (new, _, _) = app.post_token(&[("grant_type", "client_credentials")], Some((&id, new_secret))).await;
    assert_eq!(new, 200);

    let disabled = call(&app, Method::POST, &format!("/admin/v1/clients/{id}/disable"), Some(&token), None).await;
    assert_eq!((disabled.status, disabled.body["disabled"].clone()), (200, json!(true)));
    let deleted = call(&app, Method::DELETE, &format!("/admin/v1/clients/{id}"), Some(&token), None).await;
    assert_eq!((deleted.status, deleted.body.clone()), (204, Value::Null));
    call(&app, Method::GET, &format!("/admin/v1/clients/{id}"), Some(&token), None).await.assert_problem(404);
    call(&app, Method::DELETE, &format!("/admin/v1/clients/{id}"), Some(&token), None).await.assert_problem(404);

    // Every write names the acting client; reads are not recorded.
    let events = admin_events(&app, &token, &format!("client_id={id}")).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "client.deleted",
            "client.disabled",
            "client.secret_rotated",
            "client.updated",
            "client.updated",
            "client.created"
        ]
    );
    for event in &events {
        assert_eq!(event["detail"]["by"], "admin_api", "{event}");
        assert_eq!(event["detail"]["actor_client_id"], admin_id.as_str(), "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
    }
    assert_eq!(events[3]["detail"]["changed"], json!(["audience"]));
}

#[tokio::test]
async fn only_admin_tokens_for_the_admin_audience_get_in() {
    let app = spawn_app().await;
    let (token, ops) = admin(&app).await;
    let read_only = admin_client(&app, ADMIN_READ).await;
    let read_token = token_for(&app, &read_only, None).await;

    // No token: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    let none = call(&app, Method::GET, "/admin/v1/clients", None, None).await;
    none.assert_problem(401);
    assert_eq!(none.challenge(), r#"Bearer realm="latchkey-admin", scope="latchkey:admin latchkey:admin.read""#);
    // Not a token of ours.
    let junk = call(&app, Method::GET, "/admin/v1/clients", Some("a.b.c"), None).await;
    junk.assert_problem(401);
    assert!(junk.challenge().contains(r#"error="invalid_token""#), "{}", junk.challenge());
    // A service's token for another API (the default audience) is refused however it is scoped.
    let service = app.service_client(&["orders:read"], &[]).await;
    let other = token_for(&app, &(service.id.clone(), service.secret.clone()), None).await;
    let answer = call(&app, Method::GET, "/admin/v1/clients", Some(&other), None).await;
    answer.assert_problem(401);
    assert!(answer.challenge().contains(r#"error="invalid_token""#));
    assert!(answer.body["detail"].as_str().unwrap().contains("not meant for the admin API"), "{}", answer.body);
    // A user's access token never gets in, nor an ID token.
    let user = app.user("ann@example.com").await;
    let web = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &web, &user.email, "openid", &p).await;
    let (_, tokens) = app.redeem(&web, &code, Some(&p.verifier)).await;
    for t in ["access_token", "id_token"] {
        let answer = call(&app, Method::GET, "/admin/v1/users", Some(tokens[t].as_str().unwrap()), None).await;
        answer.assert_problem(401);
    }

    // Read-only: reads pass, writes get 403 insufficient_scope naming the scope needed.
    assert_eq!(call(&app, Method::GET, "/admin/v1/clients", Some(&read_token), None).await.status, 200);
    assert_eq!(call(&app, Method::GET, "/admin/v1/keys", Some(&read_token), None).await.status, 200);
    let write = call(&app, Method::POST, "/admin/v1/clients", Some(&read_token), Some(json!({"name": "x"}))).await;
    write.assert_problem(403);
    assert!(
        write.challenge().contains(r#"error="insufficient_scope", scope="latchkey:admin""#),
        "{}",
        write.challenge()
    );
    let rotate = call(&app, Method::POST, "/admin/v1/keys/rotate", Some(&read_token), None).await;
    rotate.assert_problem(403);
    // The write scope reads too.
    assert_eq!(call(&app, Method::GET, "/admin/v1/audit-events", Some(&token), None).await.status, 200);

    // Admin scopes come alone, only to services, and only with client credentials. A service
    // registered for both kinds gets each kind in its own token, never both in one.
    let both = cli_json(
        &latchkey_cli(
            &app.db,
            &["client", "create", "--name", "both", "--scope", ADMIN, "--scope", "orders:read"],
            &[],
            None,
        )
        .await,
    );
    let both = (both["client_id"].as_str().unwrap().to_string(), both["client_secret"].as_str().unwrap().to_string());
    let (status, _, body) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "latchkey:admin orders:read")],
            Some((&both.0, &both.1)),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("granted alone"), "{body}");
    let orders = token_for(&app, &both, Some("orders:read")).await;
    assert_eq!(jwt_part(&orders, 1)["aud"], app.address.as_str());
    call(&app, Method::GET, "/admin/v1/clients", Some(&orders), None).await.assert_problem(401);
    let admin_only = token_for(&app, &both, Some(ADMIN)).await;
    assert_eq!(jwt_part(&admin_only, 1)["aud"], format!("{}/admin/v1", app.address));
    assert_eq!(call(&app, Method::GET, "/admin/v1/clients", Some(&admin_only), None).await.status, 200);
    let refused = latchkey_cli(
        &app.db,
        &[
            "client",
            "create",
            "--name",
            "app",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--scope",
            "openid",
            "--scope",
            ADMIN,
        ],
        &[],
        None,
    )
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("client_credentials grant alone"));

    // Taking the scope away, or disabling the client, ends its tokens at once.
    let by_other = call(
        &app,
        Method::PATCH,
        &format!("/admin/v1/clients/{}", read_only.0),
        Some(&token),
        Some(json!({"scopes": ["orders:read"]})),
    )
    .await;
    assert_eq!(by_other.status, 200, "{}", by_other.body);
    let gone = call(&app, Method::GET, "/admin/v1/clients", Some(&read_token), None).await;
    gone.assert_problem(403);
    // An admin client can't lock itself out through the API.
    let own = format!("/admin/v1/clients/{}", ops.0);
    call(&app, Method::POST, &format!("{own}/disable"), Some(&token), None).await.assert_problem(409);
    call(&app, Method::DELETE, &own, Some(&token), None).await.assert_problem(409);
    call(&app, Method::PATCH, &own, Some(&token), Some(json!({"scopes": []}))).await.assert_problem(409);
    // The CLI can: the token stops working on the next request.
    cli_json(&latchkey_cli(&app.db, &["client", "disable", &ops.0], &[], None).await);
    let after = call(&app, Method::GET, "/admin/v1/clients", Some(&token), None).await;
    after.assert_problem(401);
    assert!(after.body["detail"].as_str().unwrap().contains("disabled"), "{}", after.body);
}

#[tokio::test]
async fn bad_requests_are_problem_details() {
    let app = spawn_app().await;
    let (token, _) = admin(&app).await;
    let raw = |body: &'static str, content_type: &'static str| {
        let request = app.http.post(app.url("/admin/v1/clients")).bearer_auth(&token).body(body);
        request.header("content-type", content_type).send()
    };
    for (body, content_type, status) in [
        ("{not json", "application/json", 400),
        (r#"{"name": "x", "colour": "red"}"#, "application/json", 400),
        (r#"{"name": 7}"#, "application/json", 400),
        (r#"{"name": "x"}"#, "text/plain", 415),
        (r#"{"name": "x", "redirect_uris": ["http://evil.example/cb"]}"#, "application/json", 422),
        (r#"{"name": ""}"#, "application/json", 422),
    ] {
        let response = raw(body, content_type).await.unwrap();
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.json().await.unwrap(),
        };
        answer.assert_problem(status);
    }
    call(&app, Method::GET, "/admin/v1/clients/nope", Some(&token), None).await.assert_problem(404);
    call(&app, Method::GET, "/admin/v1/no-such-thing", Some(&token), None).await.assert_problem(404);
    call(&app, Method::GET, "/admin/v1/users/nobody@example.com", Some(&token), None).await.assert_problem(404);
    call(&app, Method::GET, "/admin/v1/users?limit=0", Some(&token), None).await.assert_problem(400);
    call(&app, Method::GET, "/admin/v1/users?limit=x", Some(&token), None).await.assert_problem(400);
    call(&app, Method::GET, "/admin/v1/users?cursor=%%%", Some(&token), None).await.assert_problem(400);
    call(&app, Method::GET, "/admin/v1/audit-events?type=made.up", Some(&token), None).await.assert_problem(400);
    let weak = json!({"email": "weak@example.com", "password": "password"});
    let answer = call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(weak)).await;
    answer.assert_problem(422);
    let first = json!({"email": "Dup@Example.com", "password": "a long enough passphrase"});
    assert_eq!(call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(first.clone())).await.status, 201);
    let second = json!({"email": "dup@example.com", "password": "a long enough passphrase"});
    call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(second)).await.assert_problem(409);
}

#[tokio::test]
async fn users_are_searched_and_paged_with_cursors() {
    let app = spawn_app().await;
    let (token, _) = admin(&app).await;
    for name in ["dora", "bob", "anna", "carl", "ann", "erin"] {
        let body = json!({"email": format!("{name}@example.com"), "password": "a long enough passphrase"});
        assert_eq!(call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(body)).await.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/v1/users?limit=4".to_string();
    loop {
        let page = call(&app, Method::GET, &path, Some(&token), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        seen.extend(items.iter().map(|u| u["email"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/users?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> =
        ["ann", "anna", "bob", "carl", "dora", "erin"].iter().map(|n| format!("{n}@example.com")).collect();
    assert_eq!(seen, expected);
    // Search is by the start of the address, case-insensitively, and pages the same way.
    let found = call(&app, Method::GET, "/admin/v1/users?search=ANN&limit=1", Some(&token), None).await;
    assert_eq!(found.body["items"][0]["email"], "ann@example.com");
    let cursor = found.body["next_cursor"].as_str().unwrap();
    let next =
        call(&app, Method::GET, &format!("/admin/v1/users?search=ann&limit=1&cursor={cursor}"), Some(&token), None)
            .await;
    assert_eq!(next.body["items"][0]["email"], "anna@example.com");
    assert_eq!(next.body["next_cursor"], Value::Null);
    let none = call(&app, Method::GET, "/admin/v1/users?search=zed", Some(&token), None).await;
    assert_eq!((none.body["items"].clone(), none.body["next_cursor"].clone()), (json!([]), Value::Null));

    // Clients page the same way, in client_id order.
    for n in 0..4 {
        let body = json!({"name": format!("svc {n}")});
        assert_eq!(call(&app, Method::POST, "/admin/v1/clients", Some(&token), Some(body)).await.status, 201);
    }
    let mut ids = Vec::new();
    let mut path = "/admin/v1/clients?limit=2".to_string();
    loop {
        let page = call(&app, Method::GET, &path, Some(&token), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        ids.extend(page.body["items"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/clients?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5, "four services and the admin client: {ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test]
async fn users_are_managed_and_their_grants_and_sessions_ended() {
    let app = spawn_app().await;
    let (token, (admin_id, _)) = admin(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/admin/v1/users",
        Some(&token),
        Some(json!({"email": "Ann@Example.com", "name": "Ann", "roles": ["staff"],
            "password": TEST_PASSWORD, "email_verified": true})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sub = created.body["sub"].as_str().unwrap().to_string();
    assert_eq!(created.body["email"], "ann@example.com");
    assert_eq!(created.body["email_verified"], true);
    assert!(created.body.get("password_hash").is_none());
    let by_email = call(&app, Method::GET, "/admin/v1/users/ann@example.com", Some(&token), None).await;
    assert_eq!(by_email.body["sub"], sub.as_str());

    let user_path = format!("/admin/v1/users/{sub}");
    let patched = call(
        &app,
        Method::PATCH,
        &user_path,
        Some(&token),
        Some(json!({"name": "Ann B", "roles": ["billing", "staff"]})),
    )
    .await;
    assert_eq!(
        (patched.body["name"].clone(), patched.body["roles"].clone()),
        (json!("Ann B"), json!(["billing", "staff"]))
    );
    let added = call(&app, Method::PUT, &format!("{user_path}/roles/ops"), Some(&token), None).await;
    assert_eq!(added.body["roles"], json!(["billing", "ops", "staff"]));
    let removed = call(&app, Method::DELETE, &format!("{user_path}/roles/billing"), Some(&token), None).await;
    assert_eq!(removed.body["roles"], json!(["ops", "staff"]));
    call(&app, Method::DELETE, &format!("{user_path}/roles/billing"), Some(&token), None).await.assert_problem(422);
    // All or nothing: a bad role leaves the name as it was.
    let half = json!({"name": "Someone Else", "roles": ["has space"]});
    call(&app, Method::PATCH, &user_path, Some(&token), Some(half)).await.assert_problem(422);
    let unchanged = call(&app, Method::GET, &user_path, Some(&token), None).await;
    assert_eq!(unchanged.body["name"], "Ann B");
    let renamed = call(&app, Method::PATCH, &user_path, Some(&token), Some(json!({"name": null}))).await;
    assert_eq!(renamed.body["name"], Value::Null);

    // The user signs in to an app: one grant, one session.
    let web = app.web_app(true).await;
    let b = browser();
    let p = pkce();
    let code = app.code_for(&b, &web, "ann@example.com", "openid offline_access", &p).await;
    let (_, tokens) = app.redeem(&web, &code, Some(&p.verifier)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let grants = call(&app, Method::GET, &format!("{user_path}/grants"), Some(&token), None).await;
    let items = grants.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", grants.body);
    assert_eq!(items[0]["client_id"], web.id.as_str());
    let grant_id = items[0]["id"].as_str().unwrap();
    let sessions = call(&app, Method::GET, &format!("{user_path}/sessions"), Some(&token), None).await;
    let items = sessions.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", sessions.body);
    assert_eq!(items[0]["amr"], json!(["pwd"]));
    let session_id = items[0]["id"].as_str().unwrap().to_string();

    // Another user's path can't reach them: 404, and they stay live.
    let bob = json!({"email": "bob@example.com", "password": TEST_PASSWORD});
    assert_eq!(call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(bob)).await.status, 201);
    let bobs = "/admin/v1/users/bob@example.com";
    call(&app, Method::DELETE, &format!("{bobs}/grants/{grant_id}"), Some(&token), None).await.assert_problem(404);
    call(&app, Method::DELETE, &format!("{bobs}/sessions/{session_id}"), Some(&token), None).await.assert_problem(404);
    let (status, body) = app.refresh(&web, refresh, None).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let refresh = refresh.as_str();
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status().as_u16(), 200, "still signed in");
    // Revoking the grant ends its refresh token and access token.
    let revoked = call(&app, Method::DELETE, &format!("{user_path}/grants/{grant_id}"), Some(&token), None).await;
    assert_eq!(revoked.status, 204);
    let (status, body) = app.refresh(&web, refresh, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(app.userinfo_status(tokens["access_token"].as_str().unwrap()).await, 401);
    call(&app, Method::DELETE, &format!("{user_path}/grants/{grant_id}"), Some(&token), None).await.assert_problem(404);
    // Ending the session signs the browser out.
    let ended = call(&app, Method::DELETE, &format!("{user_path}/sessions/{session_id}"), Some(&token), None).await;
    assert_eq!(ended.status, 204);
    let account = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status().as_u16(), 303, "signed out");
    let sessions = call(&app, Method::GET, &format!("{user_path}/sessions"), Some(&token), None).await;
    assert_eq!(sessions.body["items"], json!([]));

    // MFA reset, password, disable.
    let b = signed_in(&app, "ann@example.com", TEST_PASSWORD).await;
    enrol_totp(&app, &b).await;
    let reset = call(&app, Method::DELETE, &format!("{user_path}/mfa"), Some(&token), None).await;
    assert_eq!((reset.status, reset.body["had_mfa"].clone()), (200, json!(true)));
    let password = json!({"password": "another long passphrase"});
    let changed = call(&app, Method::POST, &format!("{user_path}/password"), Some(&token), Some(password)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(changed.body["password_changed_at"].as_i64() >= created.body["password_changed_at"].as_i64());
    let disabled = call(&app, Method::POST, &format!("{user_path}/disable"), Some(&token), None).await;
    assert_eq!(disabled.body["disabled"], true);

    // Invitations create the account and queue the email.
    let invited = call(
        &app,
        Method::POST,
        "/admin/v1/invitations",
        Some(&token),
        Some(json!({"email": "ivy@example.com", "name": "Ivy", "roles": ["staff"]})),
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    assert_eq!(invited.body["user"]["created_via"], "invited");
    assert!(invited.body["invitation_expires_at"].as_i64().unwrap() > latchkey::state::unix_now());
    // An address with an account of its own: a conflict, as for POST /users.
    let taken = json!({"email": "ANN@example.com"});
    call(&app, Method::POST, "/admin/v1/invitations", Some(&token), Some(taken)).await.assert_problem(409);

    let events = admin_events(&app, &token, &format!("user={sub}&limit=50")).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for expected in [
        "user.created",
        "user.updated",
        "user.roles_changed",
        "grant.revoked",
        "session.revoked",
        "mfa.reset",
        "password.changed",
        "user.disabled",
    ] {
        let event = events.iter().find(|e| e["event"] == expected).unwrap_or_else(|| panic!("{expected}: {kinds:?}"));
        assert_eq!(event["detail"]["actor_client_id"], admin_id.as_str(), "{event}");
    }
}

#[tokio::test]
async fn keys_rotate_and_the_audit_trail_pages_newest_first() {
    let app = spawn_app().await;
    let (token, (admin_id, _)) = admin(&app).await;
    let keys = call(&app, Method::GET, "/admin/v1/keys", Some(&token), None).await;
    let before = keys.body["items"].as_array().unwrap().len();
    assert!(keys.body["items"].as_array().unwrap().iter().all(|k| k.get("sealed_private_key").is_none()));
    let rotated = call(&app, Method::POST, "/admin/v1/keys/rotate", Some(&token), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let published = rotated.body["published"].as_array().unwrap();
    assert_eq!(published.len(), 2, "one per algorithm: {}", rotated.body);
    assert!(published.iter().all(|k| k["status"] == "next"));
    // This replica publishes them at once.
    let (_, _, jwks) = app.get_json("/.well-known/jwks.json").await;
    for key in published {
        assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == key["kid"]), "{jwks}");
    }
    let again = call(&app, Method::POST, "/admin/v1/keys/rotate", Some(&token), None).await;
    assert_eq!(again.body["published"], json!([]));
    let keys = call(&app, Method::GET, "/admin/v1/keys", Some(&token), None).await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), before + 2);

    // Twelve more events, then pages of five, newest first, with no repeats and no gaps.
    for n in 0..12 {
        let body = json!({"email": format!("u{n}@example.com"), "password": "a long enough passphrase"});
        assert_eq!(call(&app, Method::POST, "/admin/v1/users", Some(&token), Some(body)).await.status, 201);
    }
    let mut ids = Vec::new();
    let mut path = "/admin/v1/audit-events?type=user.created&limit=5".to_string();
    loop {
        let page = call(&app, Method::GET, &path, Some(&token), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        ids.extend(page.body["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/v1/audit-events?type=user.created&limit=5&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 12);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let rotation = admin_events(&app, &token, "type=signing_key.rotated").await;
    assert_eq!(rotation.len(), 1, "the empty rotation records nothing");
    assert_eq!(rotation[0]["detail"]["actor_client_id"], admin_id.as_str());
    // The admin client's own creation, by the CLI.
    let own = admin_events(&app, &token, &format!("client_id={admin_id}")).await;
    assert_eq!(own.len(), 1);
    assert_eq!((own[0]["event"].as_str(), own[0]["detail"]["by"].as_str()), (Some("client.created"), Some("cli")));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_served() {
    let app = spawn_app().await;
    let (status, headers, doc) = app.get_json("/admin/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], app.settings.issuer.as_str());
    let flow = &doc["components"]["securitySchemes"]["admin_token"]["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], format!("{}/token", app.settings.issuer));
    assert!(flow["scopes"].get(ADMIN).is_some() && flow["scopes"].get(ADMIN_READ).is_some());
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            // Every operation needs the admin token and answers errors as problem details.
            assert!(operation["security"][0]["admin_token"].is_array(), "{method} {path}");
            for (code, response) in operation["responses"].as_object().unwrap() {
                if !code.starts_with('2') {
                    assert!(response["content"].get("application/problem+json").is_some(), "{method} {path} {code}");
                }
            }
            // And the route is really served: without a token it answers 401, never 404/405.
            let concrete = path.replace('{', "x").replace('}', "");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = call(&app, method, &concrete, None, None).await;
            assert_eq!(answer.status, 401, "{concrete}: {}", answer.body);
        }
    }
    operations.sort();
    assert_eq!(operations.len(), 24, "{operations:#?}");
    // `latchkey openapi` prints the same document for the same issuer, without a server.
    let printed = latchkey_cli(&app.db, &["openapi"], &[("LATCHKEY_ISSUER", &app.settings.issuer)], None).await;
    assert_eq!(cli_json(&printed), doc);
}

/// `token` with its claims edited and signed again with the server's own key (the one that
/// signed it), so only the rule under test can refuse it.
async fn resigned(app: &TestApp, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    use latchkey::store::KeyStore;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().unwrap();
    let records = app.state.store().list_keys().await.unwrap();
    let record = records.iter().find(|r| r.kid == kid).unwrap();
    let der = latchkey::keys::seal::open(app.state.master_key(), &record.sealed_private_key, record.kid.as_bytes())
        .unwrap()
        .to_vec();
    let key = match header.alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_der(&der),
        _ => jsonwebtoken::EncodingKey::from_ec_der(&der),
    };
    let mut claims = jwt_part(token, 1);
    edit(&mut claims);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn a_revoked_expired_or_user_token_is_refused_even_when_signed_by_us() {
    let app = spawn_app().await;
    let client = admin_client(&app, ADMIN).await;
    let token = token_for(&app, &client, None).await;
    assert_eq!(call(&app, Method::GET, "/admin/v1/keys", Some(&token), None).await.status, 200);
    // The control: the same claims signed again still get in.
    let same = resigned(&app, &token, |_| {}).await;
    assert_eq!(call(&app, Method::GET, "/admin/v1/keys", Some(&same), None).await.status, 200);
    // Expired a few seconds ago: inside the verifier's allowance for clock skew, but our clock
    // decides here.
    let now = latchkey::state::unix_now();
    let expired = resigned(&app, &token, |c| {
        c["iat"] = json!(now - 65);
        c["exp"] = json!(now - 5);
    })
    .await;
    let answer = call(&app, Method::GET, "/admin/v1/keys", Some(&expired), None).await;
    answer.assert_problem(401);
    assert!(answer.body["detail"].as_str().unwrap().contains("expired"), "{}", answer.body);
    // `aud` as an array (RFC 7519 §4.1.3): naming the admin API among others gets in, naming
    // only others does not.
    let admin_audience = format!("{}/admin/v1", app.address);
    let among = resigned(&app, &token, |c| c["aud"] = json!(["https://other.example", admin_audience])).await;
    assert_eq!(call(&app, Method::GET, "/admin/v1/keys", Some(&among), None).await.status, 200);
    let others = resigned(&app, &token, |c| c["aud"] = json!(["https://other.example", app.address])).await;
    let answer = call(&app, Method::GET, "/admin/v1/keys", Some(&others), None).await;
    answer.assert_problem(401);
    assert!(answer.body["detail"].as_str().unwrap().contains("not meant for the admin API"), "{}", answer.body);
    // A user's subject with the admin audience and scope (no grant could mint it): refused.
    let for_user = resigned(&app, &token, |c| c["sub"] = json!("some-user-sub")).await;
    let answer = call(&app, Method::GET, "/admin/v1/keys", Some(&for_user), None).await;
    answer.assert_problem(401);
    assert!(answer.body["detail"].as_str().unwrap().contains("client credentials"), "{}", answer.body);
    // The client revokes its own token (RFC 7009): refused at once.
    let revoked = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    let answer = call(&app, Method::GET, "/admin/v1/keys", Some(&token), None).await;
    answer.assert_problem(401);
    assert!(answer.body["detail"].as_str().unwrap().contains("revoked"), "{}", answer.body);
}
