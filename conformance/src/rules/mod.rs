//! The rule catalogue: each rule has a stable id, a one-line statement, the source it
//! enforces, a severity, an explanation, how to fix a client that breaks it, and a check over
//! a [`Transcript`].

use serde::Serialize;

use crate::view::Transcript;

mod flow;
mod request;

/// How much a broken rule matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// An RFC MUST: a conforming server may refuse the client. Fails the grade.
    #[serde(rename = "MUST")]
    Must,
    /// An RFC SHOULD.
    #[serde(rename = "SHOULD")]
    Should,
    /// What Sectigo's service needs in practice, with its evidence.
    #[serde(rename = "Sectigo-needed")]
    SectigoNeeded,
    /// Good manners towards a shared CA; no RFC text requires it.
    #[serde(rename = "hygiene")]
    Hygiene,
}

impl Severity {
    /// The label used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
            Self::SectigoNeeded => "Sectigo-needed",
            Self::Hygiene => "hygiene",
        }
    }
}

/// One offending exchange (or, for a missing request, the exchange after which it was due).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The `seq` of the offending exchange.
    pub seq: u64,
    /// Other exchanges that explain it (the earlier use of a nonce, the Retry-After response).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<u64>,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl Finding {
    pub(crate) fn at(seq: u64, message: impl Into<String>) -> Self {
        Self {
            seq,
            related: Vec::new(),
            message: message.into(),
        }
    }

    pub(crate) fn with(seq: u64, related: u64, message: impl Into<String>) -> Self {
        Self {
            seq,
            related: vec![related],
            message: message.into(),
        }
    }
}

/// The result of one rule over one transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The rule applied and held.
    Pass,
    /// Nothing in the transcript exercises the rule.
    NotApplicable,
    /// The rule was broken; never empty.
    Fail(Vec<Finding>),
}

impl Verdict {
    /// `Pass` when applicable and no findings, `Fail` otherwise.
    pub(crate) fn from(applicable: bool, findings: Vec<Finding>) -> Self {
        if !findings.is_empty() {
            Self::Fail(findings)
        } else if applicable {
            Self::Pass
        } else {
            Self::NotApplicable
        }
    }

    /// `pass`, `fail` or `not-applicable`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::NotApplicable => "not-applicable",
            Self::Fail(_) => "fail",
        }
    }
}

/// A rule of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable id, used in reports, expectations files and docs anchors.
    pub id: &'static str,
    /// One line: what a client must do.
    pub statement: &'static str,
    /// The RFC section or Sectigo evidence it enforces.
    pub source: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// Why, and what the check looks at.
    pub explanation: &'static str,
    /// How to fix a client that breaks it.
    pub fix: &'static str,
    check: fn(&Transcript) -> Verdict,
}

impl Rule {
    /// Grades a transcript.
    pub fn check(&self, transcript: &Transcript) -> Verdict {
        (self.check)(transcript)
    }
}

/// The least interval between two fetches of one resource without Retry-After.
pub const POLL_FLOOR_MS: u64 = 1000;
/// Slack for Retry-After: exchange times are request arrival times in whole milliseconds.
pub const RETRY_AFTER_SLACK_MS: u64 = 50;
/// How many identical refusals make a loop.
pub const LOOP_COUNT: usize = 3;

/// Every rule, in report order.
pub fn catalogue() -> &'static [Rule] {
    CATALOGUE
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.id == id)
}

static CATALOGUE: &[Rule] = &[
    Rule {
        id: "nonce-not-reused",
        statement: "Every nonce is sent at most once.",
        source: "RFC 8555 §6.5",
        severity: Severity::Must,
        explanation: "A nonce protects a request against replay; the server accepts each one once. \
            A client that sends a nonce twice gets badNonce at best and shows that it caches or \
            shares nonces wrongly (for example between threads). The check compares the `nonce` \
            of every JWS protected header with all earlier ones that the server spent. An HTML \
            error page without `Replay-Nonce` (429, 502, 503, 504 from a proxy in front of the \
            CA) means the request never reached the CA: its nonce was not spent, and sending \
            the same request again is allowed. After a problem document the nonce is spent.",
        fix: "Take each nonce from the newest `Replay-Nonce` response header (or a HEAD to \
            newNonce) and drop it from the pool as soon as a request uses it.",
        check: request::nonce_not_reused,
    },
    Rule {
        id: "nonce-from-server",
        statement: "Every nonce sent was handed out by the server earlier.",
        source: "RFC 8555 §6.5, §7.2",
        severity: Severity::Must,
        explanation: "Nonces come only from `Replay-Nonce` headers. A nonce the server never sent \
            is invented or belongs to another server. Applies only to transcripts that contain \
            the client's newNonce requests (HEAD, or GET answered 204), since otherwise the \
            first nonce's origin is not recorded.",
        fix: "Fetch a nonce from the directory's newNonce URL and afterwards use the \
            `Replay-Nonce` of each response; never generate or hard-code nonces.",
        check: request::nonce_from_server,
    },
    Rule {
        id: "bad-nonce-retried",
        statement: "After a badNonce error the client retries the same request with a fresh nonce.",
        source: "RFC 8555 §6.5 (SHOULD retry)",
        severity: Severity::Should,
        explanation: "Servers reject nonces for ordinary reasons (they expire, the server \
            restarts; Sectigo after idle periods, esnet/acme-proxy #11), and the badNonce \
            response carries a fresh `Replay-Nonce` for the retry. The check looks at the next \
            POST after a badNonce: it must go to the same URL with a different nonce.",
        fix: "On `urn:ietf:params:acme:error:badNonce`, re-sign the same payload with the \
            response's `Replay-Nonce` and send it again (a few times at most).",
        check: request::bad_nonce_retried,
    },
    Rule {
        id: "jws-url-matches",
        statement: "The JWS protected header `url` equals the URL the request is sent to.",
        source: "RFC 8555 §6.4",
        severity: Severity::Must,
        explanation: "The signed `url` binds the request to its target so that it cannot be \
            replayed elsewhere; servers refuse a mismatch with unauthorized.",
        fix: "Put exactly the request URL (as taken from the directory or a Location header) \
            into the protected header's `url`.",
        check: request::jws_url_matches,
    },
    Rule {
        id: "jws-key-reference",
        statement: "newAccount and certificate-key revokeCert carry `jwk`; every other request carries `kid`; never both.",
        source: "RFC 8555 §6.2",
        severity: Severity::Must,
        explanation: "A request is signed either by a new key it presents (`jwk`, only for \
            newAccount and revokeCert with the certificate key) or by an existing account named \
            by its URL (`kid`). The fields are mutually exclusive.",
        fix: "Sign newAccount with `jwk`; after it, sign everything with `kid` set to the \
            account URL from the newAccount response's Location header.",
        check: request::jws_key_reference,
    },
    Rule {
        id: "post-as-get",
        statement: "Resources are fetched with POST-as-GET; plain GET only for the directory and newNonce.",
        source: "RFC 8555 §6.3; Sectigo: docs/evidence.md §4 (405 on GET)",
        severity: Severity::Must,
        explanation: "Account, order, authorization, challenge and certificate resources are \
            fetched with a signed POST whose payload is empty. Sectigo refuses plain GET on \
            them. Plain GET is allowed for the directory and newNonce (and the unauthenticated \
            renewalInfo of RFC 9773).",
        fix: "Fetch resources by POSTing a JWS with an empty payload (\"\") signed with the \
            account's `kid`.",
        check: request::post_as_get,
    },
    Rule {
        id: "content-type-jose",
        statement: "Every POST has Content-Type: application/jose+json.",
        source: "RFC 8555 §6.2",
        severity: Severity::Must,
        explanation: "Servers reject JWS bodies with another media type (malformed, or 415).",
        fix: "Send `Content-Type: application/jose+json` on every POST.",
        check: request::content_type_jose,
    },
    Rule {
        id: "user-agent-sent",
        statement: "Every request carries a User-Agent header.",
        source: "RFC 8555 §6.1",
        severity: Severity::Must,
        explanation: "The User-Agent lets a CA's operators tell clients apart when one misbehaves.",
        fix: "Send a `User-Agent` naming the client and its version on every request.",
        check: request::user_agent_sent,
    },
    Rule {
        id: "eab-sent",
        statement: "newAccount carries an external account binding when the server requires one.",
        source: "RFC 8555 §7.3.4; Sectigo: docs/evidence.md §2 (externalAccountRequired)",
        severity: Severity::SectigoNeeded,
        explanation: "Sectigo requires EAB on every new account and answers \
            externalAccountRequired without it. Fails when a newAccount without a binding was \
            answered externalAccountRequired; passes when newAccount carried a binding.",
        fix: "Read `meta.externalAccountRequired` from the directory and send the \
            `externalAccountBinding` built from the EAB key id and HMAC key.",
        check: request::eab_sent,
    },
    Rule {
        id: "eab-binding-correct",
        statement: "The EAB inner JWS is HS256/384/512 with `kid` and `url` = newAccount, no nonce, over the account key.",
        source: "RFC 8555 §7.3.4",
        severity: Severity::Must,
        explanation: "The binding is a JWS MAC'd with the EAB HMAC key whose protected header \
            has an HMAC `alg`, the EAB key id as `kid`, the newAccount URL as `url` and no \
            `nonce`, and whose payload is the account key (the outer `jwk`), compared by \
            value. Any deviation is refused by Sectigo with a \"[External Account Binding]\" \
            malformed error.",
        fix: "Build the inner JWS as {\"alg\":\"HS256\",\"kid\":KID,\"url\":NEW_ACCOUNT_URL} over \
            the outer JWK, MAC it with the base64url-decoded HMAC key, and put it in \
            `externalAccountBinding`.",
        check: request::eab_binding_correct,
    },
    Rule {
        id: "eab-hmac-only-in-binding",
        statement: "The EAB HMAC is used only inside newAccount's binding; requests are never MAC-signed.",
        source: "RFC 8555 §6.2, §7.3.4",
        severity: Severity::Must,
        explanation: "The outer JWS `alg` must be an asymmetric algorithm (never `none` or an \
            HMAC). The binding belongs only in newAccount: sending it elsewhere spreads a \
            credential that covers every domain of a department (Sectigo: one EAB credential per \
            department).",
        fix: "Sign requests with the account key only, and attach `externalAccountBinding` to \
            newAccount only.",
        check: request::eab_hmac_only_in_binding,
    },
    Rule {
        id: "cert-key-not-account-key",
        statement: "The CSR's public key differs from every account key.",
        source: "RFC 8555 §11.1",
        severity: Severity::Must,
        explanation: "Reusing the account key as the certificate key lets whoever holds the TLS \
            key control the ACME account. The check parses each finalize CSR and compares its \
            public key with the account keys in the transcript's JWS headers.",
        fix: "Generate a separate key pair for the certificate (or take the one the user gave) \
            and never the account key.",
        check: request::cert_key_not_account_key,
    },
    Rule {
        id: "urls-from-server",
        statement: "URLs come from the directory and the server's Location headers, never built by the client.",
        source: "RFC 8555 §7.1, §7.3; Sectigo: docs/evidence.md §1 (its own path layout)",
        severity: Severity::Should,
        explanation: "Sectigo's paths differ from Let's Encrypt's (and the mock can vary them). \
            Without response bodies in the record, the check looks at what is observable: \
            `kid` must be an account URL the server returned in a newAccount Location header \
            (when that response is in the transcript), and no request may go to a URL the \
            server answered 404.",
        fix: "Use the directory's URLs, the Location header of newAccount/newOrder, and the \
            `authorizations`, `finalize`, `certificate` and challenge `url` members of \
            responses; never assemble paths.",
        check: request::urls_from_server,
    },
    Rule {
        id: "retry-after-honoured",
        statement: "No request to a resource before its Retry-After has passed.",
        source: "RFC 8555 §7.4, §8.2, §6.6; RFC 9110 §10.2.3; Sectigo: docs/evidence.md §5 (finalize Retry-After 15)",
        severity: Severity::SectigoNeeded,
        explanation: "Sectigo answers finalize with `processing` and `Retry-After: 15`, and \
            rate limits with long Retry-After values. The check takes each response with \
            Retry-After and the next request to the same URL or to its Location (the order \
            after finalize), and fails when it came earlier.",
        fix: "Read Retry-After (seconds or an HTTP date) on every response and wait at least \
            that long before the next request to that resource.",
        check: flow::retry_after_honoured,
    },
    Rule {
        id: "poll-interval-floor",
        statement: "Without Retry-After, one resource is polled at most once per second.",
        source: "RFC 8555 §7.5.1 (polling), hygiene",
        severity: Severity::Hygiene,
        explanation: "Polling an order or authorization many times a second adds load for no \
            gain: Sectigo takes 15-60 s to issue. The check measures the interval between two \
            POST-as-GETs of the same URL when the first response carried no Retry-After.",
        fix: "Poll no faster than once a second, ideally with exponential back-off.",
        check: flow::poll_interval_floor,
    },
    Rule {
        id: "prevalidated-authz-handled",
        statement: "Already-valid authorizations (with unknown challenge types) are accepted and the order proceeds.",
        source: "Sectigo: docs/evidence.md §3 (valid authz, sectigo-email-01 challenge)",
        severity: Severity::SectigoNeeded,
        explanation: "Delegated domains come back as `valid` authorizations whose only challenge \
            is `sectigo-email-01`. A client must not insist on a challenge type it knows. The \
            check fails when a client fetched the authorizations of an order, all of them \
            `valid`, and then stopped, without answering a challenge or finalizing (where one \
            still asks for a challenge the client cannot answer, stopping is right).",
        fix: "Skip authorizations whose status is `valid`, ignore unknown challenge types, and \
            finalize once the order is `ready`.",
        check: flow::prevalidated_authz_handled,
    },
    Rule {
        id: "processing-waited-out",
        statement: "After finalize, a `processing` order is polled until done and the certificate downloaded; finalize is not re-sent.",
        source: "RFC 8555 §7.4; Sectigo: docs/evidence.md §5 (processing 15-60 s)",
        severity: Severity::SectigoNeeded,
        explanation: "Sectigo keeps orders in `processing` for 15-60 s after finalize. Fails \
            when the client sent finalize again for an order it already finalized, or stopped \
            while the last answer about the order still asked it to wait (Retry-After, under an \
            hour) without downloading a certificate. A Retry-After of an hour or more allows a \
            clean exit to resume later.",
        fix: "After finalize, POST-as-GET the order URL, honouring Retry-After, until its status \
            is `valid` (then download `certificate`) or `invalid`.",
        check: flow::processing_waited_out,
    },
    Rule {
        id: "refused-order-not-looped",
        statement: "A newOrder the server refused is not re-sent for the same names again and again.",
        source: "Sectigo: docs/evidence.md §3 (not delegated), §8 (rate limits)",
        severity: Severity::SectigoNeeded,
        explanation: "A refusal such as \"A requested identifier has not been delegated\" does not \
            go away by retrying; a loop burns rate limits shared by the whole department. Fails \
            when the same identifier set is refused three times (badNonce excepted).",
        fix: "Stop and report the problem document's detail on a 4xx from newOrder; retry \
            only after badNonce, and after 429/503 only once Retry-After has passed.",
        check: flow::refused_order_not_looped,
    },
    Rule {
        id: "no-4xx-hammering",
        statement: "A request answered 4xx is not repeated unchanged again and again.",
        source: "hygiene",
        severity: Severity::Hygiene,
        explanation: "Sending the identical request (same method, URL and payload) after it was \
            refused will be refused again. Fails when the same request gets a 4xx three times \
            (badNonce excepted; newOrder is covered by refused-order-not-looped).",
        fix: "Treat 4xx problem documents as final unless the type says otherwise (badNonce, \
            rateLimited with Retry-After); change the request or give up.",
        check: flow::no_4xx_hammering,
    },
];
