//! `acme-harness client` as a user runs it: the real binary against the mock server in this
//! process. Exit codes, human and JSON output, files and modes, and the canary: the EAB HMAC
//! key given through the environment appears in no output, log (at TRACE) or file.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::path::{Path, PathBuf};
use std::process::Output;

use mock_server::{Orgs, Profile, ServerConfig};

const CANARY: &str = "Q0xJLWNhbmFyeS1obWFjLWtleS0zYjkxZDBlNy1tdXN0LW5ldmVyLWxlYWs";
const KID: &str = "CliCanaryKeyId00000000";

fn org() -> String {
    format!(
        r#"
[[organization]]
name = "Example University"
country = "US"
state = "Washington"
domains = ["physics.example.edu", "*.physics.example.edu", "chemistry.example.edu"]
[[organization.department]]
name = "Physics"
domains = ["physics.example.edu", "*.physics.example.edu"]
[[organization.department.eab]]
kid = "{KID}"
hmac_key = "{CANARY}"
domains = ["physics.example.edu", "*.physics.example.edu"]
reusable = true
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Harness {
    server: sectigo_acme_mock::internal::TestServer,
    state: tempfile::TempDir,
    outputs: Vec<Vec<u8>>,
}

impl Harness {
    async fn start() -> Self {
        let mut config = ServerConfig::ephemeral();
        config.orgs = Orgs::from_toml(&org(), "cli-test").unwrap();
        config.profiles = Profile::all_built_in().unwrap();
        let server = sectigo_acme_mock::internal::start(config).await;
        Self {
            server,
            state: tempfile::tempdir().unwrap(),
            outputs: Vec::new(),
        }
    }

    fn directory(&self) -> String {
        self.server
            .directory_url("sectigo-incommon-rsa-ov")
            .unwrap()
            .to_owned()
    }

    fn out(&self) -> PathBuf {
        self.state.path().join("out")
    }

    /// Runs `acme-harness client <args> --server ... --ca-file ... --state-dir ...` with the
    /// canary in the environment and TRACE logging.
    async fn run(&mut self, args: &[&str]) -> Run {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"));
        cmd.arg("client")
            .args(args)
            .arg("--server")
            .arg(self.directory())
            .arg("--ca-file")
            .arg(&self.server.ready().ca_bundle)
            .arg("--state-dir")
            .arg(self.state.path())
            .env("ACME_HARNESS_EAB_HMAC_KEY", CANARY)
            .env("ACME_HARNESS_LOG", "trace")
            .env_remove("ACME_HARNESS_SERVER")
            .env_remove("ACME_HARNESS_PFX_PASSWORD");
        let Output {
            status,
            stdout,
            stderr,
        } = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        self.outputs.push(stdout.clone());
        self.outputs.push(stderr.clone());
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

fn canary_forms() -> Vec<Vec<u8>> {
    let raw = acme_proto::b64::decode(CANARY).unwrap();
    vec![CANARY.as_bytes().to_vec(), raw]
}

fn assert_clean(label: &str, bytes: &[u8]) {
    for form in canary_forms() {
        assert!(
            !bytes.windows(form.len()).any(|w| w == form.as_slice()),
            "the EAB HMAC key leaked into {label}"
        );
    }
}

fn scan(dir: &Path, skip: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            n += scan(&path, skip);
        } else {
            assert_clean(&path.display().to_string(), &std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_exit_codes_files_and_no_leaked_secret() {
    let mut h = Harness::start().await;
    let out = h.out();
    let out_s = out.display().to_string();
    let pass = h.state.path().join("pfx-pass");
    std::fs::write(&pass, "s3cret pfx password\n").unwrap();
    let pass_s = pass.display().to_string();

    // Usage: an EAB key without its key id.
    let r = h.run(&["register", "--agree-tos"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--eab-kid"), "{}", r.stderr);

    let r = h
        .run(&[
            "register",
            "--eab-kid",
            KID,
            "--email",
            "admin@physics.example.edu",
            "--agree-tos",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("account created: https://"),
        "{}",
        r.stdout
    );

    let r = h
        .run(&[
            "issue",
            "-d",
            "physics.example.edu",
            "-d",
            "*.physics.example.edu",
            "--key-type",
            "rsa2048",
            "--out",
            &out_s,
            "--pfx",
            "--pfx-password-file",
            &pass_s,
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("order processing, retrying in 2 s"),
        "progress lines for waits: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("physics.example.edu: authorization already valid, no challenge needed")
            || !r.stderr.contains("asked the CA to validate"),
        "{}",
        r.stderr
    );
    for f in [
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "privkey.pem",
        "cert.pfx",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&out.join("privkey.pem")), 0o600);
        assert_eq!(mode(&out.join("cert.pfx")), 0o600);
        let account_dir = std::fs::read_dir(h.state.path().join("accounts"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(mode(&account_dir.join("account-key.pem")), 0o600);
    }
    // The PFX opens with the password from the file (newline trimmed).
    let o = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-noout",
            "-passin",
            "pass:s3cret pfx password",
            "-in",
        ])
        .arg(out.join("cert.pfx"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Refused by the CA: exit 3 with Sectigo's text.
    let r = h.run(&["issue", "-d", "chemistry.example.edu"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("A requested identifier has not been delegated."),
        "{}",
        r.stderr
    );
    let r = h
        .run(&["issue", "-d", "chemistry.example.edu", "--json"])
        .await;
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["class"], "refused");
    assert_eq!(
        v["error"]["problem"]["type"],
        "urn:ietf:params:acme:error:rejectedIdentifier"
    );

    // keyChange: Sectigo has none; a clear refusal, exit 3, the old key kept.
    let r = h.run(&["rollover"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not support account key rollover"),
        "{}",
        r.stderr
    );

    // show --json: the account and the order made.
    let r = h.run(&["show", "--json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"], "valid");
    assert_eq!(v["eab_kid"], KID);
    assert_eq!(v["orders"].as_array().unwrap().len(), 1);
    assert_eq!(v["orders"][0]["status"], "valid");

    // renew: a fresh 365-day certificate is not due; --force renews.
    let r = h.run(&["renew", "--out", &out_s]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("not renewed: "), "{}", r.stdout);
    let before = std::fs::read(out.join("cert.pem")).unwrap();
    let r = h.run(&["renew", "--out", &out_s, "--force"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(std::fs::read(out.join("cert.pem")).unwrap(), before);

    // revoke, then again: alreadyRevoked is a refusal.
    let cert = out.join("cert.pem").display().to_string();
    let r = h
        .run(&["revoke", "--cert", &cert, "--reason", "superseded"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = h.run(&["revoke", "--cert", &cert]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("alreadyRevoked"), "{}", r.stderr);
    let r = h
        .run(&["revoke", "--cert", &cert, "--reason", "because"])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    // deactivate needs --yes.
    let r = h.run(&["deactivate"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = h.run(&["deactivate", "--yes"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The canary: nowhere in what the client printed or logged (TRACE) or wrote, except
    // the PFX password file the user wrote, which is not the HMAC key anyway.
    assert!(
        h.outputs
            .iter()
            .any(|o| String::from_utf8_lossy(o).contains("ACME request")),
        "TRACE logs were captured"
    );
    for (i, o) in h.outputs.iter().enumerate() {
        assert_clean(&format!("the output of run {i}"), o);
    }
    let files = scan(h.state.path(), &pass);
    assert!(files >= 7, "{files} files scanned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_exit_4_and_help_documents_exit_codes() {
    let mut h = Harness::start().await;
    // Nothing listens there (free, and outside the range other tests' listeners get).
    let port = mock_server::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"));
    let o = cmd
        .args(["client", "show", "--server"])
        .arg(format!("https://127.0.0.1:{port}/v2/InCommonRSAOV"))
        .arg("--ca-file")
        .arg(&h.server.ready().ca_bundle)
        .arg("--state-dir")
        .arg(h.state.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach"));

    // No account yet: usage, with what to do.
    let r = h.run(&["show"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("client register"), "{}", r.stderr);

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"))
        .args(["client", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for needle in [
        "Exit codes:",
        "3  refused by the CA",
        "4  network or transport",
        "ACME_HARNESS_EAB_HMAC_KEY",
        "issue",
        "renew",
        "revoke",
        "deactivate",
        "rollover",
        "show",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    // Unknown flags are clap's usage errors: 2.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_acme-harness"))
        .args(["client", "issue", "--eab-hmac-key", "x"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "there is no flag for the key itself"
    );
}
