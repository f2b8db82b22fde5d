//! `acme-harness conformance`: exit codes, report files, and errors that name the file.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts")
        .join(rel)
}

fn harness(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_acme-harness"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn grade_exits_1_only_when_a_must_rule_fails_and_writes_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let junit = dir.path().join("report.xml");
    let good = fixture("good/sectigo-processing.jsonl");
    let out = harness(&[
        "conformance",
        "grade",
        good.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# ACME conformance report"), "{md}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["rules"].as_array().unwrap().len() >= 18);
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<testcase")
    );

    // A SHOULD/Sectigo-needed failure is reported but does not fail the run...
    let out = harness(&[
        "conformance",
        "grade",
        fixture("bad/retry-after-honoured.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("FAIL `retry-after-honoured`")
    );
    // ...a MUST failure does.
    let out = harness(&[
        "conformance",
        "grade",
        "--quiet",
        fixture("bad/nonce-not-reused.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("1 failed (1 MUST)")
    );
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.jsonl");
    std::fs::write(&bad, "{\"v\":1}\n").unwrap();
    let out = harness(&["conformance", "grade", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("notes.jsonl") && err.contains("line 1"),
        "{err}"
    );

    let out = harness(&["conformance", "grade", "/nonexistent/t.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("/nonexistent/t.jsonl")
    );
}

#[test]
fn rules_prints_the_committed_reference_page() {
    let out = harness(&["conformance", "rules"]);
    assert_eq!(out.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rules.md"))
            .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}
