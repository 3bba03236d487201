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
