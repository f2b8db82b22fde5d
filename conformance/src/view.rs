//! A transcript prepared for grading: exchanges in sequence order, plus what can be learned
//! from them without response bodies (which the record does not keep): the directory URL,
//! the newNonce URLs, each request's kind, the account URLs and keys.

use std::collections::{BTreeMap, BTreeSet};

use acme_proto::Jwk;
use acme_proto::b64;
use acme_proto::transcript::Exchange;
use serde_json::Value;

/// What an exchange is, judged from its method, JWS header and payload (RFC 8555 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A plain GET.
    Get,
    /// A HEAD (newNonce).
    Head,
    /// newAccount (or an `onlyReturnExisting` lookup).
    NewAccount,
    /// newOrder.
    NewOrder,
    /// finalize.
    Finalize,
    /// revokeCert.
    RevokeCert,
    /// keyChange.
    KeyChange,
    /// A challenge response: payload `{}`.
    ChallengeResponse,
    /// POST-as-GET: a resource fetch.
    PostAsGet,
    /// Any other POST with a payload (account update, authorization deactivation).
    Update,
    /// A POST whose body is not a decodable JWS, or another method.
    Other,
}

/// A transcript with what the rules need to know about it.
#[derive(Debug)]
pub struct Transcript {
    /// The exchanges, in `seq` order.
    pub exchanges: Vec<Exchange>,
    /// The directory URL: the `Link: rel="index"` target, else the first JSON GET.
    pub directory: Option<String>,
    /// URLs that hand out nonces (HEAD targets, GETs answered 204).
    pub nonce_urls: BTreeSet<String>,
    /// Account URLs the server returned in Location headers of newAccount responses.
    pub account_urls: BTreeSet<String>,
    /// Account keys by account URL, from newAccount requests.
    pub account_keys: BTreeMap<String, Jwk>,
}

impl Transcript {
    /// Sorts by `seq` and derives the directory, nonce URLs and accounts.
    pub fn new(mut exchanges: Vec<Exchange>) -> Self {
        exchanges.sort_by_key(|e| e.seq);
        let directory = exchanges
            .iter()
            .find_map(|e| link_target(e, "index"))
            .or_else(|| {
                exchanges
                    .iter()
                    .find(|e| {
                        e.method == "GET"
                            && e.response_headers
                                .get("content-type")
                                .is_some_and(|c| c.starts_with("application/json"))
                    })
                    .map(|e| e.url.clone())
            });
        let nonce_urls = exchanges
            .iter()
            .filter(|e| e.method == "HEAD" || (e.method == "GET" && e.status == 204))
            .map(|e| e.url.clone())
            .collect();
        let mut account_urls = BTreeSet::new();
        let mut account_keys = BTreeMap::new();
        for e in &exchanges {
            if kind(e) != Kind::NewAccount {
                continue;
            }
            if let Some(location) = e.response_headers.get("location")
                && (200..300).contains(&e.status)
            {
                account_urls.insert(location.clone());
                if let Some(jwk) = header_jwk(e) {
                    account_keys.insert(location.clone(), jwk);
                }
            }
        }
        Self {
            exchanges,
            directory,
            nonce_urls,
            account_urls,
            account_keys,
        }
    }

    /// The exchange with this sequence number.
    pub fn get(&self, seq: u64) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.seq == seq)
    }

    /// Exchanges after position `i` (exclusive).
    pub fn after(&self, i: usize) -> impl Iterator<Item = (usize, &Exchange)> {
        self.exchanges.iter().enumerate().skip(i + 1)
    }
}

/// The target of a `Link` response header with the given relation.
pub fn link_target(e: &Exchange, rel: &str) -> Option<String> {
    let links = e.response_headers.get("link")?;
    links.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == format!("rel=\"{rel}\"") || p == format!("rel={rel}")
            })
            .then(|| url.to_owned())
    })
}

/// A string member of the protected header.
pub fn header_str<'a>(e: &'a Exchange, name: &str) -> Option<&'a str> {
    e.jws.as_ref()?.protected.get(name)?.as_str()
}

/// The `jwk` of the protected header, parsed.
pub fn header_jwk(e: &Exchange) -> Option<Jwk> {
    Jwk::from_json(e.jws.as_ref()?.protected.get("jwk")?).ok()
}

/// The decoded payload, when it is a JSON object.
pub fn payload_object(e: &Exchange) -> Option<&serde_json::Map<String, Value>> {
    let jws = e.jws.as_ref()?;
    if jws.post_as_get {
        return None;
    }
    jws.payload.as_object()
}

/// The problem type's short name (`badNonce`, ...), when the response was a problem.
pub fn problem_name(e: &Exchange) -> Option<&str> {
    let kind = &e.problem.as_ref()?.kind;
    Some(kind.rsplit(':').next().unwrap_or(kind))
}

/// Decodes a base64url JSON member of an EAB or keyChange inner JWS.
pub fn decode_json(text: &str) -> Option<Value> {
    serde_json::from_slice(&b64::decode(text).ok()?).ok()
}

/// What an exchange is.
pub fn kind(e: &Exchange) -> Kind {
    match e.method.as_str() {
        "GET" => return Kind::Get,
        "HEAD" => return Kind::Head,
        "POST" => {}
        _ => return Kind::Other,
    }
    let Some(jws) = &e.jws else {
        return Kind::Other;
    };
    if jws.post_as_get {
        return Kind::PostAsGet;
    }
    let Some(payload) = jws.payload.as_object() else {
        return Kind::Update;
    };
    let kid = jws.protected.get("kid").and_then(Value::as_str);
    if payload.contains_key("csr") {
        Kind::Finalize
    } else if payload.contains_key("identifiers") {
        Kind::NewOrder
    } else if payload.contains_key("certificate") {
        Kind::RevokeCert
    } else if payload.contains_key("protected") && payload.contains_key("signature") {
        Kind::KeyChange
    } else if kid != Some(e.url.as_str())
        && (payload.contains_key("termsOfServiceAgreed")
            || payload.contains_key("onlyReturnExisting")
            || payload.contains_key("externalAccountBinding")
            || jws.protected.get("jwk").is_some())
    {
        Kind::NewAccount
    } else if payload.is_empty() {
        Kind::ChallengeResponse
    } else {
        Kind::Update
    }
}

/// One line naming an exchange: `#12 POST /v2/X/newOrder -> 400 rejectedIdentifier`.
pub fn describe(e: &Exchange) -> String {
    let mut s = format!("#{} {} {} -> {}", e.seq, e.method, e.path(), e.status);
    if let Some(p) = problem_name(e) {
        s.push(' ');
        s.push_str(p);
    }
    s
}

/// Retry-After in milliseconds: delta-seconds, or an HTTP-date relative to the exchange's
/// wall-clock time (RFC 9110 §10.2.3).
pub fn retry_after_ms(e: &Exchange) -> Option<u64> {
    let value = e.response_headers.get("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let at = time::OffsetDateTime::parse(&e.time, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let date = time::OffsetDateTime::from(date);
    let ms = (date - at).whole_milliseconds();
    Some(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

/// A resource that is already `valid`, `invalid`, `revoked`, `deactivated` or `expired` will
/// not change, so a Retry-After on it asks for no wait: reading it again early is allowed
/// (Sectigo sends `Retry-After: 300` on pre-validated authorizations, docs/evidence.md §3).
pub fn in_final_state(e: &Exchange) -> bool {
    e.status < 300
        && e.response_body
            .as_ref()
            .and_then(|b| b.get("status"))
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| {
                matches!(
                    s,
                    "valid" | "invalid" | "revoked" | "deactivated" | "expired"
                )
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(headers: &[(&str, &str)]) -> Exchange {
        serde_json::from_value(serde_json::json!({
            "v": 1, "seq": 1, "time": "2026-01-01T00:00:00Z", "elapsed_ms": 0,
            "method": "POST", "url": "https://127.0.0.1/v2/X/order/1", "status": 200,
            "response_headers": headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        // RFC 9110 §10.2.3: delay-seconds or an HTTP-date.
        assert_eq!(
            retry_after_ms(&exchange(&[("retry-after", "15")])),
            Some(15_000)
        );
        let date = exchange(&[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")]);
        assert_eq!(retry_after_ms(&date), Some(30_000));
        let past = exchange(&[("retry-after", "Wed, 31 Dec 2025 23:00:00 GMT")]);
        assert_eq!(retry_after_ms(&past), Some(0));
        assert_eq!(retry_after_ms(&exchange(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after_ms(&exchange(&[])), None);
    }

    #[test]
    fn link_targets_are_found_by_relation() {
        let e = exchange(&[(
            "link",
            "<https://h/v2/X/authz/1>;rel=\"up\", <https://h/v2/X>;rel=\"index\"",
        )]);
        assert_eq!(link_target(&e, "index").as_deref(), Some("https://h/v2/X"));
        assert_eq!(
            link_target(&e, "up").as_deref(),
            Some("https://h/v2/X/authz/1")
        );
        assert_eq!(link_target(&e, "alternate"), None);
    }
}
