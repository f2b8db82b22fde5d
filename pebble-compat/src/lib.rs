//! Stand-ins for Pebble (Let's Encrypt's test CA) and its challenge test server, so that a
//! client project's own Pebble test suite runs unchanged against the mock.
//!
//! The Pebble stand-in is `acme-harness pebble -config FILE`, or the binary run through a
//! link named `pebble` ([`main`]). It reads Pebble's command line ([`flags`]), configuration
//! file ([`config`]) and environment knobs ([`knobs`]), serves the mock's `rfc8555` profile
//! with them on the configured address and certificate (its directory also at `/dir`), and
//! Pebble's management API ([`mock_server::management`]) on the management address.
//!
//! The `pebble-challtestsrv` stand-in ([`challtestsrv`]) answers challenges from the mock's
//! DNS and the reference client's solvers.
//!
//! docs/pebble.md says what matches Pebble and what differs.

pub mod challtestsrv;
pub mod config;
pub mod flags;
pub mod knobs;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use config::PebbleConfig;
use flags::{FlagKind, FlagSpec};
use knobs::Knobs;

use mock_server::ca::{Ca, ListenerIdentity};
use mock_server::management;
use mock_server::profile::Profile;
use mock_server::server::{MockServer, ServerConfig};
use mock_server::state::org::Orgs;

/// The Pebble release whose behaviour the stand-in follows; `-version` claims it, so that
/// suites gating features on Pebble's version (nginx's ACME tests parse `version: v?X.Y.Z`)
/// run everything.
pub const PEBBLE_VERSION: &str = "v2.10.1";

/// Pebble's terms-of-service URL; suites compare it verbatim (Pebble's chisel2.py).
pub const TERMS_OF_SERVICE: &str = "data:text/plain,Do%20what%20thou%20wilt";

/// The `-version` line, in Pebble's format (`Pebble version: <tag> (<build>)`).
pub fn version_line() -> String {
    format!(
        "Pebble version: {PEBBLE_VERSION} (acme-harness {})",
        env!("CARGO_PKG_VERSION")
    )
}

const SPECS: &[FlagSpec] = &[
    FlagSpec {
        name: "config",
        kind: FlagKind::Value,
        default: "test/config/pebble-config.json",
        usage: "File path to the Pebble configuration file",
    },
    FlagSpec {
        name: "strict",
        kind: FlagKind::Bool,
        default: "",
        usage: "Enable strict mode to test upcoming API breaking changes",
    },
    FlagSpec {
        name: "dnsserver",
        kind: FlagKind::Value,
        default: "",
        usage: "Define a custom DNS server address (ex: 192.168.0.56:5053 or 8.8.8.8:53).",
    },
    FlagSpec {
        name: "version",
        kind: FlagKind::Bool,
        default: "",
        usage: "Print the software version",
    },
];

/// Why the stand-in could not start; the message names the key, flag or file to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// A Pebble log line on stdout: `Pebble YYYY/MM/DD HH:MM:SS message`, as Pebble's logger
/// writes them (some suites grep its output).
pub fn log(message: &str) {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year]/[month]/[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    println!("Pebble {stamp} {message}");
}

/// Runs `pebble` with `args` (the program's arguments, without its name); returns the exit
/// status: 0 after `-version`, `-h` or a signal, 1 for a bad configuration, 2 for a bad
/// command line, as Pebble.
pub fn main(program: &str, args: &[String]) -> i32 {
    let parsed = match flags::parse_or_usage(program, SPECS, args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    if parsed.on("version") {
        println!("{}", version_line());
        return 0;
    }
    if !parsed.rest.is_empty() {
        println!("invalid command line arguments: {}", parsed.rest.join(" "));
        eprint!("{}", flags::usage(program, SPECS));
        return 1;
    }
    let strict = parsed.on("strict");
    if strict {
        println!("Running in strict mode");
    }
    let config_path = parsed.value("config", SPECS[0].default);
    if config_path.is_empty() {
        eprint!("{}", flags::usage(program, SPECS));
        return 1;
    }
    let Some(runtime) = runtime() else {
        return 1;
    };
    let dnsserver = parsed.value("dnsserver", "").to_owned();
    let config_path = PathBuf::from(config_path);
    runtime.block_on(async move {
        let knobs = Knobs {
            strict,
            ..Knobs::from_env()
        };
        match run(&config_path, &dnsserver, knobs).await {
            Ok(()) => 0,
            Err(RunError::Startup(e)) => {
                eprintln!("{e}");
                1
            }
            Err(RunError::CaSetup(e)) => {
                eprintln!("panic: {e}");
                2
            }
        }
    })
}

/// Why [`run`] stopped before serving: a bad configuration (exit 1), or what Pebble dies
/// of while making its CA, a panic there (exit 2).
enum RunError {
    Startup(StartupError),
    CaSetup(String),
}

impl From<StartupError> for RunError {
    fn from(e: StartupError) -> Self {
        Self::Startup(e)
    }
}

/// Loads everything, starts both listeners, and serves until SIGINT or SIGTERM.
async fn run(config_path: &Path, dnsserver: &str, knobs: Knobs) -> Result<(), RunError> {
    log("Starting Pebble ACME server");
    let config = PebbleConfig::from_file(config_path).map_err(|e| StartupError(e.to_string()))?;
    for key in &config.unknown_keys {
        eprintln!(
            "warning: {}: unknown config key {key:?} (ignored, as Pebble ignores it)",
            config_path.display()
        );
    }
    knobs
        .ca_shape(&config.key_algorithm)
        .map_err(RunError::CaSetup)?;
    let running = start(&config, dnsserver, &knobs, Path::new(".")).await?;
    match running.management_addr() {
        Some(addr) => {
            log(&format!("Management interface listening on: {addr}"));
            log(&format!(
                "Root CA certificate available at: https://{addr}/roots/0"
            ));
        }
        None => log("Management interface is disabled"),
    }
    log(&format!("Listening on: {}", running.server.addr()));
    log(&format!(
        "ACME directory available at: https://{}/dir",
        running.server.addr()
    ));
    wait_for_signal().await;
    running.server.shutdown().await;
    Ok(())
}

/// A running stand-in: the ACME server and the management API.
#[derive(Debug)]
pub struct Running {
    /// The ACME server.
    pub server: MockServer,
    /// The management API, when `managementListenAddress` is set.
    pub management: Option<management::ManagementServer>,
}

impl Running {
    /// Where the management API listens.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().map(|m| m.addr)
    }
}

/// Starts the ACME server and the management API as `config`, `-dnsserver` and the knobs
/// say; relative file names in the configuration are resolved against `cwd`.
pub async fn start(
    config: &PebbleConfig,
    dnsserver: &str,
    knobs: &Knobs,
    cwd: &Path,
) -> Result<Running, StartupError> {
    let server_config = server_config(config, dnsserver, knobs, cwd)?;
    let listen = server_config.listen;
    let management_tls = match config.management_listen_address.as_str() {
        "" => None,
        text => Some((
            loopback_addr("pebble.managementListenAddress", text)?,
            load_identity(config, cwd)?,
        )),
    };
    let server = MockServer::start(server_config)
        .await
        .map_err(|e| StartupError(format!("Calling ListenAndServeTLS(): {listen}: {e}")))?;
    let management = match management_tls {
        None => None,
        Some((addr, identity)) => Some(
            management::serve(server.state().clone(), addr, identity)
                .await
                .map_err(|e| {
                    StartupError(format!(
                        "Calling ListenAndServeTLS() for admin interface: {addr}: {e}"
                    ))
                })?,
        ),
    };
    Ok(Running { server, management })
}

/// The mock's configuration for Pebble's: the `rfc8555` profile with Pebble's settings.
pub fn server_config(
    config: &PebbleConfig,
    dnsserver: &str,
    knobs: &Knobs,
    cwd: &Path,
) -> Result<ServerConfig, StartupError> {
    let listen_text = match config.listen_address.as_str() {
        "" => ":443",
        text => text,
    };
    let listen = loopback_addr("pebble.listenAddress", listen_text)?;
    // Pebble builds its URLs from each request's Host header. A suite that lets it listen on
    // every address (or on localhost) reaches it as `localhost`, which old TLS stacks need as
    // a name (they cannot check a certificate for an IP address): the URLs carry `localhost`
    // then, and the bound address when the suite named one.
    let listen_host = listen_text
        .rsplit_once(':')
        .map_or("", |(h, _)| h.trim_start_matches('[').trim_end_matches(']'));
    let hostnames = match listen_host {
        "" | "0.0.0.0" | "::" | "localhost" => vec!["localhost".to_owned()],
        _ => Vec::new(),
    };
    let validation_dns = match dnsserver {
        "" => None,
        text => Some(dns_addr(text)?),
    };
    let port = |key: &str, value: i64| {
        u16::try_from(value)
            .map_err(|_| StartupError(format!("pebble.{key}: {value} is not a port")))
    };
    let mut profile = pebble_profile(config);
    knobs.apply(&mut profile);
    let plan = knobs.fault_plan();
    // Pebble's CA, made afresh at every start: the chain knobs and `keyAlgorithm` shape it.
    let shape = knobs
        .ca_shape(&config.key_algorithm)
        .map_err(StartupError)?;
    let ca = Ca::pebble(shape)
        .map_err(|e| StartupError(format!("cannot make the CA ({shape:?}): {e}")))?;
    Ok(ServerConfig {
        listen,
        hostnames,
        data_dir: None,
        ca: Some(std::sync::Arc::new(ca)),
        profiles: vec![profile],
        orgs: eab_orgs(config)?,
        seed: None,
        faults: (!plan.rules.is_empty()).then_some(plan),
        dns_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        http01_port: port("httpPort", config.http_port)?,
        tlsalpn01_port: port("tlsPort", config.tls_port)?,
        limits: mock_server::server::Limits::default(),
        persist: None,
        tls_identity: Some(load_identity(config, cwd)?),
        validation_dns,
        pebble_paths: true,
        // Pebble has no web console.
        mounts: Vec::new(),
    })
}

/// The `rfc8555` profile with what Pebble's configuration changes in it.
pub fn pebble_profile(config: &PebbleConfig) -> Profile {
    let mut p = Profile::built_in("rfc8555").unwrap_or_else(|_| Profile {
        name: "rfc8555".into(),
        description: String::new(),
        directory_path: "/v2/rfc8555".into(),
        randomize_paths: false,
        renewal_info: true,
        meta: Default::default(),
        account: Default::default(),
        order: Default::default(),
        nonce: Default::default(),
        rate_limit: Default::default(),
        faults: None,
        strict: Default::default(),
    });
    p.meta.terms_of_service = Some(TERMS_OF_SERVICE.into());
    // Pebble's issuer name binds dns-persist-01 (and the mock's CAA check) either way; the
    // directory lists it only when the config names it. Pebble 2.10 lists its default too,
    // Pebble 2.4 listed nothing, and suites written against 2.4 assert the absence; none we
    // know of asserts the default's presence.
    p.meta.hide_caa_identities = config.caa_identities.is_none();
    p.meta.caa_identities = config
        .caa_identities
        .clone()
        .unwrap_or_else(|| vec!["pebble.letsencrypt.org".into()]);
    p.meta.external_account_required = config.eab_required;
    p.account.eab_required = config.eab_required;
    // Pebble's account object carries the binding it was created with.
    p.account.echo_eab = true;
    // The mock's lifetime is in whole days; Pebble's default profile decides it.
    let profiles = config.effective_profiles();
    let lifetime = profiles
        .get("default")
        .or_else(|| profiles.values().next())
        .map_or(config::DEFAULT_VALIDITY_SECONDS, |p| p.effective_validity());
    p.order.validity_days = u32::try_from(lifetime.div_ceil(86_400).max(1)).unwrap_or(90);
    // Pebble's ACME features (issue 11 item 3), as profile switches.
    p.order.cert_profiles = profiles
        .iter()
        .map(|(name, cp)| {
            let days = u32::try_from(cp.effective_validity().div_ceil(86_400).max(1)).ok();
            let profile = mock_server::profile::CertProfile {
                description: cp.description.clone(),
                validity_days: days,
            };
            (name.clone(), profile)
        })
        .collect();
    p.order.blocked_domains = config.domain_blocklist.clone();
    p.order.ip_identifiers = true;
    if !p
        .order
        .challenge_types
        .contains(&acme_proto::ChallengeType::DnsAccount01)
    {
        p.order
            .challenge_types
            .push(acme_proto::ChallengeType::DnsAccount01);
    }
    // Pebble refuses an account that does not agree to its terms; `-strict` adds the
    // refusals of `Knobs::apply`. Pebble 2.10 also refuses requests without a User-Agent, but
    // Pebble 2.4 (Debian's) does not, and suites written against it send none (acme2's):
    // `strict.require_user_agent` is off unless `knobs::REQUIRE_USER_AGENT` asks for it.
    p.account.terms_agreement_required = true;
    p.order.challenge_retry_after =
        (config.retry_after_authz > 0).then_some(config.retry_after_authz as u64);
    p.order.processing_retry_after = config.retry_after_order.max(0) as u64;
    p
}

/// One organisation holding a credential per `externalAccountMACKeys` entry, valid for any
/// name and any number of accounts, as Pebble's keys are.
fn eab_orgs(config: &PebbleConfig) -> Result<Orgs, StartupError> {
    let mut orgs = Orgs::default();
    if config.eab_keys.is_empty() {
        return Ok(orgs);
    }
    let org = orgs.add_org("Pebble external account bindings", "US", "CA", None);
    let dept = orgs
        .add_department(org, "pebble")
        .map_err(|e| StartupError(e.to_string()))?;
    for (kid, key) in &config.eab_keys {
        let bytes = acme_proto::b64::decode(key).map_err(|_| {
            StartupError(format!(
                "pebble.externalAccountMACKeys.{kid}: Failed to add key to external account bindings"
            ))
        })?;
        orgs.add_credential(dept, kid.clone(), bytes, &[], true, Vec::new())
            .map_err(|e| StartupError(format!("pebble.externalAccountMACKeys.{kid}: {e}")))?;
    }
    Ok(orgs)
}

/// Reads the listener certificate chain and key the configuration names.
fn load_identity(config: &PebbleConfig, cwd: &Path) -> Result<ListenerIdentity, StartupError> {
    if config.certificate.is_empty() {
        return Err(StartupError(
            "Calling ListenAndServeTLS(): pebble.certificate is empty: name a PEM certificate file"
                .into(),
        ));
    }
    if config.private_key.is_empty() {
        return Err(StartupError(
            "Calling ListenAndServeTLS(): pebble.privateKey is empty: name a PEM key file".into(),
        ));
    }
    let read = |key: &str, name: &str| {
        let path = cwd.join(name);
        std::fs::read(&path).map_err(|e| {
            StartupError(format!(
                "Calling ListenAndServeTLS(): pebble.{key}: open {}: {e}",
                path.display()
            ))
        })
    };
    let cert_pem = read("certificate", &config.certificate)?;
    let key_pem = read("privateKey", &config.private_key)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            StartupError(format!(
                "Calling ListenAndServeTLS(): pebble.certificate: {}: {e}",
                config.certificate
            ))
        })?;
    if chain.is_empty() {
        return Err(StartupError(format!(
            "Calling ListenAndServeTLS(): pebble.certificate: {}: no PEM certificate in it",
            config.certificate
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| {
            StartupError(format!(
                "Calling ListenAndServeTLS(): pebble.privateKey: {}: no PEM private key in it",
                config.private_key
            ))
        })?;
    Ok(ListenerIdentity { chain, key })
}

/// A listen address in Go's `host:port` form, bound on loopback only: an empty host,
/// `0.0.0.0` and `localhost` become 127.0.0.1, `[::]` becomes ::1, and any other address
/// that is not loopback is refused, naming `what` (a key or a flag).
pub fn loopback_addr(what: &str, text: &str) -> Result<SocketAddr, StartupError> {
    let bad = |why: &str| StartupError(format!("{what}: {text:?}: {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("missing port in address (want host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "" | "0.0.0.0" | "localhost" => Ipv4Addr::LOCALHOST.into(),
        "::" => Ipv6Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| bad("the host is not an IP address or localhost"))?,
    };
    if !ip.is_loopback() {
        return Err(bad(
            "acme-harness listens on loopback only; use 127.0.0.1, localhost or 0.0.0.0",
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

/// `-dnsserver HOST:PORT` (an empty host means loopback, as Go dials it).
fn dns_addr(text: &str) -> Result<SocketAddr, StartupError> {
    let bad = |why: &str| StartupError(format!("-dnsserver {text:?}: {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("missing port (want host:port, e.g. 127.0.0.1:8053)"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "" | "localhost" => Ipv4Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| bad("the host is not an IP address or localhost"))?,
    };
    Ok(SocketAddr::new(ip, port))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for SIGINT, SIGTERM (or SIGHUP, which pebble-challtestsrv also stops on).
pub async fn wait_for_stop_signal() {
    wait_for_signal().await;
}

/// The stand-ins' async runtime; `None` (said on stderr) when it cannot start, an exit 1.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn listen_addresses_stay_on_loopback() {
        let a = |t| loopback_addr("pebble.listenAddress", t).unwrap();
        assert_eq!(a("0.0.0.0:14000"), "127.0.0.1:14000".parse().unwrap());
        assert_eq!(a(":14000"), "127.0.0.1:14000".parse().unwrap());
        assert_eq!(a("localhost:1"), "127.0.0.1:1".parse().unwrap());
        assert_eq!(a("[::]:2"), "[::1]:2".parse().unwrap());
        let e = loopback_addr("pebble.listenAddress", "10.30.50.2:14000")
            .unwrap_err()
            .0;
        assert!(
            e.contains("pebble.listenAddress") && e.contains("loopback"),
            "{e}"
        );
        let e = loopback_addr("pebble.managementListenAddress", "15000")
            .unwrap_err()
            .0;
        assert!(e.contains("pebble.managementListenAddress"), "{e}");
        let e = loopback_addr("pebble.listenAddress", "x:99999")
            .unwrap_err()
            .0;
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn the_shipped_config_becomes_a_pebble_like_profile() {
        let text =
            std::fs::read_to_string(repo().join("fixtures/pebble/pebble-config.json")).unwrap();
        let config = PebbleConfig::parse(&text).unwrap();
        let knobs = Knobs::from_lookup(|k| {
            (k == "PEBBLE_VA_NOSLEEP" || k == "PEBBLE_WFE_NONCEREJECT")
                .then(|| if k == "PEBBLE_VA_NOSLEEP" { "1" } else { "0" }.to_owned())
        });
        let sc = server_config(&config, "127.0.0.1:8053", &knobs, &repo()).unwrap();
        assert_eq!(sc.listen, "127.0.0.1:14000".parse().unwrap());
        assert_eq!(
            sc.hostnames,
            ["localhost"],
            "0.0.0.0 is reached as localhost"
        );
        assert_eq!((sc.http01_port, sc.tlsalpn01_port), (5002, 5001));
        assert_eq!(sc.validation_dns, Some("127.0.0.1:8053".parse().unwrap()));
        assert!(sc.faults.is_none(), "no nonce rejection, no sleep");
        assert!(sc.pebble_paths);
        let p = &sc.profiles[0];
        assert_eq!(p.meta.terms_of_service.as_deref(), Some(TERMS_OF_SERVICE));
        assert_eq!(p.order.validity_days, 90);
        assert_eq!(p.order.challenge_retry_after, Some(3));
        assert_eq!(p.order.processing_retry_after, 5);
        assert!(!p.account.eab_required);
        // Pebble's ACME features: its profiles, blocklist, IP identifiers, knobs, refusals.
        assert_eq!(p.order.cert_profiles["shortlived"].validity_days, Some(6));
        assert_eq!(p.order.cert_profiles["default"].validity_days, Some(90));
        assert_eq!(p.order.blocked_domains, ["blocked-domain.example"]);
        assert!(p.order.ip_identifiers && p.account.terms_agreement_required);
        assert_eq!(p.order.authz_reuse_percent, 50);
        assert_eq!(p.account.orders_per_page, Some(3));
        assert!(!p.strict.require_user_agent && !p.strict.refuse_resource_field);
        let strict = Knobs {
            strict: true,
            ..knobs
        };
        let sc = server_config(&config, "", &strict, &repo()).unwrap();
        let s = &sc.profiles[0].strict;
        assert!(s.challenge_payload_exactly_empty_object && s.refuse_resource_field);
    }

    #[test]
    fn eab_keys_become_credentials() {
        let config = PebbleConfig::parse(
            r#"{"pebble": {"externalAccountBindingRequired": true,
                "externalAccountMACKeys": {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}}}"#,
        )
        .unwrap();
        let orgs = eab_orgs(&config).unwrap();
        let cred = orgs.credential("kid-1").unwrap();
        assert_eq!(cred.hmac_key.expose().len(), 48);
        assert!(pebble_profile(&config).account.eab_required);
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let mut config =
            PebbleConfig::parse(r#"{"pebble": {"listenAddress": "127.0.0.1:0"}}"#).unwrap();
        let e = server_config(&config, "", &Knobs::default(), &repo())
            .unwrap_err()
            .0;
        assert!(e.contains("pebble.certificate"), "{e}");
        config.certificate = "fixtures/pebble/certs/nope.pem".into();
        config.private_key = "fixtures/pebble/certs/key.pem".into();
        let e = server_config(&config, "", &Knobs::default(), &repo())
            .unwrap_err()
            .0;
        assert!(e.contains("nope.pem"), "{e}");
        config.certificate = "fixtures/pebble/pebble-config.json".into();
        let e = server_config(&config, "", &Knobs::default(), &repo())
            .unwrap_err()
            .0;
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = dns_addr("8053").unwrap_err().0;
        assert!(e.contains("-dnsserver"), "{e}");
    }

    #[test]
    fn version_line_parses_as_recent() {
        let line = version_line();
        assert!(line.starts_with("Pebble version: v2.10.1 "), "{line}");
    }
}
