//! Checks over the course of a conversation: timing, polling, loops, the order lifecycle.

use std::collections::BTreeMap;

use acme_proto::transcript::Exchange;
use serde_json::Value;

use super::{Finding, LOOP_COUNT, POLL_FLOOR_MS, RETRY_AFTER_SLACK_MS, Verdict};
use crate::view::{Kind, Transcript, kind, payload_object, problem_name, retry_after_ms};

/// Is this a request from the client that touches `url`?
fn touches(e: &Exchange, url: &str) -> bool {
    e.url == url && matches!(e.method.as_str(), "GET" | "POST")
}

/// The order URL a finalize is about: its Location, else the URL without `/finalize`.
fn order_of_finalize(e: &Exchange) -> Option<String> {
    e.response_headers
        .get("location")
        .cloned()
        .or_else(|| e.url.strip_suffix("/finalize").map(str::to_owned))
}

pub(super) fn retry_after_honoured(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for (i, e) in t.exchanges.iter().enumerate() {
        let Some(wait) = retry_after_ms(e) else {
            continue;
        };
        if crate::view::in_final_state(e) {
            continue;
        }
        let mut targets = vec![e.url.clone()];
        if let Some(location) = e.response_headers.get("location") {
            targets.push(location.clone());
        }
        let next = t
            .after(i)
            .map(|(_, f)| f)
            .find(|f| targets.iter().any(|u| touches(f, u)));
        let Some(f) = next else { continue };
        applicable = true;
        let waited = f.elapsed_ms.saturating_sub(e.elapsed_ms);
        if waited + RETRY_AFTER_SLACK_MS < wait {
            findings.push(Finding::with(
                f.seq,
                e.seq,
                format!(
                    "{} {} came {waited} ms after #{} asked to wait {} s (Retry-After)",
                    f.method,
                    f.path(),
                    e.seq,
                    wait as f64 / 1000.0
                ),
            ));
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn poll_interval_floor(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for (i, e) in t.exchanges.iter().enumerate() {
        if kind(e) != Kind::PostAsGet || retry_after_ms(e).is_some() {
            continue;
        }
        let Some(f) = t.after(i).map(|(_, f)| f).find(|f| touches(f, &e.url)) else {
            continue;
        };
        if kind(f) != Kind::PostAsGet {
            continue;
        }
        applicable = true;
        let interval = f.elapsed_ms.saturating_sub(e.elapsed_ms);
        if interval < POLL_FLOOR_MS {
            findings.push(Finding::with(
                f.seq,
                e.seq,
                format!(
                    "{} fetched again {interval} ms after #{} (floor {POLL_FLOOR_MS} ms, no Retry-After given)",
                    f.path(),
                    e.seq
                ),
            ));
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn prevalidated_authz_handled(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    let xs = &t.exchanges;
    for (i, e) in xs.iter().enumerate() {
        if kind(e) != Kind::NewOrder || e.status != 201 {
            continue;
        }
        let order = e.response_headers.get("location");
        let window: Vec<&Exchange> = t
            .after(i)
            .map(|(_, f)| f)
            .take_while(|f| kind(f) != Kind::NewOrder)
            .collect();
        // Authorizations are read between newOrder and finalize; later fetches are the order
        // and the certificate.
        let authz_fetches: Vec<&&Exchange> = window
            .iter()
            .take_while(|f| kind(f) != Kind::Finalize)
            .filter(|f| {
                kind(f) == Kind::PostAsGet
                    && f.status == 200
                    && Some(&f.url) != order
                    && !t.account_urls.contains(&f.url)
            })
            .collect();
        let Some(authz) = authz_fetches.first() else {
            continue;
        };
        // Only already-valid authorizations are the point: where one still asks for a
        // challenge (persistent DCV wanting dns-01, say), a client without that solver is
        // right to stop.
        let all_valid = authz_fetches.iter().all(|f| {
            f.response_body
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                .is_none_or(|s| s == "valid")
        });
        if !all_valid {
            continue;
        }
        applicable = true;
        let proceeded = window
            .iter()
            .any(|f| matches!(kind(f), Kind::Finalize | Kind::ChallengeResponse));
        if !proceeded {
            findings.push(Finding::with(
                window.last().map_or(authz.seq, |f| f.seq),
                e.seq,
                format!(
                    "the client read the authorizations of order #{} and stopped: no challenge answered, no finalize",
                    e.seq
                ),
            ));
        }
    }
    Verdict::from(applicable, findings)
}

fn is_certificate(e: &Exchange) -> bool {
    e.status == 200
        && e.response_headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/pem-certificate-chain"))
}

/// A Retry-After this long (an hour) lets a client stop and resume later instead of waiting.
const LONG_WAIT_MS: u64 = 3_600_000;

pub(super) fn processing_waited_out(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    let xs = &t.exchanges;
    for (i, e) in xs.iter().enumerate() {
        if kind(e) != Kind::Finalize || !(200..300).contains(&e.status) {
            continue;
        }
        applicable = true;
        let order = order_of_finalize(e);
        let later: Vec<&Exchange> = t.after(i).map(|(_, f)| f).collect();
        if let Some(again) = later
            .iter()
            .find(|f| kind(f) == Kind::Finalize && f.url == e.url)
        {
            findings.push(Finding::with(
                again.seq,
                e.seq,
                format!(
                    "finalize sent again for an order already finalized in #{}; poll the order instead",
                    e.seq
                ),
            ));
            continue;
        }
        if later.iter().any(|f| is_certificate(f)) {
            continue;
        }
        let last = later
            .iter()
            .rev()
            .find(|f| order.as_deref() == Some(f.url.as_str()))
            .copied()
            .unwrap_or(e);
        // A wait of an hour or more asks for no patience within one run: stopping to come
        // back later is as good as waiting.
        if retry_after_ms(last).is_some_and(|ms| ms < LONG_WAIT_MS) {
            findings.push(Finding::with(
                last.seq,
                e.seq,
                "the client stopped while the order was still processing (the last answer carried Retry-After) and never downloaded the certificate",
            ));
        }
    }
    Verdict::from(applicable, findings)
}

fn identifier_set(e: &Exchange) -> String {
    let mut names: Vec<String> = payload_object(e)
        .and_then(|p| p.get("identifiers"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .map(|i| {
                    let t = i.get("type").and_then(Value::as_str).unwrap_or("?");
                    let v = i.get("value").and_then(Value::as_str).unwrap_or("?");
                    format!("{t}:{v}")
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(",")
}

fn refused(e: &Exchange) -> bool {
    (400..500).contains(&e.status) && problem_name(e) != Some("badNonce")
}

pub(super) fn refused_order_not_looped(t: &Transcript) -> Verdict {
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut findings = Vec::new();
    for e in t
        .exchanges
        .iter()
        .filter(|e| kind(e) == Kind::NewOrder && refused(e))
    {
        let seqs = counts.entry(identifier_set(e)).or_default();
        seqs.push(e.seq);
        if seqs.len() == LOOP_COUNT {
            findings.push(Finding {
                seq: e.seq,
                related: seqs[..seqs.len() - 1].to_vec(),
                message: format!(
                    "newOrder for [{}] refused {LOOP_COUNT} times; the client keeps retrying a refusal",
                    identifier_set(e)
                ),
            });
        }
    }
    Verdict::from(!counts.is_empty(), findings)
}

pub(super) fn no_4xx_hammering(t: &Transcript) -> Verdict {
    let mut counts: BTreeMap<(String, String, String), Vec<u64>> = BTreeMap::new();
    let mut findings = Vec::new();
    for e in t
        .exchanges
        .iter()
        .filter(|e| refused(e) && kind(e) != Kind::NewOrder)
    {
        let payload = match &e.jws {
            Some(j) if j.post_as_get => "POST-as-GET".to_owned(),
            Some(j) => j.payload.to_string(),
            None => String::new(),
        };
        let seqs = counts
            .entry((e.method.clone(), e.url.clone(), payload))
            .or_default();
        seqs.push(e.seq);
        if seqs.len() == LOOP_COUNT {
            findings.push(Finding {
                seq: e.seq,
                related: seqs[..seqs.len() - 1].to_vec(),
                message: format!(
                    "the same {} {} was refused {LOOP_COUNT} times ({})",
                    e.method,
                    e.path(),
                    problem_name(e).map_or_else(|| e.status.to_string(), str::to_owned)
                ),
            });
        }
    }
    Verdict::from(!counts.is_empty(), findings)
}
