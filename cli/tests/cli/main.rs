//! The command line's integration tests: each module runs the built `acme-harness` binary for one area.
//!
//! One test binary for the crate's integration tests: they link once and run side by side.

mod admin;
mod bench;
mod client;
mod conformance;
mod crash;
mod docs_links;
mod pebble;
mod serve_hostname;
mod vet;
mod vet_remote;
