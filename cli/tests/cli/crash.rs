//! kill -9 in the middle of issuance, with the persistent store: after a restart every
//! certificate the server answered with is still there, and no order is in an impossible state.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_acme-harness");

fn serve(dir: &Path, port: u16) -> Child {
    let _ = std::fs::remove_file(dir.join("ready.json"));
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .arg("--persist")
        .arg(dir.join("state.sqlite"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dir.join("ready.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no ready.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn client(dir: &Path, ready: &Value, out: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "client",
        "issue",
        "--server",
        ready["directory"].as_str().unwrap(),
    ])
    .arg("--ca-file")
    .arg(ready["ca_bundle"].as_str().unwrap())
    .args(["--eab-kid", ready["demo"]["eab_kid"].as_str().unwrap()])
    .arg("--eab-hmac-key-file")
    .arg(dir.join("hmac"))
    .args([
        "--email",
        "admin@physics.example.edu",
        "--agree-tos",
        "-d",
        "physics.example.edu",
    ])
    .arg("--state-dir")
    .arg(dir.join("client"))
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

async fn admin_get(ready: &Value, path: &str) -> Value {
    let admin = sectigo_acme_mock::AdminClient::new(
        ready["admin_url"].as_str().unwrap(),
        ready["admin_token"].as_str().map(str::to_owned),
        std::path::Path::new(ready["ca_bundle"].as_str().unwrap()),
    )
    .unwrap();
    admin.call(reqwest::Method::GET, path, None).await.unwrap()
}

fn serial_of(pem_path: &PathBuf) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(pem_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

#[tokio::test]
async fn kill_dash_nine_during_issuance_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = mock_server::free_port();
    let mut server = serve(dir.path(), port);
    let ready: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ready.json")).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("hmac"),
        ready["demo"]["eab_hmac_key"].as_str().unwrap(),
    )
    .unwrap();

    // One certificate issued and written by the client.
    let first = dir.path().join("first");
    assert!(
        client(dir.path(), &ready, &first)
            .status()
            .unwrap()
            .success()
    );
    let first_serial = serial_of(&first.join("cert.pem"));

    // Another issuance, and the server is killed while the order is processing (1.5 s).
    let second = dir.path().join("second");
    let mut running = client(dir.path(), &ready, &second).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(900));
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let _ = running.wait();

    let mut server = serve(dir.path(), port);
    let ready: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ready.json")).unwrap()).unwrap();
    let kid = ready["demo"]["eab_kid"].as_str().unwrap();
    let certs = admin_get(&ready, &format!("/eab/{kid}/certificates")).await;
    let serials: Vec<String> = certs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        serials.contains(&first_serial),
        "{first_serial} in {serials:?}"
    );
    if second.join("cert.pem").exists() {
        assert!(serials.contains(&serial_of(&second.join("cert.pem"))));
    }
    let cert_ids: Vec<&str> = certs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let orders = admin_get(&ready, &format!("/eab/{kid}/orders")).await;
    assert!(orders.as_array().unwrap().len() >= 2, "{orders}");
    for o in orders.as_array().unwrap() {
        match o["status"].as_str().unwrap() {
            "ready" | "pending" => assert!(o["certificate"].is_null(), "{o}"),
            "processing" | "valid" => {
                let id = o["certificate"].as_str().expect("a certificate");
                assert!(
                    cert_ids.contains(&id),
                    "{o} points at a certificate that is not stored"
                );
            }
            other => panic!("impossible order status {other}: {o}"),
        }
    }
    // And the same account issues again after the restart.
    assert!(
        client(dir.path(), &ready, &dir.path().join("third"))
            .status()
            .unwrap()
            .success()
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
