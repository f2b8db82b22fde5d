//! Drives ACME clients under test against the mock Sectigo server: "will this client work
//! with Sectigo, and is it safe with our EAB secret?"
//!
//! - [`adapter`]: how to run a client (data in `fixtures/clients/*.toml`).
//! - [`scenario`]: the built-in scenarios (happy paths, faults, EAB misuse, wildcard, renewal,
//!   untrusted TLS).
//! - [`run`]: one client through one scenario: fresh mock, canary credential, time limit,
//!   outcome check ([`verify`]), the judge's grade ([`grade`]), the secret scan ([`scan`]).
//! - [`sandbox`]: the bubblewrap sandbox each client command runs in (private loopback-only
//!   network, a filesystem view of its work dir and the system), and [`audit`]: what it
//!   touched (network attempts, files outside its work dir, programs), read from its trace.
//! - [`assess`]: the four answers per client (works with Sectigo, protocol conduct, secret
//!   handling) and the recommendation in plain words.
//! - [`report`]: the verdict table, JSON, JUnit XML, self-contained HTML, Markdown matrix.
//! - [`explore`]: property-based vetting (`vet --explore`): generated fault plans, properties
//!   checked on every case, failures shrunk to a minimal replayable plan.
//! - [`matrix`]: every installed adapter through every scenario, shards, merging, and the
//!   expectations file CI compares against.
//! - [`vet`]: the `vet` and `matrix` commands as a library: plans, work directories, report
//!   files and the matrix's verdict against its expectations.
//! - [`remote`]: a client on another host (win-acme, an appliance): the same scenarios, mocks
//!   and grades, with the client run by hand and the checks that need its host named as not
//!   seen.
#![warn(missing_docs)]

pub mod adapter;
pub mod assess;
pub mod audit;
mod dns_watch;
pub mod explore;
pub mod grade;
pub mod matrix;
pub mod remote;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scan;
pub mod scenario;
pub mod verify;
pub mod vet;
mod webroot;

pub use adapter::Adapter;
pub use run::{RunConfig, ScenarioResult, run_all};
pub use scenario::Scenario;

use std::path::Path;

/// What went wrong in the harness (not in the client under test).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An adapter file is invalid or unknown.
    #[error("adapter {origin}: {message}")]
    Adapter {
        /// The name or file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// `--scenario` names no built-in scenario.
    #[error("no scenario {id:?}; the built-in scenarios are: {known}")]
    UnknownScenario {
        /// The id given.
        id: String,
        /// The known ids.
        known: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
    /// The mock or its CA could not be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// A shard spec, matrix file or expectations file is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
