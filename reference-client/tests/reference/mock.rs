//! The reference client against the mock Sectigo server, in-process over TLS: every InCommon
//! profile's happy path and each Sectigo behaviour the client must cope with.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use crate::common;

use std::time::Duration;

use acme_proto::{ProblemType, SignatureAlgorithm, Status};
use common::*;
use reference_client::{
    Account, CertKeyType, Client, CsrSource, EabCredential, Error, ErrorClass, IssueRequest,
    Issued, NewAccountOptions, Progress, generate_account_key,
};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn request(list: &[&str], key: CertKeyType) -> IssueRequest {
    IssueRequest {
        names: names(list),
        csr: CsrSource::Generate(key),
        preferred_chain: None,
    }
}

/// The common case: physics.example.edu with a fresh P-256 key, no solver (pre-validated).
async fn issue_physics(account: &Account) -> reference_client::Result<Issued> {
    account
        .issue(
            request(&["physics.example.edu"], CertKeyType::EcdsaP256),
            &[],
        )
        .await
}

#[tokio::test]
async fn both_incommon_profiles_issue_with_prevalidated_authorizations() {
    let server = start().await;
    let run = async |profile: &str, key: CertKeyType| {
        let events = Events::default();
        let client = client(&server, profile, &events).await;
        let account = register(&server, &client).await;
        // Sectigo lists only sectigo-email-01 on a pre-validated authorization.
        let order = account
            .new_order(&names(&["physics.example.edu"]))
            .await
            .unwrap();
        let (authz, retry_after) = account
            .fetch_authorization(&order.order.authorizations[0])
            .await
            .unwrap();
        assert_eq!(authz.status, Status::Valid);
        assert_eq!(authz.challenges[0].kind, "sectigo-email-01");
        assert_eq!(retry_after, Some(Duration::from_secs(300)));
        // Skipped whatever challenge types it lists: no solver is needed.
        account
            .authorize(&order.order.authorizations[0], &[])
            .await
            .unwrap();
        assert_eq!(
            events.lines(),
            ["physics.example.edu: authorization already valid, no challenge needed"]
        );

        // No solver at all: every authorization is already valid, including the wildcard.
        let issued = account
            .issue(
                request(&["physics.example.edu", "*.physics.example.edu"], key),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(issued.order.order.status, Status::Valid);
        let info = reference_client::cert::CertInfo::from_der(issued.chain.leaf()).unwrap();
        assert_eq!(
            info.names.iter().collect::<std::collections::BTreeSet<_>>(),
            ["*.physics.example.edu", "physics.example.edu"]
                .iter()
                .map(|s| s.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .iter()
                .collect()
        );
        assert!(issued.chain.certs.len() >= 2, "{profile}: leaf and issuers");
        assert!(issued.key.is_some());

        let lines = events.lines();
        // The mock keeps the order processing 1.5 s with Retry-After: 2, and the client waits
        // as asked instead of hammering.
        let waits: Vec<_> = events
            .all()
            .into_iter()
            .filter_map(|p| match p {
                Progress::Waiting {
                    what,
                    delay,
                    server_asked,
                } if what == "order processing" => Some((delay, server_asked)),
                _ => None,
            })
            .collect();
        assert!(!waits.is_empty(), "{lines:?}");
        for (delay, server_asked) in waits {
            assert!(server_asked);
            assert!(delay >= Duration::from_secs(2), "{delay:?}");
        }
        assert!(!lines.iter().any(|l| l.contains("asked the CA to validate")));
    };
    // The two profiles' orders wait out processing side by side.
    tokio::join!(
        run(RSA, CertKeyType::Rsa(2048)),
        run(ECC, CertKeyType::EcdsaP256)
    );
}

#[tokio::test]
async fn alternate_chains_are_offered_and_chosen_by_issuer_name() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, ECC, &events).await;
    let account = register(&server, &client).await;
    let issued = account
        .issue(
            request(&["physics.example.edu"], CertKeyType::EcdsaP384),
            &[],
        )
        .await
        .unwrap();
    assert!(
        issued.alternatives.len() >= 2,
        "the mock links an alternate chain"
    );
    let default_top = issued.alternatives[0].top_issuer().unwrap();
    let other = issued.alternatives[1].top_issuer().unwrap();
    assert_ne!(
        default_top, other,
        "the alternate chain ends at another root"
    );
    let mut preferred = request(&["physics.example.edu"], CertKeyType::EcdsaP256);
    preferred.preferred_chain = Some(other.to_lowercase());
    // An issuer name no chain has: the default chain. (Both orders wait out processing together.)
    let mut unknown = request(&["physics.example.edu"], CertKeyType::EcdsaP256);
    unknown.preferred_chain = Some("No Such Root".into());
    let (preferred, unknown) =
        tokio::join!(account.issue(preferred, &[]), account.issue(unknown, &[]));
    let issued = preferred.unwrap();
    assert!(issued.chain.matches_issuer(&other));
    assert_eq!(issued.chain.certs, issued.alternatives[1].certs);
    let issued = unknown.unwrap();
    assert_eq!(issued.chain.certs, issued.alternatives[0].certs);
}

#[tokio::test]
async fn user_csr_is_finalized_as_given() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    let key = reference_client::CertKey::generate(CertKeyType::Rsa(2048)).unwrap();
    let csr = key.csr(&names(&["www.physics.example.edu"])).unwrap();
    let (der, csr_names) = reference_client::cert::read_csr(&csr).unwrap();
    let issued = account
        .issue(
            IssueRequest {
                names: csr_names,
                csr: CsrSource::Given(der),
                preferred_chain: None,
            },
            &[],
        )
        .await
        .unwrap();
    assert!(issued.key.is_none());
    let info = reference_client::cert::CertInfo::from_der(issued.chain.leaf()).unwrap();
    assert_eq!(info.names, ["www.physics.example.edu"]);
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_is_a_clear_error() {
    let mut slow = profile_variant(RSA, "slow", "/v2/Slow");
    slow.order.processing_ms = 120_000;
    slow.order.processing_retry_after = 600;
    let server = start_with(mock_server::Orgs::demo(), vec![slow]).await;
    let events = Events::default();
    let client = Client::connect(
        server.directory_url("slow").unwrap(),
        config(&server, &events, Duration::from_secs(20)),
    )
    .await
    .unwrap();
    let account = register(&server, &client).await;
    let started = std::time::Instant::now();
    let e = issue_physics(&account).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no silent hang"
    );
    assert!(
        matches!(&e, Error::RetryAfterBeyondDeadline { retry_after, .. } if *retry_after == Duration::from_secs(600)),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("order processing: the CA asked to retry in 600 s, but only "),
        "{text}"
    );
    assert!(text.contains("raise the deadline (--timeout)"), "{text}");
    assert_eq!(e.class(), ErrorClass::Transport);
}

#[tokio::test]
async fn bad_nonce_is_retried_with_the_nonce_it_carries() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    // A well-formed nonce the server never issued: it answers badNonce with a fresh nonce.
    client.add_nonce(acme_proto::b64::encode([7u8; 32]));
    let object = account.fetch().await.unwrap();
    assert_eq!(object.status, Status::Valid);
    let retries = events
        .all()
        .into_iter()
        .filter(|p| matches!(p, Progress::BadNonceRetry { .. }))
        .count();
    assert_eq!(retries, 1, "{:?}", events.lines());
    // A nonce already used once is refused too, and retried the same way.
    let used = client.nonce().await.unwrap();
    client.add_nonce(used.clone());
    account.fetch().await.unwrap();
    client.add_nonce(used);
    account.fetch().await.unwrap();
    let retries = events
        .all()
        .into_iter()
        .filter(|p| matches!(p, Progress::BadNonceRetry { .. }))
        .count();
    assert_eq!(retries, 2, "{:?}", events.lines());
}

#[tokio::test]
async fn head_new_nonce_and_get_fallback() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    // Pool drained: each call asks newNonce.
    let a = client.nonce().await.unwrap();
    let b = client.nonce().await.unwrap();
    assert_ne!(a, b);
    assert_eq!(acme_proto::b64::decode(&a).unwrap().len(), 32);
}

#[tokio::test]
async fn undelegated_name_is_refused_with_the_servers_message() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    let e = account
        .issue(
            request(
                &["physics.example.edu", "chemistry.example.edu"],
                CertKeyType::EcdsaP256,
            ),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused);
    let Error::Refused {
        action,
        status,
        problem,
        retry_after,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(action, "newOrder");
    assert_eq!(*status, 400);
    assert_eq!(*retry_after, None, "a refusal without Retry-After");
    assert!(
        problem
            .detail
            .as_deref()
            .unwrap()
            .starts_with("A requested identifier has not been delegated."),
        "{problem:?}"
    );
    assert_eq!(
        problem.subproblems[0].identifier.as_ref().unwrap().value,
        "chemistry.example.edu"
    );
    let text = e.to_string();
    assert!(
        text.contains("A requested identifier has not been delegated.")
            && text.contains("chemistry.example.edu"),
        "{text}"
    );
}

const SINGLE_USE_ORG: &str = include_str!("../../../fixtures/orgs/single-use-and-other.toml");

#[tokio::test]
async fn reused_single_use_eab_is_refused_with_sectigos_text() {
    let orgs = mock_server::Orgs::from_toml(SINGLE_USE_ORG, "test").unwrap();
    let server = start_with(orgs, mock_server::Profile::all_built_in().unwrap()).await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    // Padded on purpose: the client takes the key with or without `=`.
    let eab = EabCredential::new("SingleUseKeyId00000000", "c2luZ2xlLXVzZS1rZXk=", None).unwrap();
    let options = NewAccountOptions {
        eab: Some(eab),
        terms_of_service_agreed: true,
        ..Default::default()
    };
    let first = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    assert!(client.new_account(first, &options).await.unwrap().created);
    let second = generate_account_key(SignatureAlgorithm::Rs256, 2048).unwrap();
    let e = client.new_account(second, &options).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::Malformed), "{e:?}");
    assert_eq!(
        e.problem().unwrap().detail.as_deref(),
        Some("[External Account Binding] The account is not awaiting external account binding")
    );
    assert_eq!(
        e.to_string(),
        "the CA refused newAccount: [External Account Binding] The account is not awaiting external account binding (malformed)"
    );
}

#[tokio::test]
async fn missing_eab_is_caught_before_any_request() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let e = client
        .new_account(key, &NewAccountOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Usage);
    assert!(e.to_string().contains("--eab-kid"), "{e}");
}

#[tokio::test]
async fn key_change_refused_by_incommon_is_a_clear_error() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let mut account = register(&server, &client).await;
    let old = account.key().jwk().clone();
    let new_key = generate_account_key(SignatureAlgorithm::Es384, 2048).unwrap();
    let e = account.rollover(new_key).await.unwrap_err();
    let Error::KeyChangeUnsupported { problem } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(problem.kind, ProblemType::ServerInternal);
    assert_eq!(problem.detail.as_deref(), Some("Not yet implemented"));
    assert!(
        e.to_string()
            .starts_with("this CA does not support account key rollover"),
        "{e}"
    );
    // The account keeps its key and still works.
    assert_eq!(account.key().jwk(), &old);
    account.fetch().await.unwrap();
}

#[tokio::test]
async fn key_rollover_where_the_profile_supports_it() {
    let mut profile = profile_variant(RSA, "rollover", "/v2/Rollover");
    profile.account.key_change_supported = true;
    let server = start_with(mock_server::Orgs::demo(), vec![profile]).await;
    let events = Events::default();
    let client = client(&server, "rollover", &events).await;
    let mut account = register(&server, &client).await;
    let new_key = generate_account_key(SignatureAlgorithm::EdDsa, 2048).unwrap();
    let new_jwk = new_key.jwk().clone();
    let old = account.rollover(new_key).await.unwrap();
    assert_eq!(account.key().jwk(), &new_jwk);
    account.fetch().await.unwrap();
    // The old key has no account any more.
    let e = client.find_account(old).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::AccountDoesNotExist), "{e:?}");
}

#[tokio::test]
async fn find_update_and_deactivate_an_account() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, ECC, &events).await;
    let stranger = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let e = client.find_account(stranger).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::AccountDoesNotExist), "{e:?}");

    let account = register(&server, &client).await;
    let pem = reference_client::account_key_pem(account.key()).unwrap();
    let again = reference_client::account_key_from_pem(pem.expose()).unwrap();
    let found = client.find_account(again).await.unwrap();
    assert_eq!(found.url(), account.url());

    let contact = vec!["mailto:pki@physics.example.edu".to_owned()];
    let updated = account.update_contact(&contact).await.unwrap();
    assert_eq!(updated.contact, Some(contact));

    let done = account.deactivate().await.unwrap();
    assert_eq!(done.status, Status::Deactivated);
    let e = account.fetch().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused, "{e:?}");
}

#[tokio::test]
async fn revoke_by_account_and_by_certificate_key() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, ECC, &events).await;
    let account = register(&server, &client).await;
    // Both orders wait out processing together.
    let (a, b) = tokio::join!(
        account.issue(
            request(&["physics.example.edu"], CertKeyType::EcdsaP256),
            &[],
        ),
        account.issue(
            request(&["physics.example.edu"], CertKeyType::Rsa(2048)),
            &[],
        )
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    account.revoke(a.chain.leaf(), Some(4)).await.unwrap();
    let e = account.revoke(a.chain.leaf(), Some(4)).await.unwrap_err();
    assert!(e.is_problem(&ProblemType::AlreadyRevoked), "{e:?}");

    let key_pem = b.key.as_ref().unwrap().to_pem();
    client
        .revoke_with_cert_key(b.chain.leaf(), &key_pem, Some(1))
        .await
        .unwrap();
    let e = client
        .revoke_with_cert_key(b.chain.leaf(), &key_pem, Some(1))
        .await
        .unwrap_err();
    assert!(e.is_problem(&ProblemType::AlreadyRevoked), "{e:?}");
    // The mock has no ARI: no renewalInfo, no window.
    assert_eq!(client.renewal_info(b.chain.leaf()).await.unwrap(), None);
}

#[tokio::test]
async fn wrong_directory_url_says_what_to_give() {
    let server = start().await;
    let events = Events::default();
    let base = server
        .directory_url(RSA)
        .unwrap()
        .replace("InCommonRSAOV", "directory");
    let e = Client::connect(&base, config(&server, &events, Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transport);
    assert!(
        e.to_string().contains("give the directory URL itself"),
        "{e}"
    );
}

/// Sets the demo credential's fault plan through the admin API.
async fn set_faults(server: &mock_server::MockServer, plan: serde_json::Value) {
    let ready = server.ready();
    let admin = sectigo_acme_mock::AdminClient::new(
        ready.admin_url.clone().unwrap(),
        ready.admin_token.clone(),
        &ready.ca_bundle,
    )
    .unwrap();
    let path = format!("/eab/{}/faults", ready.demo.as_ref().unwrap().eab_kid);
    admin.call(reqwest::Method::PUT, &path, plan).await.unwrap();
}

#[tokio::test]
async fn rate_limited_html_with_retry_after_is_waited_out() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "newOrder", "fault": "rateLimited", "nth": [1], "retry_after": 2}
        ]}),
    )
    .await;
    let started = std::time::Instant::now();
    let issued = issue_physics(&account).await.unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the 429's Retry-After was honoured"
    );
    let lines = events.lines().join("\n");
    assert!(
        lines.contains("429") || lines.contains("retrying in 2 s"),
        "{lines}"
    );
}

/// What a proxy in front of the CA does now and then: a 502 page with Retry-After on newOrder,
/// a 504 without one on the certificate download, a connection that breaks before the answer
/// on an order poll and on finalize. Each request that is safe to repeat is sent again; the
/// broken finalize is followed by a look at the order, still ready (the mock drops the
/// connection before it takes the CSR), so the CSR goes again.
#[tokio::test]
async fn gateway_pages_and_broken_connections_are_ridden_out() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "newOrder", "fault": "badGateway", "nth": [1], "retry_after": 1},
            {"endpoint": "finalize", "fault": "drop", "nth": [1]},
            {"endpoint": "order", "fault": "drop", "nth": [1]},
            {"endpoint": "certificate", "fault": "gatewayTimeout", "nth": [1, 2]}
        ]}),
    )
    .await;
    let issued = issue_physics(&account).await.unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
    let lines = events.lines().join("\n");
    assert!(
        lines.contains("newOrder: HTTP 502 from the CA's side"),
        "{lines}"
    );
    assert!(lines.contains("certificate download: HTTP 504"), "{lines}");
    assert!(
        lines.contains("the connection broke before the answer"),
        "{lines}"
    );
    assert!(
        lines.contains("finalize got no answer or a server error, order still ready"),
        "{lines}"
    );
    let finalizes = server
        .state()
        .store
        .transcripts
        .all()
        .into_iter()
        .filter(|e| e.path().ends_with("/finalize"))
        .count();
    assert_eq!(finalizes, 2, "{lines}");
}

/// A proxy's 502 page on finalize with Retry-After: the client waits what the page asked, not
/// its own backoff, before it sends the CSR again.
#[tokio::test]
async fn a_gateway_page_on_finalize_is_waited_out_as_it_asks() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "finalize", "fault": "badGateway", "nth": [1], "retry_after": 1}
        ]}),
    )
    .await;
    let issued = issue_physics(&account).await.unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
    let lines = events.lines().join("\n");
    assert!(
        lines.contains(
            "finalize got no answer or a server error, order still ready, retrying in 1 s"
        ),
        "{lines}"
    );
    let asked = events.0.lock().unwrap().iter().any(|p| {
        matches!(p, Progress::Waiting { what, delay, server_asked: true }
            if what.starts_with("finalize got no answer") && *delay == Duration::from_secs(1))
    });
    assert!(asked, "the wait is the server's Retry-After: {lines}");
}

#[tokio::test]
async fn server_internal_at_finalize_is_retried_while_the_order_is_ready() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, RSA, &events).await;
    let account = register(&server, &client).await;
    // What every finalize request got, in order, from the mock's transcript.
    let finalize_statuses = || -> Vec<u16> {
        let all = server.state().store.transcripts.all();
        all.into_iter()
            .filter(|e| e.path().ends_with("/finalize"))
            .map(|e| e.status)
            .collect()
    };
    // Once (Sectigo, lego #1183): the order is still ready, so the CSR goes again.
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "finalize", "fault": "serverInternal", "nth": [1]}
        ]}),
    )
    .await;
    let issued = issue_physics(&account).await.unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
    let lines = events.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("finalize got no answer or a server error, order still ready")),
        "{lines:?}"
    );

    // Every time: after four attempts the refusal is typed, with the server's problem.
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "finalize", "fault": "serverInternal", "probability": 1.0}
        ]}),
    )
    .await;
    let err = issue_physics(&account).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Refused, "{err}");
    let problem = err.problem().expect("the server's problem document");
    assert_eq!(problem.kind, ProblemType::ServerInternal);
    assert_eq!(
        problem.detail.as_deref(),
        Some("The server experienced an internal error")
    );
    assert_eq!(finalize_statuses().len(), 1 + 1 + 4, "two tries, then four");

    // A proxy's HTML 502 in front of the CA is treated the same way. The plan's counter goes on
    // across plans: this is the 7th finalize.
    set_faults(
        &server,
        serde_json::json!({"rule": [
            {"endpoint": "finalize", "fault": "badGateway", "nth": [7]}
        ]}),
    )
    .await;
    let issued = issue_physics(&account).await.unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
    assert_eq!(
        finalize_statuses()[6..],
        [502, 200],
        "the 502, then the CSR again"
    );
}

#[tokio::test]
async fn dns01_through_the_mocks_admin_api_against_real_validation() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, "rfc8555", &events).await;
    let (account, solver) = rfc8555_account_and_dns_solver(&server, &client).await;
    let issued = account
        .issue(
            request(
                &["dns01.example.com", "*.dns01.example.com"],
                CertKeyType::EcdsaP256,
            ),
            &[&solver],
        )
        .await
        .unwrap();
    assert_eq!(issued.order.order.status, Status::Valid);
}

#[tokio::test]
async fn every_other_profile_happy_path() {
    // The other Sectigo endpoints pre-validate like InCommon; ZeroSSL and rfc8555 validate
    // for real, here with http-01 from the client's own listener.
    let http_port = mock_server::free_port();
    let mut config = mock_server::ServerConfig::ephemeral();
    config.http01_port = http_port;
    let server = sectigo_acme_mock::internal::start(config).await;
    let solver =
        reference_client::solver::Http01Standalone::new(([127, 0, 0, 1], http_port).into());
    let run = async |profile: &str| {
        let events = Events::default();
        let client = client(&server, profile, &events).await;
        let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
        let eab = (profile != "rfc8555").then(|| demo_eab(&server));
        let account = client
            .new_account(
                key,
                &NewAccountOptions {
                    contact: vec!["mailto:admin@physics.example.edu".into()],
                    terms_of_service_agreed: true,
                    eab,
                },
            )
            .await
            .unwrap()
            .account;
        let issued = account
            .issue(
                request(&["physics.example.edu"], CertKeyType::EcdsaP256),
                &[&solver],
            )
            .await
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert_eq!(issued.order.order.status, Status::Valid, "{profile}");
    };
    // The pre-validated profiles wait out their processing time side by side; the two that
    // validate share the solver's port, so they take turns.
    let prevalidated = async {
        tokio::join!(run("sectigo-ov"), run("sectigo-dv"), run("sectigo-ev"));
    };
    let validated = async {
        run("zerossl-dv90").await;
        run("rfc8555").await;
    };
    tokio::join!(prevalidated, validated);
}

#[tokio::test]
async fn ari_renewal_window_from_the_rfc8555_profile() {
    let server = start().await;
    let events = Events::default();
    let client = client(&server, "rfc8555", &events).await;
    assert!(client.directory().renewal_info.is_some());
    let (account, solver) = rfc8555_account_and_dns_solver(&server, &client).await;
    let issued = account
        .issue(
            request(&["ari.example.com"], CertKeyType::EcdsaP256),
            &[&solver],
        )
        .await
        .unwrap();
    let window = client
        .renewal_info(issued.chain.leaf())
        .await
        .unwrap()
        .expect("ARI offered");
    let info = reference_client::cert::CertInfo::from_der(issued.chain.leaf()).unwrap();
    assert!(window.start < window.end);
    assert!(
        window.start > time::OffsetDateTime::now_utc(),
        "a fresh certificate is not due yet"
    );
    assert!(window.end < info.not_after, "{window:?} {info:?}");
    // Revoked: the window is open now.
    account.revoke(issued.chain.leaf(), Some(4)).await.unwrap();
    let window = client
        .renewal_info(issued.chain.leaf())
        .await
        .unwrap()
        .unwrap();
    assert!(window.start <= time::OffsetDateTime::now_utc());
}

/// An account on the rfc8555 profile (no EAB) and a dns-01 solver using the mock's admin API.
async fn rfc8555_account_and_dns_solver(
    server: &mock_server::MockServer,
    client: &Client,
) -> (
    reference_client::Account,
    reference_client::solver::Dns01MockAdmin,
) {
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let options = NewAccountOptions {
        contact: vec![],
        terms_of_service_agreed: true,
        eab: None,
    };
    let account = client.new_account(key, &options).await.unwrap().account;
    let ready = server.ready();
    let solver = reference_client::solver::Dns01MockAdmin::new(
        client.http().clone(),
        ready.admin_url.clone().unwrap(),
        ready.admin_token.clone().unwrap(),
    );
    (account, solver)
}
