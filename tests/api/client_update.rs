//! `latchkey client update` (issue 11 item 5): every field changes in place — same client_id,
//! same secret — validated like `create`, audited, and seen by every replica within
//! `client_cache_ttl`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn cli(db: &TestDatabase, args: &[&str]) -> std::process::Output {
    latchkey_cli(db, args, &[], None).await
}

async fn update(db: &TestDatabase, id: &str, flags: &[&str]) -> Value {
    let mut args = vec!["client", "update", id];
    args.extend_from_slice(flags);
    cli_json(&cli(db, &args).await)
}

async fn refused(db: &TestDatabase, id: &str, flags: &[&str], says: &str) {
    let mut args = vec!["client", "update", id];
    args.extend_from_slice(flags);
    let output = cli(db, &args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{flags:?} was accepted");
    assert!(stderr.contains(says), "{flags:?}: {stderr}");
}

#[tokio::test]
async fn every_field_can_be_changed_in_place() {
    let db = fresh_database().await;
    let created = cli_json(
        &cli(
            &db,
            &["client", "create", "--name", "Shop", "--redirect-uri", "https://shop.example/cb", "--role", "buyer"],
        )
        .await,
    );
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();

    let steps: Vec<(Vec<&str>, &str, Value)> = vec![
        (vec!["--name", "Shop 2"], "name", json!("Shop 2")),
        (
            vec!["--add-redirect-uri", "https://shop.example/cb2"],
            "redirect_uris",
            json!(["https://shop.example/cb", "https://shop.example/cb2"]),
        ),
        (
            vec!["--remove-redirect-uri", "https://shop.example/cb"],
            "redirect_uris",
            json!(["https://shop.example/cb2"]),
        ),
        (
            vec!["--add-post-logout-redirect-uri", "https://shop.example/bye"],
            "post_logout_redirect_uris",
            json!(["https://shop.example/bye"]),
        ),
        (vec!["--remove-post-logout-redirect-uri", "https://shop.example/bye"], "post_logout_redirect_uris", json!([])),
        (
            vec!["--add-scope", "orders:read"],
            "scopes",
            json!(["email", "offline_access", "openid", "orders:read", "profile", "roles"]),
        ),
        (
            vec!["--remove-scope", "profile"],
            "scopes",
            json!(["email", "offline_access", "openid", "orders:read", "roles"]),
        ),
        (vec!["--add-role", "seller"], "roles", json!(["buyer", "seller"])),
        (vec!["--remove-role", "buyer"], "roles", json!(["seller"])),
        (
            vec!["--add-grant-type", "client_credentials"],
            "grant_types",
            json!(["authorization_code", "refresh_token", "client_credentials"]),
        ),
        (
            vec!["--remove-grant-type", "refresh_token"],
            "grant_types",
            json!(["authorization_code", "client_credentials"]),
        ),
        (vec!["--audience", "https://api.shop.example"], "audience", json!("https://api.shop.example")),
        (vec!["--no-audience"], "audience", Value::Null),
        (vec!["--id-token-alg", "ES256"], "id_token_signed_response_alg", json!("ES256")),
        (vec!["--first-party", "true"], "first_party", json!(true)),
        (vec!["--first-party", "false"], "first_party", json!(false)),
        (
            vec!["--add-allowed-origin", "https://SPA.shop.example/"],
            "allowed_origins",
            json!(["https://spa.shop.example"]),
        ),
        (vec!["--remove-allowed-origin", "https://spa.shop.example"], "allowed_origins", json!([])),
        (vec!["--introspect", "true"], "introspect", json!(true)),
        (vec!["--introspect", "false"], "introspect", json!(false)),
        (vec!["--require-mfa", "true"], "require_mfa", json!(true)),
    ];
    for (flags, field, expected) in steps {
        let shown = update(&db, &id, &flags).await;
        assert_eq!(shown[field], expected, "{flags:?}");
        assert_eq!(shown["client_id"], id.as_str());
        assert!(shown.get("client_secret").is_none(), "the secret is never shown again");
    }
    // One event per update that changed something, naming what changed.
    let events = cli_json(&cli(&db, &["audit", "--type", "client.updated", "--limit", "100"]).await);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 21);
    assert_eq!(events[0]["detail"]["changed"], json!(["require_mfa"]), "newest first");
    // An update that changes nothing records nothing.
    update(&db, &id, &["--name", "Shop 2"]).await;
    assert_eq!(
        cli_json(&cli(&db, &["audit", "--type", "client.updated", "--limit", "100"]).await).as_array().unwrap().len(),
        21
    );

    // Same secret: the client_credentials grant added above works with the original secret.
    let app = spawn_app_on(db.alias(), test_settings(&db.url), |_| {}).await;
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials"), ("scope", "orders:read")], Some((&id, &secret))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(jwt_part(body["access_token"].as_str().unwrap(), 1)["roles"], json!(["seller"]));
}

#[tokio::test]
async fn an_update_is_validated_like_create_and_changes_nothing_when_refused() {
    let db = fresh_database().await;
    let created =
        cli_json(&cli(&db, &["client", "create", "--name", "App", "--redirect-uri", "https://app.example/cb"]).await);
    let id = created["client_id"].as_str().unwrap().to_string();
    let public = cli_json(
        &cli(&db, &["client", "create", "--name", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:9/cb"]).await,
    );
    let public_id = public["client_id"].as_str().unwrap().to_string();
    let before = cli_json(&cli(&db, &["client", "show", &id]).await);

    refused(&db, &id, &["--add-redirect-uri", "javascript:alert(1)"], "").await;
    refused(&db, &id, &["--add-redirect-uri", "http://app.example/cb"], "").await;
    refused(&db, &id, &["--add-redirect-uri", "https://app.example/cb#frag"], "").await;
    refused(&db, &id, &["--remove-redirect-uri", "https://app.example/cb"], "needs at least one --redirect-uri").await;
    refused(&db, &id, &["--remove-redirect-uri", "https://app.example/other"], "no redirect URI").await;
    refused(&db, &id, &["--add-grant-type", "password"], "unknown grant type").await;
    refused(&db, &id, &["--remove-grant-type", "authorization_code"], "refresh_token grant only comes with").await;
    refused(&db, &id, &["--id-token-alg", "HS256"], "unsupported signing algorithm").await;
    refused(&db, &id, &["--add-role", "two words"], "role").await;
    refused(&db, &id, &["--name", " "], "name must be").await;
    refused(&db, &id, &["--add-allowed-origin", "http://spa.example"], "allowed origin").await;
    refused(&db, &id, &["--add-allowed-origin", "https://spa.example/app"], "allowed origin").await;
    refused(&db, &id, &["--add-allowed-origin", "null"], "allowed origin").await;
    refused(
        &db,
        &public_id,
        &["--add-grant-type", "client_credentials"],
        "public client cannot use client_credentials",
    )
    .await;
    refused(&db, "no-such-client", &["--name", "x"], "no client").await;
    // A refused update in the middle of valid changes stores none of them.
    refused(&db, &id, &["--name", "Renamed", "--add-grant-type", "password"], "unknown grant type").await;
    assert_eq!(cli_json(&cli(&db, &["client", "show", &id]).await), before, "nothing changed");
    let events = cli_json(&cli(&db, &["audit", "--type", "client.updated"]).await);
    assert!(events.as_array().unwrap().is_empty());
}

/// A new redirect URI works on a second replica within its `client_cache_ttl`, and at once on
/// a replica without a cache.
#[tokio::test]
async fn replicas_see_an_update_within_the_client_cache_ttl() {
    let ttl = Duration::from_secs(2);
    let a = spawn_app().await;
    let b = spawn_app_on(a.db.alias(), a.settings.clone(), |s| {
        s.client_cache_ttl = latchkey::config::HumanDuration(ttl);
    })
    .await;
    let client = a.web_app(false).await;
    let new_uri = "http://127.0.0.1:9/new-callback";
    let moved = AppClient { redirect_uri: new_uri.into(), ..client };
    let status_at = |app: &TestApp| {
        let url = authorize_url(app, &moved, "openid", &pkce().challenge, &[]);
        async move { browser().get(url).send().await.unwrap().status().as_u16() }
    };
    // Replica B caches the client as it is: the new URI is not registered yet.
    assert_eq!(status_at(&b).await, 400);
    // Through the admin service layer the CLI calls, in process: two replicas on one SQLite
    // file is a test arrangement (replicas share Postgres in production), and a third process
    // writing beside them only adds lock waits to what this test is about.
    let changes =
        latchkey::admin::clients::ClientUpdate { add_redirect_uris: vec![new_uri.to_string()], ..Default::default() };
    let (updated, changed) = latchkey::admin::clients::update(
        a.state.store(),
        &moved.id,
        changes,
        &latchkey::admin::actor::Actor::Cli,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    assert_eq!(updated.redirect_uris.len(), 2);
    assert_eq!(changed, ["redirect_uris"]);
    let changed_at = Instant::now();
    assert_eq!(status_at(&a).await, 303, "a replica without a cache sees it at once");
    // Replica B, at the latest once its cached copy expires (a generous margin for a busy machine:
    // the bound under test is the TTL, not the machine's speed).
    loop {
        if status_at(&b).await == 303 {
            break;
        }
        assert!(changed_at.elapsed() < ttl + Duration::from_secs(8), "replica B still refuses the new URI");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
