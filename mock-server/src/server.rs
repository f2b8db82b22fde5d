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
    /// Profiles to serve; the first is the default.
    pub profiles: Vec<Profile>,
    /// Organisations, departments, domains and EAB credentials.
    pub orgs: Orgs,
}

impl ServerConfig {
    /// Both InCommon profiles and the demo organisation on 127.0.0.1:0, in a temporary
    /// directory: what tests want.
    pub fn ephemeral() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            profiles: Profile::all_built_in().unwrap_or_default(),
            orgs: Orgs::demo(),
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
    /// Admin API URL (not served yet).
    pub admin_url: Option<String>,
    /// Admin API bearer token (not served yet).
    pub admin_token: Option<String>,
    /// Demo credential, if the organisation file has one.
    pub demo: Option<DemoInfo>,
}

/// A running server. Dropping it stops the accept loop.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    ready: ReadyInfo,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), StartError> {
    use std::io::Write as _;
    let err = |source| StartError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    #[cfg(unix)]
    if secret {
        // An existing file keeps its old mode on open: tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    file.write_all(contents).map_err(err)
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
        let ca_dir = dir.join("ca");
        let ca = tokio::task::spawn_blocking(move || Ca::load_or_create(&ca_dir))
            .await
            .map_err(|e| StartError::Profiles(format!("CA setup panicked: {e}")))??;

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

        let demo = demo_info(&config.orgs);
        let profiles = config.profiles;
        let default_name = profiles[0].name.clone();
        let state = Arc::new(AppState::new(
            Store::new(config.orgs),
            ca,
            profiles,
            origin.clone(),
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
            admin_url: None,
            admin_token: None,
            demo,
        };
        let json = serde_json::to_vec_pretty(&ready).unwrap_or_default();
        write_file(&dir.join("ready.json"), &json, true)?;

        let (stop, stopped) = watch::channel(false);
        let app = router(state.clone());
        let task = tokio::spawn(accept_loop(listener, acceptor, app, stopped));
        tracing::info!(%origin, "mock ACME server listening");
        Ok(Self {
            addr,
            state,
            ready,
            stop,
            task: Some(task),
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
) {
    loop {
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
        let app = app.clone();
        let mut conn_stopped = stopped.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
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
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                _ = conn => {}
                _ = conn_stopped.changed() => {}
            }
        });
    }
}
