//! The ACME features a current Pebble has and client suites exercise, each a profile switch:
//! certificate profiles, the blocklist's subproblems, IP identifiers (RFC 8738), ARI
//! `replaces` (RFC 9773), authorization reuse, order-list pages, userActionRequired and the
//! strict refusals. Then the Pebble stand-in itself, started in-process as `acme-harness
//! pebble` starts it: the CA its chain knobs shape, with its management API.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use acme_proto::{KeyAuthorization, SignatureAlgorithm, b64};
use common::*;
use mock_server::Profile;
use serde_json::{Value, json};

type Answers = Arc<Mutex<HashMap<String, String>>>;

/// An http-01 responder on 127.0.0.1:0: its port and the token -> answer map.
async fn http01_responder() -> (u16, Answers) {
    let answers: Answers = Arc::default();
    let map = answers.clone();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(
            move |axum::extract::Path(token): axum::extract::Path<String>| {
                let map = map.clone();
                async move { map.lock().unwrap().get(&token).cloned().unwrap_or_default() }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, answers)
}

/// A server with one profile, `pebble`: the rfc8555 profile as `edit` changes it, no wait
/// after finalize, http-01 validated against `http_port`.
async fn server(http_port: u16, edit: impl FnOnce(&mut Profile)) -> Server {
    let mut profile = Profile::built_in("rfc8555").unwrap();
    profile.name = "pebble".into();
    profile.directory_path = "/v2/pebble".into();
    edit(&mut profile);
    start_custom(|c| {
        c.profiles = vec![profile];
        c.http01_port = http_port;
        c.tlsalpn01_port = 1;
    })
    .await
}

async fn account(server: &Server) -> Client {
    let mut client = Client::new(server, "pebble", SignatureAlgorithm::Es256).await;
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    client
}

async fn order(client: &mut Client, payload: Value) -> common::Resp {
    let url = client.dir.new_order.clone();
    client.post(&url, Some(payload)).await
}

fn ids(values: &[(&str, &str)]) -> Value {
    values
        .iter()
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect()
}

/// Answers every pending authorization of `order` with its http-01 challenge and waits for
/// the order to be ready.
async fn validate_http01(client: &mut Client, answers: &Answers, order: &Value, url: &str) {
    for authz_url in order["authorizations"].as_array().unwrap() {
        let authz = client.get(authz_url.as_str().unwrap()).await.json();
        if authz["status"] == "valid" {
            continue;
        }
        let chall = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "http-01")
            .unwrap()
            .clone();
        let token = chall["token"].as_str().unwrap();
        let ka = KeyAuthorization::new(token, &client.key.jwk().thumbprint());
        answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), ka.as_str().to_owned());
        let r = client
            .post(chall["url"].as_str().unwrap(), Some(json!({})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for _ in 0..100 {
        let o = client.get(url).await.json();
        match o["status"].as_str() {
            Some("ready") => return,
            Some("pending") => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            other => panic!("order went {other:?}: {o}"),
        }
    }
    panic!("the order never became ready");
}

/// An order for `identifiers` (and `extra` members) validated over http-01 and finalized
/// with a CSR for `names`: the valid order and the leaf's DER.
async fn issue(
    client: &mut Client,
    answers: &Answers,
    payload: Value,
    names: &[&str],
) -> (Value, Vec<u8>) {
    let r = order(client, payload).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let url = r.location();
    validate_http01(client, answers, &r.json(), &url).await;
    let (der, _) = csr(names, &rcgen::PKCS_ECDSA_P256_SHA256);
    let done = client.finalize_and_wait(&url, &der).await;
    let pem = client
        .get(done["certificate"].as_str().unwrap())
        .await
        .text();
    (done, pem_certs(&pem).remove(0))
}

/// The ARI identifier of a leaf (RFC 9773 §4.1): base64url AKI "." base64url serial.
fn ari_id(leaf: &[u8]) -> String {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        })
        .unwrap();
    format!("{}.{}", b64::encode(aki.0), b64::encode(cert.raw_serial()))
}

#[tokio::test]
async fn certificate_profiles_offered_chosen_and_refused() {
    let (port, answers) = http01_responder().await;
    let server = server(port, |_| {}).await;
    let mut client = account(&server).await;
    let profiles = client.dir.meta.as_ref().unwrap().profiles.clone();
    assert_eq!(
        profiles.keys().map(String::as_str).collect::<Vec<_>>(),
        ["default", "shortlived"]
    );
    let r = order(
        &mut client,
        json!({"identifiers": ids(&[("dns", "a.example.com")])}),
    )
    .await;
    assert_eq!(r.json()["profile"], "default", "{}", r.text());
    let r = order(
        &mut client,
        json!({"identifiers": ids(&[("dns", "a.example.com")]), "profile": "nonesuch"}),
    )
    .await;
    let detail = r.expect_problem(400, "invalidProfile");
    assert!(detail.contains("nonesuch"), "{detail}");
    // A short-lived certificate under the short-lived profile.
    let (done, leaf) = issue(
        &mut client,
        &answers,
        json!({"identifiers": ids(&[("dns", "short.example.com")]), "profile": "shortlived"}),
        &["short.example.com"],
    )
    .await;
    assert_eq!(done["profile"], "shortlived");
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert!(days <= 7, "{days} days");
}

#[tokio::test]
async fn blocked_names_get_one_subproblem_each() {
    let server = server(1, |_| {}).await;
    let mut client = account(&server).await;
    let r = order(
        &mut client,
        json!({"identifiers": ids(&[
            ("dns", "fine.example.com"),
            ("dns", "blocked-domain.example"),
            ("dns", "www.blocked-domain.example"),
        ])}),
    )
    .await;
    r.expect_problem(400, "rejectedIdentifier");
    let subs: Vec<String> = r
        .problem()
        .subproblems
        .iter()
        .map(|s| s.identifier.clone().unwrap().value)
        .collect();
    assert_eq!(
        subs,
        ["blocked-domain.example", "www.blocked-domain.example"]
    );
}

/// RFC 8738: an IP identifier gets http-01 and tls-alpn-01 only, is validated on the address
/// itself and ends up as an iPAddress SAN.
#[tokio::test]
async fn ip_identifier_validated_over_http01_and_issued() {
    let (port, answers) = http01_responder().await;
    let server = server(port, |_| {}).await;
    let mut client = account(&server).await;
    let payload = json!({"identifiers": ids(&[("dns", "web.example.com"), ("ip", "127.0.0.1")])});
    let r = order(&mut client, payload.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let authz_url = r.json()["authorizations"][1].as_str().unwrap().to_owned();
    let authz = client.get(&authz_url).await.json();
    assert_eq!(
        authz["identifier"],
        json!({"type": "ip", "value": "127.0.0.1"})
    );
    let mut kinds: Vec<&str> = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["http-01", "tls-alpn-01"]);
    let (done, leaf) = issue(
        &mut client,
        &answers,
        payload,
        &["web.example.com", "127.0.0.1"],
    )
    .await;
    assert_eq!(done["identifiers"][1]["type"], "ip");
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(
        san.value
            .general_names
            .iter()
            .any(|g| matches!(g, GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1]))
    );
    // Sectigo's profiles still refuse IP identifiers.
    let server = start().await;
    let mut sectigo = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    assert_eq!(sectigo.register().await.status, 201);
    let r = order(
        &mut sectigo,
        json!({"identifiers": ids(&[("ip", "127.0.0.1")])}),
    )
    .await;
    r.expect_problem(400, "unsupportedIdentifier");
}

/// RFC 9773 §5: `replaces` names a certificate of the account; once the replacing order is
/// finalized, a second replacement is `alreadyReplaced` (409).
#[tokio::test]
async fn replaces_then_already_replaced() {
    let (port, answers) = http01_responder().await;
    let server = server(port, |_| {}).await;
    let mut client = account(&server).await;
    let names = [("dns", "renew.example.com")];
    let (_, leaf) = issue(
        &mut client,
        &answers,
        json!({"identifiers": ids(&names)}),
        &["renew.example.com"],
    )
    .await;
    let old = ari_id(&leaf);
    let r = order(
        &mut client,
        json!({"identifiers": ids(&names), "replaces": "AAAA.AAAA"}),
    )
    .await;
    r.expect_problem(400, "malformed");
    let (done, _) = issue(
        &mut client,
        &answers,
        json!({"identifiers": ids(&names), "replaces": old}),
        &["renew.example.com"],
    )
    .await;
    assert_eq!(done["replaces"], old);
    let r = order(
        &mut client,
        json!({"identifiers": ids(&names), "replaces": old}),
    )
    .await;
    r.expect_problem(409, "alreadyReplaced");
    // Another account may not replace it either.
    let mut other = account(&server).await;
    let r = order(
        &mut other,
        json!({"identifiers": ids(&names), "replaces": ari_id(&leaf)}),
    )
    .await;
    r.expect_problem(403, "unauthorized");
}

/// With reuse at 100%, a second order for a validated name gets the same, valid
/// authorization and is ready at once.
#[tokio::test]
async fn valid_authorizations_are_reused() {
    let (port, answers) = http01_responder().await;
    let server = server(port, |p| p.order.authz_reuse_percent = 100).await;
    let mut client = account(&server).await;
    let payload = json!({"identifiers": ids(&[("dns", "reuse.example.com")])});
    let r = order(&mut client, payload.clone()).await;
    let first = r.json();
    validate_http01(&mut client, &answers, &first, &r.location()).await;
    let r = order(&mut client, payload).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["authorizations"], first["authorizations"]);
    assert_eq!(r.json()["status"], "ready");
}

/// The order list in pages, each linking the next with rel="next".
#[tokio::test]
async fn order_list_in_pages() {
    let server = server(1, |p| p.account.orders_per_page = Some(2)).await;
    let mut client = account(&server).await;
    for i in 0..3 {
        let name = format!("o{i}.example.com");
        let r = order(&mut client, json!({"identifiers": ids(&[("dns", &name)])})).await;
        assert_eq!(r.status, 201);
    }
    let kid = client.kid.clone().unwrap();
    let list = client.get(&kid).await.json()["orders"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = client.get(&list).await;
    assert_eq!(first.json()["orders"].as_array().unwrap().len(), 2);
    let next = first
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| l.strip_prefix('<'))
        .and_then(|l| l.split_once('>'))
        .map(|(u, _)| u.to_owned())
        .unwrap();
    let second = client.get(&next).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["orders"].as_array().unwrap().len(), 1);
    let links: Vec<String> = second
        .headers
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        !links.iter().any(|l| l.contains("rel=\"next\"")),
        "{links:?}"
    );
}

/// Pebble's refusals: terms not agreed (userActionRequired, with the terms linked), a POST
/// without User-Agent, a challenge payload other than `{}`, an ACME v1 `resource` member.
#[tokio::test]
async fn strict_refusals_and_user_action_required() {
    let server = server(1, |p| {
        p.meta.terms_of_service = Some("https://example.com/terms".into());
        p.account.terms_agreement_required = true;
        p.strict.require_user_agent = true;
        p.strict.challenge_payload_exactly_empty_object = true;
        p.strict.refuse_resource_field = true;
    })
    .await;
    let mut client = Client::new(&server, "pebble", SignatureAlgorithm::Es256).await;
    let r = client.register_with(json!({"contact": []})).await;
    r.expect_problem(403, "userActionRequired");
    assert!(
        r.header("link")
            .unwrap()
            .contains("<https://example.com/terms>;rel=\"terms-of-service\"")
    );
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true, "resource": "new-reg"}))
        .await;
    let detail = r.expect_problem(400, "malformed");
    assert!(detail.contains("resource"), "{detail}");
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let o = order(
        &mut client,
        json!({"identifiers": ids(&[("dns", "s.example.com")])}),
    )
    .await;
    let authz = client
        .get(o.json()["authorizations"][0].as_str().unwrap())
        .await
        .json();
    let chall = authz["challenges"][0]["url"].as_str().unwrap().to_owned();
    let r = client.post(&chall, Some(json!({"a": 1}))).await;
    r.expect_problem(400, "malformed");
    // No User-Agent: refused before anything else is looked at.
    let tls = reference_client::raw::tls_config(&[server.ready().ca_bundle.clone()]).unwrap();
    let bare = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let r = bare
        .post(&client.dir.new_account)
        .header("content-type", "application/jose+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("User-Agent"),
        "{body}"
    );
}

/// dns-account-01 (draft-ietf-acme-dns-account-label), where the profile offers it: also on
/// wildcards; the TXT record sits under the account's label, and the plain dns-01 name does
/// not satisfy it.
#[tokio::test]
async fn dns_account_01_under_the_account_label() {
    use sha2::Digest as _;
    let server = server(1, |p| {
        p.order
            .challenge_types
            .push(acme_proto::ChallengeType::DnsAccount01);
    })
    .await;
    let mut client = account(&server).await;
    let r = order(
        &mut client,
        json!({"identifiers": ids(&[("dns", "*.acct.example.com")])}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_owned();
    let authz = client.get(&authz_url).await.json();
    let chall = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "dns-account-01")
        .unwrap_or_else(|| panic!("no dns-account-01 in {authz}"))
        .clone();
    let ka = KeyAuthorization::new(
        chall["token"].as_str().unwrap(),
        &client.key.jwk().thumbprint(),
    );
    // The label: base32 (RFC 4648 alphabet, lower case) of the first ten bytes of SHA-256 of
    // the account URL.
    let digest = sha2::Sha256::digest(client.kid.clone().unwrap().as_bytes());
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits = digest[..10]
        .iter()
        .fold(0u128, |a, b| (a << 8) | u128::from(*b));
    let label: String = (0..16)
        .rev()
        .map(|i| char::from(alphabet[((bits >> (i * 5)) & 31) as usize]))
        .collect();
    let (status, _) = admin(
        &server,
        reqwest::Method::PUT,
        &format!("/dns/_{label}._acme-challenge.acct.example.com"),
        Some(json!({"txt": [ka.dns_value()]})),
    )
    .await;
    assert_eq!(status, 200);
    let url = chall["url"].as_str().unwrap().to_owned();
    assert_eq!(client.post(&url, Some(json!({}))).await.status, 200);
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let c = client.get(&url).await.json();
        if c["status"] != "processing" && c["status"] != "pending" {
            assert_eq!(c["status"], "valid", "{c}");
            return;
        }
    }
    panic!("dns-account-01 validation never finished");
}

// ---- The stand-in's CA: PEBBLE_CHAIN_LENGTH, PEBBLE_ALTERNATE_ROOTS and the key endpoints.

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CA the fixtures' Pebble certificate chains to (both listeners use it).
fn fixture_ca() -> std::path::PathBuf {
    repo().join("fixtures/pebble/certs/ca.pem")
}

/// The Pebble stand-in on free loopback ports with the fixtures' certificate, every
/// challenge valid without a look (`PEBBLE_VA_ALWAYS_VALID`), no sleep, no refused nonce,
/// and `knobs`; Pebble's default `keyAlgorithm` (RSA).
async fn stand_in(knobs: &[(&str, &str)]) -> pebble_compat::Running {
    stand_in_with("", knobs).await
}

/// [`stand_in`] with more config keys: `more` is `"key": value, ...` (or empty).
async fn stand_in_with(more: &str, knobs: &[(&str, &str)]) -> pebble_compat::Running {
    use pebble_compat::{config::PebbleConfig, knobs::Knobs};
    let config = PebbleConfig::parse(&format!(
        r#"{{"pebble": {{"listenAddress": "127.0.0.1:0", "managementListenAddress": "127.0.0.1:0",
            "certificate": "fixtures/pebble/certs/cert.pem",
            "privateKey": "fixtures/pebble/certs/key.pem", "httpPort": 1, "tlsPort": 1{}{more}}}}}"#,
        if more.is_empty() { "" } else { ", " }
    ))
    .unwrap();
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("PEBBLE_VA_ALWAYS_VALID", "1"),
        ("PEBBLE_VA_NOSLEEP", "1"),
        ("PEBBLE_WFE_NONCEREJECT", "0"),
    ]);
    env.extend(knobs.iter().copied());
    let knobs = Knobs::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()));
    pebble_compat::start(&config, "", &knobs, &repo())
        .await
        .unwrap()
}

/// A certificate for `name` from the stand-in: the account's client and the download of the
/// default chain.
async fn stand_in_issue(
    running: &pebble_compat::Running,
    name: &str,
) -> (Client, common::Resp, String) {
    let url = format!("https://localhost:{}/dir", running.server.addr().port());
    let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let mut client = Client::at(&url, &fixture_ca(), key).await;
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = order(&mut client, json!({"identifiers": ids(&[("dns", name)])})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let order_url = r.location();
    validate_http01(&mut client, &Answers::default(), &r.json(), &order_url).await;
    let (der, _) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let done = client.finalize_and_wait(&order_url, &der).await;
    let cert_url = done["certificate"].as_str().unwrap().to_owned();
    let r = client.get(&cert_url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (client, r, cert_url)
}

/// A management API answer: status, `Link` alternates, body.
async fn management(running: &pebble_compat::Running, path: &str) -> (u16, Vec<String>, String) {
    let port = running.management_addr().unwrap().port();
    let r = http_client(&fixture_ca())
        .get(format!("https://localhost:{port}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let links = alternates(r.headers());
    (status, links, r.text().await.unwrap())
}

/// The targets of the `Link: <...>;rel="alternate"` headers.
fn alternates(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.ends_with(";rel=\"alternate\""))
        .filter_map(|v| {
            v.split_once('>')
                .map(|(u, _)| u.trim_start_matches('<').to_owned())
        })
        .collect();
    out.sort();
    out
}

/// The public key (DER SubjectPublicKeyInfo) of a PEM private key, read by aws-lc.
fn public_of_key(pem: &str) -> Vec<u8> {
    use rcgen::PublicKeyData as _;
    let der = rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap();
    rcgen::KeyPair::try_from(&der)
        .unwrap()
        .subject_public_key_info()
}

/// The public key (DER SubjectPublicKeyInfo) of the first certificate of a PEM.
fn public_of_cert(pem: &str) -> Vec<u8> {
    use x509_parser::prelude::*;
    let der = pem_certs(pem).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.public_key().raw.to_vec()
}

#[tokio::test]
async fn chain_length_puts_that_many_intermediates_up_to_roots_0() {
    let running = stand_in(&[("PEBBLE_CHAIN_LENGTH", "3")]).await;
    let (_, r, _) = stand_in_issue(&running, "three.chain.example").await;
    let chain = pem_certs(&r.text());
    assert_eq!(chain.len(), 4, "the leaf and 3 intermediates");
    assert!(
        alternates(&r.headers).is_empty(),
        "one chain, no alternates"
    );
    let (status, links, root) = management(&running, "/roots/0").await;
    assert_eq!((status, links.len()), (200, 0));
    verify_chain(&chain, &root, "three.chain.example").unwrap();
    // Without the middle intermediates there is no path.
    assert!(verify_chain(&chain[..2], &root, "three.chain.example").is_err());
    // /intermediates/0 is the one that signs leaves, not the ones above it.
    let (_, _, issuing) = management(&running, "/intermediates/0").await;
    assert_eq!(pem_certs(&issuing), chain[1..2]);
    for path in [
        "/roots/1",
        "/intermediates/1",
        "/root-keys/1",
        "/intermediate-keys/1",
    ] {
        let (status, _, body) = management(&running, path).await;
        assert_eq!((status, body.as_str()), (404, ""), "{path}");
    }
}

#[tokio::test]
async fn alternate_roots_give_chains_to_their_own_roots_and_the_keys() {
    let running = stand_in(&[("PEBBLE_ALTERNATE_ROOTS", "2")]).await;
    let (mut client, r, cert_url) = stand_in_issue(&running, "alt.chain.example").await;
    let mgmt = format!(
        "https://localhost:{}",
        running.management_addr().unwrap().port()
    );
    let mut roots = Vec::new();
    for n in 0..3 {
        let (status, links, root) = management(&running, &format!("/roots/{n}")).await;
        assert_eq!(status, 200);
        let others: Vec<String> = (0..3)
            .filter(|i| *i != n)
            .map(|i| format!("{mgmt}/roots/{i}"))
            .collect();
        assert_eq!(links, others, "/roots/{n}");
        roots.push(root);
    }
    let distinct: std::collections::BTreeSet<&String> = roots.iter().collect();
    assert_eq!(distinct.len(), 3, "three distinct roots");
    // The default download links chains 1 and 2; each alternate links the other two.
    let url_of = |n: usize| match n {
        0 => cert_url.clone(),
        n => format!("{cert_url}/alternate/{n}"),
    };
    assert_eq!(alternates(&r.headers), [url_of(1), url_of(2)]);
    for n in 0..3 {
        let r = client.post(&url_of(n), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mut others: Vec<String> = (0..3).filter(|i| *i != n).map(url_of).collect();
        others.sort();
        assert_eq!(alternates(&r.headers), others, "chain {n}");
        let chain = pem_certs(&r.text());
        assert_eq!(chain.len(), 2);
        for (i, root) in roots.iter().enumerate() {
            assert_eq!(
                verify_chain(&chain, root, "alt.chain.example").is_ok(),
                i == n,
                "chain {n} against root {i}"
            );
        }
        // The keys of that chain's root and issuing CA.
        let (status, links, key) = management(&running, &format!("/root-keys/{n}")).await;
        assert_eq!((status, links.len()), (200, 2));
        assert!(
            key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "PKCS#1, as Pebble"
        );
        assert_eq!(public_of_key(&key), public_of_cert(&roots[n]));
        let (_, _, issuing) = management(&running, &format!("/intermediates/{n}")).await;
        assert_eq!(pem_certs(&issuing), chain[1..]);
        let (status, _, key) = management(&running, &format!("/intermediate-keys/{n}")).await;
        assert_eq!(status, 200);
        assert_eq!(public_of_key(&key), public_of_cert(&issuing));
    }
    let r = client.post(&format!("{cert_url}/alternate/3"), None).await;
    assert_eq!(r.status, 404);
    for path in [
        "/roots/3",
        "/root-keys/3",
        "/intermediates/3",
        "/intermediate-keys/9",
        "/root-keys/-1",
    ] {
        let (status, links, body) = management(&running, path).await;
        assert_eq!((status, links.len(), body.as_str()), (404, 0, ""), "{path}");
    }
}

/// Answers `url` (a challenge) and waits until it is settled; returns it.
async fn settle(client: &mut Client, url: &str) -> Value {
    assert_eq!(client.post(url, Some(json!({}))).await.status, 200);
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let c = client.get(url).await.json();
        if c["status"] != "processing" && c["status"] != "pending" {
            return c;
        }
    }
    panic!("{url} was never settled");
}

/// dns-persist-01 (draft-ietf-acme-dns-persist), offered by the rfc8555 profile as by Pebble:
/// no token, the account URL and the issuers in the challenge; the standing TXT record at
/// `_validation-persist.NAME` must name an issuer and this account, and `policy=wildcard`
/// for a wildcard; a record for our issuer that does not parse is `malformed`.
/// The stand-in's account object carries the binding it was made with, as Pebble's does (a
/// suite may look for it); a Sectigo profile's does not. Every decoded view of the exchange
/// (transcripts, the judge, the console) shows the echoed MAC redacted, as the sent one.
#[tokio::test]
async fn the_stand_in_echoes_the_eab_binding_in_the_account() {
    let hmac = b"an-hmac-key-for-the-stand-in-test";
    let running = stand_in_with(
        &format!(
            r#""externalAccountBindingRequired": true, "externalAccountMACKeys": {{"kid-1": "{}"}}"#,
            b64::encode(hmac)
        ),
        &[],
    )
    .await;
    let url = format!("https://localhost:{}/dir", running.server.addr().port());
    let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let mut client = Client::at(&url, &fixture_ca(), key).await;
    let binding = client.eab("kid-1", hmac, acme_proto::eab::MacAlgorithm::Hs256);
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["externalAccountBinding"], binding);
    // Fetched again (POST-as-GET), it still has it.
    let account_url = r.location();
    let again = client.post(&account_url, None).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["externalAccountBinding"], binding);

    let signature = binding["signature"].as_str().unwrap();
    let exchanges = running.server.state().store.transcripts.all();
    let text = serde_json::to_string(&exchanges).unwrap();
    assert!(
        !text.contains(signature),
        "the MAC in the transcript: {text}"
    );
    let echoed: Vec<&Value> = exchanges
        .iter()
        .filter(|e| e.status == 201 || e.url == account_url)
        .filter_map(|e| e.response_body.as_ref())
        .collect();
    assert_eq!(echoed.len(), 2, "{text}");
    for body in echoed {
        assert_eq!(
            body["externalAccountBinding"]["signature"],
            acme_proto::transcript::REDACTED
        );
    }

    // A Sectigo profile answers without it.
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let r = client.register().await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.json().get("externalAccountBinding").is_none(),
        "{}",
        r.text()
    );
}

/// `meta.caaIdentities` is in the stand-in's directory only when its config names it (as in
/// Pebble 2.4, whose suites assert the member is absent), while Pebble's issuer name binds
/// dns-persist-01 either way.
#[tokio::test]
async fn caa_identities_listed_only_when_the_config_names_them() {
    for (more, listed, issuers) in [
        ("", None, json!(["pebble.letsencrypt.org"])),
        (
            r#""caaIdentities": ["ca.example", "other.example"]"#,
            Some(json!(["ca.example", "other.example"])),
            json!(["ca.example", "other.example"]),
        ),
    ] {
        let running = stand_in_with(more, &[]).await;
        let url = format!("https://localhost:{}/dir", running.server.addr().port());
        let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let mut client = Client::at(&url, &fixture_ca(), key).await;
        let dir: Value = http_client(&fixture_ca())
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            dir["meta"].get("caaIdentities"),
            listed.as_ref(),
            "{more}: {dir}"
        );
        let r = client
            .register_with(json!({"termsOfServiceAgreed": true}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = order(
            &mut client,
            json!({"identifiers": ids(&[("dns", "caa.example.org")])}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_owned();
        let authz = client.get(&authz_url).await.json();
        let persist = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "dns-persist-01")
            .unwrap_or_else(|| panic!("no dns-persist-01 in {authz}"))
            .clone();
        assert_eq!(persist["issuer-domain-names"], issuers, "{more}: {persist}");
    }
}

#[tokio::test]
async fn dns_persist_01_reads_the_standing_record() {
    let server = server(1, |_| {}).await;
    let mut client = account(&server).await;
    let kid = client.kid.clone().unwrap();
    let persist_challenge = async |client: &mut Client, name: &str, txt: &[String]| {
        let (status, _) = admin(
            &server,
            reqwest::Method::PUT,
            &format!("/dns/_validation-persist.{}", name.trim_start_matches("*.")),
            Some(json!({ "txt": txt })),
        )
        .await;
        assert_eq!(status, 200);
        let r = order(client, json!({"identifiers": ids(&[("dns", name)])})).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let authz_url = r.json()["authorizations"][0].as_str().unwrap().to_owned();
        let authz = client.get(&authz_url).await.json();
        let types: Vec<&str> = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        if name.starts_with("*.") {
            assert_eq!(types, ["dns-01", "dns-persist-01"], "{authz}");
        } else {
            assert!(types.contains(&"http-01") && types.contains(&"dns-persist-01"));
        }
        authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "dns-persist-01")
            .unwrap()
            .clone()
    };
    // A wildcard without policy=wildcard: unauthorized.
    let plain = format!("pebble.letsencrypt.org; accounturi={kid}");
    let chall = persist_challenge(&mut client, "*.persist.example.com", &[plain]).await;
    assert!(chall.get("token").is_none(), "{chall}");
    assert_eq!(chall["accounturi"], kid.as_str());
    assert_eq!(
        chall["issuer-domain-names"],
        json!(["pebble.letsencrypt.org"])
    );
    let c = settle(&mut client, chall["url"].as_str().unwrap()).await;
    assert_eq!(c["status"], "invalid", "{c}");
    assert_eq!(
        c["error"]["type"],
        "urn:ietf:params:acme:error:unauthorized"
    );
    // Another account's URL: unauthorized.
    let other = format!("pebble.letsencrypt.org; accounturi={kid}x");
    let chall = persist_challenge(&mut client, "other.persist.example.com", &[other]).await;
    let c = settle(&mut client, chall["url"].as_str().unwrap()).await;
    assert_eq!(
        c["error"]["type"],
        "urn:ietf:params:acme:error:unauthorized"
    );
    // A repeated tag in a record for our issuer: malformed.
    let twice = format!("pebble.letsencrypt.org; accounturi={kid}; AccountURI={kid}");
    let chall = persist_challenge(&mut client, "twice.persist.example.com", &[twice]).await;
    let c = settle(&mut client, chall["url"].as_str().unwrap()).await;
    assert_eq!(c["error"]["type"], "urn:ietf:params:acme:error:malformed");
    // Tags in any case, a later persistUntil, another CA's record beside it: valid.
    let until = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let good = [
        "ca.example; accounturi=whatever".to_owned(),
        format!("Pebble.LetsEncrypt.org;AccountURI={kid} ; Policy=WILDCARD; persistUntil={until}"),
    ];
    let chall = persist_challenge(&mut client, "*.good.persist.example.com", &good).await;
    let c = settle(&mut client, chall["url"].as_str().unwrap()).await;
    assert_eq!(c["status"], "valid", "{c}");
    // The same record after its persistUntil: unauthorized.
    let past = format!("pebble.letsencrypt.org; accounturi={kid}; persistUntil=1");
    let chall = persist_challenge(&mut client, "past.persist.example.com", &[past]).await;
    let c = settle(&mut client, chall["url"].as_str().unwrap()).await;
    assert_eq!(
        c["error"]["type"],
        "urn:ietf:params:acme:error:unauthorized"
    );
}

/// A client without a User-Agent, trusting the server's CA.
fn bare_client(server: &Server) -> reqwest::Client {
    let tls = reference_client::raw::tls_config(&[server.ready().ca_bundle.clone()]).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// `strict.require_user_agent` refuses every ACME request without a User-Agent, the unsigned
/// ones too (directory, newNonce, renewalInfo), as Pebble 2.10: `malformed`, no nonce, no
/// Link. Off (Pebble 2.4, the stand-in's default), the same requests are answered.
#[tokio::test]
async fn user_agent_required_on_every_request_when_switched_on() {
    for on in [true, false] {
        let server = start_custom(|c| {
            let mut profile = Profile::built_in("rfc8555").unwrap();
            profile.strict.require_user_agent = on;
            c.profiles = vec![profile];
            c.pebble_paths = true;
        })
        .await;
        let client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
        let bare = bare_client(&server);
        let origin = client
            .dir
            .new_nonce
            .split("/v2/")
            .next()
            .unwrap()
            .to_owned();
        let renewal = format!("{}/AAAA.AAAA", client.dir.renewal_info.clone().unwrap());
        let requests = [
            bare.get(format!("{origin}/dir")),
            bare.get(format!("{origin}/v2/rfc8555")),
            bare.head(&client.dir.new_nonce),
            bare.get(&client.dir.new_nonce),
            bare.get(&renewal),
            bare.post(&client.dir.new_order)
                .header("content-type", "application/jose+json")
                .body("{}"),
        ];
        for request in requests {
            let r = request.header("user-agent", "").send().await.unwrap();
            let (status, headers, url) = (r.status(), r.headers().clone(), r.url().clone());
            if on {
                assert_eq!(status, 400, "{url}");
                assert!(!headers.contains_key("replay-nonce"), "{url}");
                assert!(!headers.contains_key("link"), "{url}");
                let text = r.text().await.unwrap();
                if !text.is_empty() {
                    // (HEAD has no body.)
                    let body: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(body["type"], "urn:ietf:params:acme:error:malformed");
                    assert_eq!(
                        body["detail"],
                        "All requests MUST include a User-Agent header"
                    );
                }
            } else {
                let body = r.text().await.unwrap();
                assert!(!body.contains("User-Agent"), "{url}: {status} {body}");
            }
        }
        // With one, the switch changes nothing.
        let r = bare
            .get(format!("{origin}/dir"))
            .header("user-agent", "suite/1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The stand-in serves ARI at Pebble's path too (`/draft-ietf-acme-ari-03/renewalInfo/ID`):
/// the same window as the directory's renewalInfo URL, 404 `malformed` for an unknown
/// certificate, and a POST is Pebble's 500.
#[tokio::test]
async fn renewal_info_at_pebbles_path() {
    let (port, answers) = http01_responder().await;
    let server = start_custom(|c| {
        let mut profile = Profile::built_in("rfc8555").unwrap();
        profile.account.terms_agreement_required = false;
        c.profiles = vec![profile];
        c.http01_port = port;
        c.pebble_paths = true;
    })
    .await;
    let mut client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
    let r = client.register_with(json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let names = [("dns", "ari.example.com")];
    let (_, leaf) = issue(
        &mut client,
        &answers,
        json!({"identifiers": ids(&names)}),
        &["ari.example.com"],
    )
    .await;
    let id = ari_id(&leaf);
    let origin = client
        .dir
        .new_nonce
        .split("/v2/")
        .next()
        .unwrap()
        .to_owned();
    let pebble_url = format!("{origin}/draft-ietf-acme-ari-03/renewalInfo/{id}");
    let own_url = format!("{}/{id}", client.dir.renewal_info.clone().unwrap());
    let http = bare_client(&server);
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(&url)
                .header("user-agent", "t")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            (status, retry, r.json::<Value>().await.unwrap())
        }
    };
    let (status, retry, pebble) = get(pebble_url.clone()).await;
    assert_eq!(status, 200, "{pebble}");
    assert!(retry.is_some());
    let (_, _, own) = get(own_url).await;
    assert_eq!(pebble, own);
    assert!(pebble["suggestedWindow"]["start"].is_string(), "{pebble}");
    let (status, _, body) = get(format!(
        "{origin}/draft-ietf-acme-ari-03/renewalInfo/AAAA.AAAA"
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "urn:ietf:params:acme:error:malformed");
    let r = http
        .head(&pebble_url)
        .header("user-agent", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&pebble_url)
        .header("user-agent", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:ietf:params:acme:error:serverInternal");
}
