//! shared/design.md rule 1: protocol code never names the web framework or the database.

#[test]
fn protocol_code_does_not_name_the_framework_or_the_database() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for dir in ["domain", "oauth", "oidc", "keys", "authn", "accounts"] {
        let mut stack = vec![root.join(dir)];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if ["axum", "sqlx", "rusqlite", "tower", "minijinja"].iter().any(|word| line.contains(word)) {
                        offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "protocol code names a framework or driver:\n{}", offenders.join("\n"));
}

/// Issue 14: the store is the only module that names a database driver (sqlx for Postgres and
/// the migrations, rusqlite for SQLite), so the drivers can change without touching the rest.
#[test]
fn only_the_store_names_a_database_driver() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("store") {
                    stack.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if ["sqlx", "rusqlite"].iter().any(|word| line.contains(word)) {
                    offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "code outside src/store names a database driver:\n{}", offenders.join("\n"));
}
