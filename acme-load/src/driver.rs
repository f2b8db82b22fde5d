//! The simulated clients: each runs the full issuance flow over its own keep-alive
//! connection, through the raw transport, recording latency per endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use acme_proto::{AccountKey, ChallengeType, SignatureAlgorithm, Status};
use hdrhistogram::Histogram;
use reference_client::EabCredential;
use reference_client::raw::{Raw, Response};
use serde_json::{Value, json};

use crate::AccountMode;

/// The server endpoints the report breaks latency down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    NewNonce,
    NewAccount,
    NewOrder,
    Authz,
    Challenge,
    Finalize,
    Order,
    Certificate,
}

pub(crate) const ENDPOINTS: [Endpoint; 8] = [
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
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Dir {
    pub(crate) new_nonce: String,
    pub(crate) new_account: String,
    pub(crate) new_order: String,
}

/// Shared, read-only run settings and the counters the progress line reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: Dir,
    pub(crate) eab: Option<EabCredential>,
    pub(crate) account_alg: SignatureAlgorithm,
    pub(crate) mode: AccountMode,
    pub(crate) poll: Duration,
    pub(crate) keys: Mutex<Vec<AccountKey>>,
    pub(crate) keys_made_late: AtomicU64,
    pub(crate) budget: Option<u64>,
    pub(crate) claimed: AtomicU64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) rate: Option<f64>,
    pub(crate) start: Instant,
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) stop: AtomicBool,
}

impl Shared {
    /// Claims the next issuance, or `None` when the run is over. With a rate, also waits for
    /// the issuance's slot.
    pub(crate) async fn next_issuance(&self) -> Option<()> {
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

    fn account_key(&self) -> Result<AccountKey, String> {
        let pooled = self.keys.lock().ok().and_then(|mut k| k.pop());
        match pooled {
            Some(key) => Ok(key),
            None => {
                self.keys_made_late.fetch_add(1, Ordering::Relaxed);
                AccountKey::generate(self.account_alg)
                    .map_err(|e| format!("generating an account key: {e}"))
            }
        }
    }
}

/// Why one issuance failed; the report counts them by `kind`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: String,
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
pub(crate) struct Client {
    pub(crate) raw: Raw,
    pub(crate) nonce: Option<String>,
    pub(crate) latency: Vec<Histogram<u64>>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) csr_b64: String,
    pub(crate) name: String,
    pub(crate) account: Option<(AccountKey, String)>,
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits: valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Client {
    fn record(&mut self, endpoint: Endpoint, started: Instant, shared: &Shared) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency[endpoint as usize].saturating_record(micros.max(1));
        shared.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn take_nonce(&mut self, response: &Response) {
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
    pub(crate) async fn issue(&mut self, shared: &Shared) -> Result<(), Failure> {
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
        let challenge = [
            ChallengeType::Http01,
            ChallengeType::Dns01,
            ChallengeType::TlsAlpn01,
        ]
        .iter()
        .find_map(|t| authz.challenges.iter().find(|c| &c.kind == t))
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

/// One connection per simulated client, kept alive.
pub(crate) fn http_client(
    tls: &rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, crate::Error> {
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
        .map_err(|e| crate::Error::Setup(format!("building the HTTP client: {e}")))
}

/// Generates `n` account keys on every core, before the clock starts.
pub(crate) fn pregenerate(alg: SignatureAlgorithm, n: usize) -> Result<Vec<AccountKey>, String> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let per = n.div_ceil(threads.max(1));
    let chunks: Vec<Result<Vec<AccountKey>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = per.min(n.saturating_sub(t * per));
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            AccountKey::generate(alg)
                                .map_err(|e| format!("generating an account key: {e}"))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("key generation panicked".to_owned()))
            })
            .collect()
    });
    let mut keys = Vec::with_capacity(n);
    for chunk in chunks {
        keys.extend(chunk?);
    }
    Ok(keys)
}
