//! The docs name everything an operator can set or see: every setting has its row in
//! docs/configuration.md, and every audit event its row in docs/operations.md.

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn every_setting_is_documented() {
    let doc = read("docs/configuration.md");
    let settings = serde_json::to_value(latchkey::config::Settings::default()).unwrap();
    let missing: Vec<&String> =
        settings.as_object().unwrap().keys().filter(|key| !doc.contains(&format!("| `{key}` |"))).collect();
    assert!(missing.is_empty(), "settings without a row in docs/configuration.md: {missing:?}");
}

#[test]
fn every_audit_event_is_documented() {
    let doc = read("docs/operations.md");
    let missing: Vec<&&str> =
        latchkey::audit::kind::ALL.iter().filter(|kind| !doc.contains(&format!("| `{kind}` |"))).collect();
    assert!(missing.is_empty(), "audit events without a row in docs/operations.md: {missing:?}");
}
