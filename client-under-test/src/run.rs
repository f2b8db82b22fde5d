//! Running one client through one scenario: a fresh in-process mock, a canary EAB credential,
//! the client in its own work dir under a time limit, then the outcome check, the grade and
//! the secret scan.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_server::{MockServer, Profile, ServerConfig, free_port};
use serde::{Deserialize, Serialize};

use crate::adapter::{Adapter, Trust, Values};
use crate::audit::{self, Touched};
use crate::dns_watch::DnsWatch;
use crate::grade::{Grade, grade_transcript};
use crate::sandbox::{self, View};
use crate::scan::{self, Finding, Level, Needles, Place};
use crate::scenario::{EabState, Expect, KeyKind, Scenario};
use crate::verify;
use crate::{Error, scenario};

/// Environment variables removed from every client's environment: the machine may point every
/// TLS stack at the system bundle, and proxies must never see loopback traffic.
const SCRUBBED_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "HTTPLIB2_CA_CERTS",
    "LEGO_CA_CERTIFICATES",
    "NODE_EXTRA_CA_CERTS",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "ACME_HARNESS_EAB_HMAC_KEY",
    "ACME_HARNESS_SERVER",
    "XDG_CONFIG_HOME",
];

/// How the run is set up.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The acme-harness binary, for adapters that use `{harness}`.
    pub harness: Option<PathBuf>,
    /// Seed of the mock's fault decisions.
    pub seed: u64,
    /// Where each scenario's directory is made (kept for inspection).
    pub base_dir: PathBuf,
    /// Scenarios run at once.
    pub jobs: usize,
    /// Run every client command in the sandbox (`sandbox`); the run itself must then be in a
    /// private network namespace. `false`: `--no-sandbox`, clients run unconfined.
    pub sandbox: bool,
}

/// Shared, made once per run: the mock's CA (copied into each mock, so a run does not make
/// one CA per scenario) and an unrelated CA for the untrusted-TLS scenario.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub(crate) ca_dir: PathBuf,
    pub(crate) untrusted_ca_dir: PathBuf,
    untrusted_bundle: PathBuf,
}

/// Makes the shared CA material under `base`.
pub async fn prepare(base: &Path) -> Result<Prepared, Error> {
    prepare_with(base, base.join("shared-ca").join("ca")).await
}

/// Makes the shared CA material under `base`, the mock's CA in `ca_dir` (made there when it
/// is not, kept when it is: `vet --remote` uses the CA a remote host already trusts).
pub(crate) async fn prepare_with(base: &Path, ca_dir: PathBuf) -> Result<Prepared, Error> {
    let other = base.join("untrusted-ca").join("ca");
    let untrusted_bundle = base.join("untrusted-ca").join("bundle.pem");
    let (c, o) = (ca_dir.clone(), other.clone());
    let pem = tokio::task::spawn_blocking(move || -> Result<String, String> {
        mock_server::ca::Ca::load_or_create(&c).map_err(|e| e.to_string())?;
        let other = mock_server::ca::Ca::load_or_create(&o).map_err(|e| e.to_string())?;
        Ok(other.listener_ca_pem.clone())
    })
    .await
    .map_err(|e| Error::Setup(format!("CA setup panicked: {e}")))?
    .map_err(Error::Setup)?;
    std::fs::write(&untrusted_bundle, pem).map_err(|e| Error::io(&untrusted_bundle, e))?;
    Ok(Prepared {
        ca_dir,
        untrusted_ca_dir: other,
        untrusted_bundle,
    })
}

/// How the client ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// It left a certificate that verifies, for the right names and key.
    Issued,
    /// It exited non-zero and no certificate was issued.
    Refused,
    /// It exited 0 but no good certificate was found.
    NoCertificate,
    /// It left a certificate that does not verify or is for other names or key.
    BadCertificate,
    /// It exited non-zero where it should have obtained a certificate.
    Failed,
    /// It ended with a crash trace (a Python traceback, a Go or Rust panic, the client's own
    /// crash message) or was killed by a signal, where a clean failure was due.
    Crashed,
    /// It exited 0 where it must fail, or a certificate was issued anyway.
    Accepted,
    /// It did not finish within the time limit and was killed.
    Hung,
    /// The harness could not run it.
    Error,
    /// The client cannot be used with Sectigo (its adapter says why), and the CA refused it as
    /// the adapter says it would (no certificate).
    Unusable,
}

/// The outcome check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// What happened.
    pub kind: OutcomeKind,
    /// Whether it is what the scenario expects.
    pub ok: bool,
    /// One line.
    pub detail: String,
    /// Exit code of each command run (`None`: killed by a signal).
    pub exits: Vec<Option<i32>>,
}

/// One cell: a client through a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Adapter name.
    pub client: String,
    /// Version line, if detected.
    pub client_version: Option<String>,
    /// How the client was given the EAB key (`config-file`, `flag`, ...; empty when not
    /// known, as in a remote vet).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_mode: String,
    /// That way, in words (`eab-hmac-key in a 0600 cli.ini given with -c`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_mode_how: String,
    /// Every way the client can take the key, safest first (one: it has no other).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_modes: Vec<String>,
    /// Scenario id.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// What the scenario expects.
    pub expect: Expect,
    /// The outcome check.
    pub outcome: Outcome,
    /// The judge's grade of the transcript (`None`: nothing reached the mock).
    pub grade: Option<Grade>,
    /// Secret-scan findings.
    pub secrets: Vec<Finding>,
    /// On a clean refusal: whether the client showed the CA's reason (in its output or logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_shown: Option<bool>,
    /// What it touched: network attempts besides the mock, files outside its work dir,
    /// the programs it ran; and whether it ran sandboxed.
    #[serde(default)]
    pub touched: Touched,
    /// Outcome ok, no MUST rule failed, no failing secret finding.
    pub passed: bool,
    /// Wall time.
    pub seconds: f64,
    /// The scenario's directory (work dir, streams, transcript).
    pub dir: String,
    /// The mock's fault seed.
    pub seed: u64,
    /// Set when the client cannot be used with Sectigo: the adapter's reason
    /// ([`Adapter::unusable`]); this scenario is then the confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
}

impl ScenarioResult {
    /// A result not yet known: the outcome an error until the run says otherwise.
    pub(crate) fn pending(
        client: &str,
        version: Option<String>,
        scenario: &Scenario,
        dir: &Path,
        seed: u64,
    ) -> Self {
        Self {
            client: client.to_owned(),
            client_version: version,
            secret_mode: String::new(),
            secret_mode_how: String::new(),
            secret_modes: Vec::new(),
            scenario: scenario.id.into(),
            description: scenario.description.into(),
            expect: scenario.expect,
            outcome: Outcome {
                kind: OutcomeKind::Error,
                ok: false,
                detail: String::new(),
                exits: Vec::new(),
            },
            grade: None,
            secrets: Vec::new(),
            reason_shown: None,
            touched: Touched::default(),
            passed: false,
            seconds: 0.0,
            dir: dir.display().to_string(),
            seed,
            unusable: None,
        }
    }

    /// Sets `passed` from the outcome, the grade and the secret findings.
    pub(crate) fn settle(&mut self) {
        self.passed = self.outcome.ok
            && !self.grade.as_ref().is_some_and(Grade::must_failed)
            && self.secret_failures().next().is_none();
    }

    /// Secret findings that fail.
    pub fn secret_failures(&self) -> impl Iterator<Item = &Finding> {
        self.secrets.iter().filter(|f| f.level == Level::Fail)
    }

    /// `pass` or `fail`.
    pub fn verdict(&self) -> &'static str {
        if self.passed { "pass" } else { "fail" }
    }

    /// Why the verdict is what it is, in one line: the report's failure lines
    /// ([`crate::report`]'s JUnit text: the outcome, each MUST rule broken, each leak), each
    /// cut to a few hundred characters (an outcome may end with the client's stderr).
    pub fn why(&self) -> String {
        const MAX_LINE: usize = 300;
        let cut = |line: String| match line.char_indices().nth(MAX_LINE) {
            Some((end, _)) => format!("{}...", &line[..end]),
            None => line,
        };
        crate::report::failure_lines(self, true)
            .into_iter()
            .map(|l| cut(l.trim().to_owned()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        std::fs::copy(e.path(), &target)?;
    }
    Ok(())
}

/// A scenario's mock and its canary credential.
pub(crate) struct Mock {
    pub(crate) server: MockServer,
    pub(crate) kid: String,
    pub(crate) hmac: String,
}

/// Where a scenario's mock listens and the names it is reached by: loopback on a free port
/// for a client run here; what a remote client reaches for `vet --remote`.
#[derive(Clone, Debug)]
pub(crate) struct Reach {
    pub(crate) listen: std::net::SocketAddr,
    pub(crate) hostnames: Vec<String>,
}

impl Reach {
    fn local() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            hostnames: Vec::new(),
        }
    }
}

/// Starts `scenario`'s mock with the CA copied from `ca_dir`, and mints its canary.
pub(crate) async fn start_mock(
    scenario: &Scenario,
    dir: &Path,
    ca_dir: &Path,
    seed: u64,
    http_port: u16,
    reach: &Reach,
) -> Result<Mock, Error> {
    let data = dir.join("mock");
    copy_dir(ca_dir, &data.join("ca")).map_err(|e| Error::io(&data, e))?;
    let mut profiles = [scenario::RSA_OV, scenario::ECC_OV]
        .iter()
        .map(|p| Profile::built_in(p).map_err(|e| Error::Setup(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(edit) = scenario.profile_edit {
        profiles.iter_mut().for_each(edit);
    }
    let config = ServerConfig {
        listen: reach.listen,
        hostnames: reach.hostnames.clone(),
        data_dir: Some(data),
        // The CA copied into the data directory, which every scenario of a run shares.
        ca: None,
        profiles,
        seed: Some(seed),
        http01_port: http_port,
        tlsalpn01_port: free_port(),
        ..ServerConfig::loopback()
    };
    let server = MockServer::start(config)
        .await
        .map_err(|e| Error::Setup(format!("mock server: {e}")))?;
    // The canary: a fresh single-use credential for this run only, delegated to the
    // scenario's names under the demo organisation's Physics department.
    // Neither its key id nor its HMAC key starts with `-` (mock_server::state::random_b64):
    // argument parsers would take it for an option, and the scenario would test that instead
    // of what it is about.
    let state = server.state();
    let department = state
        .store
        .orgs
        .load()
        .departments
        .iter()
        .find(|d| d.domains.contains(scenario::DOMAIN))
        .map(|d| d.id)
        .ok_or_else(|| Error::Setup("the demo organisation has no Physics department".into()))?;
    let minted = state
        .mint_credential(&mock_server::control::NewCredential {
            department,
            domains: vec![
                scenario::DOMAIN.to_owned(),
                format!("*.{}", scenario::DOMAIN),
            ],
            reusable: false,
            profiles: Vec::new(),
        })
        .map_err(|e| Error::Setup(e.to_string()))?;
    let kid = minted.kid;
    let setup = |e: mock_server::state::org::ModelError| Error::Setup(e.to_string());
    match scenario.eab {
        EabState::Fresh => {}
        EabState::AlreadyUsed => {
            minted.credential.claim();
        }
        EabState::Revoked => {
            state.revoke_credential(&kid).map_err(setup)?;
        }
        EabState::WrongKey | EabState::Missing => {}
    }
    if let Some(plan) = scenario.fault_plan(seed) {
        state
            .set_credential_faults(&kid, Some(plan))
            .map_err(setup)?;
    }
    // The key the client is handed, and that the secret scan looks for: the credential's, or
    // for a wrong-key scenario another one of the same shape.
    let hmac = match scenario.eab {
        EabState::WrongKey => mock_server::state::random_b64(64).1,
        _ => minted.hmac_key.expose().clone(),
    };
    Ok(Mock { server, kid, hmac })
}

/// What running the commands gave.
struct Ran {
    exits: Vec<Option<i32>>,
    hung: bool,
    error: Option<String>,
}

/// Where the execve trace of command `n` goes (`None`: strace is not installed).
fn trace_path(stdout: &Path, n: usize) -> Option<PathBuf> {
    crate::adapter::which("strace")?;
    Some(stdout.with_file_name(format!("exec-{n}.trace")))
}

/// `strace` and its options, writing to `trace`, to be followed by the client's argv.
fn strace_args(trace: &Path) -> Vec<String> {
    [
        "strace",
        "-f",
        "-qq",
        "-yy",
        // Only the traced calls stop the client (a filter in the kernel): without it every
        // syscall of every process would.
        "--seccomp-bpf",
        "-e",
        audit::TRACED,
        "-e",
        "signal=none",
        "-s",
        "65535",
        "-o",
        &trace.display().to_string(),
        "--",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// How many traces exist already (the renew commands follow the issue commands).
fn traces_before(stdout: &Path) -> usize {
    (0..)
        .take_while(|n| stdout.with_file_name(format!("exec-{n}.trace")).exists())
        .count()
}

/// Runs `commands` in order until one fails; the whole sequence has `deadline`. With a
/// `view`, each runs in the sandbox.
#[allow(clippy::too_many_arguments)]
async fn run_commands(
    adapter: &Adapter,
    commands: &[Vec<String>],
    values: &Values,
    stdout: &Path,
    stderr: &Path,
    deadline: Instant,
    watch: &scan::CmdlineWatch,
    view: Option<&View>,
) -> Ran {
    let mut ran = Ran {
        exits: Vec::new(),
        hung: false,
        error: None,
    };
    for template in commands {
        let mut argv: Vec<String> = template.iter().map(|a| values.fill(a)).collect();
        // Every exec, connection and file access of the client's process tree, for the
        // command-line check and the audit (the /proc poll alone can miss a process living a
        // few milliseconds). Sandboxed, strace runs inside the sandbox's PID namespace, so
        // the pids it reports are the namespace's own and it traces the client, not bwrap.
        let trace = trace_path(stdout, traces_before(stdout));
        let strace = trace.as_deref().map(strace_args).unwrap_or_default();
        if let Some(view) = view {
            // The client's own install and the files its command names, read-only.
            let mut view = view.clone();
            for p in sandbox::named_paths(&argv, &values.workdir) {
                if !view.read_only.contains(&p) {
                    view.read_only.push(p);
                }
            }
            if let Some(program) = crate::adapter::which(&argv[0])
                .filter(|_| !argv[0].contains('/'))
                .and_then(|p| sandbox::install_of(&p))
                && !view.read_only.contains(&program)
            {
                view.read_only.push(program);
            }
            if let Some(trace) = &trace {
                // strace writes it from inside: the one file outside the work dir bound
                // writable (created first, so that there is something to bind).
                if let Err(e) = std::fs::File::create(trace) {
                    ran.error = Some(format!("cannot create {}: {e}", trace.display()));
                    return ran;
                }
            }
            let mut wrapped = view.bwrap_args(trace.as_deref());
            wrapped.extend(strace);
            wrapped.append(&mut argv);
            argv = wrapped;
        } else {
            if adapter.trust == Trust::MountNamespace {
                let mut wrapped = vec![
                    "unshare".to_owned(),
                    "-m".to_owned(),
                    "sh".to_owned(),
                    "-c".to_owned(),
                    format!(r#"{} && exec "$@""#, scan::MOUNT_WRAPPER),
                    values.ca_bundle.display().to_string(),
                ];
                wrapped.append(&mut argv);
                argv = wrapped;
            }
            let mut wrapped = strace;
            wrapped.append(&mut argv);
            argv = wrapped;
        }
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        let (out, err) = match (open(stdout), open(stderr)) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                ran.error = Some(format!("cannot open output files: {e}"));
                return ran;
            }
        };
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&values.workdir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        for v in SCRUBBED_ENV {
            cmd.env_remove(v);
        }
        cmd.env("HOME", values.workdir.join("home"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        for (k, v) in &adapter.env {
            cmd.env(k, values.fill(v));
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                ran.error = Some(format!("cannot run {}: {e}", argv[0]));
                return ran;
            }
        };
        if let Some(pid) = child.id() {
            watch.add_group(pid);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, child.wait()).await {
            Ok(Ok(status)) => {
                ran.exits.push(status.code());
                if !status.success() {
                    return ran;
                }
            }
            Ok(Err(e)) => {
                ran.error = Some(format!("waiting for {}: {e}", argv[0]));
                return ran;
            }
            Err(_) => {
                // The whole process group: the client and whatever it started.
                if let Some(pid) = child.id() {
                    let _ = tokio::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status()
                        .await;
                }
                let _ = child.kill().await;
                ran.exits.push(None);
                ran.hung = true;
                return ran;
            }
        }
    }
    ran
}

/// Finds the certificate: the adapter's file if it exists, else any PEM file under the work
/// dir whose first certificate the mock issued (the longest such file: the full chain).
fn locate_cert(declared: Option<PathBuf>, workdir: &Path, issued: &[String]) -> Option<PathBuf> {
    if let Some(p) = declared
        && p.exists()
    {
        return Some(p);
    }
    let mut best: Option<(usize, PathBuf)> = None;
    let mut stack = vec![workdir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && meta.len() < 1024 * 1024
                && let Ok(certs) = verify::read_pem_certs(&path)
                && verify::serial_of(certs[0].as_ref()).is_some_and(|s| issued.contains(&s))
                && best.as_ref().is_none_or(|(n, _)| certs.len() > *n)
            {
                best = Some((certs.len(), path));
            }
        }
    }
    best.map(|(_, p)| p)
}

fn issued_serials(server: &MockServer) -> Vec<String> {
    server
        .state()
        .store
        .certs()
        .iter()
        .map(|c| verify::normalise_serial(&c.serial))
        .collect()
}

/// The most telling line of a client's output: the last one mentioning an error, else the
/// last one, skipping boilerplate (where the log is, where to ask for help, HTML).
/// The CA's reason for the refusal that ended the run (the last problem document other than a
/// badNonce), and whether the client's output or logs show it: its detail's first words or its
/// type's name. `None`: the CA refused nothing (an untrusted server, a local refusal).
fn reason_shown(
    server: &MockServer,
    streams: &[&Path],
    logs: &[PathBuf],
) -> Option<(String, bool)> {
    let exchanges = server.state().store.transcripts.all();
    let problem = exchanges
        .iter()
        .rev()
        .filter_map(|e| e.problem.as_ref())
        .find(|p| !p.kind.ends_with(":badNonce"))?;
    let detail = problem.detail.clone().unwrap_or_default();
    let words: String = detail.chars().take(30).collect();
    let name = problem
        .kind
        .rsplit(':')
        .next()
        .unwrap_or(&problem.kind)
        .to_owned();
    let mut texts: Vec<String> = streams
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    for log in logs {
        let files: Vec<PathBuf> = if log.is_dir() {
            scan::regular_files(log)
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        } else {
            vec![log.clone()]
        };
        texts.extend(
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap_or_default()),
        );
    }
    let shown = texts
        .iter()
        .any(|t| (!words.is_empty() && t.contains(words.as_str())) || t.contains(name.as_str()));
    Some((if detail.is_empty() { name } else { detail }, shown))
}

/// More order polls than this in a WaitOrRefuse scenario is a tight loop.
const MAX_PATIENT_POLLS: usize = 5;

/// POST-as-GETs of an order (not its finalize) the mock recorded.
fn order_polls(server: &MockServer) -> usize {
    server
        .state()
        .store
        .transcripts
        .all()
        .iter()
        .filter(|e| {
            let path = e.path();
            e.jws.as_ref().is_some_and(|j| j.post_as_get)
                && path.contains("/order/")
                && !path.ends_with("/finalize")
        })
        .count()
}

/// Line starts that mark a crash in a client's output, whatever the client: a Python
/// traceback or one of Python's (and JavaScript's) programming-error exceptions, a Go panic, a
/// Rust panic, a fatal signal. An I/O error the client did not handle (an SSLError, a
/// ClientError) is not among them: those are failures, not bugs.
const CRASH_MARKS: &[&str] = &[
    "Traceback (most recent call last):",
    "AttributeError: ",
    "KeyError: ",
    "TypeError: ",
    "NameError: ",
    "IndexError: ",
    "UnboundLocalError: ",
    "panic: ",
    "thread 'main' panicked at ",
    "Segmentation fault",
];

/// The line that shows the client crashed, if it did: a signal, a runtime's crash trace, or
/// one of the adapter's own crash messages.
fn crash_trace(
    adapter: &Adapter,
    stdout: &Path,
    stderr: &Path,
    last: Option<i32>,
    exit_ok: bool,
) -> Option<String> {
    if exit_ok {
        return None;
    }
    if last.is_none() {
        return Some(format!("killed by a signal: {}", tail(stderr)));
    }
    for path in [stderr, stdout] {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let marks = CRASH_MARKS
            .iter()
            .copied()
            .chain(adapter.crash_patterns.iter().map(String::as_str));
        for mark in marks {
            if let Some(line) = text.lines().find(|l| l.trim_start().starts_with(mark)) {
                let line: String = line.trim().chars().take(200).collect();
                return Some(format!(
                    "exit {}, crashed: {line} ({})",
                    last.unwrap_or(-1),
                    tail(path)
                ));
            }
        }
    }
    None
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let boring = |l: &str| {
        l.is_empty()
            || l.starts_with('<')
            || l.contains("Ask for help")
            || l.contains("See the logfile")
            || l.contains("Saving debug log")
    };
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !boring(l)).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or(lines.last())
        .map(|l| l.chars().take(200).collect())
        .unwrap_or_default()
}

/// Runs `adapter` through `scenario`.
pub async fn run_one(
    adapter: &Adapter,
    version: Option<String>,
    scenario: &Scenario,
    config: &RunConfig,
    prepared: &Prepared,
) -> ScenarioResult {
    let started = Instant::now();
    let dir = config.base_dir.join(&adapter.name).join(scenario.id);
    let mut result = ScenarioResult::pending(&adapter.name, version, scenario, &dir, config.seed);
    result.secret_mode = adapter.secret_mode.clone();
    result.secret_mode_how = adapter.secret_mode_how();
    result.secret_modes = adapter
        .secret_modes()
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    match run_inner(adapter, scenario, config, prepared, &dir, &mut result).await {
        Ok(()) => {}
        Err(e) => {
            result.outcome.kind = OutcomeKind::Error;
            result.outcome.ok = false;
            result.outcome.detail = e.to_string();
        }
    }
    result.settle();
    result.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    result
}

async fn run_inner(
    adapter: &Adapter,
    scenario: &Scenario,
    config: &RunConfig,
    prepared: &Prepared,
    dir: &Path,
    result: &mut ScenarioResult,
) -> Result<(), Error> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let workdir = dir.join("workdir");
    std::fs::create_dir_all(workdir.join("home")).map_err(|e| Error::io(&workdir, e))?;
    let http_port = free_port();
    let mock = start_mock(
        scenario,
        dir,
        &prepared.ca_dir,
        config.seed,
        http_port,
        &Reach::local(),
    )
    .await?;
    let ready = mock.server.ready().clone();
    let directory = mock
        .server
        .directory_url(scenario.profile)
        .unwrap_or(&ready.directory)
        .to_owned();
    let values = Values {
        directory,
        eab_kid: mock.kid.clone(),
        eab_hmac_key: mock.hmac.clone(),
        domain: scenario.domain.into(),
        ca_bundle: if scenario.untrusted_tls {
            prepared.untrusted_bundle.clone()
        } else {
            ready.ca_bundle.clone()
        },
        workdir: workdir.clone(),
        http_port,
        key_type: match scenario.key {
            KeyKind::Rsa => adapter.key_types.rsa.clone(),
            KeyKind::Ecdsa => adapter.key_types.ecdsa.clone(),
        },
        harness: config.harness.clone(),
        preferred_chain: scenario.preferred_chain.unwrap_or_default().to_owned(),
    };
    for d in &adapter.dirs {
        let d = PathBuf::from(values.fill(d));
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let mut inputs = Vec::new();
    for f in &adapter.files {
        use std::os::unix::fs::PermissionsExt as _;
        let path = PathBuf::from(values.fill(&f.path));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, f.text(&values)).map_err(|e| Error::io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| Error::io(&path, e))?;
        inputs.push(path);
    }
    // A client that answers http-01 with files gets a web server for them.
    let _webroot = match &adapter.webroot {
        Some(root) => Some(
            crate::webroot::Webroot::start(PathBuf::from(values.fill(root)), http_port)
                .await
                .map_err(|e| Error::Setup(format!("webroot server on port {http_port}: {e}")))?,
        ),
        None => None,
    };
    let stdout = dir.join("stdout.log");
    let stderr = dir.join("stderr.log");
    let needles = Needles::new(&mock.hmac);
    let watch = scan::CmdlineWatch::start(needles.clone());
    let deadline = Instant::now() + Duration::from_secs(scenario.time_limit);

    let mut issue = if scenario.eab == EabState::Missing {
        adapter.issue_without_eab.clone()
    } else {
        adapter.issue.clone()
    };
    if scenario.preferred_chain.is_some()
        && let Some(last) = issue.last_mut()
    {
        last.extend(adapter.preferred_chain_args.iter().cloned());
    }
    let issue = &issue;
    // Sandboxed, the scenario's own resolver address records every lookup.
    let dns = match config.sandbox {
        true => DnsWatch::start().await,
        false => None,
    };
    let view = if config.sandbox {
        Some(sandbox_view(adapter, dir, &values, config, dns.as_ref())?)
    } else {
        None
    };
    let view = view.as_ref();
    let mut ran = run_commands(
        adapter, issue, &values, &stdout, &stderr, deadline, &watch, view,
    )
    .await;
    let mut rerun_note = String::new();
    let failed = |r: &Ran| r.error.is_none() && !r.hung && r.exits.iter().any(|c| *c != Some(0));
    if scenario.rerun && failed(&ran) {
        // A scheduled retry: the same commands again; the outcome is the second run's.
        rerun_note = format!(
            "the first run failed (exit {}: {}); rerun: ",
            ran.exits
                .last()
                .copied()
                .flatten()
                .map_or("signal".into(), |c| c.to_string()),
            tail(&stderr)
        );
        ran = run_commands(
            adapter, issue, &values, &stdout, &stderr, deadline, &watch, view,
        )
        .await;
    }
    let issued_ok = ran.error.is_none() && !ran.hung && ran.exits.iter().all(|c| *c == Some(0));
    let mut first_serial = None;
    let mut renew_note = String::new();
    if scenario.renew && issued_ok {
        let serials = issued_serials(&mock.server);
        let cert = adapter.cert.as_ref().map(|c| PathBuf::from(values.fill(c)));
        first_serial = locate_cert(cert, &workdir, &serials)
            .and_then(|p| verify::read_pem_certs(&p).ok())
            .and_then(|c| verify::serial_of(c[0].as_ref()));
        if adapter.renew.is_empty() {
            renew_note = "the adapter has no renew commands".into();
        } else {
            let more = run_commands(
                adapter,
                &adapter.renew,
                &values,
                &stdout,
                &stderr,
                deadline,
                &watch,
                view,
            )
            .await;
            ran.exits.extend(more.exits);
            ran.hung |= more.hung;
            ran.error = ran.error.or(more.error);
        }
    }
    let mut secrets = watch.finish();

    // The outcome.
    let serials = issued_serials(&mock.server);
    let exit_ok = ran.exits.iter().all(|c| *c == Some(0));
    let last = ran.exits.last().copied().flatten();
    let outcome = &mut result.outcome;
    outcome.exits = ran.exits.clone();
    if let Some(e) = ran.error {
        outcome.kind = OutcomeKind::Error;
        outcome.detail = e;
    } else if ran.hung {
        outcome.kind = OutcomeKind::Hung;
        outcome.detail = format!(
            "still running after {} s: killed (last output: {})",
            scenario.time_limit,
            tail(&stderr)
        );
    } else {
        let expect = match scenario.expect {
            Expect::IssueOrRefuse | Expect::WaitOrRefuse if exit_ok => Expect::Issue,
            Expect::IssueOrRefuse | Expect::WaitOrRefuse => Expect::Refuse,
            e => e,
        };
        let crash = crash_trace(adapter, &stdout, &stderr, last, exit_ok);
        match expect {
            Expect::IssueOrRefuse | Expect::WaitOrRefuse => {}
            Expect::Issue => {
                if let Some(trace) = crash.as_ref().filter(|_| !exit_ok) {
                    outcome.kind = OutcomeKind::Crashed;
                    outcome.detail = trace.clone();
                } else if !exit_ok {
                    outcome.kind = OutcomeKind::Failed;
                    outcome.detail = format!(
                        "exit {}: {}",
                        last.map_or("signal".into(), |c| c.to_string()),
                        tail(&stderr)
                    );
                } else if !renew_note.is_empty() {
                    outcome.kind = OutcomeKind::Error;
                    outcome.detail = renew_note;
                } else {
                    let declared = adapter.cert.as_ref().map(|c| PathBuf::from(values.fill(c)));
                    match locate_cert(declared.clone(), &workdir, &serials) {
                        None => {
                            outcome.kind = OutcomeKind::NoCertificate;
                            outcome.detail = format!(
                                "exit 0, but no certificate the mock issued under the work dir{}",
                                declared
                                    .map(|d| format!(
                                        " (expected at {})",
                                        scan::display_path(&workdir, &d)
                                    ))
                                    .unwrap_or_default()
                            );
                        }
                        Some(path) => match verify::check_certificate(
                            &path,
                            &ready.roots,
                            &[scenario.domain],
                            scenario.key,
                        ) {
                            Err(e) => {
                                outcome.kind = OutcomeKind::BadCertificate;
                                outcome.detail = e;
                            }
                            Ok(info) => {
                                let shown = scan::display_path(&workdir, &info.path);
                                if scenario.renew {
                                    if first_serial.as_deref() == Some(info.serial.as_str())
                                        || serials.len() < 2
                                    {
                                        outcome.kind = OutcomeKind::NoCertificate;
                                        outcome.detail = format!(
                                            "renew exited 0 but {shown} still holds the first certificate ({} issued in all)",
                                            serials.len()
                                        );
                                    } else {
                                        outcome.kind = OutcomeKind::Issued;
                                        outcome.detail = format!(
                                            "renewed: {shown} verifies to the roots, serial {} replaced {}",
                                            info.serial,
                                            first_serial.as_deref().unwrap_or("?")
                                        );
                                    }
                                } else if let Some(want) =
                                    scenario.preferred_chain.filter(|w| *w != info.top_issuer)
                                {
                                    outcome.kind = OutcomeKind::BadCertificate;
                                    outcome.detail = format!(
                                        "{shown} verifies, but its chain ends at {:?}, not the preferred {want:?}",
                                        info.top_issuer
                                    );
                                } else {
                                    outcome.kind = OutcomeKind::Issued;
                                    outcome.detail = format!(
                                        "{shown} verifies to the roots, SAN {:?}{}",
                                        info.names,
                                        scenario
                                            .preferred_chain
                                            .map(|p| format!(", chain ending at {p:?} as asked"))
                                            .unwrap_or_default()
                                    );
                                }
                            }
                        },
                    }
                }
            }
            Expect::Refuse => {
                let recorded = mock.server.state().store.transcripts.count();
                if exit_ok {
                    outcome.kind = OutcomeKind::Accepted;
                    outcome.detail = "exit 0 where it must fail".into();
                } else if !serials.is_empty() && !scenario.issues_anyway {
                    outcome.kind = OutcomeKind::Accepted;
                    outcome.detail = format!(
                        "exit {} but the mock issued {} certificate(s)",
                        last.map_or("signal".into(), |c| c.to_string()),
                        serials.len()
                    );
                } else if !scenario.untrusted_tls && recorded == 0 {
                    outcome.kind = OutcomeKind::Failed;
                    outcome.detail = format!(
                        "exit {} before any request reached the CA: {}",
                        last.map_or("signal".into(), |c| c.to_string()),
                        tail(&stderr)
                    );
                } else if scenario.untrusted_tls && recorded > 0 {
                    outcome.kind = OutcomeKind::Accepted;
                    outcome.detail = format!(
                        "exit non-zero, but {recorded} request(s) reached the untrusted server"
                    );
                } else if let Some(trace) = crash {
                    outcome.kind = OutcomeKind::Crashed;
                    outcome.detail = trace;
                } else {
                    outcome.kind = OutcomeKind::Refused;
                    outcome.detail = format!(
                        "exit {}: {}",
                        last.map_or("signal".into(), |c| c.to_string()),
                        tail(&stderr)
                    );
                    let logs: Vec<PathBuf> = adapter
                        .logs
                        .iter()
                        .map(|l| PathBuf::from(values.fill(l)))
                        .collect();
                    if let Some((reason, shown)) =
                        reason_shown(&mock.server, &[&stdout, &stderr], &logs)
                    {
                        result.reason_shown = Some(shown);
                        outcome.detail.push_str(&if shown {
                            "; it shows the CA's reason".to_owned()
                        } else {
                            format!("; it does not show the CA's reason ({reason:?})")
                        });
                    }
                }
            }
        }
    }
    if scenario.expect == Expect::WaitOrRefuse {
        // A patient wait or a clean exit, but not a tight loop: count the order polls.
        let polls = order_polls(&mock.server);
        if polls > MAX_PATIENT_POLLS {
            outcome.kind = OutcomeKind::Failed;
            outcome.detail = format!(
                "polled the processing order {polls} times in {} s although it asked for a wait of a day",
                scenario.time_limit
            );
        } else if outcome.kind == OutcomeKind::Hung {
            outcome.detail = format!(
                "still waiting at the {} s limit, {polls} order poll(s): a patient wait",
                scenario.time_limit
            );
        }
    }
    if !rerun_note.is_empty() {
        outcome.detail = format!("{rerun_note}{}", outcome.detail);
    }
    outcome.ok = scenario.expect.accepts(outcome.kind);

    result.grade = save_and_grade(
        &mock.server,
        dir,
        &format!("{}/{}", adapter.name, scenario.id),
    )?
    .map(|g| g.waive(scenario.waived_rules));
    if let Some(reason) = &adapter.unusable {
        result.unusable = Some(reason.clone());
        confirm_unusable(
            &mut result.outcome,
            &mock.server.state().store.transcripts.all(),
        );
    }

    // The scan.
    for (place, path) in [(Place::Stdout, &stdout), (Place::Stderr, &stderr)] {
        secrets.extend(scan::scan_stream(&needles, place, path));
    }
    for n in 0.. {
        let trace = dir.join(format!("exec-{n}.trace"));
        if !trace.exists() {
            break;
        }
        secrets.extend(scan::scan_exec_trace(&needles, &trace));
    }
    let logs: Vec<PathBuf> = adapter
        .logs
        .iter()
        .map(|l| PathBuf::from(values.fill(l)))
        .collect();
    secrets.extend(scan::scan_tree(&needles, &workdir, &logs, &inputs));

    // What it touched, from the traces; and the secret scan of every file it wrote outside
    // its work dir (the sandbox's private /tmp; unconfined, wherever the trace says).
    let scope = audit::Scope {
        workdir: workdir.clone(),
        mock: authority(&values.directory),
        inputs: [
            Some(values.ca_bundle.clone()),
            config.harness.clone(),
            Some(dir.join("sandbox").join("resolv.conf")),
            Some(dir.join("sandbox").join("hosts")),
        ]
        .into_iter()
        .flatten()
        .chain(own_install(adapter, &values))
        .collect(),
        expected: adapter.expected_egress.clone(),
    };
    let mut touched = Touched {
        sandboxed: view.is_some(),
        ..Touched::default()
    };
    for n in 0.. {
        let trace = dir.join(format!("exec-{n}.trace"));
        if !trace.exists() {
            break;
        }
        touched.merge(audit::read_trace(&trace, &scope));
    }
    if let Some(dns) = &dns {
        touched.add_lookups(&dns.names(), &dns.authority(), &scope);
    }
    let written: Vec<(String, PathBuf)> = match view {
        Some(v) => scan::regular_files(&v.tmp)
            .into_iter()
            .map(|(p, _)| {
                let inside = Path::new("/tmp").join(p.strip_prefix(&v.tmp).unwrap_or(&p));
                (format!("{} (the sandbox's /tmp)", inside.display()), p)
            })
            .collect(),
        None => touched
            .files
            .iter()
            .filter(|f| f.access == audit::Access::Write && f.result == "done")
            .map(|f| (f.path.clone(), PathBuf::from(&f.path)))
            .collect(),
    };
    secrets.extend(scan::scan_outside(&needles, &written));
    result.touched = touched;
    let mut secrets = scan::dedup_cmdline(secrets);
    secrets.sort();
    result.secrets = secrets;
    mock.server.shutdown().await;
    Ok(())
}

/// For a client whose adapter says it cannot be used with Sectigo: the outcome becomes
/// [`OutcomeKind::Unusable`], with the CA's refusal from the transcript (the exchange's seq),
/// when it got no certificate; when it did, the adapter's claim is wrong and the outcome says
/// so. Either way the outcome is not ok: the client is not one to use.
pub(crate) fn confirm_unusable(
    outcome: &mut Outcome,
    exchanges: &[acme_proto::transcript::Exchange],
) {
    outcome.ok = false;
    if outcome.kind == OutcomeKind::Issued {
        outcome.detail = format!(
            "its adapter says it cannot be used with Sectigo, but it got a certificate ({}): \
             the adapter is wrong",
            outcome.detail
        );
        return;
    }
    if matches!(outcome.kind, OutcomeKind::Error | OutcomeKind::Hung) {
        return;
    }
    let new_account = exchanges.iter().find(|e| {
        e.method == "POST"
            && e.path().ends_with("/newAccount")
            && e.jws.as_ref().is_some_and(|j| {
                j.payload.get("onlyReturnExisting") != Some(&serde_json::Value::Bool(true))
            })
    });
    let confirmed = match new_account {
        None => format!(
            "it never asked for an account ({} request(s) reached the CA; {})",
            exchanges.len(),
            outcome.detail
        ),
        Some(e) => {
            let eab = e
                .jws
                .as_ref()
                .is_some_and(|j| j.payload.get("externalAccountBinding").is_some());
            let answer = match &e.problem {
                Some(p) => format!(
                    "{} {}{}",
                    e.status,
                    p.kind.trim_start_matches("urn:ietf:params:acme:error:"),
                    p.detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                None => e.status.to_string(),
            };
            format!(
                "its newAccount (seq {}) carried {}; the CA answered {answer}",
                e.seq,
                if eab {
                    "an externalAccountBinding"
                } else {
                    "no externalAccountBinding"
                }
            )
        }
    };
    outcome.kind = OutcomeKind::Unusable;
    outcome.detail = confirmed;
}

/// The sandbox of a scenario: its private /tmp and resolv.conf (naming `dns`, its watcher)
/// under `dir/sandbox`, the CA bundle and the harness binary readable.
fn sandbox_view(
    adapter: &Adapter,
    dir: &Path,
    values: &Values,
    config: &RunConfig,
    dns: Option<&DnsWatch>,
) -> Result<View, Error> {
    let root = dir.join("sandbox");
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let resolv = root.join("resolv.conf");
    let resolver = dns.map_or(std::net::IpAddr::from([127, 0, 0, 1]), DnsWatch::ip);
    std::fs::write(&resolv, sandbox::resolv_conf(resolver)).map_err(|e| Error::io(&resolv, e))?;
    let hosts = root.join("hosts");
    std::fs::write(&hosts, sandbox::hosts_file()).map_err(|e| Error::io(&hosts, e))?;
    let mut read_only = vec![values.ca_bundle.clone()];
    if let Some(h) = &config.harness {
        read_only.push(h.clone());
    }
    read_only.extend(
        adapter
            .sandbox_read_only
            .iter()
            .map(|p| PathBuf::from(values.fill(p))),
    );
    Ok(View {
        workdir: values.workdir.clone(),
        tmp,
        resolv,
        hosts,
        read_only,
        system_bundle: (adapter.trust == Trust::MountNamespace).then(|| values.ca_bundle.clone()),
    })
}

/// The client's own install and the files its commands name (read-only in the sandbox):
/// reading them is expected.
fn own_install(adapter: &Adapter, values: &Values) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = adapter
        .sandbox_read_only
        .iter()
        .map(|p| PathBuf::from(values.fill(p)))
        .collect();
    for template in adapter
        .issue
        .iter()
        .chain(&adapter.renew)
        .chain(&adapter.issue_without_eab)
    {
        let argv: Vec<String> = template.iter().map(|a| values.fill(a)).collect();
        out.extend(sandbox::named_paths(&argv, &values.workdir));
        if let Some(first) = argv.first()
            && !first.contains('/')
            && let Some(install) =
                crate::adapter::which(first).and_then(|p| sandbox::install_of(&p))
        {
            out.push(install);
        }
    }
    out
}

/// `host:port` of a URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The grade of everything `server` recorded (it served one client only), after saving it
/// as `dir/transcript.jsonl`.
pub(crate) fn save_and_grade(
    server: &MockServer,
    dir: &Path,
    label: &str,
) -> Result<Option<Grade>, Error> {
    let exchanges = server.state().store.transcripts.all();
    let transcript = dir.join("transcript.jsonl");
    let text = acme_proto::transcript::to_jsonl(&exchanges)
        .map_err(|e| Error::Setup(format!("cannot serialize the transcript: {e}")))?;
    std::fs::write(&transcript, text).map_err(|e| Error::io(&transcript, e))?;
    Ok(grade_transcript(label, exchanges))
}

/// Runs every (adapter, scenario) pair, `config.jobs` at a time, each with its own mock and
/// ports; `progress` sees each result as it finishes. Results come back in input order.
pub async fn run_all(
    cells: Vec<(Adapter, Option<String>, Scenario)>,
    config: &RunConfig,
    progress: Arc<dyn Fn(&ScenarioResult) + Send + Sync>,
) -> Result<Vec<ScenarioResult>, Error> {
    if config.sandbox {
        if let Some(why) = sandbox::unavailable() {
            return Err(Error::Setup(format!("sandbox: {why}")));
        }
        if !sandbox::loopback_only() {
            return Err(Error::Setup(
                "sandbox: this process is not in a private network namespace with loopback \
                 only (`acme-harness vet` and `matrix` enter one themselves); give \
                 --no-sandbox to run clients unconfined"
                    .into(),
            ));
        }
    }
    std::fs::create_dir_all(&config.base_dir).map_err(|e| Error::io(&config.base_dir, e))?;
    let prepared = prepare(&config.base_dir).await?;
    let limit = Arc::new(tokio::sync::Semaphore::new(config.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (adapter, version, scenario)) in cells.into_iter().enumerate() {
        let (limit, config, prepared, progress) = (
            limit.clone(),
            config.clone(),
            prepared.clone(),
            progress.clone(),
        );
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let r = run_one(&adapter, version, &scenario, &config, &prepared).await;
            progress(&r);
            (i, r)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = set.join_next().await {
        out.push(joined.map_err(|e| Error::Setup(format!("a scenario task failed: {e}")))?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_crash_is_told_from_a_clean_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let adapter = Adapter::custom(vec!["x".into()]);
        std::fs::write(&out, "").unwrap();
        // certbot 2.1 on any problem document: its own "unexpected error" and a Python bug.
        std::fs::write(
            &err,
            "An unexpected error occurred:\nAttributeError: can't set attribute\nAsk for help\n",
        )
        .unwrap();
        let crash = crash_trace(&adapter, &out, &err, Some(1), false).unwrap();
        assert!(
            crash.contains("AttributeError: can't set attribute"),
            "{crash}"
        );
        assert!(
            crash_trace(&adapter, &out, &err, Some(0), true).is_none(),
            "exit 0"
        );
        // An error it did not handle but that is no bug: a failure, not a crash.
        std::fs::write(
            &err,
            "An unexpected error occurred:\nacme.errors.ClientError: <Response [429]>\n",
        )
        .unwrap();
        assert!(crash_trace(&adapter, &out, &err, Some(1), false).is_none());
        // A mark inside a message is not a crash; a Go panic and a signal are.
        std::fs::write(&err, "error: the CA said: TypeError: none\n").unwrap();
        assert!(crash_trace(&adapter, &out, &err, Some(1), false).is_none());
        std::fs::write(&err, "panic: runtime error: index out of range\n").unwrap();
        assert!(crash_trace(&adapter, &out, &err, Some(2), false).is_some());
        assert!(
            crash_trace(&adapter, &out, &err, None, false)
                .unwrap()
                .starts_with("killed by a signal")
        );
        // An adapter's own crash message.
        let mut own = adapter.clone();
        own.crash_patterns = vec!["FATAL:".into()];
        std::fs::write(&err, "FATAL: internal state\n").unwrap();
        assert!(crash_trace(&own, &out, &err, Some(1), false).is_some());
        assert!(crash_trace(&adapter, &out, &err, Some(1), false).is_none());
    }

    use acme_proto::transcript::Exchange;

    fn exchange(
        seq: u64,
        path: &str,
        payload: serde_json::Value,
        problem: Option<(&str, &str)>,
    ) -> Exchange {
        serde_json::from_value(serde_json::json!({
            "v": 1, "seq": seq, "time": "2026-11-29T23:00:00Z", "elapsed_ms": seq * 10,
            "method": if payload.is_null() { "GET" } else { "POST" },
            "url": format!("https://127.0.0.1:14000{path}"),
            "jws": if payload.is_null() { serde_json::Value::Null } else {
                serde_json::json!({"protected": {}, "payload": payload, "post_as_get": false})
            },
            "status": if problem.is_some() { 400 } else { 200 },
            "problem": problem.map(|(t, d)| serde_json::json!({"type": t, "detail": d})),
        }))
        .unwrap()
    }

    fn refused() -> Outcome {
        Outcome {
            kind: OutcomeKind::Failed,
            ok: false,
            detail: "exit 1: ValueError: Error registering".into(),
            exits: vec![Some(0), Some(0), Some(1)],
        }
    }

    #[test]
    fn an_unusable_client_is_confirmed_from_its_new_account() {
        let exchanges = vec![
            exchange(1, "/v2/InCommonRSAOV", serde_json::Value::Null, None),
            exchange(
                2,
                "/v2/InCommonRSAOV/newAccount",
                serde_json::json!({"termsOfServiceAgreed": true, "contact": ["mailto:a@b"]}),
                Some((
                    "urn:ietf:params:acme:error:externalAccountRequired",
                    "External Account Binding is required",
                )),
            ),
        ];
        let mut o = refused();
        confirm_unusable(&mut o, &exchanges);
        assert_eq!(o.kind, OutcomeKind::Unusable);
        assert!(!o.ok);
        assert_eq!(
            o.detail,
            "its newAccount (seq 2) carried no externalAccountBinding; the CA answered 400 \
             externalAccountRequired (External Account Binding is required)"
        );
        // Nothing reached the CA's newAccount: said so, with the client's own words.
        let mut o = refused();
        confirm_unusable(&mut o, &exchanges[..1]);
        assert_eq!(o.kind, OutcomeKind::Unusable);
        assert!(
            o.detail
                .starts_with("it never asked for an account (1 request(s)"),
            "{}",
            o.detail
        );
        assert!(o.detail.contains("Error registering"), "{}", o.detail);
    }

    #[test]
    fn an_unusable_client_that_got_a_certificate_proves_its_adapter_wrong() {
        let mut o = Outcome {
            kind: OutcomeKind::Issued,
            ok: true,
            detail: "workdir/chain.pem verifies to the roots".into(),
            exits: vec![Some(0)],
        };
        confirm_unusable(&mut o, &[]);
        assert_eq!(o.kind, OutcomeKind::Issued);
        assert!(!o.ok);
        assert!(o.detail.contains("the adapter is wrong"), "{}", o.detail);
        // A hang stays a hang: it confirms nothing.
        let mut o = refused();
        o.kind = OutcomeKind::Hung;
        confirm_unusable(&mut o, &[]);
        assert_eq!(o.kind, OutcomeKind::Hung);
    }
}
