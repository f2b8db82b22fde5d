//! The transcript record: one HTTP exchange between an ACME client and a server, as the mock
//! records it and the judge grades it. Serialized as JSON Lines, one [`Exchange`] per line.
//!
//! Format version [`TRANSCRIPT_VERSION`]; see docs/transcript-format.md. Secrets are redacted
//! when the record is made: the EAB signature, any `Authorization` header.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The format version written in every record's `v`.
pub const TRANSCRIPT_VERSION: u32 = 1;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// One request and its response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Format version.
    pub v: u32,
    /// Order of the exchange in the server's life (1, 2, ...).
    pub seq: u64,
    /// Wall-clock time the request arrived (RFC 3339).
    pub time: String,
    /// Milliseconds since the server started, monotonic: use this for intervals.
    pub elapsed_ms: u64,
    /// How long the server took to answer, microseconds (from the request's arrival to its
    /// answer leaving the handler). Absent for a request left unanswered (the client gave up,
    /// or a fault dropped the connection) and in older transcripts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// HTTP method.
    pub method: String,
    /// The full request URL.
    pub url: String,
    /// Request headers that matter to the judge (lower-case names), secrets redacted.
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// The decoded JWS of a POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<JwsRecord>,
    /// Response status.
    pub status: u16,
    /// Response headers that matter to the judge (lower-case names).
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// The problem document's type and detail, when the response was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemRecord>,
    /// The JSON body of a JSON response (resources: status, URLs, challenges), up to 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Value>,
    /// The nonce the request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_sent: Option<String>,
    /// The Replay-Nonce the response carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_returned: Option<String>,
    /// The account URL involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The EAB key id involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
}

/// A decoded JWS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JwsRecord {
    /// The protected header.
    pub protected: Value,
    /// The payload as JSON; `null` for POST-as-GET or a payload that is not JSON.
    pub payload: Value,
    /// Whether the payload was empty (POST-as-GET).
    pub post_as_get: bool,
}

/// A problem document in brief.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRecord {
    /// The type URI.
    #[serde(rename = "type")]
    pub kind: String,
    /// The detail text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Exchange {
    /// The path of the URL (after the origin).
    pub fn path(&self) -> &str {
        self.url
            .find("://")
            .and_then(|i| self.url[i + 3..].find('/').map(|j| &self.url[i + 3 + j..]))
            .unwrap_or(&self.url)
    }
}

/// Removes secrets from a newAccount payload: the EAB MAC.
pub fn redact_payload(payload: &mut Value) {
    if let Some(eab) = payload
        .get_mut("externalAccountBinding")
        .and_then(Value::as_object_mut)
        && eab.contains_key("signature")
    {
        eab.insert("signature".into(), Value::from(REDACTED));
    }
}

/// Writes exchanges as JSON Lines, one per line (what [`parse_jsonl`] reads back).
pub fn to_jsonl(exchanges: &[Exchange]) -> Result<String, serde_json::Error> {
    let mut text = String::new();
    for e in exchanges {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    Ok(text)
}

/// Parses JSON Lines of exchanges; the error names the line.
pub fn parse_jsonl(text: &str) -> Result<Vec<Exchange>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let e: Exchange =
                serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
            if e.v > TRANSCRIPT_VERSION {
                return Err(format!(
                    "line {}: transcript format version {} is newer than this tool's {TRANSCRIPT_VERSION}",
                    i + 1,
                    e.v
                ));
            }
            Ok(e)
        })
        .collect()
}

impl std::fmt::Display for Exchange {
    /// One line: time taken, method, URL, status and the problem type's last part.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6} ms  {:<4} {}  -> {}",
            self.elapsed_ms, self.method, self.url, self.status
        )?;
        if let Some(p) = &self.problem {
            write!(f, "  {}", p.kind.rsplit(':').next().unwrap_or(&p.kind))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eab_signature_is_redacted_and_jsonl_round_trips() {
        let mut payload = serde_json::json!({
            "externalAccountBinding": {"protected": "p", "payload": "k", "signature": "SECRET-MAC"}
        });
        redact_payload(&mut payload);
        assert_eq!(payload["externalAccountBinding"]["signature"], REDACTED);
        assert_eq!(payload["externalAccountBinding"]["payload"], "k");

        let e = Exchange {
            v: TRANSCRIPT_VERSION,
            seq: 1,
            time: "2026-01-01T00:00:00Z".into(),
            elapsed_ms: 5,
            duration_us: Some(1200),
            method: "POST".into(),
            url: "https://127.0.0.1:1/v2/X/newAccount".into(),
            request_headers: BTreeMap::new(),
            jws: Some(JwsRecord {
                protected: Value::Null,
                payload,
                post_as_get: false,
            }),
            status: 201,
            response_headers: BTreeMap::new(),
            problem: None,
            response_body: None,
            nonce_sent: Some("n".into()),
            nonce_returned: None,
            account: None,
            eab_kid: Some("kid".into()),
        };
        assert_eq!(e.path(), "/v2/X/newAccount");
        assert_eq!(
            e.to_string(),
            "     5 ms  POST https://127.0.0.1:1/v2/X/newAccount  -> 201"
        );
        let line = serde_json::to_string(&e).unwrap();
        assert!(!line.contains("SECRET-MAC"));
        let back = parse_jsonl(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(parse_jsonl(&to_jsonl(&back).unwrap()).unwrap(), back);
        assert_eq!(back, vec![e.clone(), e]);
        assert!(parse_jsonl("{}").unwrap_err().starts_with("line 1"));
    }
}
