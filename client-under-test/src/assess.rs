//! The four answers an administrator needs about a client, kept apart, and a recommendation
//! in plain words:
//!
//! - **works with Sectigo**: did it end as each scenario requires (a certificate, or a clean
//!   refusal)? Plain issuance failing is a "no"; coping with plain issuance but not with some
//!   of Sectigo's faults is "partly".
//! - **protocol conduct**: the judge's rules it broke, by severity (a MUST is a "no", a SHOULD
//!   or what Sectigo needs is "partly").
//! - **secret handling**: where the EAB HMAC key ended up when the client was given it the
//!   way vet ran it (its safest way, unless told otherwise).
//! - **what it touched**: every network attempt besides the mock (a DNS lookup, a connection
//!   to a vendor's host), every file it wrote or read outside its work dir, and the programs
//!   it ran; and whether it ran in the sandbox, where none of that reached the machine.
//!
//! Every finding names its evidence: the scenario and the exchanges (`seq` in its
//! transcript.jsonl), the file or the process.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::run::ScenarioResult;
use crate::scan::Place;
use crate::scenario::{EabState, Expect, Scenario};

/// How an answer comes out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Yes.
    Yes,
    /// In part: see the findings.
    Partly,
    /// No.
    No,
    /// Not checked (a remote vet's secret scan, nothing recorded).
    #[default]
    NotSeen,
}

impl Verdict {
    /// The word reports show.
    pub fn label(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::Partly => "partly",
            Self::No => "no",
            Self::NotSeen => "not seen",
        }
    }
}

/// One finding behind an answer, with where it was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The scenario.
    pub scenario: String,
    /// What happened, in one line.
    pub text: String,
    /// Where: `transcript.jsonl seq 7, 9`, a file, a stream or a process.
    pub at: String,
}

/// One of the answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The verdict.
    pub verdict: Verdict,
    /// One line.
    pub summary: String,
    /// What it rests on.
    pub findings: Vec<Evidence>,
}

/// The four answers about one client (one row name: a client, or a client in one secret
/// mode), and the recommendation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The client's row name.
    pub client: String,
    /// Its version line.
    pub version: Option<String>,
    /// How it was given the key.
    pub secret_mode: String,
    /// Whether that is the only way the client takes the key (its adapter lists no other).
    #[serde(default)]
    pub only_way: bool,
    /// Does it work against Sectigo's behaviour?
    pub works: Answer,
    /// Does it speak the protocol properly?
    pub conduct: Answer,
    /// Can it be run so the key stays secret?
    pub secrets: Answer,
    /// What did it touch besides the mock and its work dir?
    #[serde(default)]
    pub touched: Answer,
    /// The recommendation, in plain words for an IT administrator.
    pub recommendation: String,
}

/// Whether a scenario is plain issuance: no fault, a good credential, a trusted server, a
/// certificate expected. A client that fails one of these does not work with Sectigo at all.
fn is_plain(id: &str) -> bool {
    Scenario::built_in().iter().any(|s| {
        s.id == id
            && s.faults.is_empty()
            && s.expect == Expect::Issue
            && s.eab == EabState::Fresh
            && !s.untrusted_tls
            && s.profile_edit.is_none()
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The four answers for every client of `results`, in report order. `remote`: the secret
/// scan did not run (a client on another host, nothing copied back).
pub fn assess_all(results: &[ScenarioResult], secrets_seen: bool) -> Vec<Assessment> {
    let mut clients: Vec<&str> = Vec::new();
    for r in results {
        if !clients.contains(&r.client.as_str()) {
            clients.push(&r.client);
        }
    }
    clients
        .into_iter()
        .map(|c| {
            let own: Vec<&ScenarioResult> = results.iter().filter(|r| r.client == c).collect();
            assess(&own, secrets_seen)
        })
        .collect()
}

/// The four answers for one client's results.
pub fn assess(results: &[&ScenarioResult], secrets_seen: bool) -> Assessment {
    let first = results.first();
    let mut works = works(results);
    let conduct = conduct(results);
    let mut secrets = secrets(results, secrets_seen);
    // A client that cannot be used with Sectigo: that is the answer, whatever else it did.
    let unusable = first.and_then(|r| r.unusable.clone());
    if let Some(why) = &unusable {
        works.verdict = Verdict::No;
        works.summary = format!("cannot be used with Sectigo: {why}");
        // It was given no key, so how it keeps one is unknown, not good.
        secrets = Answer {
            verdict: Verdict::NotSeen,
            summary: "not seen: it takes no EAB key at all".into(),
            findings: Vec::new(),
        };
    }
    let touched = touched(results);
    let mut a = Assessment {
        client: first.map(|r| r.client.clone()).unwrap_or_default(),
        version: first.and_then(|r| r.client_version.clone()),
        secret_mode: first.map(|r| r.secret_mode.clone()).unwrap_or_default(),
        only_way: first.is_some_and(|r| r.secret_modes.len() == 1),
        works,
        conduct,
        secrets,
        touched,
        recommendation: String::new(),
    };
    a.recommendation = match &unusable {
        Some(why) => {
            let name = a.version.clone().unwrap_or_else(|| a.client.clone());
            let confirmed = first
                .map(|r| format!("; vet saw it: {}", r.outcome.detail))
                .unwrap_or_default();
            format!(
                "{name} cannot be used with Sectigo's ACME service: {why}{confirmed}. Choose \
                 another client."
            )
        }
        None => recommendation(&a, first.map(|r| r.secret_mode_how.as_str())),
    };
    if unusable.is_none() {
        // Refusals it kept the reason of to itself: an administrator then cannot tell why.
        let silent: Vec<&str> = results
            .iter()
            .filter(|r| r.reason_shown == Some(false))
            .map(|r| r.scenario.as_str())
            .collect();
        let refusals = results.iter().filter(|r| r.reason_shown.is_some()).count();
        if !silent.is_empty() {
            let _ = write!(
                a.recommendation,
                " When the CA refuses, it does not always say why ({} of {refusals} refusals: {}): \
                 look in its logs or ask the CA.",
                silent.len(),
                silent.join(", ")
            );
        }
    }
    a
}

fn works(results: &[&ScenarioResult]) -> Answer {
    let bad: Vec<&&ScenarioResult> = results.iter().filter(|r| !r.outcome.ok).collect();
    let plain_bad = bad.iter().filter(|r| is_plain(&r.scenario)).count();
    let findings = bad
        .iter()
        .map(|r| Evidence {
            scenario: r.scenario.clone(),
            text: format!(
                "{}: {}",
                r.description,
                crate::report::outcome_label(r.outcome.kind)
            ),
            at: if r.outcome.detail.is_empty() {
                format!("{}/ (stdout, stderr, transcript.jsonl)", r.dir)
            } else {
                format!(
                    "{}; {}/ (stdout, stderr, transcript.jsonl)",
                    r.outcome.detail, r.dir
                )
            },
        })
        .collect();
    let n = results.len();
    let ok = n - bad.len();
    let (verdict, summary) = if bad.is_empty() {
        (
            Verdict::Yes,
            format!("ended as required in every scenario ({n})"),
        )
    } else if plain_bad > 0 {
        (
            Verdict::No,
            format!("plain issuance fails ({} of {n} scenarios as required)", ok),
        )
    } else {
        (
            Verdict::Partly,
            format!(
                "issues in plain scenarios, but {} of {n} end wrongly",
                bad.len()
            ),
        )
    };
    Answer {
        verdict,
        summary,
        findings,
    }
}

fn conduct(results: &[&ScenarioResult]) -> Answer {
    // Rule id -> (severity, statement, [(scenario, seqs, first message)]).
    type Seen<'a> = (String, String, Vec<(&'a str, &'a [u64], &'a str)>);
    let mut rules: BTreeMap<&str, Seen<'_>> = BTreeMap::new();
    let mut graded = 0;
    for r in results {
        let Some(g) = &r.grade else { continue };
        graded += 1;
        for f in &g.failed {
            let entry = rules
                .entry(&f.id)
                .or_insert_with(|| (f.severity.clone(), f.statement.clone(), Vec::new()));
            entry.2.push((&r.scenario, &f.seqs, &f.first));
        }
    }
    if graded == 0 {
        return Answer {
            verdict: Verdict::NotSeen,
            summary: "nothing reached the mock: no rule could be graded".into(),
            findings: Vec::new(),
        };
    }
    let count = |sev: &str| rules.values().filter(|(s, _, _)| s == sev).count();
    let (must, should, sectigo) = (count("MUST"), count("SHOULD"), count("Sectigo-needed"));
    let mut findings = Vec::new();
    // One finding per rule: the scenarios it broke in, and the first one's exchanges.
    for (id, (severity, statement, seen)) in &rules {
        let Some((scenario, seqs, first)) = seen.first() else {
            continue;
        };
        let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
        let mut at = if seqs.is_empty() {
            format!("transcript.jsonl: {first}")
        } else {
            format!("transcript.jsonl seq {}: {first}", seqs.join(", "))
        };
        if seen.len() > 1 {
            let _ = write!(at, " (and in {} more scenarios)", seen.len() - 1);
        }
        let scenarios: Vec<&str> = seen.iter().map(|(s, _, _)| *s).collect();
        findings.push(Evidence {
            scenario: if scenarios.len() == 1 {
                (*scenario).to_owned()
            } else {
                scenarios.join(", ")
            },
            text: format!(
                "{id} ({severity}): {}",
                if statement.is_empty() {
                    *first
                } else {
                    statement.as_str()
                }
            ),
            at,
        });
    }
    let (verdict, summary) = if must > 0 {
        (
            Verdict::No,
            format!("breaks {}", plural(must, "MUST rule", "MUST rules")),
        )
    } else if should + sectigo > 0 {
        let mut parts = Vec::new();
        if should > 0 {
            parts.push(plural(should, "SHOULD rule", "SHOULD rules"));
        }
        if sectigo > 0 {
            parts.push(format!(
                "{} Sectigo needs",
                plural(sectigo, "rule", "rules")
            ));
        }
        (
            Verdict::Partly,
            format!("breaks no MUST rule, but {}", parts.join(" and ")),
        )
    } else if rules.is_empty() {
        (Verdict::Yes, "breaks no rule".into())
    } else {
        (
            Verdict::Yes,
            format!(
                "breaks no MUST or SHOULD rule ({})",
                plural(rules.len(), "hygiene note", "hygiene notes")
            ),
        )
    };
    Answer {
        verdict,
        summary,
        findings,
    }
}

fn place_words(place: Place) -> &'static str {
    match place {
        Place::Stdout => "its standard output",
        Place::Stderr => "its error output",
        Place::Log => "a log file",
        Place::File => "a file others can read",
        Place::CommandLine => "a process command line (every local user sees it in ps)",
        Place::PrivateKey => "a private key file others can read",
    }
}

fn secrets(results: &[&ScenarioResult], seen: bool) -> Answer {
    if !seen {
        return Answer {
            verdict: Verdict::NotSeen,
            summary: "the client ran on another host: its files and processes were not scanned"
                .into(),
            findings: Vec::new(),
        };
    }
    let mut findings: Vec<Evidence> = Vec::new();
    let mut places: Vec<&'static str> = Vec::new();
    for r in results {
        for f in r.secret_failures() {
            let words = place_words(f.place);
            if !places.contains(&words) {
                places.push(words);
            }
            if !findings.iter().any(|e| e.at == f.location) {
                findings.push(Evidence {
                    scenario: r.scenario.clone(),
                    text: f.detail.clone(),
                    at: f.location.clone(),
                });
            }
        }
    }
    let how = results
        .first()
        .map(|r| r.secret_mode_how.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or("as vet gave it");
    if findings.is_empty() {
        Answer {
            verdict: Verdict::Yes,
            summary: format!(
                "kept the key out of its output, logs, files and command lines (key passed as: \
                 {how})"
            ),
            findings,
        }
    } else {
        Answer {
            verdict: Verdict::No,
            summary: format!(
                "leaks the key to {} (key passed as: {how})",
                places.join(", ")
            ),
            findings,
        }
    }
}

/// Whether reading `path` is reading someone's home (keys, other tools' credentials).
fn in_a_home(path: &str) -> bool {
    path.starts_with("/root/")
        || path.starts_with("/home/")
        || path.contains("/.ssh/")
        || path.contains("/.gnupg/")
}

fn touched(results: &[&ScenarioResult]) -> Answer {
    let traced: Vec<&&ScenarioResult> = results.iter().filter(|r| r.touched.traced).collect();
    if traced.is_empty() {
        return Answer {
            verdict: Verdict::NotSeen,
            summary: if results.iter().any(|r| r.touched.sandboxed) {
                "ran sandboxed, but strace is not installed: what it did was not traced".into()
            } else {
                "not traced (strace is not installed, or the client ran on another host)".into()
            },
            findings: Vec::new(),
        };
    }
    let sandboxed = traced.iter().all(|r| r.touched.sandboxed);
    let mut findings: Vec<Evidence> = Vec::new();
    let mut add = |r: &ScenarioResult, text: String| {
        if !findings.iter().any(|e| e.text == text) {
            findings.push(Evidence {
                scenario: r.scenario.clone(),
                text,
                at: format!("{}/exec-*.trace", r.dir),
            });
        }
    };
    let (mut undeclared, mut declared, mut writes, mut home_reads, mut tmp, mut reads) =
        (0, 0, 0, 0, 0, 0);
    let mut programs: Vec<&str> = Vec::new();
    for r in &traced {
        for n in &r.touched.network {
            if n.expected.is_some() {
                declared += 1;
            } else {
                undeclared += 1;
            }
            add(r, n.sentence());
        }
        for f in &r.touched.files {
            let in_tmp = f.path.starts_with("/tmp/") || f.path.starts_with("/var/tmp/");
            match f.access {
                crate::audit::Access::Write if in_tmp && !in_a_home(&f.path) => tmp += 1,
                crate::audit::Access::Write => writes += 1,
                crate::audit::Access::Read if in_a_home(&f.path) => home_reads += 1,
                crate::audit::Access::Read => reads += 1,
            }
            add(r, f.sentence());
        }
        for p in &r.touched.processes {
            if !programs.contains(&p.as_str()) {
                programs.push(p);
            }
        }
    }
    let mut parts = Vec::new();
    if undeclared + declared == 0 {
        parts.push("no network but the mock".to_owned());
    } else {
        let mut p = plural(
            undeclared + declared,
            "network attempt besides the mock",
            "network attempts besides the mock",
        );
        if declared > 0 {
            let _ = write!(p, " ({declared} declared by its adapter)");
        }
        parts.push(p);
    }
    let outside = writes + tmp + home_reads + reads;
    if outside == 0 {
        parts.push("no file outside its work dir".into());
    } else {
        let mut kinds = Vec::new();
        if writes > 0 {
            kinds.push(plural(writes, "write", "writes"));
        }
        if tmp > 0 {
            kinds.push(format!("{} in /tmp", plural(tmp, "write", "writes")));
        }
        if home_reads > 0 {
            kinds.push(format!(
                "{} in a home directory",
                plural(home_reads, "read", "reads")
            ));
        }
        if reads > 0 {
            kinds.push(plural(reads, "read", "reads"));
        }
        parts.push(format!(
            "{} outside its work dir ({})",
            plural(outside, "file access", "file accesses"),
            kinds.join(", ")
        ));
    }
    parts.push(format!(
        "ran {}",
        if programs.is_empty() {
            "no traced program".to_owned()
        } else {
            programs.join(", ")
        }
    ));
    let mode = if sandboxed {
        "sandboxed: nothing left the machine"
    } else {
        "NOT sandboxed (--no-sandbox): these really happened"
    };
    let verdict = if undeclared > 0 || writes > 0 || home_reads > 0 {
        Verdict::No
    } else if declared + tmp + reads > 0 {
        Verdict::Partly
    } else {
        Verdict::Yes
    };
    Answer {
        verdict,
        summary: format!("{} ({mode})", parts.join("; ")),
        findings,
    }
}

/// Scenario descriptions of the findings, at most three, for a sentence.
fn some(findings: &[Evidence], results_text: impl Fn(&Evidence) -> String) -> String {
    let mut seen: Vec<String> = Vec::new();
    for f in findings {
        let t = results_text(f);
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    let n = seen.len();
    let mut out = seen.into_iter().take(3).collect::<Vec<_>>().join("; ");
    if n > 3 {
        let _ = write!(out, "; and {} more", n - 3);
    }
    out
}

fn recommendation(a: &Assessment, how: Option<&str>) -> String {
    let name = match &a.version {
        Some(v) if !v.is_empty() => v.clone(),
        _ => a.client.clone(),
    };
    let mut text = String::new();
    // "two badNonces in a row (first two newOrders): failed".
    let scenario_of = |e: &Evidence| e.text.clone();
    match a.works.verdict {
        Verdict::Yes => {
            let _ = write!(
                text,
                "{name} works with Sectigo's ACME service as the mock plays it"
            );
        }
        Verdict::Partly => {
            let _ = write!(
                text,
                "{name} works with Sectigo's ACME service for plain issuance, but not in: {}",
                some(&a.works.findings, scenario_of)
            );
        }
        _ => {
            let _ = write!(
                text,
                "{name} does not work with Sectigo's ACME service: {}",
                some(&a.works.findings, scenario_of)
            );
        }
    }
    text.push_str(". ");
    let how = how.filter(|h| !h.is_empty());
    match (a.secrets.verdict, how) {
        (Verdict::Yes, Some(how)) if a.secret_mode != "flag" => {
            let _ = write!(
                text,
                "Give it the EAB key as vet did ({how}): it kept the key out of its logs and \
                 files. Never put the key on a command line, where every local user can read \
                 it with ps. "
            );
        }
        (Verdict::Yes, _) => {
            text.push_str("It kept the EAB key out of its logs, files and command lines. ");
        }
        (Verdict::No, _) => {
            let places: Vec<&str> = a
                .secrets
                .findings
                .iter()
                .map(|f| f.at.as_str())
                .take(3)
                .collect();
            let advice = if a.only_way {
                "it has no other way to take the key, so do not give it a real one on a machine \
                 other people use"
            } else if a.secret_mode == "flag" {
                "find another way to give it the key (a config file only its owner can read), \
                 or do not give it a real one"
            } else {
                "do not give it a real key"
            };
            let _ = write!(
                text,
                "With the key passed as here ({}), it leaks it ({}): {advice}. ",
                how.unwrap_or("as vet gave it"),
                places.join(", "),
            );
        }
        _ => text.push_str("Where its host keeps the key was not checked. "),
    }
    let statements = |severities: &[&str]| {
        let mut out: Vec<String> = Vec::new();
        for e in &a.conduct.findings {
            if severities
                .iter()
                .any(|s| e.text.contains(&format!("({s})")))
            {
                let t = e.text.split_once("): ").map_or(e.text.as_str(), |(_, t)| t);
                let t = t.trim_end_matches('.').to_owned();
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    };
    match a.conduct.verdict {
        Verdict::No => {
            let _ = write!(
                text,
                "It breaks protocol rules a CA may enforce at any time: {}.",
                quoted(&statements(&["MUST"]))
            );
        }
        Verdict::Partly => {
            let _ = write!(
                text,
                "It keeps the protocol's MUST rules, but breaks {}.",
                quoted(&statements(&["SHOULD", "Sectigo-needed"]))
            );
        }
        Verdict::Yes => text.push_str("It follows the protocol rules the judge checks."),
        Verdict::NotSeen => text.push_str("Its protocol conduct could not be graded."),
    }
    match a.touched.verdict {
        Verdict::No | Verdict::Partly => {
            let _ = write!(
                text,
                " Beyond the CA and its own directory it {}: {}.",
                if a.touched.verdict == Verdict::No {
                    "reaches out"
                } else {
                    "touches little"
                },
                some(&a.touched.findings, |e| e.text.clone())
            );
        }
        Verdict::Yes => {
            text.push_str(" It touched nothing but the CA and its own directory.");
        }
        Verdict::NotSeen => {}
    }
    text
}

/// "“a”; “b”".
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("“{i}”"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The four answers of every client, as text: the recommendation, then one line per answer.
pub fn text(assessments: &[Assessment]) -> String {
    let mut out = String::new();
    for a in assessments {
        let _ = writeln!(out, "{}", a.client);
        let _ = writeln!(out, "  {}", a.recommendation);
        for (label, answer) in [
            ("works with Sectigo", &a.works),
            ("protocol conduct  ", &a.conduct),
            ("secret handling   ", &a.secrets),
            ("what it touched   ", &a.touched),
        ] {
            let _ = writeln!(
                out,
                "  {label}  {:<8} {}",
                answer.verdict.label().to_uppercase(),
                answer.summary
            );
        }
    }
    out
}

/// The four answers as a Markdown table, then each recommendation.
pub fn markdown(assessments: &[Assessment]) -> String {
    let mut out = String::from(
        "| client | works with Sectigo | protocol conduct | secret handling | what it touched |\n| --- | --- | --- | --- | --- |\n",
    );
    let cell = |a: &Answer| format!("**{}**: {}", a.verdict.label(), a.summary.replace('|', "/"));
    for a in assessments {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            a.client,
            cell(&a.works),
            cell(&a.conduct),
            cell(&a.secrets),
            cell(&a.touched)
        );
    }
    out.push('\n');
    for a in assessments {
        let _ = writeln!(out, "- **{}**: {}", a.client, a.recommendation);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Grade, RuleFailure};
    use crate::run::{Outcome, OutcomeKind};
    use crate::scan::{Finding, Level};

    fn result(scenario: &str, ok: bool) -> ScenarioResult {
        ScenarioResult {
            client: "certbot".into(),
            client_version: Some("certbot 2.1.0".into()),
            secret_mode: "config-file".into(),
            secret_mode_how: "in a 0600 cli.ini given with -c".into(),
            secret_modes: vec!["config-file".into(), "flag".into()],
            scenario: scenario.into(),
            description: format!("the {scenario} scenario"),
            expect: Expect::Issue,
            outcome: Outcome {
                kind: if ok {
                    OutcomeKind::Issued
                } else {
                    OutcomeKind::Failed
                },
                ok,
                detail: if ok { String::new() } else { "exit 1".into() },
                exits: vec![Some(if ok { 0 } else { 1 })],
            },
            grade: Some(Grade {
                exchanges: 10,
                rules: 20,
                failed: Vec::new(),
            }),
            secrets: Vec::new(),
            reason_shown: None,
            touched: crate::audit::Touched::default(),
            passed: ok,
            seconds: 1.0,
            dir: format!("/w/{scenario}"),
            seed: 8,
            unusable: None,
        }
    }

    fn rule(id: &str, severity: &str, statement: &str, seqs: &[u64]) -> RuleFailure {
        RuleFailure {
            id: id.into(),
            severity: severity.into(),
            count: seqs.len(),
            first: "what it did".into(),
            statement: statement.into(),
            seqs: seqs.to_vec(),
        }
    }

    #[test]
    fn an_unusable_client_is_a_plain_no_with_its_reason_and_no_advice_on_running_it() {
        let mut r = result("happy-rsa-ov-rsa", false);
        r.client = "acme-tiny".into();
        r.client_version = Some("acme-tiny 5.0.1".into());
        r.outcome.kind = OutcomeKind::Unusable;
        r.outcome.detail = "its newAccount (seq 3) carried no externalAccountBinding; the CA \
                            answered 400 externalAccountRequired"
            .into();
        r.unusable = Some("it has no way to send an External Account Binding".into());
        let a = assess(&[&r], true);
        assert_eq!(a.works.verdict, Verdict::No);
        assert_eq!(a.secrets.verdict, Verdict::NotSeen);
        assert_eq!(
            a.works.summary,
            "cannot be used with Sectigo: it has no way to send an External Account Binding"
        );
        assert_eq!(
            a.recommendation,
            "acme-tiny 5.0.1 cannot be used with Sectigo's ACME service: it has no way to send \
             an External Account Binding; vet saw it: its newAccount (seq 3) carried no \
             externalAccountBinding; the CA answered 400 externalAccountRequired. Choose \
             another client."
        );
    }

    #[test]
    fn a_clean_client_gets_three_yeses_and_the_advice_to_keep_its_mode() {
        let rs = [
            result("happy-rsa-ov-rsa", true),
            result("bad-nonce-once", true),
        ];
        let refs: Vec<&ScenarioResult> = rs.iter().collect();
        let a = assess(&refs, true);
        assert_eq!(
            (a.works.verdict, a.conduct.verdict, a.secrets.verdict),
            (Verdict::Yes, Verdict::Yes, Verdict::Yes)
        );
        assert!(!a.recommendation.contains("does not always say why"));
        let mut silent = result("undelegated-name", true);
        silent.reason_shown = Some(false);
        let mut told = result("eab-revoked", true);
        told.reason_shown = Some(true);
        let a = assess(&[&rs[0], &silent, &told], true);
        assert!(
            a.recommendation
                .contains("it does not always say why (1 of 2 refusals: undelegated-name)"),
            "{}",
            a.recommendation
        );
        assert!(
            a.recommendation
                .starts_with("certbot 2.1.0 works with Sectigo"),
            "{}",
            a.recommendation
        );
        assert!(
            a.recommendation.contains("in a 0600 cli.ini given with -c"),
            "{}",
            a.recommendation
        );
        assert!(a.recommendation.contains("ps"), "{}", a.recommendation);
    }

    #[test]
    fn a_fault_scenario_failing_is_partly_and_plain_issuance_failing_is_no() {
        let rs = [
            result("happy-rsa-ov-rsa", true),
            result("bad-nonce-twice", false),
        ];
        let refs: Vec<&ScenarioResult> = rs.iter().collect();
        let a = assess(&refs, true);
        assert_eq!(a.works.verdict, Verdict::Partly);
        assert_eq!(a.works.findings[0].scenario, "bad-nonce-twice");
        assert!(
            a.works.findings[0]
                .at
                .starts_with("exit 1; /w/bad-nonce-twice/"),
            "{}",
            a.works.findings[0].at
        );
        assert!(
            a.recommendation
                .contains("but not in: the bad-nonce-twice scenario: failed."),
            "{}",
            a.recommendation
        );

        let rs = [
            result("happy-rsa-ov-rsa", false),
            result("bad-nonce-twice", true),
        ];
        let refs: Vec<&ScenarioResult> = rs.iter().collect();
        assert_eq!(assess(&refs, true).works.verdict, Verdict::No);
    }

    #[test]
    fn rule_failures_are_graded_by_severity_and_cite_their_exchanges() {
        let mut r = result("processing-20s", true);
        r.grade.as_mut().unwrap().failed = vec![rule(
            "retry-after-honoured",
            "SHOULD",
            "Wait as long as Retry-After asks before polling again.",
            &[12, 14],
        )];
        let a = assess(&[&r], true);
        assert_eq!(a.conduct.verdict, Verdict::Partly);
        assert_eq!(
            a.conduct.findings[0].at,
            "transcript.jsonl seq 12, 14: what it did"
        );
        assert!(
            a.recommendation
                .contains("but breaks “Wait as long as Retry-After asks before polling again”"),
            "{}",
            a.recommendation
        );
        r.grade
            .as_mut()
            .unwrap()
            .failed
            .push(rule("nonce-not-reused", "MUST", "x", &[3]));
        assert_eq!(assess(&[&r], true).conduct.verdict, Verdict::No);
        r.grade = None;
        assert_eq!(assess(&[&r], true).conduct.verdict, Verdict::NotSeen);
    }

    #[test]
    fn a_leak_names_the_place_and_a_remote_run_claims_nothing() {
        let mut r = result("happy-rsa-ov-rsa", false);
        r.secret_mode = "flag".into();
        r.secret_mode_how = "on the command line".into();
        r.secret_modes = vec!["config-file".into(), "flag".into()];
        r.secrets = vec![Finding {
            level: Level::Fail,
            place: Place::CommandLine,
            location: "process certbot (pid 42)".into(),
            detail: "the HMAC key is on its command line".into(),
        }];
        let a = assess(&[&r], true);
        assert_eq!(a.secrets.verdict, Verdict::No);
        assert!(
            a.secrets.summary.contains("every local user sees it in ps"),
            "{}",
            a.secrets.summary
        );
        assert!(
            a.recommendation.contains("process certbot (pid 42)"),
            "{}",
            a.recommendation
        );
        assert!(
            a.recommendation
                .contains("a config file only its owner can read"),
            "{}",
            a.recommendation
        );
        assert_eq!(assess(&[&r], false).secrets.verdict, Verdict::NotSeen);
        // A client whose only way leaks: the report says there is no safer one.
        r.secret_modes = vec!["flag".into()];
        let a = assess(&[&r], true);
        assert!(a.only_way);
        assert!(
            a.recommendation
                .contains("it has no other way to take the key"),
            "{}",
            a.recommendation
        );
    }
}
