//! The reference client against an independent server, Pebble, with REAL challenge
//! validation: pebble-challtestsrv answers DNS so every name resolves to 127.0.0.1, and
//! Pebble's validator really fetches the http-01 answer, really looks up the dns-01 TXT
//! record and really completes the tls-alpn-01 handshake.
//!
//! Opt-in (`#[ignore]`): `bash ci/pebble-client.sh` starts Pebble and pebble-challtestsrv on
//! 127.0.0.1 and runs these with `--ignored --test-threads=1` (the solvers listen on the
//! fixed ports Pebble's validator connects to). It passes the servers through:
//! PEBBLE_DIRECTORY, PEBBLE_CA_FILE, PEBBLE_EAB_DIRECTORY, PEBBLE_EAB_KID, PEBBLE_EAB_HMAC,
//! PEBBLE_HTTP_PORT, PEBBLE_TLS_PORT, PEBBLE_CHALLTESTSRV.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acme_proto::{ProblemType, SignatureAlgorithm, Status};
use reference_client::solver::{Dns01Hook, Http01Standalone, Solver, TlsAlpn01Standalone};
use reference_client::{
    Account, CertKeyType, Client, ClientConfig, CsrSource, EabCredential, IssueRequest, Issued,
    NewAccountOptions, Progress, generate_account_key,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through `bash ci/pebble-client.sh`")
    })
}

fn loopback(port_var: &str) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], env(port_var).parse::<u16>().unwrap()))
}

type Lines = Arc<Mutex<Vec<String>>>;

async fn client(directory: &str) -> (Client, Lines) {
    let lines: Lines = Arc::default();
    let recorder = lines.clone();
    let config = ClientConfig {
        ca_files: vec![PathBuf::from(env("PEBBLE_CA_FILE"))],
        deadline: Duration::from_secs(120),
        progress: Some(Arc::new(move |p: &Progress| {
            eprintln!("{p}");
            recorder.lock().unwrap().push(p.to_string());
        })),
        ..ClientConfig::default()
    };
    (Client::connect(directory, config).await.unwrap(), lines)
}

async fn account(client: &Client) -> Account {
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    client
        .new_account(
            key,
            &NewAccountOptions {
                contact: vec!["mailto:admin@example.com".into()],
                terms_of_service_agreed: true,
                eab: None,
            },
        )
        .await
        .unwrap()
        .account
}

/// A name no other test uses, so that Pebble cannot reuse an authorization.
fn unique(label: &str) -> String {
    let n: u64 = rand::random();
    format!("{label}-{n:x}.example.com")
}

async fn issue(account: &Account, names: Vec<String>, solver: &dyn Solver) -> Issued {
    account
        .issue(
            IssueRequest {
                names,
                csr: CsrSource::Generate(CertKeyType::EcdsaP256),
                preferred_chain: None,
            },
            &[solver],
        )
        .await
        .unwrap()
}

fn assert_validated(lines: &Lines, name: &str, kind: &str) {
    let lines = lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("{name}: {kind} answer in place, asked the CA to validate")),
        "{lines:?}"
    );
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_http_01() {
    let (client, lines) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    let solver = Http01Standalone::new(loopback("PEBBLE_HTTP_PORT"));
    let (a, b) = (unique("http"), unique("www"));
    let issued = issue(&account, vec![a.clone(), b.clone()], &solver).await;
    assert_validated(&lines, &a, "http-01");
    assert_validated(&lines, &b, "http-01");
    let info = reference_client::cert::CertInfo::from_der(issued.chain.leaf()).unwrap();
    assert_eq!(info.names.len(), 2);
    assert!(info.names.contains(&a) && info.names.contains(&b));
    assert!(issued.chain.certs.len() >= 2);
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_dns_01_with_a_hook_including_a_wildcard() {
    let (client, lines) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("dns-hook.sh");
    // The hook talks to pebble-challtestsrv's management API, as a real hook would talk to
    // a DNS provider's API.
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
set -e
case "$1" in
  add) curl -sf -X POST -d "{{\"host\":\"$2.\",\"value\":\"$3\"}}" {mgmt}/set-txt ;;
  remove) curl -sf -X POST -d "{{\"host\":\"$2.\"}}" {mgmt}/clear-txt ;;
  *) exit 1 ;;
esac
"#,
            mgmt = env("PEBBLE_CHALLTESTSRV")
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let solver = Dns01Hook::new(&hook, Duration::ZERO);
    let name = unique("dns");
    let wildcard = format!("*.{name}");
    let issued = issue(&account, vec![name.clone(), wildcard.clone()], &solver).await;
    assert_validated(&lines, &name, "dns-01");
    assert_validated(&lines, &wildcard, "dns-01");
    let info = reference_client::cert::CertInfo::from_der(issued.chain.leaf()).unwrap();
    assert!(info.names.contains(&wildcard), "{:?}", info.names);
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_tls_alpn_01() {
    let (client, lines) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    let solver = TlsAlpn01Standalone::new(loopback("PEBBLE_TLS_PORT"));
    let name = unique("alpn");
    issue(&account, vec![name.clone()], &solver).await;
    assert_validated(&lines, &name, "tls-alpn-01");
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_wrong_answer_fails_with_the_validators_problem() {
    let (client, _) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    // The http-01 answer is served on a port Pebble's validator does not connect to, so
    // validation really fails and the client reports the validator's problem.
    let solver = Http01Standalone::new("127.0.0.1:0".parse().unwrap());
    let e = account
        .issue(
            IssueRequest {
                names: vec![unique("fail")],
                csr: CsrSource::Generate(CertKeyType::EcdsaP256),
                preferred_chain: None,
            },
            &[&solver],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            reference_client::Error::AuthorizationFailed {
                status: Status::Invalid,
                problem: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.class(), reference_client::ErrorClass::Refused);
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_eab_registration() {
    let (client, _) = client(&env("PEBBLE_EAB_DIRECTORY")).await;
    let key = generate_account_key(SignatureAlgorithm::Rs256, 2048).unwrap();
    // Without EAB: refused before any request, the directory says it is required.
    let e = client
        .new_account(key, &NewAccountOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), reference_client::ErrorClass::Usage);
    // A wrong HMAC key: Pebble refuses.
    let wrong = EabCredential::new(&env("PEBBLE_EAB_KID"), "d3Jvbmcta2V5", None).unwrap();
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let e = client
        .new_account(
            key,
            &NewAccountOptions {
                eab: Some(wrong),
                terms_of_service_agreed: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), reference_client::ErrorClass::Refused, "{e:?}");
    let eab = EabCredential::new(&env("PEBBLE_EAB_KID"), &env("PEBBLE_EAB_HMAC"), None).unwrap();
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let registered = client
        .new_account(
            key,
            &NewAccountOptions {
                eab: Some(eab),
                terms_of_service_agreed: true,
                contact: vec!["mailto:admin@example.com".into()],
            },
        )
        .await
        .unwrap();
    assert!(registered.created);
    assert_eq!(registered.object.status, Status::Valid);
    assert!(registered.object.external_account_binding.is_some());
    let solver = Http01Standalone::new(loopback("PEBBLE_HTTP_PORT"));
    issue(&registered.account, vec![unique("eab")], &solver).await;
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_revocation_by_account_and_by_certificate_key() {
    let (client, _) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    let solver = Http01Standalone::new(loopback("PEBBLE_HTTP_PORT"));
    let a = issue(&account, vec![unique("revoke-a")], &solver).await;
    account.revoke(a.chain.leaf(), Some(4)).await.unwrap();
    let e = account.revoke(a.chain.leaf(), None).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::AlreadyRevoked), "{e:?}");
    let b = issue(&account, vec![unique("revoke-b")], &solver).await;
    let key_pem = b.key.as_ref().unwrap().to_pem();
    client
        .revoke_with_cert_key(b.chain.leaf(), &key_pem, Some(1))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_key_rollover_contact_update_and_deactivation() {
    let (client, _) = client(&env("PEBBLE_DIRECTORY")).await;
    let mut account = account(&client).await;
    let new_key = generate_account_key(SignatureAlgorithm::Es384, 2048).unwrap();
    let old = account.rollover(new_key).await.unwrap();
    // The account answers to the new key; the old key finds nothing.
    let obj = account.fetch().await.unwrap();
    assert_eq!(obj.status, Status::Valid);
    let e = client.find_account(old).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::AccountDoesNotExist), "{e:?}");
    let solver = Http01Standalone::new(loopback("PEBBLE_HTTP_PORT"));
    issue(&account, vec![unique("rolled")], &solver).await;
    let contact = vec!["mailto:pki@example.com".to_owned()];
    assert_eq!(
        account.update_contact(&contact).await.unwrap().contact,
        Some(contact)
    );
    account.deactivate().await.unwrap();
    assert!(account.fetch().await.is_err());
}

#[tokio::test]
#[ignore = "needs Pebble: bash ci/pebble-client.sh"]
async fn pebble_alternate_chains_by_issuer_name() {
    let (client, _) = client(&env("PEBBLE_DIRECTORY")).await;
    let account = account(&client).await;
    let solver = Http01Standalone::new(loopback("PEBBLE_HTTP_PORT"));
    let first = issue(&account, vec![unique("chain")], &solver).await;
    assert!(
        first.alternatives.len() >= 2,
        "PEBBLE_ALTERNATE_ROOTS gives alternates"
    );
    let wanted = first.alternatives[1].top_issuer().unwrap();
    let issued = account
        .issue(
            IssueRequest {
                names: vec![unique("chain")],
                csr: CsrSource::Generate(CertKeyType::Rsa(2048)),
                preferred_chain: Some(wanted.clone()),
            },
            &[&solver],
        )
        .await
        .unwrap();
    assert_eq!(issued.chain.top_issuer().as_deref(), Some(wanted.as_str()));
}
