//! Binding, TLS and the accept loop; what a caller starts and stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
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
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            ca: Ca::shared().ok(),
            profiles: Profile::all_built_in().unwrap_or_default(),
            orgs: Orgs::demo(),
            seed: None,
            faults: None,
            dns_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http01_port: 5002,
            tlsalpn01_port: 5001,
            limits: Limits::default(),
            persist: None,
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
}

/// The demo values of ready.json.
#[derive(Clone, Debug, Serialize)]
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

/// What `DIR/ready.json` holds, for scripts.
#[derive(Clone, Debug, Serialize)]
pub struct ReadyInfo {
    /// The default profile's directory URL.
    pub directory: String,
    /// Profile name -> directory URL.
    pub directories: BTreeMap<String, String>,
    /// PEM file that trusts the HTTPS listener.
    pub ca_bundle: PathBuf,
    /// PEM file of the roots issued certificates chain to.
    pub roots: PathBuf,
    /// Admin API URL.
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

/// A running server. Dropping it stops the accept loop.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
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
    use std::io::Write as _;
    let err = |source| StartError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    tmp.write_all(contents).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
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
        let host = match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        let origin = format!("https://{host}:{}", addr.port());
        let identity = ca.listener_identity(&[addr.ip().to_string()])?;

        let ca_bundle = dir.join("ca-bundle.pem");
        let roots = dir.join("roots.pem");
        write_file(&ca_bundle, ca.listener_ca_pem.as_bytes(), false)?;
        write_file(&roots, ca.roots_pem.as_bytes(), false)?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let profiles = config.profiles;
        let default_name = profiles[0].name.clone();
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
            dns_server.addr,
            config.http01_port,
            config.tlsalpn01_port,
        )
        .map_err(StartError::Profiles)?;
        let mut store = Store::new(config.orgs);
        if let Some(path) = &config.persist {
            store.attach(path).map_err(StartError::Profiles)?;
        }
        let demo = demo_info(&store.orgs.load());
        let state = Arc::new(AppState::new(
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
        ));
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
            admin_url: Some(format!("{origin}/admin")),
            admin_token: Some(admin_token.expose().clone()),
            demo,
            seed,
            dns: dns_server.addr,
            http01_port: config.http01_port,
            tlsalpn01_port: config.tlsalpn01_port,
        };
        let json = serde_json::to_vec_pretty(&ready).unwrap_or_default();
        write_file(&dir.join("ready.json"), &json, true)?;

        let (stop, stopped) = watch::channel(false);
        let app = router(state.clone());
        tokio::spawn(prune_loop(
            state.clone(),
            stop.subscribe(),
            config.limits.max_orders,
        ));
        let task = tokio::spawn(accept_loop(listener, acceptor, app, stopped, config.limits));
        tracing::info!(%origin, "mock ACME server listening");
        Ok(Self {
            addr,
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

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
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
            drop: Arc::default(),
            peer: Some(peer),
        };
        let app = app.clone().layer(axum::Extension(control.clone()));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
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
