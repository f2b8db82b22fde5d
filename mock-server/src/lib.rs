//! A mock of Sectigo's ACME service (InCommon, Sectigo, ZeroSSL): RFC 8555 issuance with the
//! Sectigo personality, so that real ACME clients can be tried offline.
//!
//! Layers, as the folders show: [`http`] (routes, the JWS pipeline, responses), [`ca`]
//! (issuance), [`state`] (accounts, orders, nonces, organisations), [`profile`] (quirk
//! switches). [`MockServer`] binds, serves TLS and writes `ready.json`.
#![warn(missing_docs)]

pub mod ca;
pub mod http;
pub mod profile;
mod server;
pub mod state;

pub use profile::Profile;
pub use server::{DemoInfo, MockServer, ReadyInfo, ServerConfig, StartError};
pub use state::org::Orgs;
