//! Real challenge validation against the rfc8555 profile: http-01, dns-01 and tls-alpn-01
//! answered by listeners on 127.0.0.1, names resolved through the mock DNS.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use acme_proto::{KeyAuthorization, SignatureAlgorithm};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

type Answers = Arc<Mutex<HashMap<String, String>>>;

/// An http-01 responder on 127.0.0.1:0; returns its port and the token -> answer map.
async fn http01_responder() -> (u16, Answers) {
    let answers: Answers = Arc::default();
    let map = answers.clone();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(
            move |axum::extract::Path(token): axum::extract::Path<String>| {
                let map = map.clone();
                async move {
                    match map.lock().unwrap().get(&token) {
                        Some(a) => (axum::http::StatusCode::OK, a.clone()),
                        None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, answers)
}

struct Setup {
    server: Server,
    client: Client,
    answers: Answers,
}

async fn setup(tls_port: u16) -> Setup {
    let (http_port, answers) = http01_responder().await;
    let server = start_custom(|c| {
        c.http01_port = http_port;
        c.tlsalpn01_port = tls_port;
    })
    .await;
    let mut client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
    assert_eq!(
        client
            .register_with(json!({"termsOfServiceAgreed": true}))
            .await
            .status,
        201
    );
    Setup {
        server,
        client,
        answers,
    }
}

/// Orders `name`, answers the challenge of `kind` with `prepare`, waits for the outcome.
async fn run_challenge(
    s: &mut Setup,
    name: &str,
    kind: &str,
    prepare: impl AsyncFnOnce(&mut Setup, &str, &KeyAuthorization),
) -> (Value, Value, String) {
    let order = s.client.new_order(&[name]).await;
    assert_eq!(order.status, 201, "{}", order.text());
    let order_url = order.location();
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let authz = s.client.get(&authz_url).await.json();
    let chall = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {authz}"))
        .clone();
    let token = chall["token"].as_str().unwrap().to_owned();
    let ka = KeyAuthorization::new(&token, &s.client.key.jwk().thumbprint());
    prepare(s, &token, &ka).await;
    let url = chall["url"].as_str().unwrap().to_owned();
    let r = s.client.post(&url, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let c = s.client.get(&url).await.json();
        if c["status"] != "processing" && c["status"] != "pending" {
            let authz = s.client.get(&authz_url).await.json();
            return (c, authz, order_url);
        }
    }
    panic!("validation never finished");
}

#[tokio::test]
async fn http01_valid_then_issued_and_wrong_answer_invalid() {
    let mut s = setup(1).await;
    let (chall, authz, order_url) = run_challenge(
        &mut s,
        "web.example.com",
        "http-01",
        async |s, token, ka| {
            s.answers
                .lock()
                .unwrap()
                .insert(token.to_owned(), ka.as_str().to_owned());
        },
    )
    .await;
    assert_eq!(chall["status"], "valid", "{chall}");
    assert!(chall.get("validated").is_some());
    assert_eq!(authz["status"], "valid");
    let order = s.client.get(&order_url).await.json();
    assert_eq!(order["status"], "ready");
    let (der, _) = csr(&["web.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let done = s.client.finalize_and_wait(&order_url, &der).await;
    assert!(done["certificate"].is_string());

    let (chall, authz, order_url) =
        run_challenge(&mut s, "bad.example.com", "http-01", async |s, token, _| {
            s.answers
                .lock()
                .unwrap()
                .insert(token.to_owned(), format!("{token}.not-the-thumbprint"));
        })
        .await;
    assert_eq!(chall["status"], "invalid");
    assert_eq!(
        chall["error"]["type"],
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let detail = chall["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("expected") && detail.contains("not-the-thumbprint"),
        "{detail}"
    );
    assert_eq!(authz["status"], "invalid");
    assert_eq!(s.client.get(&order_url).await.json()["status"], "invalid");

    // Nothing listening: a connection problem, not a hang.
    let (chall, _, _) =
        run_challenge(&mut s, "none.example.com", "http-01", async |_, _, _| {}).await;
    assert_eq!(chall["status"], "invalid");
    assert_eq!(
        chall["error"]["type"],
        "urn:ietf:params:acme:error:unauthorized"
    );
}

#[tokio::test]
async fn dns01_through_the_admin_api_and_wildcards() {
    let mut s = setup(1).await;
    let (chall, _, _) = run_challenge(&mut s, "*.dns.example.com", "dns-01", async |s, _, ka| {
        let (status, _) = admin(
            &s.server,
            Method::PUT,
            "/dns/_acme-challenge.dns.example.com",
            Some(json!({"txt": [ka.dns_value()]})),
        )
        .await;
        assert_eq!(status, 200);
    })
    .await;
    assert_eq!(chall["status"], "valid", "{chall}");

    let (chall, _, _) = run_challenge(&mut s, "wrong.example.com", "dns-01", async |s, _, _| {
        admin(
            &s.server,
            Method::PUT,
            "/dns/_acme-challenge.wrong.example.com",
            Some(json!({"txt": ["nope"]})),
        )
        .await;
    })
    .await;
    assert_eq!(chall["status"], "invalid");
    assert!(
        chall["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("Incorrect TXT record"),
        "{chall}"
    );
}

#[tokio::test]
async fn tls_alpn01_checks_the_certificate() {
    let name = "alpn.example.com";
    for correct in [true, false] {
        // The validator's port is fixed at start and the responder needs the token first:
        // pick a free port, start the server on it, answer once the token is known.
        let port = mock_server::free_port();
        let mut s = setup(port).await;
        let (chall, _, _) = run_challenge(&mut s, name, "tls-alpn-01", async |_, _, ka| {
            tls_alpn_responder(port, name, ka.digest(), correct).await;
        })
        .await;
        if correct {
            assert_eq!(chall["status"], "valid", "{chall}");
        } else {
            assert_eq!(chall["status"], "invalid");
            let detail = chall["error"]["detail"].as_str().unwrap();
            assert!(detail.contains("must name exactly"), "{chall}");
        }
    }
}

/// A tls-alpn-01 responder on 127.0.0.1:`port` presenting an RFC 8737 certificate (for
/// another name when `correct` is false).
async fn tls_alpn_responder(port: u16, name: &str, digest: [u8; 32], correct: bool) {
    let key = rcgen::KeyPair::generate().unwrap();
    let san = if correct {
        name.to_owned()
    } else {
        format!("other.{name}")
    };
    let mut params = rcgen::CertificateParams::new(vec![san]).unwrap();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
            key.serialize_der().into(),
        ))
        .unwrap();
    // webpki refuses the critical acmeIdentifier extension, so skip with_single_cert's check.
    let certified = Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn caa_and_off_loopback_addresses_are_refused() {
    // rfc8555 has no caaIdentities, so CAA binds nothing there: give it Sectigo's.
    let (http_port, answers) = http01_responder().await;
    let mut profile = mock_server::Profile::built_in("rfc8555").unwrap();
    profile.meta.caa_identities = vec!["sectigo.com".into()];
    let server = start_custom(|c| {
        c.http01_port = http_port;
        c.profiles = vec![profile];
    })
    .await;
    let mut client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
    client.register_with(json!({})).await;
    let mut s = Setup {
        server,
        client,
        answers,
    };
    admin(
        &s.server,
        Method::PUT,
        "/dns/example.net",
        Some(json!({"caa": [{"tag": "issue", "value": "letsencrypt.org"}]})),
    )
    .await;
    let (chall, _, _) = run_challenge(
        &mut s,
        "www.example.net",
        "http-01",
        async |s, token, ka| {
            s.answers
                .lock()
                .unwrap()
                .insert(token.to_owned(), ka.as_str().to_owned());
        },
    )
    .await;
    assert_eq!(chall["status"], "invalid");
    assert_eq!(
        chall["error"]["type"], "urn:ietf:params:acme:error:caa",
        "{chall}"
    );
    // Allowed issuer: valid.
    admin(
        &s.server,
        Method::PUT,
        "/dns/example.org",
        Some(json!({"caa": [{"tag": "issue", "value": "sectigo.com"}]})),
    )
    .await;
    let (chall, _, _) = run_challenge(
        &mut s,
        "www.example.org",
        "http-01",
        async |s, token, ka| {
            s.answers
                .lock()
                .unwrap()
                .insert(token.to_owned(), ka.as_str().to_owned());
        },
    )
    .await;
    assert_eq!(chall["status"], "valid", "{chall}");
    // A name pointing off this machine is never contacted.
    admin(
        &s.server,
        Method::PUT,
        "/dns/far.example.com",
        Some(json!({"a": ["192.0.2.1"]})),
    )
    .await;
    let (chall, _, _) =
        run_challenge(&mut s, "far.example.com", "http-01", async |_, _, _| {}).await;
    assert_eq!(chall["status"], "invalid");
    assert!(
        chall["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{chall}"
    );
}

#[tokio::test]
async fn invalid_challenge_fault_gives_an_empty_error_object() {
    let (http_port, answers) = http01_responder().await;
    let server = start_custom(|c| c.http01_port = http_port).await;
    let (st, _) = admin(
        &server,
        Method::PUT,
        "/eab/DemoPhysicsKeyId0000Ab/faults",
        Some(json!({"rule": [{"endpoint": "challenge", "fault": "invalidChallenge", "nth": [1]}]})),
    )
    .await;
    assert_eq!(st, 200);
    let mut client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
    let e = client.eab(DEMO_KID, &demo_hmac(), acme_proto::eab::MacAlgorithm::Hs256);
    client
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    let mut s = Setup {
        server,
        client,
        answers,
    };
    let (chall, authz, _) =
        run_challenge(&mut s, "x.example.com", "http-01", async |s, token, ka| {
            s.answers
                .lock()
                .unwrap()
                .insert(token.to_owned(), ka.as_str().to_owned());
        })
        .await;
    assert_eq!(chall["status"], "invalid");
    assert_eq!(chall["error"], json!({}), "Sectigo's empty error object");
    assert_eq!(authz["status"], "invalid");
}

#[tokio::test]
async fn processing_fault_holds_a_challenge() {
    let (http_port, answers) = http01_responder().await;
    let server = start_custom(|c| c.http01_port = http_port).await;
    let plan = json!({"rule": [{"endpoint": "challenge", "fault": "processing", "nth": [1], "seconds": 2}]});
    let (st, _) = admin(
        &server,
        Method::PUT,
        "/eab/DemoPhysicsKeyId0000Ab/faults",
        Some(plan),
    )
    .await;
    assert_eq!(st, 200);
    let mut client = Client::new(&server, "zerossl-dv90", SignatureAlgorithm::Es256).await;
    let e = client.eab(DEMO_KID, &demo_hmac(), acme_proto::eab::MacAlgorithm::Hs256);
    let r = client
        .register_with(json!({"contact": ["mailto:a@example.com"], "externalAccountBinding": e}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let order = client.new_order(&["held.example.com"]).await.json();
    let authz_url = order["authorizations"][0].as_str().unwrap().to_owned();
    let authz = client.get(&authz_url).await.json();
    let chall = authz["challenges"][0].clone();
    assert_eq!(chall["type"], "http-01");
    let token = chall["token"].as_str().unwrap();
    let ka = KeyAuthorization::new(token, &client.key.jwk().thumbprint());
    answers
        .lock()
        .unwrap()
        .insert(token.to_owned(), ka.as_str().to_owned());
    let url = chall["url"].as_str().unwrap();
    let started = std::time::Instant::now();
    let r = client.post(url, Some(json!({}))).await;
    assert_eq!(r.json()["status"], "processing");
    // §5 [Z]: ZeroSSL's Retry-After 10 on challenges in processing.
    assert_eq!(r.header("retry-after").as_deref(), Some("10"));
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(client.get(url).await.json()["status"], "processing");
    loop {
        let c = client.get(url).await.json();
        if c["status"] == "valid" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{c}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
}
