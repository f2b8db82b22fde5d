//! The client-under-test harness's integration tests: the wrappers around real clients, planted leaks, report writers.
//!
//! One test binary for the crate's integration tests: they link once and run side by side.

mod client_wrappers;
mod planted_leak;
mod report_writers;
