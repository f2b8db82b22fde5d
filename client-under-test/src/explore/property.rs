//! The properties every explored case is checked against, and the evidence kept for a case
//! that breaks one.

use std::path::Path;

use acme_proto::transcript::Exchange;
use serde::{Deserialize, Serialize};

use crate::run::{OutcomeKind, ScenarioResult};

use super::case::{Case, all_transient};

/// How bad a broken property is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The client broke: it hung, crashed, claimed success without a certificate, broke a
    /// MUST rule or leaked the canary key.
    Failure,
    /// The client is fragile: it gave up where it could have succeeded, or broke a SHOULD or
    /// Sectigo-needed rule of the judge.
    Fragile,
}

/// One property a case broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `hang`, `crash`, `exit-0-without-certificate`, `bad-certificate`, `secret-leak`,
    /// `must-rule:ID`, `gave-up`, `rule:ID`.
    pub property: String,
    /// Failure or fragile.
    pub severity: Severity,
    /// One line.
    pub detail: String,
}

impl Violation {
    fn new(property: impl Into<String>, severity: Severity, detail: impl Into<String>) -> Self {
        Self {
            property: property.into(),
            severity,
            detail: detail.into(),
        }
    }
}

/// What the report shows of a case that broke a property.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Exit status of each command (`signal`: killed).
    pub exits: Vec<String>,
    /// The outcome check's line.
    pub outcome: String,
    /// The last exchanges of the transcript: `#SEQ METHOD PATH -> STATUS problem`.
    pub exchanges: Vec<String>,
    /// The last lines the client printed (stderr, else stdout).
    pub output: Vec<String>,
    /// The case's directory (work dir, streams, transcript).
    pub dir: String,
    /// Seconds the case took.
    pub seconds: f64,
}

/// Text that only a crash prints: an interpreter's or runtime's trace, a fatal signal.
const CRASH_MARKS: &[&str] = &[
    "Traceback (most recent call last)",
    "An unexpected error occurred",
    "panicked at",
    "goroutine 1 [",
    "panic: ",
    "Segmentation fault",
    "core dumped",
    "Aborted",
    "stack backtrace:",
];

fn read_capped(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(256 * 1024);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The crash a case's output or exit shows, if any.
fn crash(result: &ScenarioResult, out: &str, err: &str) -> Option<String> {
    for text in [err, out] {
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        if let Some(i) = lines
            .iter()
            .position(|l| CRASH_MARKS.iter().any(|m| l.contains(m)))
        {
            // "An unexpected error occurred:" and the like: the error is on the next line.
            let mut line = lines[i].to_owned();
            if line.ends_with(':')
                && let Some(next) = lines[i + 1..].iter().find(|l| !l.is_empty())
            {
                line = format!("{line} {next}");
            }
            return Some(format!("crash trace: {}", cut(&line, 200)));
        }
    }
    // Killed by a signal (directly, or as a shell reports it) without being timed out.
    match result.outcome.exits.last().copied().flatten() {
        None if !result.outcome.exits.is_empty() => Some("killed by a signal".into()),
        Some(c @ (132 | 134 | 135 | 136 | 139)) => {
            Some(format!("exit {c}: killed by signal {}", c - 128))
        }
        _ => None,
    }
}

fn cut(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// The properties `result` (a run of `case`) broke; empty when it passed them all.
pub fn check(case: &Case, result: &ScenarioResult) -> Vec<Violation> {
    use Severity::{Failure, Fragile};
    let dir = Path::new(&result.dir);
    let out = read_capped(&dir.join("stdout.log"));
    let err = read_capped(&dir.join("stderr.log"));
    let mut v = Vec::new();
    let exit_ok = result.outcome.exits.iter().all(|c| *c == Some(0));
    match result.outcome.kind {
        OutcomeKind::Error => {
            v.push(Violation::new(
                "harness-error",
                Failure,
                format!(
                    "the harness could not run the case: {}",
                    result.outcome.detail
                ),
            ));
            return v;
        }
        OutcomeKind::Hung => v.push(Violation::new(
            "hang",
            Failure,
            result.outcome.detail.clone(),
        )),
        OutcomeKind::NoCertificate => v.push(Violation::new(
            "exit-0-without-certificate",
            Failure,
            result.outcome.detail.clone(),
        )),
        OutcomeKind::BadCertificate => v.push(Violation::new(
            "bad-certificate",
            Failure,
            result.outcome.detail.clone(),
        )),
        OutcomeKind::Issued => {}
        OutcomeKind::Refused | OutcomeKind::Failed | OutcomeKind::Accepted if !exit_ok => {
            if let Some(c) = crash(result, &out, &err) {
                v.push(Violation::new("crash", Failure, c));
            } else if all_transient(&case.rules) {
                v.push(Violation::new(
                    "gave-up",
                    Fragile,
                    format!(
                        "gave up although every fault was transient and the waits fit the time limit: {}",
                        result.outcome.detail
                    ),
                ));
            }
        }
        _ => v.push(Violation::new(
            "exit-0-without-certificate",
            Failure,
            result.outcome.detail.clone(),
        )),
    }
    if let Some(g) = &result.grade {
        for f in &g.failed {
            match f.severity.as_str() {
                "MUST" => v.push(Violation::new(
                    format!("must-rule:{}", f.id),
                    Failure,
                    f.first.clone(),
                )),
                "SHOULD" | "Sectigo-needed" => v.push(Violation::new(
                    format!("rule:{}", f.id),
                    Fragile,
                    format!("{} ({}): {}", f.id, f.severity, f.first),
                )),
                _ => {}
            }
        }
    }
    // A client that crashed or hung broke: what it left undone (a badNonce not retried, an
    // order not waited out) follows from that and is not a finding of its own.
    if v.iter()
        .any(|x| x.property == "crash" || x.property == "hang")
    {
        v.retain(|x| x.severity == Failure);
    }
    let leaks: Vec<String> = result
        .secret_failures()
        .map(|f| format!("{}: {}", f.location, f.detail))
        .collect();
    if !leaks.is_empty() {
        v.push(Violation::new("secret-leak", Failure, leaks.join("; ")));
    }
    v
}

/// The evidence of `result`: exits, outcome, the transcript's last exchanges, the client's
/// last lines.
pub fn evidence(result: &ScenarioResult) -> Evidence {
    let dir = Path::new(&result.dir);
    let transcript = std::fs::read_to_string(dir.join("transcript.jsonl")).unwrap_or_default();
    let exchanges: Vec<Exchange> = transcript
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let shown = exchanges.len().saturating_sub(12);
    let exchanges = exchanges[shown..].iter().map(exchange_line).collect();
    let err = read_capped(&dir.join("stderr.log"));
    let out = read_capped(&dir.join("stdout.log"));
    let text = if err.trim().is_empty() { out } else { err };
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| cut(l, 200))
        .collect();
    let output = lines[lines.len().saturating_sub(8)..].to_vec();
    Evidence {
        exits: result
            .outcome
            .exits
            .iter()
            .map(|c| c.map_or("signal".to_owned(), |c| c.to_string()))
            .collect(),
        outcome: result.outcome.detail.clone(),
        exchanges,
        output,
        dir: result.dir.clone(),
        seconds: result.seconds,
    }
}

fn exchange_line(e: &Exchange) -> String {
    let mut line = format!("#{} {} {} -> {}", e.seq, e.method, e.path(), e.status);
    if let Some(p) = &e.problem {
        let t = p.kind.rsplit(':').next().unwrap_or(&p.kind);
        line.push_str(&format!(" {t}"));
    }
    if let Some(ra) = e.response_headers.get("retry-after") {
        line.push_str(&format!(" (Retry-After {ra})"));
    }
    line
}
