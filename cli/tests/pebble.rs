//! The Pebble stand-in as suites start it: `acme-harness pebble ...` and the same binary
//! through a link named `pebble`, with Go-style flags.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
}
