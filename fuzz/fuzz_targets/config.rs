//! What an administrator hands the server: profiles, fault plans, organisation files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = mock_server::Profile::from_toml(text, "fuzz");
    let _ = mock_server::faults::FaultPlan::parse(text, "fuzz");
    let _ = mock_server::Orgs::from_toml(text, "fuzz");
});
