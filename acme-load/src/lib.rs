//! A load generator for any ACME server (the mock, Pebble, a staging CA): what
//! `acme-harness bench` runs.
//!
//! N simulated clients run the full issuance flow concurrently, each over its own keep-alive
//! HTTP/1.1 connection: newAccount (with EAB when given), newOrder, authorization fetch, the
//! challenge when one is pending (the server must be in an always-valid mode: Pebble's
//! `PEBBLE_VA_ALWAYS_VALID=1`, the mock's `order.danger_skip_validation`), finalize, order
//! poll, certificate download. The driver is kept cheap so that it measures the server:
//! account keys and CSRs are generated before the clock starts, every response's
//! `Replay-Nonce` is reused for the next request, and connections are opened before the clock.
//!
//! Latency is measured per request from send to the last body byte. With a rate, issuances
//! start on a fixed schedule (for latency at a given load); without one every client starts
//! its next issuance as soon as the last one ends (saturation). Retry-After is not honoured:
//! polls back off from [`Config::poll`], doubling up to one second, the same for every
//! server.
//!
//! - [`driver`](crate::run): the simulated clients, over `reference_client::raw`;
//! - statistics: latency histograms per endpoint ([`LatencyRow`]);
//! - [`sample`]: the server's and the driver's memory and CPU time from /proc.
#![warn(missing_docs)]

mod driver;
pub mod sample;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acme_proto::{SignatureAlgorithm, b64};
use hdrhistogram::Histogram;
use reference_client::raw::Raw;
use reference_client::{CertKey, CertKeyType, EabCredential};
use serde::Serialize;
use serde_json::Value;

use driver::{Client, Dir, ENDPOINTS, Shared, histogram, http_client, pregenerate};
use sample::{ProcSample, clock_ticks, proc_sample};

/// How accounts are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountMode {
    /// newAccount with a fresh key (and EAB) at the start of every issuance.
    PerIssuance,
    /// One account per simulated client, made in the first issuance and reused.
    PerClient,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory URL of the server under load.
    pub directory: String,
    /// PEM file of the CA that signed the server's TLS certificate.
    pub ca_file: PathBuf,
    /// EAB credential every new account binds with (it must allow reuse).
    pub eab: Option<EabCredential>,
    /// Simulated clients running at once, each on its own connection.
    pub concurrency: usize,
    /// Run for this many seconds (10 when neither this nor `issuances` is given).
    pub duration: Option<f64>,
    /// Stop after this many completed or failed issuances.
    pub issuances: Option<u64>,
    /// Start issuances at this many per second in total (open schedule).
    pub rate: Option<f64>,
    /// Names are `cN.DOMAIN`, one per client.
    pub domain: String,
    /// Account key algorithm.
    pub account_key: SignatureAlgorithm,
    /// Certificate key type.
    pub cert_key: CertKeyType,
    /// The certificate key type as the user named it, for the report.
    pub cert_key_name: String,
    /// How accounts are made.
    pub accounts: AccountMode,
    /// Account keys made before the clock in duration mode (default: enough for 2,500
    /// issuances/s).
    pub pregenerate: Option<usize>,
    /// First poll delay for authorizations and orders (zero: poll right away).
    pub poll: Duration,
    /// Time one request may take before it counts as a transport timeout.
    pub request_timeout: Duration,
    /// Pid of the server when it runs on this machine: its memory and CPU time are sampled.
    pub pid: Option<u32>,
    /// Threads of the driver's own runtime (one leaves the other cores to the server).
    pub driver_threads: usize,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is not usable; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Setting up (trust, the directory, keys, connections) failed.
    #[error("{0}")]
    Setup(String),
}

/// What the run reports while it goes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// Keys and CSRs are being made before the clock starts.
    Preparing {
        /// Account keys.
        keys: usize,
        /// CSRs (one per client).
        csrs: usize,
    },
    /// Once a second while the clock runs.
    Tick {
        /// Seconds since the start.
        elapsed: f64,
        /// Issuances completed.
        done: u64,
        /// Issuances per second in the last second.
        rate_now: f64,
        /// Requests sent.
        requests: u64,
        /// Issuances failed.
        failed: u64,
    },
}

/// Latency of one endpoint.
#[derive(Debug, Serialize)]
pub struct LatencyRow {
    /// The endpoint.
    pub endpoint: &'static str,
    /// Requests measured.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// The server's process over the run.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// Its pid.
    pub pid: u32,
    /// Before the clock.
    pub before: ProcSample,
    /// After the run.
    pub after: ProcSample,
    /// CPU time spent during the run.
    pub cpu_seconds: f64,
    /// CPU time over wall time.
    pub cpu_cores: f64,
    /// CPU time per completed issuance.
    pub cpu_us_per_issuance: Option<f64>,
}

/// What a run measured (the JSON report of `acme-harness bench --json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The directory URL.
    pub directory: String,
    /// Simulated clients.
    pub concurrency: usize,
    /// How accounts were made.
    pub accounts: AccountMode,
    /// Account key algorithm.
    pub account_key: String,
    /// Certificate key type.
    pub cert_key: String,
    /// Whether accounts bound with EAB.
    pub eab: bool,
    /// The schedule's rate, if any.
    pub target_rate: Option<f64>,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Issuances completed.
    pub issuances: u64,
    /// Issuances failed.
    pub failed: u64,
    /// Issuances completed per second.
    pub issuances_per_second: f64,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Requests per completed issuance.
    pub requests_per_issuance: f64,
    /// Latency per endpoint.
    pub latency: Vec<LatencyRow>,
    /// Failures by `endpoint: problem type` (or transport error kind).
    pub errors: BTreeMap<String, u64>,
    /// Account keys made during the run because the pregenerated ones ran out.
    pub account_keys_generated_during_run: u64,
    /// The driver's own CPU time.
    pub driver_cpu_seconds: Option<f64>,
    /// The server's process, when its pid was given.
    pub server: Option<ServerReport>,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Runs the load on a runtime of its own, on its own thread(s) (its connections, timers and
/// clients live there, whatever runtime the caller uses), and reports.
pub async fn run(config: Config, progress: Option<ProgressFn>) -> Result<Report, Error> {
    let threads = config.driver_threads.max(1);
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
                Ok(rt) => rt.block_on(drive(config, progress)),
                Err(e) => Err(Error::Setup(format!(
                    "cannot start the driver's runtime: {e}"
                ))),
            };
            let _ = done.send(outcome);
        })
        .map_err(|e| Error::Setup(format!("starting the driver thread: {e}")))?;
    result
        .await
        .map_err(|_| Error::Setup("the driver thread ended early".into()))?
}

async fn drive(config: Config, progress: Option<ProgressFn>) -> Result<Report, Error> {
    if config.concurrency == 0 {
        return Err(Error::Invalid("--concurrency must be at least 1".into()));
    }
    if config.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(Error::Invalid(
            "--rate must be a positive number of issuances per second".into(),
        ));
    }
    let tls = reference_client::raw::tls_config(std::slice::from_ref(&config.ca_file))
        .map_err(|e| Error::Invalid(format!("--ca-file: {e}")))?;
    let timeout = config.request_timeout.max(Duration::from_secs(1));
    let duration = match (config.duration, config.issuances) {
        (Some(d), _) if d.is_nan() || d <= 0.0 => {
            return Err(Error::Invalid("--duration must be positive".into()));
        }
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(10.0),
    };

    // The directory, over a connection of its own.
    let probe = Raw::new(http_client(&tls, timeout)?);
    let fetched = probe
        .get(&config.directory)
        .await
        .map_err(|e| Error::Setup(format!("fetching the directory {}: {e}", config.directory)))?;
    let dir: Value = match fetched.json() {
        Ok(dir) if fetched.is_success() => dir,
        _ => {
            return Err(Error::Setup(format!(
                "{} is not an ACME directory: {}",
                config.directory,
                fetched.describe()
            )));
        }
    };
    let url = |name: &str| {
        dir.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Setup(format!("the directory has no {name}")))
    };
    let dir = Dir {
        new_nonce: url("newNonce")?,
        new_account: url("newAccount")?,
        new_order: url("newOrder")?,
    };

    // Keys and CSRs before the clock.
    let key_count = match (config.accounts, config.issuances, duration) {
        (AccountMode::PerClient, _, _) => config.concurrency,
        (_, Some(n), _) => usize::try_from(n).unwrap_or(usize::MAX),
        (_, None, Some(d)) => config
            .pregenerate
            .unwrap_or_else(|| ((d * 2500.0) as usize).clamp(1000, 250_000)),
        (_, None, None) => config.concurrency,
    };
    if let Some(p) = &progress {
        p(&Progress::Preparing {
            keys: key_count,
            csrs: config.concurrency,
        });
    }
    let account_alg = config.account_key;
    let keys = tokio::task::spawn_blocking(move || pregenerate(account_alg, key_count))
        .await
        .map_err(|e| Error::Setup(format!("key generation: {e}")))?
        .map_err(Error::Setup)?;
    let mut clients = Vec::with_capacity(config.concurrency);
    for i in 0..config.concurrency {
        let name = format!("c{i}.{}", config.domain.trim_start_matches("*."));
        let setup = |e: reference_client::Error| Error::Setup(format!("{name}: {e}"));
        let cert_key = CertKey::generate(config.cert_key).map_err(setup)?;
        let csr = cert_key.csr(std::slice::from_ref(&name)).map_err(setup)?;
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
        let (client, result) = task
            .await
            .map_err(|e| Error::Setup(format!("opening connections: {e}")))?;
        result.map_err(|e| Error::Setup(format!("HEAD {}: {e}", dir.new_nonce)))?;
        clients.push(client);
    }

    let pid = config.pid.map(|p| p.to_string());
    let ticks = clock_ticks();
    let server_before = match &pid {
        Some(pid) => Some(proc_sample(pid, ticks).ok_or_else(|| {
            Error::Invalid(format!(
                "--pid {pid}: no such process readable in /proc on this machine"
            ))
        })?),
        None => None,
    };
    let driver_before = proc_sample("self", ticks);

    let start = Instant::now();
    let shared = Arc::new(Shared {
        dir,
        eab: config.eab.clone(),
        account_alg,
        mode: config.accounts,
        poll: config.poll,
        keys: Mutex::new(keys),
        keys_made_late: AtomicU64::new(0),
        budget: config.issuances,
        claimed: AtomicU64::new(0),
        deadline: duration.map(|d| start + Duration::from_secs_f64(d)),
        rate: config.rate,
        start,
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let ticker = progress
        .clone()
        .map(|p| tokio::spawn(ticks_to(shared.clone(), p)));
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
        finished.push(
            task.await
                .map_err(|e| Error::Setup(format!("a client task failed: {e}")))?,
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(ticker) = ticker {
        ticker.abort();
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
    let server = match (config.pid, server_before, server_after) {
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
    Ok(Report {
        directory: config.directory.clone(),
        concurrency: config.concurrency,
        accounts: config.accounts,
        account_key: account_alg.name().to_owned(),
        cert_key: config.cert_key_name.to_ascii_lowercase(),
        eab: shared.eab.is_some(),
        target_rate: config.rate,
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
    })
}

/// Once a second, the counters to the progress callback.
async fn ticks_to(shared: Arc<Shared>, progress: ProgressFn) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_done, mut last_at) = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate_now = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64();
        (last_done, last_at) = (done, now);
        progress(&Progress::Tick {
            elapsed: shared.start.elapsed().as_secs_f64(),
            done,
            rate_now,
            requests: shared.requests.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
        });
    }
}

impl std::fmt::Display for Report {
    /// The report as `acme-harness bench` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        writeln!(f, "acme-harness bench against {}", r.directory)?;
        writeln!(
            f,
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
        )?;
        writeln!(
            f,
            "  issuances    {} in {:.2} s = {:.1}/s ({} failed)",
            r.issuances, r.elapsed_seconds, r.issuances_per_second, r.failed
        )?;
        writeln!(
            f,
            "  requests     {} = {:.0}/s ({:.2} per issuance)",
            r.requests, r.requests_per_second, r.requests_per_issuance
        )?;
        writeln!(
            f,
            "  latency (ms)  endpoint       count      p50      p90      p99      max"
        )?;
        for row in &r.latency {
            writeln!(
                f,
                "                {:<12} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                row.endpoint, row.count, row.p50_ms, row.p90_ms, row.p99_ms, row.max_ms
            )?;
        }
        if r.errors.is_empty() {
            writeln!(f, "  errors       none")?;
        } else {
            writeln!(f, "  errors       (by endpoint: problem type)")?;
            for (kind, n) in &r.errors {
                writeln!(f, "                {n:>7}  {kind}")?;
            }
        }
        if r.account_keys_generated_during_run > 0 {
            writeln!(
                f,
                "  note         {} account keys were generated during the run (raise --pregenerate)",
                r.account_keys_generated_during_run
            )?;
        }
        if let Some(s) = &r.server {
            writeln!(
                f,
                "  server pid {}: RSS {:.1} MiB -> {:.1} MiB (peak {:.1} MiB); CPU {:.2} s = {:.2} cores{}",
                s.pid,
                s.before.rss_kib as f64 / 1024.0,
                s.after.rss_kib as f64 / 1024.0,
                s.after.peak_rss_kib as f64 / 1024.0,
                s.cpu_seconds,
                s.cpu_cores,
                s.cpu_us_per_issuance
                    .map_or(String::new(), |us| format!(", {us:.0} µs per issuance")),
            )?;
        }
        if let Some(cpu) = r.driver_cpu_seconds {
            writeln!(
                f,
                "  driver       CPU {cpu:.2} s = {:.2} cores",
                cpu / r.elapsed_seconds
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Progress {
    /// One progress line (without a line end: a tick is rewritten in place).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Preparing { keys, csrs } => {
                write!(f, "generating {keys} account keys and {csrs} CSRs")
            }
            Self::Tick {
                elapsed,
                done,
                rate_now,
                requests,
                failed,
            } => write!(
                f,
                "[{elapsed:6.1}s] {done} issued ({rate_now:.0}/s now, {:.0}/s overall), {requests} requests, {failed} failed",
                *done as f64 / elapsed,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_what_is_happening() {
        let p = Progress::Preparing { keys: 3, csrs: 2 };
        assert_eq!(p.to_string(), "generating 3 account keys and 2 CSRs");
        let t = Progress::Tick {
            elapsed: 2.0,
            done: 10,
            rate_now: 6.0,
            requests: 90,
            failed: 1,
        };
        assert_eq!(
            t.to_string(),
            "[   2.0s] 10 issued (6/s now, 5/s overall), 90 requests, 1 failed"
        );
    }
}
