//! The transport: directory discovery, the nonce pool, signed requests with their retries,
//! and waiting (Retry-After, backoff, jitter, one overall deadline).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use acme_proto::{AccountKey, Directory, ProblemType};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::raw::{Raw, Response, http_client, problem_of, snippet, tls_config};

/// How many badNonce refusals in a row one request retries before it gives up.
const BAD_NONCE_RETRIES: u32 = 5;
/// Nonces kept for later requests; older ones are dropped first.
const NONCE_POOL_SIZE: usize = 16;

/// What the client reports while it works, for progress lines.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Waiting before the next poll or retry.
    Waiting {
        /// What is awaited: "order processing", "authorization for x pending".
        what: String,
        /// How long.
        delay: Duration,
        /// Whether the server asked for this delay (Retry-After) or it is the client's backoff.
        server_asked: bool,
    },
    /// A badNonce refusal is being retried with the nonce that came with it.
    BadNonceRetry {
        /// The request URL.
        url: String,
    },
    /// An authorization is already valid (pre-validated by the CA) and is skipped.
    AuthorizationAlreadyValid {
        /// The identifier.
        identifier: String,
    },
    /// A challenge answer is in place and the CA was asked to validate it.
    ChallengeTriggered {
        /// The identifier.
        identifier: String,
        /// The challenge type.
        kind: String,
    },
    /// The order was finalized with a CSR.
    Finalized {
        /// The order URL.
        order: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Waiting { what, delay, .. } => {
                let secs = delay.as_secs_f64();
                if secs >= 10.0 || delay.subsec_millis() == 0 {
                    write!(f, "{what}, retrying in {} s", delay.as_secs().max(1))
                } else {
                    write!(f, "{what}, retrying in {secs:.1} s")
                }
            }
            Self::BadNonceRetry { url } => {
                write!(
                    f,
                    "the CA did not accept the nonce (badNonce), retrying {url} with a fresh one"
                )
            }
            Self::AuthorizationAlreadyValid { identifier } => {
                write!(
                    f,
                    "{identifier}: authorization already valid, no challenge needed"
                )
            }
            Self::ChallengeTriggered { identifier, kind } => {
                write!(
                    f,
                    "{identifier}: {kind} answer in place, asked the CA to validate"
                )
            }
            Self::Finalized { order } => write!(f, "order finalized: {order}"),
        }
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Polling backoff when the server gives no Retry-After.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per poll.
    pub factor: f64,
    /// Up to this fraction of each delay is added at random, so that many clients do not
    /// poll in step.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            // Not faster than once a second (the judge's poll-interval-floor).
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            factor: 1.6,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before poll number `attempt` (0-based), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.as_secs_f64() * self.factor.powi(attempt.min(30) as i32);
        let base = base.min(self.max.as_secs_f64());
        jittered(Duration::from_secs_f64(base), self.jitter)
    }
}

fn jittered(d: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 {
        return d;
    }
    let extra = rand::random::<f64>() * fraction * d.as_secs_f64();
    d + Duration::from_secs_f64(extra)
}

/// How to build a [`Client`].
#[derive(Clone)]
pub struct ClientConfig {
    /// PEM files of the roots to trust for the ACME server (a private CA such as the mock's).
    /// Empty: the system's bundle.
    pub ca_files: Vec<PathBuf>,
    /// The User-Agent header (RFC 8555 §6.1 asks clients to send one).
    pub user_agent: String,
    /// One deadline for everything the client waits for, counted from [`Client::connect`].
    pub deadline: Duration,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    /// Polling backoff without Retry-After.
    pub backoff: Backoff,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Misbehave on purpose: poll at the backoff's pace whatever Retry-After asks. Only for
    /// planted clients in acme-harness's own tests of vet (a client in a tight loop).
    #[doc(hidden)]
    pub ignore_retry_after: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ca_files: Vec::new(),
            user_agent: format!(
                "acme-harness-reference-client/{}",
                env!("CARGO_PKG_VERSION")
            ),
            deadline: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            progress: None,
            ignore_retry_after: false,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("ca_files", &self.ca_files)
            .field("user_agent", &self.user_agent)
            .field("deadline", &self.deadline)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Parses Retry-After: delay-seconds or an HTTP-date, relative to `now`. A date in the past
/// is a zero delay.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An ACME client bound to one directory. Cheap to clone; clones share the nonce pool and
/// the deadline.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    raw: Raw,
    directory_url: String,
    directory: Directory,
    nonces: Mutex<Vec<String>>,
    config: ClientConfig,
    deadline: Mutex<Instant>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("directory_url", &self.directory_url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Who signs a request: the account (its URL as `kid`) or a bare key (`jwk` in the header).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signer<'a> {
    pub(crate) key: &'a AccountKey,
    pub(crate) kid: Option<&'a str>,
}

impl Client {
    /// Fetches the directory at `directory_url` (RFC 8555 §7.1.1); every other URL comes from
    /// it, none is guessed.
    pub async fn connect(directory_url: &str, config: ClientConfig) -> Result<Self> {
        let tls = tls_config(&config.ca_files)?;
        let http = http_client(tls, &config.user_agent, Some(config.request_timeout)).map_err(
            |e| match e {
                Error::Transport { source, .. } => Error::Transport {
                    url: directory_url.to_owned(),
                    source,
                },
                other => other,
            },
        )?;
        let deadline = Instant::now() + config.deadline;
        let mut inner = Inner {
            raw: Raw::new(http),
            directory_url: directory_url.to_owned(),
            directory: Directory {
                new_nonce: String::new(),
                new_account: String::new(),
                new_order: String::new(),
                new_authz: None,
                revoke_cert: String::new(),
                key_change: String::new(),
                renewal_info: None,
                meta: None,
            },
            nonces: Mutex::new(Vec::new()),
            config,
            deadline: Mutex::new(deadline),
        };
        let response = get_with_retry(&inner, "the directory", directory_url).await?;
        if response.status != 200 {
            return Err(Error::Unexpected {
                url: directory_url.to_owned(),
                status: response.status,
                retry_after: None,
                detail: format!(
                    "not an ACME directory ({}); give the directory URL itself, e.g. https://acme.sectigo.com/v2/InCommonRSAOV",
                    snippet(&response.body)
                ),
            });
        }
        inner.directory = response.json()?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The directory URL.
    pub fn directory_url(&self) -> &str {
        &self.inner.directory_url
    }

    /// The underlying HTTP client (trusting the configured roots).
    pub fn http(&self) -> &reqwest::Client {
        self.inner.raw.http()
    }

    /// The raw transport this client's retries and polling sit on.
    pub fn raw(&self) -> &Raw {
        &self.inner.raw
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    fn deadline(&self) -> Instant {
        *self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the deadline afresh from now (for long-lived clients running several jobs).
    pub fn reset_deadline(&self) {
        let mut d = self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *d = Instant::now() + self.inner.config.deadline;
    }

    /// Adds a nonce to the pool; the next signed request uses it first. A test hook too: a
    /// nonce the server already saw provokes badNonce.
    pub fn add_nonce(&self, nonce: impl Into<String>) {
        push_nonce(&self.inner, nonce.into());
    }

    pub(crate) fn progress(&self, event: Progress) {
        tracing::info!("{event}");
        if let Some(cb) = &self.inner.config.progress {
            cb(&event);
        }
    }

    /// A fresh nonce: from the pool, else HEAD newNonce, falling back to GET (RFC 8555
    /// §7.2; some servers answer only one of them).
    pub async fn nonce(&self) -> Result<String> {
        if let Some(n) = pop_nonce(&self.inner) {
            return Ok(n);
        }
        let url = &self.inner.directory.new_nonce;
        let head = self.inner.raw.head(url).await;
        if let Ok(r) = &head
            && r.is_success()
            && let Some(n) = r.nonce()
        {
            return Ok(n.to_owned());
        }
        tracing::debug!(%url, "HEAD newNonce gave no nonce, trying GET");
        let response = get_with_retry(&self.inner, "newNonce", url).await?;
        response
            .header("replay-nonce")
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected {
                url: url.clone(),
                status: response.status,
                retry_after: None,
                detail: format!(
                    "newNonce gave no Replay-Nonce header: {}",
                    snippet(&response.body)
                ),
            })
    }

    /// Sends a signed POST (payload `None` is POST-as-GET), retrying badNonce with the nonce
    /// the refusal carries and waiting out 429/503 Retry-After within the deadline. A request
    /// that is safe to send again ([`repeatable`]: POST-as-GET, newAccount, newOrder, a
    /// challenge response) is also sent again, a few times with backoff, after a proxy's
    /// 502/504 page (after its Retry-After, when it gives one), a 429/503 without
    /// Retry-After, or a connection that broke before the answer came. Problems come back as
    /// [`Error::Refused`].
    pub(crate) async fn post(
        &self,
        action: &str,
        url: &str,
        signer: Signer<'_>,
        payload: Option<&Value>,
    ) -> Result<Response> {
        let mut bad_nonces = 0;
        let mut transient = 0;
        let repeatable = repeatable(action, payload);
        loop {
            let nonce = self.nonce().await?;
            let sent = self
                .inner
                .raw
                .post_signed(signer.key, signer.kid, &nonce, url, payload)
                .await;
            let response = match sent {
                Ok(r) => r,
                // The request was sent and the answer lost (not a refused connection or a
                // TLS failure, which repeat the same way).
                Err(Error::Transport { source, .. })
                    if repeatable && !source.is_connect() && transient < TRANSIENT_RETRIES =>
                {
                    let what =
                        format!("{action}: the connection broke before the answer ({source})");
                    self.wait(&what, self.backoff(transient), false).await?;
                    transient += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            pool_nonce(&self.inner, &response);
            tracing::debug!(%url, status = response.status, action, "ACME request");
            if (200..300).contains(&response.status) {
                return Ok(response);
            }
            let problem = problem_of(&response);
            if let Some(p) = &problem
                && p.kind == ProblemType::BadNonce
                && bad_nonces < BAD_NONCE_RETRIES
            {
                bad_nonces += 1;
                self.progress(Progress::BadNonceRetry { url: url.into() });
                continue;
            }
            if let Some(delay) = busy_delay(&response) {
                let what = format!("{action}: the CA is busy (HTTP {})", response.status);
                self.wait(&what, delay, true).await?;
                continue;
            }
            let gateway = matches!(response.status, 502 | 504) && repeatable;
            if (gateway || matches!(response.status, 429 | 503)) && transient < TRANSIENT_RETRIES {
                let what = format!("{action}: HTTP {} from the CA's side", response.status);
                match response.retry_after() {
                    Some(delay) => self.wait(&what, delay, true).await?,
                    None => self.wait(&what, self.backoff(transient), false).await?,
                }
                transient += 1;
                continue;
            }
            return Err(match problem {
                Some(problem) => Error::Refused {
                    action: action.to_owned(),
                    status: response.status,
                    retry_after: response.retry_after(),
                    problem: Box::new(problem),
                },
                None => Error::Unexpected {
                    url: url.to_owned(),
                    status: response.status,
                    retry_after: response.retry_after(),
                    detail: snippet(&response.body),
                },
            });
        }
    }

    /// A plain GET (the directory, ARI renewalInfo), with 429/503 waits.
    pub(crate) async fn get(&self, what: &str, url: &str) -> Result<Response> {
        get_with_retry(&self.inner, what, url).await
    }

    /// The client's own delay before retry number `attempt` (0-based), jitter included.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.inner.config.backoff.delay(attempt)
    }

    /// Sleeps `delay` unless that passes the deadline, in which case it says so.
    pub(crate) async fn wait(&self, what: &str, delay: Duration, server_asked: bool) -> Result<()> {
        wait(&self.inner, what, delay, server_asked).await
    }

    /// Polls with `fetch` until `done` says so. Between polls it waits the server's
    /// Retry-After (plus a little jitter) or the client's backoff, within the deadline.
    pub(crate) async fn poll<T>(
        &self,
        what: &str,
        mut fetch: impl AsyncFnMut() -> Result<(T, Option<Duration>)>,
        mut done: impl FnMut(&T) -> bool,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            let (value, retry_after) = fetch().await?;
            if done(&value) {
                return Ok(value);
            }
            let (delay, server_asked) = match retry_after {
                Some(d) => {
                    // Never sooner than asked; the jitter must not push a fitting wait past
                    // the deadline.
                    let remaining = self.remaining();
                    let d = if d <= remaining {
                        jittered(d, 0.1).min(remaining)
                    } else {
                        d
                    };
                    (d, true)
                }
                None => (self.inner.config.backoff.delay(attempt), false),
            };
            if !server_asked && Instant::now() + delay > self.deadline() {
                return Err(Error::DeadlineExceeded {
                    what: what.to_owned(),
                    deadline: self.inner.config.deadline,
                });
            }
            self.wait(what, delay, server_asked).await?;
            attempt += 1;
        }
    }
}

/// How many times a repeatable request is sent again after a gateway page, a busy answer
/// without Retry-After or a broken connection (1, 1.6, 2.6, 4.1 s of backoff).
const TRANSIENT_RETRIES: u32 = 4;

/// Whether sending `action` again cannot do harm: POST-as-GET reads; newAccount (the same key
/// finds the same account), newOrder (at worst a second order), a challenge response (the
/// CA ignores a repeat). Not finalize (it looks at the order instead), revocation, key
/// change or deactivation.
fn repeatable(action: &str, payload: Option<&Value>) -> bool {
    payload.is_none() || matches!(action, "newAccount" | "newOrder" | "challenge")
}

/// The delay a 429 or 503 asks for, if it gives one.
fn busy_delay(response: &Response) -> Option<Duration> {
    matches!(response.status, 429 | 503)
        .then(|| response.retry_after())
        .flatten()
}

async fn get_with_retry(inner: &Inner, what: &str, url: &str) -> Result<Response> {
    loop {
        let response = inner.raw.get(url).await?;
        pool_nonce(inner, &response);
        if let Some(delay) = busy_delay(&response) {
            let what = format!("{what}: the CA is busy (HTTP {})", response.status);
            wait(inner, &what, delay, true).await?;
            continue;
        }
        return Ok(response);
    }
}

async fn wait(inner: &Inner, what: &str, delay: Duration, server_asked: bool) -> Result<()> {
    // The planted misbehaviour: the server's wait replaced by the first backoff step.
    let (delay, server_asked) = if server_asked && inner.config.ignore_retry_after {
        (inner.config.backoff.initial, false)
    } else {
        (delay, server_asked)
    };
    let deadline = *inner
        .deadline
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let remaining = deadline.saturating_duration_since(Instant::now());
    if delay > remaining {
        return Err(if server_asked {
            Error::RetryAfterBeyondDeadline {
                what: what.to_owned(),
                retry_after: delay,
                remaining,
            }
        } else {
            Error::DeadlineExceeded {
                what: what.to_owned(),
                deadline: inner.config.deadline,
            }
        });
    }
    let event = Progress::Waiting {
        what: what.to_owned(),
        delay,
        server_asked,
    };
    tracing::info!("{event}");
    if let Some(cb) = &inner.config.progress {
        cb(&event);
    }
    tokio::time::sleep(delay).await;
    Ok(())
}

fn pool_nonce(inner: &Inner, response: &Response) {
    if let Some(n) = response.header("replay-nonce") {
        push_nonce(inner, n.to_owned());
    }
}

fn push_nonce(inner: &Inner, nonce: String) {
    let mut pool = inner
        .nonces
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if pool.len() >= NONCE_POOL_SIZE {
        pool.remove(0);
    }
    pool.push(nonce);
}

/// The newest nonce first: the one a badNonce refusal just carried is the one retried with.
fn pop_nonce(inner: &Inner) -> Option<String> {
    inner
        .nonces
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            factor: 2.0,
            jitter: 0.25,
        };
        for (attempt, base) in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)] {
            let d = b.delay(attempt).as_secs_f64();
            assert!(d >= base && d <= base * 1.25 + 1e-9, "{attempt}: {d}");
        }
    }

    #[test]
    fn progress_lines() {
        let p = Progress::Waiting {
            what: "order processing".into(),
            delay: Duration::from_secs(15),
            server_asked: true,
        };
        assert_eq!(p.to_string(), "order processing, retrying in 15 s");
        let p = Progress::Waiting {
            what: "order processing".into(),
            delay: Duration::from_millis(1500),
            server_asked: false,
        };
        assert_eq!(p.to_string(), "order processing, retrying in 1.5 s");
    }
}
