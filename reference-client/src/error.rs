//! The one error type of the client.

use std::path::PathBuf;
use std::time::Duration;

use acme_proto::{Problem, ProblemType, Status};

/// What went wrong, in the words an operator needs to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CA refused the request with a problem document (RFC 8555 §6.7).
    #[error("the CA refused {action}: {}", describe_problem(.problem))]
    Refused {
        /// What the client was doing ("newOrder", "finalize", ...).
        action: String,
        /// HTTP status of the refusal.
        status: u16,
        /// The server's problem document, subproblems included.
        problem: Box<Problem>,
        /// The answer's Retry-After, when it had one.
        retry_after: Option<Duration>,
    },
    /// The server answered keyChange with serverInternal: it has no key rollover (Sectigo
    /// answers 500 "Not yet implemented", docs/evidence.md §9).
    #[error(
        "this CA does not support account key rollover (keyChange answered {}); keep the current account key, or register a new account with the new key",
        describe_problem(.problem)
    )]
    KeyChangeUnsupported {
        /// The server's problem document.
        problem: Box<Problem>,
    },
    /// An order ended `invalid` (or another end state than `valid`).
    #[error("the order ended {}: {}", .status.as_str(), .problem.as_deref().map(describe_problem).unwrap_or_else(|| "the CA gave no reason".into()))]
    OrderFailed {
        /// The order's final status.
        status: Status,
        /// The order's `error`, if the CA sent one.
        problem: Option<Box<Problem>>,
    },
    /// An authorization ended other than `valid`.
    #[error("the authorization for {identifier} ended {}: {}", .status.as_str(), .problem.as_deref().map(describe_problem).unwrap_or_else(|| "the CA gave no reason".into()))]
    AuthorizationFailed {
        /// The identifier.
        identifier: String,
        /// The final status.
        status: Status,
        /// The challenge's `error`, if any.
        problem: Option<Box<Problem>>,
    },
    /// No configured solver handles any challenge the CA offered.
    #[error(
        "no solver for {identifier}: the CA offers {offered:?}, the client is set up for {configured:?}; pick a solver for one of the offered types"
    )]
    NoSolver {
        /// The identifier.
        identifier: String,
        /// Challenge types the CA offered.
        offered: Vec<String>,
        /// Challenge types the client could answer.
        configured: Vec<String>,
    },
    /// A challenge solver failed to set up or tear down its answer.
    #[error("the {kind} solver failed: {message}")]
    Solver {
        /// The challenge type.
        kind: acme_proto::ChallengeType,
        /// What failed.
        message: String,
    },
    /// The network or TLS failed before an HTTP answer arrived.
    #[error("cannot reach {url}: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered something that is not ACME (an HTML error page, a non-JSON body,
    /// a missing header).
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    Unexpected {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong, with the start of the body.
        detail: String,
        /// The answer's Retry-After, when it had one (a proxy's 502 page may carry one).
        retry_after: Option<Duration>,
    },
    /// The server asked the client to come back later than the overall deadline allows.
    #[error(
        "{what}: the CA asked to retry in {} s, but only {} s of the deadline remain; raise the deadline (--timeout) or try again later",
        .retry_after.as_secs(), .remaining.as_secs()
    )]
    RetryAfterBeyondDeadline {
        /// What was being waited for.
        what: String,
        /// The server's Retry-After.
        retry_after: Duration,
        /// Time left before the deadline.
        remaining: Duration,
    },
    /// The overall deadline passed while waiting.
    #[error("{what}: still not done when the deadline of {} s ran out; raise the deadline (--timeout)", .deadline.as_secs())]
    DeadlineExceeded {
        /// What was being waited for.
        what: String,
        /// The configured deadline.
        deadline: Duration,
    },
    /// A value given by the caller is unusable (an HMAC key that is not base64url, an empty
    /// name list, a CSR without names...).
    #[error("{0}")]
    InvalidInput(String),
    /// A key could not be generated, loaded or used.
    #[error("key error: {0}")]
    Key(String),
    /// A certificate or CSR could not be built or parsed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// A PKCS#12 bundle could not be written.
    #[error("cannot build the PKCS#12 bundle: {0}")]
    Pkcs12(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Broad classes of [`Error`], for exit codes and retry decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The CA said no (a problem document, a failed order or authorization).
    Refused,
    /// Network, TLS, non-ACME answers, timeouts.
    Transport,
    /// Something the caller gave is wrong.
    Usage,
    /// Local trouble: files, keys, solvers.
    Local,
}

impl ErrorClass {
    /// The exit status of `acme-harness client` for this class: 1 local, 2 usage, 3 refused
    /// by the CA, 4 network or transport.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Local => 1,
            Self::Usage => 2,
            Self::Refused => 3,
            Self::Transport => 4,
        }
    }

    /// The class's name in `--json` output: `local`, `usage`, `refused`, `transport`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Usage => "usage",
            Self::Refused => "refused",
            Self::Transport => "transport",
        }
    }
}

impl Error {
    /// The Retry-After of the answer this error came from, when it had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } | Self::Unexpected { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Refused { .. }
            | Self::KeyChangeUnsupported { .. }
            | Self::OrderFailed { .. }
            | Self::AuthorizationFailed { .. }
            | Self::NoSolver { .. } => ErrorClass::Refused,
            Self::Transport { .. }
            | Self::Unexpected { .. }
            | Self::RetryAfterBeyondDeadline { .. }
            | Self::DeadlineExceeded { .. } => ErrorClass::Transport,
            Self::InvalidInput(_) => ErrorClass::Usage,
            Self::Solver { .. }
            | Self::Key(_)
            | Self::Certificate(_)
            | Self::Pkcs12(_)
            | Self::Io { .. } => ErrorClass::Local,
        }
    }

    /// The server's problem document, where the error carries one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Refused { problem, .. } | Self::KeyChangeUnsupported { problem } => Some(problem),
            Self::OrderFailed { problem, .. } | Self::AuthorizationFailed { problem, .. } => {
                problem.as_deref()
            }
            _ => None,
        }
    }

    /// True when the CA refused with a problem of `kind`.
    pub fn is_problem(&self, kind: &ProblemType) -> bool {
        self.problem().is_some_and(|p| &p.kind == kind)
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `detail (type) [subproblems]`, the way a person reads a problem document.
pub fn describe_problem(p: &Problem) -> String {
    let mut text = match &p.detail {
        Some(d) if !d.is_empty() => format!("{d} ({})", p.kind.name()),
        _ => p.kind.name().to_owned(),
    };
    for sub in &p.subproblems {
        let who = sub
            .identifier
            .as_ref()
            .map(|i| i.value.as_str())
            .unwrap_or("?");
        text.push_str(&format!(
            "; {who}: {}",
            sub.detail.as_deref().unwrap_or(sub.kind.name())
        ));
    }
    text
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use acme_proto::Identifier;

    #[test]
    fn problem_text_names_detail_type_and_subproblems() {
        let mut p = Problem::new(
            ProblemType::RejectedIdentifier,
            400,
            "A requested identifier has not been delegated.",
        );
        let mut sub = Problem::new(ProblemType::RejectedIdentifier, 400, "not delegated");
        sub.identifier = Some(Identifier::dns("chemistry.example.edu"));
        p.subproblems.push(sub);
        let e = Error::Refused {
            action: "newOrder".into(),
            status: 400,
            problem: Box::new(p),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "the CA refused newOrder: A requested identifier has not been delegated. (rejectedIdentifier); chemistry.example.edu: not delegated"
        );
        assert_eq!(e.class(), ErrorClass::Refused);
        assert!(e.is_problem(&ProblemType::RejectedIdentifier));
    }
}
