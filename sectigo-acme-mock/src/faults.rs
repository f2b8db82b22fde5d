//! Fault plans built in code: which endpoint fails how, on which requests.

use std::time::Duration;

use mock_server::faults as wire;

/// An ACME endpoint a fault can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The directory.
    Directory,
    /// newNonce.
    NewNonce,
    /// newAccount.
    NewAccount,
    /// newOrder.
    NewOrder,
    /// revokeCert.
    RevokeCert,
    /// keyChange.
    KeyChange,
    /// The account resource.
    Account,
    /// An order fetched with POST-as-GET.
    Order,
    /// An order's finalize URL.
    Finalize,
    /// An authorization.
    Authz,
    /// A challenge.
    Challenge,
    /// A certificate download.
    Certificate,
    /// Every endpoint.
    Any,
}

impl Endpoint {
    fn wire(self) -> wire::Endpoint {
        match self {
            Self::Directory => wire::Endpoint::Directory,
            Self::NewNonce => wire::Endpoint::NewNonce,
            Self::NewAccount => wire::Endpoint::NewAccount,
            Self::NewOrder => wire::Endpoint::NewOrder,
            Self::RevokeCert => wire::Endpoint::RevokeCert,
            Self::KeyChange => wire::Endpoint::KeyChange,
            Self::Account => wire::Endpoint::Account,
            Self::Order => wire::Endpoint::Order,
            Self::Finalize => wire::Endpoint::Finalize,
            Self::Authz => wire::Endpoint::Authz,
            Self::Challenge => wire::Endpoint::Challenge,
            Self::Certificate => wire::Endpoint::Certificate,
            Self::Any => wire::Endpoint::Any,
        }
    }
}

/// What goes wrong. The HTML answers are what a proxy in front of Sectigo's service sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// 400 `badNonce`, "The Replay Nonce is not recognized": a client retries with the nonce
    /// that came with the refusal.
    BadNonce,
    /// 429 with an nginx HTML page and `Retry-After` (seconds).
    RateLimited {
        /// The `Retry-After` seconds.
        retry_after: u64,
    },
    /// 502 with an nginx HTML page.
    BadGateway,
    /// 503 with an nginx HTML page and `Retry-After` (seconds).
    ServiceUnavailable {
        /// The `Retry-After` seconds.
        retry_after: u64,
    },
    /// 504 with an nginx HTML page.
    GatewayTimeout,
    /// 500 `serverInternal`.
    ServerInternal,
    /// The answer comes after this delay, then normally.
    Slow(Duration),
    /// The connection is closed without an answer.
    Drop,
    /// On finalize: the order stays `processing` for `seconds`, each poll answered with
    /// `Retry-After: retry_after`. On a challenge: validation takes `seconds`.
    Processing {
        /// How long.
        seconds: u64,
        /// The `Retry-After` seconds on each answer meanwhile.
        retry_after: u64,
    },
    /// On a challenge: it becomes `invalid` with `"error": {}`, as Sectigo's sometimes does.
    InvalidChallenge,
}

/// A fault plan: rules tried in order, the first that fires decides. Decisions are drawn
/// from a seed, so the same plan and the same requests give the same faults.
///
/// ```
/// use std::time::Duration;
/// use sectigo_acme_mock::{Endpoint, Fault, FaultPlan};
///
/// let plan = FaultPlan::new()
///     .nth(Endpoint::NewOrder, Fault::BadNonce, [1, 2]) // the first two newOrders
///     .nth(Endpoint::Finalize, Fault::Processing { seconds: 3, retry_after: 1 }, [1])
///     .probability(Endpoint::Any, Fault::Slow(Duration::from_millis(50)), 0.1)
///     .seed(7);
/// assert_eq!(plan.len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    pub(crate) plan: wire::FaultPlan,
}

impl FaultPlan {
    /// An empty plan: nothing goes wrong.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a plan file's text (TOML `[[rule]]` tables, or JSON), as `acme-harness serve
    /// --faults` and `vet` read it: use it to replay a plan a vet or explore run printed.
    ///
    /// ```
    /// let plan = sectigo_acme_mock::FaultPlan::from_text(
    ///     "[[rule]]\nendpoint = \"finalize\"\nfault = \"serverInternal\"\nnth = [1]\n",
    /// )
    /// .unwrap();
    /// assert_eq!(plan.len(), 1);
    /// assert!(sectigo_acme_mock::FaultPlan::from_text("[[rule]]\nendpoint = \"nowhere\"").is_err());
    /// ```
    pub fn from_text(text: &str) -> Result<Self, crate::Error> {
        wire::FaultPlan::parse(text, "fault plan")
            .map(|plan| Self { plan })
            .map_err(|e| crate::Error::Faults(e.to_string()))
    }

    /// Adds a rule that fires on the `nth` requests (1-based) to `endpoint`, counted per
    /// credential.
    ///
    /// # Panics
    /// When an ordinal is 0 (they count from 1).
    pub fn nth(self, endpoint: Endpoint, fault: Fault, nth: impl IntoIterator<Item = u64>) -> Self {
        let nth: Vec<u64> = nth.into_iter().collect();
        assert!(
            !nth.contains(&0),
            "FaultPlan::nth: ordinals count from 1 (the first request is 1)"
        );
        self.push(endpoint, fault, None, nth)
    }

    /// Adds a rule that fires with `probability` (0.0 to 1.0) on each request to `endpoint`.
    ///
    /// # Panics
    /// When `probability` is not between 0 and 1.
    pub fn probability(self, endpoint: Endpoint, fault: Fault, probability: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&probability),
            "FaultPlan::probability: {probability} is not between 0 and 1"
        );
        self.push(endpoint, fault, Some(probability), Vec::new())
    }

    /// The seed of this plan's probabilities (the server's seed when not set).
    pub fn seed(mut self, seed: u64) -> Self {
        self.plan.seed = Some(seed);
        self
    }

    /// How many rules the plan has.
    pub fn len(&self) -> usize {
        self.plan.rules.len()
    }

    /// Whether the plan has no rule.
    pub fn is_empty(&self) -> bool {
        self.plan.rules.is_empty()
    }

    /// The plan as TOML, in the format `acme-harness serve --faults FILE` replays.
    ///
    /// ```
    /// use sectigo_acme_mock::{Endpoint, Fault, FaultPlan};
    /// let plan = FaultPlan::new().nth(Endpoint::Finalize, Fault::ServerInternal, [1]);
    /// assert_eq!(FaultPlan::from_text(&plan.to_toml()).unwrap(), plan);
    /// ```
    pub fn to_toml(&self) -> String {
        self.plan.to_toml()
    }

    fn push(
        mut self,
        endpoint: Endpoint,
        fault: Fault,
        probability: Option<f64>,
        nth: Vec<u64>,
    ) -> Self {
        let mut rule = wire::FaultRule {
            endpoint: endpoint.wire(),
            fault: wire::FaultKind::BadNonce,
            probability,
            nth,
            retry_after: None,
            delay_ms: None,
            seconds: None,
        };
        rule.fault = match fault {
            Fault::BadNonce => wire::FaultKind::BadNonce,
            Fault::RateLimited { retry_after } => {
                rule.retry_after = Some(retry_after);
                wire::FaultKind::RateLimited
            }
            Fault::BadGateway => wire::FaultKind::BadGateway,
            Fault::ServiceUnavailable { retry_after } => {
                rule.retry_after = Some(retry_after);
                wire::FaultKind::ServiceUnavailable
            }
            Fault::GatewayTimeout => wire::FaultKind::GatewayTimeout,
            Fault::ServerInternal => wire::FaultKind::ServerInternal,
            Fault::Slow(delay) => {
                rule.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                wire::FaultKind::Slow
            }
            Fault::Drop => wire::FaultKind::Drop,
            Fault::Processing {
                seconds,
                retry_after,
            } => {
                rule.seconds = Some(seconds);
                rule.retry_after = Some(retry_after);
                wire::FaultKind::Processing
            }
            Fault::InvalidChallenge => wire::FaultKind::InvalidChallenge,
        };
        self.plan.rules.push(rule);
        self
    }
}
