//! The ACME wire, shared by the mock server, the reference client and the judge.
//!
//! - [`types`]: RFC 8555 resources and request payloads.
//! - [`problem`]: RFC 7807 problem documents with the RFC 8555 §6.7 error types.
//! - [`jwk`], [`jws`], [`key`]: account keys, RFC 7638 thumbprints, flattened JWS (RFC 7515)
//!   signing and verification on aws-lc-rs.
//! - [`eab`]: External Account Binding (RFC 8555 §7.3.4).
//! - [`secret`]: a wrapper that keeps secrets out of logs.
//! - [`file`](mod@file): atomic file writes, owner-only for keys and credentials.
//!
//! A `§N` citation without an RFC number (`§2`, not `RFC 8555 §7.3.4`) refers to section N of
//! docs/evidence.md, the project's record of Sectigo's behaviour.
#![warn(missing_docs)]

pub mod b64;
pub mod eab;
pub mod file;
pub mod jwk;
pub mod jws;
pub mod key;
pub mod problem;
pub mod secret;
pub mod transcript;
pub mod types;

pub use jwk::{Jwk, KeyAuthorization, Thumbprint};
pub use jws::{JOSE_CONTENT_TYPE, Jws, JwsError, SignatureAlgorithm};
pub use key::AccountKey;
pub use problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemType};
pub use secret::Secret;
pub use types::*;
