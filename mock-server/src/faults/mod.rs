//! Seeded, replayable fault plans: which endpoint fails how, by probability or by schedule.
//!
//! Decisions are a pure function of (seed, scope, endpoint, the request's ordinal for that
//! endpoint in that scope, rule index), hashed with SHA-256. The same seed and the same requests
//! therefore give the same faults, whatever the interleaving with other scopes: a scope is one
//! EAB credential, so parallel tests with their own credentials do not disturb each other.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The endpoints a rule can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // each is the ACME endpoint of the same name
pub enum Endpoint {
    Directory,
    NewNonce,
    NewAccount,
    NewOrder,
    RevokeCert,
    KeyChange,
    Account,
    Order,
    Finalize,
    Authz,
    Challenge,
    Certificate,
    /// Every endpoint.
    Any,
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// 400 badNonce "The Replay Nonce is not recognized".
    BadNonce,
    /// 429 with an nginx HTML page and Retry-After (§8 \[Z\]).
    RateLimited,
    /// 502 with an nginx HTML page (§8 \[Z\]).
    BadGateway,
    /// 503 with an nginx HTML page and Retry-After.
    ServiceUnavailable,
    /// 504 with an nginx HTML page (§8 \[Z\], acme.sh #3850).
    GatewayTimeout,
    /// 500 serverInternal "The server experienced an internal error" (§5, lego #1183).
    ServerInternal,
    /// The response is delayed by `delay_ms`, then served normally.
    Slow,
    /// The connection is closed without a response.
    Drop,
    /// On finalize: the order stays `processing` for `seconds` with `retry_after`. On a
    /// challenge: validation takes `seconds`, the challenge `processing` meanwhile (§5).
    Processing,
    /// On a challenge: it becomes invalid with `"error": {}` (§8 \[Z\], acme.sh #4768 #4991).
    InvalidChallenge,
}

/// One rule. Fires on the `nth` requests (1-based) to `endpoint` in a scope, or else with
/// `probability`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// What goes wrong.
    pub fault: FaultKind,
    /// Chance per request, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Ordinals of the requests it fires on ("the 2nd finalize" is `nth = [2]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nth: Vec<u64>,
    /// Retry-After seconds for rateLimited, serviceUnavailable and processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Delay for `slow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Duration for `processing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

/// A fault plan (TOML or JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Seed for this plan's probabilities; the server's seed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<FaultRule>,
}

/// Why a plan was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultPlanError {
    /// Not valid TOML/JSON, or an unknown field.
    #[error("invalid fault plan {origin}: {message}")]
    Invalid {
        /// File or source.
        origin: String,
        /// What is wrong (names the field).
        message: String,
    },
}

impl FaultPlan {
    /// Parses TOML (`[[rule]]` tables) or, when the text starts with `{`, JSON.
    pub fn parse(text: &str, origin: &str) -> Result<Self, FaultPlanError> {
        let invalid = |message: String| FaultPlanError::Invalid {
            origin: origin.into(),
            message,
        };
        let plan: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        plan.check().map_err(invalid)?;
        Ok(plan)
    }

    /// Reads and parses the plan file at `path` (`serve --faults`, `admin faults set`).
    pub fn from_file(path: &std::path::Path) -> Result<Self, FaultPlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| FaultPlanError::Invalid {
            origin: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The plan as TOML (`[[rule]]` tables), the format [`FaultPlan::parse`] and `--faults`
    /// read.
    pub fn to_toml(&self) -> String {
        #[allow(clippy::expect_used)] // numbers, enums and strings always serialise
        toml::to_string(self).expect("a fault plan serialises to TOML")
    }

    /// Checks each rule has a trigger and sane values.
    pub fn check(&self) -> Result<(), String> {
        for (i, r) in self.rules.iter().enumerate() {
            let n = i + 1;
            match r.probability {
                Some(p) if !(0.0..=1.0).contains(&p) => {
                    return Err(format!("rule {n}: probability {p} is not between 0 and 1"));
                }
                None if r.nth.is_empty() => {
                    return Err(format!("rule {n}: give `probability` or `nth`"));
                }
                _ => {}
            }
            if r.nth.contains(&0) {
                return Err(format!("rule {n}: `nth` counts from 1"));
            }
            if r.fault == FaultKind::Slow && r.delay_ms.is_none() {
                return Err(format!("rule {n}: `slow` needs `delay_ms`"));
            }
            if r.fault == FaultKind::Processing && r.seconds.is_none() {
                return Err(format!("rule {n}: `processing` needs `seconds`"));
            }
        }
        Ok(())
    }
}

/// A fault that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// EAB key id, or `-` for requests outside any credential.
    pub scope: String,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The request's ordinal for that endpoint in that scope.
    pub ordinal: u64,
    /// What was injected.
    pub fault: FaultKind,
}

/// Counts requests per scope and endpoint and decides which rule fires.
#[derive(Debug)]
pub struct FaultEngine {
    seed: AtomicU64,
    counters: DashMap<(String, Endpoint), u64>,
    log: Mutex<Vec<FaultEvent>>,
}

const LOG_CAP: usize = 10_000;

impl FaultEngine {
    /// An engine whose probabilities derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed: AtomicU64::new(seed),
            counters: DashMap::new(),
            log: Mutex::new(Vec::new()),
        }
    }

    /// The server's seed.
    pub fn seed(&self) -> u64 {
        self.seed.load(Ordering::Relaxed)
    }

    /// Counts this request and returns the first rule of `plans` that fires for it.
    pub fn decide<'a>(
        &self,
        plans: impl IntoIterator<Item = &'a FaultPlan>,
        scope: Option<&str>,
        endpoint: Endpoint,
    ) -> Option<FaultRule> {
        let scope = scope.unwrap_or("-");
        let mut plans = plans.into_iter().filter(|p| !p.rules.is_empty()).peekable();
        plans.peek()?;
        let ordinal = {
            let mut n = self
                .counters
                .entry((scope.to_owned(), endpoint))
                .or_insert(0);
            *n += 1;
            *n
        };
        for plan in plans {
            let seed = plan.seed.unwrap_or_else(|| self.seed());
            for (index, rule) in plan.rules.iter().enumerate() {
                if rule.endpoint != endpoint && rule.endpoint != Endpoint::Any {
                    continue;
                }
                // A nonce can only be refused where one is sent: not on the GET endpoints.
                let unsigned = matches!(endpoint, Endpoint::Directory | Endpoint::NewNonce);
                if unsigned && rule.fault == FaultKind::BadNonce {
                    continue;
                }
                let fires = rule.nth.contains(&ordinal)
                    || rule
                        .probability
                        .is_some_and(|p| draw(seed, scope, endpoint, ordinal, index) < p);
                if fires {
                    self.record(FaultEvent {
                        scope: scope.to_owned(),
                        endpoint,
                        ordinal,
                        fault: rule.fault,
                    });
                    return Some(rule.clone());
                }
            }
        }
        None
    }

    fn record(&self, event: FaultEvent) {
        tracing::info!(scope = %event.scope, endpoint = ?event.endpoint, ordinal = event.ordinal, fault = ?event.fault, "fault injected");
        if let Ok(mut log) = self.log.lock()
            && log.len() < LOG_CAP
        {
            log.push(event);
        }
    }

    /// Every fault injected so far (the first 10,000).
    pub fn events(&self) -> Vec<FaultEvent> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A uniform draw in [0, 1) from the request's coordinates.
fn draw(seed: u64, scope: &str, endpoint: Endpoint, ordinal: u64, rule: usize) -> f64 {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(format!("{endpoint:?}").as_bytes());
    h.update(ordinal.to_be_bytes());
    h.update((rule as u64).to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The nginx-style HTML page Sectigo's front end sends with 429 and 5xx (§8 \[Z\]).
pub fn nginx_page(status: u16, reason: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> FaultPlan {
        FaultPlan::parse(text, "test").unwrap()
    }

    #[test]
    fn schedule_fires_on_the_nth_request() {
        let p = plan("[[rule]]\nendpoint = \"finalize\"\nfault = \"serverInternal\"\nnth = [2]\n");
        let e = FaultEngine::new(1);
        let fired: Vec<bool> = (0..4)
            .map(|_| e.decide([&p], Some("k"), Endpoint::Finalize).is_some())
            .collect();
        assert_eq!(fired, [false, true, false, false]);
        // Another scope counts on its own.
        assert!(e.decide([&p], Some("other"), Endpoint::Finalize).is_none());
        assert!(e.decide([&p], Some("other"), Endpoint::Finalize).is_some());
        // Other endpoints are untouched.
        assert!(e.decide([&p], Some("k"), Endpoint::NewOrder).is_none());
    }

    #[test]
    fn same_seed_same_faults() {
        let p = plan("[[rule]]\nendpoint = \"any\"\nfault = \"badNonce\"\nprobability = 0.3\n");
        let run = |seed| {
            let e = FaultEngine::new(seed);
            (0..200)
                .map(|i| {
                    let ep = if i % 2 == 0 {
                        Endpoint::NewOrder
                    } else {
                        Endpoint::Order
                    };
                    e.decide([&p], Some("k"), ep).is_some()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|b| **b).count();
        assert!((30..90).contains(&hits), "about 30% of 200, got {hits}");
    }

    #[test]
    fn plans_are_checked() {
        for (text, needle) in [
            (
                "[[rule]]\nendpoint = \"finalize\"\nfault = \"serverInternal\"\n",
                "nth",
            ),
            (
                "[[rule]]\nendpoint = \"finalize\"\nfault = \"slow\"\nnth = [1]\n",
                "delay_ms",
            ),
            (
                "[[rule]]\nendpoint = \"finalise\"\nfault = \"slow\"\nnth = [1]\n",
                "finalise",
            ),
            (
                "[[rule]]\nendpoint = \"order\"\nfault = \"badNonce\"\nprobabilty = 0.5\n",
                "probabilty",
            ),
            (
                "[[rule]]\nendpoint = \"order\"\nfault = \"badNonce\"\nprobability = 1.5\n",
                "between",
            ),
        ] {
            let err = FaultPlan::parse(text, "t").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let json = r#"{"seed": 3, "rule": [{"endpoint": "newOrder", "fault": "serviceUnavailable", "nth": [1], "retry_after": 5}]}"#;
        assert_eq!(plan(json).rules[0].retry_after, Some(5));
    }

    #[test]
    fn a_plan_file_that_cannot_be_read_is_named() {
        let err = FaultPlan::from_file(std::path::Path::new("/nonexistent/plan.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/plan.toml") && err.contains("cannot read"),
            "{err}"
        );
    }
}
