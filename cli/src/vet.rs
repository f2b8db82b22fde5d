//! `acme-harness vet` and `acme-harness matrix`: thin argument parsing over client-under-test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use client_under_test::matrix::{Expectations, Plan, Shard, merge};
use client_under_test::report::{self, RunReport};
use client_under_test::{Adapter, RunConfig, Scenario, ScenarioResult, run_all};

const VET_HELP: &str = "\
Examples:
  acme-harness vet --client certbot
  acme-harness vet --client lego --scenario wildcard --scenario renewal --html lego.html
  acme-harness vet -- my-client --server {directory} --kid {eab_kid} --hmac {eab_hmac_key} \\
      --cafile {ca_bundle} --dir {workdir} -d {domain}
  acme-harness vet --remote win-acme --listen 0.0.0.0:14000 --hostname testbox.campus.example \\
      --scenario happy-rsa-ov-rsa --scenario processing-20s --scan-dir ./copied-logs

A client that cannot run here (win-acme on Windows, an appliance) is vetted with --remote:
each scenario's mock waits for it, and the instructions say what to set on it (docs/windows.md).

Placeholders in a command template: {directory} {eab_kid} {eab_hmac_key} {domain}
{domain_file} ({domain} with * as _) {ca_bundle} {workdir} {http_port} {key_type} {harness}.
Each scenario gets a fresh mock, a canary EAB credential and its own work dir; the client is
killed after the scenario's time limit. Exit status: 0 every scenario passed, 1 one failed,
2 the harness could not run.";

/// Vet an ACME client against the mock, once per scenario.
#[derive(Debug, Args)]
#[command(after_long_help = VET_HELP)]
pub(crate) struct VetArgs {
    /// A built-in client (reference, certbot, lego, dehydrated, uacme) or an adapter file
    /// (fixtures/clients/*.toml).
    #[arg(long, value_name = "NAME|FILE", required_unless_present_any = ["command", "list", "remote"])]
    client: Option<String>,

    /// Vet a client that runs on another host (win-acme on Windows, an appliance): one
    /// scenario at a time, start a fresh mock, print what to set on the client, and wait for
    /// its requests and certificate download. LABEL names it in the report (default: remote).
    #[arg(
        long,
        value_name = "LABEL",
        num_args = 0..=1,
        default_missing_value = "remote",
        conflicts_with_all = ["client", "command"]
    )]
    remote: Option<String>,

    #[command(flatten)]
    remote_args: RemoteArgs,

    /// Run only this scenario; repeatable. Default: every built-in scenario.
    #[arg(long = "scenario", value_name = "ID")]
    scenarios: Vec<String>,

    /// How the client is given the EAB key: the name of one of its secret modes, or `all` to
    /// run every mode and compare where the key ends up. Default: its safest mode (a 0600
    /// config file rather than the command line, where the client supports one).
    #[arg(long, value_name = "NAME|all")]
    secret_mode: Option<String>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    out: OutArgs,

    /// List the scenarios and the built-in clients (installed or not), then exit.
    #[arg(long)]
    list: bool,

    /// A command template instead of --client (after `--`).
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "client")]
    command: Vec<String>,
}

/// Options of `vet --remote`.
#[derive(Debug, Args)]
struct RemoteArgs {
    /// Where each scenario's mock listens (--remote). A non-loopback address lets other hosts
    /// reach it; give --hostname too. Default: 127.0.0.1:14000.
    #[arg(long, value_name = "ADDR", requires = "remote")]
    listen: Option<SocketAddr>,

    /// A DNS name or IP address the remote client reaches the mock by (--remote); repeatable.
    /// In the mock's TLS certificate, and the first one in every URL.
    #[arg(long = "hostname", value_name = "NAME", requires = "remote")]
    hostnames: Vec<String>,

    /// Seconds to wait for the remote client in each scenario (--remote). Default: 900.
    #[arg(long, value_name = "SECS", requires = "remote")]
    remote_timeout: Option<u64>,

    /// End a scenario when the remote client has sent nothing for SECS seconds (--remote);
    /// by default only its certificate download, the timeout or Enter end it.
    #[arg(long, value_name = "SECS", requires = "remote")]
    remote_idle: Option<u64>,

    /// A folder of the remote client's logs and configuration, copied back from its host before
    /// the run ends, to scan for every scenario's canary key (--remote).
    #[arg(long, value_name = "DIR", requires = "remote")]
    scan_dir: Option<PathBuf>,

    /// Where the mock's CA is kept (--remote): the remote host trusts it once, and
    /// `acme-harness serve` uses the same one. Default: as `serve`'s.
    #[arg(long, value_name = "DIR", requires = "remote")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Seed of the mock's fault decisions; printed, and the same seed replays a run.
    #[arg(long)]
    seed: Option<u64>,

    /// Where each scenario's work dir, output and transcript are kept.
    /// Default: a new directory under the system's temp dir.
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,

    /// Scenarios run at once (each with its own mock and ports).
    #[arg(long, default_value_t = 2, value_name = "N")]
    jobs: usize,
}

#[derive(Debug, Args)]
struct OutArgs {
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Write JUnit XML (one test case per client and scenario).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,

    /// Write a self-contained HTML report.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

const MATRIX_HELP: &str = "\
Examples:
  acme-harness matrix --expectations ci/matrix-expectations.tsv --markdown matrix.md
  acme-harness matrix --shard 2/4 --seed 8 --json shard-2.json       # one CI job of four
  acme-harness matrix merge shard-*.json --markdown matrix.md --expectations ci/matrix-expectations.tsv

Exit status: 1 when --expectations is given and a cell differs from it (or it has no line for
a cell, or an expected client is not installed, or a merge lacks a planned cell because a
shard's report is missing); 2 the harness could not run.";

/// Run every installed client through every scenario: the interoperability matrix.
#[derive(Debug, Args)]
#[command(after_long_help = MATRIX_HELP, args_conflicts_with_subcommands = true)]
pub(crate) struct MatrixArgs {
    #[command(subcommand)]
    action: Option<MatrixAction>,

    /// Clients to run, comma-separated. Default: every built-in client installed here.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    clients: Vec<String>,

    /// Run only this scenario; repeatable.
    #[arg(long = "scenario", value_name = "ID")]
    scenarios: Vec<String>,

    /// Run share K of N (1-based), for a CI job matrix; merge the JSON with `matrix merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    report: MatrixReportArgs,
}

#[derive(Debug, Subcommand)]
enum MatrixAction {
    /// Combine shard JSON reports into one matrix.
    Merge {
        /// The shards' --json files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        report: MatrixReportArgs,
    },
}

#[derive(Debug, Args)]
struct MatrixReportArgs {
    /// Expected verdicts with reasons (ci/matrix-expectations.tsv); any other cell fails.
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,

    /// Write the Markdown matrix (README / CI summary).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,

    #[command(flatten)]
    out: OutArgs,
}

fn harness_bin() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

fn base_dir(given: Option<PathBuf>, prefix: &str) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create --workdir {}", d.display()))?;
            // Clients run in their own directories: every path handed to them is absolute.
            std::fs::canonicalize(&d)
                .with_context(|| format!("cannot resolve --workdir {}", d.display()))
        }
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            let d = std::env::temp_dir().join(format!("{prefix}{stamp}-{}", std::process::id()));
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}; give --workdir DIR", d.display()))?;
            Ok(d)
        }
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn write_outputs(out: &OutArgs, report: &RunReport) -> anyhow::Result<()> {
    if let Some(p) = &out.json {
        write(p, &serde_json::to_string_pretty(report)?)?;
    }
    if let Some(p) = &out.junit {
        write(p, &report::junit(&report.results))?;
    }
    if let Some(p) = &out.html {
        write(p, &report::html(report))?;
    }
    Ok(())
}

fn progress(total: usize) -> Arc<dyn Fn(&ScenarioResult) + Send + Sync> {
    let done = Arc::new(AtomicUsize::new(0));
    Arc::new(move |r: &ScenarioResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!("[{n}/{total}] {}", report::progress_line(r));
    })
}

fn list() {
    println!("scenarios:");
    for s in Scenario::built_in() {
        println!("  {:<26} {}", s.id, s.description);
    }
    println!("clients:");
    for (a, d) in Adapter::installed(harness_bin().as_deref()) {
        let state = match d {
            Ok(Some(v)) => format!("installed: {v}"),
            Ok(None) => "installed".into(),
            Err(why) => format!("not available: {why}"),
        };
        println!(
            "  {:<12} {state}; the key passed as: {} (safest first)",
            a.name,
            a.secret_modes().join(", ")
        );
    }
}

pub(crate) async fn run(args: VetArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        list();
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(label) = args.remote.clone() {
        return remote(args, label).await;
    }
    let r = &args.remote_args;
    if r.listen.is_some()
        || !r.hostnames.is_empty()
        || r.remote_timeout.is_some()
        || r.remote_idle.is_some()
        || r.scan_dir.is_some()
        || r.data_dir.is_some()
    {
        // clap does not enforce `requires = "remote"` next to --client, which conflicts with it.
        bail!(
            "--listen, --hostname, --remote-timeout, --remote-idle, --scan-dir and --data-dir \
             go with --remote (a client on another host)"
        );
    }
    let adapter = if args.command.is_empty() {
        let name = args
            .client
            .as_deref()
            .context("give --client NAME or `-- COMMAND TEMPLATE`")?;
        Adapter::find(name)?
    } else {
        Adapter::custom(args.command.clone())
    };
    let harness = harness_bin();
    let version = match adapter.detect(harness.as_deref()) {
        Ok(v) => v,
        Err(why) if args.command.is_empty() => {
            bail!("cannot vet {}: {why}", adapter.name)
        }
        Err(why) => {
            eprintln!("warning: {why}");
            None
        }
    };
    let modes: Vec<Adapter> = match args.secret_mode.as_deref() {
        None => vec![adapter.safest()],
        Some("all") => adapter
            .secret_modes()
            .iter()
            .map(|m| adapter.in_mode(m))
            .collect::<Result<_, _>>()?,
        Some(name) => vec![adapter.in_mode(name).context("--secret-mode")?],
    };
    let scenarios = Scenario::select(&args.scenarios)?;
    let seed = args.run.seed.unwrap_or_else(rand_seed);
    let base = base_dir(args.run.workdir, "acme-harness-vet-")?;
    eprintln!(
        "vetting {} (key passed as: {}){} over {} scenario(s); seed {seed}; files in {}",
        adapter.name,
        modes
            .iter()
            .map(|m| m.secret_mode.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        scenarios.len(),
        base.display()
    );
    let config = RunConfig {
        harness,
        seed,
        base_dir: base,
        jobs: args.run.jobs,
    };
    let several = modes.len() > 1;
    let mut cells = Vec::new();
    for mode in &modes {
        let mut a = mode.clone();
        if several {
            // Each mode its own row in the reports.
            a.name = format!("{} [{}]", a.name, a.secret_mode);
        }
        cells.extend(
            scenarios
                .iter()
                .map(|s| (a.clone(), version.clone(), s.clone())),
        );
    }
    let total = cells.len();
    let results = run_all(cells, &config, progress(total)).await?;
    let report = RunReport::new(seed, results);
    print!("\n{}", report::table(&report.results));
    if several {
        let per_mode: Vec<(String, Vec<ScenarioResult>)> = modes
            .iter()
            .map(|m| {
                let name = format!("{} [{}]", m.name, m.secret_mode);
                let rows = report
                    .results
                    .iter()
                    .filter(|r| r.client == name)
                    .cloned()
                    .collect();
                (m.secret_mode.clone(), rows)
            })
            .collect();
        print!("\n{}", report::secret_modes_table(&per_mode));
        write_outputs(&args.out, &report)?;
        // The verdict is the safest mode's.
        return Ok(passed(per_mode[0].1.iter().all(|r| r.passed)));
    }
    write_outputs(&args.out, &report)?;
    Ok(passed(report.all_passed()))
}

fn passed(yes: bool) -> ExitCode {
    if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `vet --remote`: the scenarios one at a time against a client on another host.
async fn remote(args: VetArgs, label: String) -> anyhow::Result<ExitCode> {
    use client_under_test::remote::{RemoteConfig, RemoteScope, run_remote};
    use std::io::IsTerminal as _;

    let r = args.remote_args;
    let listen = r
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 14000)));
    if listen.ip().is_unspecified() && r.hostnames.is_empty() {
        bail!(
            "--listen {listen} needs --hostname NAME: the URLs the remote client follows must \
             name the host it reaches this one by"
        );
    }
    if label.is_empty() || label.contains(['/', '\\']) || label.starts_with('.') {
        bail!("--remote {label:?}: give a short label such as win-acme (it names a folder)");
    }
    let scenarios = Scenario::select(&args.scenarios)?;
    let seed = args.run.seed.unwrap_or_else(rand_seed);
    let base = base_dir(args.run.workdir, "acme-harness-vet-remote-")?;
    let data_dir = match r.data_dir {
        Some(d) => d,
        None => crate::serve::default_data_dir()?,
    };
    if let Some(dir) = &r.scan_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--scan-dir: cannot create {}", dir.display()))?;
    }
    if !listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {listen}: other hosts can reach each scenario's mock. It is a \
             test CA: trust it on test machines only, and remove it afterwards \
             (docs/windows.md). Each scenario's credential is a throwaway canary."
        );
    }
    let config = RemoteConfig {
        label: label.clone(),
        seed,
        base_dir: base.clone(),
        ca_dir: data_dir.join("ca"),
        listen,
        hostnames: r.hostnames,
        timeout: std::time::Duration::from_secs(r.remote_timeout.unwrap_or(900)),
        idle: r.remote_idle.map(std::time::Duration::from_secs),
        scan_dir: r.scan_dir.clone(),
    };
    eprintln!(
        "vetting {label} on another host over {} scenario(s), one at a time; seed {seed}; files \
         in {}",
        scenarios.len(),
        base.display()
    );
    // Enter ends a scenario's wait when a person is at the terminal.
    let mut enter = std::io::stdin().is_terminal().then(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
        rx
    });
    let say = |text: &str| println!("{text}");
    let total = scenarios.len();
    let done = AtomicUsize::new(0);
    let progress = |r: &ScenarioResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!(
            "[{n}/{total}] {}",
            client_under_test::remote::progress_line(r)
        );
    };
    let results = run_remote(&scenarios, &config, &say, enter.as_mut(), &progress)
        .await
        .context("vet --remote")?;
    let mut report = RunReport::new(seed, results);
    report.remote = Some(RemoteScope::new(r.scan_dir.as_deref()));
    print!("\n{}", report::table_for(&report));
    write_outputs(&args.out, &report)?;
    Ok(passed(report.all_passed()))
}

fn rand_seed() -> u64 {
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

fn finish_matrix(args: &MatrixReportArgs, report: &RunReport) -> anyhow::Result<ExitCode> {
    let expectations = match &args.expectations {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --expectations {}", p.display()))?;
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
    let markdown = report::matrix_markdown(&report.results, &why);
    println!("{markdown}");
    for (c, reason) in &report.skipped {
        println!("not run: {c}: {reason}");
    }
    if let Some(p) = &args.markdown {
        let mut text = markdown.clone();
        text.push_str(&format!("\n{}\n", report::overall_line(&report.results)));
        write(p, &text)?;
    }
    write_outputs(&args.out, report)?;
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
    if unexpected.is_empty() {
        if expectations.is_some() {
            println!(
                "matrix: every cell as expected ({} cells)",
                report.results.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("matrix: {} unexpected cell(s):", unexpected.len());
    for u in &unexpected {
        println!("  {u}");
    }
    Ok(if expectations.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) async fn matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    if let Some(MatrixAction::Merge { files, report }) = args.action {
        let mut reports = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            let r: RunReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a `matrix --json` report", f.display()))?;
            reports.push(r);
        }
        let merged = merge(reports)?;
        return finish_matrix(&report, &merged);
    }
    let harness = harness_bin();
    let scenarios = Scenario::select(&args.scenarios)?;
    let Plan {
        mut cells,
        planned,
        skipped,
    } = Plan::new(&args.clients, &scenarios, harness.as_deref())?;
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    if let Some(s) = shard {
        cells = s.select(cells);
    }
    let seed = args.run.seed.unwrap_or(8);
    let base = base_dir(args.run.workdir, "acme-harness-matrix-")?;
    eprintln!(
        "matrix: {} cell(s){}; seed {seed}; files in {}",
        cells.len(),
        shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        base.display()
    );
    let config = RunConfig {
        harness,
        seed,
        base_dir: base,
        jobs: args.run.jobs,
    };
    let total = cells.len();
    let results = run_all(cells, &config, progress(total)).await?;
    let mut report = RunReport::new(seed, results);
    report.shard = shard.map(|s| s.to_string());
    report.skipped = skipped;
    report.planned = planned;
    finish_matrix(&args.report, &report)
}
