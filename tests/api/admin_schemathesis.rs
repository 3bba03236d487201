//! schemathesis (from PyPI) against the admin API's served OpenAPI document (issue 13): it
//! generates requests from the document — valid examples, edge cases of every parameter and
//! body field, random fuzzing and stateful sequences that feed one answer's ids into the
//! next request — and fails on any 5xx, any status, content type or header the document does
//! not declare, and any answer that breaks its schema.
//!
//! Needs the `schemathesis` command (SCHEMATHESIS, or on PATH); `.ci/run` installs it in a
//! virtualenv. Without it (and without `CI` set) `build.rs` marks the test ignored, so the
//! test summary says so; under CI its absence fails the run.

use serde_json::Value;

use crate::helpers::*;

/// The version `.ci/run` installs; the run below is reproducible with it (fixed seed).
const PINNED: &str = "4.32.5";

fn schemathesis_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("schemathesis")).find(|p| p.is_file()));
    on_path.flatten().unwrap_or_else(|| {
        panic!("schemathesis is not installed (pip install schemathesis=={PINNED}, or set SCHEMATHESIS; .ci/run does)")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(no_schemathesis, ignore = "schemathesis is not installed (pip install schemathesis; .ci/run does)")]
async fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_schema() {
    let app = spawn_app().await;
    let admin = cli_json(
        &latchkey_cli(&app.db, &["client", "create", "--name", "ops", "--scope", "latchkey:admin"], &[], None).await,
    );
    let (id, secret) = (admin["client_id"].as_str().unwrap(), admin["client_secret"].as_str().unwrap());
    let (status, _, body) = app.post_token(&[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    // Something for the grant and session operations to find: a user signed in to an app.
    let user = app.user("ann@example.com").await;
    let web = app.web_app(true).await;
    let p = pkce();
    let code = app.code_for(&browser(), &web, &user.email, "openid offline_access", &p).await;
    assert_eq!(app.redeem(&web, &code, Some(&p.verifier)).await.0, 200);

    let report = std::env::temp_dir().join(format!("latchkey-schemathesis-{}.xml", std::process::id()));
    let output = tokio::process::Command::new(schemathesis_binary())
        .args(["run", &app.url("/admin/v1/openapi.json"), "--url", &app.address])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "25", "--seed", "1", "--generation-database", "none", "--request-timeout", "20"])
        .args(["--no-color", "--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("HYPOTHESIS_STORAGE_DIRECTORY", std::env::temp_dir().join("latchkey-hypothesis"))
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "schemathesis failed:\n{stdout}\n{stderr}");
    // It really ran the operations (a run that tested nothing would also exit 0).
    let junit = std::fs::read_to_string(&report).expect("the JUnit report");
    let _ = std::fs::remove_file(&report);
    let cases = junit.matches("<testcase").count();
    assert!(cases >= 24, "schemathesis tested {cases} operations:\n{stdout}");
    assert!(!junit.contains("<failure") && !junit.contains("<error"), "{junit}");
    // And the server is still well.
    let (status, _, _): (u16, _, Value) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
}
