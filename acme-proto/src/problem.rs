//! Problem documents (RFC 7807) with the ACME error types of RFC 8555 §6.7.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::Identifier;

/// The media type of a problem document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An ACME error type (RFC 8555 §6.7), serialized as its `urn:ietf:params:acme:error:` URN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the RFC 8555 §6.7 error of the same name
pub enum ProblemType {
    AccountDoesNotExist,
    /// RFC 9773 §5: the certificate named in `replaces` already has a replacement order.
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Caa,
    Compound,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    /// draft-ietf-acme-profiles: the order names a profile the server does not offer.
    InvalidProfile,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
    /// Any other type URI, kept verbatim.
    Other(String),
}

const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

const NAMED: &[(&str, ProblemType)] = &[
    ("accountDoesNotExist", ProblemType::AccountDoesNotExist),
    ("alreadyReplaced", ProblemType::AlreadyReplaced),
    ("alreadyRevoked", ProblemType::AlreadyRevoked),
    ("badCSR", ProblemType::BadCsr),
    ("badNonce", ProblemType::BadNonce),
    ("badPublicKey", ProblemType::BadPublicKey),
    ("badRevocationReason", ProblemType::BadRevocationReason),
    ("badSignatureAlgorithm", ProblemType::BadSignatureAlgorithm),
    ("caa", ProblemType::Caa),
    ("compound", ProblemType::Compound),
    ("connection", ProblemType::Connection),
    ("dns", ProblemType::Dns),
    (
        "externalAccountRequired",
        ProblemType::ExternalAccountRequired,
    ),
    ("incorrectResponse", ProblemType::IncorrectResponse),
    ("invalidContact", ProblemType::InvalidContact),
    ("invalidProfile", ProblemType::InvalidProfile),
    ("malformed", ProblemType::Malformed),
    ("orderNotReady", ProblemType::OrderNotReady),
    ("rateLimited", ProblemType::RateLimited),
    ("rejectedIdentifier", ProblemType::RejectedIdentifier),
    ("serverInternal", ProblemType::ServerInternal),
    ("tls", ProblemType::Tls),
    ("unauthorized", ProblemType::Unauthorized),
    ("unsupportedContact", ProblemType::UnsupportedContact),
    ("unsupportedIdentifier", ProblemType::UnsupportedIdentifier),
    ("userActionRequired", ProblemType::UserActionRequired),
];

impl ProblemType {
    /// Parses a type URI; unknown URIs become [`ProblemType::Other`].
    pub fn from_uri(uri: &str) -> Self {
        uri.strip_prefix(ACME_ERROR_PREFIX)
            .and_then(|name| NAMED.iter().find(|(n, _)| *n == name))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| Self::Other(uri.to_owned()))
    }

    /// The short name after the ACME URN prefix (`badNonce`), or the whole URI for others.
    pub fn name(&self) -> &str {
        match self {
            Self::Other(uri) => uri,
            known => NAMED
                .iter()
                .find(|(_, t)| t == known)
                .map(|(n, _)| *n)
                .unwrap_or("serverInternal"),
        }
    }

    /// The full type URI.
    pub fn uri(&self) -> String {
        match self {
            Self::Other(uri) => uri.clone(),
            _ => format!("{ACME_ERROR_PREFIX}{}", self.name()),
        }
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl Serialize for ProblemType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.uri())
    }
}

impl<'de> Deserialize<'de> for ProblemType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let uri = String::deserialize(d)?;
        Ok(Self::from_uri(&uri))
    }
}

/// A problem document (RFC 7807, RFC 8555 §6.7), shared by server and client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The error type; `about:blank` when absent (RFC 7807 §3.1), as in the `"error": {}`
    /// Sectigo sends on some invalid challenges.
    #[serde(rename = "type", default = "about_blank")]
    pub kind: ProblemType,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The HTTP status the problem was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The identifier a subproblem is about (RFC 8555 §6.7.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Per-identifier problems (RFC 8555 §6.7.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Problem>,
    /// Signature algorithms the server accepts, sent with `badSignatureAlgorithm` (RFC 8555 §6.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

fn about_blank() -> ProblemType {
    ProblemType::Other("about:blank".into())
}

impl Problem {
    /// A problem of `kind` with a detail text and HTTP status.
    pub fn new(kind: ProblemType, status: u16, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: Some(detail.into()),
            status: Some(status),
            identifier: None,
            subproblems: Vec::new(),
            algorithms: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.name())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        for sub in &self.subproblems {
            write!(f, "; {sub}")?;
            if let Some(id) = &sub.identifier {
                write!(f, " ({})", id.value)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8555_problem_example_parses() {
        // rfc8555#section-6.7.1
        let text = r#"{
       "type": "urn:ietf:params:acme:error:malformed",
       "detail": "Some of the identifiers requested were rejected",
       "subproblems": [
           {
               "type": "urn:ietf:params:acme:error:malformed",
               "detail": "Invalid underscore in DNS name \"_example.org\"",
               "identifier": {
                   "type": "dns",
                   "value": "_example.org"
               }
           },
           {
               "type": "urn:ietf:params:acme:error:rejectedIdentifier",
               "detail": "This CA will not issue for \"example.net\"",
               "identifier": {
                   "type": "dns",
                   "value": "example.net"
               }
           }
       ]
   }"#;
        let p: Problem = serde_json::from_str(text).unwrap();
        assert_eq!(p.kind, ProblemType::Malformed);
        assert_eq!(p.subproblems.len(), 2);
        assert_eq!(p.subproblems[1].kind, ProblemType::RejectedIdentifier);
        assert_eq!(
            p.subproblems[0].identifier.as_ref().unwrap().value,
            "_example.org"
        );
    }

    #[test]
    fn an_empty_error_object_is_about_blank() {
        // Sectigo's invalid challenges can carry "error": {} (acme.sh #4768).
        let p: Problem = serde_json::from_str("{}").unwrap();
        assert_eq!(p.kind.uri(), "about:blank");
        let c: crate::types::Challenge =
            serde_json::from_str(r#"{"type":"http-01","url":"u","status":"invalid","error":{}}"#)
                .unwrap();
        assert!(c.error.is_some());
    }

    #[test]
    fn type_uri_round_trips() {
        for (name, kind) in NAMED {
            let uri = kind.uri();
            assert_eq!(uri, format!("urn:ietf:params:acme:error:{name}"));
            assert_eq!(&ProblemType::from_uri(&uri), kind);
        }
        let other = ProblemType::from_uri("about:blank");
        assert_eq!(other, ProblemType::Other("about:blank".into()));
        assert_eq!(other.uri(), "about:blank");
    }
}
