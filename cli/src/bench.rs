//! `acme-harness bench`: a load driver for any ACME server (the mock, Pebble, a staging CA).
//!
//! N simulated clients run the full issuance flow concurrently, each over its own keep-alive
//! HTTP/1.1 connection: newAccount (with EAB when given), newOrder, authorization fetch, the
//! challenge when one is pending (the server must be in an always-valid mode: Pebble's
//! `PEBBLE_VA_ALWAYS_VALID=1`, the mock's `order.danger_skip_validation`), finalize, order
//! poll, certificate download. The driver is kept cheap so that it measures the server:
//! account keys and CSRs are generated before the clock starts, every response's
//! `Replay-Nonce` is reused for the next request, and connections are opened before the clock.
//!
//! Latency is measured per request from send to the last body byte. With `--rate` issuances
//! start on a fixed schedule (for latency at a given load); without it every client starts its
//! next issuance as soon as the last one ends (saturation). Retry-After is not honoured: polls
//! back off from `--poll-ms` (default: the first poll right away, then 1 ms), doubling up to one
//! second, the same for every server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use acme_proto::{AccountKey, SignatureAlgorithm, Status, b64};
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use reference_client::raw::{Raw, Response};
use reference_client::{CertKey, CertKeyType, EabCredential};
use serde::Serialize;
use serde_json::{Value, json};

/// Environment variable that may hold the EAB HMAC key (base64url), instead of a file.
const HMAC_ENV: &str = "ACME_HARNESS_EAB_HMAC_KEY";

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Directory URL of the server under load (the mock prints its URLs; Pebble's is
    /// https://127.0.0.1:14000/dir).
    #[arg(long, value_name = "URL")]
    directory: String,

    /// PEM file of the CA that signed the server's TLS certificate (the mock's ca-bundle.pem).
    #[arg(long, value_name = "FILE")]
    ca_file: PathBuf,

    /// EAB key id; every new account binds with it (the credential must allow reuse).
    #[arg(long, value_name = "KID")]
    eab_kid: Option<String>,

    /// File holding the EAB HMAC key (base64url). Otherwise ACME_HARNESS_EAB_HMAC_KEY.
    #[arg(long, value_name = "FILE")]
    eab_hmac_key_file: Option<PathBuf>,

    /// Simulated clients running at once, each on its own connection.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,

    /// Run for this many seconds (default 10 when --issuances is not given).
    #[arg(long, value_name = "SECONDS", conflicts_with = "issuances")]
    duration: Option<f64>,

    /// Stop after this many completed or failed issuances.
    #[arg(long, value_name = "N")]
    issuances: Option<u64>,

    /// Start issuances at this many per second in total (open schedule), instead of as fast
    /// as the clients can: for latency at a given load, e.g. half the saturation rate.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,

    /// Names are `cN.DOMAIN`, one per client; must be delegated to the EAB credential on the
    /// mock's Sectigo profiles (the demo credential covers physics.example.edu and below).
    #[arg(long, default_value = "physics.example.edu", value_name = "DOMAIN")]
    domain: String,

    /// Account key algorithm: es256, es384, eddsa, rs256 (RSA keys are slow to generate:
    /// combine with --accounts per-client).
    #[arg(long, default_value = "es256", value_name = "ALG")]
    account_key: String,

    /// Certificate key type: p256, p384, rsa2048.
    #[arg(long, default_value = "p256", value_name = "TYPE")]
    cert_key: String,

    /// A new account for every issuance (what a fresh CI client does), or one per client.
    #[arg(long, value_enum, default_value_t = AccountMode::PerIssuance)]
    accounts: AccountMode,

    /// Account keys generated before the clock starts in --duration mode (default: enough
    /// for 2,500 issuances/s). Past them keys are made during the run, and the report says so.
    #[arg(long, value_name = "N")]
    pregenerate: Option<usize>,

    /// First poll delay in milliseconds for authorizations and orders (0: poll right away);
    /// then 1 ms, doubling up to 1 s.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    poll_ms: u64,

    /// Seconds one request may take before it counts as a transport timeout (a server that
    /// deadlocks shows up as timeouts instead of a hung run).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    request_timeout: u64,

    /// Pid of the server when it runs on this machine: its resident memory and CPU time are
    /// read from /proc before and after the run.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,

    /// Print the report as JSON on stdout (the progress line stays on stderr).
    #[arg(long)]
    json: bool,

    /// No progress line.
    #[arg(long)]
    quiet: bool,

    /// Threads of the driver's own async runtime. One keeps the driver cheap (no cross-thread
    /// wake-ups) and leaves the other cores to the server; raise it for servers on other hosts.
    #[arg(long, default_value_t = 1, value_name = "N")]
    driver_threads: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum AccountMode {
    /// newAccount with a fresh key (and EAB) at the start of every issuance.
    PerIssuance,
    /// One account per simulated client, made in the first issuance and reused.
    PerClient,
}

/// The server endpoints the report breaks latency down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    NewNonce,
    NewAccount,
    NewOrder,
    Authz,
    Challenge,
    Finalize,
    Order,
    Certificate,
}

const ENDPOINTS: [Endpoint; 8] = [
    Endpoint::NewNonce,
    Endpoint::NewAccount,
    Endpoint::NewOrder,
    Endpoint::Authz,
    Endpoint::Challenge,
    Endpoint::Finalize,
    Endpoint::Order,
    Endpoint::Certificate,
];

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::NewNonce => "newNonce",
            Self::NewAccount => "newAccount",
            Self::NewOrder => "newOrder",
            Self::Authz => "authz",
            Self::Challenge => "challenge",
            Self::Finalize => "finalize",
            Self::Order => "order",
            Self::Certificate => "certificate",
        }
    }
}

/// Directory URLs the flow needs.
#[derive(Debug)]
struct Dir {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// Shared, read-only run settings and the counters the progress line reads.
#[derive(Debug)]
struct Shared {
    dir: Dir,
    eab: Option<EabCredential>,
    account_alg: SignatureAlgorithm,
    mode: AccountMode,
    poll: Duration,
    keys: Mutex<Vec<AccountKey>>,
    keys_made_late: AtomicU64,
    budget: Option<u64>,
    claimed: AtomicU64,
    deadline: Option<Instant>,
    rate: Option<f64>,
    start: Instant,
    done: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Claims the next issuance, or `None` when the run is over. With a rate, also waits for
    /// the issuance's slot.
    async fn next_issuance(&self) -> Option<()> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let n = self.claimed.fetch_add(1, Ordering::Relaxed);
        if self.budget.is_some_and(|b| n >= b) {
            return None;
        }
        if let Some(rate) = self.rate {
            let at = self.start + Duration::from_secs_f64(n as f64 / rate);
            if self.deadline.is_some_and(|d| at >= d) {
                return None;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        Some(())
    }

    fn account_key(&self) -> anyhow::Result<AccountKey> {
        let pooled = self.keys.lock().ok().and_then(|mut k| k.pop());
        match pooled {
            Some(key) => Ok(key),
            None => {
                self.keys_made_late.fetch_add(1, Ordering::Relaxed);
                AccountKey::generate(self.account_alg).context("generating an account key")
            }
        }
    }
}

/// Why one issuance failed; the report counts them by `kind`.
#[derive(Debug)]
struct Failure {
    kind: String,
}

impl Failure {
    fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into() }
    }
}

/// A successful response, read whole.
#[derive(Debug)]
struct Reply {
    location: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, Failure> {
        serde_json::from_slice(&self.body)
            .map_err(|_| Failure::new(format!("unparsable {what} response")))
    }
}

/// One simulated client: its connection, its last nonce, its histograms and errors.
#[derive(Debug)]
struct Client {
    raw: Raw,
    nonce: Option<String>,
    latency: Vec<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    csr_b64: String,
    name: String,
    account: Option<(AccountKey, String)>,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits: valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Client {
    fn record(&mut self, endpoint: Endpoint, started: Instant, shared: &Shared) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency[endpoint as usize].saturating_record(micros.max(1));
        shared.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn count_error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    fn take_nonce(&mut self, response: &Response) {
        self.nonce = response.nonce().map(str::to_owned);
    }

    async fn fresh_nonce(&mut self, shared: &Shared) -> Result<String, Failure> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let started = Instant::now();
        let response = self
            .raw
            .head(&shared.dir.new_nonce)
            .await
            .map_err(transport)?;
        self.record(Endpoint::NewNonce, started, shared);
        self.take_nonce(&response);
        self.nonce
            .take()
            .ok_or_else(|| Failure::new("newNonce without Replay-Nonce"))
    }

    /// Signs and POSTs; retries a badNonce twice with the nonce that came back, as clients do.
    async fn post(
        &mut self,
        shared: &Shared,
        endpoint: Endpoint,
        url: &str,
        key: &AccountKey,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let nonce = self.fresh_nonce(shared).await?;
            let jws = key
                .sign_request(kid, &nonce, url, payload)
                .map_err(|_| Failure::new("driver: signing failed"))?;
            let started = Instant::now();
            let response = self.raw.post_jws(url, &jws).await.map_err(transport)?;
            self.record(endpoint, started, shared);
            self.take_nonce(&response);
            if response.is_success() {
                return Ok(Reply {
                    location: response.header("location").map(str::to_owned),
                    body: response.body,
                });
            }
            let kind = if response
                .header("content-type")
                .is_some_and(|ct| ct.starts_with(acme_proto::PROBLEM_CONTENT_TYPE))
            {
                response
                    .problem_name()
                    .unwrap_or_else(|| "problem without type".to_owned())
            } else {
                format!("HTTP {} (not a problem document)", response.status)
            };
            let kind = format!("{}: {kind}", endpoint.name());
            if kind.ends_with("badNonce") && attempt < 3 {
                self.count_error(&kind);
                continue;
            }
            return Err(Failure::new(kind));
        }
    }

    /// One full issuance.
    async fn issue(&mut self, shared: &Shared) -> Result<(), Failure> {
        let (key, kid) = match (shared.mode, self.account.take()) {
            (AccountMode::PerClient, Some(account)) => account,
            _ => {
                let key = shared
                    .account_key()
                    .map_err(|e| Failure::new(format!("driver: {e}")))?;
                let kid = self.new_account(shared, &key).await?;
                (key, kid)
            }
        };
        let result = self.order(shared, &key, &kid).await;
        if shared.mode == AccountMode::PerClient {
            self.account = Some((key, kid));
        }
        result
    }

    async fn new_account(&mut self, shared: &Shared, key: &AccountKey) -> Result<String, Failure> {
        let mut payload = json!({
            "termsOfServiceAgreed": true,
            "contact": [format!("mailto:bench@{}", self.name)],
        });
        if let Some(eab) = &shared.eab {
            payload["externalAccountBinding"] = eab.binding(&shared.dir.new_account, key);
        }
        let url = shared.dir.new_account.clone();
        let reply = self
            .post(
                shared,
                Endpoint::NewAccount,
                &url,
                key,
                None,
                Some(&payload),
            )
            .await?;
        reply
            .location
            .ok_or_else(|| Failure::new("newAccount: no Location"))
    }

    async fn order(&mut self, shared: &Shared, key: &AccountKey, kid: &str) -> Result<(), Failure> {
        let payload = json!({ "identifiers": [{ "type": "dns", "value": self.name }] });
        let url = shared.dir.new_order.clone();
        let reply = self
            .post(
                shared,
                Endpoint::NewOrder,
                &url,
                key,
                Some(kid),
                Some(&payload),
            )
            .await?;
        let order_url = reply
            .location
            .clone()
            .ok_or_else(|| Failure::new("newOrder: no Location"))?;
        let order: acme_proto::Order = reply.json("newOrder")?;
        for authz_url in &order.authorizations {
            self.authorize(shared, key, kid, authz_url).await?;
        }
        let payload = json!({ "csr": self.csr_b64 });
        let mut order: acme_proto::Order = self
            .post(
                shared,
                Endpoint::Finalize,
                &order.finalize,
                key,
                Some(kid),
                Some(&payload),
            )
            .await?
            .json("finalize")?;
        let mut delay = shared.poll;
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(order.status, Status::Processing | Status::Ready) {
            if Instant::now() > deadline {
                return Err(Failure::new("order: still processing after 60 s"));
            }
            delay = poll_wait(delay).await;
            order = self
                .post(shared, Endpoint::Order, &order_url, key, Some(kid), None)
                .await?
                .json("order")?;
        }
        if order.status != Status::Valid {
            return Err(Failure::new(format!(
                "order: ended {}",
                order.status.as_str()
            )));
        }
        let cert_url = order
            .certificate
            .ok_or_else(|| Failure::new("order: valid without certificate URL"))?;
        let pem = self
            .post(
                shared,
                Endpoint::Certificate,
                &cert_url,
                key,
                Some(kid),
                None,
            )
            .await?;
        if !pem.body.starts_with(b"-----BEGIN CERTIFICATE-----") {
            return Err(Failure::new("certificate: not a PEM chain"));
        }
        Ok(())
    }

    async fn authorize(
        &mut self,
        shared: &Shared,
        key: &AccountKey,
        kid: &str,
        authz_url: &str,
    ) -> Result<(), Failure> {
        let authz: acme_proto::Authorization = self
            .post(shared, Endpoint::Authz, authz_url, key, Some(kid), None)
            .await?
            .json("authz")?;
        match authz.status {
            Status::Valid => return Ok(()),
            Status::Pending => {}
            other => {
                return Err(Failure::new(format!("authz: is {}", other.as_str())));
            }
        }
        let challenge = ["http-01", "dns-01", "tls-alpn-01"]
            .iter()
            .find_map(|t| authz.challenges.iter().find(|c| c.kind == *t))
            .or_else(|| authz.challenges.first())
            .ok_or_else(|| Failure::new("authz: pending without a challenge"))?;
        let url = challenge.url.clone();
        let answered: acme_proto::Challenge = self
            .post(
                shared,
                Endpoint::Challenge,
                &url,
                key,
                Some(kid),
                Some(&json!({})),
            )
            .await?
            .json("challenge")?;
        if answered.status == Status::Valid {
            return Ok(());
        }
        let mut delay = shared.poll;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                return Err(Failure::new("authz: still pending after 60 s"));
            }
            delay = poll_wait(delay).await;
            let authz: acme_proto::Authorization = self
                .post(shared, Endpoint::Authz, authz_url, key, Some(kid), None)
                .await?
                .json("authz")?;
            match authz.status {
                Status::Valid => return Ok(()),
                Status::Pending | Status::Processing => {}
                other => {
                    return Err(Failure::new(format!(
                        "authz: ended {} (is the server in an always-valid mode?)",
                        other.as_str()
                    )));
                }
            }
        }
    }
}

/// Waits `delay` before a poll (0: polls right away) and returns the next delay: doubled,
/// at least 1 ms, at most 1 s.
async fn poll_wait(delay: Duration) -> Duration {
    if delay.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(delay).await;
    }
    (delay * 2).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

fn transport(e: reference_client::Error) -> Failure {
    let reference_client::Error::Transport { source: e, .. } = e else {
        return Failure::new("transport: request");
    };
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    Failure::new(format!("transport: {kind}"))
}

fn http_client(tls: &rustls::ClientConfig, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // One connection per simulated client, kept alive: HTTP/1.1 only, so that N clients are N
    // connections on every server (HTTP/2 would multiplex them onto one).
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .http1_only()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(None)
        .tcp_nodelay(true)
        .timeout(timeout)
        .user_agent(concat!("acme-harness-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

fn parse_account_alg(text: &str) -> anyhow::Result<SignatureAlgorithm> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "es256" => SignatureAlgorithm::Es256,
        "es384" => SignatureAlgorithm::Es384,
        "eddsa" | "ed25519" => SignatureAlgorithm::EdDsa,
        "rs256" => SignatureAlgorithm::Rs256,
        other => bail!("--account-key {other:?}: use es256, es384, eddsa or rs256"),
    })
}

/// Generates `n` account keys on every core, before the clock starts.
fn pregenerate(alg: SignatureAlgorithm, n: usize) -> anyhow::Result<Vec<AccountKey>> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = n.div_ceil(threads.max(1));
    let chunks: Vec<anyhow::Result<Vec<AccountKey>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = per.min(n.saturating_sub(t * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| AccountKey::generate(alg).context("generating an account key"))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("key generation panicked")))
            })
            .collect()
    });
    let mut keys = Vec::with_capacity(n);
    for chunk in chunks {
        keys.extend(chunk?);
    }
    Ok(keys)
}

/// What /proc says about a process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct ProcSample {
    rss_kib: u64,
    peak_rss_kib: u64,
    cpu_seconds: f64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

fn proc_sample(pid: &str, ticks: f64) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 14th field.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        cpu_seconds: (utime + stime) / ticks,
    })
}

#[derive(Debug, Serialize)]
struct LatencyRow {
    endpoint: &'static str,
    count: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct ServerReport {
    pid: u32,
    before: ProcSample,
    after: ProcSample,
    cpu_seconds: f64,
    cpu_cores: f64,
    cpu_us_per_issuance: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    directory: String,
    concurrency: usize,
    accounts: AccountMode,
    account_key: String,
    cert_key: String,
    eab: bool,
    target_rate: Option<f64>,
    elapsed_seconds: f64,
    issuances: u64,
    failed: u64,
    issuances_per_second: f64,
    requests: u64,
    requests_per_second: f64,
    requests_per_issuance: f64,
    latency: Vec<LatencyRow>,
    errors: BTreeMap<String, u64>,
    account_keys_generated_during_run: u64,
    driver_cpu_seconds: Option<f64>,
    server: Option<ServerReport>,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The load runs on a runtime of its own, on its own thread(s): its connections, timers and
    // clients live there, whatever runtime the rest of the binary uses.
    let threads = args.driver_threads.max(1);
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-driver".into())
        .spawn(move || {
            let runtime = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            let outcome = match runtime {
                Ok(rt) => rt.block_on(drive(args)),
                Err(e) => Err(anyhow::anyhow!("cannot start the driver's runtime: {e}")),
            };
            let _ = done.send(outcome);
        })
        .context("starting the driver thread")?;
    result.await.context("the driver thread ended early")?
}

async fn drive(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be a positive number of issuances per second");
    }
    let account_alg = parse_account_alg(&args.account_key)?;
    let cert_kind = CertKeyType::parse(&args.cert_key)
        .with_context(|| format!("--cert-key {:?}: use p256, p384 or rsa2048", args.cert_key))?;
    let eab = EabCredential::from_command_line(
        args.eab_kid.as_deref(),
        args.eab_hmac_key_file.as_deref(),
        HMAC_ENV,
        None,
    )?;
    let tls = reference_client::raw::tls_config(std::slice::from_ref(&args.ca_file))
        .context("--ca-file")?;
    let timeout = Duration::from_secs(args.request_timeout.max(1));
    let duration = match (args.duration, args.issuances) {
        (Some(d), _) if d.is_nan() || d <= 0.0 => bail!("--duration must be positive"),
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(10.0),
    };

    // The directory, over a connection of its own.
    let probe = http_client(&tls, timeout)?;
    let dir: Value = probe
        .get(&args.directory)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("fetching the directory {}", args.directory))?
        .json()
        .await
        .with_context(|| format!("{} is not an ACME directory", args.directory))?;
    let url = |name: &str| {
        dir.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the directory has no {name}"))
    };
    let dir = Dir {
        new_nonce: url("newNonce")?,
        new_account: url("newAccount")?,
        new_order: url("newOrder")?,
    };

    // Keys and CSRs before the clock.
    let key_count = match (args.accounts, args.issuances, duration) {
        (AccountMode::PerClient, _, _) => args.concurrency,
        (_, Some(n), _) => usize::try_from(n).unwrap_or(usize::MAX),
        (_, None, Some(d)) => args
            .pregenerate
            .unwrap_or_else(|| ((d * 2500.0) as usize).clamp(1000, 250_000)),
        (_, None, None) => args.concurrency,
    };
    if !args.quiet {
        eprintln!(
            "bench: generating {key_count} account keys and {} CSRs",
            args.concurrency
        );
    }
    let keys = tokio::task::spawn_blocking(move || pregenerate(account_alg, key_count))
        .await
        .context("key generation")??;
    let mut clients = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let name = format!("c{i}.{}", args.domain.trim_start_matches("*."));
        let cert_key = CertKey::generate(cert_kind).context("generating a certificate key")?;
        let csr = cert_key
            .csr(std::slice::from_ref(&name))
            .context("making a CSR")?;
        clients.push(Client {
            raw: Raw::new(http_client(&tls, timeout)?),
            nonce: None,
            latency: ENDPOINTS.iter().map(|_| histogram()).collect(),
            errors: BTreeMap::new(),
            csr_b64: b64::encode(&csr),
            name,
            account: None,
        });
    }
    // Open every connection (TLS handshake) and take a first nonce before the clock.
    let mut opened = Vec::with_capacity(clients.len());
    for mut client in clients {
        let nonce_url = dir.new_nonce.clone();
        opened.push(tokio::spawn(async move {
            let response = client.raw.head(&nonce_url).await;
            if let Ok(r) = &response {
                client.take_nonce(r);
            }
            (client, response.map(|_| ()))
        }));
    }
    let mut clients = Vec::with_capacity(opened.len());
    for task in opened {
        let (client, result) = task.await.context("opening connections")?;
        result.with_context(|| format!("HEAD {}", dir.new_nonce))?;
        clients.push(client);
    }

    let pid = args.pid.map(|p| p.to_string());
    let ticks = clock_ticks();
    let server_before = match &pid {
        Some(pid) => Some(proc_sample(pid, ticks).with_context(|| {
            format!("--pid {pid}: no such process readable in /proc on this machine")
        })?),
        None => None,
    };
    let driver_before = proc_sample("self", ticks);

    let start = Instant::now();
    let shared = Arc::new(Shared {
        dir,
        eab,
        account_alg,
        mode: args.accounts,
        poll: Duration::from_millis(args.poll_ms),
        keys: Mutex::new(keys),
        keys_made_late: AtomicU64::new(0),
        budget: args.issuances,
        claimed: AtomicU64::new(0),
        deadline: duration.map(|d| start + Duration::from_secs_f64(d)),
        rate: args.rate,
        start,
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let progress = (!args.quiet).then(|| tokio::spawn(progress_line(shared.clone())));
    let mut tasks = Vec::with_capacity(clients.len());
    for mut client in clients {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            while shared.next_issuance().await.is_some() {
                match client.issue(&shared).await {
                    Ok(()) => {
                        shared.done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(failure) => {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        client.count_error(&failure.kind);
                        client.nonce = None;
                        if failure.kind.starts_with("transport") {
                            // A server that is gone: do not spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            client
        }));
    }
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        finished.push(task.await.context("a client task failed")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    let server_after = pid.as_deref().and_then(|p| proc_sample(p, ticks));
    let driver_after = proc_sample("self", ticks);

    let mut latency: Vec<Histogram<u64>> = ENDPOINTS.iter().map(|_| histogram()).collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for client in &finished {
        for (total, h) in latency.iter_mut().zip(&client.latency) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = total.add(h);
        }
        for (kind, n) in &client.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let rows = ENDPOINTS
        .iter()
        .zip(&latency)
        .filter(|(_, h)| !h.is_empty())
        .map(|(e, h)| LatencyRow {
            endpoint: e.name(),
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
        .collect();
    let issuances = shared.done.load(Ordering::Relaxed);
    let requests = shared.requests.load(Ordering::Relaxed);
    let server = match (args.pid, server_before, server_after) {
        (Some(pid), Some(before), Some(after)) => {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            Some(ServerReport {
                pid,
                before,
                after,
                cpu_seconds: cpu,
                cpu_cores: cpu / elapsed,
                cpu_us_per_issuance: (issuances > 0).then(|| cpu * 1e6 / issuances as f64),
            })
        }
        _ => None,
    };
    let report = Report {
        directory: args.directory.clone(),
        concurrency: args.concurrency,
        accounts: args.accounts,
        account_key: account_alg.name().to_owned(),
        cert_key: args.cert_key.to_ascii_lowercase(),
        eab: shared.eab.is_some(),
        target_rate: args.rate,
        elapsed_seconds: elapsed,
        issuances,
        failed: shared.failed.load(Ordering::Relaxed),
        issuances_per_second: issuances as f64 / elapsed,
        requests,
        requests_per_second: requests as f64 / elapsed,
        requests_per_issuance: if issuances > 0 {
            requests as f64 / issuances as f64
        } else {
            0.0
        },
        latency: rows,
        errors,
        account_keys_generated_during_run: shared.keys_made_late.load(Ordering::Relaxed),
        driver_cpu_seconds: driver_before
            .zip(driver_after)
            .map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
        server,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.issuances == 0 {
        bail!(
            "no certificate was issued: see the errors above (is the server in an always-valid \
             mode, and does the EAB credential cover {}?)",
            args.domain
        );
    }
    Ok(())
}

async fn progress_line(shared: Arc<Shared>) {
    use std::io::Write as _;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_done, mut last_at) = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64();
        (last_done, last_at) = (done, now);
        let t = shared.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{t:6.1}s] {done} issued ({rate:.0}/s now, {:.0}/s overall), {} requests, {} failed   ",
            done as f64 / t,
            shared.requests.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        let _ = err.flush();
    }
}

fn print_report(r: &Report) {
    println!("acme-harness bench against {}", r.directory);
    println!(
        "  {} clients, accounts {}, account key {}, certificate key {}, EAB {}, rate {}",
        r.concurrency,
        match r.accounts {
            AccountMode::PerIssuance => "per issuance",
            AccountMode::PerClient => "per client",
        },
        r.account_key,
        r.cert_key,
        if r.eab { "yes" } else { "no" },
        r.target_rate
            .map_or("as fast as possible".to_owned(), |x| format!("{x}/s")),
    );
    println!(
        "  issuances    {} in {:.2} s = {:.1}/s ({} failed)",
        r.issuances, r.elapsed_seconds, r.issuances_per_second, r.failed
    );
    println!(
        "  requests     {} = {:.0}/s ({:.2} per issuance)",
        r.requests, r.requests_per_second, r.requests_per_issuance
    );
    println!("  latency (ms)  endpoint       count      p50      p90      p99      max");
    for row in &r.latency {
        println!(
            "                {:<12} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            row.endpoint, row.count, row.p50_ms, row.p90_ms, row.p99_ms, row.max_ms
        );
    }
    if r.errors.is_empty() {
        println!("  errors       none");
    } else {
        println!("  errors       (by endpoint: problem type)");
        for (kind, n) in &r.errors {
            println!("                {n:>7}  {kind}");
        }
    }
    if r.account_keys_generated_during_run > 0 {
        println!(
            "  note         {} account keys were generated during the run (raise --pregenerate)",
            r.account_keys_generated_during_run
        );
    }
    if let Some(s) = &r.server {
        println!(
            "  server pid {}: RSS {:.1} MiB -> {:.1} MiB (peak {:.1} MiB); CPU {:.2} s = {:.2} cores{}",
            s.pid,
            s.before.rss_kib as f64 / 1024.0,
            s.after.rss_kib as f64 / 1024.0,
            s.after.peak_rss_kib as f64 / 1024.0,
            s.cpu_seconds,
            s.cpu_cores,
            s.cpu_us_per_issuance
                .map_or(String::new(), |us| format!(", {us:.0} µs per issuance")),
        );
    }
    if let Some(cpu) = r.driver_cpu_seconds {
        println!(
            "  driver       CPU {cpu:.2} s = {:.2} cores",
            cpu / r.elapsed_seconds
        );
    }
}
