//! Challenge solvers (RFC 8555 §8): what puts a challenge answer where the CA looks for it.
//!
//! - [`Http01Standalone`]: its own HTTP listener on a given address and port.
//! - [`Http01Webroot`]: writes the answer under a web server's document root.
//! - [`Dns01Hook`]: runs a command that publishes and removes the TXT record.
//! - [`TlsAlpn01Standalone`]: its own TLS listener answering `acme-tls/1` (RFC 8737).

mod dns01;
mod http01;
mod tlsalpn01;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use acme_proto::KeyAuthorization;

pub use dns01::{Dns01Hook, Dns01MockAdmin};
pub use http01::{Http01Hooks, Http01Standalone, Http01Webroot, HttpRequestSeen};
pub use tlsalpn01::{ACME_TLS_ALPN, HelloObserver, HelloSeen, TlsAlpn01Standalone};

use acme_proto::ChallengeType;

use crate::error::Result;

/// A boxed future, so that solvers can sit behind `dyn Solver`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One challenge to answer.
#[derive(Clone)]
pub struct ChallengeData {
    /// The identifier's value, without the `*.` of a wildcard order.
    pub identifier: String,
    /// True for a wildcard name (only dns-01 can answer it).
    pub wildcard: bool,
    /// The challenge type.
    pub kind: ChallengeType,
    /// The challenge token.
    pub token: String,
    /// `token.thumbprint` (RFC 8555 §8.1).
    pub key_authorization: KeyAuthorization,
}

impl ChallengeData {
    /// The name of the dns-01 TXT record: `_acme-challenge.<identifier>` (RFC 8555 §8.4).
    pub fn dns_name(&self) -> String {
        format!("_acme-challenge.{}", self.identifier)
    }

    /// The dns-01 TXT record value.
    pub fn dns_value(&self) -> String {
        self.key_authorization.dns_value()
    }
}

impl fmt::Debug for ChallengeData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeData")
            .field("identifier", &self.identifier)
            .field("wildcard", &self.wildcard)
            .field("kind", &self.kind)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Puts a challenge answer in place and removes it afterwards.
pub trait Solver: Send + Sync + fmt::Debug {
    /// The challenge type this solver answers (`http-01`, `dns-01`, `tls-alpn-01`).
    fn challenge_type(&self) -> ChallengeType;

    /// Whether it can answer for this identifier (wildcards need dns-01).
    fn supports(&self, wildcard: bool) -> bool {
        !wildcard
    }

    /// Makes the answer available; returns once the CA may look.
    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>>;

    /// Removes the answer. Called after validation, whatever its outcome.
    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>>;
}
