//! The exploration's report: the findings with their minimal plans (also written as plan
//! files), the summary printed at the end, JSON, JUnit XML, a self-contained HTML page, and
//! the expectations file CI compares findings against.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::case::Case;
use super::property::{self, Evidence, Severity, Violation};
use crate::Error;
use crate::report::xml_escape;
use crate::run::ScenarioResult;

/// Format version of the JSON report.
pub const FORMAT: u32 = 1;

/// One distinct finding: a property and the minimal plan that breaks it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// 1, 2, ... in order of discovery.
    pub id: usize,
    /// The property broken ([`Violation::property`]).
    pub property: String,
    /// Failure or fragile.
    pub severity: Severity,
    /// What the minimal case showed, one line.
    pub detail: String,
    /// The generated case that first broke it (0: the baseline, with no faults).
    pub first_case: usize,
    /// Generated cases that broke it with a plan holding the minimal plan.
    pub hits: usize,
    /// Those cases.
    pub cases: Vec<usize>,
    /// The case as first found.
    pub original: Case,
    /// The smallest case found that still breaks it.
    pub minimal: Case,
    /// One line of the minimal case ([`Case::signature`]).
    pub signature: String,
    /// The minimal plan as a fault plan file (TOML).
    pub plan: String,
    /// Where that file was written.
    pub plan_file: String,
    /// Commands that replay it.
    pub replay: Vec<String>,
    /// Evidence from the minimal case's run.
    pub evidence: Evidence,
    /// Client runs the shrink took.
    pub shrink_runs: usize,
    /// Whether shrinking ran to its end (not stopped by --max-time or its run limit).
    pub shrink_complete: bool,
    /// Shrunk into another finding's minimal plan: reported as that one.
    #[serde(skip)]
    pub(crate) merged: bool,
}

impl Finding {
    pub(crate) fn new(
        id: usize,
        case_no: usize,
        v: &Violation,
        case: &Case,
        result: &ScenarioResult,
    ) -> Self {
        Self {
            id,
            property: v.property.clone(),
            severity: v.severity,
            detail: v.detail.clone(),
            first_case: case_no,
            hits: 1,
            cases: vec![case_no],
            original: case.clone(),
            minimal: case.clone(),
            signature: String::new(),
            plan: String::new(),
            plan_file: String::new(),
            replay: Vec::new(),
            evidence: property::evidence(result),
            shrink_runs: 0,
            shrink_complete: case.rules.is_empty(),
            merged: false,
        }
    }
}

/// A `vet --explore` run, as written to `--json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExploreReport {
    /// [`FORMAT`].
    pub format: u32,
    /// acme-harness version.
    pub harness_version: String,
    /// Adapter name.
    pub client: String,
    /// Version line, if detected.
    pub client_version: Option<String>,
    /// The seed: `--seed` generates the same cases again.
    pub seed: u64,
    /// `--cases`.
    pub cases_planned: usize,
    /// Cases run, the baseline included.
    pub cases_run: usize,
    /// Cases not run (the time bound came first).
    pub cases_not_run: usize,
    /// Failing cases not yet matched to a finding when the run stopped.
    pub unmatched: usize,
    /// Client runs spent shrinking.
    pub shrink_runs: usize,
    /// `--jobs`.
    pub jobs: usize,
    /// `--max-time`, seconds.
    pub max_time: u64,
    /// Wall time.
    pub seconds: f64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// Cases the harness could not run.
    pub errors: Vec<String>,
    /// The distinct findings, failures first.
    pub findings: Vec<Finding>,
    /// Where the cases' directories and plan files are.
    pub dir: String,
}

impl ExploreReport {
    /// Whether cases ran, no finding is a failure (fragile findings do not fail the run) and
    /// the harness ran every case it started.
    pub fn passed(&self) -> bool {
        self.cases_run > 0 && self.errors.is_empty() && self.failures().next().is_none()
    }

    /// The findings that are failures.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Failure)
    }
}

pub(crate) struct Parts {
    pub(crate) client: String,
    pub(crate) client_version: Option<String>,
    pub(crate) seed: u64,
    pub(crate) cases_planned: usize,
    pub(crate) cases_run: usize,
    pub(crate) cases_not_run: usize,
    pub(crate) unmatched: usize,
    pub(crate) shrink_runs: usize,
    pub(crate) jobs: usize,
    pub(crate) max_time: u64,
    pub(crate) seconds: f64,
    pub(crate) stopped: Option<String>,
    pub(crate) errors: Vec<String>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) client_spec: String,
    pub(crate) base_dir: PathBuf,
}

fn directory_of(base: &str) -> &'static str {
    if base.contains("ecc-ov") {
        "/v2/InCommonECCOV"
    } else {
        "/v2/InCommonRSAOV"
    }
}

/// Fills in each finding's signature, plan file (written under `base_dir/findings/`) and
/// replay commands.
pub(crate) fn build(p: Parts) -> Result<ExploreReport, Error> {
    let dir = p.base_dir.join("findings");
    let mut findings: Vec<Finding> = p.findings.into_iter().filter(|f| !f.merged).collect();
    // A finding whose minimal plan holds a smaller finding's plan (same property) is that
    // finding: two shrinks that stopped at different places.
    findings.sort_by_key(|f| f.minimal.rules.len());
    let mut kept: Vec<Finding> = Vec::new();
    for f in findings {
        match kept
            .iter_mut()
            .find(|k| k.property == f.property && k.minimal.inside(&f.minimal))
        {
            Some(k) => {
                k.hits += f.hits;
                k.cases.extend(f.cases);
                k.cases.sort_unstable();
            }
            None => kept.push(f),
        }
    }
    let mut findings = kept;
    findings.sort_by_key(|f| (f.severity, f.id));
    for (i, f) in findings.iter_mut().enumerate() {
        f.id = i + 1;
    }
    if !findings.is_empty() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    for f in &mut findings {
        f.signature = f.minimal.signature();
        let name = format!("{:02}-{}.toml", f.id, f.property.replace(':', "-"));
        let path = dir.join(&name);
        let shown = path.display().to_string();
        // `vet -- TEMPLATE` takes the template last; `--client NAME` anywhere.
        let vet = match p.client_spec.strip_prefix("-- ") {
            Some(template) => format!(
                "acme-harness vet --scenario {} --faults {shown} --seed {} -- {template}",
                f.minimal.base, p.seed
            ),
            None => format!(
                "acme-harness vet {} --scenario {} --faults {shown} --seed {}",
                p.client_spec, f.minimal.base, p.seed
            ),
        };
        let serve = format!(
            "acme-harness serve --faults {shown} --seed {}   # then run the client against {}",
            p.seed,
            directory_of(&f.minimal.base)
        );
        f.replay = vec![vet, serve];
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# acme-harness vet --explore: {} ({:?}) for {}, seed {}",
            f.property, f.severity, p.client, p.seed
        );
        let _ = writeln!(text, "# minimal case: {}", f.signature);
        let _ = writeln!(text, "# {}", one_line(&f.detail));
        let _ = writeln!(text, "# replay: {}", f.replay[0]);
        let _ = writeln!(text, "#     or: {}", f.replay[1]);
        text.push_str(&f.minimal.plan(p.seed).to_toml());
        std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))?;
        f.plan = text;
        f.plan_file = shown;
    }
    Ok(ExploreReport {
        format: FORMAT,
        harness_version: env!("CARGO_PKG_VERSION").into(),
        client: p.client,
        client_version: p.client_version,
        seed: p.seed,
        cases_planned: p.cases_planned,
        cases_run: p.cases_run,
        cases_not_run: p.cases_not_run,
        unmatched: p.unmatched,
        shrink_runs: p.shrink_runs,
        jobs: p.jobs,
        max_time: p.max_time,
        seconds: p.seconds,
        stopped: p.stopped,
        errors: p.errors,
        findings,
        dir: p.base_dir.display().to_string(),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Failure => "FAILURE",
        Severity::Fragile => "fragile",
    }
}

/// The summary printed at the end: one block per finding with its minimal plan, evidence and
/// replay commands, then the verdict line.
pub fn summary(r: &ExploreReport) -> String {
    let mut out = String::new();
    for f in &r.findings {
        let _ = writeln!(
            out,
            "{} #{} {}: {}",
            severity_word(f.severity),
            f.id,
            f.property,
            f.signature
        );
        let _ = writeln!(out, "  {}", one_line(&f.detail));
        let _ = writeln!(
            out,
            "  hit by {} case(s): {}; shrunk in {} run(s){}",
            f.hits,
            f.cases
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            f.shrink_runs,
            if f.shrink_complete {
                ""
            } else {
                " (stopped early: smallest plan found so far)"
            }
        );
        let exits = if f.evidence.exits.is_empty() {
            "none".to_owned()
        } else {
            f.evidence.exits.join(", ")
        };
        let _ = writeln!(out, "  exit: {exits}; {}", one_line(&f.evidence.outcome));
        for e in f.evidence.exchanges.iter().rev().take(4).rev() {
            let _ = writeln!(out, "  transcript {e}");
        }
        for l in f.evidence.output.iter().rev().take(3).rev() {
            let _ = writeln!(out, "  output | {l}");
        }
        let _ = writeln!(out, "  plan: {}", f.plan_file);
        for line in f
            .plan
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "  replay: {}", f.replay[0]);
        let _ = writeln!(out, "          {}", f.replay[1]);
        out.push('\n');
    }
    for e in &r.errors {
        let _ = writeln!(out, "harness error: {e}");
    }
    let _ = writeln!(out, "{}", overall_line(r));
    out
}

/// `PASS`/`FAIL: CLIENT: N cases, ...`.
pub fn overall_line(r: &ExploreReport) -> String {
    let failures = r.failures().count();
    let fragile = r.findings.len() - failures;
    let mut line = format!(
        "{}: {}{}: {} case(s) run (seed {}) and {} shrink run(s) in {:.0} s: {failures} failure(s), {fragile} fragile finding(s)",
        if r.passed() { "PASS" } else { "FAIL" },
        r.client,
        r.client_version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        r.cases_run,
        r.seed,
        r.shrink_runs,
        r.seconds
    );
    if let Some(why) = &r.stopped {
        let _ = write!(
            line,
            "; stopped early ({why}), {} case(s) not run",
            r.cases_not_run
        );
    }
    if r.unmatched > 0 {
        let _ = write!(line, "; {} failing case(s) not yet shrunk", r.unmatched);
    }
    line
}

/// JUnit XML: one test case per property broken (a finding) and one passing case per run
/// that found nothing.
pub fn junit(r: &ExploreReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = r.failures().count() + r.errors.len();
    let tests = r.findings.len().max(1) + r.errors.len();
    let _ = writeln!(
        out,
        "<testsuites name=\"acme-harness vet --explore\" tests=\"{tests}\" failures=\"{failures}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.1}\">",
        xml_escape(&r.client),
        r.seconds
    );
    let class = format!("explore.{}", xml_escape(&r.client));
    if r.findings.is_empty() {
        let _ = writeln!(
            out,
            "    <testcase classname=\"{class}\" name=\"{} cases, no finding\"/>",
            r.cases_run
        );
    }
    for f in &r.findings {
        let name = xml_escape(&format!("{} #{}: {}", f.property, f.id, f.signature));
        let text = xml_escape(&format!(
            "{}\nplan: {}\n{}\nreplay: {}\n{}",
            f.detail,
            f.plan_file,
            f.plan,
            f.replay.join("\n"),
            f.evidence.exchanges.join("\n")
        ));
        match f.severity {
            Severity::Failure => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{class}\" name=\"{name}\">\n      <failure message=\"{}\">{text}</failure>\n    </testcase>",
                    xml_escape(&one_line(&f.detail))
                );
            }
            Severity::Fragile => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{class}\" name=\"{name}\">\n      <system-out>fragile: {text}</system-out>\n    </testcase>"
                );
            }
        }
    }
    for e in &r.errors {
        let _ = writeln!(
            out,
            "    <testcase classname=\"{class}\" name=\"harness error\">\n      <error message=\"{}\"/>\n    </testcase>",
            xml_escape(e)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// A self-contained HTML page (inline CSS, no scripts, nothing fetched).
pub fn html(r: &ExploreReport) -> String {
    let e = |s: &str| xml_escape(s);
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>acme-harness vet --explore</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
         section{border:1px solid #ccc;padding:.5em 1em;margin:1em 0}\
         .failure{background:#fce8e6}.fragile{background:#fff4d6}\
         pre{background:#f6f6f6;padding:.5em;overflow-x:auto}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>acme-harness vet --explore</h1>");
    let _ = writeln!(
        out,
        "<p><strong>{}</strong></p><p>files in <code>{}</code> &middot; acme-harness {}</p>",
        e(&overall_line(r)),
        e(&r.dir),
        e(&r.harness_version)
    );
    if r.findings.is_empty() {
        out.push_str("<p>No property was broken.</p>\n");
    }
    for f in &r.findings {
        let class = match f.severity {
            Severity::Failure => "failure",
            Severity::Fragile => "fragile",
        };
        let _ = writeln!(
            out,
            "<section class=\"{class}\"><h2>{} #{}: <code>{}</code></h2>\
             <p>{}</p><p>minimal case: <code>{}</code> (first case {}, hit by {} case(s); shrunk in {} run(s){})</p>\
             <h3>Plan (<code>{}</code>)</h3><pre>{}</pre>\
             <h3>Replay</h3><pre>{}</pre>\
             <h3>Evidence</h3><p>exit {}: {}</p><pre>{}</pre><pre>{}</pre><p><code>{}</code></p></section>",
            severity_word(f.severity),
            f.id,
            e(&f.property),
            e(&f.detail),
            e(&f.signature),
            f.first_case,
            f.hits,
            f.shrink_runs,
            if f.shrink_complete {
                ""
            } else {
                ", stopped early"
            },
            e(&f.plan_file),
            e(&f.plan),
            e(&f.replay.join("\n")),
            e(&f.evidence.exits.join(", ")),
            e(&f.evidence.outcome),
            e(&f.evidence.exchanges.join("\n")),
            e(&f.evidence.output.join("\n")),
            e(&f.evidence.dir)
        );
    }
    for err in &r.errors {
        let _ = writeln!(out, "<p>harness error: {}</p>", e(err));
    }
    out.push_str("</body></html>\n");
    out
}

/// One expected finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Adapter name.
    pub client: String,
    /// The property.
    pub property: String,
    /// The minimal case's signature.
    pub signature: String,
    /// Why (free text).
    pub reason: String,
    /// Written `?PROPERTY`: it may be found or not (it depends on the client's timing).
    pub optional: bool,
}

impl Expected {
    fn matches(&self, f: &Finding) -> bool {
        self.property == f.property && (self.signature == "*" || self.signature == f.signature)
    }
}

/// Recorded findings per client (`ci/explore-expectations.tsv`): `client<TAB>property<TAB>
/// minimal case signature<TAB>reason`, `#` comments. The signature `*` matches any minimal
/// plan (for a finding whose shrink depends on the client's timing); a property written
/// `?PROPERTY` may be found or not. A client with no line is
/// expected to have no finding; `client<TAB>none<TAB>-<TAB>reason` says so explicitly.
#[derive(Clone, Debug, Default)]
pub struct ExploreExpectations {
    lines: Vec<Expected>,
}

impl ExploreExpectations {
    /// Parses the file's text; errors name `origin` and the line.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 4 {
                return Err(Error::Invalid(format!(
                    "{origin}:{}: expected 4 tab-separated columns (client, property, minimal case, reason), got {}",
                    i + 1,
                    cols.len()
                )));
            }
            if cols[1] == "none" {
                continue;
            }
            let optional = cols[1].starts_with('?');
            lines.push(Expected {
                client: cols[0].to_owned(),
                optional,
                property: cols[1].trim_start_matches('?').to_owned(),
                signature: cols[2].to_owned(),
                reason: cols[3].to_owned(),
            });
        }
        Ok(Self { lines })
    }

    /// What differs between `report`'s findings and the expected ones for its client: a
    /// finding not expected, an expected finding not found. Empty: as expected.
    pub fn unexpected(&self, report: &ExploreReport) -> Vec<String> {
        let mine: Vec<&Expected> = self
            .lines
            .iter()
            .filter(|e| e.client == report.client)
            .collect();
        let mut out = Vec::new();
        for f in &report.findings {
            if !mine.iter().any(|e| e.matches(f)) {
                out.push(format!(
                    "new finding: {}\t{}\t{}\t(not in the expectations: {})",
                    report.client,
                    f.property,
                    f.signature,
                    one_line(&f.detail)
                ));
            }
        }
        for e in mine {
            if !e.optional && !report.findings.iter().any(|f| e.matches(f)) {
                out.push(format!(
                    "expected but not found: {}\t{}\t{} ({})",
                    e.client, e.property, e.signature, e.reason
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn finding(property: &str, base: &str) -> Finding {
        let case = Case {
            base: base.into(),
            rules: Vec::new(),
        };
        let mut f = Finding {
            id: 1,
            property: property.into(),
            severity: Severity::Failure,
            detail: "d".into(),
            first_case: 0,
            hits: 1,
            cases: vec![0],
            original: case.clone(),
            minimal: case,
            signature: String::new(),
            plan: String::new(),
            plan_file: String::new(),
            replay: Vec::new(),
            evidence: Evidence::default(),
            shrink_runs: 0,
            shrink_complete: true,
            merged: false,
        };
        f.signature = f.minimal.signature();
        f
    }

    fn report(findings: Vec<Finding>) -> ExploreReport {
        ExploreReport {
            format: FORMAT,
            harness_version: String::new(),
            client: "certbot".into(),
            client_version: None,
            seed: 1,
            cases_planned: 1,
            cases_run: 2,
            cases_not_run: 0,
            unmatched: 0,
            shrink_runs: 0,
            jobs: 1,
            max_time: 1,
            seconds: 1.0,
            stopped: None,
            errors: Vec::new(),
            findings,
            dir: String::new(),
        }
    }

    #[test]
    fn expectations_name_new_and_missing_findings() {
        let text = "# c\ncertbot\tcrash\thappy-rsa-ov-rsa: no faults\tknown\n\
                    certbot\tgave-up\t*\ttiming\nlego\tnone\t-\tclean\n\
                    certbot\t?rule:x\t*\tsometimes\n";
        let e = ExploreExpectations::parse(text, "x.tsv").unwrap();
        let both = report(vec![
            finding("crash", "happy-rsa-ov-rsa"),
            finding("gave-up", "renewal"),
        ]);
        assert!(e.unexpected(&both).is_empty(), "{:?}", e.unexpected(&both));
        let sometimes = report(vec![
            finding("crash", "happy-rsa-ov-rsa"),
            finding("gave-up", "renewal"),
            finding("rule:x", "renewal"),
        ]);
        assert!(e.unexpected(&sometimes).is_empty());
        let changed = report(vec![finding("crash", "renewal")]);
        let diff = e.unexpected(&changed);
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert!(diff[0].starts_with("new finding: certbot\tcrash\trenewal: no faults"));
        assert!(diff[1].starts_with("expected but not found: certbot\tcrash"));
        assert!(diff[2].starts_with("expected but not found: certbot\tgave-up\t*"));
        let err = ExploreExpectations::parse("certbot\tcrash\n", "x.tsv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.tsv:1"), "{err}");
    }
}
