use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_when_all_is_well() {
    let app = spawn_app().await;
    let (status, _, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

#[tokio::test]
async fn database_gone_means_not_ready_and_503_never_a_token() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    // Simulate the database going away: the pool refuses every connection from now on.
    app.state.store().close().await;
    let (status, _, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("database_unavailable")));
    let (status, headers, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "liveness does not depend on the database");
    drop(headers);
    let (status, headers, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some((&client.id, &client.secret))).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")));
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn shutting_down_turns_readiness_off() {
    let app = spawn_app().await;
    app.state.begin_shutdown();
    let (status, _, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("shutting_down")));
}

#[tokio::test]
async fn graceful_stop_finishes_and_releases_the_port() {
    let app = spawn_app().await;
    let client = app.service_client(&[], &[]).await;
    let in_flight = {
        let http = app.http.clone();
        let url = app.token_url();
        let (id, secret) = (client.id.clone(), client.secret.clone());
        tokio::spawn(async move {
            http.post(url).basic_auth(id, Some(secret)).form(&[("grant_type", "client_credentials")]).send().await
        })
    };
    let address = app.address.clone();
    let response = in_flight.await.unwrap().expect("in-flight request completes");
    assert_eq!(response.status().as_u16(), 200);
    app.stop().await;
    let after = reqwest::Client::new().get(format!("{address}/healthz")).send().await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}

/// Issue 10 item 7: the suite runs on the backend it was asked for (a mistyped
/// TEST_DATABASE_URL stops the run in `helpers::postgres_admin_url` instead).
#[tokio::test]
async fn the_suite_runs_on_the_backend_it_was_asked_for() {
    let app = crate::helpers::spawn_app().await;
    let expected = match crate::helpers::postgres_admin_url() {
        Some(_) => latchkey::store::Backend::Postgres,
        None => latchkey::store::Backend::Sqlite,
    };
    assert_eq!(app.state.store().backend(), expected, "database url {}", app.db.url.rsplit('@').next().unwrap());
    eprintln!("integration tests run on {expected:?}");
}
