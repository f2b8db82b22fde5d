//! Report writers: the progress line, the verdict table with its one-line verdict, JSON,
//! JUnit XML, a self-contained HTML page, and the Markdown matrix.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::assess::{self, Assessment};
use crate::grade::Grade;
use crate::remote::RemoteScope;
use crate::run::{OutcomeKind, ScenarioResult};
use crate::scan::{Level, Place};

/// Format version of the JSON report.
pub const FORMAT: u32 = 1;

/// A vet or matrix run, as written to `--json` (and read back by `matrix merge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`FORMAT`].
    pub format: u32,
    /// acme-harness version.
    pub harness_version: String,
    /// The mock's fault seed (`--seed` replays it).
    pub seed: u64,
    /// The shard this report covers (`K/N`), when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Clients that were not run, with the reason.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
    /// One result per (client, scenario).
    pub results: Vec<ScenarioResult>,
    /// Every (client, scenario) cell of the whole matrix this run was a share of, before
    /// sharding: `matrix merge` names the cells no report has (a shard that failed or was
    /// never merged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<(String, String)>,
    /// Set by `vet --remote`: the client ran on another host, and these checks were not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteScope>,
    /// The four answers per client (filled in when the report is written; recomputed from
    /// the results when read back).
    #[serde(default)]
    pub assessments: Vec<Assessment>,
}

impl RunReport {
    /// A report of `results`.
    pub fn new(seed: u64, results: Vec<ScenarioResult>) -> Self {
        Self {
            format: FORMAT,
            harness_version: env!("CARGO_PKG_VERSION").into(),
            seed,
            shard: None,
            skipped: Vec::new(),
            results,
            planned: Vec::new(),
            remote: None,
            assessments: Vec::new(),
        }
    }

    /// Whether the secret scan saw the client's files and processes (not in a remote vet
    /// without copied files).
    pub fn secrets_seen(&self) -> bool {
        self.remote.as_ref().is_none_or(RemoteScope::scanned)
    }

    /// The four answers per client, from the results.
    pub fn assess(&self) -> Vec<Assessment> {
        assess::assess_all(&self.results, self.secrets_seen())
    }

    /// The report with its assessments filled in, as written to `--json`.
    pub fn with_assessments(&self) -> Self {
        let mut out = self.clone();
        out.assessments = self.assess();
        out
    }

    /// The planned cells that have no result, in plan order.
    pub fn missing(&self) -> Vec<(String, String)> {
        self.planned
            .iter()
            .filter(|(c, s)| {
                !self
                    .results
                    .iter()
                    .any(|r| &r.client == c && &r.scenario == s)
            })
            .cloned()
            .collect()
    }

    /// Whether every result passed.
    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }
}

pub(crate) fn outcome_label(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Issued => "issued",
        OutcomeKind::Refused => "refused cleanly",
        OutcomeKind::NoCertificate => "no certificate",
        OutcomeKind::BadCertificate => "bad certificate",
        OutcomeKind::Failed => "failed",
        OutcomeKind::Crashed => "CRASHED",
        OutcomeKind::Accepted => "accepted (must fail)",
        OutcomeKind::Hung => "HUNG (killed)",
        OutcomeKind::Error => "harness error",
        OutcomeKind::Unusable => "unusable with Sectigo",
    }
}

fn outcome_cell(r: &ScenarioResult) -> String {
    format!(
        "{} {}",
        if r.outcome.ok { "ok" } else { "BAD" },
        outcome_label(r.outcome.kind)
    )
}

fn rules_cell(r: &ScenarioResult) -> String {
    match &r.grade {
        None => "not graded (no requests)".into(),
        Some(g) if g.failed.is_empty() => format!("0/{}", g.rules),
        Some(g) => format!(
            "{}/{}: {}",
            g.failed.len(),
            g.rules,
            g.failed
                .iter()
                .map(|f| format!("{} ({})", f.id, f.severity))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The secrets cell of a remote vet: the scan is local-only, unless files were copied back.
fn secrets_cell_in(r: &ScenarioResult, remote: Option<&RemoteScope>) -> String {
    match remote {
        Some(scope) if !scope.scanned() => "not run (remote)".into(),
        _ => secrets_cell(r),
    }
}

fn secrets_cell(r: &ScenarioResult) -> String {
    let fails = r.secret_failures().count();
    let infos = r.secrets.len() - fails;
    match (fails, infos) {
        (0, 0) => "none".into(),
        (0, i) => format!("0 ({i} info)"),
        (f, 0) => format!("{f} LEAK"),
        (f, i) => format!("{f} LEAK ({i} info)"),
    }
}

/// The line printed when a scenario finishes.
pub fn progress_line(r: &ScenarioResult) -> String {
    format!(
        "{:<5} {} / {}: {}; rules failed: {}; secrets: {} ({:.1} s)",
        r.verdict().to_uppercase(),
        r.client,
        r.scenario,
        outcome_label(r.outcome.kind),
        r.grade.as_ref().map_or(0, |g| g.failed.len()),
        secrets_cell(r),
        r.seconds
    )
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_owned()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// The one-line overall verdict of one client's results.
pub fn overall_line(results: &[ScenarioResult]) -> String {
    overall_line_in(results, None)
}

/// The one-line overall verdict; a remote vet does not claim what it could not see.
fn overall_line_in(results: &[ScenarioResult], remote: Option<&RemoteScope>) -> String {
    let clients: BTreeSet<String> = results
        .iter()
        .map(|r| match &r.client_version {
            Some(v) => format!("{} ({v})", r.client),
            None => r.client.clone(),
        })
        .collect();
    let passed = results.iter().filter(|r| r.passed).count();
    let leaks: BTreeSet<String> = results
        .iter()
        .flat_map(|r| {
            r.secret_failures()
                .filter(|f| f.place != Place::PrivateKey)
                .map(|f| f.location.clone())
        })
        .collect();
    let open_keys = results
        .iter()
        .filter(|r| r.secret_failures().any(|f| f.place == Place::PrivateKey))
        .count();
    let hung = results
        .iter()
        .filter(|r| r.outcome.kind == OutcomeKind::Hung)
        .count();
    // A client that cannot be used with Sectigo: that is the verdict, with the reason and the
    // confirmation, not a count of failed scenarios.
    if results.iter().all(|r| r.unusable.is_some())
        && let Some(r) = results.first()
    {
        let reason = r.unusable.as_deref().unwrap_or_default();
        let confirmed = if r.outcome.kind == OutcomeKind::Unusable {
            format!("confirmed by {}: {}", r.scenario, r.outcome.detail)
        } else {
            format!("NOT confirmed by {}: {}", r.scenario, r.outcome.detail)
        };
        return format!(
            "UNUSABLE: {}: cannot be used with Sectigo: {reason}; {confirmed}; no other scenario was run",
            clients.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let verdict = if passed == results.len() {
        "PASS"
    } else {
        "FAIL"
    };
    let mut line = format!(
        "{verdict}: {}: {passed}/{} scenarios pass",
        clients.into_iter().collect::<Vec<_>>().join(", "),
        results.len()
    );
    if hung > 0 {
        let _ = write!(line, "; {hung} hung");
    }
    if leaks.is_empty() {
        line.push_str(match remote {
            None => "; the EAB HMAC key did not leak",
            Some(scope) if scope.scanned() => {
                "; the EAB HMAC key is in no log copied back (its host itself is not seen)"
            }
            Some(_) => "; the secret scan was not run (remote: see what it cannot see)",
        });
    } else {
        let n = leaks.len();
        let shown: Vec<String> = leaks.into_iter().take(3).collect();
        let _ = write!(
            line,
            "; the EAB HMAC key LEAKED to: {}{}",
            shown.join(", "),
            if n > 3 {
                format!(" and {} more", n - 3)
            } else {
                String::new()
            }
        );
    }
    if open_keys > 0 {
        let _ = write!(
            line,
            "; world-readable private keys in {open_keys} scenario(s)"
        );
    }
    line
}

/// The verdict table (scenario x outcome x rule failures x secret findings), the details of
/// everything that is not clean, and the one-line verdict.
pub fn table(results: &[ScenarioResult]) -> String {
    table_in(results, None)
}

/// The verdict table of a report; for a remote vet, with the section on what it cannot see.
pub fn table_for(report: &RunReport) -> String {
    let remote = report.remote.as_ref();
    let mut out = table_in(&report.results, remote);
    if let Some(scope) = remote {
        out.push_str(&scope.section());
    }
    out
}

fn table_in(results: &[ScenarioResult], remote: Option<&RemoteScope>) -> String {
    let seen = remote.is_none_or(RemoteScope::scanned);
    let mut out = assess::text(&assess::assess_all(results, seen));
    out.push('\n');
    out.push_str(&verdict_table(results, remote));
    out
}

fn verdict_table(results: &[ScenarioResult], remote: Option<&RemoteScope>) -> String {
    let many_clients = results
        .iter()
        .map(|r| &r.client)
        .collect::<BTreeSet<_>>()
        .len()
        > 1;
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                if many_clients {
                    format!("{}/{}", r.client, r.scenario)
                } else {
                    r.scenario.clone()
                },
                outcome_cell(r),
                rules_cell(r),
                secrets_cell_in(r, remote),
                r.verdict().to_uppercase(),
            ]
        })
        .collect();
    let head = ["SCENARIO", "OUTCOME", "RULES FAILED", "SECRETS", "VERDICT"];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count()).min(60);
        }
    }
    let mut out = String::new();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| pad(c, w))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out.push_str(&line(&head.map(str::to_owned)));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    let mut details = String::new();
    for r in results {
        let noisy = !r.outcome.ok
            || !r.secrets.is_empty()
            || !r.touched.network.is_empty()
            || !r.touched.files.is_empty()
            || r.grade.as_ref().is_some_and(|g| !g.failed.is_empty());
        if !noisy {
            continue;
        }
        let _ = writeln!(details, "\n{}/{}: {}", r.client, r.scenario, r.description);
        let _ = writeln!(
            details,
            "  outcome: {}: {}",
            outcome_label(r.outcome.kind),
            r.outcome.detail
        );
        if let Some(g) = &r.grade {
            for f in &g.failed {
                let _ = writeln!(
                    details,
                    "  rule {} ({}, {} exchange(s)): {}",
                    f.id, f.severity, f.count, f.first
                );
            }
        }
        for f in &r.secrets {
            let _ = writeln!(
                details,
                "  secret {}: {}: {}",
                if f.level == Level::Fail {
                    "LEAK"
                } else {
                    "info"
                },
                f.location,
                f.detail
            );
        }
        for n in &r.touched.network {
            let _ = writeln!(details, "  network: {}", n.sentence());
        }
        for f in &r.touched.files {
            let _ = writeln!(details, "  file: {}", f.sentence());
        }
        let _ = writeln!(details, "  files: {}", r.dir);
    }
    out.push_str(&details);
    out.push('\n');
    // One verdict per client (a `--secret-mode all` run has one per mode), in report order.
    let mut clients: Vec<&str> = Vec::new();
    for r in results {
        if !clients.contains(&r.client.as_str()) {
            clients.push(&r.client);
        }
    }
    for client in clients {
        let own: Vec<ScenarioResult> = results
            .iter()
            .filter(|r| r.client == client)
            .cloned()
            .collect();
        out.push_str(&overall_line_in(&own, remote));
        out.push('\n');
    }
    out
}

/// XML text escaping.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn failure_text(r: &ScenarioResult) -> String {
    failure_lines(r, false)
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What decides a cell's verdict, a line each: the outcome with its detail (always, or only
/// when it is not what the scenario expects), each MUST rule broken with its first finding,
/// each place the key leaked. JUnit's failure text and a matrix departure's line
/// ([`ScenarioResult::why`]) are both made of these.
pub(crate) fn failure_lines(r: &ScenarioResult, with_outcome: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if with_outcome || !r.outcome.ok {
        lines.push(format!(
            "outcome: {}: {}",
            outcome_label(r.outcome.kind),
            r.outcome.detail
        ));
    }
    for f in r.grade.iter().flat_map(Grade::must_failures) {
        lines.push(format!("rule {} (MUST): {}", f.id, f.first));
    }
    for f in r.secret_failures() {
        lines.push(format!("secret leak: {}: {}", f.location, f.detail));
    }
    lines
}

/// JUnit XML: one test suite per client, one test case per scenario.
pub fn junit(results: &[ScenarioResult]) -> String {
    junit_in(results, true)
}

/// JUnit XML of a report (a remote vet's secret answer says it was not seen).
pub fn junit_for(report: &RunReport) -> String {
    junit_in(&report.results, report.secrets_seen())
}

fn junit_in(results: &[ScenarioResult], secrets_seen: bool) -> String {
    let assessments = assess::assess_all(results, secrets_seen);
    let clients: Vec<&String> = {
        let mut seen = Vec::new();
        for r in results {
            if !seen.contains(&&r.client) {
                seen.push(&r.client);
            }
        }
        seen
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = results.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"acme-harness vet\" tests=\"{}\" failures=\"{failures}\">",
        results.len()
    );
    for client in clients {
        let mine: Vec<&ScenarioResult> = results.iter().filter(|r| &r.client == client).collect();
        let time: f64 = mine.iter().map(|r| r.seconds).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{time:.1}\">",
            xml_escape(client),
            mine.len(),
            mine.iter().filter(|r| !r.passed).count()
        );
        if let Some(a) = assessments.iter().find(|a| &a.client == client) {
            out.push_str("    <properties>\n");
            for (name, answer) in [
                ("works-with-sectigo", &a.works),
                ("protocol-conduct", &a.conduct),
                ("secret-handling", &a.secrets),
                ("what-it-touched", &a.touched),
            ] {
                let _ = writeln!(
                    out,
                    "      <property name=\"{name}\" value=\"{}: {}\"/>",
                    answer.verdict.label(),
                    xml_escape(&answer.summary)
                );
            }
            let _ = writeln!(
                out,
                "      <property name=\"recommendation\" value=\"{}\"/>\n    </properties>",
                xml_escape(&a.recommendation)
            );
        }
        for r in mine {
            let _ = write!(
                out,
                "    <testcase classname=\"vet.{}\" name=\"{}\" time=\"{:.1}\"",
                xml_escape(client),
                xml_escape(&r.scenario),
                r.seconds
            );
            if r.passed {
                out.push_str("/>\n");
            } else {
                let text = failure_text(r);
                let first = text.lines().next().unwrap_or("failed");
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(first),
                    xml_escape(&text)
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A vet or matrix JSON report (`--json`) as [`html`] shows it: what the web console's
/// report view calls.
pub fn html_from_json(text: &str) -> Result<String, String> {
    let report: RunReport = serde_json::from_str(text)
        .map_err(|e| format!("not a vet or matrix JSON report (--json): {e}"))?;
    Ok(html(&report.with_assessments()))
}

/// A self-contained HTML page (inline CSS, no scripts, nothing fetched). It leads with each
/// client's recommendation and four answers; the evidence and the scenario table are folded
/// below. The layout wraps long values, so it fits a laptop screen (1,400 px) without
/// sideways scrolling.
pub fn html(report: &RunReport) -> String {
    let e = |s: &str| xml_escape(s);
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>acme-harness vet</title><style>\
         body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222;line-height:1.4}\
         .client{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}\
         .rec{font-size:1.05em;margin:.2em 0 .8em}\
         .answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.6em}\
         .answer{border-radius:4px;padding:.5em .7em}.answer h3{margin:0 0 .2em;font-size:1em}\
         .yes{background:#e6f4ea}.partly{background:#fef7e0}.no{background:#fce8e6}.not-seen{background:#eee}\
         table{border-collapse:collapse;width:100%;table-layout:fixed}\
         td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left;overflow-wrap:anywhere}\
         th.s{width:16%}th.o{width:22%}th.v{width:6em}th.c{width:10%}\
         .pass{background:#e6f4ea}.fail{background:#fce8e6}code{font-size:90%;overflow-wrap:anywhere}\
         details{margin:.3em 0}summary{cursor:pointer}li{overflow-wrap:anywhere}</style></head><body>\n",
    );
    let _ = writeln!(out, "<h1>acme-harness vet</h1>");
    let _ = writeln!(
        out,
        "<p>seed {} &middot; acme-harness {}</p>",
        report.seed,
        e(&report.harness_version)
    );
    for a in report.assess() {
        let _ = writeln!(
            out,
            "<section class=\"client\"><h2>{}</h2><p class=\"rec\">{}</p><div class=\"answers\">",
            e(&a.client),
            e(&a.recommendation)
        );
        for (title, answer) in [
            ("Works with Sectigo", &a.works),
            ("Protocol conduct", &a.conduct),
            ("Secret handling", &a.secrets),
            ("What it touched", &a.touched),
        ] {
            let class = match answer.verdict {
                assess::Verdict::Yes => "yes",
                assess::Verdict::Partly => "partly",
                assess::Verdict::No => "no",
                assess::Verdict::NotSeen => "not-seen",
            };
            let _ = write!(
                out,
                "<div class=\"answer {class}\"><h3>{title}: {}</h3>{}",
                answer.verdict.label(),
                e(&answer.summary)
            );
            if !answer.findings.is_empty() {
                let _ = write!(
                    out,
                    "<details><summary>evidence ({})</summary><ul>",
                    answer.findings.len()
                );
                for f in &answer.findings {
                    let _ = write!(
                        out,
                        "<li><code>{}</code>: {}<br><small>{}</small></li>",
                        e(&f.scenario),
                        e(&f.text),
                        e(&f.at)
                    );
                }
                out.push_str("</ul></details>");
            }
            out.push_str("</div>");
        }
        out.push_str("</div></section>\n");
    }
    let _ = writeln!(
        out,
        "<details><summary>Every scenario ({}): {}</summary>",
        report.results.len(),
        e(&overall_line_in(&report.results, report.remote.as_ref()))
    );
    out.push_str(
        "<table><tr><th class=\"c\">client</th><th class=\"s\">scenario</th><th class=\"o\">outcome</th>\
         <th>rules failed</th><th>secrets</th><th class=\"v\">verdict</th></tr>\n",
    );
    for r in &report.results {
        let class = if r.passed { "pass" } else { "fail" };
        let mut rules = String::new();
        if let Some(g) = &r.grade {
            for f in &g.failed {
                let seqs: Vec<String> = f.seqs.iter().map(u64::to_string).collect();
                let _ = write!(
                    rules,
                    "<details><summary><code>{}</code> ({})</summary>{}{}</details>",
                    e(&f.id),
                    e(&f.severity),
                    e(&f.first),
                    if seqs.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "<br><small>transcript.jsonl seq {}</small>",
                            seqs.join(", ")
                        )
                    }
                );
            }
            if g.failed.is_empty() {
                let _ = write!(rules, "none of {}", g.rules);
            }
        } else {
            rules.push_str("not graded (no requests)");
        }
        let mut secrets = String::new();
        for f in &r.secrets {
            let _ = write!(
                secrets,
                "<div>{}: <code>{}</code>: {}</div>",
                if f.level == Level::Fail {
                    "<strong>LEAK</strong>"
                } else {
                    "info"
                },
                e(&f.location),
                e(&f.detail)
            );
        }
        if secrets.is_empty() {
            secrets.push_str(&e(&secrets_cell_in(r, report.remote.as_ref())));
        }
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td title=\"{}\">{}</td><td>{}<br><small>{}</small></td>\
             <td>{rules}</td><td>{secrets}</td><td>{}</td></tr>",
            e(&r.client),
            e(&r.description),
            e(&r.scenario),
            e(outcome_label(r.outcome.kind)),
            e(&r.outcome.detail),
            r.verdict()
        );
    }
    out.push_str("</table></details>\n");
    if let Some(scope) = &report.remote {
        out.push_str("<h2>What a remote vet cannot see</h2><ul>");
        for line in &scope.limits {
            let _ = write!(out, "<li>{}</li>", e(line));
        }
        out.push_str("</ul>\n");
    }
    if !report.skipped.is_empty() {
        out.push_str("<h2>Not run</h2><ul>");
        for (c, why) in &report.skipped {
            let _ = write!(out, "<li>{}: {}</li>", e(c), e(why));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The Markdown matrix: one row per scenario, one column per client; a cell is the verdict
/// and the outcome, with the reason from `expectations` when given.
pub fn matrix_markdown(
    results: &[ScenarioResult],
    expectation: &dyn Fn(&ScenarioResult) -> Option<String>,
) -> String {
    let mut clients: Vec<&str> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for r in results {
        if !clients.contains(&r.client.as_str()) {
            clients.push(&r.client);
        }
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let mut out = String::from("| scenario |");
    for c in &clients {
        let version = results
            .iter()
            .find(|r| r.client == *c)
            .and_then(|r| r.client_version.clone())
            .map(|v| format!(" <sub>{}</sub>", v.replace('|', "/")))
            .unwrap_or_default();
        let _ = write!(out, " {c}{version} |");
    }
    out.push_str("\n| --- |");
    for _ in &clients {
        out.push_str(" --- |");
    }
    out.push('\n');
    for s in &scenarios {
        let _ = write!(out, "| `{s}` |");
        for c in &clients {
            match results.iter().find(|r| r.client == *c && r.scenario == *s) {
                None => out.push_str(" – |"),
                Some(r) => {
                    let mark = if r.passed { "✅" } else { "❌" };
                    let mut cell = format!("{mark} {}", outcome_label(r.outcome.kind));
                    let leaks = r.secret_failures().count();
                    if leaks > 0 {
                        let _ = write!(cell, ", {leaks} leak(s)");
                    }
                    if let Some(g) = &r.grade
                        && !g.failed.is_empty()
                    {
                        let _ = write!(cell, ", {} rule(s)", g.failed.len());
                    }
                    if let Some(why) = expectation(r) {
                        let _ = write!(cell, "<br><sub>{}</sub>", why.replace('|', "/"));
                    }
                    let _ = write!(out, " {cell} |");
                }
            }
        }
        out.push('\n');
    }
    // Clients that cannot be used with Sectigo ran one scenario only: say why under the table.
    let mut unusable = Vec::new();
    for r in results.iter().filter(|r| r.unusable.is_some()) {
        if !unusable.contains(&r.client.as_str()) {
            unusable.push(&r.client);
            let _ = write!(
                out,
                "\n**{}** cannot be used with Sectigo: {} ({}: {}); its other scenarios were not run.\n",
                r.client,
                r.unusable.as_deref().unwrap_or_default(),
                r.scenario,
                r.outcome.detail
            );
        }
    }
    out.push_str("\n### Per client: the four answers\n\n");
    out.push_str(&assess::markdown(&assess::assess_all(results, true)));
    out
}

/// `vet --secret-mode all`: per mode (safest first), how many scenarios passed and where the
/// canary key ended up; then the advice. The secret verdict belongs to the safest mode: a
/// leak only a less safe mode has is advice on how to run the client, not its failure.
pub fn secret_modes_table(modes: &[(String, Vec<ScenarioResult>)]) -> String {
    let places = |results: &[ScenarioResult]| -> Vec<String> {
        let mut out: Vec<String> = results
            .iter()
            .flat_map(|r| r.secret_failures().map(|f| f.location.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let mut text = String::from("SECRET MODE        PASSED  WHERE THE KEY ENDED UP\n");
    for (mode, results) in modes {
        let passed = results.iter().filter(|r| r.passed).count();
        let leaks = places(results);
        let _ = writeln!(
            text,
            "{mode:<18} {passed:>2}/{:<3}  {}",
            results.len(),
            if leaks.is_empty() {
                "nowhere it should not be".to_owned()
            } else {
                leaks.join("; ")
            }
        );
    }
    if let Some((safest, results)) = modes.first() {
        let clean = places(results).is_empty();
        for (mode, others) in &modes[1..] {
            let leaks = places(others);
            if clean && !leaks.is_empty() {
                let _ = writeln!(
                    text,
                    "advice: pass the key as in `{safest}`: in `{mode}` it ends up in {}",
                    leaks.join("; ")
                );
            }
        }
        if !clean {
            let _ = writeln!(
                text,
                "even in its safest mode (`{safest}`) the key ends up in {}: that is the client's failure",
                places(results).join("; ")
            );
        }
    }
    text
}
