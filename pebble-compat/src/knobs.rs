//! Pebble's environment knobs (`PEBBLE_*`), read as Pebble reads them and mapped onto the
//! mock's own switches: profile settings, a seeded fault plan (so that a run with knobs is
//! replayable with the seed printed at start like any other), and the shape of the CA.

use mock_server::ca::{CaKeyAlgorithm, PebbleShape};
use mock_server::faults::{Endpoint, FaultKind, FaultPlan, FaultRule};
use mock_server::profile::Profile;

/// The knobs' values after Pebble's defaults and clamping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// `PEBBLE_VA_NOSLEEP`: no random wait before validation.
    pub no_sleep: bool,
    /// `PEBBLE_VA_SLEEPTIME`: the wait is a whole number of seconds in `[0, sleep_time)`.
    pub sleep_time: u64,
    /// `PEBBLE_VA_ALWAYS_VALID`: every challenge passes without being looked at.
    pub always_valid: bool,
    /// `PEBBLE_WFE_NONCEREJECT`: percentage of good nonces refused with `badNonce`.
    pub nonce_reject: u32,
    /// `PEBBLE_AUTHZREUSE`: percentage chance of reusing a valid authorization.
    pub authz_reuse: u32,
    /// `PEBBLE_WFE_ORDERS_PER_PAGE`: page size of the orders list.
    pub orders_per_page: u32,
    /// `PEBBLE_CHAIN_LENGTH`: intermediates between leaf and root (0 is kept: Pebble dies
    /// of it at start, and so does the stand-in, [`Knobs::ca_shape`]).
    pub chain_length: u32,
    /// `PEBBLE_ALTERNATE_ROOTS`: extra chains, each to a root of its own.
    pub alternate_roots: u32,
    /// The `-strict` flag (a flag, not a knob; carried with them to the same switches).
    pub strict: bool,
    /// `ACME_HARNESS_PEBBLE_REQUIRE_USER_AGENT` (acme-harness's own, not Pebble's): refuse
    /// every ACME request without a User-Agent, as Pebble 2.10 does. Off by default because
    /// Pebble 2.4 (Debian's) does not, and suites written against it send none (acme2);
    /// `-strict` cannot carry it, since those suites pass `-strict` too.
    pub require_user_agent: bool,
}

/// The environment variable that turns on [`Knobs::require_user_agent`].
pub const REQUIRE_USER_AGENT: &str = "ACME_HARNESS_PEBBLE_REQUIRE_USER_AGENT";

impl Default for Knobs {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

/// Pebble's truth test for its boolean knobs (`1`, `true`, `True`, `TRUE`).
fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True" | "TRUE"))
}

impl Knobs {
    /// The knobs of this process's environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The knobs as `lookup` gives them (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let int = |name: &str| lookup(name).and_then(|v| v.trim().parse::<i64>().ok());
        let nonce_reject = match int("PEBBLE_WFE_NONCEREJECT") {
            None => 5,
            Some(n) if n < 0 => 0,
            Some(n) if n > 100 => 99,
            Some(n) => n as u32,
        };
        let authz_reuse = match int("PEBBLE_AUTHZREUSE") {
            Some(n @ 0..=100) => n as u32,
            _ => 50,
        };
        let positive = |name: &str, default: u32| match int(name) {
            Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => default,
        };
        Self {
            no_sleep: truthy(lookup("PEBBLE_VA_NOSLEEP").as_deref()),
            sleep_time: u64::from(positive("PEBBLE_VA_SLEEPTIME", 5)),
            always_valid: truthy(lookup("PEBBLE_VA_ALWAYS_VALID").as_deref()),
            nonce_reject,
            authz_reuse,
            orders_per_page: positive("PEBBLE_WFE_ORDERS_PER_PAGE", 3),
            chain_length: match int("PEBBLE_CHAIN_LENGTH") {
                Some(n) if n >= 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => 1,
            },
            alternate_roots: match int("PEBBLE_ALTERNATE_ROOTS") {
                Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
                _ => 0,
            },
            strict: false,
            require_user_agent: truthy(lookup(REQUIRE_USER_AGENT).as_deref()),
        }
    }

    /// The fault plan that does what the nonce and sleep knobs ask: `badNonce` on that share
    /// of signed requests, and validation that waits a uniformly drawn whole number of seconds
    /// in `[0, PEBBLE_VA_SLEEPTIME)` (rules tried in turn, the one for `s` seconds firing with
    /// probability `1/(s+1)`, so that each wait from 0 to N-1 is equally likely).
    pub fn fault_plan(&self) -> FaultPlan {
        let mut rules = Vec::new();
        if self.nonce_reject > 0 {
            rules.push(FaultRule {
                endpoint: Endpoint::Any,
                fault: FaultKind::BadNonce,
                probability: Some(f64::from(self.nonce_reject) / 100.0),
                nth: Vec::new(),
                retry_after: None,
                delay_ms: None,
                seconds: None,
            });
        }
        if !self.no_sleep {
            for s in (1..self.sleep_time).rev() {
                rules.push(FaultRule {
                    endpoint: Endpoint::Challenge,
                    fault: FaultKind::Processing,
                    probability: Some(1.0 / (s as f64 + 1.0)),
                    nth: Vec::new(),
                    retry_after: None,
                    delay_ms: None,
                    seconds: Some(s),
                });
            }
        }
        FaultPlan { seed: None, rules }
    }

    /// Applies the switches that live in the profile.
    pub fn apply(&self, profile: &mut Profile) {
        if self.always_valid {
            profile.order.danger_skip_validation = true;
        }
        profile.order.authz_reuse_percent = u8::try_from(self.authz_reuse.min(100)).unwrap_or(100);
        profile.account.orders_per_page = Some(self.orders_per_page as usize);
        profile.strict.require_user_agent = self.require_user_agent;
        if self.strict {
            profile.strict.challenge_payload_exactly_empty_object = true;
            profile.strict.refuse_resource_field = true;
        }
    }

    /// The CA's shape: `PEBBLE_CHAIN_LENGTH` intermediates in each of 1 +
    /// `PEBBLE_ALTERNATE_ROOTS` chains, keys of `key_algorithm` (the configuration's
    /// `keyAlgorithm`: `ecdsa`, else RSA). A chain length of 0 is refused, naming the knob:
    /// Pebble panics on it while making its CA.
    pub fn ca_shape(&self, key_algorithm: &str) -> Result<PebbleShape, String> {
        if self.chain_length == 0 {
            return Err(
                "PEBBLE_CHAIN_LENGTH=0: At least one intermediate must be present in the certificate chain (set it to 1 or more)"
                    .into(),
            );
        }
        Ok(PebbleShape {
            chain_length: self.chain_length,
            alternate_roots: self.alternate_roots,
            key_algorithm: match key_algorithm {
                "ecdsa" => CaKeyAlgorithm::Ecdsa,
                _ => CaKeyAlgorithm::Rsa,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use mock_server::faults::FaultEngine;

    fn knobs(pairs: &[(&str, &str)]) -> Knobs {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Knobs::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_clamping_follow_pebble() {
        let d = Knobs::default();
        assert_eq!(
            (d.nonce_reject, d.authz_reuse, d.orders_per_page),
            (5, 50, 3)
        );
        assert_eq!((d.sleep_time, d.chain_length, d.alternate_roots), (5, 1, 0));
        assert!(!d.no_sleep && !d.always_valid);
        assert_eq!(knobs(&[("PEBBLE_WFE_NONCEREJECT", "-3")]).nonce_reject, 0);
        assert_eq!(knobs(&[("PEBBLE_WFE_NONCEREJECT", "400")]).nonce_reject, 99);
        assert_eq!(knobs(&[("PEBBLE_WFE_NONCEREJECT", "x")]).nonce_reject, 5);
        assert_eq!(knobs(&[("PEBBLE_AUTHZREUSE", "101")]).authz_reuse, 50);
        assert!(knobs(&[("PEBBLE_VA_NOSLEEP", "TRUE")]).no_sleep);
        assert!(!knobs(&[("PEBBLE_VA_NOSLEEP", "yes")]).no_sleep);
        assert!(knobs(&[("PEBBLE_VA_ALWAYS_VALID", "1")]).always_valid);
        assert!(!d.require_user_agent);
        let mut p = Profile::built_in("rfc8555").unwrap();
        knobs(&[(REQUIRE_USER_AGENT, "1")]).apply(&mut p);
        assert!(p.strict.require_user_agent);
    }

    #[test]
    fn nonce_reject_zero_and_nosleep_mean_no_faults() {
        let k = knobs(&[("PEBBLE_WFE_NONCEREJECT", "0"), ("PEBBLE_VA_NOSLEEP", "1")]);
        assert!(k.fault_plan().rules.is_empty());
    }

    #[test]
    fn nonce_reject_refuses_about_that_share_of_signed_requests() {
        let plan =
            knobs(&[("PEBBLE_WFE_NONCEREJECT", "20"), ("PEBBLE_VA_NOSLEEP", "1")]).fault_plan();
        plan.check().unwrap();
        let engine = FaultEngine::new(7);
        let refused = (0..2000)
            .filter(|_| engine.decide([&plan], None, Endpoint::NewOrder).is_some())
            .count();
        assert!((300..500).contains(&refused), "{refused} of 2000");
        // Never on the unsigned GET endpoints.
        assert!(engine.decide([&plan], None, Endpoint::Directory).is_none());
    }

    #[test]
    fn sleeps_are_spread_evenly_over_zero_to_n_minus_one() {
        let plan = knobs(&[
            ("PEBBLE_WFE_NONCEREJECT", "0"),
            ("PEBBLE_VA_SLEEPTIME", "4"),
        ])
        .fault_plan();
        plan.check().unwrap();
        let engine = FaultEngine::new(11);
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            let s = engine
                .decide([&plan], None, Endpoint::Challenge)
                .and_then(|r| r.seconds)
                .unwrap_or(0);
            counts[s as usize] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn always_valid_skips_validation() {
        let mut p = Profile::built_in("rfc8555").unwrap();
        knobs(&[("PEBBLE_VA_ALWAYS_VALID", "true")]).apply(&mut p);
        assert!(p.order.danger_skip_validation);
    }

    #[test]
    fn chain_knobs_shape_the_ca_as_pebble_reads_them() {
        let k = knobs(&[
            ("PEBBLE_CHAIN_LENGTH", "3"),
            ("PEBBLE_ALTERNATE_ROOTS", "2"),
        ]);
        let shape = k.ca_shape("").unwrap();
        assert_eq!((shape.chain_length, shape.alternate_roots), (3, 2));
        assert_eq!(shape.key_algorithm, CaKeyAlgorithm::Rsa);
        assert_eq!(
            k.ca_shape("ecdsa").unwrap().key_algorithm,
            CaKeyAlgorithm::Ecdsa
        );
        assert_eq!(
            Knobs::default().ca_shape("rsa").unwrap(),
            PebbleShape::default()
        );
        // Negative or not a number: 1 and 0, as Pebble's ParseInt fallbacks.
        for (length, roots) in [("-2", "-1"), ("three", "x"), ("", "")] {
            let k = knobs(&[
                ("PEBBLE_CHAIN_LENGTH", length),
                ("PEBBLE_ALTERNATE_ROOTS", roots),
            ]);
            assert_eq!(
                (k.chain_length, k.alternate_roots),
                (1, 0),
                "{length} {roots}"
            );
        }
        // 0 is kept, and refused when the CA is made, naming the knob.
        let zero = knobs(&[("PEBBLE_CHAIN_LENGTH", "0")]);
        assert_eq!(zero.chain_length, 0);
        assert!(
            zero.ca_shape("rsa")
                .unwrap_err()
                .contains("PEBBLE_CHAIN_LENGTH=0")
        );
    }
}
