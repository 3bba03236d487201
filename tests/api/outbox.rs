//! Issue 12 item 1: the durable outbox. A request writes its message and answers at once; the
//! sender delivers with retries, so an SMTP outage loses nothing, and a message goes out once
//! even with several replicas sending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::mailbox::*;
use latchkey::config::{HumanDuration, Registration, Secret};

async fn pending(app: &TestApp) -> i64 {
    latchkey::store::OutboxStore::pending_messages(app.state.store()).await.unwrap()
}

async fn attempts(app: &TestApp, recipient: &str) -> i64 {
    query_i64(&app.db, "SELECT MAX(attempts) FROM outbox WHERE recipient = $1", &[SqlValue::Text(recipient)])
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn a_message_waits_out_an_smtp_outage_and_is_delivered_when_the_server_is_back() {
    let port = SmtpServer::unused_port();
    let app = spawn_app_with(|s| {
        s.smtp_url = Secret::new(format!("smtp://127.0.0.1:{port}"));
        s.registration = Registration::Open;
        s.email_retry_base = HumanDuration::secs(1);
        s.email_poll_interval = HumanDuration::secs(1);
    })
    .await;
    let user = app.user("patient@example.com").await;
    let b = browser();
    let started = Instant::now();
    let response = submit_form(&app, &b, "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    assert_eq!(response.status().as_u16(), 303, "the page answers while the mail server is down");
    assert_eq!(pending(&app).await, 1);
    // The sender tried, failed, and keeps the message for later.
    let deadline = Instant::now() + Duration::from_secs(20);
    while attempts(&app, &user.email).await < 2 {
        assert!(Instant::now() < deadline, "the sender retries");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending(&app).await, 1, "not lost, not given up");
    let error =
        query_i64(&app.db, "SELECT COUNT(*) FROM outbox WHERE last_error IS NOT NULL AND sent_at IS NULL", &[]).await;
    assert_eq!(error, Some(1));

    let smtp = SmtpServer::start_on(port);
    let message = smtp.nth(&user.email, 1).await;
    assert_eq!(message.subject, "Reset your password");
    // The server has the message; the sender records the delivery right after its answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending(&app).await != 0 {
        assert!(Instant::now() < deadline, "the delivery is recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // Delivered messages keep no body: it carried a live link.
    let kept = query_bytes(&app.db, "SELECT payload FROM outbox WHERE sent_at IS NOT NULL").await;
    assert_eq!(kept, vec![Vec::<u8>::new()], "payload emptied");
    // And the link still works.
    let token = message.token(&format!("{}/reset-password", app.address));
    assert_eq!(
        set_password_by_link(&app, &browser(), "/reset-password", &token, NEW_PASSWORD).await.status().as_u16(),
        303
    );
}

#[tokio::test]
async fn a_permanent_refusal_is_given_up_at_once() {
    let (app, smtp) = spawn_mail_app(|_| {}).await;
    let user = app.user("nobody@example.com").await;
    submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let failed =
            query_i64(&app.db, "SELECT failed_at FROM outbox WHERE recipient = $1", &[SqlValue::Text(&user.email)])
                .await;
        if failed.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "a 550 is not retried for a day");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts(&app, &user.email).await, 1);
    assert_eq!(pending(&app).await, 0);
    assert!(smtp.messages_to(&user.email).is_empty());
}

/// The payload is sealed with the master key: the database holds no link in the clear.
#[tokio::test]
async fn queued_messages_are_sealed() {
    let port = SmtpServer::unused_port();
    let app = spawn_app_with(|s| s.smtp_url = Secret::new(format!("smtp://127.0.0.1:{port}"))).await;
    let user = app.user("sealed@example.com").await;
    submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    let queued = query_bytes(&app.db, "SELECT payload FROM outbox").await;
    assert_eq!(queued.len(), 1);
    let payload = String::from_utf8_lossy(&queued[0]);
    assert!(queued[0].len() > 100, "the message is there, sealed");
    for needle in ["reset-password", "Reset your password", "token", "sealed@example.com"] {
        assert!(!payload.contains(needle), "{needle} in a queued payload");
    }
    // The token's hash, stored beside it, is no help either: the link is only in the sealed body.
    assert_eq!(outbox_rows(&app, &user.email).await, 1);
}

/// Two replicas on one database, both sending: every message is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_the_outbox_and_each_message_goes_out_once() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let configure = |s: &mut latchkey::config::Settings| {
        s.smtp_url = Secret::new(url.clone());
        s.email_ip_burst = 100;
        s.email_retry_base = HumanDuration::secs(1);
        s.email_poll_interval = HumanDuration::secs(1);
    };
    let first = spawn_app_with(configure).await;
    let second = spawn_app_on(first.db.alias(), first.settings.clone(), configure).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(first.user(&format!("many{i}@example.com")).await.email);
    }
    // Half the requests at each replica; each wakes its own sender, and both poll.
    for (i, email) in users.iter().enumerate() {
        let app = if i % 2 == 0 { &first } else { &second };
        let response = submit_form(app, &browser(), "/forgot-password", "/forgot-password", &[("email", email)]).await;
        assert_eq!(response.status().as_u16(), 303);
    }
    for email in &users {
        smtp.wait_for(email, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for email in &users {
        assert_eq!(smtp.messages_to(email).len(), 1, "{email} got its message once");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending(&first).await != 0 {
        assert!(Instant::now() < deadline, "every delivery is recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without `smtp_url` the server still runs: messages go to the log and count as sent.
#[tokio::test]
async fn without_smtp_url_messages_go_to_the_log() {
    let app = spawn_app_with(|s| s.email_poll_interval = HumanDuration::secs(1)).await;
    let user = app.user("dev@example.com").await;
    submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending(&app).await > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = query_i64(&app.db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL", &[]).await;
    assert_eq!(sent, Some(1));
}

/// The development setup the README starts with: `registration=open` and no `smtp_url`. The
/// real binary warns at start, and the log carries each message with its working link.
#[tokio::test]
async fn the_real_binary_without_smtp_warns_and_logs_usable_links() {
    let db = fresh_database().await;
    cli_json(
        &latchkey_cli(
            &db,
            &["user", "create", "--email", "dev@example.com", "--password-stdin"],
            &[],
            Some(&format!("{TEST_PASSWORD}\n")),
        )
        .await,
    );
    let master = latchkey::secret::random_token(32);
    let server = crate::shutdown::Server::start_with(&db, &master, &[("LATCHKEY_REGISTRATION", "open")], None).await;
    assert!(
        server.logs().contains("smtp_url is not set: emails are written to the log"),
        "the start-up warning:\n{}",
        server.logs()
    );
    let b = browser();
    let page = b.get(server.url("/forgot-password")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", hidden_field(&page, "csrf")), ("email", "dev@example.com".to_string())];
    assert_eq!(b.post(server.url("/forgot-password")).form(&form).send().await.unwrap().status().as_u16(), 303);
    let prefix = server.url("/reset-password?token=");
    let deadline = Instant::now() + Duration::from_secs(15);
    let link = loop {
        let logs = server.logs();
        if let Some(start) = logs.find(&prefix) {
            break logs[start..].split_whitespace().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no link in the log:\n{logs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reset_page = b.get(&link).send().await.unwrap();
    assert_eq!(reset_page.status().as_u16(), 200, "the logged link works");
    assert!(server.logs().contains("Subject") || server.logs().contains("subject"), "{}", server.logs());
}

/// Issue 12 item 1: each message's text and HTML come from templates a deployment may replace
/// through `templates_dir`, like the pages; a broken replacement stops the start, not a request.
#[tokio::test]
async fn email_templates_can_be_replaced_and_a_broken_one_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("email_reset_password.txt"),
        "Subject: ACME password help\n\nHi {{ name }}, choose a new ACME password: {{ link }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("email_reset_password.html"),
        "<p>ACME: <a href=\"{{ link }}\">new password</a></p>",
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let (app, smtp) = spawn_mail_app(move |s| s.templates_dir = Some(path)).await;
    let user = app.user("acme@example.com").await;
    submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    let message = smtp.nth(&user.email, 1).await;
    assert_eq!(message.subject, "ACME password help");
    assert!(message.text.starts_with("Hi Ann Example, choose a new ACME password: "), "{}", message.text);
    assert!(message.html.starts_with("<p>ACME: "), "{}", message.html);
    let token = message.token(&app.url("/reset-password"));
    assert_eq!(
        set_password_by_link(&app, &browser(), "/reset-password", &token, NEW_PASSWORD).await.status().as_u16(),
        303
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("email_invitation.txt"), "Welcome aboard: {{ link }}\n").unwrap();
    let db = fresh_database().await;
    let mut settings = test_settings(&db.url);
    settings.templates_dir = Some(broken.path().to_path_buf());
    let settings = settings.validated().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = match latchkey::startup::Application::build_on(settings, listener).await {
        Ok(_) => panic!("a template without a Subject line must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("email_invitation.txt must start with a `Subject: …` line"), "{error}");
}

/// Page timing never depends on the mail server: with an SMTP server that accepts connections
/// and then says nothing (a black hole), the reset page has answered while the sender is still
/// stuck in that conversation, holding the message's lease.
#[tokio::test]
async fn the_page_answers_while_the_mail_server_hangs() {
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for stream in black_hole.incoming().flatten() {
                held.lock().unwrap().push(stream); // keep it open, never greet
            }
        });
    }
    let app = spawn_app_with(|s| s.smtp_url = Secret::new(format!("smtp://127.0.0.1:{port}"))).await;
    let user = app.user("patient@example.com").await;
    let response =
        submit_form(&app, &browser(), "/forgot-password", "/forgot-password", &[("email", &user.email)]).await;
    assert_eq!(response.status().as_u16(), 303);
    // The sender has claimed the message and is waiting on the silent server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the sender connects to the SMTP server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed =
        query_i64(&app.db, "SELECT claimed_until FROM outbox WHERE recipient = $1", &[SqlValue::Text(&user.email)])
            .await;
    assert!(claimed.is_some(), "the message is leased to the stuck sender");
    let done = query_i64(
        &app.db,
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL OR last_error IS NOT NULL",
        &[],
    )
    .await;
    assert_eq!(done, Some(0), "the conversation has not ended, yet the page answered");
    // Another page answers too, meanwhile.
    assert_eq!(app.http.get(app.url("/login")).send().await.unwrap().status().as_u16(), 200);
}
