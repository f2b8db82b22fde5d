//! docs/rules.md is generated from the catalogue; this fails when the committed file is stale.
//! Regenerate with `acme-harness conformance rules --write docs/rules.md` (or run this test with
//! UPDATE_RULES_DOC=1).
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_rules_reference_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rules.md");
    let generated = conformance::docs::rules_markdown();
    if std::env::var_os("UPDATE_RULES_DOC").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/rules.md is stale: run `acme-harness conformance rules --write docs/rules.md` \
         or `UPDATE_RULES_DOC=1 cargo test -p conformance --test docs`"
    );
    for rule in conformance::catalogue() {
        assert!(
            committed.contains(&format!("\n## {}\n", rule.id)),
            "{}",
            rule.id
        );
    }
}
