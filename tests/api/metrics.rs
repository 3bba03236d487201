//! Issue 13 item 4: `/metrics` in the Prometheus text format, parsed the way Prometheus reads
//! it (prometheus-parse), with counters that move with traffic.

use prometheus_parse::{Scrape, Value};

use crate::helpers::*;

async fn scrape(app: &TestApp, url: &str) -> Scrape {
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let body = response.text().await.unwrap();
    assert!(body.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("the exposition parses")
}

/// The value of `name` with every label of `labels`, or 0 when there is no such sample yet.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
            Value::Summary(_) => 0.0,
        })
        .unwrap_or(0.0)
}

fn has(scrape: &Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name || s.metric.starts_with(&format!("{name}_")))
}

#[tokio::test]
async fn the_scrape_parses_and_its_counters_move_with_traffic() {
    let app = spawn_app().await;
    let service = app.service_client(&["read"], &[]).await;
    let metrics_url = app.url("/metrics");
    let before = scrape(&app, &metrics_url).await;
    let token_labels = [("grant_type", "client_credentials"), ("client_id", service.id.as_str())];
    assert_eq!(value(&before, "latchkey_tokens_issued_total", &token_labels), 0.0);
    let route = [("method", "POST"), ("route", "/token"), ("status", "200")];
    let requests_before = value(&before, "latchkey_http_requests_total", &route);
    let failures_before = value(&before, "latchkey_security_events_total", &[("event", "sign_in.failed")]);

    for _ in 0..2 {
        let (status, _, _) =
            app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
        assert_eq!(status, 200);
    }
    let user = app.user("ann@example.com").await;
    let b = browser();
    let page = b.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let wrong = [("csrf", hidden_field(&page, "csrf")), ("email", user.email.clone()), ("password", "wrong".into())];
    assert_eq!(b.post(app.url("/login")).form(&wrong).send().await.unwrap().status().as_u16(), 200);

    let after = scrape(&app, &metrics_url).await;
    assert_eq!(value(&after, "latchkey_tokens_issued_total", &token_labels), 2.0);
    assert!(value(&after, "latchkey_http_requests_total", &route) >= requests_before + 2.0);
    assert!(
        value(&after, "latchkey_http_request_duration_seconds", &route) >= 2.0,
        "the latency histogram counted the requests"
    );
    assert!(value(&after, "latchkey_security_events_total", &[("event", "sign_in.failed")]) >= failures_before + 1.0);
    // The raw path never becomes a label: an unknown path counts as `unmatched`.
    app.http.get(app.url("/no/such/path/12345")).send().await.unwrap();
    let later = scrape(&app, &metrics_url).await;
    assert!(later.samples.iter().all(|s| s.labels.get("route") != Some("/no/such/path/12345")));
    assert!(value(&later, "latchkey_http_requests_total", &[("route", "unmatched"), ("status", "404")]) >= 1.0);
    // The state gauges are there.
    for name in [
        "latchkey_database_connections",
        "latchkey_outbox_pending",
        "latchkey_active_signing_key_age_seconds",
        "latchkey_password_hash_duration_seconds",
        "latchkey_password_hash_waiting",
    ] {
        assert!(has(&later, name), "{name} in the scrape");
    }
    assert!(value(&later, "latchkey_active_signing_key_age_seconds", &[("alg", "RS256")]) >= 0.0);
    assert!(value(&later, "latchkey_password_hash_duration_seconds", &[]) >= 1.0, "the failed sign-in hashed");
}

/// With `metrics_bind`, `/metrics` moves to its own listener and the public one answers 404.
#[tokio::test]
async fn metrics_bind_moves_the_scrape_off_the_public_listener() {
    let app = spawn_app_with(|s| s.metrics_bind = Some("127.0.0.1:0".parse().unwrap())).await;
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status().as_u16(), 404);
    let addr = app.metrics_addr.expect("the metrics listener is bound");
    let private = scrape(&app, &format!("http://{addr}/metrics")).await;
    assert!(has(&private, "latchkey_http_requests"));
}

/// Every metric the Grafana dashboard in docs/ queries is one the server exposes.
#[tokio::test]
async fn the_dashboard_queries_only_metrics_that_exist() {
    let app = spawn_app().await;
    let service = app.service_client(&["read"], &[]).await;
    app.post_token(&[("grant_type", "client_credentials")], Some((&service.id, &service.secret))).await;
    let body = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let dashboard =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json"))
            .unwrap();
    let mut names: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("latchkey_"))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let base = name.trim_end_matches("_bucket");
        assert!(latchkey::metrics::EXPOSED.contains(&base), "{name} is not a metric Latchkey exposes");
    }
    // And the list is what the scrape shows once each metric has a sample.
    for name in ["latchkey_tokens_issued_total", "latchkey_http_request_duration_seconds", "latchkey_outbox_pending"] {
        assert!(body.contains(name), "{name} in the scrape");
    }
}
