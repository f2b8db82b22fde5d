//! Hostile and broken clients: limits, timeouts, malformed input, in-flight revocation,
//! graceful shutdown. Nothing here may produce a 5xx or a hang.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_proto::SignatureAlgorithm;
use common::*;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_connector(server: &mock_server::MockServer) -> tokio_rustls::TlsConnector {
    let mut config =
        reference_client::raw::tls_config(&[server.ready().ca_bundle.clone()]).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn raw_connection(
    server: &mock_server::MockServer,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tls_connector(server).connect(name, tcp).await.unwrap()
}

/// Reads until the peer closes or `limit` passes; returns what came and whether it closed.
async fn read_until_close(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    limit: Duration,
) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

async fn short_limits() -> Server {
    start_custom(|c| {
        c.limits.header_read_timeout = Duration::from_millis(800);
        c.limits.body_read_timeout = Duration::from_millis(800);
        c.limits.max_connections = 4;
    })
    .await
}

#[tokio::test]
async fn slow_loris_headers_are_cut_off() {
    let server = short_limits().await;
    let mut stream = raw_connection(&server).await;
    stream
        .write_all(b"GET /v2/InCommonRSAOV HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed,
        "the server closes a connection whose headers never finish"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn slow_bodies_get_408_and_huge_headers_are_refused() {
    let server = short_limits().await;
    let mut stream = raw_connection(&server).await;
    let path = "/v2/InCommonRSAOV/newOrder";
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jose+json\r\nContent-Length: 1000\r\n\r\n{{\"protected\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (text, _) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.to_ascii_lowercase().contains("replay-nonce"), "{text}");

    let mut stream = raw_connection(&server).await;
    let big = "a".repeat(64 * 1024);
    let req = format!("GET /v2/InCommonRSAOV HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(req.as_bytes()).await;
    let (text, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
}

#[tokio::test]
async fn connection_cap_queues_the_rest() {
    let server = short_limits().await;
    // Four idle connections fill the cap (they send nothing, so they wait on TLS).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(raw_connection(&server).await);
    }
    let http = http_client(&server.ready().ca_bundle);
    let url = server.ready().directory.clone();
    let queued = tokio::time::timeout(Duration::from_millis(500), http.get(&url).send()).await;
    assert!(
        queued.is_err(),
        "a fifth connection waits while four are open"
    );
    drop(held);
    let r = tokio::time::timeout(Duration::from_secs(5), http.get(&url).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn garbage_instead_of_tls_is_closed() {
    let server = short_limits().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"\x16\x03\x01\x00\x05hello-this-is-not-tls")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap();
    // An alert or a close, never a hang.
    assert!(matches!(n, Ok(_) | Err(_)));
    // And the server still serves.
    let http = http_client(&server.ready().ca_bundle);
    assert_eq!(
        http.get(&server.ready().directory)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_payloads_never_5xx() {
    let server = start().await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let kid = client.kid.clone().unwrap();
    let new_order = client.dir.new_order.clone();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(serde_json::Value, Option<serde_json::Value>)> = vec![
        (
            json!({"alg": "ES256", "kid": kid}),
            Some(json!({"identifiers": "not a list"})),
        ),
        (
            json!({"alg": "ES256", "kid": kid}),
            Some(json!({"identifiers": [{"type": "dns"}]})),
        ),
        (json!({"alg": "ES256", "kid": kid}), Some(json!([1, 2, 3]))),
        (
            json!({"alg": "ES256", "kid": kid}),
            Some(json!({"identifiers": [{"type": "dns", "value": "x".repeat(300)}]})),
        ),
        (json!({"alg": ["ES256"], "kid": kid}), Some(json!({}))),
        (json!({"alg": "ES256", "kid": 7}), Some(json!({}))),
        (
            json!({"alg": "ES256", "kid": kid, "url": 5}),
            Some(json!({})),
        ),
    ];
    for (header, payload) in cases {
        let r = client
            .post_header(&new_order, header.clone(), payload)
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{header}: {} {}",
            r.status,
            r.text()
        );
        r.problem();
    }
    // A payload nested deeper than any parser should follow.
    let nonce = client.fresh_nonce().await;
    let protected = acme_proto::b64::encode(
        json!({"alg": "ES256", "kid": kid, "nonce": nonce, "url": new_order}).to_string(),
    );
    let payload = acme_proto::b64::encode(&deep);
    let sig = client
        .key
        .sign(format!("{protected}.{payload}").as_bytes())
        .unwrap();
    let body = json!({"protected": protected, "payload": payload, "signature": acme_proto::b64::encode(sig)});
    let r = client
        .post_raw(&new_order, body.to_string(), "application/jose+json")
        .await;
    r.expect_problem(400, "malformed");
    // Two Content-Type headers: one of them is wrong, so the request is refused cleanly.
    let r = client
        .http
        .post(&new_order)
        .header("content-type", "application/jose+json")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn revocation_stops_requests_already_in_flight() {
    let server = start().await;
    let (_, cred) = admin(
        &server,
        Method::POST,
        "/eab",
        Some(json!({"department": 0, "domains": ["physics.example.edu"]})),
    )
    .await;
    let kid = cred["eab_kid"].as_str().unwrap().to_owned();
    let hmac = acme_proto::b64::decode(cred["eab_hmac_key"].as_str().unwrap()).unwrap();
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = client.eab(&kid, &hmac, acme_proto::eab::MacAlgorithm::Hs256);
    client
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    // The newOrder is held for a second by a `slow` fault; the credential is revoked meanwhile.
    let plan =
        json!({"rule": [{"endpoint": "newOrder", "fault": "slow", "delay_ms": 1000, "nth": [1]}]});
    admin(
        &server,
        Method::PUT,
        &format!("/eab/{kid}/faults"),
        Some(plan),
    )
    .await;
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin(&server, Method::POST, &format!("/eab/{kid}/revoke"), None).await
    };
    let (order, (status, _)) = tokio::join!(client.new_order(&["physics.example.edu"]), revoke);
    assert_eq!(status, 200);
    let detail = order.expect_problem(403, "unauthorized");
    assert!(detail.contains("revoked"), "{detail}");
    assert!(
        server.state().store.counts().orders == 0,
        "nothing was committed"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let server = start().await;
    let plan =
        json!({"rule": [{"endpoint": "newOrder", "fault": "slow", "delay_ms": 800, "nth": [1]}]});
    admin(
        &server,
        Method::PUT,
        &format!("/eab/{DEMO_KID}/faults"),
        Some(plan),
    )
    .await;
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    client.register().await;
    let addr = server.addr();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.shutdown().await;
    };
    let (order, ()) = tokio::join!(client.new_order(&["physics.example.edu"]), stop);
    assert_eq!(
        order.status,
        201,
        "the in-flight request finished: {}",
        order.text()
    );
    // And nothing is accepted any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
