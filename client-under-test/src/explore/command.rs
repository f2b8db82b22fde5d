//! `vet --explore` and `vet --faults` around the search, so that the CLI only parses flags and
//! prints: the configuration from the flags, the report files, the verdict against the
//! expectations, and the scenarios a replayed plan runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mock_server::faults::FaultPlan;

use super::report::{self, ExploreExpectations, ExploreReport};
use super::{ExploreConfig, client_spec};
use crate::vet::{self, Outputs, VetPlan};
use crate::{Adapter, Error};

/// The flags of `vet --explore` (and those of `vet` it uses).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--client NAME|FILE`.
    pub client: Option<String>,
    /// The command template after `--`.
    pub template: Vec<String>,
    /// `--secret-mode`.
    pub secret_mode: Option<String>,
    /// `--cases`.
    pub cases: Option<usize>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--jobs`.
    pub jobs: usize,
    /// `--max-time`.
    pub max_time: Option<Duration>,
    /// `--workdir`.
    pub workdir: Option<PathBuf>,
    /// Not `--no-sandbox`: each case's client runs in the sandbox.
    pub sandbox: bool,
}

/// The adapter to explore (the plan's one secret mode) and the configuration.
pub fn config(
    plan: &VetPlan,
    flags: &Flags,
    harness: Option<PathBuf>,
) -> Result<(Adapter, ExploreConfig), Error> {
    let [adapter] = &plan.modes[..] else {
        return Err(Error::Invalid(
            "--explore runs one secret mode: give --secret-mode NAME, not all".into(),
        ));
    };
    let config = ExploreConfig {
        cases: flags.cases.unwrap_or(super::DEFAULT_CASES),
        seed: flags.seed.unwrap_or_else(vet::fresh_seed),
        jobs: flags.jobs.max(1),
        max_time: flags
            .max_time
            .unwrap_or(Duration::from_secs(super::DEFAULT_MAX_TIME)),
        base_dir: vet::work_dir(flags.workdir.clone(), "acme-harness-explore-")?,
        harness,
        client_spec: client_spec(
            flags.client.as_deref(),
            &flags.template,
            flags.secret_mode.as_deref(),
        ),
        base_limit: super::DEFAULT_BASE_LIMIT,
        max_shrink_runs: super::DEFAULT_SHRINK_RUNS,
        sandbox: flags.sandbox,
    };
    Ok((adapter.clone(), config))
}

/// Writes the requested report files (JSON, JUnit XML, HTML); returns the paths written.
pub fn write_outputs(r: &ExploreReport, outputs: &Outputs) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    if let Some(p) = &outputs.json {
        let text = serde_json::to_string_pretty(r)
            .map_err(|e| Error::Invalid(format!("cannot serialize the report: {e}")))?;
        written.push(vet::write(p, &text)?);
    }
    if let Some(p) = &outputs.junit {
        written.push(vet::write(p, &report::junit(r))?);
    }
    if let Some(p) = &outputs.html {
        written.push(vet::write(p, &report::html(r))?);
    }
    Ok(written)
}

/// The exit verdict and the lines to print with it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Printed after the summary.
    pub lines: Vec<String>,
    /// Exit status 0.
    pub passed: bool,
}

/// Reads `--expectations FILE` (before the run, so that a wrong path or line fails at once).
pub fn load_expectations(path: Option<&Path>) -> Result<Option<ExploreExpectations>, Error> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: format!("--expectations {}", path.display()),
        message: e.to_string(),
    })?;
    ExploreExpectations::parse(&text, &path.display().to_string()).map(Some)
}

/// Without expectations: passed when no finding is a failure. With them: passed when the
/// findings are the recorded ones, each difference a line.
pub fn verdict(r: &ExploreReport, expected: Option<&ExploreExpectations>) -> Verdict {
    let Some(expected) = expected else {
        return Verdict {
            lines: Vec::new(),
            passed: r.passed(),
        };
    };
    let mut lines: Vec<String> = expected
        .unexpected(r)
        .into_iter()
        .map(|d| format!("explore: {d}"))
        .collect();
    let passed = lines.is_empty() && r.errors.is_empty() && r.cases_run > 0;
    lines.push(format!(
        "explore: findings {} the expectations",
        if lines.is_empty() {
            "as recorded in"
        } else {
            "differ from"
        }
    ));
    Verdict { lines, passed }
}

/// Reads the plan of `vet --faults FILE`.
pub fn read_plan(path: &Path) -> Result<FaultPlan, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: format!("--faults {}", path.display()),
        message: e.to_string(),
    })?;
    FaultPlan::parse(&text, &format!("--faults {}", path.display()))
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// `vet --faults FILE`: the plan's rules replace each scenario's faults
/// ([`super::with_plan`]); returns the plan's seed, which replays it when `--seed` is not
/// given.
pub fn replay(plan: &mut VetPlan, path: &Path) -> Result<Option<u64>, Error> {
    let faults = read_plan(path)?;
    plan.scenarios = super::with_plan(std::mem::take(&mut plan.scenarios), &faults);
    Ok(faults.seed)
}

/// What `vet --explore` prints at the end.
#[derive(Debug)]
pub struct Done {
    /// The report.
    pub report: ExploreReport,
    /// The summary ([`report::summary`]).
    pub summary: String,
    /// Report files written.
    pub written: Vec<PathBuf>,
    /// The exit verdict.
    pub verdict: Verdict,
}

/// All of `vet --explore` after parsing: reads the expectations, explores (the start line
/// and a line per run go to `progress`), writes the report files and decides the verdict.
pub async fn run(
    plan: &VetPlan,
    flags: &Flags,
    harness: Option<PathBuf>,
    expectations: Option<&Path>,
    outputs: &Outputs,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Done, Error> {
    let expected = load_expectations(expectations)?;
    let (adapter, config) = config(plan, flags, harness)?;
    progress(&super::start_line(
        &adapter,
        plan.version.as_deref(),
        &config,
    ));
    let report = super::explore(&adapter, plan.version.clone(), &config, progress).await?;
    let written = write_outputs(&report, outputs)?;
    let verdict = verdict(&report, expected.as_ref());
    Ok(Done {
        summary: report::summary(&report),
        report,
        written,
        verdict,
    })
}
