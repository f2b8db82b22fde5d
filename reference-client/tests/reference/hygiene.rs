//! Secret hygiene: run the client with a canary EAB HMAC key and check that the key appears
//! in none of its logs (at TRACE), progress output, Debug/Display output or files.
//! In its own test binary: the log capture is a global subscriber.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use crate::common;

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acme_proto::{Secret, SignatureAlgorithm};
use common::*;
use reference_client::cert::{pkcs12, write_pem_files};
use reference_client::{
    CertKeyType, Client, CsrSource, EabCredential, IssueRequest, NewAccountOptions,
    account_key_pem, generate_account_key, write_private,
};

/// A writer for the tracing subscriber that keeps everything in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const CANARY_TEXT: &str = "Q0FOQVJZLWhtYWMta2V5LTdmM2E5YzJlLW11c3QtbmV2ZXItbGVhaw";

fn canary_org() -> String {
    format!(
        r#"
[[organization]]
name = "Example University"
country = "US"
state = "Washington"
domains = ["physics.example.edu"]
[[organization.department]]
name = "Physics"
domains = ["physics.example.edu"]
[[organization.department.eab]]
kid = "CanaryKeyId00000000000"
hmac_key = "{CANARY_TEXT}"
domains = ["physics.example.edu"]
reusable = true
"#
    )
}

/// Every form the canary could leak in: the text the user gave, padded, the standard
/// alphabet, and the raw key bytes.
fn canary_forms() -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let raw = acme_proto::b64::decode(CANARY_TEXT).unwrap();
    vec![
        CANARY_TEXT.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD
            .encode(&raw)
            .trim_end_matches('=')
            .as_bytes()
            .to_vec(),
        raw,
    ]
}

fn assert_no_canary(label: &str, haystack: &[u8]) {
    for form in canary_forms() {
        assert!(
            !haystack.windows(form.len()).any(|w| w == form.as_slice()),
            "the EAB HMAC key leaked into {label}"
        );
    }
}

fn scan_dir(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            n += scan_dir(&path);
        } else {
            assert_no_canary(&path.display().to_string(), &std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn canary_hmac_key_appears_in_no_output_log_or_file() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let orgs = mock_server::Orgs::from_toml(&canary_org(), "canary").unwrap();
    let server = start_with(orgs, mock_server::Profile::all_built_in().unwrap()).await;
    let events = Events::default();
    let client = Client::connect(
        server.directory_url(RSA).unwrap(),
        config(&server, &events, Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let eab = EabCredential::new("CanaryKeyId00000000000", CANARY_TEXT, None).unwrap();
    let mut debug_output = format!("{eab:?}\n{client:?}\n");

    // A refused registration first (wrong key id): the error must not carry the key either.
    let wrong = EabCredential::new("UnknownKeyId0000000000", CANARY_TEXT, None).unwrap();
    let e = client
        .new_account(
            generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap(),
            &NewAccountOptions {
                eab: Some(wrong),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    debug_output.push_str(&format!("{e}\n{e:?}\n"));

    let registered = client
        .new_account(
            generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap(),
            &NewAccountOptions {
                eab: Some(eab.clone()),
                terms_of_service_agreed: true,
                contact: vec!["mailto:admin@physics.example.edu".into()],
            },
        )
        .await
        .unwrap();
    debug_output.push_str(&format!("{registered:?}\n"));
    let issued = registered
        .account
        .issue(
            IssueRequest {
                names: vec!["physics.example.edu".into()],
                csr: CsrSource::Generate(CertKeyType::EcdsaP256),
                preferred_chain: None,
            },
            &[],
        )
        .await
        .unwrap();
    debug_output.push_str(&format!("{issued:?}\n"));

    let dir = tempfile::tempdir().unwrap();
    let key = issued.key.as_ref().unwrap();
    write_pem_files(dir.path(), &issued.chain, Some(&key.to_pem())).unwrap();
    let pfx = pkcs12(
        &issued.chain,
        &key.to_der(),
        &Secret::new("pw".into()),
        "physics.example.edu",
    )
    .unwrap();
    write_private(&dir.path().join("cert.pfx"), pfx.expose()).unwrap();
    write_private(
        &dir.path().join("account.key"),
        account_key_pem(registered.account.key())
            .unwrap()
            .expose()
            .as_bytes(),
    )
    .unwrap();

    let mut progress = Vec::new();
    for line in events.lines() {
        writeln!(progress, "{line}").unwrap();
    }
    let log_bytes = logs.0.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&log_bytes).contains("ACME request"),
        "the trace log was captured: {}",
        String::from_utf8_lossy(&log_bytes)
    );
    assert_no_canary("the trace log", &log_bytes);
    assert_no_canary("progress output", &progress);
    assert_no_canary("Debug and Display output", debug_output.as_bytes());
    assert_eq!(scan_dir(dir.path()), 6, "every written file was scanned");
    // The mock's own files (ready.json holds the demo credential on purpose) are not the
    // client's: only the client's directory is scanned above.
}
