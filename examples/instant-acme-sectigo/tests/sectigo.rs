//! The program against InCommon's behaviour, two badNonces and a processing delay, graded.

use instant_acme_sectigo::{Request, issue};
use sectigo_acme_mock::{Credential, Endpoint, Fault, FaultPlan, MockCa, Rules};

/// Runs the program with the credential `eab` for its first name.
async fn run(ca: &MockCa, eab: &Credential) -> instant_acme_sectigo::Certificate {
    let name = eab.names()[0].as_str();
    let request = Request {
        directory_url: ca.directory_url(),
        server_root: Some(ca.ca_bundle_path()),
        eab_kid: eab.key_id(),
        eab_hmac_key: &eab.hmac_key_bytes(),
        names: &[name],
    };
    issue(&request).await.expect("a certificate")
}

#[tokio::test]
async fn issues_from_incommon_under_faults_and_behaves() {
    let ca = MockCa::start().await;
    let eab = ca.demo_credential();
    ca.set_faults(
        eab,
        FaultPlan::new()
            .nth(Endpoint::NewOrder, Fault::BadNonce, [1, 2])
            .nth(
                Endpoint::Finalize,
                Fault::Processing {
                    seconds: 3,
                    retry_after: 1,
                },
                [1],
            ),
    );
    let cert = run(&ca, eab).await;
    assert!(cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    // instant-acme 0.8 polls a processing order before the finalize answer's Retry-After
    // has passed (the next test pins that), so this rule is left out here.
    ca.assert_conformant_with(&Rules::default().except(["retry-after-honoured"]));
    ca.assert_bad_nonce_retried();
}

/// What the judge found in instant-acme 0.8.5: `Order::poll_certificate` forgets the
/// Retry-After that came with the finalize answer and polls after its own first delay
/// (250 ms). When a release fixes it, this test fails: move the rule back in above.
#[tokio::test]
async fn instant_acme_polls_before_the_finalize_retry_after() {
    let ca = MockCa::start().await; // InCommon: processing 1.5 s, Retry-After on finalize
    run(&ca, ca.demo_credential()).await;
    let failures = ca.grade().failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].rule, "retry-after-honoured");
    let early = failures[0].exchanges[0];
    let transcript = ca.transcript();
    let finalize = transcript
        .iter()
        .find(|e| e.url.ends_with("/finalize") && e.status == 200);
    let finalize = finalize.expect("a finalize answer");
    assert!(finalize.response_headers.contains_key("retry-after"));
    assert_eq!(
        early,
        finalize.seq + 1,
        "the very next request is the early poll"
    );
}
