//! Records every ACME exchange as an [`Exchange`] (issue: the judge grades these).

use std::collections::BTreeMap;
use std::sync::Arc;

use acme_proto::transcript::{
    Exchange, JwsRecord, ProblemRecord, TRANSCRIPT_VERSION, redact_payload,
};
use acme_proto::{PROBLEM_CONTENT_TYPE, b64};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AcmeError, AppState};

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

fn pick(headers: &HeaderMap, names: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in names {
        let values: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            out.insert((*name).to_owned(), values.join(", "));
        }
    }
    out
}

fn decode_jws(body: &[u8]) -> Option<JwsRecord> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let protected = value.get("protected")?.as_str()?;
    let payload = value.get("payload")?.as_str()?;
    let protected: Value = serde_json::from_slice(&b64::decode(protected).ok()?).ok()?;
    let mut decoded = b64::decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or(Value::Null);
    redact_payload(&mut decoded);
    Some(JwsRecord {
        protected,
        payload: decoded,
        post_as_get: payload.is_empty(),
    })
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
    let time = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let (seq, elapsed_ms) = state.store.transcripts.stamp();
    let (parts, body) = req.into_parts();
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
    let method = parts.method.to_string();
    let sent = parts
        .extensions
        .get::<super::SentPath>()
        .map(|p| p.0.clone());
    let url = format!(
        "{}{}",
        state.origin,
        sent.as_deref().unwrap_or(parts.uri.path())
    );
    let request_headers = pick(&parts.headers, &REQUEST_HEADERS);
    let jws = (parts.method == http::Method::POST)
        .then(|| decode_jws(&bytes))
        .flatten();
    let req = Request::from_parts(parts, Body::from(bytes));

    let response = next.run(req).await;

    let (account, mut eab_kid) = match jws
        .as_ref()
        .and_then(|j| j.protected.get("kid"))
        .and_then(Value::as_str)
    {
        Some(kid) => {
            let id = kid.rsplit('/').next().unwrap_or_default();
            let eab = state.store.accounts.get(id).and_then(|a| a.eab_kid.clone());
            (Some(kid.to_owned()), eab)
        }
        None => (None, None),
    };
    if eab_kid.is_none()
        && let Some(binding) = jws
            .as_ref()
            .and_then(|j| j.payload.get("externalAccountBinding"))
        && let Some(protected) = binding.get("protected").and_then(Value::as_str)
    {
        eab_kid = b64::decode(protected)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned));
    }
    let account = account.or_else(|| {
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
        eab_kid = state.store.accounts.get(id).and_then(|a| a.eab_kid.clone());
    }

    let status = response.status().as_u16();
    let response_headers = pick(response.headers(), &RESPONSE_HEADERS);
    let content_type = response_headers
        .get("content-type")
        .cloned()
        .unwrap_or_default();
    let is_problem = content_type.starts_with(PROBLEM_CONTENT_TYPE);
    let is_json = is_problem || content_type.starts_with("application/json");
    let (response, body) = if is_json {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let value = serde_json::from_slice::<Value>(&bytes).ok();
        (Response::from_parts(parts, Body::from(bytes)), value)
    } else {
        (response, None)
    };
    let problem = body.as_ref().filter(|_| is_problem).map(|p| ProblemRecord {
        kind: p
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        detail: p.get("detail").and_then(Value::as_str).map(str::to_owned),
    });
    let response_body = body.filter(|_| !is_problem);
    let nonce_sent = jws
        .as_ref()
        .and_then(|j| j.protected.get("nonce"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let exchange = Exchange {
        v: TRANSCRIPT_VERSION,
        seq,
        time,
        elapsed_ms,
        method,
        url,
        request_headers,
        jws,
        status,
        nonce_returned: response_headers.get("replay-nonce").cloned(),
        response_headers,
        problem,
        response_body,
        nonce_sent,
        account,
        eab_kid,
    };
    if let Some(p) = &state.store.persist {
        p.write_exchange(&exchange);
    }
    state.store.transcripts.record(exchange);
    response
}
