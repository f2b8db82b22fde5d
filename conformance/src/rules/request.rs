//! Checks on single requests: nonces, JWS headers, media types, EAB, keys.

use std::collections::{BTreeMap, BTreeSet};

use acme_proto::Jwk;
use acme_proto::eab::MacAlgorithm;
use acme_proto::transcript::Exchange;
use serde_json::Value;

use super::{Finding, Verdict};
use crate::view::{
    Kind, Transcript, decode_json, header_jwk, header_str, kind, payload_object, problem_name,
};

fn is_jws_post(e: &Exchange) -> bool {
    e.method == "POST" && e.jws.is_some()
}

pub(super) fn nonce_not_reused(t: &Transcript) -> Verdict {
    let mut spent: BTreeMap<&str, u64> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in &t.exchanges {
        let Some(nonce) = e.nonce_sent.as_deref() else {
            continue;
        };
        applicable = true;
        if let Some(&first) = spent.get(nonce) {
            findings.push(Finding::with(
                e.seq,
                first,
                format!("nonce {nonce} was already sent in #{first}"),
            ));
        } else if !proxy_page(e) {
            spent.insert(nonce, e.seq);
        }
    }
    Verdict::from(applicable, findings)
}

/// An answer from a proxy in front of the CA (an HTML error page without Replay-Nonce): the
/// request never reached the CA, so the nonce it carried was not spent, and sending the same
/// request again is no reuse. A problem document, or any answer with a fresh nonce, came
/// from the CA and spent it.
fn proxy_page(e: &acme_proto::transcript::Exchange) -> bool {
    e.status >= 400 && e.problem.is_none() && !e.response_headers.contains_key("replay-nonce")
}

pub(super) fn nonce_from_server(t: &Transcript) -> Verdict {
    let has_nonce_fetch = t
        .exchanges
        .iter()
        .any(|e| matches!(kind(e), Kind::Head) || (e.method == "GET" && e.status == 204));
    if !has_nonce_fetch {
        return Verdict::NotApplicable;
    }
    let mut handed_out = BTreeSet::new();
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in &t.exchanges {
        if let Some(nonce) = e.nonce_sent.as_deref() {
            applicable = true;
            if !handed_out.contains(nonce) {
                findings.push(Finding::at(
                    e.seq,
                    format!("nonce {nonce} never appeared in a Replay-Nonce header before"),
                ));
            }
        }
        if let Some(n) = &e.nonce_returned {
            handed_out.insert(n.clone());
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn bad_nonce_retried(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for (i, e) in t.exchanges.iter().enumerate() {
        if problem_name(e) != Some("badNonce") || e.method != "POST" {
            continue;
        }
        applicable = true;
        let next = t.after(i).map(|(_, f)| f).find(|f| is_jws_post(f));
        match next {
            None => findings.push(Finding::at(
                e.seq,
                "badNonce was the end of the conversation: the request was never retried",
            )),
            Some(f) if f.url != e.url => findings.push(Finding::with(
                f.seq,
                e.seq,
                format!(
                    "after badNonce on {} the next request went to {} instead of a retry",
                    e.path(),
                    f.path()
                ),
            )),
            Some(f) if f.nonce_sent.is_some() && f.nonce_sent == e.nonce_sent => {
                findings.push(Finding::with(
                    f.seq,
                    e.seq,
                    "the retry after badNonce sent the rejected nonce again",
                ))
            }
            Some(_) => {}
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn jws_url_matches(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| is_jws_post(e)) {
        applicable = true;
        match header_str(e, "url") {
            None => findings.push(Finding::at(e.seq, "the protected header has no `url`")),
            Some(url) => {
                // The record keeps the URL without its query; compare like with like.
                let url = url.split('?').next().unwrap_or(url);
                if url != e.url {
                    findings.push(Finding::at(
                        e.seq,
                        format!("protected `url` is {url} but the request went to {}", e.url),
                    ));
                }
            }
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn jws_key_reference(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| is_jws_post(e)) {
        applicable = true;
        let Some(jws) = &e.jws else { continue };
        let has_jwk = jws.protected.get("jwk").is_some();
        let has_kid = jws.protected.get("kid").is_some();
        let k = kind(e);
        let message = match (has_jwk, has_kid) {
            (true, true) => Some("the protected header has both `jwk` and `kid`".to_owned()),
            (false, false) => Some("the protected header has neither `jwk` nor `kid`".to_owned()),
            (true, false) if !matches!(k, Kind::NewAccount | Kind::RevokeCert) => Some(format!(
                "`jwk` used on {} ({k:?}); only newAccount and revokeCert may carry it",
                e.path()
            )),
            (false, true) if k == Kind::NewAccount => {
                Some("newAccount signed with `kid`; it must carry the account's `jwk`".to_owned())
            }
            _ => None,
        };
        if let Some(m) = message {
            findings.push(Finding::at(e.seq, m));
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn post_as_get(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in &t.exchanges {
        match kind(e) {
            Kind::PostAsGet => applicable = true,
            Kind::Get => {
                let path = e.path().to_ascii_lowercase();
                let allowed = t.directory.as_deref() == Some(e.url.as_str())
                    || t.nonce_urls.contains(&e.url)
                    || path.ends_with("/newnonce")
                    || path.ends_with("/new-nonce")
                    || path.contains("renewalinfo")
                    || path.contains("renewal-info");
                if !allowed {
                    applicable = true;
                    findings.push(Finding::at(
                        e.seq,
                        format!(
                            "plain GET of {}: resources must be fetched with POST-as-GET",
                            e.path()
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn content_type_jose(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| e.method == "POST") {
        applicable = true;
        let ct = e.request_headers.get("content-type");
        let ok = ct.is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jose+json"))
        });
        if !ok {
            findings.push(Finding::at(
                e.seq,
                match ct {
                    Some(c) => format!("Content-Type is {c}"),
                    None => "no Content-Type header".to_owned(),
                },
            ));
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn user_agent_sent(t: &Transcript) -> Verdict {
    let findings = t
        .exchanges
        .iter()
        .filter(|e| {
            e.request_headers
                .get("user-agent")
                .is_none_or(|ua| ua.trim().is_empty())
        })
        .map(|e| Finding::at(e.seq, "no User-Agent header"))
        .collect();
    Verdict::from(!t.exchanges.is_empty(), findings)
}

fn creates_account(e: &Exchange) -> bool {
    kind(e) == Kind::NewAccount
        && !payload_object(e)
            .and_then(|p| p.get("onlyReturnExisting"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

fn eab_of(e: &Exchange) -> Option<&Value> {
    payload_object(e)?.get("externalAccountBinding")
}

pub(super) fn eab_sent(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| creates_account(e)) {
        if eab_of(e).is_some() {
            applicable = true;
        } else if problem_name(e) == Some("externalAccountRequired") {
            applicable = true;
            findings.push(Finding::at(
                e.seq,
                "newAccount without externalAccountBinding was refused: the server requires EAB",
            ));
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn eab_binding_correct(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| kind(e) == Kind::NewAccount) {
        let Some(binding) = eab_of(e) else { continue };
        applicable = true;
        for problem in binding_problems(e, binding) {
            findings.push(Finding::at(e.seq, problem));
        }
    }
    Verdict::from(applicable, findings)
}

fn binding_problems(e: &Exchange, binding: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let member = |name: &str| binding.get(name).and_then(Value::as_str);
    let (Some(protected), Some(payload)) = (member("protected"), member("payload")) else {
        return vec!["externalAccountBinding is not a flattened JWS (protected, payload)".into()];
    };
    if member("signature").is_none_or(str::is_empty) {
        out.push("externalAccountBinding has no signature".into());
    }
    let Some(header) = decode_json(protected) else {
        return vec!["the binding's protected header is not base64url JSON".into()];
    };
    match header.get("alg").and_then(Value::as_str) {
        Some(alg) if MacAlgorithm::from_name(alg).is_some() => {}
        Some(alg) => out.push(format!("the binding's alg is {alg}, not HS256/HS384/HS512")),
        None => out.push("the binding's protected header has no alg".into()),
    }
    if header
        .get("kid")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        out.push("the binding's protected header has no kid (the EAB key id)".into());
    }
    match header.get("url").and_then(Value::as_str) {
        Some(url) if url == e.url => {}
        Some(url) => out.push(format!(
            "the binding's url is {url}, not the newAccount URL {}",
            e.url
        )),
        None => out.push("the binding's protected header has no url".into()),
    }
    if header.get("nonce").is_some() {
        out.push("the binding's protected header carries a nonce; it must not".into());
    }
    let inner = decode_json(payload).and_then(|v| Jwk::from_json(&v).ok());
    match (inner, header_jwk(e)) {
        (None, _) => out.push("the binding's payload is not a JWK".into()),
        (Some(_), None) => out.push("the outer JWS has no jwk to bind".into()),
        (Some(inner), Some(outer)) if inner != outer => {
            out.push("the binding's payload is not the account key (the outer jwk)".into())
        }
        _ => {}
    }
    out
}

pub(super) fn eab_hmac_only_in_binding(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| is_jws_post(e)) {
        applicable = true;
        if let Some(alg) = header_str(e, "alg")
            && (alg.eq_ignore_ascii_case("none") || alg.to_ascii_uppercase().starts_with("HS"))
        {
            findings.push(Finding::at(
                e.seq,
                format!("the request is signed with alg {alg}; requests need the account key"),
            ));
        }
        if eab_of(e).is_some() && kind(e) != Kind::NewAccount {
            findings.push(Finding::at(
                e.seq,
                format!(
                    "externalAccountBinding sent to {}, which is not newAccount",
                    e.path()
                ),
            ));
        }
    }
    Verdict::from(applicable, findings)
}

/// The public key of a DER CSR, as a JWK.
fn csr_key(der: &[u8]) -> Option<Jwk> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der).ok()?;
    let spki = &csr.certification_request_info.subject_pki;
    let json = match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => serde_json::json!({
            "kty": "RSA",
            "n": acme_proto::b64::encode(strip_zeros(rsa.modulus)),
            "e": acme_proto::b64::encode(strip_zeros(rsa.exponent)),
        }),
        PublicKey::EC(point) => {
            let data = point.data();
            let (crv, len) = match data.len() {
                65 => ("P-256", 32),
                97 => ("P-384", 48),
                133 => ("P-521", 66),
                _ => return None,
            };
            serde_json::json!({
                "kty": "EC", "crv": crv,
                "x": acme_proto::b64::encode(&data[1..1 + len]),
                "y": acme_proto::b64::encode(&data[1 + len..]),
            })
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => serde_json::json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": acme_proto::b64::encode(spki.subject_public_key.data.as_ref()),
        }),
        _ => return None,
    };
    Jwk::from_json(&json).ok()
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

pub(super) fn cert_key_not_account_key(t: &Transcript) -> Verdict {
    let mut keys: Vec<(u64, Jwk)> = t
        .exchanges
        .iter()
        .filter_map(|e| header_jwk(e).map(|k| (e.seq, k)))
        .collect();
    keys.extend(t.account_keys.values().map(|k| (0, k.clone())));
    let mut findings = Vec::new();
    let mut applicable = false;
    for e in t.exchanges.iter().filter(|e| kind(e) == Kind::Finalize) {
        let Some(key) = payload_object(e)
            .and_then(|p| p.get("csr"))
            .and_then(Value::as_str)
            .and_then(|csr| acme_proto::b64::decode(csr).ok())
            .and_then(|der| csr_key(&der))
        else {
            continue;
        };
        applicable = true;
        if let Some((seq, _)) = keys.iter().find(|(_, k)| *k == key) {
            findings.push(Finding {
                seq: e.seq,
                related: if *seq > 0 { vec![*seq] } else { Vec::new() },
                message: format!(
                    "the CSR's public key ({}) is the account key",
                    key.describe()
                ),
            });
        }
    }
    Verdict::from(applicable, findings)
}

pub(super) fn urls_from_server(t: &Transcript) -> Verdict {
    let mut findings = Vec::new();
    let mut applicable = false;
    let mut known_accounts: BTreeSet<&str> = BTreeSet::new();
    for e in &t.exchanges {
        if kind(e) == Kind::NewAccount
            && (200..300).contains(&e.status)
            && let Some(location) = e.response_headers.get("location")
        {
            known_accounts.insert(location);
        }
        if let Some(kid) = header_str(e, "kid")
            && !t.account_urls.is_empty()
        {
            applicable = true;
            if !known_accounts.contains(kid) {
                findings.push(Finding::at(
                    e.seq,
                    format!("kid {kid} is not an account URL the server returned before"),
                ));
            }
        }
        if matches!(e.method.as_str(), "GET" | "POST" | "HEAD") {
            applicable = true;
            if e.status == 404 {
                findings.push(Finding::at(
                    e.seq,
                    format!(
                        "{} {} was answered 404: the server never handed out this URL",
                        e.method,
                        e.path()
                    ),
                ));
            }
        }
    }
    Verdict::from(applicable, findings)
}
