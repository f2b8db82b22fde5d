//! The externalAccountBinding member of a newAccount: parse, then check against a key.
#![no_main]

use acme_proto::eab::ExternalAccountBinding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(eab) = ExternalAccountBinding::parse(&value) else { return };
    let jwk = eab.jwk.clone();
    let _ = eab.verify(b"fuzz-hmac-key", "https://127.0.0.1/v2/X/newAccount", &jwk);
});
