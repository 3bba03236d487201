//! The `latchkey` binary as an operator uses it: client registry commands and settings errors.

use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{cli_json, fresh_database, latchkey_cli, TestDatabase};

async fn latchkey(db: &TestDatabase, args: &[&str]) -> Output {
    latchkey_cli(db, args, &[], None).await
}

async fn latchkey_stdin(db: &TestDatabase, args: &[&str], stdin: &str) -> Output {
    latchkey_cli(db, args, &[], Some(stdin)).await
}

fn json_out(output: &Output) -> Value {
    cli_json(output)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn client_lifecycle_through_the_cli() {
    let db = fresh_database().await;
    let created = json_out(
        &latchkey(
            &db,
            &[
                "client",
                "create",
                "--name",
                "Billing",
                "--scope",
                "invoices:read",
                "--role",
                "billing",
                "--audience",
                "https://api.example.com",
            ],
        )
        .await,
    );
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    assert_eq!(created["type"], "confidential");
    assert_eq!(created["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(created["scopes"], serde_json::json!(["invoices:read"]));
    assert_eq!(created["roles"], serde_json::json!(["billing"]));
    assert_eq!(created["audience"], "https://api.example.com");

    let shown = json_out(&latchkey(&db, &["client", "show", &id]).await);
    assert_eq!(shown["client_id"], id.as_str());
    assert!(shown.get("client_secret").is_none(), "the secret is shown only at creation");
    assert!(!String::from_utf8_lossy(&latchkey(&db, &["client", "show", &id]).await.stdout).contains(&secret));

    let listed = json_out(&latchkey(&db, &["client", "list"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret));

    let rotated = json_out(&latchkey(&db, &["client", "rotate-secret", &id]).await);
    assert_ne!(rotated["client_secret"].as_str().unwrap(), secret);

    let disabled = json_out(&latchkey(&db, &["client", "disable", &id]).await);
    assert_eq!(disabled["disabled"], true);
    assert_eq!(json_out(&latchkey(&db, &["client", "show", &id]).await)["disabled"], true);

    json_out(&latchkey(&db, &["client", "delete", &id]).await);
    let gone = latchkey(&db, &["client", "show", &id]).await;
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("no client with id"), "{}", stderr(&gone));
}

#[tokio::test]
async fn public_app_client_has_no_secret() {
    let db = fresh_database().await;
    let created = json_out(
        &latchkey(
            &db,
            &["client", "create", "--name", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:5173/cb"],
        )
        .await,
    );
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["type"], "public");
    assert_eq!(created["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
    let rotate = latchkey(&db, &["client", "rotate-secret", created["client_id"].as_str().unwrap()]).await;
    assert!(!rotate.status.success());
}

#[tokio::test]
async fn registration_refuses_unsafe_redirect_uris() {
    let db = fresh_database().await;
    let cases = [
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,<script>", "scheme"),
        ("https://app.example.com/cb#x", "fragment"),
        ("https://*.example.com/cb", "wildcard"),
        ("https://app.example.com/*", "wildcard"),
        ("http://app.example.com/cb", "https"),
        ("/cb", "absolute"),
        ("https://user:pw@app.example.com/cb", "user information"),
    ];
    for (uri, expected) in cases {
        let out = latchkey(&db, &["client", "create", "--name", "bad", "--redirect-uri", uri]).await;
        assert!(!out.status.success(), "{uri} must be refused");
        assert!(out.stdout.is_empty(), "nothing on stdout for a refused registration");
        let err = stderr(&out);
        assert!(err.contains(expected), "{uri}: {err}");
    }
    let listed = json_out(&latchkey(&db, &["client", "list"]).await);
    assert_eq!(listed, serde_json::json!([]), "nothing was stored");
    for ok in ["https://app.example.com/cb", "http://127.0.0.1/cb", "http://[::1]:8080/cb", "com.example.app:/cb"] {
        json_out(&latchkey(&db, &["client", "create", "--name", "ok", "--redirect-uri", ok]).await);
    }
}

#[tokio::test]
async fn other_invalid_registrations_say_why() {
    let db = fresh_database().await;
    for (args, expected) in [
        (vec!["--grant-type", "password"], "unknown grant type"),
        (
            vec!["--public", "--grant-type", "client_credentials", "--redirect-uri", "https://a.example/cb"],
            "public client",
        ),
        (vec!["--role", "has space"], "role"),
        (vec!["--scope", "bad\"scope"], "scope"),
        (vec!["--grant-type", "authorization_code"], "redirect-uri"),
        (vec!["--id-token-alg", "HS256", "--redirect-uri", "https://a.example/cb"], "unsupported signing algorithm"),
    ] {
        let mut all = vec!["client", "create", "--name", "x"];
        all.extend(args);
        let out = latchkey(&db, &all).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains(expected), "{all:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn a_bad_setting_stops_the_program_naming_the_setting() {
    let db = fresh_database().await;
    for (key, value, named) in [
        ("LATCHKEY_BIND", "not-an-address", "`bind`"),
        ("LATCHKEY_ISSUER", "http://id.example.com", "`issuer`"),
        ("LATCHKEY_ACCESS_TOKEN_TTL", "forever", "`access_token_ttl`"),
        ("LATCHKEY_ACCESS_TOKEN_ALG", "HS256", "`access_token_alg`"),
        ("LATCHKEY_DATABASE_URL", "mysql://x", "`database_url`"),
        ("LATCHKEY_NO_SUCH_SETTING", "1", "no_such_setting"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["migrate"])
            .env_clear()
            .env("LATCHKEY_DATABASE_URL", &db.url)
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let err = stderr(&out);
        assert!(err.contains(named), "{key}={value}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn migrate_runs_and_is_idempotent() {
    let db = fresh_database().await;
    for _ in 0..2 {
        let out = latchkey(&db, &["migrate"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn serve_creates_its_master_key_logs_json_and_stops_on_sigterm() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let db = fresh_database().await;
    let workdir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("serve")
        .current_dir(workdir.path())
        .env_clear()
        .env("LATCHKEY_DATABASE_URL", &db.url)
        .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_LOG_FORMAT", "json")
        .env("LATCHKEY_LOG_LEVEL", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&ready_url).send().await {
            if r.status().as_u16() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let key_file = workdir.path().join("keys/master.key");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(workdir.path().join("keys")).unwrap().permissions().mode() & 0o777, 0o700);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");

    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let events: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = events.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.contains(&"latchkey is listening"), "{messages:?}");
    assert!(messages.contains(&"stopped"), "{messages:?}");
    assert!(!logs.contains(&std::fs::read_to_string(&key_file).unwrap().trim().to_string()), "master key never logged");
}

#[tokio::test]
async fn user_lifecycle_through_the_cli() {
    let db = fresh_database().await;
    let created = json_out(
        &latchkey_stdin(
            &db,
            &[
                "user",
                "create",
                "--email",
                "Ann@Example.com",
                "--name",
                "Ann Example",
                "--role",
                "admin",
                "--password-stdin",
            ],
            "  correct horse battery staple  \n",
        )
        .await,
    );
    let sub = created["sub"].as_str().unwrap().to_string();
    assert_eq!(sub.len(), 22);
    assert!(sub.chars().all(|c| c.is_ascii_alphanumeric()), "sub is opaque and never the email");
    assert_eq!(created["email"], "ann@example.com");
    assert_eq!(created["roles"], serde_json::json!(["admin"]));
    assert!(!created.to_string().contains("argon2"), "the hash is never printed");

    let by_email = json_out(&latchkey(&db, &["user", "show", "ANN@example.com"]).await);
    assert_eq!(by_email["sub"], sub.as_str());

    let duplicate = latchkey_stdin(
        &db,
        &["user", "create", "--email", "ann@example.com", "--password-stdin"],
        "another password\n",
    )
    .await;
    assert!(!duplicate.status.success());
    assert!(stderr(&duplicate).contains("exists already"), "{}", stderr(&duplicate));

    let short =
        latchkey_stdin(&db, &["user", "create", "--email", "bob@example.com", "--password-stdin"], "short\n").await;
    assert!(!short.status.success());
    assert!(stderr(&short).contains("at least 8 characters"), "{}", stderr(&short));
    let huge = "x".repeat(1025) + "\n";
    let long = latchkey_stdin(&db, &["user", "create", "--email", "bob@example.com", "--password-stdin"], &huge).await;
    assert!(stderr(&long).contains("at most 1024 bytes"), "{}", stderr(&long));

    let with_role = json_out(&latchkey(&db, &["user", "add-role", &sub, "billing"]).await);
    assert_eq!(with_role["roles"], serde_json::json!(["admin", "billing"]));
    let without = json_out(&latchkey(&db, &["user", "remove-role", &sub, "admin"]).await);
    assert_eq!(without["roles"], serde_json::json!(["billing"]));

    // Set the clock of the last change back, so "it moved" can't pass by standing still within
    // one second (issue 10 item 6).
    let long_ago = created["password_changed_at"].as_i64().unwrap() - 86_400;
    crate::helpers::exec_sql(
        &db,
        "UPDATE users SET password_changed_at = $1 WHERE sub = $2",
        &[crate::helpers::SqlValue::Int(long_ago), crate::helpers::SqlValue::Text(&sub)],
    )
    .await;
    let changed = json_out(
        &latchkey_stdin(&db, &["user", "set-password", &sub, "--password-stdin"], "a brand new passphrase\n").await,
    );
    assert!(changed["password_changed_at"].as_i64().unwrap() >= created["password_changed_at"].as_i64().unwrap());
    assert!(changed["password_changed_at"].as_i64().unwrap() > long_ago, "{changed}");

    let disabled = json_out(&latchkey(&db, &["user", "disable", &sub]).await);
    assert_eq!(disabled["disabled"], true);
    let listed = json_out(&latchkey(&db, &["user", "list"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let missing = latchkey(&db, &["user", "show", "nobody@example.com"]).await;
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no user"), "{}", stderr(&missing));
}

/// Issue 9 item 9: logs written to a pipe (as here, and as under systemd or a log collector)
/// carry no ANSI colour codes, and Postgres notices (`relation "_sqlx_migrations" already
/// exists`) don't reach the log at `info`.
#[tokio::test]
async fn logs_to_a_pipe_are_plain_and_free_of_database_notices() {
    let db = fresh_database().await;
    let info = [("LATCHKEY_LOG_LEVEL", "info")];
    for _ in 0..2 {
        let output = latchkey_cli(&db, &["migrate"], &info, None).await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains('\u{1b}'), "colour codes in piped logs: {stderr:?}");
        assert!(!stderr.contains("already exists"), "a database notice at info: {stderr}");
    }
    let output = latchkey_cli(&db, &["client", "create", "--name", "svc", "--scope", "read"], &info, None).await;
    cli_json(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("client.created"), "the audit line is logged at info: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in piped logs: {stderr:?}");
    assert!(!stderr.contains("already exists"), "a database notice at info: {stderr}");
}
