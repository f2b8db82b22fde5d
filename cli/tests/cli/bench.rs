//! `acme-harness bench` as a user runs it: the real binary against the mock server in this
//! process, on the rfc8555 profile with challenges answered but not validated
//! (`order.danger_skip_validation`) and on the InCommon profile without the processing wait.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use mock_server::{MockServer, Profile, ServerConfig};
use sectigo_acme_mock::internal::TestServer as Server;
use serde_json::Value;

async fn server() -> Server {
    let mut rfc = Profile::built_in("rfc8555").unwrap();
    rfc.order.danger_skip_validation = true;
    let mut incommon = Profile::built_in("sectigo-incommon-ecc-ov").unwrap();
    incommon.order.processing_ms = 0;
    let mut config = ServerConfig::ephemeral();
    config.profiles = vec![rfc, incommon];
    sectigo_acme_mock::internal::start(config).await
}

async fn bench(server: &MockServer, profile: &str, extra: &[&str]) -> (i32, String, String) {
    let demo = server.ready().demo.clone().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"));
    cmd.arg("bench")
        .arg("--directory")
        .arg(server.directory_url(profile).unwrap())
        .arg("--ca-file")
        .arg(&server.ready().ca_bundle)
        .args(["--eab-kid", &demo.eab_kid, "--quiet"])
        .args(extra)
        .env("ACME_HARNESS_EAB_HMAC_KEY", &demo.eab_hmac_key);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn endpoints(report: &Value) -> Vec<String> {
    report["latency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["endpoint"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_against_both_kinds_of_profile() {
    let server = server().await;
    let pid = std::process::id().to_string();
    let (code, stdout, stderr) = bench(
        &server,
        "rfc8555",
        &[
            "--issuances",
            "6",
            "--concurrency",
            "2",
            "--json",
            "--pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["issuances"], 6, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert!(report["errors"].as_object().unwrap().is_empty());
    // newAccount (with EAB), newOrder, authz, challenge, finalize, certificate at least.
    let seen = endpoints(&report);
    for e in [
        "newAccount",
        "newOrder",
        "authz",
        "challenge",
        "finalize",
        "certificate",
    ] {
        assert!(seen.iter().any(|s| s == e), "{e} missing from {seen:?}");
    }
    assert!(report["requests_per_issuance"].as_f64().unwrap() >= 6.0);
    // This test process is the server: its memory is read from /proc.
    assert!(report["server"]["after"]["rss_kib"].as_u64().unwrap() > 0);
    assert_eq!(server.state().store.counts().certs, 6);

    // Pre-validated authorizations: no challenge request at all.
    let (code, stdout, stderr) = bench(
        &server,
        "sectigo-incommon-ecc-ov",
        &["--issuances", "3", "--json", "--accounts", "per-client"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["issuances"], 3, "{report:#}");
    assert!(!endpoints(&report).iter().any(|e| e == "challenge"));

    // Human output names the figures.
    let (code, stdout, _) = bench(&server, "rfc8555", &["--issuances", "2"]).await;
    assert_eq!(code, 0);
    for word in ["issuances", "requests", "p99", "errors"] {
        assert!(stdout.contains(word), "{word} missing from:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_problem_type() {
    let server = server().await;
    // Not delegated to the demo credential: every newOrder is refused by the InCommon profile.
    let (code, stdout, stderr) = bench(
        &server,
        "sectigo-incommon-ecc-ov",
        &["--issuances", "2", "--json", "--domain", "example.org"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(stderr.contains("no certificate was issued"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failed"], 2);
    assert_eq!(
        report["errors"]["newOrder: rejectedIdentifier"], 2,
        "{report:#}"
    );
}

#[test]
fn missing_hmac_key_names_the_ways_to_give_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"))
        .args([
            "bench",
            "--directory",
            "https://127.0.0.1:9/v2/x",
            "--ca-file",
            "/nonexistent",
            "--eab-kid",
            "kid",
        ])
        .env_remove("ACME_HARNESS_EAB_HMAC_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--eab-hmac-key-file") && stderr.contains("ACME_HARNESS_EAB_HMAC_KEY"),
        "{stderr}"
    );
}
