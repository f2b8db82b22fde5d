//! `acme-harness serve`: the mock server on embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use mock_server::{MockServer, Orgs, Profile, ReadyInfo, ServerConfig};

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
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--org-file: cannot read {}", path.display()))?;
            Orgs::from_toml(&text, &path.display().to_string()).context("--org-file")?
        }
        None => Orgs::demo(),
    };
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let faults = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--faults: cannot read {}", path.display()))?;
            Some(
                mock_server::faults::FaultPlan::parse(&text, &path.display().to_string())
                    .context("--faults")?,
            )
        }
        None => None,
    };
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
    print_banner(server.ready(), &data_dir);
    for line in exposure_warnings(server.addr(), server.ready(), &mint_command(&server)) {
        eprintln!("{line}");
    }
    wait_for_signal().await?;
    eprintln!("stopping: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

/// The command that mints a fresh credential like the demo one.
fn mint_command(server: &MockServer) -> String {
    server
        .ready()
        .demo
        .as_ref()
        .and_then(|demo| {
            let orgs = server.state().store.orgs.load();
            let cred = orgs.credential(&demo.eab_kid)?;
            let domains: Vec<String> = demo
                .domains
                .iter()
                .map(|d| format!("--domain '{d}'"))
                .collect();
            Some(format!(
                "acme-harness admin eab create --dept {} {}",
                cred.department_id,
                domains.join(" ")
            ))
        })
        .unwrap_or_else(|| "acme-harness admin eab create --dept ID --domain NAME".into())
}

/// What to tell the user when a server bound to `addr` can be reached from other hosts, or
/// when the URLs it hands out only work on this machine. `mint` makes a fresh credential.
pub(crate) fn exposure_warnings(addr: SocketAddr, ready: &ReadyInfo, mint: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !addr.ip().is_loopback() {
        out.push(format!(
            "warning: listening on {addr}: other hosts can reach this server.\n  \
             This is a test CA: trust its certificates on test machines only, and remove them \
             afterwards (docs/windows.md).\n  \
             The demo EAB credential is public (it is in this project's source): anyone who can \
             reach the port can get certificates with it. Give remote clients a fresh one, and \
             revoke it when done:\n    {mint}\n  \
             The admin API still answers loopback clients only{}.",
            match &ready.admin_url {
                Some(url) => format!(" ({url})"),
                None => format!(
                    ": bound to {} alone, this server has none; listen on 0.0.0.0 to use it",
                    addr.ip()
                ),
            }
        ));
    }
    if addr.ip().is_unspecified() && ready.hostnames.is_empty() {
        out.push(format!(
            "warning: no --hostname: the directory URLs name {}, which only this machine can \
             use. Give the name or address other hosts reach this one by: --hostname NAME.",
            ready.directory
        ));
    }
    out
}

fn print_banner(ready: &ReadyInfo, data_dir: &std::path::Path) {
    println!("acme-harness mock Sectigo ACME server is running. Ctrl-C stops it.\n");
    if !ready.hostnames.is_empty() {
        println!(
            "Reached by: {} (in the TLS certificate; every URL names {})\n",
            ready.hostnames.join(", "),
            ready.hostnames[0]
        );
    }
    println!("Directories:");
    for (name, url) in &ready.directories {
        let default = if *url == ready.directory {
            "  (default)"
        } else {
            ""
        };
        println!("  {name:<26} {url}{default}");
    }
    println!("\nTrust the server with:   {}", ready.ca_bundle.display());
    println!("Issued chains verify to: {}", ready.roots.display());
    println!(
        "For scripts:             {}",
        data_dir.join("ready.json").display()
    );
    if let Some(demo) = &ready.demo {
        println!("\nDemo EAB credential (works only against this mock):");
        println!("  key id:   {}", demo.eab_kid);
        println!("  HMAC key: {}", demo.eab_hmac_key);
        println!("  delegated domains: {}", demo.domains.join(", "));
        println!("  not delegated (refused): {}", demo.undelegated_domain);
        let domain = demo
            .domains
            .iter()
            .find(|d| !d.starts_with("*."))
            .cloned()
            .unwrap_or_default();
        let certbot = data_dir.join("certbot");
        let ini = data_dir.join("certbot-demo.ini");
        let config = format!(
            "# certbot options for the acme-harness mock; the EAB HMAC key stays in this\n\
             # file (0600) instead of a command line that every local user can read in ps.\n\
             server = {dir}\neab-kid = {kid}\neab-hmac-key = {hmac}\n\
             config-dir = {cb}/config\nwork-dir = {cb}/work\nlogs-dir = {cb}/logs\n",
            dir = ready.directory,
            kid = demo.eab_kid,
            hmac = demo.eab_hmac_key,
            cb = certbot.display(),
        );
        match write_private(&ini, &config) {
            Ok(()) => {
                println!(
                    "\nGet a certificate with certbot (the EAB key is in {}, mode 0600):",
                    ini.display()
                );
                println!(
                    "  REQUESTS_CA_BUNDLE={ca} certbot certonly -c {ini} --standalone \\\n    \
                     --non-interactive --agree-tos --email admin@{domain} --no-eff-email \\\n    \
                     --http-01-address 127.0.0.1 --http-01-port 5002 \\\n    \
                     --domain {domain} --cert-name demo",
                    ca = ready.ca_bundle.display(),
                    ini = ini.display(),
                );
            }
            Err(e) => eprintln!(
                "warning: cannot write {}: {e}; no certbot command printed",
                ini.display()
            ),
        }
    }
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    acme_proto::file::write_atomic(path, text.as_bytes(), acme_proto::file::Access::OwnerOnly)
}

/// SIGINT (Ctrl-C) or SIGTERM.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ready(directory: &str, hostnames: &[&str], admin_url: Option<&str>) -> ReadyInfo {
        ReadyInfo {
            directory: directory.into(),
            directories: Default::default(),
            ca_bundle: "ca-bundle.pem".into(),
            roots: "roots.pem".into(),
            hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
            admin_url: admin_url.map(str::to_owned),
            admin_token: None,
            demo: None,
            seed: 8,
            dns: "127.0.0.1:53".parse().unwrap(),
            http01_port: 5002,
            tlsalpn01_port: 5001,
        }
    }

    const MINT: &str = "acme-harness admin eab create --dept 0 --domain 'physics.example.edu'";

    #[test]
    fn loopback_needs_no_warning() {
        let r = ready("https://mock.test:14000/v2/X", &["mock.test"], Some("a"));
        assert!(exposure_warnings("127.0.0.2:14000".parse().unwrap(), &r, MINT).is_empty());
    }

    #[test]
    fn every_address_warns_about_the_demo_credential_and_keeps_admin_local() {
        let r = ready(
            "https://testbox.campus.example:14000/v2/X",
            &["testbox.campus.example"],
            Some("https://127.0.0.1:14000/admin"),
        );
        let w = exposure_warnings("0.0.0.0:14000".parse().unwrap(), &r, MINT);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("other hosts can reach this server"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("This is a test CA"), "{}", w[0]);
        assert!(
            w[0].contains("The demo EAB credential is public"),
            "{}",
            w[0]
        );
        assert!(w[0].contains(MINT), "{}", w[0]);
        assert!(
            w[0].contains("loopback clients only (https://127.0.0.1:14000/admin)"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn every_address_without_a_hostname_says_the_urls_are_local() {
        let r = ready("https://127.0.0.1:14000/v2/X", &[], Some("x"));
        let w = exposure_warnings("0.0.0.0:14000".parse().unwrap(), &r, MINT);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("--hostname NAME"), "{}", w[1]);
    }

    #[test]
    fn one_public_address_has_no_admin_api() {
        let r = ready("https://192.0.2.10:14000/v2/X", &[], None);
        let w = exposure_warnings("192.0.2.10:14000".parse().unwrap(), &r, MINT);
        assert!(w[0].contains("this server has none"), "{}", w[0]);
    }
}
