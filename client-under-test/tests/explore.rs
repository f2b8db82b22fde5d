//! `vet --explore` finds planted fragilities and shrinks each to exactly its trigger (the
//! reference client's few hundred cases are in cli/tests/cli/vet.rs, through its command line).
//! Each search runs a client dozens of times, so these are `--ignored` (run by .ci/run) and
//! `cargo test` stays quick; the strategy, shrinking and reports are unit-tested in the crate.
//!
//! The planted clients are this test binary itself: run with `PLANTED_FLAW` set, its
//! `planted_client` test is a small ACME client (reference_client's raw transport, one
//! request at a time) with the named flaw, driven through a command-template adapter like
//! any client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use client_under_test::Adapter;
use client_under_test::explore::{self, ExploreConfig, ExploreReport, Severity};

/// The adapter running this binary as the client with `flaw`.
fn planted(flaw: &str) -> Adapter {
    let exe = std::env::current_exe().unwrap();
    let text = format!(
        r#"
name = "planted-{flaw}"
trust = "flag"
key_types = {{ rsa = "rsa", ecdsa = "ecdsa" }}
issue = [["{}", "planted_client", "--exact", "--nocapture", "--test-threads=1", "--quiet"]]
cert = "{{workdir}}/cert.pem"
logs = []
[env]
PLANTED_FLAW = "{flaw}"
PLANTED_DIRECTORY = "{{directory}}"
PLANTED_KID = "{{eab_kid}}"
PLANTED_HMAC = "{{eab_hmac_key}}"
PLANTED_DOMAIN = "{{domain}}"
PLANTED_CA = "{{ca_bundle}}"
PLANTED_KEY_TYPE = "{{key_type}}"
PLANTED_OUT = "{{workdir}}/cert.pem"
"#,
        exe.display()
    );
    Adapter::parse(&text, flaw).unwrap()
}

async fn run(flaw: &str, cases: usize, seed: u64, base_limit: u64) -> ExploreReport {
    let dir = tempfile::tempdir().unwrap();
    let config = ExploreConfig {
        cases,
        seed,
        jobs: 4,
        max_time: Duration::from_secs(900),
        base_dir: dir.path().to_owned(),
        harness: None,
        client_spec: format!("--client planted-{flaw}"),
        base_limit,
        max_shrink_runs: explore::DEFAULT_SHRINK_RUNS,
        sandbox: false,
    };
    let report = explore::explore(&planted(flaw), None, &config, &|l| eprintln!("{l}"))
        .await
        .unwrap();
    eprintln!("{}", explore::report::summary(&report));
    // The plan files are what a user replays: each parses back to the minimal plan.
    for f in &report.findings {
        let text = std::fs::read_to_string(&f.plan_file).unwrap();
        let plan = mock_server::faults::FaultPlan::parse(&text, &f.plan_file).unwrap();
        assert_eq!(plan.rules, f.minimal.rules);
        assert_eq!(plan.seed, Some(seed));
        assert!(f.replay[0].contains(&format!("--faults {}", f.plan_file)));
    }
    report
}

fn only<'a>(report: &'a ExploreReport, property: &str) -> &'a explore::Finding {
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.property == property)
        .collect();
    assert_eq!(found.len(), 1, "{property}: {:#?}", report.findings);
    found[0]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a minute or more of client runs: .ci/run runs it with --ignored"]
async fn a_crash_on_the_second_bad_nonce_in_a_row_shrinks_to_two_bad_nonces() {
    let report = run("crash-on-second-bad-nonce", 20, 11, 30).await;
    let f = only(&report, "crash");
    assert_eq!(f.severity, Severity::Failure);
    assert!(f.shrink_complete, "{f:#?}");
    // Exactly the trigger: one rule, two badNonces in a row on the first request.
    assert_eq!(
        f.signature, "happy-rsa-ov-rsa: newAccount badNonce@1,2",
        "{f:#?}"
    );
    assert!(f.detail.contains("panicked at"), "{}", f.detail);
    assert!(
        f.evidence.exchanges.iter().any(|e| e.contains("badNonce")),
        "{:#?}",
        f.evidence
    );
    // The client is otherwise sound: nothing else is reported.
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    assert!(!report.passed());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a minute or more of client runs: .ci/run runs it with --ignored"]
async fn ignoring_retry_after_shrinks_to_one_429_with_retry_after_1() {
    let report = run("ignore-retry-after", 8, 5, 30).await;
    // Every finding is this flaw. Besides the shrunk trigger below, a case on the HTTP-date
    // base may show it without any fault: the order's Retry-After there is a date, rounded
    // up, which the client's fixed wait falls short of by timing alone.
    for f in &report.findings {
        assert_eq!(f.property, "rule:retry-after-honoured", "{f:#?}");
        assert!(
            f.minimal.base == "happy-rsa-ov-rsa" || f.minimal.base == "retry-after-http-date",
            "{f:#?}"
        );
    }
    let on_happy: Vec<_> = (report.findings.iter())
        .filter(|f| f.minimal.base == "happy-rsa-ov-rsa")
        .collect();
    assert_eq!(on_happy.len(), 1, "{:#?}", report.findings);
    let f = on_happy[0];
    assert_eq!(f.severity, Severity::Fragile);
    assert!(f.shrink_complete, "{f:#?}");
    // Exactly the trigger: one response with Retry-After, on the first request to an endpoint.
    assert_eq!(f.minimal.base, "happy-rsa-ov-rsa", "{f:#?}");
    assert_eq!(f.minimal.rules.len(), 1, "{f:#?}");
    let rule = &f.minimal.rules[0];
    assert_eq!(rule.nth, [1], "{f:#?}");
    assert!(rule.retry_after.is_some(), "{f:#?}");
    assert!(
        f.evidence
            .exchanges
            .iter()
            .any(|e| e.contains("Retry-After")),
        "{:#?}",
        f.evidence
    );
    // Fragile findings alone do not fail the run.
    assert!(report.passed());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a minute or more of client runs: .ci/run runs it with --ignored"]
async fn a_hang_on_a_dropped_connection_shrinks_to_one_drop() {
    // 10 s without faults: room for a loaded machine, while each hanging step stays short.
    let report = run("hang-on-drop", 8, 3, 10).await;
    let f = only(&report, "hang");
    assert_eq!(f.severity, Severity::Failure);
    assert!(f.shrink_complete, "{f:#?}");
    assert_eq!(f.signature, "happy-rsa-ov-rsa: newAccount drop@1", "{f:#?}");
    assert_eq!(f.evidence.exits, ["signal"]);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a minute or more of client runs: .ci/run runs it with --ignored"]
async fn a_sound_client_has_no_finding_and_the_time_bound_holds() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExploreConfig {
        cases: 200,
        seed: 2,
        jobs: 2,
        max_time: Duration::from_secs(20),
        base_dir: dir.path().to_owned(),
        harness: None,
        client_spec: "--client planted-none".into(),
        base_limit: 30,
        max_shrink_runs: explore::DEFAULT_SHRINK_RUNS,
        sandbox: false,
    };
    let started = std::time::Instant::now();
    let report = explore::explore(&planted("none"), None, &config, &|l| eprintln!("{l}"))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(report.stopped.is_some(), "{report:#?}");
    assert!(
        report.cases_run >= 2 && report.cases_not_run > 0,
        "{report:#?}"
    );
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert!(report.passed());
}

/// The planted client: does nothing unless this binary was started as a client.
#[test]
fn planted_client() {
    let Ok(flaw) = std::env::var("PLANTED_FLAW") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(client::planted(&flaw)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("planted client: error: {e}");
            std::process::exit(1)
        }
    }
}

mod client {
    use std::time::Duration;

    use acme_proto::{AccountKey, SignatureAlgorithm, b64};
    use reference_client::raw::{Raw, http_client, tls_config};
    use reference_client::{CertKey, CertKeyType, EabCredential, Response, generate_account_key};
    use serde_json::{Value, json};

    fn var(name: &str) -> Result<String, String> {
        std::env::var(name).map_err(|_| format!("{name} is not set"))
    }

    fn key_type() -> Result<CertKeyType, String> {
        Ok(if var("PLANTED_KEY_TYPE")? == "rsa" {
            CertKeyType::Rsa(2048)
        } else {
            CertKeyType::EcdsaP256
        })
    }

    struct Session {
        raw: Raw,
        flaw: String,
        key: AccountKey,
        kid: Option<String>,
        nonce: Option<String>,
        new_nonce: String,
    }

    impl Session {
        /// One signed request, retried after badNonce, a proxy's 429/5xx page (honouring
        /// Retry-After unless the flaw says otherwise) and a lost connection.
        async fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, String> {
            let mut bad_nonces = 0;
            for _ in 0..12 {
                let nonce = match self.nonce.take() {
                    Some(n) => n,
                    None => self
                        .raw
                        .new_nonce(&self.new_nonce)
                        .await
                        .map_err(|e| e.to_string())?,
                };
                let r = match self
                    .raw
                    .post_signed(&self.key, self.kid.as_deref(), &nonce, url, payload)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        if self.flaw == "hang-on-drop" {
                            eprintln!("planted client: connection lost ({e}); waiting for it");
                            std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                self.nonce = r.nonce().map(str::to_owned);
                if r.problem_name().as_deref() == Some("badNonce") {
                    bad_nonces += 1;
                    assert!(
                        !(bad_nonces >= 2 && self.flaw == "crash-on-second-bad-nonce"),
                        "planted: a second badNonce in a row"
                    );
                    continue;
                }
                bad_nonces = 0;
                if matches!(r.status, 429 | 502 | 503 | 504) {
                    if self.flaw != "ignore-retry-after" {
                        let wait = r.retry_after().unwrap_or(Duration::from_secs(1));
                        tokio::time::sleep(wait + Duration::from_millis(100)).await;
                    }
                    // A proxy's page did not spend the nonce.
                    self.nonce.get_or_insert(nonce);
                    continue;
                }
                return Ok(r);
            }
            Err(format!("{url}: no answer after 12 attempts"))
        }

        async fn ok(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, String> {
            let r = self.post(url, payload).await?;
            if r.is_success() {
                Ok(r)
            } else {
                Err(format!("{url}: {}", r.describe()))
            }
        }
    }

    fn field(v: &Value, name: &str) -> Result<String, String> {
        v[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} in {v}"))
    }

    /// A small client, one request at a time, with the flaw `PLANTED_FLAW` names.
    pub(super) async fn planted(flaw: &str) -> Result<(), String> {
        let e = |e: reference_client::Error| e.to_string();
        let tls = tls_config(&[var("PLANTED_CA")?.into()]).map_err(e)?;
        let raw = Raw::new(
            http_client(tls, "planted-client/1", Some(Duration::from_secs(30))).map_err(e)?,
        );
        let dir: Value = raw
            .get(&var("PLANTED_DIRECTORY")?)
            .await
            .map_err(e)?
            .json()
            .map_err(e)?;
        let key = generate_account_key(SignatureAlgorithm::Es256, 2048).map_err(e)?;
        let mut s = Session {
            raw,
            flaw: flaw.to_owned(),
            key,
            kid: None,
            nonce: None,
            new_nonce: field(&dir, "newNonce")?,
        };
        let new_account = field(&dir, "newAccount")?;
        let eab =
            EabCredential::new(&var("PLANTED_KID")?, &var("PLANTED_HMAC")?, None).map_err(e)?;
        let payload = json!({
            "termsOfServiceAgreed": true,
            "contact": ["mailto:admin@physics.example.edu"],
            "externalAccountBinding": eab.binding(&new_account, &s.key),
        });
        let r = s.ok(&new_account, Some(&payload)).await?;
        s.kid = Some(r.location().map_err(e)?);
        let domain = var("PLANTED_DOMAIN")?;
        let payload = json!({"identifiers": [{"type": "dns", "value": domain}]});
        let r = s.ok(&field(&dir, "newOrder")?, Some(&payload)).await?;
        let order_url = r.location().map_err(e)?;
        let order: Value = r.json().map_err(e)?;
        for authz in order["authorizations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let url = authz.as_str().unwrap_or_default();
            let a: Value = s.ok(url, None).await?.json().map_err(e)?;
            if a["status"] != "valid" {
                return Err(format!("authorization {url} is {}", a["status"]));
            }
        }
        let csr = CertKey::generate(key_type()?)
            .map_err(e)?
            .csr(&[domain])
            .map_err(e)?;
        let mut r = s
            .ok(
                &field(&order, "finalize")?,
                Some(&json!({"csr": b64::encode(csr)})),
            )
            .await?;
        for _ in 0..60 {
            let o: Value = r.json().map_err(e)?;
            match o["status"].as_str() {
                Some("valid") => {
                    let cert = s.ok(&field(&o, "certificate")?, None).await?;
                    return std::fs::write(var("PLANTED_OUT")?, cert.text())
                        .map_err(|e| e.to_string());
                }
                Some("processing" | "ready" | "pending") => {
                    let wait = if flaw == "ignore-retry-after" {
                        Duration::from_secs(2)
                    } else {
                        r.retry_after().unwrap_or(Duration::from_secs(1))
                    };
                    tokio::time::sleep(wait).await;
                    r = s.ok(&order_url, None).await?;
                }
                other => return Err(format!("order {order_url} is {other:?}")),
            }
        }
        Err(format!("order {order_url} never became valid"))
    }
}
