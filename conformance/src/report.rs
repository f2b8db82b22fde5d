//! Grading a transcript against the catalogue, and the report writers: Markdown for people,
//! JSON for tools, JUnit XML (one test case per rule) for CI.

use std::fmt::Write as _;

use acme_proto::transcript::Exchange;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Serialize;

use crate::rules::{Finding, Rule, Severity, Verdict, catalogue};
use crate::view::{Transcript, describe};

/// How many findings of one rule the Markdown report shows in full.
const SHOWN_FINDINGS: usize = 5;

/// One rule's result.
#[derive(Clone, Debug, Serialize)]
pub struct RuleResult {
    /// The rule id.
    pub id: &'static str,
    /// Its statement.
    pub statement: &'static str,
    /// Its source.
    pub source: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// `pass`, `fail` or `not-applicable`.
    pub verdict: &'static str,
    /// How to fix a client that breaks it (in the Markdown report; the JSON report links the
    /// rule's documentation instead).
    #[serde(skip)]
    pub fix: &'static str,
    /// What broke it (empty unless failed).
    pub findings: Vec<Finding>,
}

/// The grade of one transcript.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where the transcript came from (a file name).
    pub source: String,
    /// How many exchanges were graded.
    pub exchanges: usize,
    /// One result per rule, in catalogue order.
    pub rules: Vec<RuleResult>,
    /// The offending exchanges, by seq, for the writers to show.
    #[serde(skip)]
    offending: Vec<Exchange>,
}

/// Grades a transcript against every rule.
pub fn grade(source: impl Into<String>, exchanges: Vec<Exchange>) -> Report {
    let transcript = Transcript::new(exchanges);
    grade_with(source, &transcript, catalogue())
}

/// Grades a prepared transcript against the given rules.
pub fn grade_with(source: impl Into<String>, transcript: &Transcript, rules: &[Rule]) -> Report {
    let mut results = Vec::new();
    let mut offending = Vec::new();
    for rule in rules {
        let verdict = rule.check(transcript);
        let findings = match &verdict {
            Verdict::Fail(f) => f.clone(),
            _ => Vec::new(),
        };
        for f in &findings {
            if let Some(e) = transcript.get(f.seq)
                && !offending.iter().any(|o: &Exchange| o.seq == e.seq)
            {
                offending.push(e.clone());
            }
        }
        results.push(RuleResult {
            id: rule.id,
            statement: rule.statement,
            source: rule.source,
            severity: rule.severity,
            verdict: verdict.label(),
            fix: rule.fix,
            findings,
        });
    }
    Report {
        source: source.into(),
        exchanges: transcript.exchanges.len(),
        rules: results,
        offending,
    }
}

impl Report {
    /// The results that failed.
    pub fn failed(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| r.verdict == "fail")
    }

    /// Whether a MUST rule failed: the grade's exit status.
    pub fn must_failed(&self) -> bool {
        self.failed().any(|r| r.severity == Severity::Must)
    }

    fn count(&self, verdict: &str) -> usize {
        self.rules.iter().filter(|r| r.verdict == verdict).count()
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let must = self
            .failed()
            .filter(|r| r.severity == Severity::Must)
            .count();
        format!(
            "{}: {} exchanges, {} rules: {} passed, {} failed ({must} MUST), {} not applicable",
            self.source,
            self.exchanges,
            self.rules.len(),
            self.count("pass"),
            self.count("fail"),
            self.count("not-applicable"),
        )
    }

    /// The Markdown report: a summary line, then each failed rule with its offending
    /// exchanges, then the list of the rest.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# ACME conformance report\n\n**{}**\n", self.summary());
        for r in self.failed() {
            let _ = write!(
                out,
                "\n## FAIL `{}` ({})\n\n{}\n\nHow to fix: {}\n\nSource: {}. See docs/rules.md#{}.\n",
                r.id,
                r.severity.label(),
                r.statement,
                r.fix,
                r.source,
                r.id
            );
            for f in r.findings.iter().take(SHOWN_FINDINGS) {
                let _ = write!(out, "\n- {}", f.message);
                if !f.related.is_empty() {
                    let related: Vec<String> = f.related.iter().map(|s| format!("#{s}")).collect();
                    let _ = write!(out, " (see {})", related.join(", "));
                }
                out.push('\n');
                if let Some(e) = self.offending.iter().find(|e| e.seq == f.seq) {
                    let _ = write!(
                        out,
                        "\n  {}\n\n  ```json\n{}\n  ```\n",
                        describe(e),
                        indent(
                            &serde_json::to_string_pretty(e)
                                .unwrap_or_else(|e| format!("(cannot show the exchange: {e})")),
                            "  "
                        )
                    );
                }
            }
            if r.findings.len() > SHOWN_FINDINGS {
                let _ = writeln!(
                    out,
                    "\n- ... and {} more (see the JSON report)",
                    r.findings.len() - SHOWN_FINDINGS
                );
            }
        }
        out.push_str("\n## All rules\n\n| rule | severity | verdict |\n| --- | --- | --- |\n");
        for r in &self.rules {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                r.id,
                r.severity.label(),
                r.verdict
            );
        }
        out
    }

    /// The JSON report.
    ///
    /// # Errors
    /// When the report cannot be serialized (a finding holding a value JSON cannot express):
    /// an error, never an empty report.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// JUnit XML: one test suite, one test case per rule; failures carry the findings,
    /// not-applicable rules are skipped.
    pub fn to_junit(&self) -> String {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let tests = self.rules.len().to_string();
        let failures = self.count("fail").to_string();
        let skipped = self.count("not-applicable").to_string();
        // Writing into a Vec cannot fail; the results are ignored deliberately.
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        let mut suites = BytesStart::new("testsuites");
        suites.push_attribute(("name", "acme-conformance"));
        suites.push_attribute(("tests", tests.as_str()));
        suites.push_attribute(("failures", failures.as_str()));
        let _ = w.write_event(Event::Start(suites));
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", self.source.as_str()));
        suite.push_attribute(("tests", tests.as_str()));
        suite.push_attribute(("failures", failures.as_str()));
        suite.push_attribute(("errors", "0"));
        suite.push_attribute(("skipped", skipped.as_str()));
        let _ = w.write_event(Event::Start(suite));
        for r in &self.rules {
            let mut case = BytesStart::new("testcase");
            let class = format!("conformance.{}", r.severity.label());
            case.push_attribute(("name", r.id));
            case.push_attribute(("classname", class.as_str()));
            match r.verdict {
                "pass" => {
                    let _ = w.write_event(Event::Empty(case));
                    continue;
                }
                _ => {
                    let _ = w.write_event(Event::Start(case));
                }
            }
            if r.verdict == "fail" {
                let mut failure = BytesStart::new("failure");
                let message = r
                    .findings
                    .first()
                    .map_or_else(|| r.statement.to_owned(), |f| f.message.clone());
                failure.push_attribute(("message", message.as_str()));
                failure.push_attribute(("type", r.severity.label()));
                let _ = w.write_event(Event::Start(failure));
                let mut text = format!("{}\nSource: {}\n", r.statement, r.source);
                for f in &r.findings {
                    let e = self.offending.iter().find(|e| e.seq == f.seq);
                    let _ = writeln!(
                        text,
                        "{}: {}",
                        e.map_or_else(|| format!("#{}", f.seq), describe),
                        f.message
                    );
                }
                let _ = w.write_event(Event::Text(BytesText::new(&text)));
                let _ = w.write_event(Event::End(BytesEnd::new("failure")));
            } else {
                let mut skip = BytesStart::new("skipped");
                skip.push_attribute((
                    "message",
                    "not applicable: nothing in the transcript exercises this rule",
                ));
                let _ = w.write_event(Event::Empty(skip));
            }
            let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
        }
        let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
        let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
        let mut xml = String::from_utf8(w.into_inner()).unwrap_or_default();
        xml.push('\n');
        xml
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
