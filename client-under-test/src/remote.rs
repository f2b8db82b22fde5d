//! Vetting a client that cannot run here (win-acme on Windows, an appliance, a client on
//! another host): `acme-harness vet --remote`.
//!
//! Each scenario gets a fresh mock and a canary credential, as a local vet gives it. Instead of
//! starting the client, the harness prints what to set on it and watches the mock until the
//! client has downloaded its certificate, or the wait is over (a timeout, a quiet spell, or
//! Enter). The outcome is judged from what reached the mock and the certificate it was served;
//! the transcript is graded by the judge exactly as for a local client. What needs the client's
//! host (its files, logs, processes, exit status) is named as not seen in the report, and files
//! copied back from that host can be scanned for the canary ([`scan_copied`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acme_proto::Secret;
use acme_proto::transcript::Exchange;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::run::{self, Mock, OutcomeKind, Prepared, Reach, ScenarioResult};
use crate::scan::{Finding, Level, Needles, Place};
use crate::scenario::{EabState, Expect, KeyKind, Scenario};
use crate::{Error, verify};

/// Quiet time after the certificate download before a scenario ends: a client may still
/// fetch an alternate chain.
const SETTLE: Duration = Duration::from_secs(3);

/// A client whose last request is this recent when the time runs out was still at work.
const STILL_ACTIVE: Duration = Duration::from_secs(60);

/// How often the mock's record is looked at.
const POLL: Duration = Duration::from_millis(200);

/// How a remote vet is set up.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// Names the client in the report (`win-acme`, `posh-acme`, an appliance's model).
    pub label: String,
    /// Seed of the mock's fault decisions.
    pub seed: u64,
    /// Where each scenario's directory (mock, transcript, canary key file) is made.
    pub base_dir: PathBuf,
    /// The CA folder the remote host trusts (`serve`'s data directory's `ca/`): kept across
    /// runs, so that it is trusted once. Made when it does not exist.
    pub ca_dir: PathBuf,
    /// Where each scenario's mock listens (one at a time, so one port serves them all).
    pub listen: SocketAddr,
    /// Names the remote client reaches the mock by (`ServerConfig::hostnames`).
    pub hostnames: Vec<String>,
    /// How long to wait for each scenario's client.
    pub timeout: Duration,
    /// End a scenario after this long without a request, once the client has sent one.
    pub idle: Option<Duration>,
    /// Files copied back from the client's host, scanned for every scenario's canary.
    pub scan_dir: Option<PathBuf>,
}

impl RemoteConfig {
    /// Checks the set-up before any mock starts: the label names a folder, a wildcard listen
    /// address comes with the hostname other hosts use, and the scan folder exists (made when
    /// missing). Returns the warnings to show (a mock other hosts can reach).
    pub fn check(&self) -> Result<Vec<String>, Error> {
        let listen = self.listen;
        if listen.ip().is_unspecified() && self.hostnames.is_empty() {
            return Err(Error::Invalid(format!(
                "--listen {listen} needs --hostname NAME: the URLs the remote client follows \
                 must name the host it reaches this one by"
            )));
        }
        let label = &self.label;
        if label.is_empty() || label.contains(['/', '\\']) || label.starts_with('.') {
            return Err(Error::Invalid(format!(
                "--remote {label:?}: give a short label such as win-acme (it names a folder)"
            )));
        }
        if let Some(dir) = &self.scan_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: format!("--scan-dir {}", dir.display()),
                message: e.to_string(),
            })?;
        }
        let mut warnings = Vec::new();
        if !listen.ip().is_loopback() {
            warnings.push(format!(
                "listening on {listen}: other hosts can reach each scenario's mock. It is a test \
                 CA: trust it on test machines only, and remove it afterwards \
                 (docs/windows.md). Each scenario's credential is a throwaway canary."
            ));
        }
        Ok(warnings)
    }
}

/// What a remote vet could not check: written into its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteScope {
    /// What needs the client's host, one sentence each, starting with `not run:`,
    /// `partly run:` or `not seen:`.
    pub limits: Vec<String>,
    /// The folder of files copied back from the client's host that was scanned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_dir: Option<String>,
}

impl RemoteScope {
    /// The scope of a remote vet that scanned `scan_dir` (or nothing).
    pub fn new(scan_dir: Option<&Path>) -> Self {
        let scan = match scan_dir {
            None => "not run: the secret scan (local-only): where the client keeps the EAB HMAC \
                     key, in which files and logs, and who can read them"
                .to_owned(),
            Some(dir) => format!(
                "partly run: the secret scan (local-only): only the files copied into {} were \
                 searched for the canary key; where they lie on the client's host and who can \
                 read them there is not seen",
                dir.display()
            ),
        };
        Self {
            limits: vec![
                scan,
                "not run: the process check (local-only): whether the HMAC key shows in a \
                 command line other users can read"
                    .into(),
                "not seen: its exit status and output: the outcome is judged from what reached \
                 the mock (its requests, and whether it downloaded its certificate)"
                    .into(),
                "not seen: the files it saved: the certificate checked is the chain the mock \
                 served it, not the file on its host; private key permissions are unknown"
                    .into(),
            ],
            scan_dir: scan_dir.map(|d| d.display().to_string()),
        }
    }

    /// Whether the secret scan looked at anything.
    pub fn scanned(&self) -> bool {
        self.scan_dir.is_some()
    }

    /// The report's "cannot see" section.
    pub fn section(&self) -> String {
        let mut out =
            String::from("\nWhat a remote vet cannot see (the client ran on another host):\n");
        for line in &self.limits {
            let _ = writeln!(out, "  - {line}");
        }
        if !self.scanned() {
            out.push_str(
                "  To scan what the client leaves behind, run again with --scan-dir DIR and copy \
                 its logs and\n  configuration into DIR before the run ends (win-acme: \
                 %ProgramData%\\win-acme\\, with its Log folders).\n",
            );
        }
        out
    }
}

/// What to set on the remote client for one scenario.
#[derive(Clone, Debug)]
pub struct Instructions {
    /// This scenario's place in the run (1-based) and the number of scenarios.
    pub position: (usize, usize),
    /// The scenario.
    pub scenario: Scenario,
    /// The directory URL.
    pub directory: String,
    /// The canary EAB key id.
    pub eab_kid: String,
    /// The canary HMAC key: printed on purpose, it is a throwaway that works on this
    /// scenario's mock only.
    pub eab_hmac_key: Secret<String>,
    /// The same key in a file (0600), for a client that reads it from one.
    pub hmac_key_file: PathBuf,
    /// The CA the client's host must trust (`None`: this scenario's mock presents a
    /// certificate from a CA it must not trust).
    pub trust: Option<PathBuf>,
    /// How long the harness waits.
    pub wait: Duration,
    /// Whether Enter ends the wait.
    pub enter: bool,
}

fn key_name(key: KeyKind) -> (&'static str, &'static str) {
    match key {
        KeyKind::Rsa => ("RSA", "rsa"),
        KeyKind::Ecdsa => ("ECDSA (P-256 or P-384)", "ec"),
    }
}

/// What the client must achieve in `s`, in a sentence.
fn expectation(s: &Scenario) -> String {
    if s.untrusted_tls {
        return "run it as before: this mock presents a certificate from a CA the host does \
                not trust, and the client must refuse to connect"
            .into();
    }
    if let Some(chain) = s.preferred_chain {
        return format!(
            "a certificate for {} whose chain ends at \"{chain}\": set the client's preferred \
             chain (win-acme: --preferredissuer) to that name",
            s.domain
        );
    }
    match s.expect {
        Expect::Issue if s.renew => format!(
            "a certificate for {}, then a renewal of it (win-acme: wacs.exe --renew --force)",
            s.domain
        ),
        Expect::Issue => format!("a certificate for {}", s.domain),
        Expect::IssueOrRefuse => format!(
            "a certificate for {} (retried), or a clean stop with an error: both are correct",
            s.domain
        ),
        Expect::WaitOrRefuse => format!(
            "a certificate for {}, a patient wait, or a clean stop to resume later: all are \
             correct; polling the order again and again is not",
            s.domain
        ),
        Expect::Refuse => {
            let why = match s.eab {
                EabState::AlreadyUsed => "the credential was already used by another account",
                EabState::Revoked => "the credential is revoked",
                EabState::WrongKey => "the HMAC key given here is deliberately wrong",
                EabState::Missing => "run it without any EAB key id or HMAC key",
                EabState::Fresh => "the name is not delegated to the credential",
            };
            format!("a clean stop with an error, and no certificate: {why}")
        }
    }
}

impl Instructions {
    /// The text printed for the person at the client.
    pub fn render(&self) -> String {
        let s = &self.scenario;
        let (key, csr) = key_name(s.key);
        let dir = &self.directory;
        let kid = &self.eab_kid;
        let hmac = self.eab_hmac_key.expose();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== scenario {}/{}: {}: {}",
            self.position.0, self.position.1, s.id, s.description
        );
        out.push_str(
            "Set on the remote client (this scenario has a fresh mock and a fresh credential):\n",
        );
        let _ = writeln!(out, "  directory URL:  {dir}");
        let _ = writeln!(out, "  EAB key id:     {kid}");
        let _ = writeln!(out, "  EAB HMAC key:   {hmac}");
        let _ = writeln!(out, "  HMAC key file:  {}", self.hmac_key_file.display());
        out.push_str(
            "                  (a throwaway canary: it works on this scenario's mock only)\n",
        );
        let _ = writeln!(out, "  name:           {}", s.domain);
        let _ = writeln!(out, "  key type:       {key}");
        match &self.trust {
            Some(ca) => {
                let _ = writeln!(out, "  trust:          {}", ca.display());
                out.push_str(
                    "                  (the mock's TLS CA; trust it once: docs/windows.md)\n",
                );
            }
            None => out.push_str(
                "  trust:          nothing new (keep trusting the mock's usual CA only)\n",
            ),
        }
        let _ = writeln!(out, "  expected:       {}", expectation(s));
        let email_domain = s.domain.trim_start_matches("*.");
        let _ = writeln!(
            out,
            "win-acme: settings.json \"Acme\": \"DefaultBaseUri\": \"{dir}\", \"PostAsGet\": true,\n  \
             \"RetryCount\": 15, \"RetryInterval\": 5 (15 polls 5 s apart outlast the 15-60 s \
             an order spends processing)\n  \
             wacs.exe --baseuri {dir} --source manual --host {} --validation none --csr {csr} \
             --store pemfiles --pemfilespath C:\\acme-harness --accepttos --emailaddress \
             admin@{email_domain} --eab-key-identifier {kid} --eab-key {hmac}",
            s.domain
        );
        out.push_str(
            "  (the canary may sit on a command line; a real key is typed at wacs.exe's prompt \
             instead. Delete the\n  account win-acme saved for this BaseUri before the next \
             scenario: its new mock does not know it)\n",
        );
        if s.renew {
            out.push_str("  then: wacs.exe --renew --force\n");
        }
        let _ = write!(
            out,
            "Waiting up to {} s for the client's requests and its certificate download",
            self.wait.as_secs()
        );
        out.push_str(if self.enter {
            "; press Enter when the client has finished.\n"
        } else {
            ".\n"
        });
        out
    }
}

/// Why a scenario's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitEnd {
    /// The client downloaded the certificate(s) it was to get, then went quiet.
    Downloaded,
    /// The time was up.
    Timeout,
    /// Nothing came for the idle time after the client had started.
    Idle,
    /// The person at the terminal said the client had finished.
    Enter,
}

/// What the mock saw of the client.
#[derive(Debug, Default)]
struct Seen {
    last_seq: u64,
    requests: usize,
    last_request: Option<Instant>,
    /// The last exchange, in a few words.
    last: String,
    /// Distinct certificates downloaded (id, chain index), in order.
    downloads: Vec<(String, usize)>,
}

/// The certificate id and chain index of a certificate URL (`.../cert/ID`,
/// `.../cert/ID/alternate/N`).
fn cert_download(url: &str) -> Option<(String, usize)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = &rest[rest.find('/')?..];
    let at = path.find("/cert/")?;
    let mut parts = path[at + "/cert/".len()..].split('/');
    let id = parts.next().filter(|s| !s.is_empty())?;
    // An alternate chain is at `cert/ID/alternate/N`.
    let index = match (parts.next(), parts.next()) {
        (None, _) => 0,
        (Some("alternate"), Some(n)) => n.parse().ok()?,
        _ => return None,
    };
    Some((id.to_owned(), index))
}

/// An exchange in a few words: `POST /v2/X/order/abc: 200 (processing)`.
fn brief(e: &Exchange) -> String {
    let rest = e.url.split_once("://").map_or(e.url.as_str(), |(_, r)| r);
    let path = rest.find('/').map_or(rest, |i| &rest[i..]);
    let what = match (&e.problem, &e.response_body) {
        (Some(p), _) => format!(
            " ({}: {})",
            p.kind.trim_start_matches("urn:ietf:params:acme:error:"),
            p.detail.as_deref().unwrap_or_default()
        ),
        (None, Some(body)) => body["status"]
            .as_str()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!("{} {path}: {}{what}", e.method, e.status)
}

impl Seen {
    fn update(&mut self, mock: &Mock) {
        let new = mock.server.state().store.transcripts.since(self.last_seq);
        for e in &new {
            self.last_seq = self.last_seq.max(e.seq);
            self.requests += 1;
            self.last_request = Some(Instant::now());
            self.last = brief(e);
            if e.method == "POST"
                && e.status == 200
                && let Some((id, index)) = cert_download(&e.url)
            {
                match self.downloads.iter_mut().find(|(d, _)| *d == id) {
                    Some(d) => d.1 = index,
                    None => self.downloads.push((id, index)),
                }
            }
        }
    }

    fn quiet_for(&self) -> Option<Duration> {
        self.last_request.map(|t| t.elapsed())
    }
}

/// Whether Enter was pressed; `false` when no more can come (stdin closed).
async fn pressed(enter: &mut Option<&mut UnboundedReceiver<()>>) -> bool {
    match enter {
        Some(rx) => rx.recv().await.is_some(),
        None => std::future::pending().await,
    }
}

/// Watches `mock` until the client has downloaded `needed` certificates and gone quiet, or
/// the wait is over.
async fn watch(
    mock: &Mock,
    needed: usize,
    config: &RemoteConfig,
    say: &(dyn Fn(&str) + Sync),
    enter: &mut Option<&mut UnboundedReceiver<()>>,
) -> (Seen, WaitEnd) {
    let deadline = Instant::now() + config.timeout;
    let mut seen = Seen::default();
    let mut told = (0, 0);
    loop {
        let by_enter = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            more = pressed(enter) => {
                if !more {
                    *enter = None;
                }
                more
            }
        };
        seen.update(mock);
        // What the person at the client sees happen.
        if told.0 == 0 && seen.requests > 0 {
            say(&format!(
                "  the client has connected (last request: {})",
                seen.last
            ));
        }
        if seen.downloads.len() > told.1 {
            say(&format!(
                "  certificate downloaded ({} of {needed}){}",
                seen.downloads.len(),
                if seen.downloads.len() >= needed {
                    "; ending when the client has been quiet for 3 s"
                } else {
                    ""
                }
            ));
        }
        told = (seen.requests, seen.downloads.len());
        if by_enter {
            return (seen, WaitEnd::Enter);
        }
        let quiet = seen.quiet_for();
        if seen.downloads.len() >= needed && quiet.is_some_and(|q| q >= SETTLE) {
            return (seen, WaitEnd::Downloaded);
        }
        if Instant::now() >= deadline {
            return (seen, WaitEnd::Timeout);
        }
        if let (Some(idle), Some(quiet)) = (config.idle, quiet)
            && quiet >= idle
        {
            return (seen, WaitEnd::Idle);
        }
    }
}

/// What the watch found, for the outcome check.
struct Evidence<'a> {
    seen: &'a Seen,
    end: WaitEnd,
    wait: Duration,
    handshake_failures: u64,
    issued: usize,
}

impl Evidence<'_> {
    fn ended(&self) -> String {
        match self.end {
            WaitEnd::Downloaded => "after the download".into(),
            WaitEnd::Timeout => format!("when the {} s wait ran out", self.wait.as_secs()),
            WaitEnd::Idle => "when it had been quiet for the idle time".into(),
            WaitEnd::Enter => "when Enter was pressed".into(),
        }
    }

    /// The client was still sending requests when the time ran out.
    fn still_active(&self) -> bool {
        self.end == WaitEnd::Timeout && self.seen.quiet_for().is_some_and(|q| q < STILL_ACTIVE)
    }

    fn nothing_reached(&self) -> String {
        let mut detail = format!("no request reached the mock ({})", self.ended());
        if self.handshake_failures > 0 {
            let _ = write!(
                detail,
                "; {} TLS handshake(s) failed: the host does not trust the mock's CA, or reached \
                 it by a name not in its certificate (--hostname)",
                self.handshake_failures
            );
        } else {
            detail.push_str(
                "; no connection either: check the directory URL, name resolution and firewalls",
            );
        }
        detail
    }
}

/// The outcome of a remote client in `scenario`, from what the mock saw. `check` verifies the
/// certificate `(id, chain index)` the client downloaded.
fn judge(
    scenario: &Scenario,
    ev: &Evidence<'_>,
    check: impl Fn(&str, usize) -> Result<verify::CertInfo, String>,
) -> run::Outcome {
    let seen = ev.seen;
    let (kind, detail) = if scenario.untrusted_tls {
        if seen.requests > 0 {
            (
                OutcomeKind::Accepted,
                format!(
                    "{} request(s) reached a server whose certificate it must not trust",
                    seen.requests
                ),
            )
        } else if ev.handshake_failures > 0 {
            (
                OutcomeKind::Refused,
                format!(
                    "it refused the untrusted certificate: {} TLS handshake(s) failed, no request \
                     was sent",
                    ev.handshake_failures
                ),
            )
        } else {
            (
                OutcomeKind::Failed,
                "no connection reached the mock at all, so a refusal cannot be told from a \
                 client that never tried"
                    .into(),
            )
        }
    } else {
        let expect = match scenario.expect {
            Expect::IssueOrRefuse | Expect::WaitOrRefuse if !seen.downloads.is_empty() => {
                Expect::Issue
            }
            Expect::IssueOrRefuse | Expect::WaitOrRefuse => Expect::Refuse,
            e => e,
        };
        let needed = if scenario.renew { 2 } else { 1 };
        match expect {
            _ if seen.requests == 0 => (OutcomeKind::Failed, ev.nothing_reached()),
            Expect::Refuse if ev.issued > 0 => (
                OutcomeKind::Accepted,
                format!("the mock issued {} certificate(s)", ev.issued),
            ),
            _ if seen.downloads.len() < needed && ev.still_active() => (
                OutcomeKind::Hung,
                format!(
                    "still sending requests when the {} s wait ran out (last: {})",
                    ev.wait.as_secs(),
                    seen.last
                ),
            ),
            Expect::Refuse | Expect::IssueOrRefuse | Expect::WaitOrRefuse => (
                OutcomeKind::Refused,
                format!(
                    "it stopped after the refusal ({}; last: {}); its exit status is not seen",
                    ev.ended(),
                    seen.last
                ),
            ),
            Expect::Issue if seen.downloads.is_empty() && ev.issued > 0 => (
                OutcomeKind::NoCertificate,
                format!(
                    "the mock issued a certificate, but the client never downloaded it (last: {})",
                    seen.last
                ),
            ),
            Expect::Issue if seen.downloads.is_empty() => (
                OutcomeKind::Failed,
                format!(
                    "no certificate downloaded ({}); last: {}",
                    ev.ended(),
                    seen.last
                ),
            ),
            Expect::Issue if seen.downloads.len() < needed => (
                OutcomeKind::NoCertificate,
                format!(
                    "one certificate downloaded, but no renewal was seen ({})",
                    ev.ended()
                ),
            ),
            Expect::Issue => {
                let (id, index) = &seen.downloads[seen.downloads.len() - 1];
                match check(id, *index) {
                    Err(e) => (OutcomeKind::BadCertificate, e),
                    Ok(info)
                        if scenario
                            .preferred_chain
                            .is_some_and(|want| want != info.top_issuer) =>
                    {
                        (
                            OutcomeKind::BadCertificate,
                            format!(
                                "the chain it downloaded last ends at {:?}, not the preferred {:?}",
                                info.top_issuer,
                                scenario.preferred_chain.unwrap_or_default()
                            ),
                        )
                    }
                    Ok(info) if scenario.renew => (
                        OutcomeKind::Issued,
                        format!(
                            "renewed: it downloaded {} certificates, the last (serial {}) verifies \
                             to the roots (as served; the files on its host are not seen)",
                            seen.downloads.len(),
                            info.serial
                        ),
                    ),
                    Ok(info) => (
                        OutcomeKind::Issued,
                        format!(
                            "the chain it downloaded verifies to the roots, SAN {:?} (as served; \
                             the file on its host is not seen)",
                            info.names
                        ),
                    ),
                }
            }
        }
    };
    let ok = scenario.expect.accepts(kind);
    run::Outcome {
        kind,
        ok,
        detail,
        exits: Vec::new(),
    }
}

/// How many certificates the client could have downloaded: issued, and their orders valid
/// (one still `processing` when the client gave up does not count).
fn downloadable(mock: &Mock) -> usize {
    let store = &mock.server.state().store;
    let now = time::OffsetDateTime::now_utc();
    store
        .certs()
        .iter()
        .filter(|c| {
            store
                .order(&c.order)
                .is_some_and(|o| o.status_at(now) == acme_proto::Status::Valid)
        })
        .count()
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    acme_proto::file::write_atomic(path, text.as_bytes(), acme_proto::file::Access::OwnerOnly)
        .map_err(|e| Error::io(path, e))
}

/// One scenario: a fresh mock, the instructions, the wait, the outcome and the grade. Also
/// returns the canary's needles for [`scan_copied`].
async fn run_one(
    scenario: &Scenario,
    position: (usize, usize),
    config: &RemoteConfig,
    prepared: &Prepared,
    say: &(dyn Fn(&str) + Sync),
    enter: &mut Option<&mut UnboundedReceiver<()>>,
) -> Result<(ScenarioResult, Needles), Error> {
    let started = Instant::now();
    let dir = config.base_dir.join(&config.label).join(scenario.id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut result = ScenarioResult::pending(&config.label, None, scenario, &dir, config.seed);
    // The untrusted-TLS scenario: the mock presents a certificate from a CA the remote host
    // was never told to trust.
    let ca_dir = if scenario.untrusted_tls {
        &prepared.untrusted_ca_dir
    } else {
        &prepared.ca_dir
    };
    let reach = Reach {
        listen: config.listen,
        hostnames: config.hostnames.clone(),
    };
    let mock = run::start_mock(
        scenario,
        &dir,
        ca_dir,
        config.seed,
        mock_server::free_port(),
        &reach,
    )
    .await
    .map_err(|e| match e {
        Error::Setup(m) if m.contains("cannot listen on") => Error::Setup(format!(
            "{m} (is `acme-harness serve` using that port? stop it, or give --listen ADDR)"
        )),
        e => e,
    })?;
    let directory = mock
        .server
        .directory_url(scenario.profile)
        .unwrap_or(&mock.server.ready().directory)
        .to_owned();
    let hmac_key_file = dir.join("eab-hmac-key");
    write_private(&hmac_key_file, &mock.hmac)?;
    // Enter pressed during an earlier scenario is not meant for this one.
    if let Some(rx) = enter.as_mut() {
        while rx.try_recv().is_ok() {}
    }
    say(&Instructions {
        position,
        scenario: scenario.clone(),
        directory,
        eab_kid: mock.kid.clone(),
        eab_hmac_key: Secret::new(mock.hmac.clone()),
        hmac_key_file,
        trust: (!scenario.untrusted_tls).then(|| prepared.ca_dir.join("listener-ca.pem")),
        wait: config.timeout,
        enter: enter.is_some(),
    }
    .render());

    let needed = if scenario.renew { 2 } else { 1 };
    let (seen, end) = watch(&mock, needed, config, say, enter).await;
    let state = mock.server.state();
    let evidence = Evidence {
        seen: &seen,
        end,
        wait: config.timeout,
        handshake_failures: mock.server.handshake_failures(),
        issued: downloadable(&mock),
    };
    let roots = mock.server.ready().roots.clone();
    result.outcome = judge(scenario, &evidence, |id, index| {
        let cert = state
            .store
            .cert(id)
            .ok_or_else(|| format!("certificate {id} is not in the mock's store"))?;
        let pem = state
            .ca
            .chain(&cert.leaf_pem, cert.family, index)
            .ok_or_else(|| format!("certificate {id} has no chain {index}"))?;
        let path = dir.join(format!("downloaded-{id}.pem"));
        std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        verify::check_certificate(&path, &roots, &[scenario.domain], scenario.key)
    });
    result.grade = run::save_and_grade(
        &mock.server,
        &dir,
        &format!("{}/{}", config.label, scenario.id),
    )?
    .map(|g| g.waive(scenario.waived_rules));
    let needles = Needles::new(&mock.hmac);
    mock.server.shutdown().await;
    result.settle();
    result.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    Ok((result, needles))
}

/// Runs `scenarios` one at a time against a client on another host. `say` shows the
/// instructions; `enter`, when a person is at a terminal, ends a scenario's wait (and, with
/// a scan folder, starts the scan); `progress` sees each result as it finishes.
pub async fn run_remote(
    scenarios: &[Scenario],
    config: &RemoteConfig,
    say: &(dyn Fn(&str) + Sync),
    mut enter: Option<&mut UnboundedReceiver<()>>,
    progress: &(dyn Fn(&ScenarioResult) + Sync),
) -> Result<Vec<ScenarioResult>, Error> {
    std::fs::create_dir_all(&config.base_dir).map_err(|e| Error::io(&config.base_dir, e))?;
    let prepared = run::prepare_with(&config.base_dir, config.ca_dir.clone()).await?;
    let mut results = Vec::new();
    let mut canaries = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let (result, needles) = run_one(
            scenario,
            (i + 1, scenarios.len()),
            config,
            &prepared,
            say,
            &mut enter,
        )
        .await?;
        progress(&result);
        results.push(result);
        canaries.push(needles);
    }
    if let Some(dir) = &config.scan_dir {
        if let Some(rx) = enter.as_mut() {
            say(&format!(
                "\nCopy the client's logs and configuration into {} now, then press Enter to \
                 scan them for the canary keys.",
                dir.display()
            ));
            let _ = tokio::time::timeout(config.timeout, rx.recv()).await;
        }
        for (result, needles) in results.iter_mut().zip(&canaries) {
            result.secrets.extend(scan_copied(needles, dir));
            result.secrets.sort();
            result.settle();
        }
    }
    Ok(results)
}

/// A channel that receives one message each time Enter is pressed on standard input (read
/// on a thread of its own): what [`run_remote`] takes to end a scenario's wait early.
pub fn enter_presses() -> UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}

/// The line printed when a remote scenario finishes: its secret findings come at the end of
/// the run, if at all.
pub fn progress_line(r: &ScenarioResult) -> String {
    format!(
        "{:<5} {} / {}: {}; rules failed: {} ({:.1} s)",
        r.verdict().to_uppercase(),
        r.client,
        r.scenario,
        crate::report::outcome_label(r.outcome.kind),
        r.grade.as_ref().map_or(0, |g| g.failed.len()),
        r.seconds
    )
}

/// Searches every regular file under `dir` (copied back from a client's host; symlinks not
/// followed) for the canary. The file's mode here says nothing about the remote host, so a
/// finding fails in a log (a path with `log` in it) and is reported otherwise: a client may
/// have to keep the key, and whether others can read it there is not seen.
pub fn scan_copied(needles: &Needles, dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for (path, _) in crate::scan::regular_files(dir) {
        let Some(bytes) = crate::scan::read_capped(&path) else {
            continue;
        };
        let Some(form) = needles.find(&bytes) else {
            continue;
        };
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let is_log = rel.to_string_lossy().to_ascii_lowercase().contains("log");
        out.push(if is_log {
            Finding {
                level: Level::Fail,
                place: Place::Log,
                location: format!("scan-dir/{}", rel.display()),
                detail: format!(
                    "the HMAC key ({form}) is in a log copied back from the client's host"
                ),
            }
        } else {
            Finding {
                level: Level::Info,
                place: Place::File,
                location: format!("scan-dir/{}", rel.display()),
                detail: format!(
                    "the client stored the HMAC key ({form}) in plain text; who can read it \
                     on its host is not seen"
                ),
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scenario(id: &str) -> Scenario {
        Scenario::select(&[id.to_owned()]).unwrap().remove(0)
    }

    fn seen(requests: usize, downloads: &[&str], quiet: Duration) -> Seen {
        Seen {
            last_seq: requests as u64,
            requests,
            last_request: (requests > 0).then(|| Instant::now() - quiet),
            last: "POST /v2/InCommonRSAOV/order/o1: 200 (processing)".into(),
            downloads: downloads.iter().map(|d| ((*d).to_owned(), 0)).collect(),
        }
    }

    fn ev(seen: &Seen, end: WaitEnd, handshake_failures: u64, issued: usize) -> Evidence<'_> {
        Evidence {
            seen,
            end,
            wait: Duration::from_secs(600),
            handshake_failures,
            issued,
        }
    }

    fn good(_: &str, _: usize) -> Result<verify::CertInfo, String> {
        Ok(verify::CertInfo {
            path: "x.pem".into(),
            serial: "1f".into(),
            names: vec!["physics.example.edu".into()],
            top_issuer: "Mock AAA Certificate Services".into(),
        })
    }

    fn kind(s: &str, ev: &Evidence<'_>) -> (OutcomeKind, bool) {
        let o = judge(&scenario(s), ev, good);
        (o.kind, o.ok)
    }

    #[test]
    fn a_download_is_an_issue_and_its_absence_a_failure() {
        let s = seen(9, &["c1"], Duration::from_secs(5));
        let o = judge(
            &scenario("happy-rsa-ov-rsa"),
            &ev(&s, WaitEnd::Downloaded, 0, 1),
            good,
        );
        assert_eq!((o.kind, o.ok), (OutcomeKind::Issued, true));
        assert!(o.detail.contains("as served"), "{}", o.detail);
        assert!(o.exits.is_empty());

        let s = seen(7, &[], Duration::from_secs(30));
        assert_eq!(
            kind("processing-20s", &ev(&s, WaitEnd::Idle, 0, 0)),
            (OutcomeKind::Failed, false)
        );
        // Issued but never fetched.
        assert_eq!(
            kind("processing-20s", &ev(&s, WaitEnd::Idle, 0, 1)),
            (OutcomeKind::NoCertificate, false)
        );
        // Still polling when the time ran out.
        let s = seen(7, &[], Duration::from_secs(10));
        assert_eq!(
            kind("processing-20s", &ev(&s, WaitEnd::Timeout, 0, 0)),
            (OutcomeKind::Hung, false)
        );
    }

    #[test]
    fn a_bad_certificate_is_named() {
        let s = seen(9, &["c1"], Duration::from_secs(5));
        let o = judge(
            &scenario("happy-rsa-ov-ecdsa"),
            &ev(&s, WaitEnd::Downloaded, 0, 1),
            |_, _| Err("the certificate key is RSA, not the Ecdsa key asked for".into()),
        );
        assert_eq!((o.kind, o.ok), (OutcomeKind::BadCertificate, false));
    }

    #[test]
    fn renewal_needs_two_certificates() {
        let s = seen(12, &["c1"], Duration::from_secs(5));
        assert_eq!(
            kind("renewal", &ev(&s, WaitEnd::Enter, 0, 1)),
            (OutcomeKind::NoCertificate, false)
        );
        let s = seen(20, &["c1", "c2"], Duration::from_secs(5));
        assert_eq!(
            kind("renewal", &ev(&s, WaitEnd::Downloaded, 0, 2)),
            (OutcomeKind::Issued, true)
        );
    }

    #[test]
    fn refusals_are_judged_from_the_requests() {
        let s = seen(4, &[], Duration::from_secs(30));
        assert_eq!(
            kind("eab-revoked", &ev(&s, WaitEnd::Idle, 0, 0)),
            (OutcomeKind::Refused, true)
        );
        assert_eq!(
            kind("server-internal-finalize", &ev(&s, WaitEnd::Enter, 0, 0)),
            (OutcomeKind::Refused, true)
        );
        assert_eq!(
            kind("undelegated-name", &ev(&s, WaitEnd::Idle, 0, 1)),
            (OutcomeKind::Accepted, false)
        );
        let none = seen(0, &[], Duration::ZERO);
        let o = judge(
            &scenario("eab-revoked"),
            &ev(&none, WaitEnd::Timeout, 2, 0),
            good,
        );
        assert_eq!((o.kind, o.ok), (OutcomeKind::Failed, false));
        assert!(
            o.detail.contains("2 TLS handshake(s) failed"),
            "{}",
            o.detail
        );
    }

    #[test]
    fn the_untrusted_server_must_be_refused_at_the_handshake() {
        let none = seen(0, &[], Duration::ZERO);
        assert_eq!(
            kind("untrusted-tls", &ev(&none, WaitEnd::Enter, 1, 0)),
            (OutcomeKind::Refused, true)
        );
        assert_eq!(
            kind("untrusted-tls", &ev(&none, WaitEnd::Timeout, 0, 0)),
            (OutcomeKind::Failed, false)
        );
        let some = seen(3, &[], Duration::from_secs(30));
        assert_eq!(
            kind("untrusted-tls", &ev(&some, WaitEnd::Idle, 0, 0)),
            (OutcomeKind::Accepted, false)
        );
    }

    #[test]
    fn certificate_urls_are_recognised() {
        assert_eq!(
            cert_download("https://mock.test:14000/v2/InCommonRSAOV/cert/abc"),
            Some(("abc".into(), 0))
        );
        assert_eq!(
            cert_download("https://127.0.0.1:1/v2/OV/rXYZ/cert/abc/alternate/1"),
            Some(("abc".into(), 1))
        );
        assert_eq!(cert_download("https://127.0.0.1:1/v2/OV/revokeCert"), None);
        assert_eq!(cert_download("https://127.0.0.1:1/v2/OV/order/x"), None);
    }

    #[test]
    fn copied_files_are_scanned_for_the_canary() {
        let dir = tempfile::tempdir().unwrap();
        let key = acme_proto::b64::encode([9u8; 64]);
        let needles = Needles::new(&key);
        std::fs::create_dir_all(dir.path().join("Log")).unwrap();
        std::fs::write(dir.path().join("Log/log-2026.txt"), format!("eab {key}")).unwrap();
        std::fs::write(
            dir.path().join("settings.json"),
            format!("\"k\": \"{key}\""),
        )
        .unwrap();
        std::fs::write(dir.path().join("clean.txt"), "nothing").unwrap();
        let mut found = scan_copied(&needles, dir.path());
        found.sort();
        let got: Vec<(Level, &str)> = found
            .iter()
            .map(|f| (f.level, f.location.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Level::Fail, "scan-dir/Log/log-2026.txt"),
                (Level::Info, "scan-dir/settings.json"),
            ]
        );
    }

    #[test]
    fn the_instructions_name_every_setting() {
        let text = Instructions {
            position: (2, 3),
            scenario: scenario("renewal"),
            directory: "https://mock.test:14000/v2/InCommonRSAOV".into(),
            eab_kid: "Kid0".into(),
            eab_hmac_key: Secret::new("Canary0".into()),
            hmac_key_file: "/tmp/x/eab-hmac-key".into(),
            trust: Some("/data/ca/listener-ca.pem".into()),
            wait: Duration::from_secs(900),
            enter: true,
        }
        .render();
        for want in [
            "== scenario 2/3: renewal",
            "directory URL:  https://mock.test:14000/v2/InCommonRSAOV",
            "EAB key id:     Kid0",
            "EAB HMAC key:   Canary0",
            "HMAC key file:  /tmp/x/eab-hmac-key",
            "throwaway canary",
            "name:           physics.example.edu",
            "key type:       RSA",
            "trust:          /data/ca/listener-ca.pem",
            "\"DefaultBaseUri\": \"https://mock.test:14000/v2/InCommonRSAOV\"",
            "\"PostAsGet\": true",
            "\"RetryCount\": 15",
            "--csr rsa",
            "wacs.exe --renew --force",
            "press Enter",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }
}
