//! Any body a client can POST: parse as a flattened JWS, read its key, verify.
#![no_main]

use acme_proto::{Jwk, Jws};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jws) = Jws::parse(data) else { return };
    let _ = jws.algorithm();
    if let Some(jwk) = jws.header.jwk.as_ref().and_then(|j| Jwk::from_json(j).ok()) {
        let _ = jwk.thumbprint();
        let _ = jws.verify(&jwk);
    }
});
