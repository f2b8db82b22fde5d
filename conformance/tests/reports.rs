//! The report writers, snapshotted: Markdown, JSON and JUnit XML (one test case per rule).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use conformance::grade;
use quick_xml::Reader;
use quick_xml::events::Event;

fn graded(rel: &str) -> conformance::Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/transcripts")
        .join(rel);
    grade(rel, conformance::read_transcript(&path).unwrap())
}

#[test]
fn markdown_report_shows_summary_then_failed_rules_with_their_exchanges() {
    let report = graded("bad/retry-after-honoured.jsonl");
    let md = report.to_markdown();
    assert!(md.lines().nth(2).unwrap().contains("1 failed"), "{md}");
    assert!(!report.must_failed());
    insta::assert_snapshot!("markdown-retry-after", md);

    let report = graded("bad/cert-key-not-account-key.jsonl");
    assert!(report.must_failed());
    insta::assert_snapshot!("markdown-cert-key", report.to_markdown());

    let good = graded("good/sectigo-processing.jsonl");
    assert_eq!(good.failed().count(), 0);
    insta::assert_snapshot!("markdown-good", good.to_markdown());
}

#[test]
fn json_report_lists_every_rule_with_verdict_and_findings() {
    let report = graded("bad/post-as-get.jsonl");
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(
        json["rules"].as_array().unwrap().len(),
        conformance::catalogue().len()
    );
    insta::assert_snapshot!("json-post-as-get", report.to_json().unwrap());
}

#[test]
fn junit_has_one_testcase_per_rule_and_parses() {
    let report = graded("bad/no-4xx-hammering.jsonl");
    let xml = report.to_junit();
    let mut reader = Reader::from_str(&xml);
    let (mut cases, mut failures, mut skipped) = (0, 0, 0);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                b"skipped" => skipped += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(cases, conformance::catalogue().len());
    assert_eq!(failures, 1);
    assert_eq!(
        skipped,
        report
            .rules
            .iter()
            .filter(|r| r.verdict == "not-applicable")
            .count()
    );
    insta::assert_snapshot!("junit-no-4xx-hammering", xml);
}
