//! `acme-harness`: the one binary. Thin: parses arguments and calls the crates.

mod admin;
mod bench;
mod conformance;
mod serve;
mod vet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The server allocates small, short-lived buffers on every request from several threads;
/// glibc's allocator spent a tenth of its CPU time at saturation (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Offline test harness for Sectigo's ACME service (InCommon, ZeroSSL): a mock CA that
/// behaves like Sectigo's, so ACME clients can be tried before they get real secrets.
#[derive(Debug, Parser)]
#[command(
    name = "acme-harness",
    version,
    about,
    long_about = None,
    after_help = "Stand-ins for Pebble's binaries, with their own Go-style flags (docs/pebble.md):\n  acme-harness pebble -config FILE [-strict] [-dnsserver HOST:PORT] [-version]\n  acme-harness challtestsrv [-dnsserver ADDRS] [-http01 ADDRS] [-management ADDR] ...\nThe same when the binary is run through a link named pebble or pebble-challtestsrv."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock Sectigo ACME server (defaults: https://127.0.0.1:14000, both InCommon
    /// profiles, the demo organisation).
    Serve(serve::ServeArgs),
    /// The reference ACME client: register (with EAB), issue, renew, revoke, deactivate,
    /// rollover, show. Exit codes: 1 local, 2 usage, 3 refused by the CA, 4 network.
    Client(reference_client::command::ClientArgs),
    /// Manage the running mock server: organisations, departments, domains, delegations,
    /// EAB credentials, certificates, recorded requests, fault plans, DNS records.
    Admin(admin::AdminArgs),
    /// The judge: grade a recorded transcript against the rule catalogue (Markdown, JSON,
    /// JUnit XML), or print the rules. Exit status 1 when a MUST rule fails.
    Conformance(conformance::ConformanceArgs),
    /// Load-test any ACME server: N concurrent clients each running the full issuance flow;
    /// issuances/s, requests/s, latency percentiles per endpoint, errors, server memory.
    Bench(bench::BenchArgs),
    /// Vet an ACME client before it gets real secrets: run it against a fresh mock per
    /// scenario; outcome, the judge's rules, and where the EAB HMAC key ended up.
    Vet(vet::VetArgs),
    /// The interoperability matrix: every installed client through every scenario; shards,
    /// `matrix merge`, and expectations that fail CI when behaviour changes.
    Matrix(vet::MatrixArgs),
}

fn main() -> ExitCode {
    // Stand-ins dispatch on the program name (a link named `pebble`) or the first argument,
    // before clap: their command lines are Go `flag` syntax, not ours.
    let args: Vec<String> = std::env::args().collect();
    let program = args.first().map(std::path::Path::new);
    let name = program
        .and_then(|p| p.file_stem())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let code = match (name, args.get(1).map(String::as_str)) {
        ("pebble", _) => Some(pebble_compat::main("pebble", &args[1..])),
        ("pebble-challtestsrv", _) => Some(pebble_compat::challtestsrv::main(
            "pebble-challtestsrv",
            &args[1..],
        )),
        (_, Some("pebble")) => Some(pebble_compat::main("pebble", &args[2..])),
        (_, Some("challtestsrv" | "pebble-challtestsrv")) => Some(
            pebble_compat::challtestsrv::main("pebble-challtestsrv", &args[2..]),
        ),
        _ => None,
    };
    if let Some(code) = code {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACME_HARNESS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Client(args) => Ok(reference_client::command::run(args).await),
            Command::Admin(args) => admin::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Conformance(args) => conformance::run(args).await,
            Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Vet(args) => vet::run(args).await,
            Command::Matrix(args) => vet::matrix(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
