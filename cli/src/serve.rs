//! `acme-harness serve`: the mock server on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use mock_server::{MockServer, Orgs, Profile, ServerConfig};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (read it from ready.json).
    #[arg(long, default_value = "127.0.0.1:14000", value_name = "ADDR")]
    listen: SocketAddr,

    /// A DNS name or IP address clients on other hosts reach the server by (a Windows
    /// machine running win-acme, an appliance); repeatable. Each goes into the listener's TLS
    /// certificate, and the first one is the host of every URL the server hands out, so the
    /// clients must resolve it (DNS or their hosts file). See docs/windows.md.
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,

    /// Where the CA and ready.json are kept; the same directory keeps the same CA across
    /// restarts. Default: the user's data directory (e.g. ~/.local/share/acme-harness).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Profile to serve, by built-in name or TOML file; repeat to serve several. The first is
    /// the default directory. Default: every built-in profile, sectigo-incommon-rsa-ov first
    /// (sectigo-incommon-ecc-ov, sectigo-ov, sectigo-dv, sectigo-ev, zerossl-dv90, rfc8555).
    #[arg(long = "profile", value_name = "NAME|FILE")]
    profiles: Vec<String>,

    /// A custom profile TOML file to serve (same as `--profile FILE`); repeatable.
    #[arg(long = "profile-file", value_name = "FILE")]
    profile_files: Vec<PathBuf>,

    /// A fault plan (TOML or JSON) for every request; per-credential plans are set through
    /// the admin API (`acme-harness admin faults set`).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,

    /// Seed of every random fault decision. Printed at start; pass it again to replay a run.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Address of the mock DNS (UDP and TCP) that challenge validation resolves through.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    dns_listen: SocketAddr,

    /// Port on which http-01 answers are fetched (clients under test listen there).
    #[arg(long = "http-01-port", default_value_t = 5002, value_name = "PORT")]
    http01_port: u16,

    /// Keep organisations, credentials, accounts, orders, certificates, revocations and
    /// transcripts in this SQLite file, so that they survive a restart or a crash. Default:
    /// everything in memory.
    #[arg(long, value_name = "FILE")]
    persist: Option<PathBuf>,

    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_connections: usize,

    /// Orders kept in memory; beyond it the oldest finished orders, with their authorizations
    /// and certificates, are dropped (a long-lived server stays bounded).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_orders: usize,

    /// Largest request body in bytes.
    #[arg(long, default_value_t = 256 * 1024, value_name = "BYTES")]
    max_body_bytes: usize,

    /// Seconds a client may take to send request headers, and again for the body.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    request_timeout: u64,

    /// Port on which tls-alpn-01 answers are fetched.
    #[arg(long = "tls-alpn-01-port", default_value_t = 5001, value_name = "PORT")]
    tlsalpn01_port: u16,

    /// Organisation file (organisations, departments, delegated domains, EAB credentials).
    /// Default: the built-in demo organisation (fixtures/demo-org.toml).
    #[arg(long, value_name = "FILE")]
    org_file: Option<PathBuf>,
}

pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    match dirs::data_local_dir() {
        Some(dir) => Ok(dir.join("acme-harness")),
        None => bail!("cannot find a data directory for this user: pass --data-dir DIR"),
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut profiles: Vec<Profile> = args
        .profiles
        .iter()
        .map(|p| Profile::load(p).with_context(|| format!("--profile {p}")))
        .collect::<anyhow::Result<_>>()?;
    for path in &args.profile_files {
        profiles.push(
            Profile::from_file(path)
                .with_context(|| format!("--profile-file {}", path.display()))?,
        );
    }
    if profiles.is_empty() {
        profiles = Profile::all_built_in().context("built-in profiles")?;
    }
    let orgs = match &args.org_file {
        Some(path) => Orgs::from_file(path).context("--org-file")?,
        None => Orgs::demo(),
    };
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let faults = args
        .faults
        .as_deref()
        .map(mock_server::faults::FaultPlan::from_file)
        .transpose()
        .context("--faults")?;
    // The web console, which opens vet and matrix reports with the harness's HTML report.
    let console = std::sync::Arc::new(mock_console::Console::default());
    console.set_report_view(client_under_test::report::html_from_json);
    let server = MockServer::start(ServerConfig {
        listen: args.listen,
        hostnames: args.hostnames.clone(),
        data_dir: Some(data_dir.clone()),
        ca: None,
        profiles,
        orgs,
        seed: args.seed,
        faults,
        dns_listen: args.dns_listen,
        http01_port: args.http01_port,
        tlsalpn01_port: args.tlsalpn01_port,
        persist: args.persist.clone(),
        tls_identity: None,
        validation_dns: None,
        pebble_paths: false,
        mounts: vec![mock_console::mount(console)],
        limits: mock_server::Limits {
            max_connections: args.max_connections,
            max_body_bytes: args.max_body_bytes,
            max_orders: args.max_orders,
            header_read_timeout: std::time::Duration::from_secs(args.request_timeout),
            body_read_timeout: std::time::Duration::from_secs(args.request_timeout),
            ..mock_server::Limits::default()
        },
    })
    .await
    .map_err(|e| match e {
        mock_server::StartError::Hostname { .. } => anyhow::anyhow!("--hostname: {e}"),
        e => anyhow::Error::new(e),
    })
    .with_context(|| match args.listen.port() {
        14000 => {
            "starting the server (if port 14000 is taken, pass --listen 127.0.0.1:0)".to_owned()
        }
        _ => "starting the server".to_owned(),
    })?;
    let ini = mock_server::banner::write_certbot_ini(server.ready(), &data_dir);
    if let Err(e) = &ini {
        eprintln!("warning: {e}; no certbot command printed");
    }
    let ini = ini.ok().flatten();
    print!(
        "{}",
        mock_server::banner::text(
            server.ready(),
            &data_dir,
            mock_console::url(server.ready()).as_deref(),
            ini.as_deref()
        )
    );
    let mint = server.mint_command();
    for line in mock_server::banner::exposure_warnings(server.addr(), server.ready(), &mint) {
        eprintln!("{line}");
    }
    wait_for_signal().await?;
    eprintln!("stopping: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

/// Returns on Ctrl-C or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}
