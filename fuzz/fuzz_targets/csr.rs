//! The CSR a finalize request carries: parse, verify its signature, read its names and key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mock_server::ca::csr::check(data);
});
