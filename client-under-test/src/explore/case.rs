//! What one explored case is (a base scenario and a fault plan), the proptest strategy that
//! generates cases, and how a case becomes a scenario, a plan file and a one-line signature.

use std::fmt::Write as _;
use std::sync::Arc;

use mock_server::faults::{Endpoint, FaultKind, FaultPlan, FaultRule};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde::{Deserialize, Serialize};

use crate::scenario::{Expect, Scenario};

/// The built-in scenarios a case can start from, simplest first (shrinking moves towards the
/// first): both InCommon profiles with both key types, Retry-After as an HTTP-date, renewal
/// (for adapters with renew commands), a name that must be validated over http-01 (the one
/// base where a client posts a challenge), a wildcard, and an alternate chain (for adapters
/// that can ask for one). The scenario's own faults are replaced by the case's plan.
pub const BASES: &[&str] = &[
    "happy-rsa-ov-rsa",
    "happy-rsa-ov-ecdsa",
    "happy-ecc-ov-rsa",
    "happy-ecc-ov-ecdsa",
    "retry-after-http-date",
    "renewal",
    "dcv-http-01",
    "wildcard",
    "preferred-chain",
];

/// The bases whose names are not pre-validated: the client answers a challenge, so rules on
/// the challenge endpoint, `invalidChallenge` among them, can fire there (and only there).
pub const CHALLENGE_BASES: &[&str] = &["dcv-http-01"];

/// The fault kinds generated on every base, simplest first; on a [`CHALLENGE_BASES`] base
/// `invalidChallenge` comes last.
pub const KINDS: &[FaultKind] = &[
    FaultKind::BadNonce,
    FaultKind::RateLimited,
    FaultKind::ServiceUnavailable,
    FaultKind::BadGateway,
    FaultKind::GatewayTimeout,
    FaultKind::ServerInternal,
    FaultKind::Slow,
    FaultKind::Drop,
    FaultKind::Processing,
];

/// The endpoints a rule targets, in the order a client meets them. Only endpoints whose
/// requests the mock ties to the canary credential: a rule on the directory or newNonce
/// would fire under `serve --faults` but never on a credential's plan, and the minimal plan
/// must replay the same way in both.
/// On a [`CHALLENGE_BASES`] base the challenge endpoint is added last.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint::NewAccount,
    Endpoint::NewOrder,
    Endpoint::Authz,
    Endpoint::Finalize,
    Endpoint::Order,
    Endpoint::Certificate,
];

/// Seconds a case's client gets with no faults (a renewal base gets twice as much); each
/// fault's own waiting (Retry-After, processing, delays) is added twice on top.
pub const DEFAULT_BASE_LIMIT: u64 = 45;

/// One explored case: a base scenario and the fault rules on the canary credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The id of the built-in scenario it starts from ([`BASES`]).
    pub base: String,
    /// The fault plan's rules, first match wins.
    pub rules: Vec<FaultRule>,
}

/// A rule as generated, before the fields a kind does not use are dropped.
#[derive(Clone, Debug)]
struct RawRule {
    kind: usize,
    endpoint: usize,
    first: u64,
    run: u64,
    retry_after: u64,
    seconds: u64,
    delay_ms: u64,
}

impl RawRule {
    /// The rule on a base where the client posts a challenge (`challenges`) or not.
    fn rule(&self, challenges: bool) -> FaultRule {
        let kinds = KINDS.len() + usize::from(challenges);
        let fault = KINDS
            .get(self.kind % kinds)
            .copied()
            .unwrap_or(FaultKind::InvalidChallenge);
        let endpoints = ENDPOINTS.len() + usize::from(challenges);
        let endpoint = match fault {
            // Processing is what an order does after finalize.
            FaultKind::Processing => Endpoint::Finalize,
            FaultKind::InvalidChallenge => Endpoint::Challenge,
            _ => ENDPOINTS
                .get(self.endpoint % endpoints)
                .copied()
                .unwrap_or(Endpoint::Challenge),
        };
        // A client posts each challenge once: an invalid challenge fires on the first post.
        let (first, run) = match fault {
            FaultKind::InvalidChallenge => (1, 1),
            _ => (self.first, self.run),
        };
        let with_retry_after = matches!(
            fault,
            FaultKind::RateLimited
                | FaultKind::ServiceUnavailable
                | FaultKind::BadGateway
                | FaultKind::GatewayTimeout
                | FaultKind::Processing
        );
        FaultRule {
            endpoint,
            fault,
            probability: None,
            nth: (first..first + run).collect(),
            retry_after: with_retry_after.then_some(self.retry_after),
            delay_ms: (fault == FaultKind::Slow).then_some(self.delay_ms),
            seconds: (fault == FaultKind::Processing).then_some(self.seconds),
        }
    }
}

/// The order of the fields is the order they shrink in: where the rule fires first (earlier
/// ordinals, fewer of them, earlier endpoints), then its waits, the kind last, so that a
/// kind is tried on the simplest request a client makes.
fn raw_rule() -> impl Strategy<Value = RawRule> {
    (
        1u64..=3,
        1u64..=3,
        0..=ENDPOINTS.len(),
        1u64..=4,
        2u64..=8,
        500u64..=4000,
        0..=KINDS.len(),
    )
        .prop_map(
            |(first, run, endpoint, retry_after, seconds, delay_ms, kind)| RawRule {
                kind,
                endpoint,
                first,
                run,
                retry_after,
                seconds,
                delay_ms,
            },
        )
}

/// The strategy over cases from `bases` (ids of built-in scenarios, simplest first): one to
/// three rules, each a kind of [`KINDS`] on an endpoint of [`ENDPOINTS`] (processing: on
/// finalize) firing on a run of one to three consecutive requests starting at the first,
/// second or third, with Retry-After 1-4 s, processing 2-8 s and delays 0.5-4 s; on a
/// [`CHALLENGE_BASES`] base also the challenge endpoint and `invalidChallenge` (on the first
/// challenge post). Its value trees shrink towards fewer rules, the first base, earlier kinds
/// and endpoints, earlier and fewer ordinals and shorter waits.
pub fn strategy(bases: Vec<String>) -> BoxedStrategy<Case> {
    let bases = Arc::new(bases);
    let n = bases.len().max(1);
    (0..n, vec(raw_rule(), 1..=3))
        .prop_map(move |(b, rules)| {
            let base = bases.get(b).cloned().unwrap_or_default();
            let challenges = CHALLENGE_BASES.contains(&base.as_str());
            Case {
                rules: rules.iter().map(|r| r.rule(challenges)).collect(),
                base,
            }
        })
        .boxed()
}

/// Whether every fault of `rules` passes if the client tries again: badNonce, the HTML pages
/// of a proxy (429, 502, 503, 504), a slow or dropped response and a processing order. A
/// serverInternal is not (the CA failed the request; giving up is correct), nor is an invalid
/// challenge.
pub fn all_transient(rules: &[FaultRule]) -> bool {
    rules.iter().all(|r| {
        !matches!(
            r.fault,
            FaultKind::ServerInternal | FaultKind::InvalidChallenge
        )
    })
}

/// The seconds `rules` make a client wait at most when every rule fires on every ordinal:
/// Retry-After, processing time and delays.
pub fn waiting(rules: &[FaultRule]) -> u64 {
    rules
        .iter()
        .map(|r| {
            let fires = if r.nth.is_empty() {
                1
            } else {
                r.nth.len() as u64
            };
            fires
                * (r.retry_after.unwrap_or(0)
                    + r.seconds.unwrap_or(0)
                    + r.delay_ms.unwrap_or(0).div_ceil(1000))
        })
        .sum()
}

/// The time limit of a client run with `rules` on `base` (`base_limit` seconds without
/// faults; renewal twice that): room for every wait twice over, so a client that gives up
/// on such a plan did not run out of time.
pub fn time_limit(base: &Scenario, rules: &[FaultRule], base_limit: u64) -> u64 {
    let base_limit = if base.renew {
        base_limit * 2
    } else {
        base_limit
    };
    base_limit + 2 * waiting(rules)
}

impl Case {
    /// The base scenario with the case's plan on the canary credential, a time limit from
    /// [`time_limit`], and an outcome check that accepts a certificate or a clean refusal
    /// (the properties decide what a refusal means).
    pub fn scenario(&self, base_limit: u64) -> Result<Scenario, crate::Error> {
        let base = Scenario::select(std::slice::from_ref(&self.base))?.remove(0);
        let time_limit = time_limit(&base, &self.rules, base_limit);
        Ok(Scenario {
            faults: self.rules.clone(),
            expect: Expect::IssueOrRefuse,
            time_limit,
            ..base
        })
    }

    /// The plan as `vet --faults` and `serve --faults` read it.
    pub fn plan(&self, seed: u64) -> FaultPlan {
        FaultPlan {
            seed: Some(seed),
            rules: self.rules.clone(),
        }
    }

    /// One line: `BASE: endpoint fault@nth (params); ...`, or `BASE: no faults`. Stable: the
    /// expectations file compares it.
    pub fn signature(&self) -> String {
        let mut out = format!("{}:", self.base);
        if self.rules.is_empty() {
            out.push_str(" no faults");
        }
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push(' ');
            out.push_str(&rule_text(r));
        }
        out
    }

    /// Whether `other` holds `self` (a minimal case): each of its rules has a rule of
    /// `other` with the same fault firing at least as many times. Endpoints and ordinals are
    /// not compared: a client that hangs on a dropped connection or crashes on two badNonces
    /// in a row does so wherever they come, and each shrink costs client runs. The empty
    /// plan is inside every case.
    pub fn inside(&self, other: &Case) -> bool {
        self.rules.iter().all(|m| {
            other
                .rules
                .iter()
                .any(|r| r.fault == m.fault && r.nth.len() >= m.nth.len())
        })
    }
}

fn camel<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `newOrder badNonce@1,2`, `finalize processing@1 (6 s, Retry-After 2)`.
pub fn rule_text(r: &FaultRule) -> String {
    let nth: Vec<String> = r.nth.iter().map(u64::to_string).collect();
    let mut out = format!(
        "{} {}@{}",
        camel(&r.endpoint),
        camel(&r.fault),
        nth.join(",")
    );
    if let Some(p) = r.probability {
        let _ = write!(out, " p={p}");
    }
    let mut params = Vec::new();
    if let Some(s) = r.seconds {
        params.push(format!("{s} s"));
    }
    if let Some(ms) = r.delay_ms {
        params.push(format!("{ms} ms"));
    }
    if let Some(ra) = r.retry_after {
        params.push(format!("Retry-After {ra}"));
    }
    if !params.is_empty() {
        let _ = write!(out, " ({})", params.join(", "));
    }
    out
}

/// Turns `scenarios` into the ones `vet --faults PLAN` runs: each with the plan's rules
/// instead of its own faults, a time limit with room for the plan's waits, and, where a
/// scenario expects a certificate but the plan has a fault a client may give up on
/// (serverInternal), a certificate or a clean refusal accepted.
pub fn with_plan(scenarios: Vec<Scenario>, plan: &FaultPlan) -> Vec<Scenario> {
    let transient = all_transient(&plan.rules);
    scenarios
        .into_iter()
        .map(|s| {
            let limit = time_limit(&s, &plan.rules, DEFAULT_BASE_LIMIT).max(s.time_limit);
            let expect = match s.expect {
                Expect::Issue if !transient => Expect::IssueOrRefuse,
                e => e,
            };
            Scenario {
                faults: plan.rules.clone(),
                time_limit: limit,
                expect,
                ..s
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::{Config, TestRng, TestRunner};

    use super::*;

    fn runner(seed: u8) -> TestRunner {
        TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]),
        )
    }

    fn bases() -> Vec<String> {
        BASES.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn generated_plans_are_valid_and_replayable() {
        let s = strategy(bases());
        let mut r = runner(1);
        let mut kinds = std::collections::BTreeSet::new();
        let mut bases_seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let case = s.new_tree(&mut r).unwrap().current();
            let plan = case.plan(7);
            plan.check().unwrap();
            // The file `vet --faults` reads gives back the same plan.
            let back = FaultPlan::parse(&plan.to_toml(), "t").unwrap();
            assert_eq!(back, plan);
            assert!(BASES.contains(&case.base.as_str()));
            assert!((1..=3).contains(&case.rules.len()));
            let challenges = CHALLENGE_BASES.contains(&case.base.as_str());
            for rule in &case.rules {
                assert!(rule.endpoint != Endpoint::Directory && rule.endpoint != Endpoint::Any);
                if rule.fault == FaultKind::Processing {
                    assert_eq!(rule.endpoint, Endpoint::Finalize);
                    assert!(rule.seconds.is_some() && rule.retry_after.is_some());
                }
                // Challenge faults only where a client posts a challenge.
                if rule.endpoint == Endpoint::Challenge || rule.fault == FaultKind::InvalidChallenge
                {
                    assert!(challenges, "{}", case.signature());
                }
                if rule.fault == FaultKind::InvalidChallenge {
                    assert_eq!(rule.endpoint, Endpoint::Challenge);
                    assert_eq!(rule.nth, [1]);
                }
                kinds.insert(rule_text(rule).split(['@', ' ']).nth(1).unwrap().to_owned());
                bases_seen.insert(case.base.clone());
            }
            let scenario = case.scenario(DEFAULT_BASE_LIMIT).unwrap();
            assert_eq!(scenario.faults, case.rules);
            assert!(scenario.time_limit >= DEFAULT_BASE_LIMIT + 2 * waiting(&case.rules));
        }
        // Every kind (invalidChallenge included) and every base comes up.
        assert_eq!(kinds.len(), KINDS.len() + 1, "{kinds:?}");
        assert!(kinds.contains("invalidChallenge"), "{kinds:?}");
        assert_eq!(bases_seen.len(), BASES.len(), "{bases_seen:?}");
    }

    #[test]
    fn same_seed_same_cases() {
        let s = strategy(bases());
        let generate = |seed| {
            let mut r = runner(seed);
            (0..20)
                .map(|_| s.new_tree(&mut r).unwrap().current())
                .collect::<Vec<_>>()
        };
        assert_eq!(generate(3), generate(3));
        assert_ne!(generate(3), generate(4));
    }

    #[test]
    fn shrinking_reaches_the_simplest_case() {
        // A property that fails on every case shrinks to the first base with one rule: the
        // first kind on the first endpoint, on the first request.
        let s = strategy(bases());
        let mut r = runner(9);
        let mut tree = s.new_tree(&mut r).unwrap();
        while tree.simplify() {}
        let case = tree.current();
        assert_eq!(case.signature(), "happy-rsa-ov-rsa: newAccount badNonce@1");
    }

    #[test]
    fn inside_and_signature() {
        let rule = crate::scenario::rule;
        let minimal = Case {
            base: "happy-rsa-ov-rsa".into(),
            rules: vec![rule(Endpoint::NewOrder, FaultKind::BadNonce, &[1, 2])],
        };
        let bigger = Case {
            base: "renewal".into(),
            rules: vec![
                rule(Endpoint::Finalize, FaultKind::Drop, &[1]),
                rule(Endpoint::NewOrder, FaultKind::BadNonce, &[1, 2, 3]),
            ],
        };
        assert!(minimal.inside(&bigger));
        assert!(!bigger.inside(&minimal));
        // Two badNonces anywhere hold it; one does not.
        let elsewhere = Case {
            base: "happy-rsa-ov-rsa".into(),
            rules: vec![rule(Endpoint::Order, FaultKind::BadNonce, &[2, 3])],
        };
        assert!(minimal.inside(&elsewhere));
        let once = Case {
            base: "happy-rsa-ov-rsa".into(),
            rules: vec![rule(Endpoint::NewOrder, FaultKind::BadNonce, &[1])],
        };
        assert!(!minimal.inside(&once));
        let empty = Case {
            base: "happy-rsa-ov-rsa".into(),
            rules: Vec::new(),
        };
        assert!(empty.inside(&minimal));
        assert_eq!(
            bigger.signature(),
            "renewal: finalize drop@1; newOrder badNonce@1,2,3"
        );
        assert_eq!(empty.signature(), "happy-rsa-ov-rsa: no faults");
    }

    #[test]
    fn vet_faults_keeps_issue_for_transient_plans_only() {
        let happy = Scenario::select(&["happy-rsa-ov-rsa".into()]).unwrap();
        let plan = |fault| FaultPlan {
            seed: None,
            rules: vec![FaultRule {
                endpoint: Endpoint::NewOrder,
                fault,
                probability: None,
                nth: vec![1],
                retry_after: Some(30),
                delay_ms: None,
                seconds: None,
            }],
        };
        let s = with_plan(happy.clone(), &plan(FaultKind::RateLimited)).remove(0);
        assert_eq!(s.expect, Expect::Issue);
        assert_eq!(s.faults, plan(FaultKind::RateLimited).rules);
        assert!(s.time_limit >= DEFAULT_BASE_LIMIT + 60, "{}", s.time_limit);
        let s = with_plan(happy, &plan(FaultKind::ServerInternal)).remove(0);
        assert_eq!(s.expect, Expect::IssueOrRefuse);
    }
}
