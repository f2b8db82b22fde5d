//! The secret-hygiene scan: where did the canary HMAC key end up? Output streams, log files,
//! every file under the client's work dir (with its mode), the command lines any user can read
//! in /proc while the client runs; and private key files readable by everyone.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The start of the mount-namespace wrapper script (see `run`), whose processes carry the
/// client's arguments.
pub const MOUNT_WRAPPER: &str = "mount --bind \"$0\" /etc/ssl/certs/ca-certificates.crt";

/// Files larger than this are read only up to it.
const MAX_READ: u64 = 32 * 1024 * 1024;

/// Where a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// The client's standard output.
    Stdout,
    /// The client's standard error.
    Stderr,
    /// A log file the adapter declares.
    Log,
    /// Any other file under the work dir.
    File,
    /// A process command line (any user can read /proc/PID/cmdline, `ps` shows it).
    CommandLine,
    /// A private key file.
    PrivateKey,
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Fails the scenario.
    Fail,
    /// Reported, acceptable (the key at rest in a 0600 file the client needs).
    Info,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// Fail or info.
    pub level: Level,
    /// What kind of place.
    pub place: Place,
    /// The stream, the file (relative to the work dir as `workdir/...`), or the process.
    pub location: String,
    /// What was found.
    pub detail: String,
}

/// The encodings of the canary key looked for.
#[derive(Clone, Debug)]
pub struct Needles {
    forms: Vec<(&'static str, Vec<u8>)>,
}

impl Needles {
    /// The base64url text given to the client, and what a client could turn it into: standard
    /// base64 (padded or not) and hex of the raw key (as `openssl dgst -macopt hexkey:` wants).
    pub fn new(hmac_b64url: &str) -> Self {
        let mut forms = vec![("base64url", hmac_b64url.as_bytes().to_vec())];
        if let Ok(raw) = acme_proto::b64::decode_lenient(hmac_b64url) {
            let std_b64: String = hmac_b64url
                .trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            if std_b64 != hmac_b64url {
                forms.push(("base64", std_b64.into_bytes()));
            }
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            forms.push(("hex", hex.clone().into_bytes()));
            forms.push(("hex", hex.to_ascii_uppercase().into_bytes()));
        }
        Self { forms }
    }

    /// The encoding found in `haystack`, if any.
    pub fn find(&self, haystack: &[u8]) -> Option<&'static str> {
        self.forms
            .iter()
            .find(|(_, n)| contains(haystack, n))
            .map(|(name, _)| *name)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn read_capped(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_READ).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Scans one captured stream.
pub fn scan_stream(needles: &Needles, place: Place, path: &Path) -> Option<Finding> {
    let bytes = read_capped(path)?;
    needles.find(&bytes).map(|form| Finding {
        level: Level::Fail,
        place,
        location: match place {
            Place::Stdout => "stdout".into(),
            Place::Stderr => "stderr".into(),
            _ => path.display().to_string(),
        },
        detail: format!("the HMAC key ({form}) is printed"),
    })
}

/// `workdir/REL` for a path under `workdir`.
pub fn display_path(workdir: &Path, path: &Path) -> String {
    match path.strip_prefix(workdir) {
        Ok(rel) => format!("workdir/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Scans every regular file under `workdir` (symlinks are not followed). `logs` are the
/// adapter's log files or directories; `inputs` the files the adapter wrote itself.
pub fn scan_tree(
    needles: &Needles,
    workdir: &Path,
    logs: &[PathBuf],
    inputs: &[PathBuf],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (path, meta) in regular_files(workdir) {
        let mode = meta.permissions().mode() & 0o777;
        let reachable = others_can_reach(workdir, &path);
        let exposed = mode & 0o077 != 0 && reachable;
        let shield = if mode & 0o077 != 0 && !reachable {
            ", but a directory above it keeps other users out"
        } else {
            ""
        };
        let Some(bytes) = read_capped(&path) else {
            continue;
        };
        let shown = display_path(workdir, &path);
        if let Some(form) = needles.find(&bytes) {
            let is_log = logs.iter().any(|l| path.starts_with(l));
            let is_input = inputs.iter().any(|i| i == &path);
            let (level, place, detail) = if is_log {
                (
                    Level::Fail,
                    Place::Log,
                    format!("the HMAC key ({form}) is in a log file (mode {mode:04o}{shield})"),
                )
            } else if exposed {
                (
                    Level::Fail,
                    Place::File,
                    format!(
                        "the HMAC key ({form}) is in a file other users can read (mode {mode:04o}, want 0600)"
                    ),
                )
            } else if is_input {
                (
                    Level::Info,
                    Place::File,
                    format!(
                        "the HMAC key ({form}) is in the config file the adapter wrote for it (mode {mode:04o}{shield})"
                    ),
                )
            } else {
                (
                    Level::Info,
                    Place::File,
                    format!("the client stored the HMAC key ({form}), mode {mode:04o}{shield}"),
                )
            };
            out.push(Finding {
                level,
                place,
                location: shown.clone(),
                detail,
            });
        }
        if contains(&bytes, b"PRIVATE KEY-----") && mode & 0o004 != 0 {
            out.push(if reachable {
                Finding {
                    level: Level::Fail,
                    place: Place::PrivateKey,
                    location: shown,
                    detail: format!("a private key every user can read (mode {mode:04o})"),
                }
            } else {
                Finding {
                    level: Level::Info,
                    place: Place::PrivateKey,
                    location: shown,
                    detail: format!("a private key with mode {mode:04o}{shield}"),
                }
            });
        }
    }
    out
}

/// Scans files the client wrote outside its work dir (`shown`, `path`): the key there is a
/// failure when other users could read the file, else reported.
pub fn scan_outside(needles: &Needles, files: &[(String, PathBuf)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (shown, path) in files {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Some(bytes) = read_capped(path) else {
            continue;
        };
        let Some(form) = needles.find(&bytes) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        out.push(if mode & 0o077 != 0 {
            Finding {
                level: Level::Fail,
                place: Place::File,
                location: shown.clone(),
                detail: format!(
                    "the HMAC key ({form}) is in a file outside its work dir that other users \
                     can read (mode {mode:04o})"
                ),
            }
        } else {
            Finding {
                level: Level::Info,
                place: Place::File,
                location: shown.clone(),
                detail: format!(
                    "the client stored the HMAC key ({form}) outside its work dir, mode {mode:04o}"
                ),
            }
        });
    }
    out
}

/// Every regular file under `root`, depth first in name order, with its metadata; symlinks
/// are not followed (a client's link to /etc is not the client's file).
pub(crate) fn regular_files(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path, meta));
            }
        }
    }
    out
}

/// Whether other users can get to `path`: every directory between the work dir (made by the
/// harness, so not counted) and the file lets them through (`o+x`).
fn others_can_reach(workdir: &Path, path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(workdir) && *d != workdir)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Polls /proc while the client runs and records processes of the client's process groups
/// whose command line holds the key. It samples (every 2 ms): a process that lives shorter
/// than that can be missed.
#[derive(Debug)]
pub struct CmdlineWatch {
    stop: Arc<AtomicBool>,
    groups: Arc<Mutex<Vec<u32>>>,
    found: Arc<Mutex<Vec<Finding>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CmdlineWatch {
    /// Starts polling.
    pub fn start(needles: Needles) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let found = Arc::new(Mutex::new(Vec::new()));
        let groups = Arc::new(Mutex::new(Vec::new()));
        let (s, f, g) = (stop.clone(), found.clone(), groups.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut cache = HashMap::new();
            let mut known_groups = 0;
            loop {
                let last = s.load(Ordering::Acquire);
                let groups = g.lock().map(|g| g.clone()).unwrap_or_default();
                if groups.len() != known_groups {
                    // A process seen before its group was registered was judged too early.
                    cache.clear();
                    known_groups = groups.len();
                }
                poll_proc(&needles, &groups, &mut cache, &mut seen, &f);
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            stop,
            groups,
            found,
            thread: Some(thread),
        }
    }

    /// Watches the process group `pgid` (a client command started with its own group).
    pub fn add_group(&self, pgid: u32) {
        if let Ok(mut g) = self.groups.lock() {
            g.push(pgid);
        }
    }

    /// Stops polling (after one last look) and returns the findings.
    pub fn finish(mut self) -> Vec<Finding> {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.found.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

impl Drop for CmdlineWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The harness's own wrappers, which carry the client's arguments: the `strace -e
/// trace=execve,...` that records it, and the `bwrap` that sandboxes it.
fn is_exec_tracer(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|b| *b == 0);
    let first = args.next().unwrap_or_default();
    let named = |n: &[u8]| first == n || first.ends_with(&[b"/", n].concat());
    (named(b"strace") && contains(cmdline, b"\0trace=execve"))
        || (named(b"bwrap")
            && contains(
                cmdline,
                format!("\0--hostname\0{}\0", crate::sandbox::HOSTNAME).as_bytes(),
            ))
}

/// The process group of `pid`, from /proc/PID/stat (field 5, after the parenthesised name).
fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
}

fn poll_proc(
    needles: &Needles,
    groups: &[u32],
    cache: &mut HashMap<u32, bool>,
    seen: &mut BTreeSet<(u32, String)>,
    found: &Mutex<Vec<Finding>>,
) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let mut alive = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        alive.push(pid);
        let ours = *cache
            .entry(pid)
            .or_insert_with(|| pgid_of(pid).is_some_and(|g| groups.contains(&g)));
        if !ours {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Some(form) = needles.find(&cmdline) else {
            continue;
        };
        // The harness's own mount-namespace wrapper (unshare, sh -c "mount --bind ...")
        // passes the client's arguments through; the client's own process is reported.
        if contains(&cmdline, MOUNT_WRAPPER.as_bytes()) || is_exec_tracer(&cmdline) {
            continue;
        }
        let program = program_name(&cmdline);
        if seen.insert((pid, program.clone()))
            && let Ok(mut f) = found.lock()
        {
            f.push(Finding {
                level: Level::Fail,
                place: Place::CommandLine,
                location: format!("command line of {program}"),
                detail: format!(
                    "the HMAC key ({form}) is visible to every user in ps (/proc/{pid}/cmdline)"
                ),
            });
        }
    }
    if cache.len() > alive.len() * 2 {
        cache.retain(|pid, _| alive.contains(pid));
    }
}

/// Scans an `strace -f -e trace=execve` log of the client's process tree: every command line
/// any process of the client ran with, however short-lived (the /proc poll samples).
pub fn scan_exec_trace(needles: &Needles, path: &Path) -> Vec<Finding> {
    let Some(bytes) = read_capped(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(start) = line.find("execve(") else {
            continue;
        };
        let call = &line[start..];
        // The argv array only: the environment is abbreviated by strace, and other users
        // cannot read a process's environment anyway.
        let Some(open) = call.find(", [") else {
            continue;
        };
        let argv = &call[open + 3..];
        let argv = &argv[..argv.find("], ").unwrap_or(argv.len())];
        let Some(form) = needles.find(argv.as_bytes()) else {
            continue;
        };
        if argv.contains(&format!("\"--hostname\", \"{}\"", crate::sandbox::HOSTNAME))
            || argv.contains("mount --bind \\\"$0\\\" /etc/ssl/certs/ca-certificates.crt")
            || argv.contains("/etc/ssl/certs/ca-certificates.crt && exec")
        {
            continue;
        }
        let args: Vec<String> = argv
            .split("\", \"")
            .map(|a| a.trim_matches('"').to_owned())
            .collect();
        let program = program_name(args.join("\0").as_bytes());
        let pid = line.split_whitespace().next().unwrap_or("?");
        out.push(Finding {
            level: Level::Fail,
            place: Place::CommandLine,
            location: format!("command line of {program}"),
            detail: format!(
                "the HMAC key ({form}) is visible to every user in ps while it runs (execve of pid {pid}, traced)"
            ),
        });
    }
    out
}

/// The program a command line runs: the script for an interpreter (`python3 /usr/bin/certbot`
/// is certbot).
pub(crate) fn program_name(cmdline: &[u8]) -> String {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let base = |a: &str| {
        Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| a.to_owned())
    };
    let Some(first) = args.first() else {
        return String::new();
    };
    let first = base(first);
    let interpreter = first.starts_with("python")
        || matches!(
            first.as_str(),
            "sh" | "bash" | "dash" | "perl" | "ruby" | "node"
        );
    match args.get(1) {
        Some(script) if interpreter && !script.starts_with('-') => base(script),
        _ => first,
    }
}

/// One finding per process name (the pids of one program differ from run to run).
pub fn dedup_cmdline(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    findings
        .into_iter()
        .filter(|f| {
            if f.place != Place::CommandLine {
                return true;
            }
            seen.insert(f.location.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn needles_find_every_encoding() {
        let key = acme_proto::b64::encode([0xfbu8; 64]);
        let n = Needles::new(&key);
        assert_eq!(n.find(key.as_bytes()), Some("base64url"));
        let std = key.replace('-', "+").replace('_', "/");
        assert_eq!(n.find(format!("x{std}y").as_bytes()), Some("base64"));
        assert_eq!(n.find("fb".repeat(64).as_bytes()), Some("hex"));
        assert_eq!(n.find(b"nothing here"), None);
    }

    #[test]
    fn tree_scan_names_files_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let key = acme_proto::b64::encode([7u8; 64]);
        let n = Needles::new(&key);
        let open = dir.path().join("open.txt");
        std::fs::write(&open, format!("k={key}")).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let closed = dir.path().join("closed.txt");
        std::fs::write(&closed, &key).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let log = dir.path().join("logs/x.log");
        std::fs::write(&log, &key).unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pk = dir.path().join("key.pem");
        std::fs::write(&pk, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&pk, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = scan_tree(&n, dir.path(), &[dir.path().join("logs")], &[]);
        f.sort();
        let got: Vec<(Level, Place, &str)> = f
            .iter()
            .map(|f| (f.level, f.place, f.location.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Level::Fail, Place::Log, "workdir/logs/x.log"),
                (Level::Fail, Place::File, "workdir/open.txt"),
                (Level::Fail, Place::PrivateKey, "workdir/key.pem"),
                (Level::Info, Place::File, "workdir/closed.txt"),
            ]
        );
    }
}
