//! Planted clients in the sandbox: a client that phones home (a TCP connection to a
//! documentation address, a DNS lookup), writes to its user's home, reads a file under a
//! (fake) ~/.ssh, or hands the key to a helper on its command line is caught, and what it did
//! is named, with the program that did it.
//!
//! Every test here runs only inside a private network namespace with loopback alone: the test
//! binary runs itself again under `bwrap --unshare-net` for each test, and the planted
//! phone-home client checks /proc/self/net/dev itself and refuses to run otherwise. So no
//! packet ever leaves loopback.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use client_under_test::audit::{Access, NetKind};
use client_under_test::scan::{Level, Place};
use client_under_test::{Adapter, RunConfig, Scenario, ScenarioResult, run_all, sandbox};

/// Runs the test `name` again inside a private network namespace and asserts it passed
/// there; returns `true` when the caller is that inner run and should do the work.
fn inside_private_network(name: &str) -> bool {
    if sandbox::loopback_only() {
        return true;
    }
    assert!(
        std::env::var_os(sandbox::NETNS_ENV).is_none(),
        "re-run for a private network namespace, but this one has more than loopback"
    );
    if let Some(why) = sandbox::unavailable() {
        panic!("these tests need the sandbox: {why}");
    }
    let args = ["--exact", name, "--nocapture", "--test-threads=1"].map(Into::into);
    let status = sandbox::in_private_network(&args)
        .unwrap()
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{name} failed inside the private network namespace"
    );
    false
}

/// An adapter running the shell script `script`, installed as `dir/clients/NAME`, with the
/// work dir as `$1` and the key in `$KEY`.
fn planted(dir: &Path, name: &str, script: &str, env: &str) -> Adapter {
    use std::os::unix::fs::PermissionsExt as _;
    let program = dir.join("clients").join(name);
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    std::fs::write(&program, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        r#"
name = "{name}"
trust = "flag"
key_types = {{ rsa = "rsa", ecdsa = "ecdsa" }}
issue = [["{}", "{{workdir}}"]]
[env]
KEY = "{{eab_hmac_key}}"
{env}
"#,
        program.display()
    );
    Adapter::parse(&text, name).unwrap()
}

/// An adapter running the Python program `script`, written as `dir/NAME.py`.
fn python_client(dir: &Path, name: &str, script: &str) -> Adapter {
    let program = dir.join(format!("{name}.py"));
    std::fs::write(&program, script).unwrap();
    let text = format!(
        r#"
name = "{name}"
trust = "flag"
key_types = {{ rsa = "rsa", ecdsa = "ecdsa" }}
issue = [["/usr/bin/python3", "{}"]]
"#,
        program.display()
    );
    Adapter::parse(&text, name).unwrap()
}

async fn vet(adapter: Adapter, base: &Path) -> ScenarioResult {
    let scenario = Scenario::select(&["happy-rsa-ov-rsa".to_owned()]).unwrap();
    let config = RunConfig {
        harness: None,
        seed: 1,
        base_dir: base.to_owned(),
        jobs: 1,
        sandbox: true,
    };
    let cells = vec![(adapter, None, scenario[0].clone())];
    let mut results = run_all(cells, &config, Arc::new(|_| {})).await.unwrap();
    results.pop().unwrap()
}

fn stdout(r: &ScenarioResult) -> String {
    std::fs::read_to_string(Path::new(&r.dir).join("stdout.log")).unwrap_or_default()
}

/// The phone-home client: refuses unless its network has loopback only, then connects to
/// 192.0.2.1 (TEST-NET-1, documentation) and resolves a vendor's name.
const PHONE_HOME: &str = r#"
import socket, sys
names = [l.split(":")[0].strip() for l in open("/proc/self/net/dev").read().splitlines()[2:]]
if names != ["lo"]:
    print("refusing to phone home: this network has", names)
    sys.exit(3)
try:
    socket.create_connection(("192.0.2.1", 443), timeout=3)
    print("connect: CONNECTED")
except OSError as e:
    print("connect failed:", e.strerror)
try:
    socket.getaddrinfo("telemetry.vendor.example", 443)
    print("resolve: RESOLVED")
except OSError as e:
    print("resolve failed:", e)
sys.exit(1)
"#;

#[tokio::test]
async fn a_client_phoning_home_is_caught_and_gets_no_packet_out() {
    if !inside_private_network("a_client_phoning_home_is_caught_and_gets_no_packet_out") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = python_client(dir.path(), "phone-home", PHONE_HOME);
    let r = vet(a, &dir.path().join("runs")).await;
    let out = stdout(&r);
    // It ran (not refused), and its connection failed inside the namespace: no route out.
    assert!(
        out.contains("connect failed: Network is unreachable"),
        "{out}"
    );
    assert!(out.contains("resolve failed"), "{out}");
    assert!(r.touched.sandboxed && r.touched.traced, "{:?}", r.touched);
    let tcp = r
        .touched
        .network
        .iter()
        .find(|n| n.kind == NetKind::Tcp)
        .unwrap_or_else(|| panic!("no TCP attempt: {:#?}", r.touched.network));
    assert_eq!(
        tcp.sentence(),
        "phone-home.py tried to connect to 192.0.2.1:443 (TCP) (Network is unreachable)"
    );
    let dns = r
        .touched
        .network
        .iter()
        .find(|n| n.kind == NetKind::Dns)
        .unwrap_or_else(|| panic!("no DNS lookup: {:#?}", r.touched.network));
    assert_eq!(dns.to, "telemetry.vendor.example");
    assert_eq!(dns.program, "phone-home.py");
    // The fourth answer names it.
    let a = client_under_test::assess::assess(&[&r], true);
    assert_eq!(a.touched.verdict, client_under_test::assess::Verdict::No);
    assert!(
        a.touched.findings.iter().any(|f| f
            .text
            .starts_with("phone-home.py tried to resolve telemetry.vendor.example")),
        "{:#?}",
        a.touched.findings
    );
}

/// A resolver that writes its query to a connected socket, as Go's does (`write`, which the
/// trace does not follow): the scenario's DNS watcher names the lookup, and refuses it.
const CONNECTED_LOOKUP: &str = r#"
import os, socket, struct, sys
server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for label in "update.vendor.example".split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((server, 53))
os.write(s.fileno(), q)
try:
    answer = s.recv(512)
    print("rcode", answer[3] & 15)
except OSError as e:
    print("no answer:", e)
sys.exit(1)
"#;

#[tokio::test]
async fn a_lookup_written_to_a_connected_socket_is_named() {
    if !inside_private_network("a_lookup_written_to_a_connected_socket_is_named") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = python_client(dir.path(), "go-like", CONNECTED_LOOKUP);
    let r = vet(a, &dir.path().join("runs")).await;
    let out = stdout(&r);
    assert!(out.contains("rcode 5"), "refused by the watcher: {out}");
    let dns: Vec<_> = r
        .touched
        .network
        .iter()
        .filter(|n| n.kind == NetKind::Dns)
        .collect();
    assert_eq!(dns.len(), 1, "{:#?}", r.touched.network);
    assert_eq!(
        dns[0].sentence(),
        "go-like.py tried to resolve update.vendor.example (refused: nothing leaves the sandbox)"
    );
    // The bare resolver address is replaced by the name.
    assert!(
        !r.touched.network.iter().any(|n| n.to.ends_with(":53")),
        "{:#?}",
        r.touched.network
    );
}

#[tokio::test]
async fn a_declared_egress_is_listed_with_its_reason_and_not_held_against_it() {
    if !inside_private_network(
        "a_declared_egress_is_listed_with_its_reason_and_not_held_against_it",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = planted(
        dir.path(),
        "update-check",
        r#"/usr/bin/python3 -c 'import socket
try: socket.getaddrinfo("updates.vendor.example", 443)
except OSError: pass'; exit 1"#,
        "",
    );
    a.expected_egress = vec![client_under_test::audit::ExpectedEgress {
        to: "updates.vendor.example".into(),
        reason: "its update check (--no-update-check turns it off)".into(),
    }];
    let r = vet(a, &dir.path().join("runs")).await;
    let dns = r
        .touched
        .network
        .iter()
        .find(|n| n.to == "updates.vendor.example")
        .unwrap_or_else(|| panic!("{:#?}", r.touched.network));
    assert_eq!(
        dns.expected.as_deref(),
        Some("its update check (--no-update-check turns it off)")
    );
    let a = client_under_test::assess::assess(&[&r], true);
    assert_eq!(
        a.touched.verdict,
        client_under_test::assess::Verdict::Partly,
        "{:#?}",
        a.touched
    );
}

#[tokio::test]
async fn a_write_to_the_users_home_is_refused_and_named() {
    if !inside_private_network("a_write_to_the_users_home_is_refused_and_named") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The home the password database gives (what $HOME is outside vet).
    let home = home_of_this_user();
    let target = Path::new(&home).join(".vendor-client-installed");
    assert!(
        !target.exists(),
        "{} exists before the test",
        target.display()
    );
    let a = planted(
        dir.path(),
        "home-writer",
        r#"H=$(getent passwd "$(id -u)" | cut -d: -f6); echo installed > "$H/.vendor-client-installed"; exit 1"#,
        "",
    );
    let r = vet(a, &dir.path().join("runs")).await;
    assert!(!target.exists(), "the write reached {}", target.display());
    let f = r
        .touched
        .files
        .iter()
        .find(|f| Path::new(&f.path) == target)
        .unwrap_or_else(|| panic!("no write to the home: {:#?}", r.touched.files));
    assert_eq!(f.access, Access::Write);
    assert_eq!(f.program, "home-writer");
    assert!(
        f.result.starts_with("refused") || f.result.starts_with("hidden"),
        "{f:?}"
    );
    let a = client_under_test::assess::assess(&[&r], true);
    assert_eq!(a.touched.verdict, client_under_test::assess::Verdict::No);
}

/// The client has a PID namespace and a /proc of its own: the harness (this test process)
/// and every process outside the sandbox are not there to read command lines from, and the
/// trace, written from inside, still names what the client ran.
#[tokio::test]
async fn the_client_sees_only_its_own_processes() {
    if !inside_private_network("the_client_sees_only_its_own_processes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let harness = std::process::id();
    let a = planted(
        dir.path(),
        "process-lister",
        &format!(
            r#"echo "pids: $(ls /proc | grep -c '^[0-9]')"; if [ -e /proc/{harness}/cmdline ] && grep -q sandbox /proc/{harness}/cmdline; then echo "HARNESS VISIBLE"; fi; cat /proc/1/comm; exit 1"#
        ),
        "",
    );
    let r = vet(a, &dir.path().join("runs")).await;
    let out = stdout(&r);
    assert!(!out.contains("HARNESS VISIBLE"), "{out}");
    // bwrap as the namespace's init, strace, the shell and what it runs: a handful.
    let pids: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("pids: "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .parse()
        .unwrap();
    assert!((2..=8).contains(&pids), "{pids} processes visible:\n{out}");
    assert!(
        out.contains("bwrap"),
        "pid 1 is the sandbox's own init: {out}"
    );
    // Traced from inside: the client's own programs, none of the harness's wrappers.
    assert!(r.touched.traced, "{:?}", r.touched);
    for program in ["ls", "grep", "cat"] {
        assert!(
            r.touched.processes.iter().any(|p| p == program),
            "{program}: {:?}",
            r.touched.processes
        );
    }
    assert!(
        !r.touched
            .processes
            .iter()
            .any(|p| p == "bwrap" || p == "strace"),
        "{:?}",
        r.touched.processes
    );
}

fn home_of_this_user() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "getent passwd \"$(id -u)\" | cut -d: -f6"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_read_under_a_fake_ssh_dir_is_named_and_sees_nothing() {
    if !inside_private_network("a_read_under_a_fake_ssh_dir_is_named_and_sees_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join("fake-home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n",
    )
    .unwrap();
    // The path comes through the environment, as a client finds it: not named on its
    // command line, so the sandbox does not show it.
    let a = planted(
        dir.path(),
        "key-reader",
        r#"if cat "$SSH_KEY" > "$1/stolen"; then echo READ; else echo "read failed"; fi; exit 1"#,
        &format!("SSH_KEY = \"{}\"", key.display()),
    );
    let r = vet(a, &dir.path().join("runs")).await;
    assert!(stdout(&r).contains("read failed"), "{}", stdout(&r));
    let f = r
        .touched
        .files
        .iter()
        .find(|f| Path::new(&f.path) == key)
        .unwrap_or_else(|| panic!("no read of the key: {:#?}", r.touched.files));
    assert_eq!((f.access, f.program.as_str()), (Access::Read, "cat"));
    assert_eq!(f.result, "hidden by the sandbox");
    assert!(
        r.touched.processes.iter().any(|p| p == "cat"),
        "{:?}",
        r.touched.processes
    );
    let a = client_under_test::assess::assess(&[&r], true);
    assert_eq!(a.touched.verdict, client_under_test::assess::Verdict::No);
}

#[tokio::test]
async fn a_helper_given_the_key_on_its_command_line_is_named() {
    if !inside_private_network("a_helper_given_the_key_on_its_command_line_is_named") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The client writes a helper and runs it for a moment with the key as its argument.
    let a = planted(
        dir.path(),
        "spawns-helper",
        r#"printf '#!/bin/sh\nexit 0\n' > "$1/uploader"; chmod 755 "$1/uploader"; "$1/uploader" "$KEY"; exit 1"#,
        "",
    );
    let r = vet(a, &dir.path().join("runs")).await;
    let f = r
        .secrets
        .iter()
        .find(|f| f.place == Place::CommandLine)
        .unwrap_or_else(|| panic!("no command-line finding: {:#?}", r.secrets));
    assert_eq!(
        (f.level, f.location.as_str()),
        (Level::Fail, "command line of uploader")
    );
    assert!(!r.passed);
    assert!(
        r.touched.processes.iter().any(|p| p == "uploader"),
        "{:?}",
        r.touched.processes
    );
    // The harness's own bwrap and strace carry the client's arguments: never reported.
    assert!(
        r.secrets
            .iter()
            .all(|f| !f.location.contains("bwrap") && !f.location.contains("strace")),
        "{:#?}",
        r.secrets
    );
}

#[tokio::test]
async fn a_key_left_in_the_private_tmp_is_scanned() {
    if !inside_private_network("a_key_left_in_the_private_tmp_is_scanned") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = planted(
        dir.path(),
        "tmp-writer",
        r#"umask 022; echo "$KEY" > /tmp/debug-eab.txt; exit 1"#,
        "",
    );
    let r = vet(a, &dir.path().join("runs")).await;
    let f = r
        .secrets
        .iter()
        .find(|f| f.location.starts_with("/tmp/debug-eab.txt"))
        .unwrap_or_else(|| panic!("no finding for the /tmp file: {:#?}", r.secrets));
    assert_eq!(f.level, Level::Fail, "{f:?}");
    assert!(
        r.touched
            .files
            .iter()
            .any(|f| f.path == "/tmp/debug-eab.txt"
                && f.access == Access::Write
                && f.result == "done"),
        "{:#?}",
        r.touched.files
    );
}

#[tokio::test]
async fn a_sandboxed_run_outside_a_private_network_is_refused_naming_the_flag() {
    if sandbox::loopback_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = RunConfig {
        harness: None,
        seed: 1,
        base_dir: dir.path().to_owned(),
        jobs: 1,
        sandbox: true,
    };
    let s = Scenario::select(&["happy-rsa-ov-rsa".to_owned()]).unwrap();
    let cells = vec![(planted(dir.path(), "x", "exit 1", ""), None, s[0].clone())];
    let err = run_all(cells, &config, Arc::new(|_| {}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--no-sandbox"), "{err}");
}
