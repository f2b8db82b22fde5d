//! Snapshots of the report writers over fixed results: the verdict table, JUnit XML, HTML,
//! the Markdown matrix, and the JSON round trip `matrix merge` relies on.
#![allow(clippy::unwrap_used)]

use client_under_test::audit::{Access, FileAccess, NetAttempt, NetKind, Touched};
use client_under_test::grade::{Grade, RuleFailure};
use client_under_test::matrix::{Expectations, merge};
use client_under_test::report::{self, RunReport};
use client_under_test::run::{Outcome, OutcomeKind, ScenarioResult};
use client_under_test::scan::{Finding, Level, Place};
use client_under_test::scenario::Expect;

fn result(client: &str, scenario: &str, kind: OutcomeKind, ok: bool) -> ScenarioResult {
    ScenarioResult {
        client: client.into(),
        client_version: Some(format!("{client} 1.0")),
        secret_mode: "config-file".into(),
        secret_mode_how: "eab-hmac-key in a 0600 cli.ini given with -c".into(),
        secret_modes: vec!["config-file".into(), "flag".into()],
        scenario: scenario.into(),
        description: format!("the {scenario} scenario"),
        expect: Expect::Issue,
        outcome: Outcome {
            kind,
            ok,
            detail: "workdir/live/fullchain.pem verifies to the roots".into(),
            exits: vec![Some(0)],
        },
        grade: Some(Grade {
            exchanges: 12,
            rules: 19,
            failed: Vec::new(),
        }),
        secrets: Vec::new(),
        reason_shown: None,
        touched: Touched {
            sandboxed: true,
            traced: true,
            mock_connections: 3,
            processes: vec![client.into()],
            ..Touched::default()
        },
        passed: ok,
        seconds: 2.5,
        dir: format!("/tmp/vet/{client}/{scenario}"),
        seed: 8,
        unusable: None,
    }
}

fn sample() -> Vec<ScenarioResult> {
    let good = result("certbot", "happy-rsa-ov-rsa", OutcomeKind::Issued, true);
    let mut leaky = result("certbot", "bad-nonce-twice", OutcomeKind::Failed, false);
    leaky.outcome.detail = "exit 1: AttributeError: can't set attribute".into();
    leaky.outcome.exits = vec![Some(1)];
    leaky.grade = Some(Grade {
        exchanges: 9,
        rules: 19,
        failed: vec![RuleFailure {
            id: "bad-nonce-retried".into(),
            severity: "SHOULD".into(),
            count: 1,
            first: "badNonce was the end of the conversation".into(),
            statement: "After a badNonce, retry the request with the nonce the refusal carries."
                .into(),
            seqs: vec![7],
        }],
    });
    leaky.secrets = vec![
        Finding {
            level: Level::Fail,
            place: Place::Log,
            location: "workdir/logs/letsencrypt.log".into(),
            detail: "the HMAC key (base64url) is in a log file (mode 0644)".into(),
        },
        Finding {
            level: Level::Info,
            place: Place::File,
            location: "workdir/config".into(),
            detail: "the HMAC key <&> at rest, mode 0600".into(),
        },
    ];
    leaky.touched.network = vec![NetAttempt {
        program: "certbot".into(),
        kind: NetKind::Dns,
        to: "supporters.eff.org".into(),
        result: "no answer: nothing leaves the sandbox".into(),
        expected: None,
    }];
    leaky.touched.files = vec![FileAccess {
        access: Access::Read,
        path: "/etc/letsencrypt/cli.ini".into(),
        program: "certbot".into(),
        result: "not there".into(),
    }];
    let mut untrusted = result("certbot", "untrusted-tls", OutcomeKind::Refused, true);
    untrusted.grade = None;
    untrusted.expect = Expect::Refuse;
    vec![good, leaky, untrusted]
}

#[test]
fn verdict_table() {
    insta::assert_snapshot!(report::table(&sample()));
}

#[test]
fn junit_xml() {
    insta::assert_snapshot!(report::junit(&sample()));
}

#[test]
fn html_is_self_contained() {
    let html = report::html(&RunReport::new(8, sample()));
    assert!(!html.contains("<script"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("&lt;&amp;&gt;"), "escaped");
    insta::assert_snapshot!(html);
}

/// What the web console's report view shows: the `--json` report read back, as `--html`
/// writes it.
#[test]
fn a_json_report_reads_back_into_the_html_report() {
    let report = RunReport::new(8, sample()).with_assessments();
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        report::html_from_json(&json).unwrap(),
        report::html(&report)
    );
    let e = report::html_from_json("{\"seed\": 8}").unwrap_err();
    assert!(e.contains("not a vet or matrix JSON report"), "{e}");
}

#[test]
fn markdown_matrix_with_reasons() {
    let mut results = sample();
    results.push(result(
        "lego",
        "happy-rsa-ov-rsa",
        OutcomeKind::Issued,
        true,
    ));
    let e = Expectations::parse(
        "certbot\t*\tpass\tworks\ncertbot\tbad-nonce-twice\tfail\tcrashes on the second badNonce\nlego\t*\tpass\tworks\n",
        "test",
    )
    .unwrap();
    let why = |r: &ScenarioResult| e.lookup(&r.client, &r.scenario).map(|x| x.reason.clone());
    insta::assert_snapshot!(report::matrix_markdown(&results, &why));
    assert!(e.compare(&results).is_empty());
    let mut changed = results.clone();
    changed[0].passed = false;
    changed[0].outcome.kind = OutcomeKind::Failed;
    changed[0].outcome.detail = format!(
        "exit 1 before any request reached the CA: listen EADDRINUSE 127.0.0.1:5002{}",
        " at Server.setupListenHandle".repeat(20)
    );
    changed[0].grade.as_mut().unwrap().failed.push(RuleFailure {
        id: "nonce-not-reused".into(),
        severity: "MUST".into(),
        count: 1,
        first: "seq 4 reuses seq 3's nonce".into(),
        statement: "Every nonce is sent at most once".into(),
        seqs: vec![4],
    });
    let unexpected = e.compare(&changed);
    assert_eq!(unexpected.len(), 1);
    // The line says why, so that a CI log is enough to start on the cause; a long stderr
    // tail is cut.
    let line = unexpected[0].to_string();
    assert!(
        line.starts_with(
            "certbot/happy-rsa-ov-rsa: expected pass, got fail (outcome: failed: exit 1 before \
             any request reached the CA: listen EADDRINUSE 127.0.0.1:5002 at Server."
        ),
        "{line}"
    );
    assert!(
        line.ends_with("...; rule nonce-not-reused (MUST): seq 4 reuses seq 3's nonce)"),
        "{line}"
    );
    assert!(line.len() < 460, "{} characters: {line}", line.len());
}

#[test]
fn json_round_trips_and_shards_merge() {
    let all = sample();
    let mut a = RunReport::new(8, vec![all[0].clone(), all[2].clone()]);
    a.shard = Some("1/2".into());
    let mut b = RunReport::new(8, vec![all[1].clone()]);
    b.shard = Some("2/2".into());
    let a: RunReport = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    let b: RunReport = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    let merged = merge(vec![b.clone(), a.clone()]).unwrap();
    let order: Vec<&str> = merged.results.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(
        order,
        vec!["happy-rsa-ov-rsa", "bad-nonce-twice", "untrusted-tls"]
    );
    assert!(
        merge(vec![a.clone(), a.clone()]).is_err(),
        "overlapping shards"
    );
    let mut other_seed = b;
    other_seed.seed = 9;
    assert!(merge(vec![a, other_seed]).is_err(), "different seeds");
}

#[test]
fn a_merge_names_the_cells_no_shard_reported() {
    let all = sample();
    let plan: Vec<(String, String)> = all
        .iter()
        .map(|r| (r.client.clone(), r.scenario.clone()))
        .chain([("lego".to_owned(), "wildcard".to_owned())])
        .collect();
    let mut a = RunReport::new(8, vec![all[0].clone(), all[2].clone()]);
    a.shard = Some("1/3".into());
    a.planned = plan.clone();
    let mut b = RunReport::new(8, vec![all[1].clone()]);
    b.shard = Some("2/3".into());
    b.planned = plan.clone();
    // Shard 3 (lego/wildcard) never reported.
    let a: RunReport = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    let merged = merge(vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(merged.planned, plan);
    assert_eq!(
        merged.missing(),
        [("lego".to_owned(), "wildcard".to_owned())]
    );
    // Reports from before plans were recorded: nothing is known to be missing.
    let mut old = a;
    old.planned.clear();
    assert!(merge(vec![old]).unwrap().missing().is_empty());
    let mut whole = b;
    whole.results = all.clone();
    assert!(whole.missing().len() == 1 && whole.missing()[0].0 == "lego");
}

#[test]
fn the_json_report_carries_the_three_answers_and_reads_back() {
    let report = RunReport::new(8, sample()).with_assessments();
    let value = serde_json::to_value(&report).unwrap();
    let a = &value["assessments"][0];
    assert_eq!(a["client"], "certbot");
    assert_eq!(a["works"]["verdict"], "partly");
    assert_eq!(a["conduct"]["verdict"], "partly");
    assert_eq!(a["secrets"]["verdict"], "no");
    assert_eq!(a["touched"]["verdict"], "no");
    assert_eq!(
        a["touched"]["findings"][0]["text"],
        "certbot tried to resolve supporters.eff.org (no answer: nothing leaves the sandbox)"
    );
    assert_eq!(
        a["conduct"]["findings"][0]["at"],
        "transcript.jsonl seq 7: badNonce was the end of the conversation"
    );
    assert_eq!(
        a["secrets"]["findings"][0]["at"],
        "workdir/logs/letsencrypt.log"
    );
    assert!(
        a["recommendation"]
            .as_str()
            .unwrap()
            .starts_with("certbot 1.0 works with Sectigo")
    );
    let back: RunReport = serde_json::from_value(value).unwrap();
    assert_eq!(back.assessments, report.assess());
}

#[test]
fn an_unusable_client_is_reported_as_such_not_as_failures() {
    let mut tiny = result(
        "acme-tiny",
        "happy-rsa-ov-rsa",
        OutcomeKind::Unusable,
        false,
    );
    tiny.unusable = Some("it has no way to send an External Account Binding".into());
    tiny.outcome.detail = "its newAccount (seq 2) carried no externalAccountBinding; the CA \
                           answered 400 externalAccountRequired"
        .into();
    let line = report::overall_line(std::slice::from_ref(&tiny));
    assert!(
        line.starts_with(
            "UNUSABLE: acme-tiny (acme-tiny 1.0): cannot be used with Sectigo: it has no way to \
             send an External Account Binding; confirmed by happy-rsa-ov-rsa: its newAccount \
             (seq 2) carried no externalAccountBinding"
        ),
        "{line}"
    );
    assert!(line.ends_with("no other scenario was run"), "{line}");
    // Beside other clients the matrix's line is the usual count, and the table says why.
    let mut all = sample();
    all.push(tiny.clone());
    assert!(report::overall_line(&all).starts_with("FAIL: "));
    let md = report::matrix_markdown(&all, &|_| None);
    assert!(md.contains("❌ unusable with Sectigo"), "{md}");
    assert!(
        md.contains(
            "**acme-tiny** cannot be used with Sectigo: it has no way to send an External \
             Account Binding (happy-rsa-ov-rsa: its newAccount (seq 2)"
        ),
        "{md}"
    );
    // The reason survives the JSON report `matrix merge` reads.
    let back: ScenarioResult =
        serde_json::from_str(&serde_json::to_string(&tiny).unwrap()).unwrap();
    assert_eq!(back, tiny);
    // Usable clients' JSON has no such field.
    let json = serde_json::to_string(&sample()[0]).unwrap();
    assert!(!json.contains("unusable"), "{json}");
}
