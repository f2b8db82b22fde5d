//! Many accounts at once, interleaved at random: afterwards no nonce was accepted twice, no
//! order is in an impossible state, and every issued certificate is recorded once.
//! `PROPTEST_CASES` raises the case count (default 3, for CI time).
#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::HashSet;

use acme_proto::{SignatureAlgorithm, Status, b64};
use common::*;
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Step {
    Order,
    FinalizeLast,
    PollLast,
    ReplayNonce,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Order),
        2 => Just(Step::FinalizeLast),
        2 => Just(Step::PollLast),
        1 => Just(Step::ReplayNonce),
    ]
}

async fn run_account(server: &mock_server::MockServer, steps: Vec<Step>) {
    let mut c = Client::new(server, RSA, SignatureAlgorithm::Es256).await;
    assert_eq!(c.register().await.status, 201);
    let mut last: Option<String> = None;
    for s in steps {
        match s {
            Step::Order => {
                let r = c.new_order(&["physics.example.edu"]).await;
                assert_eq!(r.status, 201);
                last = Some(r.location());
            }
            Step::FinalizeLast => {
                if let Some(url) = &last {
                    let (der, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
                    let r = c
                        .post(
                            &format!("{url}/finalize"),
                            Some(json!({"csr": b64::encode(&der)})),
                        )
                        .await;
                    assert!(r.status == 200 || r.status == 403, "{}", r.text());
                }
            }
            Step::PollLast => {
                if let Some(url) = &last {
                    assert_eq!(c.get(url).await.status, 200);
                }
            }
            Step::ReplayNonce => {
                // The same nonce twice, concurrently: at most one may get through.
                let url = c.kid.clone().unwrap();
                let nonce = c.fresh_nonce().await;
                let jws = c.key.sign_request(Some(&url), &nonce, &url, None).unwrap();
                let body = serde_json::to_string(&jws).unwrap();
                let send = || {
                    c.http
                        .post(&url)
                        .header("content-type", "application/jose+json")
                        .body(body.clone())
                        .send()
                };
                let (a, b) = tokio::join!(send(), send());
                let ok = [a.unwrap().status(), b.unwrap().status()]
                    .iter()
                    .filter(|s| s.is_success())
                    .count();
                assert_eq!(ok, 1, "a nonce is accepted exactly once");
            }
        }
    }
}

fn check_invariants(server: &mock_server::MockServer) {
    let state = server.state();
    // Nonces: no nonce was accepted by two requests that got past the nonce check.
    let mut seen = HashSet::new();
    for e in state.store.transcripts.all() {
        let refused_before_nonce = e
            .problem
            .as_ref()
            .is_some_and(|p| p.kind.ends_with(":badNonce") || p.kind.ends_with(":malformed"));
        if e.method == "POST"
            && !refused_before_nonce
            && let Some(n) = &e.nonce_sent
        {
            assert!(seen.insert(n.clone()), "nonce {n} accepted twice");
        }
    }
    // Orders: every state is one the RFC allows, with what it needs.
    let orders = state.store.orders();
    for o in &orders {
        match o.status_at(time::OffsetDateTime::now_utc()) {
            Status::Ready => assert!(o.cert.is_none()),
            Status::Processing | Status::Valid => {
                let cert = o
                    .cert
                    .as_ref()
                    .expect("processing and valid orders have a certificate");
                let c = state.store.cert(cert).expect("the certificate is recorded");
                assert_eq!(c.order, o.id);
            }
            other => panic!("impossible order status {other:?}"),
        }
    }
    // Certificates: each recorded once, each by its DER.
    // Every index agrees with what it indexes (certificates by DER and ARI id, account keys,
    // authorizations and challenges of each order).
    state.store.check_invariants().unwrap();
    let referenced: Vec<String> = orders.iter().filter_map(|o| o.cert.clone()).collect();
    let unique: HashSet<&String> = referenced.iter().collect();
    assert_eq!(
        unique.len(),
        referenced.len(),
        "no certificate belongs to two orders"
    );
    assert_eq!(referenced.len(), state.store.counts().certs);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
    ))]

    #[test]
    fn concurrent_accounts_keep_the_invariants(plans in prop::collection::vec(prop::collection::vec(step(), 1..8), 2..6)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let server = start().await;
            let runs = plans.into_iter().map(|steps| run_account(&server, steps));
            // All accounts at once, interleaving at every await.
            futures::future::join_all(runs).await;
            check_invariants(&server);
        });
    }
}

#[tokio::test]
async fn old_orders_are_pruned_beyond_the_limit() {
    let server = start_custom(|c| {
        c.limits.max_orders = 3;
        for p in &mut c.profiles {
            p.order.processing_ms = 0;
        }
    })
    .await;
    let mut c = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    assert_eq!(c.register().await.status, 201);
    let mut urls = Vec::new();
    for _ in 0..6 {
        let url = c.new_order(&["physics.example.edu"]).await.location();
        let (der, _) = csr(&["physics.example.edu"], &rcgen::PKCS_ECDSA_P256_SHA256);
        c.finalize_and_wait(&url, &der).await;
        urls.push(url);
    }
    // The background sweep (every 2 s) may have dropped some already; this finishes the job.
    server.state().store.prune(3);
    let store = &server.state().store;
    let counts = store.counts();
    assert_eq!(counts.orders, 3);
    assert_eq!(counts.certs, 3, "certificates go with their orders");
    assert_eq!(counts.authzs, 3);
    // ... and the DER and ARI indexes with them.
    store.check_invariants().unwrap();
    // The oldest are gone, the newest are still served.
    assert_eq!(c.get(&urls[0]).await.status, 404);
    assert_eq!(c.get(&urls[5]).await.status, 200);
}
