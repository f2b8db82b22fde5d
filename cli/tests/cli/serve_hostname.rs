//! `serve --hostname`: a client on another host reaches the mock by name. All on loopback: the
//! server listens on 127.0.0.2 (Linux routes all of 127.0.0.0/8 to loopback) under the name
//! mock.test; rustls and openssl verify the listener certificate for that name, and the
//! reference client, resolving mock.test to 127.0.0.2 through its own /etc/hosts (as an
//! administrator would point a Windows machine at the mock with its hosts file), gets a
//! certificate from the URLs the directory hands out.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_acme-harness")
}

/// `acme-harness serve` in its own data directory; killed on drop.
struct Serve {
    child: Child,
    dir: tempfile::TempDir,
    ready: Value,
}

impl Serve {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let path = dir.path().join("ready.json");
        let started = Instant::now();
        let ready = loop {
            if let Some(v) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            {
                break v;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited early: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve wrote no ready.json"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, dir, ready }
    }

    fn port(&self) -> u16 {
        let url: &str = self.ready["directory"].as_str().unwrap();
        let after = url.strip_prefix("https://mock.test:").unwrap();
        after[..after.find('/').unwrap()].parse().unwrap()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], self.port()))
    }

    fn file(&self, key: &str) -> PathBuf {
        PathBuf::from(self.ready[key].as_str().unwrap())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_by_name() -> Serve {
    let serve = Serve::start(&[
        "--listen",
        "127.0.0.2:0",
        "--hostname",
        "mock.test",
        "--hostname",
        "127.0.0.3",
    ]);
    assert_eq!(
        serve.ready["hostnames"],
        serde_json::json!(["mock.test", "127.0.0.3"])
    );
    serve
}

/// A full TLS handshake with the server at `addr`, expecting a certificate valid for `name`
/// under the CA in `ca` (PEM).
fn handshake(addr: SocketAddr, name: &str, ca: &Path) -> Result<(), rustls::Error> {
    let config = reference_client::raw::tls_config(&[ca.to_path_buf()]).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tcp = TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(e
                .into_inner()
                .and_then(|e| e.downcast::<rustls::Error>().ok())
                .map(|e| *e)
                .unwrap_or(rustls::Error::General("I/O error".into())));
        }
    }
    Ok(())
}

#[test]
fn the_listener_certificate_verifies_for_the_hostnames_with_rustls() {
    let serve = start_by_name();
    let ca = serve.file("ca_bundle");
    for name in ["mock.test", "127.0.0.3", "127.0.0.2", "localhost"] {
        handshake(serve.addr(), name, &ca).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let err = handshake(serve.addr(), "other.test", &ca).unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    // Every URL the server hands out names the first hostname; the admin API stays on the
    // loopback address it is bound to.
    let port = serve.port();
    for (_, url) in serve.ready["directories"].as_object().unwrap() {
        assert!(
            url.as_str()
                .unwrap()
                .starts_with(&format!("https://mock.test:{port}/v2/")),
            "{url}"
        );
    }
    assert_eq!(
        serve.ready["admin_url"],
        format!("https://127.0.0.2:{port}/admin")
    );
}

fn openssl(args: &[String]) -> Option<Output> {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

#[test]
fn the_listener_certificate_verifies_for_the_hostnames_with_openssl() {
    if openssl(&["version".into()]).is_none() {
        eprintln!("openssl is not installed: the rustls test covers the certificate alone");
        return;
    }
    let serve = start_by_name();
    let ca = serve.file("ca_bundle").display().to_string();
    let connect = format!("127.0.0.2:{}", serve.port());
    let s_client = |name: &str| {
        let check = if name.parse::<std::net::IpAddr>().is_ok() {
            "-verify_ip"
        } else {
            "-verify_hostname"
        };
        openssl(
            &[
                "s_client",
                "-connect",
                &connect,
                "-servername",
                "mock.test",
                check,
                name,
                "-CAfile",
                &ca,
                "-verify_return_error",
                "-brief",
            ]
            .map(str::to_owned),
        )
        .unwrap()
    };
    for name in ["mock.test", "127.0.0.3"] {
        let out = s_client(name);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains("Verification: OK"), "{name}: {text}");
    }
    let out = s_client("other.test");
    assert!(!out.status.success(), "other.test must not verify");

    // The certificate itself, saved and checked offline with `openssl verify`.
    let out = openssl(
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "mock.test",
            "-showcerts",
        ]
        .map(str::to_owned),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let leaf = serve.dir.path().join("listener-leaf.pem");
    std::fs::write(&leaf, format!("{}\n", &text[start..end])).unwrap();
    let verify = |name: &str| {
        openssl(&[
            "verify".into(),
            "-CAfile".into(),
            ca.clone(),
            "-verify_hostname".into(),
            name.into(),
            leaf.display().to_string(),
        ])
        .unwrap()
    };
    let out = verify("mock.test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!verify("other.test").status.success());
}

/// How to run a command with its own /etc/hosts: a private mount namespace, as root or in a
/// user namespace. `None` when this machine allows neither.
fn private_hosts_prefix() -> Option<Vec<&'static str>> {
    for prefix in [
        vec!["unshare", "--mount"],
        vec!["unshare", "--mount", "--map-root-user"],
    ] {
        let ok = Command::new(prefix[0])
            .args(&prefix[1..])
            .args(["sh", "-c", "mount --bind /dev/null /etc/hostname"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(prefix);
        }
    }
    None
}

#[test]
fn a_client_that_resolves_the_hostname_gets_a_certificate() {
    let Some(prefix) = private_hosts_prefix() else {
        eprintln!(
            "no private mount namespace here (unshare --mount needs root or user namespaces): \
             the reference client cannot be given its own /etc/hosts; skipped"
        );
        return;
    };
    let serve = start_by_name();
    let work = tempfile::tempdir().unwrap();
    let hosts = work.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.2 mock.test\n").unwrap();
    let directory = serve.ready["directories"]["sectigo-incommon-rsa-ov"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(directory.starts_with("https://mock.test:"), "{directory}");
    let out_dir = work.path().join("out");
    // The demo credential: public, and only good against this mock.
    let demo = &serve.ready["demo"];
    let output = Command::new(prefix[0])
        .args(&prefix[1..])
        .args(["sh", "-c", r#"mount --bind "$0" /etc/hosts && exec "$@""#])
        .arg(&hosts)
        .arg(bin())
        .args(["client", "issue", "--json", "--agree-tos", "--server"])
        .arg(&directory)
        .arg("--ca-file")
        .arg(serve.file("ca_bundle"))
        .arg("--state-dir")
        .arg(work.path().join("state"))
        .arg("--out")
        .arg(&out_dir)
        .args(["--eab-kid", demo["eab_kid"].as_str().unwrap()])
        .args(["-d", "physics.example.edu"])
        .env(
            "ACME_HARNESS_EAB_HMAC_KEY",
            demo["eab_hmac_key"].as_str().unwrap(),
        )
        .env_remove("ACME_HARNESS_SERVER")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["ok"], true, "{result:#}");
    let fullchain = out_dir.join("fullchain.pem");
    assert!(fullchain.exists(), "{result:#}");
    if openssl(&["version".into()]).is_some() {
        let chain = out_dir.join("chain.pem").display().to_string();
        let out = openssl(&[
            "verify".into(),
            "-CAfile".into(),
            serve.file("roots").display().to_string(),
            "-untrusted".into(),
            chain,
            out_dir.join("cert.pem").display().to_string(),
        ])
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
