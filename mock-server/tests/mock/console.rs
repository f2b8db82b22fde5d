//! The web console over a real listener: logged in with the admin token, it sees a client's
//! issuance as it happens, with its grade.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use sectigo_acme_mock::internal::ConsoleSession;
use serde_json::Value;

#[tokio::test]
async fn an_issuance_shows_up_live_within_a_second_with_its_grade() {
    let server = start_without_processing().await;
    let console = ConsoleSession::of(&server).await;
    let r = console
        .http
        .get(format!("{}/console/api/events", console.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no stream without the session");

    let mut events = console.get("/console/api/events").await;
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The stream is read on its own task; each event is stamped when it arrives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Value)>();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if !event.contains("event: exchange") {
                    continue;
                }
                let data = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect::<String>();
                let _ = tx.send((Instant::now(), serde_json::from_str(&data).unwrap()));
            }
        }
    });
    // Let the subscription settle before the client starts.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The reference client, its whole flow: account with EAB, order, finalize, download.
    let cert_url = reference_issuance(&server).await;
    let done = Instant::now();

    // Every exchange of the issuance arrives, the certificate download last, within a second.
    let mut seen = Vec::new();
    loop {
        let (at, e) = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("the certificate download did not show up within a second")
            .unwrap();
        let is_cert = e["url"] == cert_url.as_str();
        seen.push(e);
        if is_cert {
            assert!(at.duration_since(done) < Duration::from_secs(1));
            break;
        }
    }
    let endpoints: Vec<&str> = seen
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    // (The reference client takes its first nonce from the directory's answer: no newNonce.)
    for wanted in ["directory", "newAccount", "newOrder", "finalize", "cert"] {
        assert!(
            endpoints.contains(&wanted),
            "{wanted} missing from {endpoints:?}"
        );
    }
    let account = seen.iter().find(|e| e["endpoint"] == "newAccount").unwrap();
    assert_eq!(account["scope"], DEMO_KID);
    // The EAB MAC is redacted, as in transcripts.
    let binding = &account["jws"]["payload"]["externalAccountBinding"];
    assert!(!binding.is_null(), "{account}");
    assert!(
        !binding
            .to_string()
            .contains(&acme_proto::b64::encode(demo_hmac()))
    );

    // The grade of the demo credential, from the same page the browser refreshes.
    let grades = console.page("/console/grading/fragment").await;
    assert!(
        grades.contains(&format!("data-scope=\"{DEMO_KID}\"")),
        "{grades}"
    );
    assert!(grades.contains("rules passed"), "{grades}");
}

/// An answer a fault plan made is marked with the fault, whatever its kind (a delayed answer
/// and a dropped connection too); the others are not.
#[tokio::test]
async fn injected_faults_are_marked_as_such() {
    let server = start_without_processing().await;
    let plan = serde_json::json!({"rule": [
        {"endpoint": "newOrder", "fault": "badNonce", "nth": [1]},
        {"endpoint": "order", "fault": "serviceUnavailable", "nth": [1]},
        {"endpoint": "order", "fault": "slow", "nth": [2], "delay_ms": 50},
        {"endpoint": "order", "fault": "drop", "nth": [3]},
    ]});
    let (status, body) = admin(
        &server,
        reqwest::Method::PUT,
        &format!("/eab/{DEMO_KID}/faults"),
        Some(plan),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut client = Client::new(&server, RSA, acme_proto::SignatureAlgorithm::Es256).await;
    assert_eq!(client.register().await.status, 201);
    let first = client.new_order(&["physics.example.edu"]).await;
    assert_eq!(first.status, 400);
    let order = client.new_order(&["physics.example.edu"]).await;
    assert_eq!(order.status, 201);
    let polled = client.get(&order.location()).await;
    assert_eq!(polled.status, 503);
    let slow = client.get(&order.location()).await;
    assert_eq!(slow.status, 200);
    // The third poll's connection is closed without an answer.
    let nonce = client.fresh_nonce().await;
    let jws = client
        .key
        .sign_request(client.kid.as_deref(), &nonce, &order.location(), None)
        .unwrap();
    let dropped = client
        .http
        .post(order.location())
        .header("content-type", "application/jose+json")
        .body(serde_json::to_string(&jws).unwrap())
        .send()
        .await;
    assert!(dropped.is_err(), "no answer: {dropped:?}");

    let console = ConsoleSession::of(&server).await;
    // The dropped request is recorded when the server notices the closed connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let list: Vec<Value> = console
        .get("/console/api/exchanges")
        .await
        .json()
        .await
        .unwrap();
    let faults: Vec<(&str, &str)> = list
        .iter()
        .filter_map(|e| Some((e["endpoint"].as_str()?, e["fault"].as_str()?)))
        .collect();
    assert_eq!(
        faults,
        [
            ("newOrder", "badNonce"),
            ("order", "serviceUnavailable"),
            ("order", "slow"),
            ("order", "drop")
        ]
    );
    let new_orders = list.iter().filter(|e| e["endpoint"] == "newOrder").count();
    assert_eq!(new_orders, 2, "the retried newOrder is there, unmarked");
}

/// A certificate from the credential's page: downloaded as the chain the ACME certificate URL
/// serves, then revoked through the form, with a reason, as the admin API records it.
#[tokio::test]
async fn a_certificate_is_downloaded_with_its_chain_and_revoked() {
    let server = start_without_processing().await;
    let mut client = Client::new(&server, RSA, acme_proto::SignatureAlgorithm::Es256).await;
    assert_eq!(client.register().await.status, 201);
    let issued = client.issue(&["physics.example.edu"]).await;
    let (status, certs) = admin(
        &server,
        reqwest::Method::GET,
        &format!("/eab/{DEMO_KID}/certificates"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{certs}");
    let id = certs[0]["id"].as_str().unwrap().to_owned();

    let console = ConsoleSession::of(&server).await;
    let page = console
        .page(&format!("/console/credentials/{DEMO_KID}"))
        .await;
    assert!(page.contains(&id), "{page}");
    // Each exchange says how long the server took to answer it.
    let first = console.page("/console/exchanges/1").await;
    let answered = first
        .split("<dt>answered in</dt><dd>")
        .nth(1)
        .and_then(|rest| rest.split(" ms</dd>").next())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(
        answered.parse::<f64>().is_ok_and(|ms| ms >= 0.0),
        "{answered}"
    );
    let pem = console
        .get(&format!("/console/certificates/{id}/pem"))
        .await;
    assert_eq!(pem.status(), 200);
    assert_eq!(pem.text().await.unwrap(), issued.pem, "the chain as served");

    let revoked = console
        .submit(
            &format!("/console/certificates/{id}/revoke"),
            &page,
            &[("reason", "4"), ("credential", DEMO_KID)],
        )
        .await;
    assert_eq!(revoked.status(), 303, "{}", revoked.text().await.unwrap());
    let (_, certs) = admin(
        &server,
        reqwest::Method::GET,
        &format!("/eab/{DEMO_KID}/certificates"),
        None,
    )
    .await;
    assert_eq!(certs[0]["revoked"], true, "{certs}");
    assert_eq!(certs[0]["reason"], 4, "{certs}");
}
