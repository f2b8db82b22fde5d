//! `acme-harness vet` end to end: the reference client passes every built-in scenario, and an
//! ad-hoc command template that leaks is caught.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_acme-harness")
}

#[test]
#[ignore = "about 90 s: .ci/run runs it with --ignored (and the matrix covers every client)"]
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
    assert_eq!(
        results.len(),
        client_under_test::Scenario::built_in().len(),
        "every built-in scenario"
    );
    for r in results {
        assert_eq!(r["passed"], true, "{r:#}");
        // Every rule, not only the MUST ones.
        if let Some(g) = r["grade"].as_object() {
            assert_eq!(g["failed"].as_array().unwrap().len(), 0, "{r:#}");
        }
        assert_eq!(r["secrets"].as_array().unwrap().len(), 0, "{r:#}");
    }
}

/// The reference client, through `acme-harness client` as `vet --explore --client reference`
/// runs it, survives a few hundred generated fault plans on every base (http-01 validation,
/// wildcard, alternate chain and renewal among them) with no failure: fragile findings (it
/// gives up on a 502 while polling an order, on a dropped finalize) are allowed, failures
/// are not. Several minutes: .ci/run runs it with --ignored.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "several minutes: .ci/run runs it with --ignored"]
async fn reference_client_survives_a_few_hundred_explored_cases() {
    use client_under_test::explore::{self, command};
    use client_under_test::vet::VetPlan;
    let dir = tempfile::tempdir().unwrap();
    let harness = std::path::PathBuf::from(bin());
    let adapter = client_under_test::Adapter::find("reference").unwrap();
    let (plan, _) = VetPlan::new(adapter, false, None, &[], Some(&harness)).unwrap();
    let flags = command::Flags {
        client: Some("reference".into()),
        cases: Some(200),
        seed: Some(17),
        jobs: 8,
        max_time: Some(std::time::Duration::from_secs(720)),
        workdir: Some(dir.path().to_owned()),
        ..command::Flags::default()
    };
    let (adapter, mut config) = command::config(&plan, &flags, Some(harness)).unwrap();
    // Cases only: a failure shows its case unshrunk.
    config.max_shrink_runs = 0;
    let report = explore::explore(&adapter, None, &config, &|l| eprintln!("{l}"))
        .await
        .unwrap();
    let summary = explore::report::summary(&report);
    eprintln!("{summary}");
    assert_eq!(report.cases_run, 201, "{summary}");
    assert!(report.failures().next().is_none(), "{summary}");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    // Every base the reference client can run came up, the challenge base among them.
    let mut bases = std::collections::BTreeSet::new();
    for case in std::fs::read_dir(dir.path()).unwrap() {
        let case = case.unwrap().path();
        if case
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("case-")
        {
            for base in std::fs::read_dir(case.join("reference")).unwrap() {
                bases.insert(base.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(bases.len(), explore::BASES.len(), "{bases:?}");
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

/// Runs `vet` with an adapter file written from `adapter` (TOML) over `scenario`; the JSON
/// report's one result.
fn vet_planted(adapter: &str, scenario: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("planted.toml");
    std::fs::write(&file, adapter).unwrap();
    let json = dir.path().join("vet.json");
    let out = Command::new(bin())
        .args(["vet", "--scenario", scenario, "--client"])
        .arg(&file)
        .arg("--workdir")
        .arg(dir.path().join("runs"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the planted client must fail: {stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    report["results"][0].clone()
}

/// The reference client with a deadline too short to wait out the HTTP-date Retry-After of a
/// processing order: it gives up, where a certificate was due.
#[test]
fn a_client_that_cannot_wait_out_an_http_date_fails() {
    let adapter = r#"
name = "impatient"
version = ["{harness}", "--version"]
trust = "flag"
key_types = { rsa = "rsa2048", ecdsa = "p256" }
issue = [[
    "{harness}", "client", "issue", "--server", "{directory}", "--ca-file", "{ca_bundle}",
    "--state-dir", "{workdir}/state", "--eab-kid", "{eab_kid}", "--agree-tos",
    "--key-type", "{key_type}", "-d", "{domain}", "--out", "{workdir}/live", "--timeout", "2",
]]
cert = "{workdir}/live/fullchain.pem"
[env]
ACME_HARNESS_EAB_HMAC_KEY = "{eab_hmac_key}"
"#;
    let r = vet_planted(adapter, "retry-after-http-date");
    assert_eq!(r["outcome"]["kind"], "failed", "{r:#}");
    assert_eq!(r["passed"], false);
}

/// A client that reports success whatever the CA said: exit 0 with no certificate, after the
/// CA refused the wrong HMAC key or failed newOrder.
#[test]
fn a_client_that_ignores_refusals_fails() {
    let adapter = r#"
name = "optimist"
trust = "env"
key_types = { rsa = "rsa", ecdsa = "ecdsa" }
issue = [["true"]]
"#;
    for scenario in ["eab-wrong-hmac-key", "server-internal-new-order"] {
        let r = vet_planted(adapter, scenario);
        assert_eq!(r["passed"], false, "{scenario}: {r:#}");
        let kind = r["outcome"]["kind"].as_str().unwrap();
        assert!(
            kind == "accepted" || kind == "no-certificate",
            "{scenario}: exit 0 without a certificate is {kind}"
        );
    }
}

/// `--secret-mode all`: each way of passing the key is run and compared; the verdict is the
/// safest mode's, and a leak only the other mode has is advice.
#[test]
fn secret_modes_are_compared_and_the_safest_decides() {
    // Both modes run the reference client, which talks to the CA; the flag mode also prints
    // the key it was handed on its command line.
    let adapter = r#"
name = "twoways"
version = ["{harness}", "--version"]
trust = "flag"
key_types = { rsa = "rsa2048", ecdsa = "p256" }
secret_mode = "flag"
issue = [[
    "sh", "-c", "echo \"using $0\"; shift; exec \"$@\"", "{eab_hmac_key}", "--",
    "{harness}", "client", "issue", "--server", "{directory}", "--ca-file", "{ca_bundle}",
    "--state-dir", "{workdir}/state", "--eab-kid", "{eab_kid}", "--agree-tos", "-d", "{domain}",
]]
[env]
ACME_HARNESS_EAB_HMAC_KEY = "{eab_hmac_key}"

[[other_secret_mode]]
name = "env"
description = "the key in the environment"
source = "this test"
issue = [[
    "{harness}", "client", "issue", "--server", "{directory}", "--ca-file", "{ca_bundle}",
    "--state-dir", "{workdir}/state", "--eab-kid", "{eab_kid}", "--agree-tos", "-d", "{domain}",
]]
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twoways.toml");
    std::fs::write(&file, adapter).unwrap();
    let run = |mode: Option<&str>| {
        let mut cmd = Command::new(bin());
        cmd.args(["vet", "--scenario", "eab-revoked", "--client"])
            .arg(&file)
            .arg("--workdir")
            .arg(
                dir.path()
                    .join(format!("runs-{}", mode.unwrap_or("default"))),
            );
        if let Some(m) = mode {
            cmd.args(["--secret-mode", m]);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = run(Some("all"));
    assert_eq!(code, Some(0), "the safest mode passes: {stdout}");
    assert!(
        stdout.contains("env                 1/1    nowhere it should not be"),
        "{stdout}"
    );
    assert!(stdout.contains("flag                0/1"), "{stdout}");
    assert!(
        stdout.contains("advice: pass the key as in `env`: in `flag` it ends up in"),
        "{stdout}"
    );
    // One verdict line per mode, not one for both.
    assert!(stdout.contains("PASS: twoways [env]"), "{stdout}");
    assert!(stdout.contains("FAIL: twoways [flag]"), "{stdout}");
    // By default the safest mode alone; asked for, the flag mode alone, which fails.
    let (code, stdout) = run(None);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("LEAK"), "{stdout}");
    let (code, stdout) = run(Some("flag"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("secret LEAK: stdout"), "{stdout}");
}

/// The reference client with a few of its flags or its environment changed, as a planted
/// client: `extra` is added to its issue command.
fn planted_reference(name: &str, extra: &[&str], without_eab: &str) -> String {
    let extra: String = extra.iter().map(|a| format!(", \"{a}\"")).collect();
    format!(
        r#"
name = "{name}"
version = ["{{harness}}", "--version"]
trust = "flag"
key_types = {{ rsa = "rsa2048", ecdsa = "p256" }}
issue = [[
    "{{harness}}", "client", "issue", "--server", "{{directory}}", "--ca-file", "{{ca_bundle}}",
    "--state-dir", "{{workdir}}/state", "--eab-kid", "{{eab_kid}}", "--agree-tos",
    "--key-type", "{{key_type}}", "-d", "{{domain}}", "--out", "{{workdir}}/live"{extra},
]]
issue_without_eab = [[{without_eab}]]
cert = "{{workdir}}/live/fullchain.pem"
[env]
ACME_HARNESS_EAB_HMAC_KEY = "{{eab_hmac_key}}"
"#
    )
}

/// eab-missing and eab-missing-unadvertised: a client that says it succeeded without any
/// credential.
#[test]
fn a_client_that_claims_success_without_eab_fails() {
    for scenario in ["eab-missing", "eab-missing-unadvertised"] {
        let r = vet_planted(
            &planted_reference("no-eab-optimist", &[], "\"true\""),
            scenario,
        );
        assert_eq!(r["outcome"]["kind"], "accepted", "{scenario}: {r:#}");
    }
}

/// dcv-http-01: a client with no http-01 solver cannot prove the name.
#[test]
fn a_client_without_an_http01_solver_fails_dcv() {
    let r = vet_planted(
        &planted_reference("no-solver", &[], "\"true\""),
        "dcv-http-01",
    );
    assert_eq!(r["outcome"]["kind"], "failed", "{r:#}");
    let detail = r["outcome"]["detail"].as_str().unwrap();
    assert!(detail.contains("no solver"), "{detail}");
}

/// unknown-types-ignored: a client that refuses a directory with meta members it does not
/// know (a strict parser).
#[test]
fn a_client_that_rejects_unknown_meta_fails() {
    let strict = r#"
name = "strict-parser"
trust = "flag"
key_types = { rsa = "rsa2048", ecdsa = "p256" }
issue = [[
    "sh", "-c",
    "curl -sf --cacert {ca_bundle} {directory} | python3 -c 'import json,sys; m=json.load(sys.stdin)[\"meta\"]; extra=set(m)-{\"termsOfService\",\"website\",\"caaIdentities\",\"externalAccountRequired\"}; sys.exit(\"unknown meta: %s\" % sorted(extra)) if extra else None'",
]]
"#;
    let r = vet_planted(strict, "unknown-types-ignored");
    assert_eq!(r["outcome"]["kind"], "failed", "{r:#}");
    let detail = r["outcome"]["detail"].as_str().unwrap();
    assert!(detail.contains("unknown meta"), "{detail}");
}

/// invalid-challenge-empty-error: a client that dies on the `{}` error with a traceback is
/// a crash, not a clean failure.
#[test]
fn a_client_that_crashes_on_an_empty_error_is_caught() {
    let adapter = planted_reference("crashes-on-empty-error", &["--http-01", "127.0.0.1:{http_port}"], "\"true\"")
        .replace(
            "issue = [[\n    \"{harness}\"",
            "issue = [[\"sh\", \"-c\", \"\\\"$0\\\" \\\"$@\\\" || { echo 'Traceback (most recent call last):' >&2; echo \\\"KeyError: 'type'\\\" >&2; exit 1; }\",\n    \"{harness}\"",
        );
    let r = vet_planted(&adapter, "invalid-challenge-empty-error");
    assert_eq!(r["outcome"]["kind"], "crashed", "{r:#}");
}

/// persistent-dcv and valid-without-certificate-url: a client that reports success where it
/// could not have a certificate.
#[test]
fn a_client_that_claims_success_where_it_must_stop_fails() {
    let optimist = r#"
name = "optimist"
trust = "flag"
key_types = { rsa = "rsa2048", ecdsa = "p256" }
issue = [["true"]]
"#;
    for scenario in ["persistent-dcv", "valid-without-certificate-url"] {
        let r = vet_planted(optimist, scenario);
        assert_eq!(r["outcome"]["kind"], "accepted", "{scenario}: {r:#}");
    }
}

/// retry-after-86400: a client that polls the processing order whatever Retry-After asks is
/// in a tight loop.
#[test]
#[ignore = "about 30 s (the processing order): .ci/run runs it with --ignored"]
fn a_client_that_polls_through_a_day_long_retry_after_fails() {
    let adapter = planted_reference(
        "tight-loop",
        &["--planted-ignore-retry-after", "--timeout", "40"],
        "\"true\"",
    );
    let r = vet_planted(&adapter, "retry-after-86400");
    assert_eq!(r["outcome"]["kind"], "failed", "{r:#}");
    let detail = r["outcome"]["detail"].as_str().unwrap();
    assert!(detail.contains("polled the processing order"), "{detail}");
}

/// finalize-held-60s: a client that gives up on the slow finalize and does not succeed on
/// the rerun either (here: its second run is refused for good).
#[test]
#[ignore = "about 70 s (the held finalize): .ci/run runs it with --ignored"]
fn a_client_whose_rerun_fails_after_a_held_finalize_fails() {
    let adapter = planted_reference("gives-up", &["--timeout", "5"], "\"true\"").replace(
        "issue = [[\n    \"{harness}\"",
        "issue = [[\"sh\", \"-c\", \"if [ -e {workdir}/ran ]; then exit 1; fi; touch {workdir}/ran; exec \\\"$0\\\" \\\"$@\\\"\",\n    \"{harness}\"",
    );
    let r = vet_planted(&adapter, "finalize-held-60s");
    assert_eq!(r["outcome"]["kind"], "failed", "{r:#}");
    let detail = r["outcome"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("the first run failed"), "{detail}");
}

/// preferred-chain: a client that takes the CA's default chain whatever it was asked for.
#[test]
fn a_client_that_ignores_the_preferred_chain_fails() {
    let adapter = planted_reference("default-chain-only", &[], "\"true\"").replace(
        "cert = ",
        "preferred_chain_args = [\"--timeout\", \"60\"]\ncert = ",
    );
    let r = vet_planted(&adapter, "preferred-chain");
    assert_eq!(r["outcome"]["kind"], "bad-certificate", "{r:#}");
    let detail = r["outcome"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("Mock AAA Certificate Services")
            && detail.contains("not the preferred \"Mock USERTrust RSA Certification Authority\""),
        "{detail}"
    );
}
