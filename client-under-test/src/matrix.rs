//! The interoperability matrix: every installed adapter through every scenario, split into
//! deterministic shards for a CI job matrix, merged back, and compared with the recorded
//! expectations (`ci/matrix-expectations.tsv`) so CI fails when behaviour changes, not when a
//! known weakness is reported.

use std::fmt;

use crate::Error;
use crate::adapter::Adapter;
use crate::report::RunReport;
use crate::run::ScenarioResult;
use crate::scenario::Scenario;

/// One share of the matrix: `K/N`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which share, 1..=n.
    pub k: usize,
    /// How many shares.
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Invalid(format!(
                "--shard {s:?}: want K/N with 1 <= K <= N, e.g. 2/4"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Self { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// Keeps this shard's share of `cells` (ordered by client, then scenario, as given):
    /// cell i belongs to shard (i mod n) + 1, so every shard gets slow and fast cells alike.
    pub fn select<T>(&self, cells: Vec<T>) -> Vec<T> {
        cells
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, c)| c)
            .collect()
    }
}

/// [`merge`] of the shard reports in `files` (`matrix merge FILE...`); an unreadable file or
/// one that is not a `matrix --json` report is an error naming it.
pub fn merge_files(files: &[std::path::PathBuf]) -> Result<RunReport, Error> {
    let mut reports = Vec::with_capacity(files.len());
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", f.display())))?;
        let report: RunReport = serde_json::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a `matrix --json` report: {e}",
                f.display()
            ))
        })?;
        reports.push(report);
    }
    merge(reports)
}

/// Combines shard reports into one, in client then scenario order of the first appearance;
/// a cell present twice is an error (two shards ran it). The plans are joined, so that
/// [`RunReport::missing`] names the cells no shard reported.
pub fn merge(reports: Vec<RunReport>) -> Result<RunReport, Error> {
    let Some(first) = reports.first() else {
        return Err(Error::Invalid("matrix merge: no reports given".into()));
    };
    let seed = first.seed;
    let mut out = RunReport::new(seed, Vec::new());
    let mut shards = Vec::new();
    for r in reports {
        if r.format != crate::report::FORMAT {
            return Err(Error::Invalid(format!(
                "matrix merge: report format {} (this acme-harness reads {})",
                r.format,
                crate::report::FORMAT
            )));
        }
        if r.seed != seed {
            return Err(Error::Invalid(format!(
                "matrix merge: shards ran with different seeds ({seed} and {}); run every shard with the same --seed",
                r.seed
            )));
        }
        if let Some(s) = &r.shard {
            shards.push(s.clone());
        }
        for s in r.skipped {
            if !out.skipped.contains(&s) {
                out.skipped.push(s);
            }
        }
        for cell in r.planned {
            if !out.planned.contains(&cell) {
                out.planned.push(cell);
            }
        }
        for cell in r.results {
            if out
                .results
                .iter()
                .any(|c| c.client == cell.client && c.scenario == cell.scenario)
            {
                return Err(Error::Invalid(format!(
                    "matrix merge: {}/{} is in two reports (overlapping shards?)",
                    cell.client, cell.scenario
                )));
            }
            out.results.push(cell);
        }
    }
    // A client skipped on one shard (not installed there) but run on another is not skipped.
    let ran: Vec<String> = out.results.iter().map(|r| r.client.clone()).collect();
    out.skipped.retain(|(c, _)| !ran.contains(c));
    let scenario_order: Vec<String> = crate::Scenario::built_in()
        .iter()
        .map(|s| s.id.to_owned())
        .collect();
    let client_order: Vec<String> = crate::Adapter::built_in()
        .iter()
        .map(|a| a.name.clone())
        .collect();
    let pos = |v: &[String], x: &str| v.iter().position(|y| y == x).unwrap_or(usize::MAX);
    out.results.sort_by(|a, b| {
        (
            pos(&client_order, &a.client),
            &a.client,
            pos(&scenario_order, &a.scenario),
        )
            .cmp(&(
                pos(&client_order, &b.client),
                &b.client,
                pos(&scenario_order, &b.scenario),
            ))
    });
    Ok(out)
}

/// One line of the expectations file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Client name.
    pub client: String,
    /// Scenario id, or `*` for every scenario without its own line.
    pub scenario: String,
    /// `pass` or `fail`.
    pub verdict: String,
    /// What the client did (read from its transcript and output).
    pub reason: String,
}

/// A client's protocol conduct as recorded: the judge's rules it fails somewhere in the
/// matrix (`client<TAB>@rules<TAB>id,id,...|-<TAB>reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    /// Client name.
    pub client: String,
    /// The rule ids failed in at least one of its cells.
    pub rules: std::collections::BTreeSet<String>,
    /// What it did (read from its transcripts).
    pub reason: String,
}

/// The expectations file: `client<TAB>scenario<TAB>pass|fail<TAB>reason`, and per client
/// optionally `client<TAB>@rules<TAB>rule-ids<TAB>reason`; `#` comments.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// The cell lines.
    pub lines: Vec<Expectation>,
    /// The rule lines.
    pub rule_sets: Vec<RuleSet>,
}

/// A cell that is not as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexpected {
    /// Client.
    pub client: String,
    /// Scenario.
    pub scenario: String,
    /// What the file says (`None`: no line).
    pub expected: Option<String>,
    /// What happened.
    pub got: String,
    /// Why the cell came out as it did: the outcome with its detail, and any MUST rule it
    /// broke or key it leaked, so that a CI log shows the cause without the report files.
    pub why: String,
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected {
            Some(e) => write!(
                f,
                "{}/{}: expected {e}, got {} ({})",
                self.client, self.scenario, self.got, self.why
            ),
            None => write!(
                f,
                "{}/{}: got {} ({}), and the expectations file has no line for it",
                self.client, self.scenario, self.got, self.why
            ),
        }
    }
}

impl Expectations {
    /// Parses the file text.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let mut lines = Vec::new();
        let mut rule_sets = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.splitn(4, '\t').collect();
            if cols.len() == 4 && cols[1] == "@rules" && !cols[3].trim().is_empty() {
                rule_sets.push(RuleSet {
                    client: cols[0].into(),
                    rules: cols[2]
                        .split(',')
                        .map(str::trim)
                        .filter(|r| !r.is_empty() && *r != "-")
                        .map(str::to_owned)
                        .collect(),
                    reason: cols[3].trim().into(),
                });
                continue;
            }
            if cols.len() < 4 || !matches!(cols[2], "pass" | "fail") || cols[3].trim().is_empty() {
                return Err(Error::Invalid(format!(
                    "{origin}:{}: want client<TAB>scenario<TAB>pass|fail<TAB>reason (or \
                     client<TAB>@rules<TAB>rule,rule|-<TAB>reason)",
                    i + 1
                )));
            }
            lines.push(Expectation {
                client: cols[0].into(),
                scenario: cols[1].into(),
                verdict: cols[2].into(),
                reason: cols[3].trim().into(),
            });
        }
        Ok(Self { lines, rule_sets })
    }

    /// The line for a cell: its own, else the client's `*` line.
    pub fn lookup(&self, client: &str, scenario: &str) -> Option<&Expectation> {
        self.lines
            .iter()
            .find(|e| e.client == client && e.scenario == scenario)
            .or_else(|| {
                self.lines
                    .iter()
                    .find(|e| e.client == client && e.scenario == "*")
            })
    }

    /// The cells whose verdict differs from the file, or that it does not cover.
    pub fn compare(&self, results: &[ScenarioResult]) -> Vec<Unexpected> {
        results
            .iter()
            .filter_map(|r| {
                let e = self.lookup(&r.client, &r.scenario);
                match e {
                    Some(e) if e.verdict == r.verdict() => None,
                    _ => Some(Unexpected {
                        client: r.client.clone(),
                        scenario: r.scenario.clone(),
                        expected: e.map(|e| e.verdict.clone()),
                        got: r.verdict().into(),
                        why: r.why(),
                    }),
                }
            })
            .collect()
    }
}

impl Expectations {
    /// Every way `report` departs from the file, one line each: cells whose verdict differs
    /// (or that the file does not cover), planned cells without a result (a merge missing a
    /// shard), and clients the file expects that were not run at all (not installed). Empty:
    /// the matrix is as expected.
    pub fn unexpected(&self, report: &RunReport) -> Vec<String> {
        let mut out: Vec<String> = self
            .compare(&report.results)
            .iter()
            .map(ToString::to_string)
            .collect();
        // Only a merge can have holes: a shard's own report plans the whole matrix but runs
        // its share.
        if report.shard.is_none() {
            for (c, s) in report.missing() {
                out.push(format!(
                    "{c}/{s}: in the matrix, but no report has a result for it"
                ));
            }
        }
        for (c, reason) in &report.skipped {
            if self.lines.iter().any(|l| &l.client == c) {
                out.push(format!("{c}: expected in the matrix, not run: {reason}"));
            }
        }
        // A client's failed rules, over all its cells: only a whole matrix has them all.
        if report.shard.is_none() {
            for set in &self.rule_sets {
                let mine: Vec<&ScenarioResult> = report
                    .results
                    .iter()
                    .filter(|r| r.client == set.client)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let got: std::collections::BTreeSet<String> = mine
                    .iter()
                    .filter_map(|r| r.grade.as_ref())
                    .flat_map(|g| g.failed.iter().map(|f| f.id.clone()))
                    .collect();
                if got != set.rules {
                    let list =
                        |s: Vec<&String>| s.into_iter().cloned().collect::<Vec<_>>().join(", ");
                    out.push(format!(
                        "{}/@rules: now fails [{}]; newly failed: [{}]; no longer failed: [{}]",
                        set.client,
                        list(got.iter().collect()),
                        list(got.difference(&set.rules).collect()),
                        list(set.rules.difference(&got).collect()),
                    ));
                }
            }
        }
        out
    }
}

/// The cells of a matrix: every client (the named ones, or every built-in one installed here)
/// through every scenario.
#[derive(Debug)]
pub struct Plan {
    /// (adapter, detected version, scenario) for each cell.
    pub cells: Vec<(Adapter, Option<String>, Scenario)>,
    /// (client, scenario) of every cell, before sharding.
    pub planned: Vec<(String, String)>,
    /// Built-in clients not installed here, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl Plan {
    /// Plans `clients` (empty: every installed built-in client) through `scenarios`. A named
    /// client that cannot run is an error naming it.
    pub fn new(
        clients: &[String],
        scenarios: &[Scenario],
        harness: Option<&std::path::Path>,
    ) -> Result<Self, Error> {
        let mut adapters = Vec::new();
        let mut skipped = Vec::new();
        if clients.is_empty() {
            for (a, d) in Adapter::installed(harness) {
                match d {
                    // Every client in its safest way of taking the key.
                    Ok(v) => adapters.push((a.safest(), v)),
                    Err(why) => skipped.push((a.name.clone(), why)),
                }
            }
        } else {
            for name in clients {
                let a = Adapter::find(name)?;
                match a.detect(harness) {
                    Ok(v) => adapters.push((a.safest(), v)),
                    Err(why) => {
                        return Err(Error::Setup(format!("cannot run {name}: {why}")));
                    }
                }
            }
        }
        let mut cells = Vec::new();
        for (a, v) in &adapters {
            // A client that cannot be used with Sectigo: one scenario, the confirmation.
            for s in a.scenarios_for(scenarios) {
                if s.applies_to(a) {
                    cells.push((a.clone(), v.clone(), s));
                }
            }
        }
        let planned = cells
            .iter()
            .map(|(a, _, s)| (a.name.clone(), s.id.to_owned()))
            .collect();
        Ok(Self {
            cells,
            planned,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn merging_files_names_the_file_that_is_not_a_shard_report() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("shard-1.json");
        let mut shard = RunReport::new(8, Vec::new());
        shard.shard = Some("1/1".into());
        std::fs::write(&good, serde_json::to_string(&shard).unwrap()).unwrap();
        assert_eq!(merge_files(std::slice::from_ref(&good)).unwrap().seed, 8);
        let other = dir.path().join("other.json");
        std::fs::write(&other, "{\"not\": \"a report\"}").unwrap();
        let err = merge_files(&[good.clone(), other.clone()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("other.json") && text.contains("is not a `matrix --json` report"),
            "{text}"
        );
        let missing = dir.path().join("shard-2.json");
        let text = merge_files(&[good, missing]).unwrap_err().to_string();
        assert!(
            text.contains("cannot read") && text.contains("shard-2.json"),
            "{text}"
        );
    }

    #[test]
    fn unexpected_names_differing_missing_and_skipped_clients() {
        let e =
            Expectations::parse("certbot\t*\tpass\tworks\nlego\t*\tpass\tworks\n", "x").unwrap();
        let mut report = RunReport::new(1, Vec::new());
        report.planned = vec![("certbot".into(), "wildcard".into())];
        report.skipped = vec![("lego".into(), "not installed".into())];
        let lines = e.unexpected(&report);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("certbot/wildcard: in the matrix, but no report"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("lego: expected in the matrix, not run"),
            "{lines:?}"
        );
        // A shard's own report plans the whole matrix: its holes are other shards' cells.
        report.shard = Some("1/2".into());
        assert_eq!(e.unexpected(&report).len(), 1);
    }

    #[test]
    fn a_clients_failed_rules_are_compared_as_a_set() {
        use crate::grade::{Grade, RuleFailure};
        let e = Expectations::parse(
            "certbot\t*\tpass\tworks\ncertbot\t@rules\tretry-after-honoured\tpolls early\n",
            "x",
        )
        .unwrap();
        assert_eq!(e.rule_sets.len(), 1);
        assert_eq!(e.lines.len(), 1, "the rule line is not a cell line");
        let cell = |rules: &[&str]| {
            let mut r = crate::run::ScenarioResult::pending(
                "certbot",
                None,
                &crate::Scenario::built_in()[0],
                std::path::Path::new("/w"),
                8,
            );
            r.outcome.ok = true;
            r.passed = true;
            r.outcome.kind = crate::run::OutcomeKind::Issued;
            r.grade = Some(Grade {
                exchanges: 5,
                rules: 20,
                failed: rules
                    .iter()
                    .map(|id| RuleFailure {
                        id: (*id).into(),
                        severity: "SHOULD".into(),
                        count: 1,
                        first: String::new(),
                        statement: String::new(),
                        seqs: vec![3],
                    })
                    .collect(),
            });
            r
        };
        let same = RunReport::new(8, vec![cell(&["retry-after-honoured"]), cell(&[])]);
        assert!(e.unexpected(&same).is_empty(), "{:?}", e.unexpected(&same));
        let changed = RunReport::new(8, vec![cell(&["bad-nonce-retried"])]);
        let u = e.unexpected(&changed);
        assert_eq!(u.len(), 1, "{u:?}");
        assert!(
            u[0].contains("newly failed: [bad-nonce-retried]")
                && u[0].contains("no longer failed: [retry-after-honoured]"),
            "{}",
            u[0]
        );
        let mut shard = changed.clone();
        shard.shard = Some("1/2".into());
        assert!(
            e.unexpected(&shard).is_empty(),
            "a shard has only part of the cells"
        );
    }

    #[test]
    fn shards_partition_the_cells() {
        let cells: Vec<usize> = (0..10).collect();
        let mut all: Vec<usize> = (1..=3)
            .flat_map(|k| Shard { k, n: 3 }.select(cells.clone()))
            .collect();
        all.sort();
        assert_eq!(all, cells);
        assert_eq!(Shard { k: 2, n: 3 }.select(cells), vec![1, 4, 7]);
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { k: 2, n: 3 });
    }

    #[test]
    fn expectations_parse_and_wildcard() {
        let e = Expectations::parse(
            "# c\ncertbot\t*\tpass\tworks\ncertbot\tbad-nonce-twice\tfail\tcrashes\n",
            "x",
        )
        .unwrap();
        assert_eq!(e.lookup("certbot", "wildcard").unwrap().verdict, "pass");
        assert_eq!(
            e.lookup("certbot", "bad-nonce-twice").unwrap().verdict,
            "fail"
        );
        assert!(e.lookup("lego", "wildcard").is_none());
        assert!(Expectations::parse("certbot\t*\tmaybe\tx\n", "x").is_err());
    }
}
