//! `acme-harness vet` and `acme-harness matrix` as a library: plan the cells, run them, write
//! the reports and decide the exit status. The CLI parses flags into these and prints what
//! they return.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::matrix::Expectations;
use crate::report::{self, RunReport};
use crate::{Adapter, Error, Scenario, ScenarioResult};

/// One client, in one or every secret-passing mode, through the chosen scenarios.
#[derive(Debug, Clone)]
pub struct VetPlan {
    /// The client.
    pub adapter: Adapter,
    /// Its detected version.
    pub version: Option<String>,
    /// The modes to run: the safest alone, one named, or every mode (safest first).
    pub modes: Vec<Adapter>,
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
}

impl VetPlan {
    /// Plans `adapter` in `secret_mode` (`None`: the safest; `all`: every mode) through the
    /// scenarios `scenario_ids` (empty: every built-in one). A built-in client that cannot
    /// run here is an error; for a command template (`custom`) it is a warning, returned.
    pub fn new(
        adapter: Adapter,
        custom: bool,
        secret_mode: Option<&str>,
        scenario_ids: &[String],
        harness: Option<&Path>,
    ) -> Result<(Self, Option<String>), Error> {
        let (version, warning) = match adapter.detect(harness) {
            Ok(v) => (v, None),
            Err(why) if !custom => {
                return Err(Error::Setup(format!("cannot vet {}: {why}", adapter.name)));
            }
            Err(why) => (None, Some(why)),
        };
        let modes = match secret_mode {
            None => vec![adapter.safest()],
            Some("all") => adapter
                .secret_modes()
                .iter()
                .map(|m| adapter.in_mode(m))
                .collect::<Result<_, _>>()?,
            Some(name) => vec![
                adapter
                    .in_mode(name)
                    .map_err(|e| Error::Invalid(format!("--secret-mode: {e}")))?,
            ],
        };
        // A client that cannot be used with Sectigo runs the one scenario that confirms it.
        let scenarios = adapter.scenarios_for(&Scenario::select(scenario_ids)?);
        if let Some(why) = &adapter.unusable
            && scenarios.is_empty()
        {
            return Err(Error::Invalid(format!(
                "{} cannot be used with Sectigo: {why}. (None of the scenarios given expects a \
                 certificate, so none can confirm it.)",
                adapter.name
            )));
        }
        let plan = Self {
            adapter,
            version,
            modes,
            scenarios,
        };
        Ok((plan, warning))
    }

    /// Whether several modes are compared (each then has its own rows, named `client [mode]`).
    pub fn compares_modes(&self) -> bool {
        self.modes.len() > 1
    }

    fn row_name(&self, mode: &Adapter) -> String {
        if self.compares_modes() {
            format!("{} [{}]", mode.name, mode.secret_mode)
        } else {
            mode.name.clone()
        }
    }

    /// Every (adapter, version, scenario) cell to run.
    pub fn cells(&self) -> Vec<(Adapter, Option<String>, Scenario)> {
        let mut cells = Vec::new();
        for mode in &self.modes {
            let mut a = mode.clone();
            a.name = self.row_name(mode);
            cells.extend(
                self.scenarios
                    .iter()
                    .filter(|s| s.applies_to(mode))
                    .map(|s| (a.clone(), self.version.clone(), s.clone())),
            );
        }
        cells
    }

    /// The line that says what is about to run.
    pub fn describe(&self, seed: u64, base: &Path) -> String {
        let modes: Vec<&str> = self.modes.iter().map(|m| m.secret_mode.as_str()).collect();
        let version = self
            .version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default();
        let unusable = match (&self.adapter.unusable, self.scenarios.first()) {
            (Some(why), Some(first)) => format!(
                "{} cannot be used with Sectigo: {why}. Running {} only, to confirm the CA's \
                 refusal.\n",
                self.adapter.name, first.id
            ),
            _ => String::new(),
        };
        format!(
            "{unusable}vetting {} (key passed as: {}){version} over {} scenario(s); seed {seed}; files in {}",
            self.adapter.name,
            modes.join(", "),
            self.scenarios.len(),
            base.display()
        )
    }

    /// The results of each mode, in plan order (safest first).
    pub fn per_mode(&self, report: &RunReport) -> Vec<(String, Vec<ScenarioResult>)> {
        self.modes
            .iter()
            .map(|m| {
                let name = self.row_name(m);
                let rows = report
                    .results
                    .iter()
                    .filter(|r| r.client == name)
                    .cloned()
                    .collect();
                (m.secret_mode.clone(), rows)
            })
            .collect()
    }

    /// The verdict: the safest mode's (a leak that only a less safe mode has is advice).
    pub fn passed(&self, report: &RunReport) -> bool {
        match self.per_mode(report).first() {
            Some((_, rows)) if self.compares_modes() => rows.iter().all(|r| r.passed),
            _ => report.all_passed(),
        }
    }
}

/// The line that says how clients are run: sandboxed, or (`--no-sandbox`) unconfined.
pub fn sandbox_line(sandbox: bool) -> String {
    if sandbox {
        "sandbox: each client command runs in bubblewrap: a private network with loopback only \
         (the scenario's mock is there, nothing has a route out), its work dir read-write, the \
         system and its own install read-only, a private /tmp, no home directory"
            .into()
    } else {
        "warning: --no-sandbox: clients run unconfined, as you, with this machine's network \
         and files; what they touch is still traced and reported, but it really happens"
            .into()
    }
}

/// Moves a sandboxed run into a private network namespace: when this process is not in one,
/// runs this program again with the same arguments inside one (bwrap --unshare-net), waits
/// for it and returns its exit code; `None` when the run can go on here (already inside, or
/// `--no-sandbox`). A machine where namespaces are not permitted gets an error naming
/// `--no-sandbox`.
pub fn enter_private_network(sandbox: bool) -> Result<Option<i32>, Error> {
    if !sandbox || crate::sandbox::loopback_only() {
        return Ok(None);
    }
    if std::env::var_os(crate::sandbox::NETNS_ENV).is_some() {
        return Err(Error::Setup(
            "sandbox: re-run in a private network namespace, but it has more than loopback; \
             give --no-sandbox"
                .into(),
        ));
    }
    if let Some(why) = crate::sandbox::unavailable() {
        return Err(Error::Setup(format!("sandbox: {why}")));
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = crate::sandbox::in_private_network(&args).map_err(Error::Setup)?;
    let status = cmd
        .status()
        .map_err(|e| Error::Setup(format!("sandbox: cannot run bwrap: {e}")))?;
    Ok(Some(status.code().unwrap_or(2)))
}

/// The work directory: `given` (created, made absolute: clients run in their own
/// directories), or a fresh one under the system's temporary directory.
pub fn work_dir(given: Option<PathBuf>, prefix: &str) -> Result<PathBuf, Error> {
    let dir = match given {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::Io {
                path: format!("--workdir {}", d.display()),
                message: e.to_string(),
            })?;
            return std::fs::canonicalize(&d).map_err(|e| Error::Io {
                path: format!("--workdir {}", d.display()),
                message: e.to_string(),
            });
        }
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            std::env::temp_dir().join(format!("{prefix}{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: format!("{} (give --workdir DIR)", dir.display()),
        message: e.to_string(),
    })?;
    Ok(dir)
}

/// A seed for a run that was given none (printed, so the run can be replayed).
pub fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() % 1_000_000
}

/// A progress callback that numbers results as they arrive: `[n/total] line`.
pub fn numbered_progress(
    total: usize,
    line: fn(&ScenarioResult) -> String,
    print: impl Fn(&str) + Send + Sync + 'static,
) -> Arc<dyn Fn(&ScenarioResult) + Send + Sync> {
    let done = AtomicUsize::new(0);
    Arc::new(move |r: &ScenarioResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        print(&format!("[{n}/{total}] {}", line(r)));
    })
}

/// `vet --list`: the scenarios, and each built-in client with whether it runs here and the
/// ways it takes the key.
pub fn listing(harness: Option<&Path>) -> String {
    let mut out = String::from("scenarios:\n");
    for s in Scenario::built_in() {
        out.push_str(&format!("  {:<30} {}\n", s.id, s.description));
    }
    out.push_str("clients:\n");
    for (a, d) in Adapter::installed(harness) {
        let state = match d {
            Ok(Some(v)) => format!("installed: {v}"),
            Ok(None) => "installed".into(),
            Err(why) => format!("not available: {why}"),
        };
        out.push_str(&match &a.unusable {
            Some(why) => format!(
                "  {:<16} {state}; cannot be used with Sectigo: {why}\n",
                a.name
            ),
            None => format!(
                "  {:<16} {state}; the key passed as: {} (safest first)\n",
                a.name,
                a.secret_modes().join(", ")
            ),
        });
    }
    out
}

/// Report files to write: JSON, JUnit XML, HTML. They are also the command line's flags
/// (`--json`, `--junit`, `--html` of `vet` and `matrix`); the field docs are their help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Outputs {
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (one test case per client and scenario).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl Outputs {
    /// Writes each requested file; returns the paths written.
    pub fn write(&self, report: &RunReport) -> Result<Vec<PathBuf>, Error> {
        let mut written = Vec::new();
        if let Some(p) = &self.json {
            let text = serde_json::to_string_pretty(&report.with_assessments())
                .map_err(|e| Error::Invalid(format!("cannot serialize the report: {e}")))?;
            written.push(write(p, &text)?);
        }
        if let Some(p) = &self.junit {
            written.push(write(p, &report::junit_for(report))?);
        }
        if let Some(p) = &self.html {
            written.push(write(p, &report::html(report))?);
        }
        Ok(written)
    }
}

/// Writes `text` to `path`.
pub fn write(path: &Path, text: &str) -> Result<PathBuf, Error> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    Ok(path.to_owned())
}

/// What a finished matrix says: its Markdown, and how it departs from the expectations.
#[derive(Debug)]
pub struct MatrixVerdict {
    /// The Markdown table (with each cell's expected reason when expectations were given).
    pub markdown: String,
    /// Clients that were not run, with the reason.
    pub not_run: Vec<String>,
    /// Every departure from the expectations (or, without them, a merge's missing cells).
    pub unexpected: Vec<String>,
    /// Whether expectations were given (then a departure fails the run).
    pub checked: bool,
}

impl MatrixVerdict {
    /// Compares `report` with `expectations` (read from the file `--expectations` names).
    pub fn new(report: &RunReport, expectations: Option<&Path>) -> Result<Self, Error> {
        let expectations = match expectations {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                    path: format!("--expectations {}", p.display()),
                    message: e.to_string(),
                })?;
                Some(Expectations::parse(&text, &p.display().to_string())?)
            }
            None => None,
        };
        let why = |r: &ScenarioResult| {
            expectations
                .as_ref()
                .and_then(|e| e.lookup(&r.client, &r.scenario))
                .map(|e| e.reason.clone())
        };
        let unexpected = match &expectations {
            Some(e) => e.unexpected(report),
            // Without expectations, a merge still names its holes (a shard that failed).
            None if report.shard.is_none() => report
                .missing()
                .iter()
                .map(|(c, s)| format!("{c}/{s}: in the matrix, but no report has a result for it"))
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            markdown: report::matrix_markdown(&report.results, &why),
            not_run: report
                .skipped
                .iter()
                .map(|(c, reason)| format!("not run: {c}: {reason}"))
                .collect(),
            unexpected,
            checked: expectations.is_some(),
        })
    }

    /// Whether the run fails: expectations were given and something departs from them.
    pub fn failed(&self) -> bool {
        self.checked && !self.unexpected.is_empty()
    }

    /// The closing line(s): every cell as expected, or each departure.
    pub fn summary(&self, cells: usize) -> String {
        if self.unexpected.is_empty() {
            return if self.checked {
                format!("matrix: every cell as expected ({cells} cells)")
            } else {
                String::new()
            };
        }
        let mut out = format!("matrix: {} unexpected cell(s):", self.unexpected.len());
        for u in &self.unexpected {
            out.push_str(&format!("\n  {u}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_mode_runs_each_scenario_under_its_own_row_name_and_the_safest_decides() {
        let certbot = Adapter::find("certbot").unwrap();
        let modes: Vec<Adapter> = certbot
            .secret_modes()
            .iter()
            .map(|m| certbot.in_mode(m).unwrap())
            .collect();
        assert!(
            modes.len() >= 2,
            "certbot has a config-file and a flag mode"
        );
        let plan = VetPlan {
            adapter: certbot.clone(),
            version: Some("certbot 2.1.0".into()),
            modes,
            scenarios: Scenario::select(&["happy-rsa-ov-rsa".into()]).unwrap(),
        };
        let cells = plan.cells();
        assert_eq!(cells.len(), plan.modes.len());
        let names: Vec<&str> = cells.iter().map(|(a, _, _)| a.name.as_str()).collect();
        assert!(
            names[0].starts_with("certbot [") && names[0] != names[1],
            "{names:?}"
        );
        let line = plan.describe(8, Path::new("/w"));
        assert!(
            line.contains("key passed as: ") && line.contains("seed 8"),
            "{line}"
        );
    }

    #[test]
    fn a_named_secret_mode_that_does_not_exist_names_the_flag() {
        let err = VetPlan::new(
            Adapter::custom(vec!["true".into()]),
            true,
            Some("telepathy"),
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--secret-mode") && err.contains("telepathy"),
            "{err}"
        );
    }

    #[test]
    fn a_work_dir_is_made_absolute() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let rel = pathdiff(tmp.path(), &cwd);
        let dir = work_dir(Some(rel.join("runs")), "x-").unwrap();
        assert!(dir.is_absolute() && dir.ends_with("runs") && dir.is_dir());
        let fresh = work_dir(None, "acme-harness-test-").unwrap();
        assert!(fresh.is_dir());
        std::fs::remove_dir(fresh).unwrap();
    }

    /// `path` relative to `base` when it is under it, else `path` itself.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        path.strip_prefix(base)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }
}
