//! The stand-in for `pebble-challtestsrv`, the challenge test server Pebble's suites answer
//! challenges with: `acme-harness challtestsrv`, or the binary through a link named
//! `pebble-challtestsrv`. Its DNS is the mock's ([`mock_server::dns`]), its http-01 and
//! tls-alpn-01 responders are the reference client's solvers; this module adds the flags and the
//! management API that sets records and answers and reads the request histories.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::flags::{self, FlagKind, FlagSpec};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use dashmap::DashMap;
use http::StatusCode;
use mock_server::dns::{Caa, MockDns, RecordKind};
use serde_json::{Value, json};

use reference_client::solver::{
    Http01Hooks, Http01Standalone, HttpRequestSeen, TlsAlpn01Standalone,
};

const SPECS: &[FlagSpec] = &[
    FlagSpec {
        name: "http01",
        kind: FlagKind::Value,
        default: ":5002",
        usage: "Comma separated bind addresses/ports for HTTP-01 challenges. Set empty to disable.",
    },
    FlagSpec {
        name: "https01",
        kind: FlagKind::Value,
        default: ":5003",
        usage: "Comma separated bind addresses/ports for HTTPS HTTP-01 challenges. Set empty to disable.",
    },
    FlagSpec {
        name: "dnsserver",
        kind: FlagKind::Value,
        default: ":8053",
        usage: "Comma separated bind addresses/ports for DNS-01 challenges and fake DNS data. Set empty to disable.",
    },
    FlagSpec {
        name: "dns01",
        kind: FlagKind::Value,
        default: "",
        usage: "The name pebble-challtestsrv 2.4 gives -dnsserver.",
    },
    FlagSpec {
        name: "doh",
        kind: FlagKind::Value,
        default: ":8443",
        usage: "Comma separated bind addresses/ports for DoH HTTPS. Set empty to disable.",
    },
    FlagSpec {
        name: "doh-cert",
        kind: FlagKind::Value,
        default: "",
        usage: "Path to certificate file for DoH server.",
    },
    FlagSpec {
        name: "doh-cert-key",
        kind: FlagKind::Value,
        default: "",
        usage: "Path to certificate key file for DoH server.",
    },
    FlagSpec {
        name: "tlsalpn01",
        kind: FlagKind::Value,
        default: ":5001",
        usage: "Comma separated bind addresses/ports for TLS-ALPN-01 and HTTPS HTTP-01 challenges. Set empty to disable.",
    },
    FlagSpec {
        name: "management",
        kind: FlagKind::Value,
        default: ":8055",
        usage: "Bind address/port for management HTTP interface",
    },
    FlagSpec {
        name: "defaultIPv4",
        kind: FlagKind::Value,
        default: "127.0.0.1",
        usage: "Default IPv4 address for mock DNS responses to A queries",
    },
    FlagSpec {
        name: "defaultIPv6",
        kind: FlagKind::Value,
        default: "::1",
        usage: "Default IPv6 address for mock DNS responses to AAAA queries",
    },
];

fn log(message: &str) {
    println!("pebble-challtestsrv - {message}");
}

/// What to start: the listeners of each kind (each list may be empty) and the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Plain-HTTP http-01 responders.
    pub http01: Vec<SocketAddr>,
    /// HTTPS http-01 responders (self-signed certificate).
    pub https01: Vec<SocketAddr>,
    /// tls-alpn-01 responders.
    pub tlsalpn01: Vec<SocketAddr>,
    /// DNS servers (UDP and TCP each).
    pub dns: Vec<SocketAddr>,
    /// The management API (plain HTTP).
    pub management: Option<SocketAddr>,
    /// Answer to A queries with no record.
    pub default_ipv4: Option<Ipv4Addr>,
    /// Answer to AAAA queries with no record.
    pub default_ipv6: Option<Ipv6Addr>,
    /// DNS-over-HTTPS servers (RFC 8484).
    pub doh: Vec<SocketAddr>,
    /// PEM certificate chain of the DoH servers (`-doh-cert`).
    pub doh_cert: String,
    /// PEM private key of the DoH servers (`-doh-cert-key`).
    pub doh_cert_key: String,
}

/// Why the command line was refused; names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn addresses(flag: &str, text: &str) -> Result<Vec<SocketAddr>, SettingsError> {
    let mut out = Vec::new();
    for a in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addr = crate::loopback_addr(&format!("-{flag}"), a).map_err(|e| SettingsError(e.0))?;
        // Go binds an empty host (`:8055`) and `[::]` on every address, IPv6 too: suites then
        // reach it at [::1] (instant-acme) as well as at 127.0.0.1. Both loopbacks, ::1 first
        // (the management API takes the first).
        if a.starts_with(':') || a.starts_with("[::]:") {
            out.push(SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())));
            out.push(SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())));
        } else {
            out.push(addr);
        }
    }
    Ok(out)
}

impl Settings {
    /// The settings of a parsed command line.
    pub fn from_flags(parsed: &flags::Parsed) -> Result<Self, SettingsError> {
        let value = |name: &str| {
            let default = SPECS
                .iter()
                .find(|s| s.name == name)
                .map_or("", |s| s.default);
            parsed.value(name, default).to_owned()
        };
        let dns = match parsed.given.get("dns01") {
            Some(old) => old.clone(),
            None => value("dnsserver"),
        };
        let ip = |name: &str| -> Result<Option<String>, SettingsError> {
            let v = value(name);
            Ok((!v.is_empty()).then_some(v))
        };
        let default_ipv4 = ip("defaultIPv4")?
            .map(|v| {
                v.parse()
                    .map_err(|_| SettingsError(format!("-defaultIPv4 {v:?}: not an IPv4 address")))
            })
            .transpose()?;
        let default_ipv6 = ip("defaultIPv6")?
            .map(|v| {
                v.parse()
                    .map_err(|_| SettingsError(format!("-defaultIPv6 {v:?}: not an IPv6 address")))
            })
            .transpose()?;
        let management = addresses("management", &value("management"))?
            .into_iter()
            .next();
        Ok(Self {
            http01: addresses("http01", &value("http01"))?,
            https01: addresses("https01", &value("https01"))?,
            tlsalpn01: addresses("tlsalpn01", &value("tlsalpn01"))?,
            dns: addresses("dnsserver", &dns)?,
            management,
            default_ipv4,
            default_ipv6,
            doh: addresses("doh", &value("doh"))?,
            doh_cert: value("doh-cert"),
            doh_cert_key: value("doh-cert-key"),
        })
    }
}

/// The DoH servers' certificate and key from `-doh-cert` and `-doh-cert-key`; the error names
/// the flag and the file.
fn doh_identity(settings: &Settings) -> Result<mock_server::ca::ListenerIdentity, String> {
    let read = |flag: &str, path: &str| {
        if path.is_empty() {
            return Err(format!("-{flag} is empty: name a PEM file"));
        }
        std::fs::read(path).map_err(|e| format!("-{flag} {path}: {e}"))
    };
    let cert = read("doh-cert", &settings.doh_cert)?;
    let key = read("doh-cert-key", &settings.doh_cert_key)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("-doh-cert {}: {e}", settings.doh_cert))?;
    if chain.is_empty() {
        return Err(format!(
            "-doh-cert {}: no PEM certificate in it",
            settings.doh_cert
        ));
    }
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!(
                "-doh-cert-key {}: no PEM private key in it",
                settings.doh_cert_key
            )
        })?;
    Ok(mock_server::ca::ListenerIdentity { chain, key })
}

/// Runs `pebble-challtestsrv` with `args` (without the program name); returns the exit
/// status.
pub fn main(program: &str, args: &[String]) -> i32 {
    let parsed = match flags::parse_or_usage(program, SPECS, args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    if !parsed.rest.is_empty() {
        println!("invalid command line arguments: {}", parsed.rest.join(" "));
        eprint!("{}", flags::usage(program, SPECS));
        return 1;
    }
    let settings = match Settings::from_flags(&parsed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if settings.http01.is_empty()
        && settings.https01.is_empty()
        && settings.tlsalpn01.is_empty()
        && settings.dns.is_empty()
        && settings.doh.is_empty()
    {
        eprintln!(
            "Unable to construct challenge server: no listeners: give -http01, -tlsalpn01, -dnsserver or -doh"
        );
        return 1;
    }
    let Some(runtime) = crate::runtime() else {
        return 1;
    };
    runtime.block_on(async move {
        let server = ChallTestSrv::start(&settings).await;
        stop_signal().await;
        log("Shutting down");
        drop(server);
        0
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::select! {
                _ = crate::wait_for_stop_signal() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    crate::wait_for_stop_signal().await;
}

type History = DashMap<String, Vec<Value>>;

/// The shared state of the responders and the management API.
#[derive(Debug, Default)]
struct Shared {
    dns: Arc<MockDns>,
    http: Vec<Arc<Http01Standalone>>,
    redirects: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    tls: Vec<Arc<TlsAlpn01Standalone>>,
    http_history: Arc<History>,
    tls_history: Arc<History>,
    dns_enabled: bool,
}

/// A running challenge test server; dropping it stops every listener.
#[derive(Debug)]
pub struct ChallTestSrv {
    shared: Arc<Shared>,
    _dns: Vec<mock_server::dns::DnsServer>,
    doh: Vec<mock_server::dns::DohServer>,
    management: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    /// The bound addresses: http-01, tls-alpn-01, DNS.
    pub bound: (Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>),
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.management {
            task.abort();
        }
    }
}

fn push(history: &History, key: &str, event: Value) {
    let mut list = history.entry(key.to_owned()).or_default();
    if list.len() < 10_000 {
        list.push(event);
    }
}

impl ChallTestSrv {
    /// Starts every listener; one that cannot bind is logged and skipped, as
    /// pebble-challtestsrv does.
    pub async fn start(settings: &Settings) -> Self {
        let dns = Arc::new(MockDns::default());
        dns.challtestsrv_mode();
        dns.set_default_ipv4(settings.default_ipv4);
        dns.set_default_ipv6(settings.default_ipv6);
        let http_history: Arc<History> = Arc::default();
        let tls_history: Arc<History> = Arc::default();
        let redirects: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>> =
            Arc::default();
        let mut bound = (Vec::new(), Vec::new(), Vec::new());
        let mut http = Vec::new();
        let https_acceptor = if settings.https01.is_empty() {
            None
        } else {
            match self_signed_acceptor() {
                Ok(a) => Some(a),
                Err(e) => {
                    log(&format!("https-01 servers: {e}"));
                    None
                }
            }
        };
        let plain = settings.http01.iter().map(|a| (*a, None));
        let secure = settings
            .https01
            .iter()
            .filter_map(|a| https_acceptor.clone().map(|t| (*a, Some(t))));
        for (addr, tls) in plain.chain(secure) {
            let history = http_history.clone();
            let hooks = Http01Hooks {
                redirects: redirects.clone(),
                observer: Some(Arc::new(move |seen: HttpRequestSeen| {
                    let host = seen
                        .host
                        .rsplit_once(':')
                        .map_or(seen.host.as_str(), |(h, _)| h);
                    let key = host.to_owned();
                    push(
                        &history,
                        &key,
                        json!({"URL": seen.target, "Host": seen.host, "HTTPS": seen.https,
                               "ServerName": seen.server_name, "UserAgent": seen.user_agent}),
                    );
                })),
                empty_200_for_unknown: true,
                tls,
            };
            let solver = Arc::new(Http01Standalone::with_hooks(addr, hooks));
            match solver.bind().await {
                Ok(a) => {
                    log(&format!("Starting challenge servers: http-01 on {a}"));
                    bound.0.push(a);
                    http.push(solver);
                }
                Err(e) => log(&format!("http-01 server on {addr}: {e}")),
            }
        }
        let mut tls = Vec::new();
        for addr in &settings.tlsalpn01 {
            let history = tls_history.clone();
            let solver = Arc::new(TlsAlpn01Standalone::with_observer(
                *addr,
                Arc::new(move |hello| {
                    push(
                        &history,
                        &hello.server_name.clone(),
                        json!({"ServerName": hello.server_name, "SupportedProtos": hello.alpn}),
                    );
                }),
            ));
            match solver.bind().await {
                Ok(a) => {
                    log(&format!("Starting challenge servers: tls-alpn-01 on {a}"));
                    bound.1.push(a);
                    tls.push(solver);
                }
                Err(e) => log(&format!("tls-alpn-01 server on {addr}: {e}")),
            }
        }
        let mut dns_servers = Vec::new();
        for addr in &settings.dns {
            match mock_server::dns::serve(dns.clone(), *addr).await {
                Ok(server) => {
                    log(&format!(
                        "Starting challenge servers: dns on {}",
                        server.addr
                    ));
                    bound.2.push(server.addr);
                    dns_servers.push(server);
                }
                Err(e) => log(&format!("DNS server on {addr}: {e}")),
            }
        }
        // As challtestsrv: a DoH listener whose certificate cannot be loaded (with the
        // default empty -doh-cert, always) is logged, and everything else keeps running.
        let mut doh_servers = Vec::new();
        if !settings.doh.is_empty() {
            match doh_identity(settings) {
                Ok(identity) => {
                    for addr in &settings.doh {
                        let identity = mock_server::ca::ListenerIdentity {
                            chain: identity.chain.clone(),
                            key: identity.key.clone_key(),
                        };
                        match mock_server::dns::serve_doh(dns.clone(), *addr, identity).await {
                            Ok(server) => {
                                log(&format!(
                                    "Starting challenge servers: doh on {}",
                                    server.addr
                                ));
                                doh_servers.push(server);
                            }
                            Err(e) => log(&format!("DoH server on {addr}: {e}")),
                        }
                    }
                }
                Err(e) => log(&format!("DoH servers not started: {e}")),
            }
        }
        let shared = Arc::new(Shared {
            dns,
            http,
            redirects,
            tls,
            http_history,
            tls_history,
            dns_enabled: !settings.dns.is_empty(),
        });
        let mut management = None;
        if let Some(addr) = settings.management {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let local = listener.local_addr().unwrap_or(addr);
                    log(&format!("Answering management requests on {local}"));
                    let app = router(shared.clone(), settings);
                    let task = tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    management = Some((local, task));
                }
                Err(e) => log(&format!("management interface on {addr}: {e}")),
            }
        }
        Self {
            shared,
            _dns: dns_servers,
            doh: doh_servers,
            management,
            bound,
        }
    }

    /// Where the DNS-over-HTTPS servers listen.
    pub fn doh_addrs(&self) -> Vec<SocketAddr> {
        self.doh.iter().map(|d| d.addr).collect()
    }

    /// Where the management API listens.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().map(|(a, _)| *a)
    }

    /// The DNS data (tests read it).
    pub fn dns(&self) -> &Arc<MockDns> {
        &self.shared.dns
    }
}

/// A TLS acceptor with a fresh self-signed ECDSA certificate, CN `challenge test server`, as
/// pebble-challtestsrv makes for its HTTPS responders.
fn self_signed_acceptor() -> Result<tokio_rustls::TlsAcceptor, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "challenge test server");
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The management routes; as in pebble-challtestsrv, a feature's routes exist only when it
/// has a listener configured.
fn router(shared: Arc<Shared>, settings: &Settings) -> Router {
    let mut r = Router::new();
    if !settings.http01.is_empty() || !settings.https01.is_empty() {
        r = r
            .route("/add-http01", any(add_http01))
            .route("/del-http01", any(del_http01))
            .route("/add-redirect", any(add_redirect))
            .route("/del-redirect", any(del_redirect));
    }
    if shared.dns_enabled {
        r = r
            .route("/set-default-ipv4", any(set_default_ipv4))
            .route("/set-default-ipv6", any(set_default_ipv6))
            .route("/add-a", any(add_a))
            .route("/clear-a", any(clear_a))
            .route("/add-aaaa", any(add_aaaa))
            .route("/clear-aaaa", any(clear_aaaa))
            .route("/add-caa", any(add_caa))
            .route("/clear-caa", any(clear_caa))
            .route("/set-cname", any(set_cname))
            .route("/clear-cname", any(clear_cname))
            .route("/set-servfail", any(set_servfail))
            .route("/clear-servfail", any(clear_servfail))
            .route("/set-txt", any(set_txt))
            .route("/clear-txt", any(clear_txt));
    }
    if !settings.tlsalpn01.is_empty() {
        r = r
            .route("/add-tlsalpn01", any(add_tlsalpn01))
            .route("/del-tlsalpn01", any(del_tlsalpn01));
    }
    r.route("/http-request-history", any(http_history))
        .route("/dns-request-history", any(dns_history))
        .route("/tlsalpn01-request-history", any(tls_history))
        .route("/clear-request-history", any(clear_history))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(shared)
}

type St = State<Arc<Shared>>;

/// A refusal: the status and a plain-text body (often empty, as challtestsrv's are).
type Refused = (StatusCode, String);

/// 400 with an empty body: what challtestsrv answers for a missing field.
fn empty400() -> Refused {
    (StatusCode::BAD_REQUEST, String::new())
}

/// A request body: a JSON object whose members are found in any case (Go's
/// `encoding/json`). Refusals are challtestsrv's: 400 with a text, or 400 with no body for a
/// missing field.
struct Body(serde_json::Map<String, Value>);

impl Body {
    fn parse(bytes: &[u8]) -> Result<Self, Refused> {
        if bytes.is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                "expected JSON POST body, was empty\n".into(),
            ));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Self(m)),
            Ok(_) => Err((StatusCode::BAD_REQUEST, "expected a JSON object\n".into())),
            Err(e) => Err((StatusCode::BAD_REQUEST, format!("{e}\n"))),
        }
    }

    fn member(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A non-empty string member, or 400 with an empty body.
    fn text(&self, name: &str) -> Result<String, Refused> {
        match self.member(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(empty400()),
        }
    }

    /// A string member that may be empty.
    fn optional_text(&self, name: &str) -> Result<String, Refused> {
        match self.member(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(empty400()),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, Refused> {
        match self.member(name) {
            Some(Value::Array(items)) if !items.is_empty() => Ok(items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()),
            _ => Err(empty400()),
        }
    }
}

/// Runs `f` over the parsed body: 200 with no body on success.
fn handle(bytes: &[u8], f: impl FnOnce(Body) -> Result<(), Refused>) -> Response {
    match Body::parse(bytes).and_then(f) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn add_http01(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let (token, content) = (b.text("token")?, b.text("content")?);
        s.http.iter().for_each(|h| h.set_answer(&token, &content));
        Ok(())
    })
}

async fn del_http01(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let token = b.text("token")?;
        s.http.iter().for_each(|h| h.remove_answer(&token));
        Ok(())
    })
}

async fn add_redirect(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let (path, target) = (b.text("path")?, b.text("targetURL")?);
        s.redirects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path, target);
        Ok(())
    })
}

async fn del_redirect(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let path = b.text("path")?;
        s.redirects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&path);
        Ok(())
    })
}

async fn set_default_ipv4(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let ip = b.optional_text("ip")?;
        let ip = match ip.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|_| empty400())?),
        };
        s.dns.set_default_ipv4(ip);
        Ok(())
    })
}

async fn set_default_ipv6(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let ip = b.optional_text("ip")?;
        let ip = match ip.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|_| empty400())?),
        };
        s.dns.set_default_ipv6(ip);
        Ok(())
    })
}

async fn add_a(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let host = b.text("host")?;
        // Strings that are not IPv4 addresses are dropped, as challtestsrv drops them.
        let ips: Vec<Ipv4Addr> = b
            .strings("addresses")?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        s.dns.add_a(&host, &ips);
        Ok(())
    })
}

async fn add_aaaa(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let host = b.text("host")?;
        let ips: Vec<Ipv6Addr> = b
            .strings("addresses")?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        s.dns.add_aaaa(&host, &ips);
        Ok(())
    })
}

fn clear(s: &Shared, b: &Body, kind: RecordKind) -> Result<(), Refused> {
    let host = b.text("host")?;
    s.dns.clear_type(&host, kind);
    Ok(())
}

async fn clear_a(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| clear(&s, &b, RecordKind::A))
}

async fn clear_aaaa(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| clear(&s, &b, RecordKind::Aaaa))
}

async fn clear_caa(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| clear(&s, &b, RecordKind::Caa))
}

async fn clear_txt(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| clear(&s, &b, RecordKind::Txt))
}

async fn add_caa(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let host = b.text("host")?;
        let Some(Value::Array(policies)) = b.member("policies") else {
            return Err(empty400());
        };
        for p in policies {
            let field = |name: &str| {
                p.as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            s.dns.add_caa(
                &host,
                Caa {
                    critical: false,
                    tag: field("tag"),
                    value: field("value"),
                },
            );
        }
        Ok(())
    })
}

async fn set_cname(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let (host, target) = (b.text("host")?, b.text("target")?);
        s.dns.set_cname(&host, Some(&target));
        Ok(())
    })
}

async fn clear_cname(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        s.dns.set_cname(&b.text("host")?, None);
        Ok(())
    })
}

async fn set_servfail(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        s.dns.set_servfail(&b.text("host")?, true);
        Ok(())
    })
}

async fn clear_servfail(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        s.dns.set_servfail(&b.text("host")?, false);
        Ok(())
    })
}

async fn set_txt(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let (host, value) = (b.text("host")?, b.text("value")?);
        s.dns.add_txt(&host, &value);
        Ok(())
    })
}

async fn add_tlsalpn01(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let (host, content) = (b.text("host")?, b.text("content")?);
        for t in &s.tls {
            t.set_answer(&host, &content)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}\n")))?;
        }
        Ok(())
    })
}

async fn del_tlsalpn01(State(s): St, b: Bytes) -> Response {
    handle(&b, |b| {
        let host = b.text("host")?;
        s.tls.iter().for_each(|t| t.remove_answer(&host));
        Ok(())
    })
}

/// A history answer: 3-space indented JSON, `[]` when empty.
fn history_response(events: Vec<Value>) -> Response {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    let _ = serde::Serialize::serialize(&events, &mut ser);
    (
        StatusCode::OK,
        [(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn host_of(b: &Body) -> Result<String, Refused> {
    b.text("host").map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "host parameter must not be empty\n".into(),
        )
    })
}

async fn http_history(State(s): St, b: Bytes) -> Response {
    match Body::parse(&b).and_then(|b| host_of(&b)) {
        Ok(host) => history_response(
            s.http_history
                .get(&host)
                .map(|h| h.clone())
                .unwrap_or_default(),
        ),
        Err(r) => r.into_response(),
    }
}

async fn tls_history(State(s): St, b: Bytes) -> Response {
    match Body::parse(&b).and_then(|b| host_of(&b)) {
        Ok(host) => history_response(
            s.tls_history
                .get(&host)
                .map(|h| h.clone())
                .unwrap_or_default(),
        ),
        Err(r) => r.into_response(),
    }
}

async fn dns_history(State(s): St, b: Bytes) -> Response {
    match Body::parse(&b).and_then(|b| host_of(&b)) {
        Ok(host) => history_response(
            s.dns
                .history(&host)
                .into_iter()
                .map(|q| {
                    json!({"Question": {"Name": q.name, "Qtype": q.qtype, "Qclass": q.qclass},
                           "UserAgent": q.user_agent})
                })
                .collect(),
        ),
        Err(r) => r.into_response(),
    }
}

async fn clear_history(State(s): St, b: Bytes) -> Response {
    let body = match Body::parse(&b) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let host = match host_of(&body) {
        Ok(h) => h,
        Err(r) => return r.into_response(),
    };
    let kind = body.optional_text("type").unwrap_or_default();
    match kind.as_str() {
        "http" => {
            s.http_history.remove(&host);
        }
        "dns" => s.dns.clear_history(&host),
        "tlsalpn" => {
            s.tls_history.remove(&host);
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{other:?} event type unknown\n"),
            )
                .into_response();
        }
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_host_binds_both_loopbacks() {
        let both = addresses("http01", ":5002").expect("addresses");
        assert_eq!(
            both,
            [
                "[::1]:5002".parse::<SocketAddr>().expect("v6"),
                "127.0.0.1:5002".parse().expect("v4"),
            ]
        );
        let one = addresses("http01", "127.0.0.1:5002,").expect("addresses");
        assert_eq!(one, ["127.0.0.1:5002".parse::<SocketAddr>().expect("v4")]);
    }
}
