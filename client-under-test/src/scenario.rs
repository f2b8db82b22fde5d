//! The built-in scenarios: what the mock does to the client, and what the client must achieve.

use mock_server::faults::{Endpoint, FaultKind, FaultPlan, FaultRule};
use serde::{Deserialize, Serialize};

/// The InCommon RSA OV profile.
pub const RSA_OV: &str = "sectigo-incommon-rsa-ov";
/// The InCommon ECC OV profile.
pub const ECC_OV: &str = "sectigo-incommon-ecc-ov";
/// The name the canary credential is delegated to.
pub const DOMAIN: &str = "physics.example.edu";
/// A name of the organisation that is not delegated to the credential.
pub const UNDELEGATED: &str = "chemistry.example.edu";

/// What the client must achieve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// A certificate for the names, chaining to the mock's roots.
    Issue,
    /// A clean non-zero exit (no hang, no certificate).
    Refuse,
    /// Either: the CA failed the request, and both retrying to a certificate and giving up
    /// with a clean non-zero exit are correct; hanging or exiting 0 without one are not.
    IssueOrRefuse,
    /// The CA asks for a long wait: waiting patiently (still waiting at the time limit), a
    /// clean non-zero exit to resume later, or a certificate are all correct; polling in a
    /// tight loop, a crash or an exit 0 without a certificate are not.
    WaitOrRefuse,
}

impl Expect {
    /// Whether a client that ended as `kind` did what this expectation asks.
    pub fn accepts(self, kind: crate::run::OutcomeKind) -> bool {
        use crate::run::OutcomeKind::{Hung, Issued, Refused};
        matches!(
            (self, kind),
            (
                Self::Issue | Self::IssueOrRefuse | Self::WaitOrRefuse,
                Issued
            ) | (
                Self::Refuse | Self::IssueOrRefuse | Self::WaitOrRefuse,
                Refused
            ) | (Self::WaitOrRefuse, Hung)
        )
    }
}

/// The certificate key type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// RSA 2048.
    Rsa,
    /// ECDSA P-256.
    Ecdsa,
}

/// What happens to the canary EAB credential before the client runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EabState {
    /// Fresh, single-use.
    Fresh,
    /// Single-use and already bound by another account.
    AlreadyUsed,
    /// Revoked by an administrator.
    Revoked,
    /// Fresh, but the client is handed a wrong HMAC key (a typo, a key from another
    /// department): the CA refuses the binding.
    WrongKey,
    /// The client is run without any EAB credential (its adapter's `issue_without_eab`):
    /// the directory says one is required, and the CA refuses an account without it.
    Missing,
}

/// One scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Stable id (`--scenario ID`).
    pub id: &'static str,
    /// One line.
    pub description: &'static str,
    /// Profile whose directory the client is given.
    pub profile: &'static str,
    /// Certificate key type.
    pub key: KeyKind,
    /// The name asked for.
    pub domain: &'static str,
    /// The credential's state.
    pub eab: EabState,
    /// Fault rules on the canary credential's requests.
    pub faults: Vec<FaultRule>,
    /// What the client must achieve.
    pub expect: Expect,
    /// Run the adapter's renew commands after a successful issue, expecting a second
    /// certificate.
    pub renew: bool,
    /// Serve the directory with a certificate the client does not trust.
    pub untrusted_tls: bool,
    /// The CA issues a certificate whatever the client does next (it cannot fetch it, or must
    /// wait a day for it): a refusal is judged by the client's exit, not by the CA's count.
    pub issues_anyway: bool,
    /// Ask the client for the chain whose top issuer has this name (its adapter's
    /// `preferred_chain_args`); the certificate file must end with that chain.
    pub preferred_chain: Option<&'static str>,
    /// Rules this scenario makes a client break by design (a client given no credential
    /// sends no EAB): left out of its grade.
    pub waived_rules: &'static [&'static str],
    /// When the client's first run fails, run its issue commands once more, as a scheduled
    /// retry would (the order it lost must not stop it).
    pub rerun: bool,
    /// Time limit for the client, seconds (all its commands together).
    pub time_limit: u64,
    /// A change to the served profiles (both InCommon ones) for this scenario.
    #[serde(skip)]
    pub profile_edit: Option<fn(&mut mock_server::Profile)>,
}

/// A rule firing `fault` on the `nth` requests to `endpoint`, nothing else set.
pub(crate) fn rule(endpoint: Endpoint, fault: FaultKind, nth: &[u64]) -> FaultRule {
    FaultRule {
        endpoint,
        fault,
        probability: None,
        nth: nth.to_vec(),
        retry_after: None,
        delay_ms: None,
        seconds: None,
    }
}

impl Scenario {
    fn base(id: &'static str, description: &'static str) -> Self {
        Self {
            id,
            description,
            profile: RSA_OV,
            key: KeyKind::Rsa,
            domain: DOMAIN,
            eab: EabState::Fresh,
            faults: Vec::new(),
            expect: Expect::Issue,
            renew: false,
            untrusted_tls: false,
            rerun: false,
            waived_rules: &[],
            issues_anyway: false,
            preferred_chain: None,
            time_limit: 90,
            profile_edit: None,
        }
    }

    /// Whether this scenario can run `adapter`: eab-missing needs a way to run the client
    /// without a credential, preferred-chain a way to ask for a chain.
    pub fn applies_to(&self, adapter: &crate::Adapter) -> bool {
        (self.eab != EabState::Missing || !adapter.issue_without_eab.is_empty())
            && (self.preferred_chain.is_none() || !adapter.preferred_chain_args.is_empty())
    }

    /// The fault plan set on the canary credential, if any.
    pub fn fault_plan(&self, seed: u64) -> Option<FaultPlan> {
        (!self.faults.is_empty()).then(|| FaultPlan {
            seed: Some(seed),
            rules: self.faults.clone(),
        })
    }

    /// Every built-in scenario, in report order.
    pub fn built_in() -> Vec<Self> {
        let mut out = Vec::new();
        for (id, description, profile, key) in [
            (
                "happy-rsa-ov-rsa",
                "happy path, InCommon RSA OV, RSA key",
                RSA_OV,
                KeyKind::Rsa,
            ),
            (
                "happy-rsa-ov-ecdsa",
                "happy path, InCommon RSA OV, ECDSA P-256 key",
                RSA_OV,
                KeyKind::Ecdsa,
            ),
            (
                "happy-ecc-ov-rsa",
                "happy path, InCommon ECC OV, RSA key",
                ECC_OV,
                KeyKind::Rsa,
            ),
            (
                "happy-ecc-ov-ecdsa",
                "happy path, InCommon ECC OV, ECDSA P-256 key",
                ECC_OV,
                KeyKind::Ecdsa,
            ),
        ] {
            out.push(Self {
                profile,
                key,
                ..Self::base(id, description)
            });
        }
        let mut processing = rule(Endpoint::Finalize, FaultKind::Processing, &[1]);
        processing.seconds = Some(20);
        processing.retry_after = Some(15);
        out.push(Self {
            faults: vec![processing],
            time_limit: 120,
            ..Self::base(
                "processing-20s",
                "order stays processing 20 s after finalize, Retry-After 15",
            )
        });
        out.push(Self {
            faults: vec![rule(Endpoint::NewOrder, FaultKind::BadNonce, &[1])],
            ..Self::base("bad-nonce-once", "one badNonce (first newOrder)")
        });
        out.push(Self {
            faults: vec![rule(Endpoint::NewOrder, FaultKind::BadNonce, &[1, 2])],
            ..Self::base(
                "bad-nonce-twice",
                "two badNonces in a row (first two newOrders)",
            )
        });
        let mut limited = rule(Endpoint::NewOrder, FaultKind::RateLimited, &[1]);
        limited.retry_after = Some(3);
        out.push(Self {
            faults: vec![limited],
            ..Self::base(
                "rate-limited-429",
                "429 with an nginx HTML body and Retry-After 3 (first newOrder)",
            )
        });
        out.push(Self {
            faults: vec![rule(Endpoint::Finalize, FaultKind::ServerInternal, &[1])],
            expect: Expect::IssueOrRefuse,
            ..Self::base(
                "server-internal-finalize",
                "500 serverInternal on the first finalize: a certificate (retried) or a clean failure",
            )
        });
        let mut unavailable = rule(Endpoint::NewOrder, FaultKind::ServiceUnavailable, &[1]);
        unavailable.retry_after = Some(3);
        out.push(Self {
            faults: vec![unavailable],
            ..Self::base(
                "unavailable-503-new-order",
                "503 (nginx HTML, Retry-After 3) on the first newOrder",
            )
        });
        let mut dated = rule(Endpoint::Finalize, FaultKind::Processing, &[1]);
        dated.seconds = Some(6);
        dated.retry_after = Some(3);
        out.push(Self {
            faults: vec![dated],
            profile_edit: Some(|p| p.order.retry_after_http_date = true),
            ..Self::base(
                "retry-after-http-date",
                "processing 6 s with Retry-After as an HTTP-date (RFC 9110's other form)",
            )
        });
        out.push(Self {
            faults: vec![rule(Endpoint::NewOrder, FaultKind::ServerInternal, &[1])],
            expect: Expect::IssueOrRefuse,
            ..Self::base(
                "server-internal-new-order",
                "500 serverInternal on the first newOrder: a certificate (retried) or a clean failure",
            )
        });
        out.push(Self {
            eab: EabState::Missing,
            expect: Expect::Refuse,
            waived_rules: &["eab-sent"],
            ..Self::base(
                "eab-missing",
                "the client is run without an EAB credential: must fail cleanly (the CA requires one)",
            )
        });
        out.push(Self {
            eab: EabState::Missing,
            expect: Expect::Refuse,
            waived_rules: &["eab-sent"],
            profile_edit: Some(|p| p.meta.external_account_required = false),
            ..Self::base(
                "eab-missing-unadvertised",
                "no EAB credential, and the directory does not say one is required: the CA's refusal must end the run cleanly",
            )
        });
        out.push(Self {
            profile_edit: Some(|p| p.order.prevalidated = false),
            time_limit: 120,
            ..Self::base(
                "dcv-http-01",
                "the name is delegated but not validated: the client must answer http-01",
            )
        });
        out.push(Self {
            profile_edit: Some(|p| {
                p.order.prevalidated = false;
                p.order.challenge_types = vec![
                    acme_proto::ChallengeType::Other("sectigo-email-01".into()),
                    acme_proto::ChallengeType::Http01,
                    acme_proto::ChallengeType::Dns01,
                ];
                p.meta.extra.insert(
                    "sectigoPortal".into(),
                    serde_json::json!({"url": "https://cert-manager.example/", "version": 2}),
                );
                p.meta
                    .extra
                    .insert("profiles".into(), serde_json::json!({}));
            }),
            time_limit: 120,
            ..Self::base(
                "unknown-types-ignored",
                "unknown meta members, and an unknown challenge type listed first: must be ignored",
            )
        });
        out.push(Self {
            profile_edit: Some(|p| p.order.prevalidated = false),
            faults: vec![rule(Endpoint::Challenge, FaultKind::InvalidChallenge, &[1])],
            expect: Expect::Refuse,
            ..Self::base(
                "invalid-challenge-empty-error",
                "the challenge turns invalid with \"error\": {} (as Sectigo sends it): must fail cleanly",
            )
        });
        out.push(Self {
            profile_edit: Some(|p| p.order.persistent_dcv = true),
            expect: Expect::Refuse,
            ..Self::base(
                "persistent-dcv",
                "a delegated name suddenly needs dns-01 (Sectigo's persistent DCV): an http-01 set-up must fail cleanly",
            )
        });
        out.push(Self {
            profile_edit: Some(|p| p.order.omit_certificate_url = true),
            expect: Expect::Refuse,
            issues_anyway: true,
            ..Self::base(
                "valid-without-certificate-url",
                "the order turns valid without a certificate URL: must fail cleanly, not crash or hang",
            )
        });
        let mut day = rule(Endpoint::Finalize, FaultKind::Processing, &[1]);
        day.seconds = Some(30);
        day.retry_after = Some(86_400);
        out.push(Self {
            faults: vec![day],
            expect: Expect::WaitOrRefuse,
            issues_anyway: true,
            time_limit: 45,
            ..Self::base(
                "retry-after-86400",
                "processing with Retry-After: 86400: a patient wait or a clean exit, no tight loop",
            )
        });
        let mut held = rule(Endpoint::Finalize, FaultKind::Slow, &[1]);
        held.delay_ms = Some(60_000);
        out.push(Self {
            faults: vec![held],
            rerun: true,
            time_limit: 240,
            ..Self::base(
                "finalize-held-60s",
                "the first finalize is answered after 60 s: a timeout must not lose the order (a rerun gets the certificate)",
            )
        });
        out.push(Self {
            preferred_chain: Some("Mock USERTrust RSA Certification Authority"),
            ..Self::base(
                "preferred-chain",
                "asked for the chain ending at USERTrust (the alternate, not the AAA cross-sign): the file must hold it",
            )
        });
        out.push(Self {
            eab: EabState::WrongKey,
            expect: Expect::Refuse,
            ..Self::base(
                "eab-wrong-hmac-key",
                "the client is handed a wrong HMAC key: must fail cleanly on the CA's refusal",
            )
        });
        out.push(Self {
            eab: EabState::AlreadyUsed,
            expect: Expect::Refuse,
            ..Self::base(
                "eab-already-used",
                "single-use EAB credential already bound by another account: must fail cleanly",
            )
        });
        out.push(Self {
            eab: EabState::Revoked,
            expect: Expect::Refuse,
            ..Self::base("eab-revoked", "revoked EAB credential: must fail cleanly")
        });
        out.push(Self {
            domain: UNDELEGATED,
            expect: Expect::Refuse,
            ..Self::base(
                "undelegated-name",
                "a name not delegated to the credential: must fail cleanly",
            )
        });
        out.push(Self {
            domain: "*.physics.example.edu",
            ..Self::base("wildcard", "a delegated wildcard name")
        });
        out.push(Self {
            renew: true,
            time_limit: 150,
            ..Self::base("renewal", "issue, then renew the certificate")
        });
        out.push(Self {
            untrusted_tls: true,
            expect: Expect::Refuse,
            time_limit: 60,
            ..Self::base(
                "untrusted-tls",
                "directory served with a certificate the client must not trust: must refuse",
            )
        });
        out
    }

    /// The scenarios with these ids (all when empty); the error names an unknown id.
    pub fn select(ids: &[String]) -> Result<Vec<Self>, crate::Error> {
        let all = Self::built_in();
        if ids.is_empty() {
            return Ok(all);
        }
        ids.iter()
            .map(|id| {
                all.iter().find(|s| s.id == id).cloned().ok_or_else(|| {
                    crate::Error::UnknownScenario {
                        id: id.clone(),
                        known: all.iter().map(|s| s.id).collect::<Vec<_>>().join(", "),
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::OutcomeKind as K;

    #[test]
    fn each_expectation_accepts_only_its_endings() {
        let all = [
            K::Issued,
            K::Refused,
            K::NoCertificate,
            K::BadCertificate,
            K::Failed,
            K::Crashed,
            K::Accepted,
            K::Hung,
            K::Error,
            K::Unusable,
        ];
        let accepted =
            |e: Expect| -> Vec<K> { all.into_iter().filter(|k| e.accepts(*k)).collect() };
        assert_eq!(accepted(Expect::Issue), [K::Issued]);
        assert_eq!(accepted(Expect::Refuse), [K::Refused]);
        assert_eq!(accepted(Expect::IssueOrRefuse), [K::Issued, K::Refused]);
        assert_eq!(
            accepted(Expect::WaitOrRefuse),
            [K::Issued, K::Refused, K::Hung]
        );
    }
}
