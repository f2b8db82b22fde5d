//! The reference client's integration tests against the mock: flows, output files, secret hygiene.
//!
//! One test binary for the crate's integration tests: they link once and run side by side.

mod common;

mod hygiene;
mod mock;
mod output;
