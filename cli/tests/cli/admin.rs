//! `acme-harness serve` and `acme-harness admin` as a user runs them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_acme-harness");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let ready = dir.join("ready.json");
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never wrote ready.json"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn admin(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_admin_workflow_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let _server = serve(dir.path());
    let (ok, out, err) = admin(
        dir.path(),
        &[
            "org",
            "add",
            "--name",
            "Example College",
            "--country",
            "US",
            "--state",
            "Ohio",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "organisation 2 added: Example College");
    assert!(
        admin(
            dir.path(),
            &["domain", "add", "--org", "2", "college.example"]
        )
        .0
    );
    let (ok, out, _) = admin(
        dir.path(),
        &["dept", "add", "--org", "2", "--name", "Library"],
    );
    assert!(ok);
    assert_eq!(out.trim(), "department 3 added: Library");
    assert!(
        admin(
            dir.path(),
            &["delegate", "--dept", "3", "lib.college.example"]
        )
        .0
    );
    let (ok, out, _) = admin(
        dir.path(),
        &[
            "--json",
            "eab",
            "create",
            "--dept",
            "3",
            "--domain",
            "lib.college.example",
        ],
    );
    assert!(ok);
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kid = created["eab_kid"].as_str().unwrap().to_owned();
    let hmac = created["eab_hmac_key"].as_str().unwrap().to_owned();
    let (_, out, _) = admin(dir.path(), &["eab", "list"]);
    assert!(out.contains(&kid) && out.contains("single-use"), "{out}");
    assert!(!out.contains(&hmac), "listing never shows the HMAC key");
    let (ok, out, _) = admin(dir.path(), &["eab", "revoke", &kid]);
    assert!(ok);
    assert!(out.contains("revoked"));
    let (_, out, _) = admin(dir.path(), &["eab", "list"]);
    assert!(out.contains("REVOKED"), "{out}");
    // Refusals say why, and exit non-zero.
    let (ok, _, err) = admin(
        dir.path(),
        &["delegate", "--dept", "3", "physics.example.edu"],
    );
    assert!(!ok);
    assert!(err.contains("does not have it"), "{err}");
    let (ok, _, err) = admin(dir.path(), &["certs", "list", "NoSuchKeyId"]);
    assert!(!ok);
    assert!(err.contains("no EAB credential"), "{err}");
    // A key id may start with `-` (base64url): it is taken as the id, not as an option.
    let (ok, _, err) = admin(dir.path(), &["eab", "revoke", "-NoSuchKeyIdWithADash"]);
    assert!(!ok);
    assert!(err.contains("no EAB credential"), "{err}");
}

#[test]
fn admin_without_a_server_names_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = admin(dir.path(), &["eab", "list"]);
    assert!(!ok);
    assert!(
        err.contains("acme-harness serve") && err.contains("--data-dir"),
        "{err}"
    );
}

#[test]
fn a_typo_in_a_profile_file_is_a_startup_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("custom.toml");
    std::fs::write(
        &profile,
        "name = \"custom\"\ndirectory_path = \"/v2/Custom\"\n[order]\nprocesing_ms = 1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--profile-file")
        .arg(&profile)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--profile-file") && err.contains("procesing_ms"),
        "{err}"
    );
}

/// The banner's certbot command takes the EAB key from a 0600 config file, never from the
/// command line (where every local user can read it in ps).
#[test]
fn the_banner_keeps_the_hmac_key_off_the_command_line() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("--cert-name demo");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    while !banner
        .last()
        .is_some_and(|l: &String| l.contains("--cert-name demo"))
    {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no certbot command in the banner: {banner:#?}"));
        banner.push(line);
    }
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ready.json")).unwrap()).unwrap();
    let hmac = ready["demo"]["eab_hmac_key"].as_str().unwrap();
    // It also names the console `serve` mounts, on the admin API's origin.
    let admin = ready["admin_url"].as_str().unwrap();
    let console = format!("{}/console/", admin.strip_suffix("/admin").unwrap());
    assert!(
        banner
            .iter()
            .any(|l| l.starts_with("Web console:") && l.contains(&console)),
        "{banner:#?}"
    );
    let start = banner
        .iter()
        .position(|l| l.contains("certbot certonly"))
        .unwrap();
    let command = banner[start..].join("\n");
    assert!(
        !command.contains(hmac),
        "the key is on the command line: {command}"
    );
    assert!(!command.contains("--eab-hmac-key"), "{command}");
    let ini = dir.path().join("certbot-demo.ini");
    assert!(
        command.contains(&format!("-c {}", ini.display())),
        "{command}"
    );
    let text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains(&format!("eab-hmac-key = {hmac}")), "{text}");
    assert!(text.contains(&format!(
        "server = {}",
        ready["directory"].as_str().unwrap()
    )));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&ini).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}

/// `serve`'s console opens a vet report with the HTML report's own code (the reader `serve`
/// hands the mock): logged in with ready.json's token, a report posted from the Reports page
/// comes back in the report frame as the vet HTML report, with the report's own client name.
#[tokio::test]
async fn the_console_of_serve_shows_a_vet_report() {
    let dir = tempfile::tempdir().unwrap();
    let _server = serve(dir.path());
    let ready: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ready.json")).unwrap())
            .unwrap();
    let console = sectigo_acme_mock::internal::ConsoleSession::login(
        ready["admin_url"].as_str().unwrap(),
        std::path::Path::new(ready["ca_bundle"].as_str().unwrap()),
        ready["admin_token"].as_str().unwrap(),
    )
    .await;
    let page = console.page("/console/reports").await;
    // A vet report as `vet --json` writes it: one scenario of a client named here.
    let mut report = client_under_test::report::RunReport::new(8, Vec::new());
    report.skipped = vec![("planted-client-name".into(), "not installed".into())];
    let json = serde_json::to_string(&report).unwrap();
    let opened = console
        .submit("/console/reports", &page, &[("report", json.as_str())])
        .await;
    let status = opened.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        opened.text().await.unwrap()
    );
    let frame = console.get("/console/reports/current").await;
    assert_eq!(frame.status(), 200);
    let html = frame.text().await.unwrap();
    assert!(html.contains("planted-client-name"), "{html}");
    assert_eq!(
        html,
        client_under_test::report::html_from_json(&json).unwrap(),
        "the vet HTML report's own rendering"
    );
}
