//! The live exchanges: the recorded ones so far (JSON), then each new one as it is recorded
//! (server-sent events). Decoding happens here, on the watcher's task, never on the request
//! path: the recorder only hands a copy to a broadcast channel, and a watcher that falls
//! behind loses exchanges (it is told, and reads them back) instead of holding anyone up.

use std::convert::Infallible;
use std::sync::Arc;

use acme_proto::transcript::Exchange;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use mock_server::faults::FaultKind;
use mock_server::http::AppState;

/// How many exchanges the first load shows at most (the newest).
const FIRST_LOAD: usize = 2_000;

/// One exchange as the console shows it: the transcript's record (EAB MAC redacted), what
/// endpoint it was, and the fault that answered it, if one did.
#[derive(Debug, Serialize)]
pub(crate) struct ExchangeView {
    #[serde(flatten)]
    pub(crate) exchange: Exchange,
    /// `newAccount`, `order`, `finalize`, `directory`, ...
    pub(crate) endpoint: String,
    /// The injected fault (`badNonce`, `serviceUnavailable`, ...).
    pub(crate) fault: Option<FaultKind>,
    /// The credential the exchange is filed under, `-` for none.
    pub(crate) scope: String,
}

impl ExchangeView {
    pub(crate) fn new(exchange: Exchange, fault: Option<FaultKind>) -> Self {
        Self {
            endpoint: endpoint_of(&exchange.url),
            scope: exchange.eab_kid.clone().unwrap_or_else(|| "-".into()),
            exchange,
            fault,
        }
    }
}

/// The endpoint of an ACME URL: `/v2/NAME` is the directory, `/v2/NAME/order/ID/finalize`
/// is `finalize`, `/v2/NAME/order/ID` is `order`; a randomised path segment is skipped.
pub(crate) fn endpoint_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    let mut parts = path.trim_matches('/').split('/').skip(2).peekable();
    // A profile with randomised paths puts a segment `r...` first.
    if parts
        .peek()
        .is_some_and(|p| p.starts_with('r') && p.len() > 16)
    {
        parts.next();
    }
    let parts: Vec<&str> = parts.collect();
    match parts.as_slice() {
        [] => "directory".into(),
        [name] => (*name).into(),
        [kind, _, "alternate", ..] => (*kind).into(),
        [_, _, sub, ..] if sub.chars().all(|c| c.is_ascii_alphabetic()) => (*sub).into(),
        [kind, ..] => (*kind).into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Since {
    #[serde(default)]
    since: u64,
}

/// The recorded exchanges after `?since=SEQ` (the newest 2,000 at most), oldest first.
pub(crate) async fn exchanges(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Since>,
) -> Response {
    let all = state.store.transcripts.since_with_faults(q.since);
    let skip = all.len().saturating_sub(FIRST_LOAD);
    let views: Vec<ExchangeView> = all
        .into_iter()
        .skip(skip)
        .map(|(e, f)| ExchangeView::new(e, f))
        .collect();
    Json(views).into_response()
}

/// Every exchange from now on, one `exchange` event each (its id is the exchange's seq); a
/// `lagged` event when this watcher fell behind and lost some, so the page reads them back.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.store.transcripts.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(raw) => {
                let fault = raw.fault;
                let view = ExchangeView::new(raw.decode(), fault);
                Event::default()
                    .event("exchange")
                    .id(view.exchange.seq.to_string())
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("lagged").data("encode"))
            }
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::endpoint_of;

    #[test]
    fn endpoints_from_urls() {
        let base = "https://127.0.0.1:1/v2/InCommonRSAOV";
        assert_eq!(endpoint_of(base), "directory");
        assert_eq!(endpoint_of(&format!("{base}/newAccount")), "newAccount");
        assert_eq!(endpoint_of(&format!("{base}/order/AbC")), "order");
        assert_eq!(
            endpoint_of(&format!("{base}/order/AbC/finalize")),
            "finalize"
        );
        assert_eq!(endpoint_of(&format!("{base}/cert/AbC/alternate/1")), "cert");
        assert_eq!(
            endpoint_of(&format!("{base}/r0123456789abcdefghij/authz/X")),
            "authz"
        );
    }
}
