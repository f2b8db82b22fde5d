//! `acme-harness vet` end to end: the reference client passes every built-in scenario, and an
//! ad-hoc command template that leaks is caught.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_acme-harness")
}

#[test]
#[ignore = "about 40 s: .ci/run runs it with --ignored (and the matrix covers every client)"]
fn reference_client_passes_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("vet.json");
    let out = Command::new(bin())
        .args(["vet", "--client", "reference", "--seed", "8", "--jobs", "4"])
        .arg("--workdir")
        .arg(dir.path().join("runs"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vet failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("PASS: reference"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 16, "every built-in scenario");
    for r in results {
        assert_eq!(r["passed"], true, "{r:#}");
        // Every rule, not only the MUST ones.
        if let Some(g) = r["grade"].as_object() {
            assert_eq!(g["failed"].as_array().unwrap().len(), 0, "{r:#}");
        }
        assert_eq!(r["secrets"].as_array().unwrap().len(), 0, "{r:#}");
    }
}

#[test]
fn command_template_that_prints_the_key_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["vet", "--scenario", "happy-rsa-ov-rsa", "--workdir"])
        .arg(dir.path())
        .args([
            "--",
            "sh",
            "-c",
            "echo \"registering with $0\"; exit 1",
            "{eab_hmac_key}",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("secret LEAK: stdout"), "{stdout}");
    assert!(
        stdout.contains("secret LEAK: command line of sh"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL: custom"), "{stdout}");
}
