//! A mock of Sectigo's ACME service (InCommon, Sectigo, ZeroSSL): RFC 8555 issuance with the
//! Sectigo personality, so that real ACME clients can be tried offline.
//!
//! Layers, as the folders show: [`http`] (routes, the JWS pipeline, responses), [`ca`]
//! (issuance), [`state`] (accounts, orders, nonces, organisations), [`profile`] (quirk
//! switches). [`MockServer`] binds, serves TLS and writes `ready.json`.
#![warn(missing_docs)]

pub mod admin;
pub mod banner;
pub mod ca;
pub mod control;
pub mod dns;
pub mod faults;
pub mod http;
pub mod management;
pub mod port;
pub mod profile;
pub mod server;
pub mod state;
pub mod validate;

pub use port::free_port;
pub use profile::Profile;
pub use server::{DemoInfo, Limits, MockServer, ReadyInfo, ServerConfig, StartError};
pub use state::org::Orgs;
