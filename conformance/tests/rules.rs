//! Every rule pinned both ways by the synthetic transcripts in fixtures/transcripts/: each rule
//! passes (applicable, not vacuously) on a known-good transcript and fails on its known-bad one,
//! and a known-bad transcript breaks exactly the rule it is named after.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use conformance::rules::{Verdict, catalogue};
use conformance::view::Transcript;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn load(path: &Path) -> Transcript {
    Transcript::new(conformance::read_transcript(path).unwrap())
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The rule a bad fixture is named after: the longest rule id its name starts with.
fn rule_of(name: &str) -> &'static str {
    catalogue()
        .iter()
        .map(|r| r.id)
        .filter(|id| name == *id || name.starts_with(&format!("{id}-")))
        .max_by_key(|id| id.len())
        .unwrap_or_else(|| panic!("bad fixture {name} is not named after a rule"))
}

#[test]
fn good_transcripts_break_no_rule_and_every_rule_passes_somewhere() {
    let goods: Vec<(String, Transcript)> = fixtures("good")
        .iter()
        .map(|p| (stem(p), load(p)))
        .collect();
    for rule in catalogue() {
        let mut passed = false;
        for (name, t) in &goods {
            match rule.check(t) {
                Verdict::Fail(f) => panic!("{} fails on good/{name}: {f:#?}", rule.id),
                Verdict::Pass => passed = true,
                Verdict::NotApplicable => {}
            }
        }
        assert!(
            passed,
            "{} is not exercised by any good transcript",
            rule.id
        );
    }
}

#[test]
fn each_bad_transcript_breaks_exactly_its_rule() {
    let mut covered = BTreeSet::new();
    for path in fixtures("bad") {
        let name = stem(&path);
        let id = rule_of(&name);
        covered.insert(id);
        let t = load(&path);
        let failing: Vec<&str> = catalogue()
            .iter()
            .filter(|r| matches!(r.check(&t), Verdict::Fail(_)))
            .map(|r| r.id)
            .collect();
        assert_eq!(failing, vec![id], "bad/{name}.jsonl");
        let Verdict::Fail(findings) = conformance::rules::rule(id).unwrap().check(&t) else {
            unreachable!()
        };
        insta::assert_json_snapshot!(format!("finding-{name}"), findings);
    }
    let all: BTreeSet<&str> = catalogue().iter().map(|r| r.id).collect();
    assert_eq!(covered, all, "every rule needs a known-bad transcript");
}

#[test]
fn rule_ids_are_unique_kebab_case_and_documented() {
    let mut seen = BTreeSet::new();
    for r in catalogue() {
        assert!(seen.insert(r.id), "duplicate id {}", r.id);
        assert!(
            r.id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}",
            r.id
        );
        for (what, text) in [
            ("statement", r.statement),
            ("source", r.source),
            ("explanation", r.explanation),
            ("fix", r.fix),
        ] {
            assert!(!text.trim().is_empty(), "{} has no {what}", r.id);
        }
    }
}

/// Retry-After on a resource in a final state asks for no wait (Sectigo's `Retry-After: 300`
/// on a valid, pre-validated authorization); on a pending one it does.
#[test]
fn retry_after_on_a_final_resource_asks_for_no_wait() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts/good/sectigo-processing.jsonl");
    let rule = conformance::rules::rule("retry-after-honoured").unwrap();
    let with_status = |status: &str| {
        let mut exchanges = conformance::read_transcript(&path).unwrap();
        let authz = exchanges
            .iter_mut()
            .find(|e| e.url.contains("/authz/") && e.response_headers.contains_key("retry-after"))
            .expect("the fixture has Sectigo's authz with Retry-After");
        authz.response_body = Some(serde_json::json!({ "status": status }));
        // The client reads it again 10 ms later.
        let mut reread = authz.clone();
        reread.seq = 1000;
        reread.elapsed_ms += 10;
        exchanges.push(reread);
        Transcript::new(exchanges)
    };
    for status in ["valid", "invalid", "deactivated"] {
        assert_eq!(rule.check(&with_status(status)), Verdict::Pass, "{status}");
    }
    assert!(
        matches!(rule.check(&with_status("pending")), Verdict::Fail(f) if f[0].seq == 1000),
        "a pending authorization's Retry-After must be honoured"
    );
}

/// A nonce sent in a request a proxy refused (an HTML page without Replay-Nonce) was not
/// spent: sending the same request again is no reuse. After the CA's own problem document it
/// was spent, and the resend is.
#[test]
fn a_resend_after_a_proxy_page_is_no_nonce_reuse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts/good/sectigo-processing.jsonl");
    let rule = conformance::rules::rule("nonce-not-reused").unwrap();
    let with_first_answer = |proxy: bool| {
        let mut exchanges = conformance::read_transcript(&path).unwrap();
        // Room for one exchange between any two.
        for e in &mut exchanges {
            e.seq *= 10;
        }
        let order = exchanges
            .iter_mut()
            .find(|e| e.url.ends_with("/newOrder") && e.status == 201)
            .expect("the fixture orders");
        let mut refused = order.clone();
        refused.seq = order.seq - 5;
        refused.status = if proxy { 429 } else { 500 };
        refused.response_body = None;
        if proxy {
            refused.problem = None;
            refused.response_headers.remove("replay-nonce");
            refused.nonce_returned = None;
        } else {
            refused.problem = Some(acme_proto::transcript::ProblemRecord {
                kind: "urn:ietf:params:acme:error:serverInternal".into(),
                detail: None,
            });
        }
        // The refused request comes first; the successful one resends it verbatim.
        refused.elapsed_ms = order.elapsed_ms.saturating_sub(5);
        exchanges.push(refused);
        Transcript::new(exchanges)
    };
    assert_eq!(rule.check(&with_first_answer(true)), Verdict::Pass);
    assert!(
        matches!(rule.check(&with_first_answer(false)), Verdict::Fail(f) if f.len() == 1),
        "a resend after the CA's own refusal reuses the nonce"
    );
}

/// Stopping after reading the authorizations is wrong only when they were all already valid
/// (Sectigo's delegated names); an authorization that still asks for a challenge the client
/// cannot answer (persistent DCV wanting dns-01) is a reason to stop.
#[test]
fn stopping_at_an_authorization_that_needs_a_challenge_is_allowed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts/bad/prevalidated-authz-handled.jsonl");
    let rule = conformance::rules::rule("prevalidated-authz-handled").unwrap();
    let with_authz = |body: serde_json::Value| {
        let mut exchanges = conformance::read_transcript(&path).unwrap();
        let authz = exchanges
            .iter_mut()
            .find(|e| e.url.contains("/authz/"))
            .expect("the fixture reads an authorization");
        authz.response_body = Some(body);
        Transcript::new(exchanges)
    };
    let pending = serde_json::json!({"status": "pending", "challenges": [{"type": "dns-01"}]});
    assert_eq!(rule.check(&with_authz(pending)), Verdict::NotApplicable);
    let valid =
        serde_json::json!({"status": "valid", "challenges": [{"type": "sectigo-email-01"}]});
    assert!(matches!(rule.check(&with_authz(valid)), Verdict::Fail(_)));
}

/// A client may stop while an order is processing when the CA asks for a wait of an hour or
/// more (a resumable exit); under an hour it must wait.
#[test]
fn a_wait_of_an_hour_or_more_allows_a_clean_exit() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts/bad/processing-waited-out.jsonl");
    let rule = conformance::rules::rule("processing-waited-out").unwrap();
    let with_last_retry_after = |seconds: &str| {
        let mut exchanges = conformance::read_transcript(&path).unwrap();
        let last = exchanges.last_mut().expect("the fixture polls the order");
        last.response_headers
            .insert("retry-after".into(), seconds.into());
        Transcript::new(exchanges)
    };
    assert_eq!(rule.check(&with_last_retry_after("86400")), Verdict::Pass);
    assert_eq!(rule.check(&with_last_retry_after("3600")), Verdict::Pass);
    assert!(matches!(
        rule.check(&with_last_retry_after("3599")),
        Verdict::Fail(_)
    ));
}
