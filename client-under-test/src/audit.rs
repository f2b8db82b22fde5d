//! What a client touched: every network connection attempt other than to the mock (TCP, UDP,
//! DNS lookups, local sockets), every file it created, changed or read outside its work dir
//! (attempts the sandbox refused included), and every program its process tree ran. Read from
//! the `strace -f` trace each client command runs under (see `run`), so subprocesses count.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The syscalls traced: programs run, processes made, network and file access.
pub const TRACED: &str = "trace=execve,clone,clone3,fork,vfork,chdir,connect,sendto,sendmsg,\
                          sendmmsg,open,openat,creat,rename,renameat,renameat2,unlink,unlinkat,\
                          mkdir,mkdirat,link,linkat,symlink,symlinkat,truncate";

/// What kind of network attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetKind {
    /// A DNS lookup of a name (the query seen on its way to the resolver).
    Dns,
    /// A TCP connection.
    Tcp,
    /// A UDP datagram or connected UDP socket.
    Udp,
    /// A connection to a local (Unix) socket.
    Local,
}

/// One network attempt to anything but the mock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetAttempt {
    /// The program that made it.
    pub program: String,
    /// What kind.
    pub kind: NetKind,
    /// The destination: `192.0.2.1:443`, a DNS name, a socket path.
    pub to: String,
    /// How it ended: `connected`, `sent`, or the error (`Network is unreachable`).
    pub result: String,
    /// The adapter declared it, with this reason: reported, not held against the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
}

impl NetAttempt {
    /// One line: "certbot tried to resolve supporters.eff.org (no answer: ...)".
    pub fn sentence(&self) -> String {
        let what = match self.kind {
            NetKind::Dns => format!("tried to resolve {}", self.to),
            NetKind::Tcp => format!("tried to connect to {} (TCP)", self.to),
            NetKind::Udp => format!("sent UDP to {}", self.to),
            NetKind::Local => format!("tried to connect to the local socket {}", self.to),
        };
        let mut s = format!("{} {what} ({})", self.program, self.result);
        if let Some(why) = &self.expected {
            s.push_str(&format!("; declared by the adapter: {why}"));
        }
        s
    }
}

/// What was done to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Created, written, renamed, linked or removed.
    Write,
    /// Opened for reading.
    Read,
}

/// One file access outside the work dir.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileAccess {
    /// Write or read.
    pub access: Access,
    /// The path, as the client named it.
    pub path: String,
    /// The program.
    pub program: String,
    /// `done`, or why not (`refused: Read-only file system`, `not there`).
    pub result: String,
}

impl FileAccess {
    /// One line: "certbot read /etc/letsencrypt/cli.ini (not there)".
    pub fn sentence(&self) -> String {
        let verb = match (self.access, self.result == "done") {
            (Access::Write, true) => "wrote",
            (Access::Write, false) => "tried to write",
            (Access::Read, true) => "read",
            (Access::Read, false) => "tried to read",
        };
        if self.result == "done" {
            format!("{} {verb} {}", self.program, self.path)
        } else {
            format!("{} {verb} {} ({})", self.program, self.path, self.result)
        }
    }
}

/// Everything a scenario's client touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    /// It ran in the sandbox (private network, filesystem view).
    pub sandboxed: bool,
    /// Its syscalls were traced (strace installed): without that, nothing below is known.
    pub traced: bool,
    /// Connection attempts to anything but the mock.
    pub network: Vec<NetAttempt>,
    /// Connections to the mock.
    pub mock_connections: usize,
    /// File accesses outside the work dir and the system files every program reads.
    pub files: Vec<FileAccess>,
    /// The programs its process tree ran, in order of first run.
    pub processes: Vec<String>,
}

impl Touched {
    /// Undeclared network attempts.
    pub fn undeclared_network(&self) -> impl Iterator<Item = &NetAttempt> {
        self.network.iter().filter(|n| n.expected.is_none())
    }

    /// Adds the names the scenario's DNS watcher at `resolver` (`127.53.X.Y:53`) received and
    /// the trace did not name (Go's resolver writes its queries to a connected socket, which
    /// the trace does not follow): each a lookup by the programs that sent to the resolver,
    /// whose bare resolver entries they replace.
    pub fn add_lookups(&mut self, names: &[String], resolver: &str, scope: &Scope) {
        let mut senders: Vec<String> = Vec::new();
        for n in &self.network {
            if n.to == resolver && n.kind != NetKind::Dns && !senders.contains(&n.program) {
                senders.push(n.program.clone());
            }
        }
        if senders.is_empty() {
            senders.push("a process the trace did not follow".into());
        }
        for name in names {
            if self
                .network
                .iter()
                .any(|n| n.kind == NetKind::Dns && n.to == *name)
            {
                continue;
            }
            for program in &senders {
                let mut a = NetAttempt {
                    program: program.clone(),
                    kind: NetKind::Dns,
                    to: name.clone(),
                    result: "refused: nothing leaves the sandbox".into(),
                    expected: None,
                };
                a.expected = (scope.expected.iter())
                    .find(|e| e.covers(&a))
                    .map(|e| e.reason.clone());
                self.network.push(a);
            }
        }
        if !names.is_empty() {
            self.network
                .retain(|n| n.kind == NetKind::Dns || n.to != resolver);
        }
    }

    /// Adds what another command of the same scenario touched.
    pub fn merge(&mut self, other: Touched) {
        self.traced |= other.traced;
        self.mock_connections += other.mock_connections;
        for n in other.network {
            if !self.network.contains(&n) {
                self.network.push(n);
            }
        }
        for f in other.files {
            if !self.files.contains(&f) {
                self.files.push(f);
            }
        }
        for p in other.processes {
            if !self.processes.contains(&p) {
                self.processes.push(p);
            }
        }
    }
}

/// Egress an adapter expects, with the reason (`[[expected_egress]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEgress {
    /// A DNS name, an address, or `address:port`.
    pub to: String,
    /// Why the client does it (its documentation, a flag that turns it off).
    pub reason: String,
}

impl ExpectedEgress {
    fn covers(&self, attempt: &NetAttempt) -> bool {
        let to = attempt.to.as_str();
        to == self.to
            || to
                .rsplit_once(':')
                .is_some_and(|(host, _)| host.trim_matches(['[', ']']) == self.to)
    }
}

/// What the audit needs to know about the scenario.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The client's work dir: what it does there is its own business.
    pub workdir: PathBuf,
    /// The mock's `host:port`.
    pub mock: String,
    /// Files the harness gave it to read (the CA bundle, the harness binary), and its own
    /// install: reading these is expected.
    pub inputs: Vec<PathBuf>,
    /// Declared egress.
    pub expected: Vec<ExpectedEgress>,
}

/// Paths every program reads: the system's libraries and programs, the loader's cache,
/// name-service and time-zone configuration, the trust store, the process's own /proc entries
/// and the kernel's CPU and memory facts. Reading these is not worth a line.
const SYSTEM_READS: &[&str] = &[
    "/usr/",
    "/lib/",
    "/lib32/",
    "/lib64/",
    "/libx32/",
    "/bin/",
    "/sbin/",
    "/etc/ld.so.",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/mime.types",
    "/etc/alternatives/",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/gnutls/",
    "/etc/crypto-policies/",
    "/etc/python3",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/inputrc",
    "/etc/ldap/",
    "/etc/netsvc.conf",
    "/etc/svc.conf",
    "/proc/self/",
    "/proc/thread-self/",
    "/proc/filesystems",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/stat",
    "/proc/sys/kernel/",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/net/core/somaxconn",
    "/sys/devices/system/cpu",
    "/sys/kernel/mm/transparent_hugepage/",
    "/sys/fs/cgroup/",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/dev/tty",
    "/dev/shm/",
    "/dev/pts/",
    "/dev/fd/",
];

/// Local sockets every C library tries and nothing answers (the name-service cache).
const SYSTEM_SOCKETS: &[&str] = &["/var/run/nscd/socket", "/run/nscd/socket"];

/// Devices every program writes to or reads from: not a file it changes.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/tty",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/zero",
    "/dev/full",
    "/dev/urandom",
    "/dev/random",
];

fn is_system_read(path: &str) -> bool {
    SYSTEM_READS
        .iter()
        .any(|p| path.starts_with(p) || p.strip_suffix('/').is_some_and(|d| path == d))
        || is_own_proc(path)
}

/// `/proc/PID/...`: a process reading its own (or its children's) status.
fn is_own_proc(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|first| !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
}

/// Wrappers the harness itself runs around the client: their own syscalls are not the
/// client's.
fn is_wrapper(program: &str) -> bool {
    program == "bwrap" || program == "strace"
}

/// Reads one trace file (`strace -f -qq -yy --seccomp-bpf -e TRACED`).
pub fn read_trace(path: &Path, scope: &Scope) -> Touched {
    let Some(bytes) = crate::scan::read_capped(path) else {
        return Touched::default();
    };
    parse_trace(&String::from_utf8_lossy(&bytes), scope)
}

/// One syscall, with its pid.
struct Call<'a> {
    pid: u32,
    name: &'a str,
    args: Vec<&'a str>,
    ret: &'a str,
}

/// Parses `strace -f` output, joining `<unfinished ...>` and `<... resumed>` halves.
pub fn parse_trace(text: &str, scope: &Scope) -> Touched {
    let mut pending: HashMap<u32, String> = HashMap::new();
    let mut joined: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_owned());
        } else if rest.starts_with("<... ") {
            let tail = rest.split_once(" resumed>").map_or("", |(_, t)| t);
            if let Some(head) = pending.remove(&pid) {
                joined.push(format!("{pid} {head}{tail}"));
            }
        } else {
            joined.push(format!("{pid} {rest}"));
        }
    }
    let mut touched = Touched {
        traced: true,
        ..Touched::default()
    };
    // The program each pid runs: its last execve, else its parent's.
    let mut programs: HashMap<u32, String> = HashMap::new();
    let mut cwd: HashMap<u32, String> = HashMap::new();
    let mut net: BTreeMap<(String, NetKind, String), String> = BTreeMap::new();
    let mut files: BTreeMap<(Access, String, String), String> = BTreeMap::new();
    for line in &joined {
        let Some(call) = split_call(line) else {
            continue;
        };
        let program = programs.get(&call.pid).cloned().unwrap_or_default();
        match call.name {
            "execve" => {
                if call.ret.starts_with('0') {
                    let argv = call.args.get(1).map(|a| string_list(a)).unwrap_or_default();
                    let name = crate::scan::program_name(argv.join("\0").as_bytes());
                    if !is_wrapper(&name) && !touched.processes.contains(&name) {
                        touched.processes.push(name.clone());
                    }
                    programs.insert(call.pid, name);
                }
                continue;
            }
            "clone" | "clone3" | "fork" | "vfork" => {
                // The child's own lines can come first (an execve before its parent's
                // clone returns): what they said stands.
                if let Some(child) = child_pid(call.ret) {
                    programs.entry(child).or_insert_with(|| program.clone());
                    if let Some(dir) = cwd.get(&call.pid).cloned() {
                        cwd.entry(child).or_insert(dir);
                    }
                }
                continue;
            }
            _ => {}
        }
        if is_wrapper(&program) || program.is_empty() {
            continue;
        }
        let failed = error_of(call.ret);
        match call.name {
            "chdir" => {
                if failed.is_none()
                    && let Some(dir) = call.args.first().and_then(|a| unquote(a))
                {
                    let dir = String::from_utf8_lossy(&dir).into_owned();
                    let base = cwd.get(&call.pid).cloned();
                    cwd.insert(call.pid, resolve(base.as_deref(), None, &dir));
                }
            }
            "connect" => {
                let Some(addr) = call.args.get(1) else {
                    continue;
                };
                let Some((kind, to)) = sockaddr(addr, call.args.first().copied()) else {
                    continue;
                };
                if to == scope.mock {
                    touched.mock_connections += 1;
                    continue;
                }
                if kind == NetKind::Local && SYSTEM_SOCKETS.contains(&to.as_str()) {
                    continue;
                }
                let result = failed.clone().unwrap_or_else(|| "connected".into());
                // A lookup is named by its query below; the resolver's address alone when
                // no query was seen.
                let kind = if to.ends_with(":53") && kind == NetKind::Udp {
                    NetKind::Udp
                } else {
                    kind
                };
                net.entry((program.clone(), kind, to)).or_insert(result);
            }
            "sendto" | "sendmsg" | "sendmmsg" => {
                for q in dns_queries(line) {
                    net.entry((program.clone(), NetKind::Dns, q))
                        .or_insert_with(|| "no answer: nothing leaves the sandbox".into());
                }
                if call.name == "sendto"
                    && let Some(addr) = call.args.get(4)
                    && let Some((kind, to)) = sockaddr(addr, call.args.first().copied())
                    && kind != NetKind::Local
                    && to != scope.mock
                {
                    net.entry((program.clone(), kind, to))
                        .or_insert_with(|| failed.clone().unwrap_or_else(|| "sent".into()));
                }
            }
            _ => {
                for (access, path) in file_targets(&call, cwd.get(&call.pid).map(String::as_str)) {
                    // The loader looking for a shared library along its search path.
                    let library_search = access == Access::Read
                        && failed.is_some()
                        && Path::new(&path)
                            .file_name()
                            .map(|n| n.to_string_lossy())
                            .is_some_and(|n| n.ends_with(".so") || n.contains(".so."));
                    // `mkdir -p` on a directory that is there changes nothing.
                    let no_change = access == Access::Write
                        && failed.as_deref().is_some_and(|e| e.contains("File exists"));
                    // A runtime looking for a file up the directories above its script
                    // (Node's package.json), none of them there.
                    let walk_up = access == Access::Read
                        && failed
                            .as_deref()
                            .is_some_and(|e| e.contains("No such file"))
                        && Path::new(&path)
                            .parent()
                            .is_some_and(|d| scope.workdir.starts_with(d));
                    if !library_search && !no_change && !walk_up && outside(scope, access, &path) {
                        let result = match &failed {
                            None => "done".to_owned(),
                            Some(e) if e.contains("No such file") => {
                                if hidden(access, &path) {
                                    "hidden by the sandbox".to_owned()
                                } else {
                                    "not there".to_owned()
                                }
                            }
                            Some(e) => format!("refused: {e}"),
                        };
                        let key = (access, path, program.clone());
                        // A success wins over an earlier attempt that failed.
                        match files.get(&key) {
                            Some(r) if r == "done" => {}
                            _ => {
                                files.insert(key, result);
                            }
                        }
                    }
                }
            }
        }
    }
    // A lookup seen by its name makes the bare resolver connection of that program redundant.
    let named: Vec<String> = net
        .keys()
        .filter(|(_, k, _)| *k == NetKind::Dns)
        .map(|(p, _, _)| p.clone())
        .collect();
    touched.network = net
        .into_iter()
        .filter(|((p, k, to), _)| !(*k == NetKind::Udp && to.ends_with(":53") && named.contains(p)))
        .map(|((program, kind, to), result)| {
            let mut a = NetAttempt {
                program,
                kind,
                to,
                result,
                expected: None,
            };
            a.expected = scope
                .expected
                .iter()
                .find(|e| e.covers(&a))
                .map(|e| e.reason.clone());
            a
        })
        .collect();
    // Reading back what it wrote itself (a temporary directory it made) is not worth a line.
    let written: Vec<String> = files
        .iter()
        .filter(|((a, _, _), r)| *a == Access::Write && r.as_str() == "done")
        .map(|((_, p, _), _)| p.clone())
        .collect();
    files.retain(|(a, p, _), _| {
        *a == Access::Write || !written.iter().any(|w| Path::new(p).starts_with(w))
    });
    touched.files = files
        .into_iter()
        .map(|((access, path, program), result)| FileAccess {
            access,
            path,
            program,
            result,
        })
        .collect();
    touched
}

/// `pid name(args) = ret`.
fn split_call(line: &str) -> Option<Call<'_>> {
    let (pid, rest) = line.split_once(' ')?;
    let open = rest.find('(')?;
    let name = &rest[..open];
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    // strace pads short calls with spaces before ` = `.
    let eq = rest.rfind(" = ")?;
    let call = rest[..eq].trim_end();
    let close = call.strip_suffix(')')?.len();
    if close < open + 1 {
        return None;
    }
    let args = split_args(&rest[open + 1..close]);
    Some(Call {
        pid: pid.parse().ok()?,
        name,
        args,
        ret: rest[eq + 3..].trim(),
    })
}

/// Splits at top-level `, ` (outside strings, brackets and fd annotations).
fn split_args(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0, 0);
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' | b'<' => depth += 1,
                b')' | b']' | b'}' | b'>' => depth -= 1,
                b',' if depth == 0 => {
                    out.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if start < s.len() {
        out.push(s[start..].trim());
    }
    out
}

/// The bytes of a C-escaped string as strace prints it (`"a\nb\3\x41"`), without the quotes;
/// `None` when `arg` is not a string.
fn unquote(arg: &str) -> Option<Vec<u8>> {
    let arg = arg.trim_end_matches("...");
    let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
    Some(unescape(inner))
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' => {
                let hex = s.get(i..i + 2).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 2;
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    out
}

/// The strings of an array argument (`["a", "b"]`).
fn string_list(arg: &str) -> Vec<String> {
    let inner = arg
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches("...");
    split_args(inner)
        .into_iter()
        .filter_map(unquote)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// The child of a clone/fork: `= 2 /* 27382 in strace's PID NS */` or `= 27382`.
fn child_pid(ret: &str) -> Option<u32> {
    if let Some((_, after)) = ret.split_once("/* ") {
        return after.split_whitespace().next()?.parse().ok();
    }
    ret.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// `Some("ENETUNREACH (Network is unreachable)")` when the call failed.
fn error_of(ret: &str) -> Option<String> {
    let rest = ret.strip_prefix("-1 ")?;
    let rest = rest.trim();
    Some(
        match rest.split_once(" (") {
            Some((_, text)) => text.trim_end_matches(')').to_owned(),
            None => rest.to_owned(),
        }
        .replace("EINPROGRESS", "in progress"),
    )
}

/// The address of a `{sa_family=...}` argument; the fd annotation (`3<TCP:[...]>`) says TCP
/// or UDP.
fn sockaddr(arg: &str, fd: Option<&str>) -> Option<(NetKind, String)> {
    let field = |name: &str| -> Option<&str> {
        let start = arg.find(name)? + name.len();
        let rest = &arg[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(&rest[..end])
    };
    let proto = fd.unwrap_or("");
    let kind = if proto.contains("<UDP") {
        NetKind::Udp
    } else {
        NetKind::Tcp
    };
    if arg.contains("sa_family=AF_INET6") {
        let port = field("sin6_port=htons(")?.trim_end_matches(')');
        let start = arg.find("inet_pton(AF_INET6, \"")? + "inet_pton(AF_INET6, \"".len();
        let host = &arg[start..start + arg[start..].find('"')?];
        Some((kind, format!("[{host}]:{port}")))
    } else if arg.contains("sa_family=AF_INET") {
        let port = field("sin_port=htons(")?.trim_end_matches(')');
        let host = field("sin_addr=inet_addr(\"")?.trim_end_matches("\")");
        Some((kind, format!("{host}:{port}")))
    } else if arg.contains("sa_family=AF_UNIX") {
        let path = field("sun_path=")?;
        let path = unquote(path.trim_start_matches('@'))?;
        Some((NetKind::Local, String::from_utf8_lossy(&path).into_owned()))
    } else {
        None
    }
}

/// The names asked for in the DNS queries carried by a send call.
fn dns_queries(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        let payload = unescape(&line[start + 1..i.min(b.len())]);
        if let Some(name) = dns_query_name(&payload)
            && !out.contains(&name)
        {
            out.push(name);
        }
        i += 1;
    }
    out
}

/// The question name of a DNS query message, when `msg` is one (a query with one question,
/// nothing after the question but an optional EDNS record).
pub fn dns_query_name(msg: &[u8]) -> Option<String> {
    if msg.len() < 17 || msg[2] & 0x80 != 0 {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(i..i + len)?;
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).into_owned());
        i += len;
    }
    // QTYPE and QCLASS, then at most the EDNS OPT record.
    let rest = msg.len().checked_sub(i + 4)?;
    if labels.is_empty() || (count(10) == 0 && rest != 0) || (count(10) == 1 && rest < 11) {
        return None;
    }
    Some(labels.join("."))
}

/// The files a file syscall names, with what it does to them.
fn file_targets(call: &Call<'_>, cwd: Option<&str>) -> Vec<(Access, String)> {
    let path_at = |dir: usize, path: usize| -> Option<String> {
        let p = call.args.get(path).and_then(|a| unquote(a))?;
        let p = String::from_utf8_lossy(&p).into_owned();
        let dir = call.args.get(dir).and_then(|d| fd_path(d));
        Some(resolve(cwd, dir.as_deref(), &p))
    };
    let path = |i: usize| -> Option<String> {
        let p = call.args.get(i).and_then(|a| unquote(a))?;
        Some(resolve(cwd, None, &String::from_utf8_lossy(&p)))
    };
    let flags_write = |f: Option<&&str>| {
        f.is_some_and(|f| {
            ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
                .iter()
                .any(|w| f.contains(w))
        })
    };
    let access = |w: bool| if w { Access::Write } else { Access::Read };
    let mut out = Vec::new();
    let mut push = |a: Access, p: Option<String>| {
        if let Some(p) = p {
            out.push((a, p));
        }
    };
    match call.name {
        "open" => push(access(flags_write(call.args.get(1))), path(0)),
        "openat" => push(access(flags_write(call.args.get(2))), path_at(0, 1)),
        "creat" | "truncate" | "mkdir" | "unlink" => push(Access::Write, path(0)),
        "mkdirat" | "unlinkat" => push(Access::Write, path_at(0, 1)),
        "rename" | "link" => {
            push(Access::Write, path(0));
            push(Access::Write, path(1));
        }
        "renameat" | "renameat2" | "linkat" => {
            push(Access::Write, path_at(0, 1));
            push(Access::Write, path_at(2, 3));
        }
        "symlink" => push(Access::Write, path(1)),
        "symlinkat" => push(Access::Write, path_at(1, 2)),
        _ => {}
    }
    out
}

/// The path of an fd argument annotated by `-y` (`3</usr/lib>`, `AT_FDCWD</work>`).
fn fd_path(arg: &str) -> Option<String> {
    let start = arg.find('<')? + 1;
    let end = arg.rfind('>')?;
    let p = arg.get(start..end)?;
    p.starts_with('/').then(|| p.to_owned())
}

/// An absolute, lexically normalised path.
fn resolve(cwd: Option<&str>, dir: Option<&str>, path: &str) -> String {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(dir.or(cwd).unwrap_or("/")).join(path)
    };
    let mut parts: Vec<&str> = Vec::new();
    let text = joined.to_string_lossy().into_owned();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a path the client was told is not there exists on the machine (for a write: its
/// directory does): the sandbox kept it out of view.
fn hidden(access: Access, path: &str) -> bool {
    let p = Path::new(path);
    p.exists() || (access == Access::Write && p.parent().is_some_and(Path::exists))
}

/// Whether an access is worth listing: outside the work dir and the harness's inputs, and
/// not a read of what every program reads.
fn outside(scope: &Scope, access: Access, path: &str) -> bool {
    let p = Path::new(path);
    if p.starts_with(&scope.workdir) || scope.inputs.iter().any(|i| p.starts_with(i)) {
        return false;
    }
    // The directories above the work dir: a program walking up to its own directory.
    if scope.workdir.starts_with(p)
        || DEVICES.contains(&path)
        || path.starts_with("/dev/fd/")
        || path.starts_with("/dev/pts/")
        || path.starts_with("/proc/self/fd/")
    {
        return false;
    }
    !(access == Access::Read && is_system_read(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scope() -> Scope {
        Scope {
            workdir: "/w/certbot/x/workdir".into(),
            mock: "127.0.0.1:40000".into(),
            inputs: vec!["/w/certbot/x/mock/ca-bundle.pem".into()],
            expected: vec![ExpectedEgress {
                to: "acme-v02.api.letsencrypt.org".into(),
                reason: "its default server".into(),
            }],
        }
    }

    /// Lines as strace 6.1 writes them for a sandboxed Python client.
    const TRACE: &str = r#"6475  execve("/usr/bin/bwrap", ["bwrap", "--die-with-parent"], 0x7ffe /* 39 vars */) = 0
6475  openat(AT_FDCWD</tmp/sbx>, "/work/secret/source", O_RDONLY|O_PATH) = 3</work/secret/source>
6475  clone(child_stack=NULL, flags=CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) = 6479
6479  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f15) = 2 /* 6491 in strace's PID NS */
6491  execve("/usr/bin/python3", ["/usr/bin/python3", "/usr/bin/certbot", "certonly"], 0x7ffc /* 39 vars */ <unfinished ...>
6491  <... execve resumed>)             = 0
6491  chdir("/w/certbot/x/workdir")     = 0
6491  openat(AT_FDCWD</w/certbot/x/workdir>, "/usr/lib/python3/dist-packages/certbot/__init__.py", O_RDONLY|O_CLOEXEC) = 3</usr/lib/python3/dist-packages/certbot/__init__.py>
6491  openat(AT_FDCWD</w/certbot/x/workdir>, "config/live/vet/cert.pem", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3</w/certbot/x/workdir/config/live/vet/cert.pem>
6491  openat(AT_FDCWD</w/certbot/x/workdir>, "/etc/no-such-vendor/cli.ini", O_RDONLY) = -1 ENOENT (No such file or directory)
6491  openat(AT_FDCWD</w/certbot/x/workdir>, "/root/.ssh/no-such-key", O_RDONLY) = -1 ENOENT (No such file or directory)
6491  openat(AT_FDCWD</w/certbot/x/workdir>, "/etc/hacked", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = -1 EROFS (Read-only file system)
6491  rename("/tmp/a", "/tmp/b")        = 0
6491  connect(3<TCP:[1766873]>, {sa_family=AF_INET, sin_port=htons(40000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
6491  connect(3<TCP:[1766873]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("192.0.2.1")}, 16) = -1 ENETUNREACH (Network is unreachable)
6491  connect(3<UNIX-STREAM:[1766874]>, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)
6491  connect(3<UDP:[1766876]>, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
6491  sendmmsg(3<UDP:[1766876]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="y\201\1\0\0\1\0\0\0\0\0\0\nsupporters\3eff\3org\0\0\1\0\1", iov_len=36}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=36}], 2, MSG_NOSIGNAL) = 2
6491  sendto(3<UDP:[1766876]>, "\236\205\1\0\0\1\0\0\0\0\0\0\10acme-v02\3api\vletsencrypt\3org\0\0\34\0\1", 48, MSG_NOSIGNAL, NULL, 0) = 48
6491  vfork( <unfinished ...>
6500  execve("/usr/bin/openssl", ["openssl", "dgst"], 0x55 /* 3 vars */) = 0
6491  <... vfork resumed>)              = 3 /* 6500 in strace's PID NS */
6500  connect(4<UDP:[1]>, {sa_family=AF_INET6, sin6_port=htons(123), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH (Network is unreachable)
"#;

    #[test]
    fn a_trace_names_every_attempt_and_its_program() {
        let t = parse_trace(TRACE, &scope());
        assert_eq!(t.processes, ["certbot", "openssl"]);
        assert_eq!(t.mock_connections, 1);
        let lines: Vec<String> = t.network.iter().map(NetAttempt::sentence).collect();
        assert_eq!(
            lines,
            [
                "certbot tried to resolve acme-v02.api.letsencrypt.org (no answer: nothing leaves the sandbox); declared by the adapter: its default server",
                "certbot tried to resolve supporters.eff.org (no answer: nothing leaves the sandbox)",
                "certbot tried to connect to 192.0.2.1:443 (TCP) (Network is unreachable)",
                "openssl sent UDP to [2001:db8::1]:123 (Network is unreachable)",
            ]
        );
        let files: Vec<String> = t.files.iter().map(FileAccess::sentence).collect();
        assert_eq!(
            files,
            [
                "certbot tried to write /etc/hacked (refused: Read-only file system)",
                "certbot wrote /tmp/a",
                "certbot wrote /tmp/b",
                "certbot tried to read /etc/no-such-vendor/cli.ini (not there)",
                "certbot tried to read /root/.ssh/no-such-key (not there)",
            ]
        );
        assert_eq!(t.undeclared_network().count(), 3);
    }

    #[test]
    fn dns_names_are_read_from_queries_only() {
        let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01";
        assert_eq!(dns_query_name(q).as_deref(), Some("example.org"));
        let mut answer = q.to_vec();
        answer[2] |= 0x80;
        assert_eq!(dns_query_name(&answer), None);
        assert_eq!(dns_query_name(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(unescape(r"\nab\3\x41\101\\"), b"\nab\x03AA\\");
    }
}
