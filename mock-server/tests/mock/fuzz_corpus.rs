//! Every input kept in fixtures/fuzz/<target>/ (seeds, and each crash the fuzzers ever found)
//! goes through the same code as the fuzz target, under `cargo test`: a fixed crash stays fixed.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use acme_proto::eab::ExternalAccountBinding;
use acme_proto::{Jwk, Jws};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
    inputs.sort();
    inputs
}

#[test]
fn jws_corpus() {
    for data in corpus("jws") {
        if let Ok(jws) = Jws::parse(&data) {
            let _ = jws.algorithm();
            if let Some(jwk) = jws.header.jwk.as_ref().and_then(|j| Jwk::from_json(j).ok()) {
                let _ = jwk.thumbprint();
                let _ = jws.verify(&jwk);
            }
        }
    }
}

#[test]
fn eab_corpus() {
    for data in corpus("eab") {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&data) else {
            continue;
        };
        if let Ok(eab) = ExternalAccountBinding::parse(&value) {
            let jwk = eab.jwk.clone();
            let _ = eab.verify(b"fuzz-hmac-key", "https://127.0.0.1/v2/X/newAccount", &jwk);
        }
    }
}

#[test]
fn csr_corpus() {
    let mut parsed = 0;
    for data in corpus("csr") {
        parsed += usize::from(mock_server::ca::csr::check(&data).is_ok());
    }
    assert!(parsed > 0, "the seed CSRs parse");
}

#[test]
fn config_corpus() {
    for data in corpus("config") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let _ = mock_server::Profile::from_toml(text, "fuzz");
        let _ = mock_server::faults::FaultPlan::parse(text, "fuzz");
        let _ = mock_server::Orgs::from_toml(text, "fuzz");
    }
}
