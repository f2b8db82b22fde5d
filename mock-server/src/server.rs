//! Binding, TLS and the accept loop; what a caller starts and stops.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ca::{Ca, CaError};
use crate::http::{AppState, router};
use crate::profile::Profile;
use crate::state::Store;
use crate::state::org::Orgs;

/// What to start.
#[derive(Debug)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Names (DNS names or IP literals) clients on other hosts reach the server by. Each goes
    /// into the listener certificate, and the first becomes the host of every URL the server
    /// hands out (directory, orders, certificates), so a client must be able to resolve it.
    /// Empty: the URLs carry the bound address.
    pub hostnames: Vec<String>,
    /// Where the CA and ready.json live; `None` uses a private temporary directory.
    pub data_dir: Option<PathBuf>,
    /// A CA already made (one per process, shared by many servers: see [`Ca::generate`]);
    /// `None` loads or creates the CA in the data directory's `ca/` folder.
    pub ca: Option<Arc<Ca>>,
    /// Profiles to serve; the first is the default.
    pub profiles: Vec<Profile>,
    /// Organisations, departments, domains and EAB credentials.
    pub orgs: Orgs,
    /// Seed of every random fault decision; random (and printed) when absent.
    pub seed: Option<u64>,
    /// A fault plan for every request of every profile.
    pub faults: Option<crate::faults::FaultPlan>,
    /// Address of the mock DNS (UDP and TCP); port 0 picks one.
    pub dns_listen: SocketAddr,
    /// Port http-01 answers are fetched from.
    pub http01_port: u16,
    /// Port tls-alpn-01 answers are fetched from.
    pub tlsalpn01_port: u16,
    /// Connection and request limits.
    pub limits: Limits,
    /// A SQLite file that keeps organisations, accounts, orders, certificates and transcripts
    /// across restarts; `None` keeps everything in memory.
    pub persist: Option<PathBuf>,
    /// The listener's certificate chain and key, instead of one the embedded CA makes (the
    /// Pebble stand-in serves the certificate its configuration names).
    pub tls_identity: Option<crate::ca::ListenerIdentity>,
    /// The DNS server challenge validation resolves through, instead of the mock's own
    /// (`pebble -dnsserver`: pebble-challtestsrv's DNS).
    pub validation_dns: Option<SocketAddr>,
    /// Also serve the default profile at Pebble's own paths: its directory at `/dir`, and
    /// ARI at `/draft-ietf-acme-ari-03/renewalInfo/` (the `pebble` stand-in).
    pub pebble_paths: bool,
    /// Routes other crates serve on the same listener: the web console
    /// (`mock_console::mount`), which `acme-harness serve` and the embeddable kit add.
    pub mounts: Vec<crate::http::Mount>,
}

/// Limits that keep hostile or broken clients from exhausting the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed to send a request's headers (HTTP/1.1; slow-loris).
    pub header_read_timeout: Duration,
    /// Time allowed to send a request's body.
    pub body_read_timeout: Duration,
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest life of one connection.
    pub connection_lifetime: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Orders kept in memory; the oldest finished ones (with their authorizations,
    /// challenges and certificates) are dropped beyond it.
    pub max_orders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 256 * 1024,
            connection_lifetime: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(10),
            max_orders: 100_000,
        }
    }
}

impl ServerConfig {
    /// Every built-in profile and the demo organisation on 127.0.0.1:0, in a temporary
    /// directory, with the process's shared in-memory CA ([`Ca::shared`]): what tests want.
    pub fn ephemeral() -> Self {
        Self {
            ca: Ca::shared().ok(),
            ..Self::loopback()
        }
    }

    /// As [`ServerConfig::ephemeral`] but with the CA loaded or made in the data directory:
    /// for callers that keep their CA on disk (vet copies one into every scenario's mock), so
    /// that no in-memory CA is generated for nothing.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostnames: Vec::new(),
            data_dir: None,
            ca: None,
            profiles: Profile::all_built_in().unwrap_or_default(),
            orgs: Orgs::demo(),
            seed: None,
            faults: None,
            dns_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http01_port: 5002,
            tlsalpn01_port: 5001,
            limits: Limits::default(),
            persist: None,
            tls_identity: None,
            validation_dns: None,
            pebble_paths: false,
            mounts: Vec::new(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The CA could not be loaded or created.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A file in the data directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// No profile to serve, or two with one directory path.
    #[error("{0}")]
    Profiles(String),
    /// A hostname is neither a DNS name nor an IP literal.
    #[error("hostname {name:?}: {why}")]
    Hostname {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The demo values of ready.json. `Debug` hides the HMAC key.
#[derive(Clone, Serialize, Deserialize)]
pub struct DemoInfo {
    /// Demo EAB key id.
    pub eab_kid: String,
    /// Demo EAB HMAC key (base64url). Printed on purpose: it only works on this mock.
    pub eab_hmac_key: String,
    /// Names delegated to the demo credential.
    pub domains: Vec<String>,
    /// A name that must be refused.
    pub undelegated_domain: String,
}

/// What `DIR/ready.json` holds, for scripts and `acme-harness admin`. `Debug` hides the
/// admin token and the demo HMAC key.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// The default profile's directory URL.
    pub directory: String,
    /// Profile name -> directory URL.
    pub directories: BTreeMap<String, String>,
    /// PEM file that trusts the HTTPS listener.
    pub ca_bundle: PathBuf,
    /// PEM file of the roots issued certificates chain to.
    pub roots: PathBuf,
    /// The names given in [`ServerConfig::hostnames`]: in the listener certificate (besides
    /// localhost, 127.0.0.1, ::1 and the bound address), the first one in every URL. Absent
    /// from the ready.json of a server that predates it, so it reads as empty.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Admin API URL, on a loopback address (the admin API answers loopback clients only);
    /// `None` when the server listens on a single address that is not loopback.
    pub admin_url: Option<String>,
    /// Admin API bearer token.
    pub admin_token: Option<String>,
    /// Demo credential, if the organisation file has one.
    pub demo: Option<DemoInfo>,
    /// The fault seed: pass it as `--seed` to replay a run.
    pub seed: u64,
    /// The mock DNS (UDP and TCP), where challenge names resolve.
    pub dns: SocketAddr,
    /// Port http-01 answers are fetched from.
    pub http01_port: u16,
    /// Port tls-alpn-01 answers are fetched from.
    pub tlsalpn01_port: u16,
}

impl std::fmt::Debug for DemoInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoInfo")
            .field("eab_kid", &self.eab_kid)
            .field("eab_hmac_key", &acme_proto::transcript::REDACTED)
            .field("domains", &self.domains)
            .field("undelegated_domain", &self.undelegated_domain)
            .finish()
    }
}

impl std::fmt::Debug for ReadyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyInfo")
            .field("directory", &self.directory)
            .field("directories", &self.directories)
            .field("ca_bundle", &self.ca_bundle)
            .field("roots", &self.roots)
            .field("hostnames", &self.hostnames)
            .field("admin_url", &self.admin_url)
            .field(
                "admin_token",
                &self
                    .admin_token
                    .as_ref()
                    .map(|_| acme_proto::transcript::REDACTED),
            )
            .field("demo", &self.demo)
            .field("seed", &self.seed)
            .field("dns", &self.dns)
            .field("http01_port", &self.http01_port)
            .field("tlsalpn01_port", &self.tlsalpn01_port)
            .finish()
    }
}

/// A running server. Dropping it stops the accept loop.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    handshake_failures: Arc<AtomicU64>,
    state: Arc<AppState>,
    ready: ReadyInfo,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _dns: crate::dns::DnsServer,
    _tmp: Option<tempfile::TempDir>,
}

/// Writes a file atomically (temporary file, then rename), so a reader never sees it half
/// written; `secret` files are created 0600.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), StartError> {
    let access = if secret {
        acme_proto::file::Access::OwnerOnly
    } else {
        acme_proto::file::Access::Public
    };
    acme_proto::file::write_atomic(path, contents, access).map_err(|source| StartError::Write {
        path: path.to_owned(),
        source,
    })
}

impl MockServer {
    /// Loads or creates the CA, binds, and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        if config.profiles.is_empty() {
            return Err(StartError::Profiles("no profile to serve".into()));
        }
        let mut paths = std::collections::HashSet::new();
        for p in &config.profiles {
            if !paths.insert(p.slug().to_owned()) {
                return Err(StartError::Profiles(format!(
                    "two profiles are served at {}; give each its own directory_path",
                    p.directory_path
                )));
            }
        }
        let (dir, tmp) = match config.data_dir {
            Some(dir) => (dir, None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("acme-harness-")
                    .tempdir()
                    .map_err(|source| StartError::Write {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        let ca = match config.ca {
            Some(ca) => ca,
            None => {
                let ca_dir = dir.join("ca");
                let ca = tokio::task::spawn_blocking(move || Ca::load_or_create(&ca_dir))
                    .await
                    .map_err(|e| StartError::Profiles(format!("CA setup panicked: {e}")))??;
                Arc::new(ca)
            }
        };

        let hostnames = config
            .hostnames
            .iter()
            .map(|n| check_hostname(n))
            .collect::<Result<Vec<_>, _>>()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let Urls { origin, admin } = urls_for(addr, &hostnames);
        let mut names = hostnames.clone();
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
        let identity = match config.tls_identity {
            Some(identity) => identity,
            None => ca.listener_identity(&names)?,
        };

        let ca_bundle = dir.join("ca-bundle.pem");
        let roots = dir.join("roots.pem");
        write_file(&ca_bundle, ca.listener_ca_pem.as_bytes(), false)?;
        write_file(&roots, ca.roots_pem.as_bytes(), false)?;

        let acceptor = tls_acceptor(identity)?;

        let profiles = config.profiles;
        let default_name = profiles[0].name.clone();
        let profiles_first_slug = profiles[0].slug().to_owned();
        let seed = config.seed.unwrap_or_else(rand::random);
        let admin_token = load_or_create_token(&dir.join("admin-token"))?;
        let dns = Arc::new(crate::dns::MockDns::default());
        let dns_server = crate::dns::serve(dns.clone(), config.dns_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.dns_listen,
                source,
            })?;
        let validator = crate::validate::Validator::new(
            config.validation_dns.unwrap_or(dns_server.addr),
            config.http01_port,
            config.tlsalpn01_port,
        )
        .map_err(StartError::Profiles)?;
        let mut store = Store::new(config.orgs);
        if let Some(path) = &config.persist {
            store.attach(path).map_err(StartError::Profiles)?;
        }
        let demo = demo_info(&store.orgs.load());
        let mut state = AppState::new(
            store,
            ca,
            profiles,
            origin.clone(),
            crate::http::Extras {
                limits: config.limits,
                seed,
                server_faults: config.faults,
                admin_token: admin_token.clone(),
                dns,
                validator: Arc::new(validator),
            },
        );
        if config.pebble_paths {
            state.pebble_paths = state.profiles.get(profiles_first_slug.as_str()).cloned();
        }
        state.mounts = config.mounts;
        let state = Arc::new(state);
        let directories: BTreeMap<String, String> = state
            .profiles
            .values()
            .map(|c| (c.profile.name.clone(), c.base.clone()))
            .collect();
        let ready = ReadyInfo {
            directory: directories.get(&default_name).cloned().unwrap_or_default(),
            directories,
            ca_bundle,
            roots,
            hostnames,
            admin_url: admin,
            admin_token: Some(admin_token.expose().clone()),
            demo,
            seed,
            dns: dns_server.addr,
            http01_port: config.http01_port,
            tlsalpn01_port: config.tlsalpn01_port,
        };
        let json = serde_json::to_vec_pretty(&ready)
            .map_err(|e| StartError::Profiles(format!("cannot write ready.json: {e}")))?;
        write_file(&dir.join("ready.json"), &json, true)?;

        let (stop, stopped) = watch::channel(false);
        let app = router(state.clone());
        tokio::spawn(prune_loop(
            state.clone(),
            stop.subscribe(),
            config.limits.max_orders,
        ));
        let handshake_failures = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            app,
            stopped,
            config.limits,
            handshake_failures.clone(),
        ));
        tracing::info!(%origin, "mock ACME server listening");
        Ok(Self {
            addr,
            handshake_failures,
            state,
            ready,
            stop,
            task: Some(task),
            _dns: dns_server,
            _tmp: tmp,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many TLS handshakes failed or timed out: a client that refuses the listener's
    /// certificate shows up here, and nowhere else (it sends no request).
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// What ready.json says.
    pub fn ready(&self) -> &ReadyInfo {
        &self.ready
    }

    /// The directory URL of the profile `name`.
    pub fn directory_url(&self, name: &str) -> Option<&str> {
        self.ready.directories.get(name).map(String::as_str)
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The admin token kept in the data directory (0600), made at first start.
fn load_or_create_token(path: &Path) -> Result<acme_proto::Secret<String>, StartError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let token = text.trim();
        if token.len() >= 32 {
            return Ok(acme_proto::Secret::new(token.to_owned()));
        }
    }
    let token = crate::admin::new_token();
    write_file(path, token.expose().as_bytes(), true)?;
    Ok(token)
}

/// A hostname for the listener certificate and URLs: an IP literal (without brackets), or a
/// DNS name of letters, digits and hyphens in dot-separated labels (RFC 1123), lower-cased.
fn check_hostname(name: &str) -> Result<String, StartError> {
    let bad = |why: &str| StartError::Hostname {
        name: name.to_owned(),
        why: why.to_owned(),
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(bad(
                "the unspecified address names no host; give the address or name clients use",
            ));
        }
        return Ok(ip.to_string());
    }
    if name.starts_with('[') {
        return Err(bad("give an IPv6 address without brackets"));
    }
    if name.starts_with("*.") {
        return Err(bad("a wildcard names no host; give each name clients use"));
    }
    if name.is_empty() || name.len() > 253 {
        return Err(bad("a DNS name has 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad(
                "each dot-separated label has 1 to 63 characters (no leading, trailing or double dot)",
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "a DNS name has letters, digits, hyphens and dots only (IDNs in their xn-- form)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label does not start or end with a hyphen"));
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// Where the server is reached: the origin every ACME URL is built on, and the admin API's
/// URL on a loopback address.
#[derive(Debug, PartialEq, Eq)]
struct Urls {
    origin: String,
    admin: Option<String>,
}

/// The URLs of a server bound to `addr` and known by `hostnames` (checked already). The
/// first hostname is the URLs' host: a client on another host reaches the server by name, and
/// then follows the URLs the directory hands out, which must carry the same name (the JWS
/// `url` of each request is compared with them). Without one, the bound address is the host,
/// or loopback when bound to every address. The admin API answers loopback peers only, so its
/// URL is on loopback whatever the hostnames; bound to one non-loopback address, it has none.
fn urls_for(addr: SocketAddr, hostnames: &[String]) -> Urls {
    let url_host = |ip: IpAddr| match ip {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let loopback = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Some(IpAddr::from([127, 0, 0, 1])),
        IpAddr::V6(ip) if ip.is_unspecified() => Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        ip if ip.is_loopback() => Some(ip),
        _ => None,
    };
    let host = match hostnames.first() {
        Some(name) => match name.parse::<IpAddr>() {
            Ok(ip) => url_host(ip),
            Err(_) => name.clone(),
        },
        None => url_host(loopback.unwrap_or(addr.ip())),
    };
    let port = addr.port();
    Urls {
        origin: format!("https://{host}:{port}"),
        admin: loopback.map(|ip| format!("https://{}:{port}/admin", url_host(ip))),
    }
}

fn demo_info(orgs: &Orgs) -> Option<DemoInfo> {
    let cred = orgs.credentials.first()?;
    // Plain names first: scripts take domains[0] as the name to ask for.
    let mut domains: Vec<String> = cred.domains.iter().cloned().collect();
    domains.sort_by_key(|d| (d.starts_with("*."), d.clone()));
    Some(DemoInfo {
        eab_kid: cred.kid.clone(),
        eab_hmac_key: acme_proto::b64::encode(cred.hmac_key.expose()),
        domains,
        undelegated_domain: orgs
            .demo
            .as_ref()
            .map(|d| d.undelegated_domain.clone())
            .unwrap_or_default(),
    })
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
    handshake_failures: Arc<AtomicU64>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // At the connection cap, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = stopped.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let control = crate::http::ConnControl {
            peer: Some(peer),
            ..crate::http::ConnControl::default()
        };
        let app = app.clone().layer(axum::Extension(control.clone()));
        let watcher = graceful.watcher();
        let handshake_failures = handshake_failures.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = TowerToHyperService::new(app);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                .max_concurrent_streams(100);
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            let conn = watcher.watch(conn);
            tokio::select! {
                _ = conn => {}
                // No connection lives longer than this, whatever the peer does.
                _ = tokio::time::sleep(limits.connection_lifetime) => {
                    tracing::debug!(%peer, "connection closed at its lifetime limit");
                }
                // The `drop` fault: close without answering.
                _ = control.drop.notified() => {}
            }
        });
    }
    // Stop accepting; let in-flight requests finish, up to the grace period.
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight connections did not finish within the grace period");
    }
}

/// Every two seconds, drops what is beyond the retention limit.
async fn prune_loop(state: Arc<AppState>, mut stopped: watch::Receiver<bool>, keep: usize) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let dropped = state.store.prune(keep);
        if dropped > 0 {
            tracing::debug!(dropped, "old orders pruned");
        }
    }
}

/// A small HTTPS service beside the ACME listener (Pebble's management API, challtestsrv's
/// DNS over HTTPS), on the same accept loop and TLS; dropping it stops it.
#[derive(Debug)]
pub struct SideService {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for SideService {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `app` over HTTPS with `identity` on `addr` (port 0: one the OS picks).
pub(crate) async fn serve_side(
    app: axum::Router,
    addr: SocketAddr,
    identity: crate::ca::ListenerIdentity,
) -> std::io::Result<SideService> {
    let acceptor = tls_acceptor(identity).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(
        listener,
        acceptor,
        app,
        stopped,
        Limits::default(),
        Arc::new(AtomicU64::new(0)),
    ));
    Ok(SideService { addr, stop })
}

/// The TLS acceptor of a listener identity (aws-lc-rs, HTTP/2 and HTTP/1.1 by ALPN): the ACME
/// listener's, and Pebble's management API's.
pub(crate) fn tls_acceptor(
    identity: crate::ca::ListenerIdentity,
) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rustls::pki_types::ServerName;
    use tower::ServiceExt as _;

    fn at(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    fn urls(origin: &str, admin: Option<&str>) -> Urls {
        Urls {
            origin: origin.to_owned(),
            admin: admin.map(str::to_owned),
        }
    }

    #[test]
    fn urls_carry_the_first_hostname_and_the_admin_api_stays_on_loopback() {
        assert_eq!(
            urls_for(at("127.0.0.1:14000"), &[]),
            urls(
                "https://127.0.0.1:14000",
                Some("https://127.0.0.1:14000/admin")
            )
        );
        assert_eq!(
            urls_for(at("127.0.0.2:14000"), &names(&["mock.test", "alias.test"])),
            urls(
                "https://mock.test:14000",
                Some("https://127.0.0.2:14000/admin")
            )
        );
        assert_eq!(
            urls_for(at("0.0.0.0:14000"), &names(&["testbox.campus.example"])),
            urls(
                "https://testbox.campus.example:14000",
                Some("https://127.0.0.1:14000/admin")
            )
        );
        // Bound to every address without a name: loopback works, 0.0.0.0 names no host.
        assert_eq!(
            urls_for(at("0.0.0.0:14000"), &[]),
            urls(
                "https://127.0.0.1:14000",
                Some("https://127.0.0.1:14000/admin")
            )
        );
        assert_eq!(
            urls_for(at("[::]:14000"), &names(&["2001:db8::5"])),
            urls(
                "https://[2001:db8::5]:14000",
                Some("https://[::1]:14000/admin")
            )
        );
        // One address that is not loopback: no peer of the admin API can be loopback.
        assert_eq!(
            urls_for(at("192.0.2.10:14000"), &[]),
            urls("https://192.0.2.10:14000", None)
        );
    }

    #[test]
    fn hostnames_are_dns_names_or_ip_literals() {
        assert_eq!(check_hostname("Mock.Test").unwrap(), "mock.test");
        assert_eq!(
            check_hostname("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(check_hostname("192.0.2.10").unwrap(), "192.0.2.10");
        assert_eq!(check_hostname("2001:DB8::5").unwrap(), "2001:db8::5");
        for bad in [
            "",
            "mock test",
            "mock..test",
            "mock.test.",
            "-mock.test",
            "*.mock.test",
            "[::1]",
            "0.0.0.0",
            "bücher.example",
        ] {
            let err = check_hostname(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    /// A TLS handshake with the listener at `addr` that expects the certificate to be valid
    /// for `name`, trusting the server's ca-bundle.pem only.
    async fn handshake(server: &MockServer, name: &str) -> Result<(), std::io::Error> {
        let tls = reference_client::raw::tls_config(&[server.ready().ca_bundle.clone()]).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
        let name = ServerName::try_from(name.to_owned()).unwrap();
        connector.connect(name, tcp).await.map(drop)
    }

    #[tokio::test]
    async fn the_listener_certificate_verifies_for_every_hostname() {
        let server = MockServer::start(ServerConfig {
            // All of 127.0.0.0/8 is loopback: the test talks to no other host.
            listen: at("127.0.0.2:0"),
            hostnames: names(&["mock.test", "Alias.Test", "192.0.2.10"]),
            ..ServerConfig::ephemeral()
        })
        .await
        .unwrap();
        let port = server.addr().port();
        let ready = server.ready();
        assert_eq!(
            ready.hostnames,
            names(&["mock.test", "alias.test", "192.0.2.10"])
        );
        assert!(
            ready
                .directory
                .starts_with(&format!("https://mock.test:{port}/v2/")),
            "{}",
            ready.directory
        );
        assert_eq!(
            ready.admin_url.as_deref(),
            Some(format!("https://127.0.0.2:{port}/admin").as_str())
        );
        for name in [
            "mock.test",
            "alias.test",
            "192.0.2.10",
            "127.0.0.2",
            "localhost",
        ] {
            handshake(&server, name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let refused = handshake(&server, "other.test").await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("not valid for name \"other.test\""),
            "{refused}"
        );
        // The refusal is counted: a remote vet tells a client that refused the certificate
        // from one that never connected.
        for _ in 0..100 {
            if server.handshake_failures() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.handshake_failures(), 1);
    }

    #[test]
    fn a_ready_json_without_hostnames_still_reads() {
        let server = serde_json::json!({
            "directory": "https://127.0.0.1:14000/v2/InCommonRSAOV",
            "directories": {},
            "ca_bundle": "ca-bundle.pem",
            "roots": "roots.pem",
            "admin_url": "https://127.0.0.1:14000/admin",
            "admin_token": null,
            "demo": null,
            "seed": 8,
            "dns": "127.0.0.1:53",
            "http01_port": 5002,
            "tlsalpn01_port": 5001
        });
        let ready: ReadyInfo = serde_json::from_value(server).unwrap();
        assert!(ready.hostnames.is_empty());
    }

    #[tokio::test]
    async fn a_bad_hostname_is_a_startup_error() {
        let err = MockServer::start(ServerConfig {
            hostnames: names(&["mock test"]),
            ..ServerConfig::ephemeral()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, StartError::Hostname { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_admin_api_answers_loopback_peers_only() {
        let server = MockServer::start(ServerConfig::ephemeral()).await.unwrap();
        let token = server.ready().admin_token.clone().unwrap();
        let ask = |peer: &str| {
            let control = crate::http::ConnControl {
                peer: Some(peer.parse().unwrap()),
                ..crate::http::ConnControl::default()
            };
            let app = crate::http::router(server.state().clone()).layer(axum::Extension(control));
            let request = http::Request::get("/admin/organizations")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            app.oneshot(request)
        };
        // The right token from another host is still refused: --hostname and a non-loopback
        // --listen open the ACME API to the network, never the admin API.
        assert_eq!(ask("192.0.2.7:40000").await.unwrap().status(), 403);
        assert_eq!(ask("[2001:db8::7]:40000").await.unwrap().status(), 403);
        assert_eq!(ask("127.0.0.1:40000").await.unwrap().status(), 200);
        assert_eq!(ask("127.0.0.2:40000").await.unwrap().status(), 200);
        assert_eq!(ask("[::1]:40000").await.unwrap().status(), 200);
    }
}
