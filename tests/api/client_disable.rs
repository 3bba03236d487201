//! Issue 9 item 7: disabling or deleting a client ends its grants, as disabling a user does.
//! The operator's own path (the CLI, on the server's database) and a replica that still has the
//! client cached: revocation must not wait for the cache.

use serde_json::Value;

use crate::helpers::*;

const SCOPES: &str = "openid email offline_access";

/// A user's tokens from `client`: (access token, refresh token).
async fn tokens(app: &TestApp, client: &AppClient, email: &str) -> (String, String) {
    let pair = pkce();
    let code = app.code_for(&browser(), client, email, SCOPES, &pair).await;
    let (status, body) = app.redeem(client, &code, Some(&pair.verifier)).await;
    assert_eq!(status, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_string(), body["refresh_token"].as_str().unwrap().to_string())
}

async fn userinfo(app: &TestApp, access_token: &str) -> (u16, String) {
    let response = app.http.get(app.url("/userinfo")).bearer_auth(access_token).send().await.unwrap();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (response.status().as_u16(), challenge)
}

/// Runs `latchkey client <command> <id>` as an operator would, on the server's database.
async fn client_command(app: &TestApp, command: &str, id: &str) -> Value {
    cli_json(&latchkey_cli(&app.db, &["client", command, id], &[], None).await)
}

async fn disabled_or_deleted_client_ends_its_grants(command: &str) {
    // A long cache: the replica keeps answering with the client it has cached, so the 401s
    // below come from the grants, not from the cache noticing the change.
    let app = spawn_app_with(|s| s.client_cache_ttl = latchkey::config::HumanDuration::secs(300)).await;
    app.user("ann@example.com").await;
    let doomed = app.web_app(true).await;
    let other = app.web_app(true).await;
    let (access, refresh) = tokens(&app, &doomed, "ann@example.com").await;
    let (other_access, other_refresh) = tokens(&app, &other, "ann@example.com").await;
    assert_eq!(userinfo(&app, &access).await.0, 200);

    client_command(&app, command, &doomed.id).await;

    let (status, challenge) = userinfo(&app, &access).await;
    assert_eq!(status, 401, "the {command}d client's access token still works");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (status, body) = app.refresh(&doomed, &refresh, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // The same user's grants to other apps are untouched.
    assert_eq!(userinfo(&app, &other_access).await.0, 200);
    let (status, body) = app.refresh(&other, &other_refresh, None).await;
    assert_eq!(status, 200, "{body}");
    let events = cli_json(&latchkey_cli(&app.db, &["audit", "--type", &format!("client.{command}d")], &[], None).await);
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn disabling_a_client_ends_its_grants() {
    disabled_or_deleted_client_ends_its_grants("disable").await;
}

#[tokio::test]
async fn deleting_a_client_ends_its_grants() {
    disabled_or_deleted_client_ends_its_grants("delete").await;
}

#[tokio::test]
async fn deleting_a_client_forgets_the_consent_given_to_it() {
    use latchkey::store::GrantStore;
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let client = app.web_app(false).await;
    tokens(&app, &client, "ann@example.com").await;
    assert!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap().is_some());
    client_command(&app, "delete", &client.id).await;
    assert_eq!(app.state.store().find_consent(&user.sub, &client.id).await.unwrap(), None);
}
