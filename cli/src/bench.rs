//! `acme-harness bench`: arguments and printing over the load generator (the `acme-load`
//! crate), which any ACME server can be measured with (the mock, Pebble, a staging CA).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acme_load::{AccountMode, Config, Progress};
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use reference_client::manage::account_key_type;
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
        account_key: account_key_type(&args.account_key).context("--account-key")?,
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
        print!("{report}");
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
        Progress::Preparing { .. } => eprintln!("bench: {p}"),
        // One line rewritten in place once a second.
        _ => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{p}   ");
            let _ = err.flush();
        }
    }
}
