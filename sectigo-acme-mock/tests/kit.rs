//! The embedded mock from a client author's side: a real client (the project's reference
//! client) issues under faults and is graded; a planted bad client is caught, with the rule,
//! the exchange and the fix.
#![allow(clippy::unwrap_used)]

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use acme_proto::SignatureAlgorithm;
use reference_client::{
    Client, ClientConfig, CsrSource, EabCredential, IssueRequest, NewAccountOptions,
    generate_account_key,
};
use sectigo_acme_mock::{Credential, Endpoint, Error, Fault, FaultPlan, MockCa, Rules, Severity};

/// The client under test: registers with `eab` and issues a certificate for `name`.
async fn issue(ca: &MockCa, eab: &Credential, name: &str) -> reference_client::Result<()> {
    let config = ClientConfig {
        ca_files: vec![ca.ca_bundle_path().to_owned()],
        deadline: Duration::from_secs(60),
        ..ClientConfig::default()
    };
    let client = Client::connect(ca.directory_url(), config).await?;
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048)?;
    let options = NewAccountOptions {
        contact: vec!["mailto:admin@example.edu".into()],
        terms_of_service_agreed: true,
        eab: Some(EabCredential::new(eab.key_id(), eab.hmac_key(), None)?),
    };
    let account = client.new_account(key, &options).await?.account;
    let request = IssueRequest {
        names: vec![name.to_owned()],
        csr: CsrSource::Generate(reference_client::CertKeyType::EcdsaP256),
        preferred_chain: None,
    };
    account.issue(request, &[]).await.map(|_| ())
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(AssertUnwindSafe(f)).expect_err("it must panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bad_nonces_and_processing_multi_thread() {
    let ca = MockCa::start().await;
    let eab = ca.demo_credential();
    ca.set_faults(
        eab,
        FaultPlan::new()
            .nth(Endpoint::NewOrder, Fault::BadNonce, [1, 2])
            .nth(
                Endpoint::Finalize,
                Fault::Processing {
                    seconds: 2,
                    retry_after: 1,
                },
                [1],
            ),
    );
    issue(&ca, eab, &eab.names()[0]).await.unwrap();
    ca.assert_conformant();
    ca.assert_orders(1);
    ca.assert_bad_nonce_retried();
    ca.assert_retry_after_honoured();
    let bad_nonces = ca.transcript().iter().filter(|e| e.status == 400).count();
    assert_eq!(bad_nonces, 2, "the plan fired exactly twice");
}

#[tokio::test]
async fn a_minted_credential_issues_on_a_current_thread_runtime() {
    let ca = MockCa::builder()
        .processing_delay(Duration::ZERO)
        .start()
        .await;
    let eab = ca.mint_credential(&["www.example.com"]);
    issue(&ca, &eab, "www.example.com").await.unwrap();
    ca.assert_conformant_with(&Rules::all());
    assert!(!ca.transcript_of(&eab).is_empty());
    assert!(
        ca.transcript_of(ca.demo_credential()).is_empty(),
        "the demo credential was not used"
    );
    // Single-use: a second account cannot bind with it, with Sectigo's refusal.
    let again = issue(&ca, &eab, "www.example.com").await.unwrap_err();
    assert!(again.to_string().contains("External Account"), "{again}");
}

#[tokio::test]
async fn a_name_outside_every_credential_is_refused() {
    let ca = MockCa::start().await;
    let err = issue(&ca, ca.demo_credential(), "chemistry.example.edu")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("chemistry.example.edu"), "{err}");
    ca.assert_orders(0);
}

#[tokio::test]
async fn a_revoked_credential_is_refused() {
    let ca = MockCa::start().await;
    let eab = ca.mint_reusable_credential(&["lab.example.org"]);
    ca.revoke_credential(&eab);
    assert!(issue(&ca, &eab, "lab.example.org").await.is_err());
}

/// A planted bad client: it sends newOrder with the nonce it already used for newAccount.
async fn reuse_a_nonce(ca: &MockCa) {
    let http = ca.http_client();
    let dir: acme_proto::Directory = http
        .get(ca.directory_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nonce = http.head(&dir.new_nonce).send().await.unwrap().headers()["replay-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let eab = ca.demo_credential();
    let binding = acme_proto::eab::sign(
        acme_proto::eab::MacAlgorithm::Hs256,
        eab.key_id(),
        &eab.hmac_key_bytes(),
        &dir.new_account,
        key.jwk(),
    );
    let payload =
        serde_json::json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding});
    let post = async |url: &str, kid: Option<&str>, payload: serde_json::Value| {
        let jws = key.sign_request(kid, &nonce, url, Some(&payload)).unwrap();
        http.post(url)
            .header("content-type", "application/jose+json")
            .body(serde_json::to_string(&jws).unwrap())
            .send()
            .await
            .unwrap()
    };
    let created = post(&dir.new_account, None, payload).await;
    assert_eq!(created.status(), 201);
    let kid = created.headers()["location"].to_str().unwrap().to_owned();
    let ids = serde_json::json!({"identifiers": [{"type": "dns", "value": "physics.example.edu"}]});
    let refused = post(&dir.new_order, Some(&kid), ids).await;
    assert_eq!(refused.status(), 400, "a reused nonce is refused");
}

#[tokio::test]
async fn a_reused_nonce_fails_with_the_rule_the_exchange_and_the_fix() {
    let ca = MockCa::start().await;
    reuse_a_nonce(&ca).await;
    let grade = ca.grade();
    assert!(!grade.is_conformant());
    let failure = grade
        .failures()
        .into_iter()
        .find(|f| f.rule == "nonce-not-reused")
        .expect("nonce-not-reused failed");
    assert_eq!(failure.severity, Severity::Must);
    let seq = failure.exchanges[0];
    let message = panic_message(|| ca.assert_conformant());
    assert!(
        message.contains("FAIL `nonce-not-reused` (MUST)"),
        "{message}"
    );
    assert!(message.contains("How to fix:"), "{message}");
    assert!(message.contains(&format!("#{seq} POST")), "{message}");
    assert!(
        !message.contains(ca.demo_credential().hmac_key()),
        "the report never shows the HMAC key"
    );
    // Left out by selection, the same transcript passes.
    ca.assert_conformant_with(&Rules::default().except(["nonce-not-reused", "bad-nonce-retried"]));
}

#[tokio::test]
async fn the_helpers_fail_when_nothing_exercised_them() {
    let ca = MockCa::builder()
        .processing_delay(Duration::ZERO)
        .start()
        .await;
    issue(&ca, ca.demo_credential(), "physics.example.edu")
        .await
        .unwrap();
    let m = panic_message(|| ca.assert_bad_nonce_retried());
    assert!(m.contains("no request was answered with badNonce"), "{m}");
    let m = panic_message(|| ca.assert_orders(2));
    assert!(m.contains("expected 2 accepted newOrder"), "{m}");
    // No processing delay: the order was ready and valid at once, so nothing carried
    // Retry-After (the reference client skips the ready order's authorizations).
    let m = panic_message(|| ca.assert_retry_after_honoured());
    assert!(m.contains("no answer carried Retry-After"), "{m}");
    // ... although the pre-validated authorization, when fetched, carries Sectigo's
    // Retry-After: 300, which asks for no wait.
}

#[tokio::test]
async fn check_on_drop_panics_with_the_report() {
    let ca = MockCa::builder()
        .check_on_drop(Rules::at_least(Severity::Must))
        .start()
        .await;
    reuse_a_nonce(&ca).await;
    let message = panic_message(move || drop(ca));
    assert!(message.contains("nonce-not-reused"), "{message}");
}

#[tokio::test]
async fn bad_profiles_and_plans_are_clear_errors() {
    let err = MockCa::builder()
        .profile("sectigo-nope")
        .try_start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Profile { name, .. } if name == "sectigo-nope"),
        "{err}"
    );
    let err = MockCa::builder()
        .profile_file("/nonexistent/profile.toml")
        .try_start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/profile.toml"),
        "{err}"
    );
    let never = FaultPlan::new().nth(Endpoint::NewOrder, Fault::BadNonce, []);
    let err = MockCa::builder()
        .faults(never)
        .try_start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Faults(m) if m.contains("nth")),
        "{err}"
    );
    let err =
        FaultPlan::from_text("[[rule]]\nendpoint = \"finalize\"\nfault = \"slow\"\nnth = [1]")
            .unwrap_err();
    assert!(err.to_string().contains("delay_ms"), "{err}");
}

#[tokio::test]
async fn a_profile_file_and_several_profiles_are_served() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/profiles/sectigo-dv.toml"
    );
    let ca = MockCa::builder()
        .profile_file(file)
        .profile("sectigo-incommon-ecc-ov")
        .start()
        .await;
    assert_eq!(ca.profile(), "sectigo-dv");
    assert!(ca.directory_url().ends_with("/v2/DV"));
    let ecc = ca.directory_url_of("sectigo-incommon-ecc-ov").unwrap();
    let status = ca.http_client().get(ecc).send().await.unwrap().status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn roots_verify_the_listener_and_issued_chains() {
    let ca = MockCa::start().await;
    assert_eq!(ca.listener_root_store().len(), 1);
    assert_eq!(
        ca.issuer_root_store().len(),
        3,
        "AAA and the two USERTrust roots"
    );
    assert_eq!(
        std::fs::read_to_string(ca.ca_bundle_path()).unwrap(),
        ca.listener_ca_pem()
    );
    assert_eq!(
        std::fs::read_to_string(ca.roots_path()).unwrap(),
        ca.roots_pem()
    );
    let dns = &ca.server().state().dns;
    ca.set_a("www.lab.example.com", "127.0.0.2".parse().unwrap());
    ca.set_txt("www.lab.example.com", &["x"]);
    let records = dns.get("www.lab.example.com");
    assert_eq!(
        records.a,
        ["127.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(records.txt, ["x"], "set_txt keeps the A record");
    ca.clear_dns("www.lab.example.com");
    assert_eq!(
        dns.get("www.lab.example.com").a,
        [std::net::Ipv4Addr::LOCALHOST],
        "back to the default"
    );
}

#[test]
fn a_blocking_test_gets_a_mock_with_its_own_runtime() {
    let ca = sectigo_acme_mock::blocking::MockCa::start();
    // The caller's own runtime (here a throwaway one) is not what serves the mock.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(issue(&ca, ca.demo_credential(), "physics.example.edu"))
        .unwrap();
    ca.assert_conformant();
    ca.assert_orders(1);
}

#[tokio::test]
async fn debug_output_hides_the_secrets() {
    let ca = MockCa::start().await;
    let shown = format!("{ca:?}");
    assert!(!shown.contains(ca.demo_credential().hmac_key()), "{shown}");
    let token = ca.server().ready().admin_token.clone().unwrap();
    assert!(!shown.contains(&token), "the admin token leaked: {shown}");
    let minted = ca.mint_credential(&["www.example.com"]);
    assert!(!format!("{minted:?}").contains(minted.hmac_key()));
}

/// A name delegated without validation keeps needing a real challenge when a credential is
/// minted for it: the client, with no solver, cannot get past the pending authorization.
#[tokio::test]
async fn an_unvalidated_name_stays_unvalidated_when_minted() {
    let ca = MockCa::builder()
        .processing_delay(Duration::ZERO)
        .start()
        .await;
    ca.delegate_unvalidated("lab.example.org");
    let eab = ca.mint_credential(&["lab.example.org"]);
    let err = issue(&ca, &eab, "lab.example.org").await.unwrap_err();
    assert!(err.to_string().contains("no solver"), "{err}");
    ca.delegate("www.example.net");
    let validated = ca.mint_credential(&["www.example.net"]);
    issue(&ca, &validated, "www.example.net").await.unwrap();
}

#[tokio::test]
async fn the_admin_client_lists_refuses_and_hides_its_token() {
    let ca = MockCa::start().await;
    let admin = ca.admin();
    let token = ca.server().ready().admin_token.clone().unwrap();
    assert!(!format!("{admin:?}").contains(&token));
    let (list, _): (Vec<serde_json::Value>, _) = admin
        .call_as(reqwest::Method::GET, "/eab", None)
        .await
        .unwrap();
    assert!(
        list.iter()
            .any(|c| c["eab_kid"] == ca.demo_credential().key_id()),
        "{list:?}"
    );
    // Without the token: 401, and `call` turns a refusal into an error with the status.
    let (status, _) = admin
        .without_token()
        .send(reqwest::Method::GET, "/eab", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let err = admin
        .call(
            reqwest::Method::POST,
            "/organizations/999/departments",
            serde_json::json!({"name": "Library"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused (404") && err.contains("999"), "{err}");
}

/// The typed admin calls walk Sectigo's administrator workflow end to end: a new
/// organisation, its domain, a department, a delegation, a credential that issues, its
/// certificate listed and revoked, and the credential revoked; refusals keep the API's words.
#[tokio::test]
async fn the_typed_admin_calls_run_the_administrators_workflow() {
    use sectigo_acme_mock::admin_api::{NewDomain, NewEab, NewOrganization};
    let ca = MockCa::builder()
        .processing_delay(Duration::ZERO)
        .start()
        .await;
    let admin = ca.admin();
    let org = admin
        .add_organization(&NewOrganization {
            name: "Example College".into(),
            country: "US".into(),
            state: "Ohio".into(),
            locality: None,
        })
        .await
        .unwrap();
    let domain = NewDomain {
        name: "College.example".into(),
        validated: true,
    };
    let added = admin.add_domain(org.id, &domain).await.unwrap();
    assert_eq!(added.name, "college.example");
    let dept = admin.add_department(org.id, "Library").await.unwrap();
    admin.delegate(dept.id, "college.example").await.unwrap();
    let minted = admin
        .create_eab(&NewEab {
            department: dept.id,
            domains: vec!["college.example".into()],
            reusable: false,
            profiles: vec![],
        })
        .await
        .unwrap();
    let listed = admin.credentials().await.unwrap();
    assert!(listed.iter().any(|c| c.eab_kid == minted.eab_kid));
    let eab = Credential::new(&minted.eab_kid, &minted.eab_hmac_key, &["college.example"]);
    issue(&ca, &eab, "college.example").await.unwrap();
    let certs = admin.certificates(&minted.eab_kid).await.unwrap();
    assert_eq!(certs.len(), 1, "{certs:?}");
    let revoked = admin
        .revoke_certificate(&certs[0].id, Some(4))
        .await
        .unwrap();
    assert!(revoked.revoked);
    let again = admin
        .revoke_certificate(&certs[0].id, None)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("409"), "{again}");
    assert!(!admin.requests(&minted.eab_kid).await.unwrap().is_empty());
    admin.revoke_eab(&minted.eab_kid).await.unwrap();
    let missing = admin.add_department(999, "Physics").await.unwrap_err();
    assert!(missing.to_string().contains("refused (404"), "{missing}");
    let bad = NewOrganization {
        name: "X".into(),
        country: "USA".into(),
        state: "Ohio".into(),
        locality: None,
    };
    let err = admin.add_organization(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("refused (400") && err.contains("country"),
        "{err}"
    );
}

/// A client that gives up before a held answer still sent its request: the transcript has
/// it, with status 0 and no answer, so the judge does not think it never asked.
#[tokio::test]
async fn a_request_the_client_abandoned_is_recorded_unanswered() {
    let ca = MockCa::builder()
        .faults(FaultPlan::new().nth(
            Endpoint::Directory,
            Fault::Slow(std::time::Duration::from_secs(5)),
            [1],
        ))
        .start()
        .await;
    let http = ca.http_client();
    let gave_up = http
        .get(ca.directory_url())
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "the answer is held for 5 s");
    // The server notices the closed connection and drops the handler.
    let mut found = None;
    for _ in 0..50 {
        found = ca
            .transcript()
            .into_iter()
            .find(|e| e.url == ca.directory_url());
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = found.expect("the abandoned request is in the transcript");
    assert_eq!(e.status, 0);
    assert!(e.response_body.is_none() && e.response_headers.is_empty());
    // The next one is answered and recorded as usual.
    let ok = http.get(ca.directory_url()).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ca.transcript().iter().any(|e| e.status == 200));
}

/// Pebble's management information for a Sectigo profile, through the admin API: the roots
/// and issuing CAs, a certificate's status by serial, and an ARI answer set by hand.
#[tokio::test]
async fn pebble_management_answers_through_the_admin_api() {
    let ca = MockCa::builder()
        .processing_delay(Duration::ZERO)
        .start()
        .await;
    issue(&ca, ca.demo_credential(), "physics.example.edu")
        .await
        .unwrap();
    let admin = ca.admin();
    assert_eq!(
        admin
            .roots_pem(0)
            .await
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        1
    );
    assert_eq!(
        admin
            .roots_pem(1)
            .await
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2,
        "the USERTrust RSA and ECC roots"
    );
    assert!(
        admin
            .intermediates_pem(0)
            .await
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let err = admin.roots_pem(2).await.unwrap_err().to_string();
    assert!(err.contains("404"), "{err}");
    // The kit's CA is made in memory: its keys are handed to the admin token's holder, each
    // the key of the certificate it goes with, in the same order (RSA as PKCS#1).
    use rcgen::PublicKeyData as _;
    let key_publics = |pem: &str| -> Vec<Vec<u8>> {
        rustls_pemfile::read_all(&mut pem.as_bytes())
            .map(|item| match item.unwrap() {
                rustls_pemfile::Item::Pkcs1Key(k) => k.into(),
                rustls_pemfile::Item::Pkcs8Key(k) => k.into(),
                other => panic!("not a key: {other:?}"),
            })
            .map(|der: rustls::pki_types::PrivateKeyDer<'_>| {
                rcgen::KeyPair::try_from(&der)
                    .unwrap()
                    .subject_public_key_info()
            })
            .collect()
    };
    let cert_publics = |pem: &str| -> Vec<Vec<u8>> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .map(|c| {
                let c = c.unwrap();
                let (_, x) = x509_parser::parse_x509_certificate(&c).unwrap();
                x.public_key().raw.to_vec()
            })
            .collect()
    };
    let key = admin.root_key_pem(0).await.unwrap();
    assert!(key.expose().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert_eq!(
        key_publics(key.expose()),
        cert_publics(&admin.roots_pem(0).await.unwrap())
    );
    for chain in [0, 1] {
        let keys = admin.intermediate_key_pem(chain).await.unwrap();
        let publics = key_publics(keys.expose());
        assert_eq!(publics.len(), 2, "the RSA and the ECC issuing CA's");
        assert_eq!(
            publics,
            cert_publics(&admin.intermediates_pem(chain).await.unwrap())
        );
    }
    assert_eq!(
        key_publics(admin.root_key_pem(1).await.unwrap().expose()),
        cert_publics(&admin.roots_pem(1).await.unwrap())
    );
    assert!(admin.root_key_pem(2).await.is_err());

    let certs = admin
        .certificates(ca.demo_credential().key_id())
        .await
        .unwrap();
    let serial = &certs[0].serial;
    let status = admin.certificate_status(serial).await.unwrap();
    assert_eq!(status["Status"], "Valid");
    let pem = status["Certificate"].as_str().unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    admin
        .set_renewal_info(pem, r#"{"suggestedWindow": {}}"#)
        .await
        .unwrap();
    let err = admin
        .certificate_status("00ff")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
}
