//! The one place the judge (the `conformance` crate) is called: a recorded transcript in,
//! the rule failures out.

use acme_proto::transcript::Exchange;
use serde::{Deserialize, Serialize};

/// One failed rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFailure {
    /// The rule id (docs/rules.md).
    pub id: String,
    /// `MUST`, `SHOULD`, `Sectigo-needed` or `hygiene`.
    pub severity: String,
    /// How many exchanges broke it.
    pub count: usize,
    /// The first finding's message.
    pub first: String,
    /// What the rule asks of a client, in one line.
    #[serde(default)]
    pub statement: String,
    /// The `seq` of every exchange that broke it (in the scenario's transcript.jsonl).
    #[serde(default)]
    pub seqs: Vec<u64>,
}

/// The grade of one scenario's transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grade {
    /// Exchanges recorded.
    pub exchanges: usize,
    /// Rules graded.
    pub rules: usize,
    /// The failed rules.
    pub failed: Vec<RuleFailure>,
}

impl Grade {
    /// The grade without the rules in `waived` (broken by a scenario's design, not by the
    /// client's choice).
    pub fn waive(mut self, waived: &[&str]) -> Self {
        self.failed.retain(|f| !waived.contains(&f.id.as_str()));
        self
    }

    /// Whether a MUST rule failed.
    pub fn must_failed(&self) -> bool {
        self.must_failures().next().is_some()
    }

    /// The MUST rules that failed.
    pub fn must_failures(&self) -> impl Iterator<Item = &RuleFailure> {
        self.failed.iter().filter(|f| f.severity == "MUST")
    }
}

/// Grades `exchanges` with every rule of the catalogue; `None` when nothing was recorded.
pub fn grade_transcript(label: &str, exchanges: Vec<Exchange>) -> Option<Grade> {
    if exchanges.is_empty() {
        return None;
    }
    let report = conformance::grade(label, exchanges);
    let failed = report
        .failed()
        .map(|r| RuleFailure {
            id: r.id.to_owned(),
            severity: serde_json::to_value(r.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", r.severity)),
            count: r.findings.len(),
            first: r
                .findings
                .first()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
            statement: r.statement.to_owned(),
            seqs: r.findings.iter().map(|f| f.seq).collect(),
        })
        .collect();
    Some(Grade {
        exchanges: report.exchanges,
        rules: report.rules.len(),
        failed,
    })
}
