//! Finalize, processing, certificates and their chains, revocation.

#![allow(clippy::unwrap_used)]

use crate::common;

use acme_proto::{SignatureAlgorithm, b64};
use common::*;
use serde_json::json;
use x509_parser::prelude::*;

async fn ready_order(client: &mut Client, names: &[&str]) -> String {
    let r = client.new_order(names).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.location()
}

#[tokio::test]
async fn rsa_and_ecdsa_certificates_chain_to_the_roots() {
    let server = start_without_processing().await;
    let roots = std::fs::read_to_string(&server.ready().roots).unwrap();
    for (profile, alg, issuer) in [
        (
            RSA,
            &rcgen::PKCS_RSA_SHA256,
            "Mock InCommon RSA Server CA 2",
        ),
        (
            RSA,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            "Mock InCommon ECC Server CA 2",
        ),
        (
            ECC,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            "Mock InCommon ECC Server CA 2",
        ),
        (
            ECC,
            &rcgen::PKCS_RSA_SHA256,
            "Mock InCommon RSA Server CA 2",
        ),
    ] {
        let mut client = Client::new(&server, profile, SignatureAlgorithm::Es256).await;
        client.register().await;
        let names = ["physics.example.edu", "www.physics.example.edu"];
        let order_url = ready_order(&mut client, &names).await;
        let (csr, _key) = csr(&names, alg);
        let order = client.finalize_and_wait(&order_url, &csr).await;
        let cert_url = order["certificate"].as_str().unwrap().to_owned();
        let r = client.get(&cert_url).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/pem-certificate-chain")
        );
        let chain = pem_certs(&r.text());
        assert_eq!(
            chain.len(),
            3,
            "leaf, issuing CA, cross-signed intermediate"
        );
        verify_chain(&chain, &roots, "www.physics.example.edu").unwrap();

        let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
        let issuer_cn = leaf
            .issuer()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap();
        assert_eq!(issuer_cn, issuer, "the CSR's key type picks the issuing CA");
        let subject = leaf.subject().to_string();
        assert!(
            subject.contains("C=US") && subject.contains("ST=Washington"),
            "{subject}"
        );
        assert!(subject.contains("O=Example University"), "{subject}");
        assert!(subject.contains("CN=physics.example.edu"), "{subject}");
        let nb = leaf.validity().not_before.to_datetime();
        let na = leaf.validity().not_after.to_datetime();
        assert_eq!((nb.hour(), nb.minute(), nb.second()), (0, 0, 0));
        assert_eq!((na.hour(), na.minute(), na.second()), (23, 59, 59));
        assert_eq!((na.date() - nb.date()).whole_days(), 365);

        // The alternate chain ends at the self-signed USERTrust root.
        let link = r.header("link").unwrap();
        assert!(link.contains("rel=\"alternate\""), "{link}");
        let alt_url = format!("{cert_url}/alternate/1");
        assert!(link.contains(&alt_url), "{link}");
        let alt = pem_certs(&client.get(&alt_url).await.text());
        assert_eq!(alt.len(), 2);
        verify_chain(&alt, &roots, "physics.example.edu").unwrap();
    }
}

#[tokio::test]
async fn csr_checks() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let order_url = ready_order(&mut client, &["physics.example.edu"]).await;
    let finalize = format!("{order_url}/finalize");
    let send = async |client: &mut Client, der: &[u8]| {
        client
            .post(&finalize, Some(json!({"csr": b64::encode(der)})))
            .await
    };

    let (other_names, _) = csr(&["www.physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let detail = send(&mut client, &other_names)
        .await
        .expect_problem(400, "badCSR");
    assert!(detail.contains("do not match"), "{detail}");

    let (p521, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P521_SHA512);
    let detail = send(&mut client, &p521).await.expect_problem(400, "badCSR");
    assert_eq!(
        detail,
        "The CSR's public key uses an unsupported key size or curve"
    );

    let (mut tampered, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    send(&mut client, &tampered)
        .await
        .expect_problem(400, "badCSR");
    send(&mut client, b"not a csr")
        .await
        .expect_problem(400, "badCSR");

    // The account key as the certificate key.
    let pkcs8 = client.key.to_pkcs8().unwrap();
    let account_key = rcgen::KeyPair::try_from(pkcs8.expose().as_slice()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["physics.example.edu".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let same = params
        .serialize_request(&account_key)
        .unwrap()
        .der()
        .to_vec();
    let detail = send(&mut client, &same).await.expect_problem(400, "badCSR");
    assert!(detail.contains("account key"), "{detail}");

    // The order is still ready after refusals; a good CSR goes through once.
    let (good, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(send(&mut client, &good).await.status, 200);
    send(&mut client, &good)
        .await
        .expect_problem(403, "orderNotReady");
}

#[tokio::test]
async fn processing_then_valid_and_certificate_hidden_until_then() {
    let server = start().await;
    let mut client = Client::new(&server, ECC, SignatureAlgorithm::Es256).await;
    client.register().await;
    let order_url = ready_order(&mut client, &["physics.example.edu"]).await;
    let (der, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = client
        .post(
            &format!("{order_url}/finalize"),
            Some(json!({"csr": b64::encode(&der)})),
        )
        .await;
    assert_eq!(r.json()["status"], "processing");
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    assert_eq!(r.location(), order_url);
    let polled = client.get(&order_url).await;
    assert_eq!(polled.json()["status"], "processing");
    assert!(polled.json().get("certificate").is_none());
    assert_eq!(polled.header("retry-after").as_deref(), Some("2"));
    // The certificate id exists but is not served before the order is valid.
    let cert_id = server.state().store.certs()[0].id.clone();
    let early = client
        .get(&format!(
            "{}/cert/{cert_id}",
            client.dir.new_order.rsplit_once('/').unwrap().0
        ))
        .await;
    early.expect_problem(404, "malformed");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let done = client.get(&order_url).await;
    assert_eq!(done.json()["status"], "valid");
    assert!(done.header("retry-after").is_none());
}

#[tokio::test]
async fn revocation_by_account_and_by_certificate_key() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let issue = async |client: &mut Client| {
        let order_url = ready_order(client, &["physics.example.edu"]).await;
        let (der, key) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let order = client.finalize_and_wait(&order_url, &der).await;
        let pem = client
            .get(order["certificate"].as_str().unwrap())
            .await
            .text();
        (pem_certs(&pem).remove(0), key)
    };
    let revoke = client.dir.revoke_cert.clone();

    // By the owning account, with a reason; twice is alreadyRevoked.
    let (leaf, _) = issue(&mut client).await;
    let payload = json!({"certificate": b64::encode(&leaf), "reason": 4});
    let mut stranger = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    stranger.register().await;
    stranger
        .post(&revoke, Some(payload.clone()))
        .await
        .expect_problem(403, "unauthorized");
    let r = client.post(&revoke, Some(payload.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        client
            .post(&revoke, Some(payload))
            .await
            .expect_problem(400, "alreadyRevoked"),
        "Certificate already revoked"
    );

    // A reason RFC 5280 reserves.
    let (leaf, key) = issue(&mut client).await;
    let bad = json!({"certificate": b64::encode(&leaf), "reason": 7});
    client
        .post(&revoke, Some(bad))
        .await
        .expect_problem(400, "badRevocationReason");

    // By the certificate's own key, signed with a jwk.
    let cert_key =
        acme_proto::AccountKey::from_pkcs8(SignatureAlgorithm::Es256, &key.serialize_der())
            .unwrap();
    let mut by_key = Client::with_key(&server, RSA, cert_key).await;
    let r = by_key
        .post(&revoke, Some(json!({"certificate": b64::encode(&leaf)})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked = server
        .state()
        .store
        .certs()
        .iter()
        .filter(|c| c.revoked.is_some())
        .count();
    assert_eq!(revoked, 2);
}

#[tokio::test]
async fn restart_with_the_same_data_dir_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let start_in = async |dir: &std::path::Path| {
        let mut config = mock_server::ServerConfig::ephemeral();
        config.data_dir = Some(dir.to_owned());
        config.ca = None; // the CA kept in the data directory is what this test is about
        start_config(config).await
    };
    let first = start_in(dir.path()).await;
    let roots = std::fs::read(&first.ready().roots).unwrap();
    let bundle = std::fs::read(&first.ready().ca_bundle).unwrap();
    let ready_json = dir.path().join("ready.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ready_json).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "ready.json holds the demo HMAC key");
        for entry in std::fs::read_dir(dir.path().join("ca")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "key") {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            }
        }
    }
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ready_json).unwrap()).unwrap();
    for key in [
        "directory",
        "directories",
        "ca_bundle",
        "roots",
        "admin_url",
        "admin_token",
        "demo",
    ] {
        assert!(ready.get(key).is_some(), "ready.json lacks {key}");
    }
    for key in ["eab_kid", "eab_hmac_key", "domains", "undelegated_domain"] {
        assert!(
            ready["demo"].get(key).is_some(),
            "ready.json demo lacks {key}"
        );
    }
    first.shutdown().await;
    let second = start_in(dir.path()).await;
    assert_eq!(std::fs::read(&second.ready().roots).unwrap(), roots);
    assert_eq!(std::fs::read(&second.ready().ca_bundle).unwrap(), bundle);
    // And the restarted server's TLS is trusted by the old bundle.
    let http = http_client(&dir.path().join("ca-bundle.pem"));
    let r = http.get(&second.ready().directory).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A CA kept in the data directory never hands its keys out, not even to the admin
    // token's holder (docs/pebble.md); its certificates it does.
    let (status, root) = admin(&second, reqwest::Method::GET, "/pebble/roots/0", None).await;
    assert_eq!(status, 200);
    assert!(root.as_str().unwrap().contains("BEGIN CERTIFICATE"));
    for path in ["/pebble/root-keys/0", "/pebble/intermediate-keys/1"] {
        let (status, body) = admin(&second, reqwest::Method::GET, path, None).await;
        assert_eq!((status, body.as_str()), (404, Some("")), "{path}");
    }
}

#[tokio::test]
async fn dv_and_ev_profiles_shape_the_certificate() {
    let server = start_without_processing().await;
    for (profile, has_org, policy) in [
        ("sectigo-dv", false, "2.23.140.1.2.1"),
        ("sectigo-ev", true, "2.23.140.1.1"),
        ("sectigo-ov", true, "2.23.140.1.2.2"),
    ] {
        let mut client = Client::new(&server, profile, SignatureAlgorithm::Es256).await;
        assert_eq!(client.register().await.status, 201);
        let order_url = ready_order(&mut client, &["physics.example.edu"]).await;
        let (der, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let order = client.finalize_and_wait(&order_url, &der).await;
        let pem = client
            .get(order["certificate"].as_str().unwrap())
            .await
            .text();
        let leaf = pem_certs(&pem).remove(0);
        let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
        let subject = cert.subject().to_string();
        assert_eq!(
            subject.contains("O=Example University"),
            has_org,
            "{profile}: {subject}"
        );
        let policies: Vec<String> = cert
            .extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::CertificatePolicies(p) => Some(
                    p.iter()
                        .map(|i| i.policy_id.to_id_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(policies, [policy], "{profile}");
    }
}

/// `order.retry_after_http_date`: a processing order's Retry-After comes as an HTTP-date
/// (RFC 9110 §10.2.3), at least the profile's seconds ahead.
#[tokio::test]
async fn retry_after_can_be_an_http_date() {
    let server = start_profile("sectigo-incommon-rsa-ov", "dated", |p| {
        p.order.retry_after_http_date = true;
    })
    .await;
    let mut client = Client::new(&server, "dated", SignatureAlgorithm::Es256).await;
    assert_eq!(client.register().await.status, 201);
    let r = client.new_order(&["physics.example.edu"]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let finalize = r.json()["finalize"].as_str().unwrap().to_owned();
    let (der, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let sent = std::time::SystemTime::now();
    let r = client
        .post(&finalize, Some(json!({ "csr": b64::encode(&der) })))
        .await;
    assert_eq!(r.json()["status"], "processing");
    let value = r.header("retry-after").expect("Retry-After");
    let at = httpdate::parse_http_date(&value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    let ahead = at.duration_since(sent).expect("in the future");
    assert!(
        ahead >= std::time::Duration::from_secs(2),
        "{value} is {ahead:?} ahead"
    );
}
