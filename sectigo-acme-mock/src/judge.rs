//! Grading what a client sent: which rules to apply, and the result.

use std::fmt;

use acme_proto::transcript::Exchange;
use conformance::rules::Severity as Wire;

/// How much a broken rule matters, most serious first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// An RFC 8555 MUST: a conforming server may refuse the client.
    Must,
    /// An RFC 8555 SHOULD.
    Should,
    /// What Sectigo's service needs in practice (waiting out `processing`, honouring
    /// `Retry-After`, accepting pre-validated authorizations, sending EAB).
    SectigoNeeded,
    /// Good manners towards a shared CA (poll no faster than once a second).
    Hygiene,
}

impl Severity {
    fn of(wire: Wire) -> Self {
        match wire {
            Wire::Must => Self::Must,
            Wire::Should => Self::Should,
            Wire::SectigoNeeded => Self::SectigoNeeded,
            Wire::Hygiene => Self::Hygiene,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
            Self::SectigoNeeded => "Sectigo-needed",
            Self::Hygiene => "hygiene",
        })
    }
}

/// Which of the judge's rules a grade applies.
///
/// The default ([`Rules::default`]) applies every rule down to
/// [`Severity::SectigoNeeded`]: what an RFC requires and what Sectigo's service needs, but
/// not hygiene advice.
///
/// ```
/// use sectigo_acme_mock::{Rules, Severity};
///
/// let strict = Rules::all();
/// let protocol_only = Rules::at_least(Severity::Must);
/// let some = Rules::only(["nonce-not-reused", "post-as-get"]);
/// let most = Rules::default().except(["poll-interval-floor"]);
/// assert!(Rules::ids().any(|id| id == "post-as-get"));
/// # let _ = (strict, protocol_only, some, most);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    floor: Severity,
    only: Option<Vec<String>>,
    except: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self::at_least(Severity::SectigoNeeded)
    }
}

impl Rules {
    /// Every rule, hygiene included.
    pub fn all() -> Self {
        Self::at_least(Severity::Hygiene)
    }

    /// The rules of `floor` and every more serious severity.
    pub fn at_least(floor: Severity) -> Self {
        Self {
            floor,
            only: None,
            except: Vec::new(),
        }
    }

    /// Just these rules, by id (whatever their severity).
    ///
    /// # Panics
    /// When grading, if an id is not one of [`Rules::ids`].
    pub fn only<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        Self {
            floor: Severity::Hygiene,
            only: Some(ids.into_iter().map(Into::into).collect()),
            except: Vec::new(),
        }
    }

    /// These rules left out.
    ///
    /// # Panics
    /// When grading, if an id is not one of [`Rules::ids`].
    pub fn except<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.except.extend(ids.into_iter().map(Into::into));
        self
    }

    /// The id of every rule the judge has (documented in the project's docs/rules.md).
    pub fn ids() -> impl Iterator<Item = &'static str> {
        conformance::catalogue().iter().map(|r| r.id)
    }

    pub(crate) fn select(&self) -> Vec<conformance::Rule> {
        let named = self.only.iter().flatten().chain(&self.except);
        for id in named {
            assert!(
                conformance::rules::rule(id).is_some(),
                "no rule {id:?}; the rules are: {}",
                Self::ids().collect::<Vec<_>>().join(", ")
            );
        }
        conformance::catalogue()
            .iter()
            .filter(|r| Severity::of(r.severity) <= self.floor)
            .filter(|r| {
                self.only
                    .as_ref()
                    .is_none_or(|o| o.iter().any(|id| id == r.id))
            })
            .filter(|r| !self.except.iter().any(|id| id == r.id))
            .copied()
            .collect()
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The rule id.
    pub rule: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What a client must do.
    pub statement: &'static str,
    /// How to fix a client that breaks it.
    pub fix: &'static str,
    /// The `seq` of each offending exchange (see [`crate::MockCa::transcript`]).
    pub exchanges: Vec<u64>,
    /// What is wrong, one sentence per offending exchange.
    pub messages: Vec<String>,
}

/// The judge's grade of a transcript.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ca = sectigo_acme_mock::MockCa::start().await;
/// let grade = ca.grade();
/// assert!(grade.is_conformant(), "nothing sent, nothing broken");
/// assert!(grade.failures().is_empty());
/// # }
/// ```
#[derive(Debug)]
pub struct Grade {
    report: conformance::Report,
}

impl Grade {
    pub(crate) fn new(exchanges: Vec<Exchange>, rules: &Rules) -> Self {
        let transcript = conformance::view::Transcript::new(exchanges);
        let report =
            conformance::report::grade_with("the mock's transcript", &transcript, &rules.select());
        Self { report }
    }

    /// Whether no applied rule failed.
    pub fn is_conformant(&self) -> bool {
        self.report.failed().next().is_none()
    }

    /// The broken rules, in the judge's order.
    pub fn failures(&self) -> Vec<Failure> {
        self.report
            .failed()
            .map(|r| Failure {
                rule: r.id,
                severity: Severity::of(r.severity),
                statement: r.statement,
                fix: r.fix,
                exchanges: r.findings.iter().map(|f| f.seq).collect(),
                messages: r.findings.iter().map(|f| f.message.clone()).collect(),
            })
            .collect()
    }

    /// Whether the rule `id` was applied and held.
    pub fn passed(&self, id: &str) -> bool {
        self.verdict(id) == Some("pass")
    }

    /// `pass`, `fail` or `not-applicable` for the rule `id`; `None` when it was not applied.
    pub fn verdict(&self, id: &str) -> Option<&'static str> {
        self.report
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.verdict)
    }

    /// One line: exchanges, rules, passed, failed.
    pub fn summary(&self) -> String {
        self.report.summary()
    }

    /// The Markdown report: each broken rule with its offending exchanges and how to fix it,
    /// then every applied rule's verdict.
    pub fn to_markdown(&self) -> String {
        self.report.to_markdown()
    }
}
