//! The canary test: after a full run with a canary EAB credential, neither the server's logs
//! (at TRACE), nor its transcripts, nor the Debug output of its state contain a secret.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use acme_proto::{SignatureAlgorithm, b64};
use common::*;
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_leaves_the_server() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    // The CA in the data directory, not the shared in-memory one: its key files are among
    // the secrets checked below.
    let server = start_custom(|c| {
        c.data_dir = Some(dir.path().to_owned());
        c.ca = None;
    })
    .await;
    let (_, cred) = admin(
        &server,
        Method::POST,
        "/eab",
        Some(json!({"department": 0, "domains": ["physics.example.edu"], "reusable": true})),
    )
    .await;
    let kid = cred["eab_kid"].as_str().unwrap().to_owned();
    let canary_text = cred["eab_hmac_key"].as_str().unwrap().to_owned();
    let canary = b64::decode(&canary_text).unwrap();

    // A full run: registration, a wrong MAC, an order, finalize, download, revocation.
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let mut wrong = canary.clone();
    wrong[0] ^= 1;
    let e = client.eab(&kid, &wrong, acme_proto::eab::MacAlgorithm::Hs256);
    client
        .register_with(json!({"externalAccountBinding": e}))
        .await
        .expect_problem(400, "malformed");
    let e = client.eab(&kid, &canary, acme_proto::eab::MacAlgorithm::Hs256);
    assert_eq!(
        client
            .register_with(
                json!({"contact": ["mailto:a@physics.example.edu"], "externalAccountBinding": e})
            )
            .await
            .status,
        201
    );
    let leaf = client.issue(&["physics.example.edu"]).await.leaf;
    assert_eq!(client.revoke(&leaf).await, 200);
    let (_, transcript) = admin(&server, Method::GET, &format!("/eab/{kid}/requests"), None).await;

    let mut secrets: Vec<(String, String)> = vec![
        ("canary HMAC key (base64url)".into(), canary_text.clone()),
        (
            "canary HMAC key (hex)".into(),
            canary.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        (
            "admin token".into(),
            server.ready().admin_token.clone().unwrap(),
        ),
    ];
    for entry in std::fs::read_dir(dir.path().join("ca")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let text = std::fs::read_to_string(&path).unwrap();
            // The base64 body of the PEM, one line of it is enough to spot a leak.
            let line = text.lines().nth(1).unwrap().to_owned();
            secrets.push((format!("CA key {}", path.display()), line));
        }
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("account created"),
        "the capture works: {logs}"
    );
    let all_transcripts = serde_json::to_string(&server.state().store.transcripts.all()).unwrap();
    let debug = format!("{:?}", server.state());
    for (what, secret) in &secrets {
        for (place, text) in [
            ("logs", &logs),
            ("transcripts", &all_transcripts),
            ("admin transcript", &transcript.to_string()),
            ("Debug output", &debug),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaked into the {place}"
            );
        }
    }
    // The EAB binding's MAC is in the transcript only as "[redacted]".
    assert!(transcript.to_string().contains("[redacted]"));
}
