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

    /// Where the CA and ready.json are kept; the same directory keeps the same CA across
    /// restarts. Default: the user's data directory (e.g. ~/.local/share/acme-harness).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Profile to serve, by built-in name or TOML file; repeat to serve several. The first is
    /// the default directory. Default: sectigo-incommon-rsa-ov and sectigo-incommon-ecc-ov.
    #[arg(long = "profile", value_name = "NAME|FILE")]
    profiles: Vec<String>,

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
    let profiles = if args.profiles.is_empty() {
        Profile::all_built_in().context("built-in profiles")?
    } else {
        args.profiles
            .iter()
            .map(|p| Profile::load(p).with_context(|| format!("--profile {p}")))
            .collect::<anyhow::Result<_>>()?
    };
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
    let server = MockServer::start(ServerConfig {
        listen: args.listen,
        data_dir: Some(data_dir.clone()),
        profiles,
        orgs,
    })
    .await
    .with_context(|| match args.listen.port() {
        14000 => {
            "starting the server (if port 14000 is taken, pass --listen 127.0.0.1:0)".to_owned()
        }
        _ => "starting the server".to_owned(),
    })?;
    print_banner(server.ready(), &data_dir);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("stopping");
    server.shutdown().await;
    Ok(())
}

fn print_banner(ready: &ReadyInfo, data_dir: &std::path::Path) {
    println!("acme-harness mock Sectigo ACME server is running. Ctrl-C stops it.\n");
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
        println!("\nGet a certificate with certbot:");
        println!(
            "  REQUESTS_CA_BUNDLE={ca} certbot certonly --standalone --non-interactive \\\n    \
             --agree-tos --email admin@{domain} --no-eff-email \\\n    \
             --server {dir} \\\n    \
             --eab-kid {kid} --eab-hmac-key {hmac} \\\n    \
             --http-01-address 127.0.0.1 --http-01-port 5002 \\\n    \
             --config-dir {cb}/config --work-dir {cb}/work --logs-dir {cb}/logs \\\n    \
             --domain {domain} --cert-name demo",
            ca = ready.ca_bundle.display(),
            dir = ready.directory,
            kid = demo.eab_kid,
            hmac = demo.eab_hmac_key,
            cb = certbot.display(),
        );
    }
}
