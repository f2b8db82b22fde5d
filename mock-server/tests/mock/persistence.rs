//! The persistent store: after a restart, accounts, orders, certificates, revocations,
//! credentials and transcripts are all still there.
#![allow(clippy::unwrap_used)]

use crate::common;

use acme_proto::{AccountKey, SignatureAlgorithm, b64};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    let start_here = async || {
        start_custom(|c| {
            c.data_dir = Some(dir.path().to_owned());
            c.persist = Some(db.clone());
            c.listen = "127.0.0.1:0".parse().unwrap();
        })
        .await
    };

    let server = start_here().await;
    let (_, cred) = admin(
        &server,
        Method::POST,
        "/eab",
        Some(json!({"department": 0, "domains": ["physics.example.edu"], "reusable": false})),
    )
    .await;
    let kid = cred["eab_kid"].as_str().unwrap().to_owned();
    let hmac = b64::decode(cred["eab_hmac_key"].as_str().unwrap()).unwrap();
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = client.eab(&kid, &hmac, acme_proto::eab::MacAlgorithm::Hs256);
    assert_eq!(
        client
            .register_with(json!({"externalAccountBinding": e}))
            .await
            .status,
        201
    );
    let Issued { cert_url, pem, .. } = client.issue(&["physics.example.edu"]).await;
    // A second certificate, revoked.
    let revoked = client.issue(&["physics.example.edu"]).await.leaf;
    assert_eq!(client.revoke(&revoked).await, 200);
    let (_, before) = admin(&server, Method::GET, &format!("/eab/{kid}/requests"), None).await;
    let account_url = client.kid.clone().unwrap();
    let key_der = client.key.to_pkcs8().unwrap();
    server.shutdown().await;

    // Same port is not guaranteed: the account URL's id is what must survive.
    let server = start_here().await;
    let key = AccountKey::from_pkcs8(SignatureAlgorithm::Es256, key_der.expose()).unwrap();
    let mut client = Client::with_key(&server, RSA, key).await;
    let found = client
        .register_with(json!({"onlyReturnExisting": true}))
        .await;
    assert_eq!(
        found.status,
        200,
        "the account is still there: {}",
        found.text()
    );
    assert_eq!(
        found.location().rsplit('/').next(),
        account_url.rsplit('/').next()
    );
    let new_cert_url = format!(
        "{}/cert/{}",
        client.dir.new_order.rsplit_once('/').unwrap().0,
        cert_url.rsplit('/').next().unwrap()
    );
    assert_eq!(
        client.get(&new_cert_url).await.text(),
        pem,
        "the same certificate is served"
    );
    let revoke = client.dir.revoke_cert.clone();
    let again = client
        .post(&revoke, Some(json!({"certificate": b64::encode(&revoked)})))
        .await;
    again.expect_problem(400, "alreadyRevoked");
    // The single-use credential stays used; its certificates and requests are listed.
    let mut other = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = other.eab(&kid, &hmac, acme_proto::eab::MacAlgorithm::Hs256);
    let detail = other
        .register_with(json!({"externalAccountBinding": e}))
        .await
        .expect_problem(400, "malformed");
    assert!(detail.contains("not awaiting"), "{detail}");
    let (_, certs) = admin(
        &server,
        Method::GET,
        &format!("/eab/{kid}/certificates"),
        None,
    )
    .await;
    assert_eq!(certs.as_array().unwrap().len(), 2);
    let (_, after) = admin(&server, Method::GET, &format!("/eab/{kid}/requests"), None).await;
    let before = before.as_array().unwrap();
    assert!(after.as_array().unwrap().len() > before.len());
    assert_eq!(
        &after.as_array().unwrap()[..before.len()],
        &before[..],
        "old transcripts kept, in order"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the state database holds HMAC keys");
    }
}
