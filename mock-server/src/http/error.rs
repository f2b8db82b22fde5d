//! The one mapping from a refusal to what the peer sees: an RFC 7807 problem document with
//! the HTTP status its ACME error type calls for (RFC 8555 §6.7).

use acme_proto::{PROBLEM_CONTENT_TYPE, Problem, ProblemType};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};

/// A refused request. Boxed: it travels up every handler's `Result`.
#[derive(Debug)]
pub struct AcmeError(Box<Inner>);

/// Marks a response the fault plan made on purpose (an HTML error page): it goes out as it is.
#[derive(Clone, Copy, Debug)]
pub struct Injected;

/// Marks a response that a fault plan's rule made (whatever its form): the record keeps it,
/// and the console shows the exchange as injected.
#[derive(Clone, Copy, Debug)]
pub struct InjectedFault(pub crate::faults::FaultKind);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    problem: Problem,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A response sent instead of the problem document (injected HTML error pages).
    raw: Option<Response>,
    /// The fault that made this refusal, when a fault plan did.
    fault: Option<crate::faults::FaultKind>,
}

impl AcmeError {
    /// A problem of `kind` sent with `status`.
    pub fn new(kind: ProblemType, status: StatusCode, detail: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            status,
            problem: Problem::new(kind, status.as_u16(), detail),
            headers: Vec::new(),
            raw: None,
            fault: None,
        }))
    }

    /// 400 malformed.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, StatusCode::BAD_REQUEST, detail)
    }

    /// 403 unauthorized.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, StatusCode::FORBIDDEN, detail)
    }

    /// 400 badNonce.
    pub fn bad_nonce(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BadNonce, StatusCode::BAD_REQUEST, detail)
    }

    /// 400 rejectedIdentifier.
    pub fn rejected_identifier(detail: impl Into<String>) -> Self {
        Self::new(
            ProblemType::RejectedIdentifier,
            StatusCode::BAD_REQUEST,
            detail,
        )
    }

    /// 400 badCSR.
    pub fn bad_csr(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BadCsr, StatusCode::BAD_REQUEST, detail)
    }

    /// 500 serverInternal.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            ProblemType::ServerInternal,
            StatusCode::INTERNAL_SERVER_ERROR,
            detail,
        )
    }

    /// An HTML error page as nginx in front of Sectigo sends it (§8 \[Z\]), with Retry-After.
    pub fn html_page(status: StatusCode, retry_after: Option<u64>) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error");
        let page = crate::faults::nginx_page(status.as_u16(), reason);
        let mut response = (status, page).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Injected);
        let mut err = Self::new(ProblemType::ServerInternal, status, reason);
        err.0.raw = Some(response);
        err
    }

    /// Marks the refusal as made by the fault `kind` of a fault plan.
    pub(crate) fn injected_by(mut self, kind: crate::faults::FaultKind) -> Self {
        self.0.fault = Some(kind);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// Mutable access to the problem document (subproblems, algorithms).
    pub fn problem_mut(&mut self) -> &mut Problem {
        &mut self.0.problem
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The problem document.
    pub fn problem(&self) -> &Problem {
        &self.0.problem
    }
}

impl IntoResponse for AcmeError {
    fn into_response(self) -> Response {
        let inner = *self.0;
        if let Some(mut raw) = inner.raw {
            if let Some(kind) = inner.fault {
                raw.extensions_mut().insert(InjectedFault(kind));
            }
            return raw;
        }
        let body = serde_json::to_vec(&inner.problem).unwrap_or_default();
        let mut response = (inner.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        for (name, value) in inner.headers {
            headers.append(name, value);
        }
        if let Some(kind) = inner.fault {
            response.extensions_mut().insert(InjectedFault(kind));
        }
        response
    }
}
