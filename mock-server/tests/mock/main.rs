//! The mock server's integration tests, each module one area (control, issuance, protocol, ...).
//!
//! One test binary for the crate's integration tests: they link once and run side by side.

mod common;

mod console;
mod control;
mod fuzz_corpus;
mod hardening;
mod invariants;
mod issuance;
mod pebble_features;
mod persistence;
mod protocol;
mod secrets;
mod validation;
