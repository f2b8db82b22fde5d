//! A planted leak is caught: test adapters (tiny shell scripts) that put the canary HMAC key
//! where it must not be get failing secret findings naming the file, the stream or the
//! process.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use client_under_test::scan::{Level, Place};
use client_under_test::{Adapter, RunConfig, Scenario, ScenarioResult, run_all};

fn adapter(name: &str, script: &str, env: &str) -> Adapter {
    let text = format!(
        r#"
name = "{name}"
trust = "flag"
key_types = {{ rsa = "rsa", ecdsa = "ecdsa" }}
issue = [["sh", "-c", '''{script}''', "leaky", "{{workdir}}"]]
logs = ["{{workdir}}/logs"]
[env]
{env}
"#
    );
    Adapter::parse(&text, name).unwrap()
}

async fn vet(adapter: Adapter) -> ScenarioResult {
    let scenario = Scenario::select(&["happy-rsa-ov-rsa".to_owned()]).unwrap();
    vet_in(adapter, scenario[0].clone()).await
}

/// Runs one cell in a fresh work directory.
async fn vet_in(adapter: Adapter, scenario: Scenario) -> ScenarioResult {
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig {
        harness: None,
        seed: 1,
        base_dir: dir.path().to_owned(),
        jobs: 1,
        // The leaks planted here do not depend on the sandbox (tests/sandbox.rs covers it).
        sandbox: false,
    };
    let cells = vec![(adapter, None, scenario)];
    let mut results = run_all(cells, &config, Arc::new(|_| {})).await.unwrap();
    results.pop().unwrap()
}

#[tokio::test]
async fn key_in_a_world_readable_file_is_a_failing_finding_naming_the_file() {
    let a = adapter(
        "writes-key",
        r#"mkdir -p "$1/state" && printf '%s' "$KEY" > "$1/state/eab.txt" && chmod 644 "$1/state/eab.txt"; exit 1"#,
        r#"KEY = "{eab_hmac_key}""#,
    );
    let r = vet(a).await;
    assert!(!r.passed);
    let f = r
        .secrets
        .iter()
        .find(|f| f.location == "workdir/state/eab.txt")
        .unwrap_or_else(|| panic!("no finding for the file: {:#?}", r.secrets));
    assert_eq!((f.level, f.place), (Level::Fail, Place::File));
    assert!(f.detail.contains("0644"), "{}", f.detail);
    // The key went through the environment only: no command-line finding.
    assert!(
        r.secrets.iter().all(|f| f.place != Place::CommandLine),
        "{:#?}",
        r.secrets
    );
}

#[tokio::test]
async fn key_at_rest_0600_is_reported_but_does_not_fail() {
    let a = adapter(
        "stores-key",
        r#"umask 077; printf '%s' "$KEY" > "$1/eab.txt"; exit 1"#,
        r#"KEY = "{eab_hmac_key}""#,
    );
    let r = vet(a).await;
    let f = r
        .secrets
        .iter()
        .find(|f| f.location == "workdir/eab.txt")
        .unwrap();
    assert_eq!(f.level, Level::Info, "{f:?}");
}

#[tokio::test]
async fn key_in_stderr_and_log_file_are_failing_findings() {
    let a = adapter(
        "logs-key",
        r#"echo "debug: hmac=$KEY" >&2; mkdir -p "$1/logs"; umask 077; echo "hmac=$KEY" > "$1/logs/client.log"; exit 1"#,
        r#"KEY = "{eab_hmac_key}""#,
    );
    let r = vet(a).await;
    let places: Vec<(Level, Place, &str)> = r
        .secrets
        .iter()
        .map(|f| (f.level, f.place, f.location.as_str()))
        .collect();
    assert!(
        places.contains(&(Level::Fail, Place::Stderr, "stderr")),
        "{places:?}"
    );
    assert!(
        places.contains(&(Level::Fail, Place::Log, "workdir/logs/client.log")),
        "{places:?}"
    );
}

#[tokio::test]
async fn key_on_the_command_line_is_a_failing_finding_naming_the_process() {
    // The key is an argument of a process that runs for a while: `ps` shows it.
    let a = Adapter::parse(
        r#"
name = "argv-key"
trust = "flag"
key_types = { rsa = "rsa", ecdsa = "ecdsa" }
issue = [["sh", "-c", "sleep 0.3; exit 1", "leaky", "{eab_hmac_key}"]]
"#,
        "argv-key",
    )
    .unwrap();
    let r = vet(a).await;
    let f = r
        .secrets
        .iter()
        .find(|f| f.place == Place::CommandLine)
        .unwrap_or_else(|| panic!("no command-line finding: {:#?}", r.secrets));
    assert_eq!(f.level, Level::Fail);
    assert_eq!(f.location, "command line of sh");
}

#[tokio::test]
async fn a_client_that_never_asks_is_not_a_clean_refusal() {
    // Exiting non-zero without a single request is not "refused by the CA".
    let a = adapter("does-nothing", "exit 1", "");
    let s = Scenario::select(&["undelegated-name".to_owned()]).unwrap();
    let r = vet_in(a, s[0].clone()).await;
    assert!(!r.outcome.ok, "{:?}", r.outcome);
    assert!(!r.passed);
}

#[tokio::test]
async fn a_hanging_client_is_killed_and_reported() {
    let mut s = Scenario::select(&["happy-rsa-ov-rsa".to_owned()]).unwrap();
    s[0].time_limit = 2;
    let a = adapter("hangs", "sleep 30 & sleep 30", "");
    let started = std::time::Instant::now();
    let r = vet_in(a, s[0].clone()).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(
        r.outcome.kind,
        client_under_test::run::OutcomeKind::Hung,
        "{:?}",
        r.outcome
    );
    assert_eq!(r.outcome.exits, vec![None]);
}

#[tokio::test]
async fn every_commands_trace_is_read_unsandboxed_too() {
    // Two commands: the programs, files and key of the second are seen as well as the
    // first's (each command has its own trace file).
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.txt");
    let a = Adapter::parse(
        &format!(
            r#"
name = "two-steps"
trust = "flag"
key_types = {{ rsa = "rsa", ecdsa = "ecdsa" }}
issue = [["true"], ["sh", "-c", "uname > /dev/null; echo x > {}; exit 1"]]
"#,
            outside.display()
        ),
        "two-steps",
    )
    .unwrap();
    let r = vet(a).await;
    assert!(r.touched.traced && !r.touched.sandboxed, "{:?}", r.touched);
    assert!(
        r.touched.processes.iter().any(|p| p == "uname"),
        "{:?}",
        r.touched.processes
    );
    // Unconfined, the write really happened, and it is listed.
    assert!(outside.exists());
    assert!(
        r.touched
            .files
            .iter()
            .any(|f| std::path::Path::new(&f.path) == outside && f.result == "done"),
        "{:#?}",
        r.touched.files
    );
}
