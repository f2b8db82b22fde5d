//! Recorded exchanges, kept per EAB credential (or `-` for requests outside any), bounded.
//!
//! Recording sits on every request's path, so it keeps what it saw as it saw it (a
//! [`RawExchange`]: the request and response bodies as bytes) and decodes them into the
//! judge's [`Exchange`] only when someone reads the transcript.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use acme_proto::transcript::{
    Exchange, JwsRecord, ProblemRecord, TRANSCRIPT_VERSION, redact_payload,
};
use acme_proto::{PROBLEM_CONTENT_TYPE, b64};
use bytes::Bytes;
use http::HeaderValue;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How many exchanges each scope keeps; older ones are dropped first.
pub const PER_SCOPE: usize = 10_000;

/// One exchange as recorded on the request path, undecoded. Its `Debug` shows the bodies'
/// lengths only: the request body holds the EAB MAC, which only [`RawExchange::decode`]
/// redacts.
#[derive(Clone)]
pub struct RawExchange {
    /// Order of the exchange in the server's life.
    pub seq: u64,
    /// When the request arrived.
    pub time: OffsetDateTime,
    /// Milliseconds since the server started.
    pub elapsed_ms: u64,
    /// How long the answer took, microseconds (none: unanswered).
    pub duration_us: Option<u64>,
    /// HTTP method.
    pub method: http::Method,
    /// The full request URL.
    pub url: String,
    /// Request headers that matter to the judge (lower-case names, as sent; a name can repeat).
    pub request_headers: Vec<(&'static str, HeaderValue)>,
    /// The body of a POST (the JWS as sent; its EAB MAC is redacted when decoded).
    pub request_body: Option<Bytes>,
    /// Response status.
    pub status: u16,
    /// Response headers that matter to the judge (lower-case names; a name can repeat).
    pub response_headers: Vec<(&'static str, HeaderValue)>,
    /// The body of a JSON response, problem documents included, up to 64 KiB.
    pub response_body: Option<Bytes>,
    /// The account URL involved.
    pub account: Option<String>,
    /// The EAB key id involved: the scope the exchange is kept under.
    pub eab_kid: Option<String>,
    /// The fault the fault plan answered this request with, if one did.
    pub fault: Option<crate::faults::FaultKind>,
}

impl std::fmt::Debug for RawExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawExchange")
            .field("seq", &self.seq)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("status", &self.status)
            .field(
                "request_body_len",
                &self.request_body.as_ref().map(Bytes::len),
            )
            .field(
                "response_body_len",
                &self.response_body.as_ref().map(Bytes::len),
            )
            .field("account", &self.account)
            .field("eab_kid", &self.eab_kid)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl RawExchange {
    /// The judge's view: the JWS decoded and the response body parsed, EAB MACs redacted in
    /// both.
    pub fn decode(&self) -> Exchange {
        let jws = self.request_body.as_deref().and_then(decode_jws);
        let response_headers = joined(&self.response_headers);
        let is_problem = response_headers
            .get("content-type")
            .is_some_and(|t| t.starts_with(PROBLEM_CONTENT_TYPE));
        // An account object that echoes its binding (`account.echo_eab`) carries the MAC
        // too: redacted as in the request.
        let body = self
            .response_body
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .map(|mut v| {
                redact_payload(&mut v);
                v
            });
        let problem = body.as_ref().filter(|_| is_problem).map(|p| ProblemRecord {
            kind: p
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            detail: p.get("detail").and_then(Value::as_str).map(str::to_owned),
        });
        let nonce_sent = jws
            .as_ref()
            .and_then(|j| j.protected.get("nonce"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Exchange {
            v: TRANSCRIPT_VERSION,
            seq: self.seq,
            time: self.time.format(&Rfc3339).unwrap_or_default(),
            elapsed_ms: self.elapsed_ms,
            duration_us: self.duration_us,
            method: self.method.to_string(),
            url: self.url.clone(),
            request_headers: joined(&self.request_headers),
            jws,
            status: self.status,
            nonce_returned: response_headers.get("replay-nonce").cloned(),
            response_headers,
            problem,
            response_body: body.filter(|_| !is_problem),
            nonce_sent,
            account: self.account.clone(),
            eab_kid: self.eab_kid.clone(),
        }
    }
}

/// Headers as the record shows them: one entry per name, repeated values joined by ", ";
/// values that are not text are left out.
fn joined(headers: &[(&'static str, HeaderValue)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        out.entry((*name).to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    out
}

/// Decodes a flattened JWS for the record: protected header and payload as JSON.
fn decode_jws(body: &[u8]) -> Option<JwsRecord> {
    let outer: Flattened<'_> = serde_json::from_slice(body).ok()?;
    let protected: Value = serde_json::from_slice(&b64::decode(&outer.protected).ok()?).ok()?;
    let mut payload = b64::decode(&outer.payload)
        .ok()
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or(Value::Null);
    redact_payload(&mut payload);
    Some(JwsRecord {
        protected,
        payload,
        post_as_get: outer.payload.is_empty(),
    })
}

/// The two members of a flattened JWS the record needs, borrowed where the JSON allows.
#[derive(Deserialize)]
struct Flattened<'a> {
    #[serde(borrow)]
    protected: Cow<'a, str>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

/// A `kid` member, whatever else the object holds.
#[derive(Deserialize)]
struct Kid {
    kid: Option<String>,
}

/// The bit of a newAccount payload that names the EAB credential: only the binding's
/// protected header counts, so a binding with a missing or malformed payload (a client bug
/// the judge should see) is still filed under its credential.
#[derive(Deserialize)]
struct NewAccountPayload<'a> {
    #[serde(rename = "externalAccountBinding", borrow)]
    eab: Option<BindingHeader<'a>>,
}

/// An EAB binding's protected header, whatever else the binding holds.
#[derive(Deserialize)]
struct BindingHeader<'a> {
    #[serde(borrow)]
    protected: Cow<'a, str>,
}

/// The `kid` of a JWS's protected header (an account URL), without decoding anything else.
pub fn jws_kid(body: &[u8]) -> Option<String> {
    let outer: Flattened<'_> = serde_json::from_slice(body).ok()?;
    let header = b64::decode(&outer.protected).ok()?;
    serde_json::from_slice::<Kid>(&header).ok()?.kid
}

/// The `nonce` of a JWS's protected header.
pub fn jws_nonce(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Nonce {
        nonce: Option<String>,
    }
    let outer: Flattened<'_> = serde_json::from_slice(body).ok()?;
    let header = b64::decode(&outer.protected).ok()?;
    serde_json::from_slice::<Nonce>(&header).ok()?.nonce
}

/// The EAB key id a newAccount request's payload carries, if any.
pub fn eab_kid_of_new_account(body: &[u8]) -> Option<String> {
    let outer: Flattened<'_> = serde_json::from_slice(body).ok()?;
    let payload = b64::decode(&outer.payload).ok()?;
    let eab = serde_json::from_slice::<NewAccountPayload<'_>>(&payload)
        .ok()?
        .eab?;
    let header = b64::decode(&eab.protected).ok()?;
    serde_json::from_slice::<Kid>(&header).ok()?.kid
}

/// An entry: recorded by this process, or restored (already decoded) from the state database.
/// Cloning one is cheap for recorded entries: their bodies are reference-counted.
// Recorded entries are the common case and stay inline: boxing them would cost an allocation
// per request; restored ones are boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Kept {
    Raw(RawExchange),
    Restored(Box<Exchange>),
}

impl Kept {
    fn seq(&self) -> u64 {
        match self {
            Kept::Raw(r) => r.seq,
            Kept::Restored(e) => e.seq,
        }
    }

    fn decode(&self) -> Exchange {
        match self {
            Kept::Raw(r) => r.decode(),
            Kept::Restored(e) => (**e).clone(),
        }
    }

    fn fault(&self) -> Option<crate::faults::FaultKind> {
        match self {
            Kept::Raw(r) => r.fault,
            Kept::Restored(_) => None,
        }
    }
}

/// How many recorded exchanges wait for a slow live subscriber before it starts losing them.
const LIVE_BACKLOG: usize = 1024;

/// The transcript store.
#[derive(Debug)]
pub struct Transcripts {
    started: Instant,
    seq: AtomicU64,
    scopes: super::Map<String, Mutex<VecDeque<Kept>>>,
    /// Every recorded exchange as it is kept, for the console's live view. A broadcast
    /// channel never blocks the sender: a subscriber that falls behind loses the oldest.
    live: tokio::sync::broadcast::Sender<RawExchange>,
}

impl Default for Transcripts {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            seq: AtomicU64::new(0),
            scopes: super::Map::default(),
            live: tokio::sync::broadcast::channel(LIVE_BACKLOG).0,
        }
    }
}

impl Transcripts {
    /// The next sequence number and the monotonic milliseconds since start.
    pub fn stamp(&self) -> (u64, u64) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (seq, self.started.elapsed().as_millis() as u64)
    }

    /// Puts back an exchange loaded from the persistent store; later ones number after it.
    pub fn restore(&self, exchange: Exchange) {
        self.seq.fetch_max(exchange.seq, Ordering::Relaxed);
        let scope = exchange.eab_kid.clone();
        self.keep(scope.as_deref(), Kept::Restored(Box::new(exchange)));
    }

    /// Stores an exchange under its EAB key id (or `-`).
    pub fn record(&self, exchange: RawExchange) {
        // Nobody watching (the usual case under load) costs one atomic load.
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(exchange.clone());
        }
        let scope = exchange.eab_kid.clone();
        self.keep(scope.as_deref(), Kept::Raw(exchange));
    }

    fn keep(&self, scope: Option<&str>, entry: Kept) {
        let scope = scope.unwrap_or("-");
        // The common case takes a read lock on the shard; a new scope needs the write lock.
        let evicted = match self.scopes.get(scope) {
            Some(list) => push(&list, entry),
            None => {
                let list = self.scopes.entry(scope.to_owned()).or_default();
                push(&list, entry)
            }
        };
        // Dropped here, after the locks: freeing an old exchange is not done while holding them.
        drop(evicted);
    }

    /// The exchanges of one scope, oldest first.
    pub fn of(&self, scope: &str) -> Vec<Exchange> {
        let Some(list) = self.scopes.get(scope) else {
            return Vec::new();
        };
        // Decoding happens after the lock is released: the request path is not held up by it.
        let kept: Vec<Kept> = match list.lock() {
            Ok(l) => l.iter().map(Kept::clone).collect(),
            Err(_) => return Vec::new(),
        };
        drop(list);
        kept.iter().map(Kept::decode).collect()
    }

    /// Every exchange after sequence number `since`, in sequence order.
    pub fn since(&self, since: u64) -> Vec<Exchange> {
        self.kept_since(since).iter().map(Kept::decode).collect()
    }

    /// [`Transcripts::since`], each exchange with the fault injected into it (if any).
    pub fn since_with_faults(
        &self,
        since: u64,
    ) -> Vec<(Exchange, Option<crate::faults::FaultKind>)> {
        self.kept_since(since)
            .iter()
            .map(|k| (k.decode(), k.fault()))
            .collect()
    }

    fn kept_since(&self, since: u64) -> Vec<Kept> {
        let mut kept: Vec<Kept> = Vec::new();
        for list in self.scopes.iter() {
            if let Ok(l) = list.lock() {
                kept.extend(l.iter().filter(|e| e.seq() > since).map(Kept::clone));
            }
        }
        kept.sort_by_key(Kept::seq);
        kept
    }

    /// Every exchange recorded from now on, as it is recorded. A subscriber more than
    /// 1,024 exchanges behind gets `Lagged` and misses them (read them back with
    /// [`Transcripts::since`]); the request path never waits for it.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RawExchange> {
        self.live.subscribe()
    }

    /// How many exchanges are kept, over every scope (nothing is decoded).
    pub fn count(&self) -> usize {
        self.scopes
            .iter()
            .map(|l| l.lock().map(|l| l.len()).unwrap_or(0))
            .sum()
    }

    /// Every exchange, in sequence order.
    pub fn all(&self) -> Vec<Exchange> {
        self.since(0)
    }
}

fn push(list: &Mutex<VecDeque<Kept>>, entry: Kept) -> Option<Kept> {
    let mut list = list.lock().ok()?;
    let evicted = (list.len() == PER_SCOPE)
        .then(|| list.pop_front())
        .flatten();
    list.push_back(entry);
    evicted
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn jws(protected: Value, payload: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "protected": b64::encode(protected.to_string().as_bytes()),
            "payload": b64::encode(payload.to_string().as_bytes()),
            "signature": "c2ln",
        }))
        .unwrap()
    }

    fn raw(seq: u64, body: Vec<u8>, eab_kid: Option<&str>) -> RawExchange {
        RawExchange {
            seq,
            time: OffsetDateTime::UNIX_EPOCH,
            elapsed_ms: 0,
            duration_us: None,
            method: http::Method::POST,
            url: "https://127.0.0.1:1/v2/X/newAccount".into(),
            request_headers: vec![(
                "content-type",
                HeaderValue::from_static("application/jose+json"),
            )],
            request_body: Some(Bytes::from(body)),
            status: 400,
            response_headers: vec![
                (
                    "content-type",
                    HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
                ),
                ("link", HeaderValue::from_static("<a>;rel=\"index\"")),
                ("link", HeaderValue::from_static("<b>;rel=\"up\"")),
                ("replay-nonce", HeaderValue::from_static("n2")),
            ],
            response_body: Some(Bytes::from_static(
                br#"{"type":"urn:ietf:params:acme:error:malformed","detail":"bad"}"#,
            )),
            account: None,
            eab_kid: eab_kid.map(str::to_owned),
            fault: None,
        }
    }

    #[test]
    fn scope_helpers_read_the_kid_and_the_eab_kid() {
        let by_kid = jws(
            serde_json::json!({"alg": "ES256", "kid": "https://h/acct/A", "nonce": "n", "url": "u"}),
            Value::Null,
        );
        assert_eq!(jws_kid(&by_kid).as_deref(), Some("https://h/acct/A"));
        assert_eq!(eab_kid_of_new_account(&by_kid), None);

        let eab = serde_json::json!({
            "protected": b64::encode(br#"{"alg":"HS256","kid":"DeptKid","url":"u"}"#),
            "payload": "e30",
            "signature": "THE-MAC",
        });
        let new_account = jws(
            serde_json::json!({"alg": "ES256", "jwk": {}, "nonce": "n", "url": "u"}),
            serde_json::json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab}),
        );
        assert_eq!(jws_kid(&new_account), None);
        assert_eq!(
            eab_kid_of_new_account(&new_account).as_deref(),
            Some("DeptKid")
        );
        // A binding whose payload is the JWK object instead of its encoding: still this scope.
        let odd = jws(
            serde_json::json!({"alg": "ES256", "jwk": {}, "nonce": "n", "url": "u"}),
            serde_json::json!({"externalAccountBinding": {
                "protected": b64::encode(br#"{"alg":"HS256","kid":"DeptKid","url":"u"}"#),
                "payload": {"kty": "EC"},
            }}),
        );
        assert_eq!(eab_kid_of_new_account(&odd).as_deref(), Some("DeptKid"));
        assert_eq!(jws_kid(b"not json"), None);
        assert_eq!(eab_kid_of_new_account(b"{}"), None);
    }

    #[test]
    fn decoding_redacts_the_mac_joins_headers_and_reads_the_problem() {
        let eab = serde_json::json!({"protected": "e30", "payload": "e30", "signature": "THE-MAC"});
        let body = jws(
            serde_json::json!({"alg": "ES256", "jwk": {}, "nonce": "n1", "url": "u"}),
            serde_json::json!({"externalAccountBinding": eab}),
        );
        // The MAC travels base64url-encoded inside the payload: Debug shows no part of it.
        let encoded: Value = serde_json::from_slice(&body).unwrap();
        let payload = encoded["payload"].as_str().unwrap().to_owned();
        let kept = raw(7, body, Some("DeptKid"));
        let shown = format!("{kept:?}");
        assert!(!shown.contains(&payload[..16]), "{shown}");
        let e = kept.decode();
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("THE-MAC"), "{line}");
        assert_eq!(e.nonce_sent.as_deref(), Some("n1"));
        assert_eq!(e.nonce_returned.as_deref(), Some("n2"));
        assert_eq!(
            e.response_headers["link"],
            "<a>;rel=\"index\", <b>;rel=\"up\""
        );
        assert_eq!(e.request_headers["content-type"], "application/jose+json");
        let problem = e.problem.unwrap();
        assert_eq!(problem.kind, "urn:ietf:params:acme:error:malformed");
        assert_eq!(problem.detail.as_deref(), Some("bad"));
        assert_eq!(
            e.response_body, None,
            "a problem is recorded as the problem"
        );
        assert_eq!(e.time, "1970-01-01T00:00:00Z");
    }

    #[test]
    fn scopes_are_bounded_and_read_back_in_order() {
        let t = Transcripts::default();
        t.record(raw(1, b"{}".to_vec(), None));
        for seq in 2..=(PER_SCOPE as u64 + 5) {
            t.record(raw(seq, b"{}".to_vec(), Some("DeptKid")));
        }
        t.restore(raw(PER_SCOPE as u64 + 6, b"{}".to_vec(), None).decode());
        let dept = t.of("DeptKid");
        assert_eq!(
            dept.len(),
            PER_SCOPE,
            "the oldest are dropped beyond the bound"
        );
        assert_eq!(dept[0].seq, 6);
        assert!(dept.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(t.of("-").len(), 2, "another scope keeps its own");
        assert_eq!(t.count(), PER_SCOPE + 2);
        let all = t.all();
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(all.last().unwrap().seq, PER_SCOPE as u64 + 6);
        assert_eq!(t.since(PER_SCOPE as u64 + 4).len(), 2);
        assert_eq!(
            t.stamp().0,
            PER_SCOPE as u64 + 7,
            "restored records number on"
        );
    }

    /// The live view's channel never holds up recording: a watcher that reads nothing falls
    /// behind, is told so, and the store keeps everything.
    #[test]
    fn a_watcher_that_does_not_read_never_blocks_recording() {
        use tokio::sync::broadcast::error::TryRecvError;
        let store = Transcripts::default();
        let mut idle = store.subscribe();
        let body = jws(
            serde_json::json!({"alg": "ES256", "nonce": "n"}),
            Value::Null,
        );
        for _ in 0..(LIVE_BACKLOG * 3) {
            let (seq, _) = store.stamp();
            store.record(raw(seq, body.clone(), Some("K")));
        }
        assert_eq!(store.count(), LIVE_BACKLOG * 3);
        assert!(
            matches!(idle.try_recv(), Err(TryRecvError::Lagged(n)) if n == 2 * LIVE_BACKLOG as u64)
        );
        // After the gap it gets the newest, in order.
        let next = idle.try_recv().unwrap();
        assert_eq!(next.seq, 2 * LIVE_BACKLOG as u64 + 1);
    }
}
