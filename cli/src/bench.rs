//! `acme-harness bench`: arguments and printing over the load generator (the `acme-load`
//! crate), which any ACME server can be measured with (the mock, Pebble, a staging CA).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acme_load::{AccountMode, Config, Progress, Report};
use acme_proto::SignatureAlgorithm;
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use reference_client::{CertKeyType, EabCredential};

/// Environment variable that may hold the EAB HMAC key (base64url), instead of a file.
const HMAC_ENV: &str = "ACME_HARNESS_EAB_HMAC_KEY";

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Directory URL of the server under load (the mock prints its URLs; Pebble's is
    /// https://127.0.0.1:14000/dir).
    #[arg(long, value_name = "URL")]
    directory: String,

    /// PEM file of the CA that signed the server's TLS certificate (the mock's ca-bundle.pem).
    #[arg(long, value_name = "FILE")]
    ca_file: PathBuf,

    /// EAB key id; every new account binds with it (the credential must allow reuse).
    #[arg(long, value_name = "KID")]
    eab_kid: Option<String>,

    /// File holding the EAB HMAC key (base64url). Otherwise ACME_HARNESS_EAB_HMAC_KEY.
    #[arg(long, value_name = "FILE")]
    eab_hmac_key_file: Option<PathBuf>,

    /// Simulated clients running at once, each on its own connection.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,

    /// Run for this many seconds (default 10 when --issuances is not given).
    #[arg(long, value_name = "SECONDS", conflicts_with = "issuances")]
    duration: Option<f64>,

    /// Stop after this many completed or failed issuances.
    #[arg(long, value_name = "N")]
    issuances: Option<u64>,

    /// Start issuances at this many per second in total (open schedule), instead of as fast
    /// as the clients can: for latency at a given load, e.g. half the saturation rate.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,

    /// Names are `cN.DOMAIN`, one per client; must be delegated to the EAB credential on the
    /// mock's Sectigo profiles (the demo credential covers physics.example.edu and below).
    #[arg(long, default_value = "physics.example.edu", value_name = "DOMAIN")]
    domain: String,

    /// Account key algorithm: es256, es384, eddsa, rs256 (RSA keys are slow to generate:
    /// combine with --accounts per-client).
    #[arg(long, default_value = "es256", value_name = "ALG")]
    account_key: String,

    /// Certificate key type: p256, p384, rsa2048.
    #[arg(long, default_value = "p256", value_name = "TYPE")]
    cert_key: String,

    /// A new account for every issuance (what a fresh CI client does), or one per client.
    #[arg(long, value_enum, default_value_t = Accounts::PerIssuance)]
    accounts: Accounts,

    /// Account keys generated before the clock starts in --duration mode (default: enough
    /// for 2,500 issuances/s). Past them keys are made during the run, and the report says so.
    #[arg(long, value_name = "N")]
    pregenerate: Option<usize>,

    /// First poll delay in milliseconds for authorizations and orders (0: poll right away);
    /// then 1 ms, doubling up to 1 s.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    poll_ms: u64,

    /// Seconds one request may take before it counts as a transport timeout (a server that
    /// deadlocks shows up as timeouts instead of a hung run).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    request_timeout: u64,

    /// Pid of the server when it runs on this machine: its resident memory and CPU time are
    /// read from /proc before and after the run.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,

    /// Print the report as JSON on stdout (the progress line stays on stderr).
    #[arg(long)]
    json: bool,

    /// No progress line.
    #[arg(long)]
    quiet: bool,

    /// Threads of the driver's own async runtime. One keeps the driver cheap (no cross-thread
    /// wake-ups) and leaves the other cores to the server; raise it for servers on other hosts.
    #[arg(long, default_value_t = 1, value_name = "N")]
    driver_threads: usize,
}

/// How accounts are made (see [`acme_load::AccountMode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Accounts {
    /// newAccount with a fresh key (and EAB) at the start of every issuance.
    PerIssuance,
    /// One account per simulated client, made in the first issuance and reused.
    PerClient,
}

fn parse_account_alg(text: &str) -> anyhow::Result<SignatureAlgorithm> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "es256" => SignatureAlgorithm::Es256,
        "es384" => SignatureAlgorithm::Es384,
        "eddsa" | "ed25519" => SignatureAlgorithm::EdDsa,
        "rs256" => SignatureAlgorithm::Rs256,
        other => bail!("--account-key {other:?}: use es256, es384, eddsa or rs256"),
    })
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let config = Config {
        directory: args.directory.clone(),
        ca_file: args.ca_file.clone(),
        eab: EabCredential::from_command_line(
            args.eab_kid.as_deref(),
            args.eab_hmac_key_file.as_deref(),
            HMAC_ENV,
            None,
        )?,
        concurrency: args.concurrency,
        duration: args.duration,
        issuances: args.issuances,
        rate: args.rate,
        domain: args.domain.clone(),
        account_key: parse_account_alg(&args.account_key)?,
        cert_key: CertKeyType::parse(&args.cert_key).with_context(|| {
            format!("--cert-key {:?}: use p256, p384 or rsa2048", args.cert_key)
        })?,
        cert_key_name: args.cert_key.clone(),
        accounts: match args.accounts {
            Accounts::PerIssuance => AccountMode::PerIssuance,
            Accounts::PerClient => AccountMode::PerClient,
        },
        pregenerate: args.pregenerate,
        poll: Duration::from_millis(args.poll_ms),
        request_timeout: Duration::from_secs(args.request_timeout),
        pid: args.pid,
        driver_threads: args.driver_threads,
    };
    let progress: Option<acme_load::ProgressFn> = (!args.quiet).then(|| {
        let printer: acme_load::ProgressFn = Arc::new(print_progress);
        printer
    });
    let report = acme_load::run(config, progress).await?;
    if !args.quiet {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.issuances == 0 {
        bail!(
            "no certificate was issued: see the errors above (is the server in an always-valid \
             mode, and does the EAB credential cover {}?)",
            args.domain
        );
    }
    Ok(())
}

fn print_progress(p: &Progress) {
    use std::io::Write as _;
    match p {
        Progress::Preparing { keys, csrs } => {
            eprintln!("bench: generating {keys} account keys and {csrs} CSRs");
        }
        Progress::Tick {
            elapsed,
            done,
            rate_now,
            requests,
            failed,
        } => {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r[{elapsed:6.1}s] {done} issued ({rate_now:.0}/s now, {:.0}/s overall), {requests} requests, {failed} failed   ",
                *done as f64 / elapsed,
            );
            let _ = err.flush();
        }
        _ => {}
    }
}

fn print_report(r: &Report) {
    println!("acme-harness bench against {}", r.directory);
    println!(
        "  {} clients, accounts {}, account key {}, certificate key {}, EAB {}, rate {}",
        r.concurrency,
        match r.accounts {
            AccountMode::PerIssuance => "per issuance",
            AccountMode::PerClient => "per client",
        },
        r.account_key,
        r.cert_key,
        if r.eab { "yes" } else { "no" },
        r.target_rate
            .map_or("as fast as possible".to_owned(), |x| format!("{x}/s")),
    );
    println!(
        "  issuances    {} in {:.2} s = {:.1}/s ({} failed)",
        r.issuances, r.elapsed_seconds, r.issuances_per_second, r.failed
    );
    println!(
        "  requests     {} = {:.0}/s ({:.2} per issuance)",
        r.requests, r.requests_per_second, r.requests_per_issuance
    );
    println!("  latency (ms)  endpoint       count      p50      p90      p99      max");
    for row in &r.latency {
        println!(
            "                {:<12} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            row.endpoint, row.count, row.p50_ms, row.p90_ms, row.p99_ms, row.max_ms
        );
    }
    if r.errors.is_empty() {
        println!("  errors       none");
    } else {
        println!("  errors       (by endpoint: problem type)");
        for (kind, n) in &r.errors {
            println!("                {n:>7}  {kind}");
        }
    }
    if r.account_keys_generated_during_run > 0 {
        println!(
            "  note         {} account keys were generated during the run (raise --pregenerate)",
            r.account_keys_generated_during_run
        );
    }
    if let Some(s) = &r.server {
        println!(
            "  server pid {}: RSS {:.1} MiB -> {:.1} MiB (peak {:.1} MiB); CPU {:.2} s = {:.2} cores{}",
            s.pid,
            s.before.rss_kib as f64 / 1024.0,
            s.after.rss_kib as f64 / 1024.0,
            s.after.peak_rss_kib as f64 / 1024.0,
            s.cpu_seconds,
            s.cpu_cores,
            s.cpu_us_per_issuance
                .map_or(String::new(), |us| format!(", {us:.0} µs per issuance")),
        );
    }
    if let Some(cpu) = r.driver_cpu_seconds {
        println!(
            "  driver       CPU {cpu:.2} s = {:.2} cores",
            cpu / r.elapsed_seconds
        );
    }
}
