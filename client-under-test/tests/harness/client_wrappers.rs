//! The support programs the built-in adapters run: Caddy's wrapper (fixtures/clients/caddy-run.sh)
//! turns Caddy's log into an exit status, and the acme-client driver refuses an HMAC key file
//! others can read. Caddy itself is replaced by a stand-in that writes CertMagic's log lines.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/clients")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("client-wrappers-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs caddy-run.sh with a stand-in `caddy` that runs `body` (sh) with its log on stderr.
/// A body ends with `exec sleep 30` for Caddy running on until it is told to stop. Like Caddy,
/// the stand-in ends on SIGINT: it is started in the background, where a shell would ignore
/// SIGINT, so the stand-in takes the default action back before it runs its body.
fn caddy_run(name: &str, body: &str) -> (Output, String) {
    caddy_run_with(name, body, "{}", &[]).0
}

/// The same with a config and environment; also returns what the stand-in read on its
/// standard input (the renewal's config).
fn caddy_run_with(
    name: &str,
    body: &str,
    config: &str,
    args: &[&str],
) -> ((Output, String), String) {
    let dir = temp_dir(name);
    std::fs::write(dir.join("caddy.json"), config).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("caddy");
    let script = dir.join("caddy-body.sh");
    std::fs::write(&script, body).unwrap();
    let sigint = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
                  os.execvp('sh', ['sh'] + sys.argv[1:])";
    let fake_text = format!(
        "#!/bin/sh\nexec python3 -c \"{sigint}\" {} \"$@\"\n",
        script.display()
    );
    std::fs::write(&fake, fake_text).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("caddy.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(fixtures().join("caddy-run.sh"))
        .arg(dir.join("caddy.json"))
        .arg(&log)
        .args(args)
        .env("PATH", path)
        .env("CADDY_RUN_TIMEOUT", "2")
        .env("STDIN_COPY", dir.join("stdin.json"))
        .output()
        .unwrap();
    // A usage error stops before the log is made.
    if let Ok(meta) = std::fs::metadata(&log) {
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "Caddy's log must be the owner's only");
    }
    let stdin = std::fs::read_to_string(dir.join("stdin.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ((out, stderr), stdin)
}

#[test]
fn caddy_run_edits_the_config_on_its_way_to_caddy_renew_preferred_chain() {
    let ((out, stderr), stdin) = caddy_run_with(
        "renew",
        r#"[ "$3" = - ] && cat > "$STDIN_COPY"
echo '{"level":"info","msg":"certificate renewed successfully","identifier":"physics.example.edu"}' >&2
exec sleep 30"#,
        r#"{"apps":{"tls":{"automation":{"policies":[{"subjects":["physics.example.edu"],
            "issuers":[{"module":"acme","external_account":{"key_id":"K","mac_key":"M"}}]}]}}}}"#,
        &[
            "--renew",
            "--preferred-chain",
            "Mock USERTrust RSA Certification Authority",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let config: serde_json::Value = serde_json::from_str(&stdin).unwrap();
    let policy = &config["apps"]["tls"]["automation"]["policies"][0];
    assert_eq!(policy["renewal_window_ratio"], 1);
    assert_eq!(policy["issuers"][0]["external_account"]["key_id"], "K");
    assert_eq!(
        policy["issuers"][0]["preferred_chains"]["root_common_name"][0],
        "Mock USERTrust RSA Certification Authority"
    );
    // Without options Caddy reads the file itself; an unknown option is a usage error.
    let ((out, _), stdin) = caddy_run_with(
        "plain",
        "echo '{\"msg\":\"certificate obtained successfully\"}' >&2; exec sleep 30",
        "{}",
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdin.is_empty());
    let ((out, stderr), _) = caddy_run_with("usage", "exec sleep 30", "{}", &["--sideways"]);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

#[test]
fn caddy_run_exits_0_once_the_certificate_is_obtained_and_stops_caddy() {
    let (out, _) = caddy_run(
        "ok",
        r#"echo '{"level":"info","msg":"obtaining certificate"}' >&2
sleep 0.3
echo '{"level":"info","logger":"tls.obtain","msg":"certificate obtained successfully","identifier":"physics.example.edu"}' >&2
exec sleep 30"#,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("certificate obtained successfully"),
        "{out:?}"
    );
}

#[test]
fn caddy_run_exits_1_with_caddys_error_on_the_first_failed_attempt() {
    let (out, stderr) = caddy_run(
        "retry",
        r#"echo '{"level":"error","logger":"tls.obtain","msg":"will retry","error":"[physics.example.edu] Obtain: HTTP 403 urn:ietf:params:acme:error:unauthorized - [External Account Binding] Invalid MAC","attempt":1,"retrying_in":60,"elapsed":0.4}' >&2
exec sleep 30"#,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("attempt 1 failed: [physics.example.edu] Obtain: HTTP 403"),
        "{stderr}"
    );
    assert!(stderr.contains("try again in 60 s"), "{stderr}");
}

#[test]
fn caddy_run_passes_on_caddys_own_failure_and_gives_up_after_its_timeout() {
    let (out, stderr) = caddy_run("config", "echo 'Error: loading config: bad' >&2; exit 3");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr.contains("caddy exited (3)"), "{stderr}");
    assert!(stderr.contains("loading config: bad"), "{stderr}");
    let (out, stderr) = caddy_run("silent", "exec sleep 30");
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(stderr.contains("no certificate after 2 s"), "{stderr}");
}

/// The driver refuses a key file others can read, and names no key in its error. Needs node
/// and the library (ci/install-clients.sh); skipped without them.
#[test]
fn the_acme_client_driver_refuses_a_key_file_others_can_read() {
    let library = "/opt/acme-harness/node-acme-client/node_modules/acme-client/package.json";
    if client_under_test::adapter::which("node").is_none() || !Path::new(library).exists() {
        eprintln!("skipped: node or acme-client is not installed (ci/install-clients.sh)");
        return;
    }
    let dir = temp_dir("driver");
    let key = dir.join("eab-hmac.key");
    std::fs::write(&key, "c2VjcmV0LWhtYWMta2V5LWZvci10aGUtdGVzdA\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new("node")
        .arg(fixtures().join("node-acme-client-driver.js"))
        .args(["--directory", "https://127.0.0.1:9/dir", "--eab-kid", "KID"])
        .arg("--eab-hmac-key-file")
        .arg(&key)
        .args([
            "--email",
            "a@physics.example.edu",
            "--domain",
            "physics.example.edu",
        ])
        .args(["--key-type", "rsa", "--http-port", "9"])
        .arg("--out")
        .arg(dir.join("live"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mode 644: the HMAC key file must be readable by its owner only"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
    // Nor does it take the key on its command line at all.
    let out = Command::new("node")
        .arg(fixtures().join("node-acme-client-driver.js"))
        .args(["--eab-hmac-key", "c2VjcmV0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown option --eab-hmac-key"), "{stderr}");
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
