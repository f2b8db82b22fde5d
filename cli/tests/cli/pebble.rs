//! The Pebble stand-in as suites start it: `acme-harness pebble ...` and the same binary
//! through a link named `pebble`, with Go-style flags.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Ports for the stand-in's listeners, which it opens itself: from outside the kernel's
// ephemeral range, so that no other test's listener takes one first.
use mock_server::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_acme-harness");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A temporary directory with a link named `pebble` to the binary.
fn linked() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pebble");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    (dir, link)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.current_dir(repo()).output().unwrap()
}

#[test]
fn a_link_named_pebble_prints_a_recent_version() {
    let (_dir, link) = linked();
    for flag in ["-version", "--version", "-version=true"] {
        let out = run(Command::new(&link).arg(flag));
        assert!(out.status.success(), "{flag}: {out:?}");
        let line = text(&out.stdout);
        assert!(line.starts_with("Pebble version: v2.10.1"), "{line}");
    }
    let out = run(Command::new(BIN).args(["pebble", "-version"]));
    assert!(text(&out.stdout).starts_with("Pebble version: v2."));
}

#[test]
fn bad_configs_name_the_key_or_file_and_exit_1() {
    let (dir, link) = linked();
    let bad_type = dir.path().join("bad-type.json");
    std::fs::write(&bad_type, r#"{"pebble": {"httpPort": "5002"}}"#).unwrap();
    let out = run(Command::new(&link).args(["-config", bad_type.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("pebble.httpPort"),
        "{}",
        text(&out.stderr)
    );

    let missing_cert = dir.path().join("missing-cert.json");
    std::fs::write(
        &missing_cert,
        r#"{"pebble": {"listenAddress": "127.0.0.1:0", "certificate": "no/such/cert.pem",
            "privateKey": "fixtures/pebble/certs/key.pem", "unheardOf": 1}}"#,
    )
    .unwrap();
    let out = run(Command::new(&link).arg(format!("--config={}", missing_cert.display())));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("no/such/cert.pem"), "{err}");
    assert!(
        err.contains("pebble.unheardOf"),
        "the unknown key is warned about: {err}"
    );

    let bad_addr = dir.path().join("bad-addr.json");
    std::fs::write(&bad_addr, r#"{"pebble": {"listenAddress": "14000"}}"#).unwrap();
    let out = run(Command::new(BIN).args(["pebble", "-config", bad_addr.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("pebble.listenAddress"));

    let out = run(Command::new(&link).args(["-config", "/nonexistent/pebble.json"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/pebble.json"));
}

/// `PEBBLE_CHAIN_LENGTH=0` kills Pebble while it makes its CA (a Go panic, exit 2): the
/// stand-in stops there too, after reading the configuration, naming the knob.
#[test]
fn chain_length_0_dies_at_start_with_exit_2() {
    let (dir, link) = linked();
    let config = dir.path().join("pebble-config.json");
    std::fs::write(
        &config,
        r#"{"pebble": {"listenAddress": "127.0.0.1:0", "certificate": "fixtures/pebble/certs/cert.pem",
            "privateKey": "fixtures/pebble/certs/key.pem"}}"#,
    )
    .unwrap();
    let out = run(Command::new(&link)
        .args(["-config", config.to_str().unwrap()])
        .env("PEBBLE_CHAIN_LENGTH", "0"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("PEBBLE_CHAIN_LENGTH=0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn go_flag_errors_exit_2_and_help_exits_0() {
    let (_dir, link) = linked();
    let out = run(Command::new(&link).arg("-nope"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("flag provided but not defined: -nope"));
    assert!(text(&out.stderr).contains("Usage of pebble"));
    let out = run(Command::new(&link).arg("-h"));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("-dnsserver string"));
    let out = run(Command::new(&link).args(["-strict", "false"]));
    assert_eq!(out.status.code(), Some(1), "a stray argument is refused");
    assert!(text(&out.stdout).contains("invalid command line arguments: false"));
    let out = run(Command::new(&link).args(["-config", ""]));
    assert_eq!(out.status.code(), Some(1));
    // The harness's own help says where the stand-ins are.
    let out = run(Command::new(BIN).arg("--help"));
    assert!(text(&out.stdout).contains("acme-harness challtestsrv"));
}

/// Kills and reaps a child when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

/// A plain-HTTP POST to the challtestsrv management API; returns the body.
fn manage(port: u16, path: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Pebble and pebble-challtestsrv started as a suite starts them (links with their names,
/// Go flags, Pebble's config and knobs), and the reference client obtains a certificate with
/// real http-01 validation, the name resolved through challtestsrv's DNS.
#[test]
fn pebble_and_challtestsrv_issue_with_real_http01() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pebble", "pebble-challtestsrv"] {
        std::os::unix::fs::symlink(BIN, dir.path().join(name)).unwrap();
    }
    let (acme, mgmt, http01, dns, cts) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let certs = repo().join("fixtures/pebble/certs");
    let config = dir.path().join("pebble-config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme}",
                "managementListenAddress": "127.0.0.1:{mgmt}",
                "certificate": "{cert}", "privateKey": "{key}",
                "httpPort": {http01}, "tlsPort": 5001,
                "externalAccountBindingRequired": false,
                "retryAfter": {{"authz": 1, "order": 1}}}}}}"#,
            cert = certs.join("cert.pem").display(),
            key = certs.join("key.pem").display(),
        ),
    )
    .unwrap();
    let _cts = Reaped(
        Command::new(dir.path().join("pebble-challtestsrv"))
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
            .arg(format!("--dnsserver=127.0.0.1:{dns}"))
            .args(["-management", &format!("127.0.0.1:{cts}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _pebble = Reaped(
        Command::new(dir.path().join("pebble"))
            .args(["-config", config.to_str().unwrap()])
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(cts);
    wait_for(acme);
    wait_for(mgmt);
    let out = Command::new(BIN)
        .args([
            "client",
            "issue",
            "--server",
            &format!("https://localhost:{acme}/dir"),
        ])
        .args(["--ca-file", certs.join("ca.pem").to_str().unwrap()])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args([
            "-d",
            "e2e.pebble.example",
            "--agree-tos",
            "--email",
            "a@pebble.example",
        ])
        .args(["--http-01", &format!("127.0.0.1:{http01}")])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let cert = std::fs::read_to_string(dir.path().join("out/cert.pem")).unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE"));
    let history = manage(
        cts,
        "/dns-request-history",
        r#"{"host":"e2e.pebble.example"}"#,
    );
    assert!(
        history.contains("\"Name\": \"e2e.pebble.example.\""),
        "validation resolved through challtestsrv: {history}"
    );
}
