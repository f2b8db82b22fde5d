//! The server's hot paths, so that regressions show: JWS parse + verify per key type, nonce
//! issue + redeem, CSR check + issuance, transcript recording.
//!
//! `cargo bench -p mock-server --bench hot_paths`
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use acme_proto::{AccountKey, Jwk, Jws, SignatureAlgorithm};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use mock_server::ca::{Ca, CertPolicy, csr};
use mock_server::state::nonce::NonceStore;
use mock_server::state::transcripts::{RawExchange, Transcripts, jws_kid};
use serde_json::json;

/// A newOrder request as a client sends it: a flattened JWS by `key`, with a `kid`.
fn new_order_jws(key: &AccountKey) -> Vec<u8> {
    let payload = json!({"identifiers": [{"type": "dns", "value": "physics.example.edu"}]});
    let jws = key
        .sign_request(
            Some("https://127.0.0.1:14000/v2/InCommonRSAOV/account/AAAAAAAAAAAAAAAAAAAAAA"),
            "nonce",
            "https://127.0.0.1:14000/v2/InCommonRSAOV/newOrder",
            Some(&payload),
        )
        .unwrap();
    serde_json::to_vec(&jws).unwrap()
}

fn jws(c: &mut Criterion) {
    let mut group = c.benchmark_group("jws_parse_verify");
    for alg in [
        SignatureAlgorithm::Es256,
        SignatureAlgorithm::Es384,
        SignatureAlgorithm::Rs256,
        SignatureAlgorithm::EdDsa,
    ] {
        let key = AccountKey::generate(alg).unwrap();
        let body = new_order_jws(&key);
        let jwk: Jwk = key.jwk().clone();
        group.bench_function(alg.name(), |b| {
            b.iter(|| {
                let parsed = Jws::parse(black_box(&body)).unwrap();
                parsed.verify(&jwk).unwrap();
            })
        });
    }
    group.finish();
}

fn nonces(c: &mut Criterion) {
    let store = NonceStore::new(1 << 16, std::time::Duration::from_secs(3600));
    c.bench_function("nonce_issue_redeem", |b| {
        b.iter(|| {
            let n = store.issue();
            store.redeem(black_box(&n)).unwrap();
        })
    });
}

fn issuance(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["physics.example.edu".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    let names = vec!["physics.example.edu".to_owned()];
    c.bench_function("csr_check_and_issue_p256", |b| {
        b.iter(|| {
            let checked = csr::check(black_box(&der)).unwrap();
            ca.issue(&checked, &names, None, CertPolicy::Dv, 365)
                .unwrap();
        })
    });
}

/// What the record middleware does per request: find the scope from the JWS, store the raw
/// exchange (evicting the oldest once the scope is full); and, separately, what reading one
/// back costs (decoding the JWS and the response body into the judge's record).
fn transcripts(c: &mut Criterion) {
    let key = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
    let body = Bytes::from(new_order_jws(&key));
    let response = Bytes::from_static(
        br#"{"status":"pending","expires":"2026-12-05T00:00:00Z","identifiers":[{"type":"dns","value":"physics.example.edu"}],"authorizations":["https://127.0.0.1:14000/v2/InCommonRSAOV/authz/AAAAAAAAAAAAAAAAAAAAAA"],"finalize":"https://127.0.0.1:14000/v2/InCommonRSAOV/order/AAAAAAAAAAAAAAAAAAAAAA/finalize"}"#,
    );
    let raw = |seq| RawExchange {
        seq,
        time: time::OffsetDateTime::now_utc(),
        elapsed_ms: 0,
        duration_us: Some(900),
        method: http::Method::POST,
        url: "https://127.0.0.1:14000/v2/InCommonRSAOV/newOrder".into(),
        request_headers: Default::default(),
        request_body: Some(Bytes::copy_from_slice(&body)),
        status: 201,
        response_headers: vec![(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        )],
        response_body: Some(response.clone()),
        account: jws_kid(&body),
        eab_kid: Some("DemoPhysicsKeyId0000Ab".into()),
        fault: None,
    };
    let store = Transcripts::default();
    c.bench_function("transcript_record", |b| {
        b.iter(|| {
            let (seq, _) = store.stamp();
            store.record(black_box(raw(seq)));
        })
    });
    // The same with the console's live view open: a subscriber that drains the channel on a
    // thread of its own, as the console's event stream does.
    let watched = Transcripts::default();
    let mut rx = watched.subscribe();
    let drain = std::thread::spawn(move || {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match rx.try_recv() {
                Ok(e) => drop(black_box(e)),
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Closed) => break,
            }
        }
    });
    c.bench_function("transcript_record_watched", |b| {
        b.iter(|| {
            let (seq, _) = watched.stamp();
            watched.record(black_box(raw(seq)));
        })
    });
    drop(watched);
    let _ = drain.join();
    let one = raw(1);
    c.bench_function("transcript_decode", |b| b.iter(|| black_box(&one).decode()));
}

criterion_group!(benches, jws, nonces, issuance, transcripts);
criterion_main!(benches);
