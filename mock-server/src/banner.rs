//! What `acme-harness serve` tells its user on start: the banner (directories, the CA to
//! trust, the demo credential and a certbot command that keeps the key secret), the 0600
//! certbot config file that command reads, and warnings when the server is reachable from
//! other hosts.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{MockServer, ReadyInfo};

impl MockServer {
    /// The `acme-harness admin eab create` command that mints a fresh credential for the demo
    /// department and domains (for remote clients, instead of the public demo credential).
    pub fn mint_command(&self) -> String {
        self.ready()
            .demo
            .as_ref()
            .and_then(|demo| {
                let orgs = self.state().store.orgs.load();
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
}

/// Writes `certbot-demo.ini` (mode 0600) in `data_dir`: certbot's options for this mock,
/// with the demo credential, so the printed command keeps the HMAC key off the command line.
/// `None` when the server has no demo credential.
pub fn write_certbot_ini(ready: &ReadyInfo, data_dir: &Path) -> Result<Option<PathBuf>, String> {
    let Some(demo) = &ready.demo else {
        return Ok(None);
    };
    let ini = data_dir.join("certbot-demo.ini");
    let certbot = data_dir.join("certbot");
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
    acme_proto::file::write_atomic(&ini, config.as_bytes(), acme_proto::file::Access::OwnerOnly)
        .map_err(|e| format!("cannot write {}: {e}", ini.display()))?;
    Ok(Some(ini))
}

/// The banner: directories, files to trust, the web console's URL when one is mounted
/// (`console`), the demo credential and, when `certbot_ini` was written, a certbot command
/// that reads the key from it.
pub fn text(
    ready: &ReadyInfo,
    data_dir: &Path,
    console: Option<&str>,
    certbot_ini: Option<&Path>,
) -> String {
    let mut out =
        String::from("acme-harness mock Sectigo ACME server is running. Ctrl-C stops it.\n\n");
    let w = &mut out;
    if !ready.hostnames.is_empty() {
        let _ = writeln!(
            w,
            "Reached by: {} (in the TLS certificate; every URL names {})\n",
            ready.hostnames.join(", "),
            ready.hostnames[0]
        );
    }
    let _ = writeln!(w, "Directories:");
    for (name, url) in &ready.directories {
        let default = if *url == ready.directory {
            "  (default)"
        } else {
            ""
        };
        let _ = writeln!(w, "  {name:<26} {url}{default}");
    }
    let _ = writeln!(
        w,
        "\nTrust the server with:   {}",
        ready.ca_bundle.display()
    );
    let _ = writeln!(w, "Issued chains verify to: {}", ready.roots.display());
    let ready_json = data_dir.join("ready.json");
    let _ = writeln!(w, "For scripts:             {}", ready_json.display());
    if let Some(console) = console {
        let _ = writeln!(
            w,
            "Web console:             {console} (log in with the admin token in {})",
            data_dir.join("admin-token").display()
        );
    }
    let Some(demo) = &ready.demo else {
        return out;
    };
    let _ = writeln!(w, "\nDemo EAB credential (works only against this mock):");
    let _ = writeln!(w, "  key id:   {}", demo.eab_kid);
    let _ = writeln!(w, "  HMAC key: {}", demo.eab_hmac_key);
    let _ = writeln!(w, "  delegated domains: {}", demo.domains.join(", "));
    let _ = writeln!(w, "  not delegated (refused): {}", demo.undelegated_domain);
    let domain = demo
        .domains
        .iter()
        .find(|d| !d.starts_with("*."))
        .cloned()
        .unwrap_or_default();
    if let Some(ini) = certbot_ini {
        let _ = writeln!(
            w,
            "\nGet a certificate with certbot (the EAB key is in {}, mode 0600):",
            ini.display()
        );
        let _ = writeln!(
            w,
            "  REQUESTS_CA_BUNDLE={ca} certbot certonly -c {ini} --standalone \\\n    \
             --non-interactive --agree-tos --email admin@{domain} --no-eff-email \\\n    \
             --http-01-address 127.0.0.1 --http-01-port 5002 \\\n    \
             --domain {domain} --cert-name demo",
            ca = ready.ca_bundle.display(),
            ini = ini.display(),
        );
    }
    out
}

/// Warnings for a server other hosts can reach: it is a test CA, the demo credential is
/// public (`mint` is the command for a fresh one), the admin API stays loopback-only, and
/// URLs without `--hostname` name an address other hosts cannot use.
pub fn exposure_warnings(addr: SocketAddr, ready: &ReadyInfo, mint: &str) -> Vec<String> {
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

#[cfg(test)]
mod banner_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::DemoInfo;

    fn demo_ready() -> ReadyInfo {
        ReadyInfo {
            directory: "https://127.0.0.1:14000/v2/InCommonRSAOV".into(),
            directories: [(
                "InCommon RSA OV".to_owned(),
                "https://127.0.0.1:14000/v2/InCommonRSAOV".to_owned(),
            )]
            .into(),
            ca_bundle: "/data/ca-bundle.pem".into(),
            roots: "/data/roots.pem".into(),
            hostnames: Vec::new(),
            admin_url: None,
            admin_token: None,
            demo: Some(DemoInfo {
                eab_kid: "demo-kid".into(),
                eab_hmac_key: "HMAC-CANARY".into(),
                domains: vec!["*.physics.example.edu".into(), "physics.example.edu".into()],
                undelegated_domain: "chemistry.example.edu".into(),
            }),
            seed: 8,
            dns: "127.0.0.1:53".parse().unwrap(),
            http01_port: 5002,
            tlsalpn01_port: 5001,
        }
    }

    #[test]
    fn the_certbot_command_reads_the_key_from_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let ready = demo_ready();
        let ini = write_certbot_ini(&ready, dir.path()).unwrap().unwrap();
        let file = std::fs::read_to_string(&ini).unwrap();
        assert!(file.contains("eab-hmac-key = HMAC-CANARY"), "{file}");
        assert!(file.contains("server = https://127.0.0.1:14000/v2/InCommonRSAOV"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&ini).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let banner = text(&ready, dir.path(), None, Some(&ini));
        let command = banner
            .lines()
            .skip_while(|l| !l.contains("certbot certonly"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            command.contains(&format!("-c {}", ini.display())),
            "{banner}"
        );
        assert!(command.contains("--domain physics.example.edu"), "{banner}");
        assert!(
            !command.contains("HMAC-CANARY"),
            "key on the command line: {banner}"
        );
        assert!(banner.contains("(default)"), "{banner}");
    }

    #[test]
    fn without_the_file_no_certbot_command_is_printed() {
        let ready = demo_ready();
        let banner = text(&ready, Path::new("/data"), None, None);
        assert!(!banner.contains("certbot certonly"), "{banner}");
        assert!(banner.contains("key id:   demo-kid"), "{banner}");
    }

    #[test]
    fn the_banner_names_the_console_when_one_is_mounted() {
        let ready = demo_ready();
        let console = Some("https://127.0.0.1:14000/console/");
        let banner = text(&ready, Path::new("/data"), console, None);
        assert!(
            banner.contains("Web console:             https://127.0.0.1:14000/console/"),
            "{banner}"
        );
        assert!(banner.contains("/data/admin-token"), "{banner}");
        assert!(!text(&ready, Path::new("/data"), None, None).contains("console"));
    }
}
