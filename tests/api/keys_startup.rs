use latchkey::config::Secret;
use latchkey::startup::Application;

use crate::helpers::{fresh_database, spawn_app_on, test_settings};

#[tokio::test]
async fn two_replicas_starting_together_share_one_key_per_algorithm() {
    let db = fresh_database().await;
    let settings = test_settings(&db.url);
    let second_db = db.alias();
    let (a, b) =
        tokio::join!(spawn_app_on(db, settings.clone(), |_| {}), spawn_app_on(second_db, settings.clone(), |_| {}));
    let (_, _, jwks_a) = a.get_json("/.well-known/jwks.json").await;
    let (_, _, jwks_b) = b.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks_a["keys"].as_array().unwrap().len(), 2, "exactly one key per algorithm: {jwks_a}");
    assert_eq!(jwks_a, jwks_b, "both replicas publish the same keys");

    // A token from replica A verifies with the keys replica B publishes.
    let client = a.service_client(&[], &[]).await;
    let (status, _, body) =
        a.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &client.secret))).await;
    assert_eq!(status, 200);
    let kid = crate::helpers::jwt_part(body["access_token"].as_str().unwrap(), 0)["kid"].clone();
    assert!(jwks_b["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid));
}

#[tokio::test]
async fn keys_survive_a_restart_and_need_the_same_master_key() {
    let db = fresh_database().await;
    let settings = test_settings(&db.url);
    let keep = db.alias();
    let first = spawn_app_on(db.alias(), settings.clone(), |_| {}).await;
    let (_, _, before) = first.get_json("/.well-known/jwks.json").await;
    first.stop().await;

    let same_db = keep.alias();
    let second = spawn_app_on(same_db, settings.clone(), |_| {}).await;
    let (_, _, after) = second.get_json("/.well-known/jwks.json").await;
    assert_eq!(before, after, "the same keys after a restart");
    second.stop().await;

    let mut wrong = settings.clone();
    wrong.master_key = Secret::new(latchkey::secret::random_token(32));
    wrong.bind = "127.0.0.1:0".parse().unwrap();
    let err = Application::build(wrong.validated().unwrap()).await.err().expect("a wrong master key must not start");
    let text = format!("{err:#}");
    assert!(text.contains("does not open with this master key"), "{text}");
}

/// shared/security.md: "Rotation state survives restarts" — a refresh token issued before a
/// restart rotates after it, and the token it replaced is still known as used (reuse
/// detection), not merely the signing keys (issue 10 item 6).
#[tokio::test]
async fn refresh_rotation_state_survives_a_restart() {
    use crate::helpers::{browser, pkce};
    let db = fresh_database().await;
    let settings = test_settings(&db.url);
    let keep = db.alias();
    let first = spawn_app_on(db.alias(), settings.clone(), |_| {}).await;
    first.user("ann@example.com").await;
    let client = first.web_app(true).await;
    let pair = pkce();
    let code = first.code_for(&browser(), &client, "ann@example.com", "openid offline_access", &pair).await;
    let (status, tokens) = first.redeem(&client, &code, Some(&pair.verifier)).await;
    assert_eq!(status, 200, "{tokens}");
    let original = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, rotated) = first.refresh(&client, &original, None).await;
    assert_eq!(status, 200, "{rotated}");
    let successor = rotated["refresh_token"].as_str().unwrap().to_string();
    first.stop().await;

    let second = spawn_app_on(keep.alias(), settings, |_| {}).await;
    // The successor issued before the restart rotates after it…
    let (status, again) = second.refresh(&client, &successor, None).await;
    assert_eq!(status, 200, "{again}");
    let newest = again["refresh_token"].as_str().unwrap().to_string();
    // …and the token used before the restart is still known as used: reuse ends the family.
    let (status, body) = second.refresh(&client, &original, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = second.refresh(&client, &newest, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the family was revoked: {body}");
    drop(keep);
}

/// At start, each algorithm without an active key gets one, whatever the other has (mutation
/// testing: with both algorithms always present, mixing them up in the check went unnoticed).
#[tokio::test]
async fn a_start_makes_the_missing_algorithms_key_and_keeps_the_other() {
    let db = fresh_database().await;
    let settings = test_settings(&db.url);
    let keep = db.alias();
    let first = spawn_app_on(db.alias(), settings.clone(), |_| {}).await;
    let (_, _, before) = first.get_json("/.well-known/jwks.json").await;
    first.stop().await;
    crate::helpers::exec_sql(&keep, "DELETE FROM signing_keys WHERE alg = 'ES256'", &[]).await;

    let second = spawn_app_on(keep.alias(), settings, |_| {}).await;
    let (_, _, after) = second.get_json("/.well-known/jwks.json").await;
    let kids = |jwks: &serde_json::Value, alg: &str| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == alg)
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kids(&after, "RS256"), kids(&before, "RS256"), "the RS256 key is kept");
    assert_eq!(kids(&after, "ES256").len(), 1, "a new ES256 key");
    assert_ne!(kids(&after, "ES256"), kids(&before, "ES256"));
}
