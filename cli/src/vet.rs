//! `acme-harness vet` and `acme-harness matrix`: thin argument parsing over client-under-test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use client_under_test::explore::{self, command::Flags};
use client_under_test::matrix::{Plan, Shard, merge_files};
use client_under_test::report::{self, RunReport};
use client_under_test::vet::{self, MatrixVerdict, Outputs, VetPlan};
use client_under_test::{Adapter, RunConfig, Scenario, run_all};

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
    /// A built-in client (reference, certbot, lego, dehydrated, uacme, caddy, certbot-pypi,
    /// node-acme-client, acme-tiny) or an adapter file (fixtures/clients/*.toml).
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
    out: Outputs,

    #[command(flatten)]
    explore: ExploreArgs,

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

/// `vet --explore` (property-based vetting, docs/vetting.md) and `vet --faults` (its replay).
#[derive(Debug, Args)]
struct ExploreArgs {
    /// Search generated fault plans instead of running the scenarios; shrink each failure to a
    /// minimal plan file that --faults replays.
    #[arg(long, conflicts_with_all = ["remote", "scenarios", "faults"])]
    explore: bool,
    /// Cases to generate (--explore). Default: 40.
    #[arg(long, value_name = "N", requires = "explore")]
    cases: Option<usize>,
    /// Bound of the whole --explore run: 90s, 5m, 1h. Default: 5m.
    #[arg(long, value_name = "D", requires = "explore", value_parser = explore::parse_duration)]
    max_time: Option<std::time::Duration>,
    /// Recorded findings (--explore; ci/explore-expectations.tsv): exit 1 when they differ.
    #[arg(long, value_name = "FILE", requires = "explore")]
    expectations: Option<PathBuf>,
    /// A fault plan (TOML or JSON) on the canary credential instead of each scenario's faults.
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
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

    /// Run clients unconfined, as today's user with the machine's network and files, for
    /// machines where namespaces are not permitted. Default: each client command runs in a
    /// bubblewrap sandbox (private loopback-only network, its work dir, a private /tmp).
    #[arg(long)]
    no_sandbox: bool,
}

impl RunArgs {
    /// Re-runs the command inside a private network namespace when the sandbox needs one
    /// (returns that run's exit code), and says which mode the run is in.
    fn confine(&self) -> anyhow::Result<Option<ExitCode>> {
        let sandbox = !self.no_sandbox;
        if let Some(code) = vet::enter_private_network(sandbox)? {
            return Ok(Some(ExitCode::from(u8::try_from(code).unwrap_or(2))));
        }
        eprintln!("{}", vet::sandbox_line(sandbox));
        Ok(None)
    }
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
    out: Outputs,
}

fn harness_bin() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

/// Writes the requested report files, naming each on stderr.
fn write_outputs(out: &Outputs, report: &RunReport) -> anyhow::Result<()> {
    for path in out.write(report)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) async fn run(args: VetArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        print!("{}", vet::listing(harness_bin().as_deref()));
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
    if let Some(code) = args.run.confine()? {
        return Ok(code);
    }
    let custom = !args.command.is_empty();
    let adapter = match (&args.client, custom) {
        (_, true) => Adapter::custom(args.command.clone()),
        (Some(name), false) => Adapter::find(name)?,
        (None, false) => bail!("give --client NAME or `-- COMMAND TEMPLATE`"),
    };
    let harness = harness_bin();
    let (mut plan, warning) = VetPlan::new(
        adapter,
        custom,
        args.secret_mode.as_deref(),
        &args.scenarios,
        harness.as_deref(),
    )?;
    if let Some(why) = warning {
        eprintln!("warning: {why}");
    }
    if args.explore.explore {
        return run_explore(&args, &plan, harness).await;
    }
    let mut seed = args.run.seed;
    if let Some(path) = &args.explore.faults {
        seed = seed.or(explore::command::replay(&mut plan, path)?);
    }
    let seed = seed.unwrap_or_else(vet::fresh_seed);
    let base = vet::work_dir(args.run.workdir, "acme-harness-vet-")?;
    eprintln!("{}", plan.describe(seed, &base));
    let cells = plan.cells();
    let config = RunConfig {
        harness,
        seed,
        base_dir: base,
        jobs: args.run.jobs,
        sandbox: !args.run.no_sandbox,
    };
    let progress = vet::numbered_progress(cells.len(), report::progress_line, |l| eprintln!("{l}"));
    let report = RunReport::new(seed, run_all(cells, &config, progress).await?);
    print!("\n{}", report::table(&report.results));
    if plan.compares_modes() {
        print!("\n{}", report::secret_modes_table(&plan.per_mode(&report)));
    }
    write_outputs(&args.out, &report)?;
    Ok(exit(plan.passed(&report)))
}

/// `vet --explore`: the search, its summary and report files, the verdict.
async fn run_explore(
    args: &VetArgs,
    plan: &VetPlan,
    harness: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let flags = Flags {
        client: args.client.clone(),
        template: args.command.clone(),
        secret_mode: args.secret_mode.clone(),
        cases: args.explore.cases,
        seed: args.run.seed,
        jobs: args.run.jobs,
        max_time: args.explore.max_time,
        workdir: args.run.workdir.clone(),
        sandbox: !args.run.no_sandbox,
    };
    let expectations = args.explore.expectations.as_deref();
    let progress = |l: &str| eprintln!("{l}");
    let done =
        explore::command::run(plan, &flags, harness, expectations, &args.out, &progress).await?;
    print!("\n{}", done.summary);
    done.written
        .iter()
        .for_each(|p| eprintln!("wrote {}", p.display()));
    done.verdict.lines.iter().for_each(|l| println!("{l}"));
    Ok(exit(done.verdict.passed))
}

async fn remote(args: VetArgs, label: String) -> anyhow::Result<ExitCode> {
    use client_under_test::remote::{RemoteConfig, RemoteScope, run_remote};
    use std::io::IsTerminal as _;

    let r = args.remote_args;
    let listen = r
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 14000)));
    let scenarios = Scenario::select(&args.scenarios)?;
    let seed = args.run.seed.unwrap_or_else(vet::fresh_seed);
    let data_dir = match r.data_dir {
        Some(d) => d,
        None => crate::serve::default_data_dir()?,
    };
    let config = RemoteConfig {
        label: label.clone(),
        seed,
        base_dir: PathBuf::new(),
        ca_dir: data_dir.join("ca"),
        listen,
        hostnames: r.hostnames,
        timeout: std::time::Duration::from_secs(r.remote_timeout.unwrap_or(900)),
        idle: r.remote_idle.map(std::time::Duration::from_secs),
        scan_dir: r.scan_dir.clone(),
    };
    for warning in config.check()? {
        eprintln!("warning: {warning}");
    }
    let config = RemoteConfig {
        base_dir: vet::work_dir(args.run.workdir, "acme-harness-vet-remote-")?,
        ..config
    };
    eprintln!(
        "vetting {label} on another host over {} scenario(s), one at a time; seed {seed}; files \
         in {}",
        scenarios.len(),
        config.base_dir.display()
    );
    // Enter ends a scenario's wait when a person is at the terminal.
    let mut enter = std::io::stdin()
        .is_terminal()
        .then(client_under_test::remote::enter_presses);
    let say = |text: &str| println!("{text}");
    let progress = vet::numbered_progress(
        scenarios.len(),
        client_under_test::remote::progress_line,
        |l| eprintln!("{l}"),
    );
    let results = run_remote(&scenarios, &config, &say, enter.as_mut(), &*progress)
        .await
        .context("vet --remote")?;
    let mut report = RunReport::new(seed, results);
    report.remote = Some(RemoteScope::new(r.scan_dir.as_deref()));
    print!("\n{}", report::table_for(&report));
    write_outputs(&args.out, &report)?;
    Ok(exit(report.all_passed()))
}

fn finish_matrix(args: &MatrixReportArgs, report: &RunReport) -> anyhow::Result<ExitCode> {
    let verdict = MatrixVerdict::new(report, args.expectations.as_deref())?;
    println!("{}", verdict.markdown);
    for line in &verdict.not_run {
        println!("{line}");
    }
    if let Some(p) = &args.markdown {
        let text = format!(
            "{}\n{}\n",
            verdict.markdown,
            report::overall_line(&report.results)
        );
        eprintln!("wrote {}", vet::write(p, &text)?.display());
    }
    write_outputs(&args.out, report)?;
    let summary = verdict.summary(report.results.len());
    if !summary.is_empty() {
        println!("{summary}");
    }
    Ok(exit(!verdict.failed()))
}

pub(crate) async fn matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    if let Some(MatrixAction::Merge { files, report }) = args.action {
        return finish_matrix(&report, &merge_files(&files)?);
    }
    if let Some(code) = args.run.confine()? {
        return Ok(code);
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
    let base = vet::work_dir(args.run.workdir, "acme-harness-matrix-")?;
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
        sandbox: !args.run.no_sandbox,
    };
    let progress = vet::numbered_progress(cells.len(), report::progress_line, |l| eprintln!("{l}"));
    let mut report = RunReport::new(seed, run_all(cells, &config, progress).await?);
    report.shard = shard.map(|s| s.to_string());
    report.skipped = skipped;
    report.planned = planned;
    finish_matrix(&args.report, &report)
}
