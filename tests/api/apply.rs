//! Issue 13 item 3: `latchkey apply FILE` — declarative clients, scopes, roles and users' roles;
//! idempotent, `--dry-run` prints the diff, `--prune` deletes what the file no longer declares.

use crate::helpers::*;

const SECRET: &str = "a-declared-secret-of-at-least-32-characters";

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn apply(app: &TestApp, dir: &std::path::Path, text: &str, flags: &[&str]) -> std::process::Output {
    let file = dir.join("latchkey.toml");
    std::fs::write(&file, text).unwrap();
    let mut args = vec!["apply", file.to_str().unwrap()];
    args.extend_from_slice(flags);
    latchkey_cli(&app.db, &args, &[("BILLING_SECRET", SECRET)], None).await
}

const FIRST: &str = r#"
[[role]]
name = "billing"
description = "Reads and writes invoices"

[[role]]
name = "admin"

[[scope]]
name = "invoices:read"
description = "Read your invoices"

[[client]]
id = "billing-service"
name = "Billing"
grant_types = ["client_credentials"]
scopes = ["invoices:read"]
roles = ["billing"]
secret_env = "BILLING_SECRET"

[[client]]
id = "web"
name = "Web App"
redirect_uris = ["https://web.example/callback"]
scopes = ["openid", "email", "invoices:read"]
secret_file = "web.secret"

[[user]]
email = "ann@example.com"
roles = ["admin", "billing"]
"#;

#[tokio::test]
async fn a_file_applied_twice_changes_nothing_and_a_changed_one_shows_its_diff() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.secret"), format!("{SECRET}-web\n")).unwrap();

    let first = stdout(&apply(&app, dir.path(), FIRST, &[]).await);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines,
        [
            "+ role billing",
            "+ role admin",
            "+ scope invoices:read",
            "+ client billing-service",
            "+ client web",
            "~ user ann@example.com: roles [admin, billing] -> [admin, billing]",
        ][..5],
        "{first}"
    );
    // The user already had exactly those roles (from the helper), so no change for them.
    assert_eq!(lines.len(), 5, "{first}");

    // The declared service gets tokens with the secret from the environment.
    let (status, _, body) =
        app.post_token(&[("grant_type", "client_credentials")], Some(("billing-service", SECRET))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(jwt_part(body["access_token"].as_str().unwrap(), 1)["roles"], serde_json::json!(["billing"]));

    // Applying again: nothing to do.
    assert_eq!(stdout(&apply(&app, dir.path(), FIRST, &[]).await).trim(), "no changes");

    // A changed file: the diff names what changed; --dry-run changes nothing.
    let second = FIRST
        .replace("name = \"Billing\"", "name = \"Billing v2\"")
        .replace("description = \"Read your invoices\"", "description = \"See your invoices\"")
        .replace("roles = [\"admin\", \"billing\"]", "roles = [\"billing\"]");
    let dry = stdout(&apply(&app, dir.path(), &second, &["--dry-run"]).await);
    assert_eq!(
        dry.lines().collect::<Vec<_>>(),
        [
            "would: ~ scope invoices:read: description",
            "would: ~ client billing-service: name",
            "would: ~ user ann@example.com: roles [admin, billing] -> [billing]",
        ],
        "{dry}"
    );
    let unchanged = latchkey::admin::clients::show(app.state.store(), "billing-service").await.unwrap();
    assert_eq!(unchanged.name, "Billing", "--dry-run wrote nothing");
    stdout(&apply(&app, dir.path(), &second, &[]).await);
    assert_eq!(latchkey::admin::clients::show(app.state.store(), "billing-service").await.unwrap().name, "Billing v2");
    let ann = latchkey::admin::users::show(app.state.store(), &user.email).await.unwrap();
    assert_eq!(ann.roles, ["billing"]);
    assert_eq!(stdout(&apply(&app, dir.path(), &second, &[]).await).trim(), "no changes");

    // A rotated secret is a change of its own.
    let rotated = latchkey_cli(
        &app.db,
        &["apply", dir.path().join("latchkey.toml").to_str().unwrap()],
        &[("BILLING_SECRET", "another-declared-secret-of-32-characters-or-more")],
        None,
    )
    .await;
    assert_eq!(stdout(&rotated).trim(), "~ client billing-service: secret");
    let (status, _, _) =
        app.post_token(&[("grant_type", "client_credentials")], Some(("billing-service", SECRET))).await;
    assert_eq!(status, 401, "the old secret stopped working");
}

#[tokio::test]
async fn prune_deletes_what_the_file_no_longer_declares() {
    let app = spawn_app().await;
    app.user("ann@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.secret"), format!("{SECRET}-web\n")).unwrap();
    stdout(&apply(&app, dir.path(), FIRST, &[]).await);
    let cli_made = app.service_client(&["read"], &[]).await;
    let smaller = FIRST.split("[[client]]\nid = \"web\"").next().unwrap().to_string()
        + "\n[[user]]\nemail = \"ann@example.com\"\nroles = [\"admin\", \"billing\"]\n";
    let smaller = smaller
        .replace("[[role]]\nname = \"admin\"\n", "")
        .replace("roles = [\"admin\", \"billing\"]", "roles = [\"billing\"]");
    let without_prune = stdout(&apply(&app, dir.path(), &smaller, &[]).await);
    assert!(!without_prune.contains("- client"), "nothing is deleted without --prune:\n{without_prune}");
    let pruned = stdout(&apply(&app, dir.path(), &smaller, &["--prune"]).await);
    let mut deleted: Vec<&str> = pruned.lines().filter(|l| l.starts_with("- ")).collect();
    deleted.sort();
    let expected_client = format!("- client {}", cli_made.id);
    let mut expected = vec!["- client web", expected_client.as_str(), "- role admin"];
    expected.sort();
    assert_eq!(deleted, expected, "{pruned}");
    assert!(latchkey::admin::clients::show(app.state.store(), "web").await.is_err());
    assert_eq!(stdout(&apply(&app, dir.path(), &smaller, &["--prune"]).await).trim(), "no changes");
}

#[tokio::test]
async fn the_file_never_holds_a_secret_and_names_only_what_it_declares() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[client]]\nid = \"x\"\nname = \"X\"\nsecret = \"inline-secret\"\n", "unknown field `secret`"),
        ("[[client]]\nid = \"x\"\nname = \"X\"\n", "needs secret_env or secret_file"),
        ("[[role]]\nname = \"a\"\n[[client]]\nid = \"x\"\nname = \"X\"\nroles = [\"b\"]\nsecret_env = \"BILLING_SECRET\"\n", "role b is not declared"),
        ("[[user]]\nemail = \"nobody@example.com\"\n", "does not exist"),
        ("[[client]]\nid = \"has space\"\nname = \"X\"\n", "must be 1 to 64"),
    ];
    for (text, why) in cases {
        let output = apply(&app, dir.path(), text, &[]).await;
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{why} in: {stderr}");
    }
    assert!(latchkey::store::ClientStore::list_clients(app.state.store()).await.unwrap().is_empty());
}

/// A declared scope description is what the consent page shows.
#[tokio::test]
async fn the_consent_page_shows_declared_scope_descriptions() {
    let app = spawn_app().await;
    let user = app.user("ann@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    stdout(
        &apply(&app, dir.path(), "[[scope]]\nname = \"invoices:read\"\ndescription = \"Read your invoices\"\n", &[])
            .await,
    );
    let client = app
        .register(latchkey::domain::NewClient {
            name: "Invoices".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scopes: vec!["openid".into(), "invoices:read".into()],
            ..latchkey::domain::NewClient::default()
        })
        .await;
    let app_client = AppClient {
        id: client.id,
        secret: client.secret,
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        post_logout_uri: String::new(),
    };
    let b = signed_in(&app, &user.email, TEST_PASSWORD).await;
    let url = authorize_url(&app, &app_client, "openid invoices:read", &pkce().challenge, &[]);
    let to_consent = location(&b.get(&url).send().await.unwrap());
    let page = b.get(app.url(&to_consent)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Read your invoices"), "{page}");
    assert!(!page.contains("Use “invoices:read”"));
}

/// The example in docs/ parses and plans (with its secrets supplied).
#[tokio::test]
async fn the_documented_example_is_valid() {
    let app = spawn_app().await;
    app.user("ann@example.com").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let text = std::fs::read_to_string(dir.join("latchkey-apply.toml")).unwrap();
    let declared = latchkey::admin::apply::parse(&text).unwrap();
    let temp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(temp.path().join("secrets")).unwrap();
    std::fs::write(temp.path().join("secrets/web-client-secret"), format!("{SECRET}-web")).unwrap();
    let env = |name: &str| (name == "BILLING_SECRET").then(|| SECRET.to_string());
    let plan = latchkey::admin::apply::plan(
        app.state.store(),
        declared,
        temp.path(),
        &env,
        false,
        latchkey::state::unix_now(),
    )
    .await
    .unwrap();
    assert_eq!(plan.changes.iter().filter(|c| c.to_string().starts_with("+ client")).count(), 4);
}
