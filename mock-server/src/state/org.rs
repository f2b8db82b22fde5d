//! The organisation model of Sectigo's service: organisations (with the OV subject), their
//! departments, domains delegated organisation -> department -> ACME account (an EAB
//! credential), and the credentials themselves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use acme_proto::{Secret, b64};
use serde::Deserialize;

/// The organisation file (fixtures/demo-org.toml is the default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFile {
    /// The organisations.
    #[serde(default)]
    pub organization: Vec<OrgSpec>,
    /// Values for the demo printout.
    #[serde(default)]
    pub demo: Option<DemoSpec>,
}

/// One organisation as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Organisation name (subject O).
    pub name: String,
    /// Country (subject C).
    pub country: String,
    /// State or province (subject ST).
    pub state: String,
    /// Locality (subject L).
    #[serde(default)]
    pub locality: Option<String>,
    /// Domains added to and validated for the organisation.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Departments.
    #[serde(default)]
    pub department: Vec<DeptSpec>,
}

/// A department as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeptSpec {
    /// Department name.
    pub name: String,
    /// Domains delegated to the department.
    #[serde(default)]
    pub domains: Vec<String>,
    /// The department's ACME accounts (EAB credentials).
    #[serde(default)]
    pub eab: Vec<EabSpec>,
}

/// An EAB credential as written in the file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EabSpec {
    /// Key identifier.
    pub kid: String,
    /// HMAC key, base64url.
    pub hmac_key: String,
    /// Domains delegated to this ACME account.
    pub domains: Vec<String>,
    /// Whether more than one ACME account may bind with it.
    #[serde(default)]
    pub reusable: bool,
}

impl std::fmt::Debug for EabSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabSpec")
            .field("kid", &self.kid)
            .field("hmac_key", &"..")
            .field("domains", &self.domains)
            .field("reusable", &self.reusable)
            .finish()
    }
}

/// Demo values printed at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    /// A name no credential has delegated.
    pub undelegated_domain: String,
}

/// The OV subject of an organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Index in the store.
    pub id: usize,
    /// Name (O).
    pub name: String,
    /// Country (C).
    pub country: String,
    /// State (ST).
    pub state: String,
    /// Locality (L).
    pub locality: Option<String>,
}

/// An EAB credential: what Sectigo calls the department's ACME account.
#[derive(Debug)]
pub struct EabCredential {
    /// Key identifier.
    pub kid: String,
    /// The HMAC key.
    pub hmac_key: Secret<Vec<u8>>,
    /// The organisation of the department.
    pub org: usize,
    /// The department's name.
    pub department: String,
    /// Delegated domains (lower case; `*.` entries delegate wildcards).
    pub domains: BTreeSet<String>,
    /// Whether several ACME accounts may bind with it.
    pub reusable: bool,
    /// How many accounts have bound with it.
    pub bindings: AtomicU64,
    /// Set by an administrator: every request of the bound accounts is refused.
    pub revoked: AtomicBool,
}

impl EabCredential {
    /// Claims the credential for one more account. A single-use credential is claimed once.
    pub fn claim(&self) -> bool {
        if self.reusable {
            self.bindings.fetch_add(1, Ordering::AcqRel);
            true
        } else {
            self.bindings
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }
    }

    /// Whether `name` (lower case, possibly `*.`) is delegated: equal to a delegated domain or
    /// below one; a wildcard needs a `*.` delegation of the same or a parent domain.
    pub fn covers(&self, name: &str) -> bool {
        covers(&self.domains, name)
    }
}

fn covers(domains: &BTreeSet<String>, name: &str) -> bool {
    let under = |name: &str, domain: &str| {
        name == domain
            || (name.len() > domain.len()
                && name.ends_with(domain)
                && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
    };
    match name.strip_prefix("*.") {
        Some(base) => domains
            .iter()
            .filter_map(|d| d.strip_prefix("*."))
            .any(|d| under(base, d)),
        None => domains
            .iter()
            .filter(|d| !d.starts_with("*."))
            .any(|d| under(name, d)),
    }
}

/// Why an organisation file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgError {
    /// The TOML is invalid.
    #[error("invalid organisation file {origin}: {message}")]
    Invalid {
        /// File or built-in name.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// The organisations and credentials the server knows.
#[derive(Debug, Default)]
pub struct Orgs {
    /// Organisations by index.
    pub organizations: Vec<Organization>,
    /// Credentials.
    pub credentials: Vec<EabCredential>,
    /// Demo printout values.
    pub demo: Option<DemoSpec>,
    /// Which organisation each validated domain belongs to.
    pub domain_owner: Vec<(String, usize)>,
}

/// The built-in demo organisation.
pub const DEMO_ORG: &str = include_str!("../../../fixtures/demo-org.toml");

impl Orgs {
    /// Parses and checks an organisation file: credentials only get domains their department
    /// has, departments only domains their organisation has.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, OrgError> {
        let invalid = |message: String| OrgError::Invalid {
            origin: origin.into(),
            message,
        };
        let file: OrgFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut orgs = Self {
            demo: file.demo,
            ..Self::default()
        };
        for (id, spec) in file.organization.into_iter().enumerate() {
            let org_domains: BTreeSet<String> = spec
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect();
            for d in &org_domains {
                orgs.domain_owner.push((d.clone(), id));
            }
            for dept in spec.department {
                let dept_domains: BTreeSet<String> = dept
                    .domains
                    .iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect();
                if let Some(d) = dept_domains.iter().find(|d| !covers(&org_domains, d)) {
                    return Err(invalid(format!(
                        "department {:?} has domain {d:?}, which organisation {:?} does not have",
                        dept.name, spec.name
                    )));
                }
                for eab in dept.eab {
                    let domains: BTreeSet<String> =
                        eab.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
                    if let Some(d) = domains.iter().find(|d| !covers(&dept_domains, d)) {
                        return Err(invalid(format!(
                            "EAB credential {:?} has domain {d:?}, which department {:?} does not have",
                            eab.kid, dept.name
                        )));
                    }
                    let hmac_key = b64::decode_lenient(&eab.hmac_key).map_err(|_| {
                        invalid(format!(
                            "EAB credential {:?}: hmac_key is not base64url",
                            eab.kid
                        ))
                    })?;
                    orgs.credentials.push(EabCredential {
                        kid: eab.kid,
                        hmac_key: Secret::new(hmac_key),
                        org: id,
                        department: dept.name.clone(),
                        domains,
                        reusable: eab.reusable,
                        bindings: AtomicU64::new(0),
                        revoked: AtomicBool::new(false),
                    });
                }
            }
            orgs.organizations.push(Organization {
                id,
                name: spec.name,
                country: spec.country,
                state: spec.state,
                locality: spec.locality,
            });
        }
        Ok(orgs)
    }

    /// The built-in demo organisation.
    pub fn demo() -> Self {
        // The fixture is part of the binary and covered by a test, so it parses.
        Self::from_toml(DEMO_ORG, "fixtures/demo-org.toml").unwrap_or_default()
    }

    /// A credential by key identifier.
    pub fn credential(&self, kid: &str) -> Option<&EabCredential> {
        self.credentials.iter().find(|c| c.kid == kid)
    }

    /// The organisation a (validated) name belongs to.
    pub fn owner_of(&self, name: &str) -> Option<usize> {
        self.domain_owner
            .iter()
            .filter(|(d, _)| covers(&BTreeSet::from([d.clone()]), name))
            .max_by_key(|(d, _)| d.len())
            .map(|(_, org)| *org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn delegation_covers_subdomains_and_wildcards_separately() {
        let d = set(&["physics.example.edu", "*.lab.example.edu"]);
        assert!(covers(&d, "physics.example.edu"));
        assert!(covers(&d, "www.physics.example.edu"));
        assert!(!covers(&d, "xphysics.example.edu"));
        assert!(!covers(&d, "example.edu"));
        assert!(
            !covers(&d, "*.physics.example.edu"),
            "wildcards need their own delegation"
        );
        assert!(covers(&d, "*.lab.example.edu"));
        assert!(covers(&d, "*.a.lab.example.edu"));
        assert!(
            !covers(&d, "lab.example.edu"),
            "a wildcard delegation covers only wildcards"
        );
    }

    #[test]
    fn demo_fixture_loads() {
        let orgs = Orgs::from_toml(DEMO_ORG, "demo").unwrap();
        assert_eq!(orgs.organizations.len(), 2);
        let cred = orgs.credential("DemoPhysicsKeyId0000Ab").unwrap();
        assert_eq!(cred.hmac_key.expose().len(), 64);
        assert!(cred.reusable);
        assert!(cred.covers("www.physics.example.edu"));
        assert!(!cred.covers("chemistry.example.edu"));
        assert_eq!(orgs.owner_of("institute.example.org"), Some(1));
        assert_eq!(orgs.owner_of("a.physics.example.edu"), Some(0));
        assert!(!format!("{cred:?}").contains("ZGVtby"));
    }

    #[test]
    fn single_use_claims_once() {
        let orgs = Orgs::demo();
        let cred = &orgs.credentials[0];
        let single = EabCredential {
            kid: "k".into(),
            hmac_key: Secret::new(vec![1]),
            org: 0,
            department: "d".into(),
            domains: cred.domains.clone(),
            reusable: false,
            bindings: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        };
        assert!(single.claim());
        assert!(!single.claim());
        assert!(cred.claim() && cred.claim());
    }

    #[test]
    fn delegation_outside_the_department_is_refused() {
        let text = r#"
[[organization]]
name = "O"
country = "US"
state = "S"
domains = ["a.example"]
[[organization.department]]
name = "D"
domains = ["a.example"]
[[organization.department.eab]]
kid = "k"
hmac_key = "AAAA"
domains = ["b.example"]
"#;
        let err = Orgs::from_toml(text, "t").unwrap_err().to_string();
        assert!(err.contains("b.example"), "{err}");
    }
}
