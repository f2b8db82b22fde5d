//! The sandbox a client under test runs in, built by bubblewrap (`bwrap`, Debian's
//! `bubblewrap`) from the kernel's namespaces:
//!
//! - **network**: the whole vet or matrix run happens in a private network namespace whose
//!   only interface is loopback ([`in_private_network`] re-runs the harness there), so each
//!   scenario's in-process mock and its client share that loopback and nothing has a route
//!   off the machine. Every client's `resolv.conf` names its scenario's DNS watcher, an
//!   address of its own on loopback (`127.53.X.Y`), which records each query's name and
//!   refuses it: a lookup is seen whichever call sent it (the trace reads names from
//!   `sendto`; Go's resolver writes to a connected socket), and nothing is resolved.
//! - **filesystem**: a view with the system's programs and libraries and the few /etc files
//!   programs need, read-only; the client's work dir, read-write; its own install and the
//!   files the harness gives it (CA bundle, harness binary), read-only; a private /tmp (a
//!   directory of the scenario, kept so its files can be scanned). Home directories, other
//!   clients' key stores (/etc/letsencrypt, /var/lib) and the rest of the machine are not
//!   there at all; the root is read-only, so a write anywhere else is refused.
//! - **processes**: its own PID, IPC and UTS namespaces (a /proc of its own: the harness's and
//!   other scenarios' processes are not there), every capability dropped, killed with the
//!   harness. The tracer (strace) runs inside the PID namespace, above the client, so the
//!   pids it reports need no translation and bwrap's own calls are not in the trace. The
//!   trace file is bound writable for it: a client that went looking for that file could
//!   edit it (nothing else of the harness is writable there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set in the environment of a harness re-run inside a private network namespace.
pub const NETNS_ENV: &str = "ACME_HARNESS_PRIVATE_NETNS";

/// The host name inside every sandbox; it also tells the harness's own `bwrap` process apart
/// from the client's in the command-line scan.
pub const HOSTNAME: &str = "acme-harness-sandbox";

/// Files of /etc that programs need to start and to speak TLS: the loader's cache, users
/// and groups, name-service and time-zone settings, the trust store, the alternatives
/// links. Nothing with a secret in it.
const ETC: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates.conf",
    "/etc/gnutls",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/python3",
    "/etc/python3.11",
];

/// The system's program and library trees (merged /usr or not).
const SYSTEM: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Whether this process's network namespace has loopback and nothing else (read from
/// /proc/self/net/dev, which shows the reader's namespace).
pub fn loopback_only() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    let names: Vec<&str> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    names == ["lo"]
}

/// Why the sandbox cannot run here, naming the way out; `None` when it can (bwrap is
/// installed and the kernel lets it make namespaces).
pub fn unavailable() -> Option<String> {
    let Some(bwrap) = crate::adapter::which("bwrap") else {
        return Some(
            "bwrap is not installed (Debian: apt-get install bubblewrap); give --no-sandbox to \
             run clients unconfined"
                .into(),
        );
    };
    let out = Command::new(bwrap)
        .args([
            "--ro-bind",
            "/",
            "/",
            "--unshare-net",
            "--ro-bind",
            "/proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "this machine does not let bwrap make namespaces ({}); give --no-sandbox to run \
             clients unconfined",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("bwrap does not run ({e}); give --no-sandbox")),
    }
}

/// The command that runs this program again, with `args`, inside a private network
/// namespace with loopback only (bwrap brings `lo` up); the filesystem and everything else
/// stay as they are. As an ordinary user bwrap makes a user namespace for it.
pub fn in_private_network(args: &[std::ffi::OsString]) -> Result<Command, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the harness binary: {e}"))?;
    let bwrap = crate::adapter::which("bwrap").ok_or("bwrap is not installed")?;
    let mut cmd = Command::new(bwrap);
    cmd.args([
        "--dev-bind",
        "/",
        "/",
        "--unshare-net",
        "--die-with-parent",
        "--",
    ])
    .arg(exe)
    .args(args)
    .env(NETNS_ENV, "1");
    Ok(cmd)
}

/// What a client command may see.
#[derive(Clone, Debug)]
pub(crate) struct View {
    /// Its work dir (read-write).
    pub workdir: PathBuf,
    /// The host directory that is its /tmp.
    pub tmp: PathBuf,
    /// The resolv.conf it gets.
    pub resolv: PathBuf,
    /// The hosts file it gets.
    pub hosts: PathBuf,
    /// Files and directories it may read (CA bundle, its own install).
    pub read_only: Vec<PathBuf>,
    /// A CA bundle put over the system's (a client that trusts only the system store).
    pub system_bundle: Option<PathBuf>,
}

/// The resolv.conf a sandbox gets: lookups go to `resolver` on loopback (the scenario's DNS
/// watcher, which records and refuses them, or 127.0.0.1, where nothing answers), fast.
pub(crate) fn resolv_conf(resolver: std::net::IpAddr) -> String {
    format!("nameserver {resolver}\noptions timeout:1 attempts:1\n")
}

/// The hosts file every sandbox gets: loopback, and the sandbox's own name (which a client
/// looking up its host's name finds here, not in DNS).
pub(crate) fn hosts_file() -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{HOSTNAME}\n"
    )
}

impl View {
    /// `bwrap` and its options, to be followed by the client's argv; `trace`, the file the
    /// tracer inside writes, is bound writable.
    pub(crate) fn bwrap_args(&self, trace: Option<&Path>) -> Vec<String> {
        let mut a: Vec<String> = [
            "bwrap",
            "--die-with-parent",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            HOSTNAME,
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| (*s).to_owned()));
        for dir in SYSTEM {
            match std::fs::read_link(dir) {
                Ok(target) => push(&["--symlink", &target.to_string_lossy(), dir]),
                Err(_) if Path::new(dir).is_dir() => push(&["--ro-bind", dir, dir]),
                Err(_) => {}
            }
        }
        for f in ETC {
            push(&["--ro-bind-try", f, f]);
        }
        let s = |p: &Path| p.display().to_string();
        push(&["--ro-bind", &s(&self.resolv), "/etc/resolv.conf"]);
        push(&["--ro-bind", &s(&self.hosts), "/etc/hosts"]);
        // A /proc of its own PID namespace: the client sees its own processes only, not the
        // harness's or other scenarios' command lines.
        push(&["--proc", "/proc", "--dev", "/dev"]);
        push(&["--bind", &s(&self.tmp), "/tmp"]);
        push(&["--symlink", "../tmp", "/var/tmp"]);
        for p in &self.read_only {
            if !p.starts_with(&self.workdir) {
                push(&["--ro-bind-try", &s(p), &s(p)]);
            }
        }
        if let Some(trace) = trace {
            push(&["--bind", &s(trace), &s(trace)]);
        }
        push(&["--bind", &s(&self.workdir), &s(&self.workdir)]);
        if let Some(bundle) = &self.system_bundle {
            push(&[
                "--ro-bind",
                &s(bundle),
                "/etc/ssl/certs/ca-certificates.crt",
            ]);
        }
        push(&["--remount-ro", "/", "--chdir", &s(&self.workdir), "--"]);
        a
    }
}

/// Whether `path` is under the system's own trees (visible in every sandbox anyway).
fn is_system(path: &Path) -> bool {
    path.starts_with("/usr") || SYSTEM.iter().any(|d| path.starts_with(d))
}

/// The client's own install, for a program named by path outside the system's trees: its
/// directory, or the prefix above a `bin` directory (`/opt/vendor/bin/x` is `/opt/vendor`).
pub(crate) fn install_of(program: &Path) -> Option<PathBuf> {
    if !program.is_absolute() || is_system(program) {
        return None;
    }
    let dir = program.parent()?;
    if dir.file_name().is_some_and(|n| n == "bin")
        && let Some(prefix) = dir.parent()
        && prefix != Path::new("/")
    {
        return Some(prefix.to_owned());
    }
    Some(dir.to_owned())
}

/// The files and directories a command names by absolute path outside the work dir and the
/// system (a script, a config file given by the person vetting): visible read-only.
pub(crate) fn named_paths(argv: &[String], workdir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        let p = Path::new(arg);
        if !p.is_absolute() || p.starts_with(workdir) || is_system(p) || !p.exists() {
            continue;
        }
        let p = if i == 0 {
            install_of(p).unwrap_or_else(|| p.to_owned())
        } else {
            p.to_owned()
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_program_outside_the_system_brings_its_install() {
        assert_eq!(
            install_of(Path::new("/opt/vendor/bin/acme")),
            Some(PathBuf::from("/opt/vendor"))
        );
        assert_eq!(
            install_of(Path::new("/srv/tools/acme.py")),
            Some(PathBuf::from("/srv/tools"))
        );
        assert_eq!(install_of(Path::new("/usr/bin/certbot")), None);
        assert_eq!(install_of(Path::new("certbot")), None);
    }

    #[test]
    fn the_view_binds_the_work_dir_last_and_makes_the_root_read_only() {
        let v = View {
            workdir: "/w/x/workdir".into(),
            tmp: "/w/x/sandbox/tmp".into(),
            resolv: "/w/x/sandbox/resolv.conf".into(),
            hosts: "/w/x/sandbox/hosts".into(),
            read_only: vec!["/w/x/mock/ca-bundle.pem".into()],
            system_bundle: None,
        };
        let a = v.bwrap_args(Some(Path::new("/w/x/exec-0.trace"))).join(" ");
        assert!(
            a.starts_with("bwrap --die-with-parent --unshare-ipc"),
            "{a}"
        );
        assert!(
            !a.contains("--unshare-net"),
            "the run's namespace is shared: {a}"
        );
        assert!(
            a.contains("--unshare-pid") && a.contains("--proc /proc"),
            "{a}"
        );
        assert!(!a.contains("--ro-bind /proc"), "not the host's /proc: {a}");
        assert!(
            a.contains("--bind /w/x/exec-0.trace /w/x/exec-0.trace"),
            "{a}"
        );
        assert!(a.contains("--bind /w/x/sandbox/tmp /tmp"), "{a}");
        assert!(a.contains("--ro-bind-try /w/x/mock/ca-bundle.pem /w/x/mock/ca-bundle.pem"));
        assert!(
            a.ends_with("--bind /w/x/workdir /w/x/workdir --remount-ro / --chdir /w/x/workdir --"),
            "{a}"
        );
        assert!(!a.contains("/root") && !a.contains("/home"), "{a}");
    }
}
