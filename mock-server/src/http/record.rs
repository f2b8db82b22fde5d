//! Records every ACME exchange as an [`Exchange`] (issue: the judge grades these).

use std::sync::Arc;

use acme_proto::PROBLEM_CONTENT_TYPE;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use super::{AcmeError, AppState};
use crate::state::transcripts::{RawExchange, eab_kid_of_new_account, jws_kid};

const REQUEST_HEADERS: [&str; 5] = [
    "content-type",
    "user-agent",
    "accept",
    "accept-language",
    "content-length",
];
const RESPONSE_HEADERS: [&str; 6] = [
    "content-type",
    "location",
    "retry-after",
    "replay-nonce",
    "link",
    "allow",
];

/// The headers of `names` that `headers` has, every value. With `copy` the values are copied:
/// a request's header values are slices of the connection's read buffer, which a kept record
/// must not pin; a response's are the server's own and are shared.
fn pick(
    headers: &HeaderMap,
    names: &[&'static str],
    copy: bool,
) -> Vec<(&'static str, HeaderValue)> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        for value in headers.get_all(*name) {
            let value = match copy {
                true => HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone()),
                false => value.clone(),
            };
            out.push((*name, value));
        }
    }
    out
}

/// The middleware: buffers the (already size-limited) body, runs the request, records.
pub(crate) async fn record(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/v2/") {
        return next.run(req).await;
    }
    let time = OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let (seq, elapsed_ms) = state.store.transcripts.stamp();
    let (mut parts, body) = req.into_parts();
    // A fresh slot for the fault this request meets (see ConnControl::injected).
    let injected = parts.extensions.get_mut::<super::ConnControl>().map(|c| {
        let slot: Arc<std::sync::OnceLock<crate::faults::FaultKind>> = Arc::default();
        c.injected = slot.clone();
        slot
    });
    // The one place the body is read: with the size limit and a deadline (slow senders).
    let limits = state.limits;
    let collect =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limits.max_body_bytes));
    let refusal = match tokio::time::timeout(limits.body_read_timeout, collect).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(AcmeError::new(
            acme_proto::ProblemType::Malformed,
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {} bytes", limits.max_body_bytes),
        )),
        Ok(Err(_)) => Err(AcmeError::malformed("The request body could not be read")),
        Err(_) => Err(AcmeError::new(
            acme_proto::ProblemType::Malformed,
            http::StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request body was not received within {} s",
                limits.body_read_timeout.as_secs()
            ),
        )),
    };
    let bytes = match refusal {
        Ok(bytes) => bytes,
        Err(e) => {
            let mut response = e.into_response();
            super::apply_common_headers(&state, parts.uri.path(), &mut response);
            return response;
        }
    };
    let method = parts.method.clone();
    let sent = parts
        .extensions
        .get::<super::SentPath>()
        .map(|p| p.0.clone());
    let url = format!(
        "{}{}",
        state.origin,
        sent.as_deref().unwrap_or(parts.uri.path())
    );
    let request_headers = pick(&parts.headers, &REQUEST_HEADERS, true);
    // Only what choosing the scope needs is parsed now; the rest when the transcript is read.
    // The body is copied so that the record does not pin the connection's read buffer.
    let request_body = (method == http::Method::POST).then(|| Bytes::copy_from_slice(&bytes));
    let req = Request::from_parts(parts, Body::from(bytes));

    // The EAB scope, as far as the request tells it (a newAccount's answer may tell more).
    let kid = request_body.as_deref().and_then(jws_kid);
    let mut eab_kid = None;
    if let Some(kid) = &kid {
        let id = kid.rsplit('/').next().unwrap_or_default();
        eab_kid = state.store.account_eab_kid(id);
    }
    if eab_kid.is_none()
        && let Some(body) = &request_body
    {
        eab_kid = eab_kid_of_new_account(body);
    }
    // A client that gives up before the answer (its timeout shorter than a held request)
    // still sent the request: the guard records it, with status 0, if the handler is dropped.
    let mut unanswered = Unanswered {
        injected: injected.clone(),
        state: state.clone(),
        exchange: Some(RawExchange {
            seq,
            time,
            elapsed_ms,
            duration_us: None,
            method: method.clone(),
            url: url.clone(),
            request_headers: request_headers.clone(),
            request_body: request_body.clone(),
            status: 0,
            response_headers: Vec::new(),
            response_body: None,
            account: kid.clone(),
            eab_kid: eab_kid.clone(),
            fault: None,
        }),
    };

    let response = next.run(req).await;
    unanswered.exchange = None;
    // A proxy's page (no Replay-Nonce back): the request never reached the CA, so the nonce
    // it carried is as unused as before.
    if response
        .extensions()
        .get::<super::error::Injected>()
        .is_some()
        && !response.headers().contains_key("replay-nonce")
        && let Some(nonce) = request_body
            .as_deref()
            .and_then(crate::state::transcripts::jws_nonce)
    {
        state.store.nonces.restore(&nonce);
    }

    let account = kid.or_else(|| {
        (response.status() == http::StatusCode::CREATED
            || response.status() == http::StatusCode::OK)
            .then(|| response.headers().get(http::header::LOCATION))
            .flatten()
            .and_then(|l| l.to_str().ok())
            .filter(|l| l.contains("/account/"))
            .map(str::to_owned)
    });
    if eab_kid.is_none()
        && let Some(url) = &account
    {
        let id = url.rsplit('/').next().unwrap_or_default();
        eab_kid = state.store.account_eab_kid(id);
    }

    let fault = response
        .extensions()
        .get::<super::error::InjectedFault>()
        .map(|f| f.0)
        .or_else(|| injected.as_ref().and_then(|s| s.get().copied()));
    let status = response.status().as_u16();
    let response_headers = pick(response.headers(), &RESPONSE_HEADERS, false);
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with(PROBLEM_CONTENT_TYPE) || t.starts_with("application/json"));
    let (response, response_body) = if is_json {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        (
            Response::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        )
    } else {
        (response, None)
    };
    let exchange = RawExchange {
        seq,
        time,
        elapsed_ms,
        duration_us: Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)),
        method,
        url,
        request_headers,
        request_body,
        status,
        response_headers,
        response_body,
        account,
        eab_kid,
        fault,
    };
    keep(&state, exchange);
    response
}

fn keep(state: &AppState, exchange: RawExchange) {
    if let Some(p) = &state.store.persist {
        p.write_exchange(&exchange.decode());
    }
    state.store.transcripts.record(exchange);
}

/// Records its exchange, status 0 and no answer, when dropped before the handler finished.
/// A `drop` fault ends the request this way: the slot says so.
struct Unanswered {
    state: Arc<AppState>,
    exchange: Option<RawExchange>,
    injected: Option<Arc<std::sync::OnceLock<crate::faults::FaultKind>>>,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(mut exchange) = self.exchange.take() {
            exchange.fault = self.injected.as_ref().and_then(|s| s.get().copied());
            keep(&self.state, exchange);
        }
    }
}
