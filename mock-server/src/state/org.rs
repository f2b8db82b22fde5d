//! The organisation model of Sectigo's service: organisations (with the OV subject), their
//! departments, domains delegated organisation -> department -> ACME account (an EAB
//! credential), and the credentials themselves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

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
    /// Domains added to the organisation but not validated: they get real challenges.
    #[serde(default)]
    pub unvalidated_domains: Vec<String>,
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
    /// Profiles (by name) it is valid for; empty means every profile.
    #[serde(default)]
    pub profiles: Vec<String>,
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
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    /// A name no credential has delegated.
    pub undelegated_domain: String,
}

/// The OV subject of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
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

/// A department of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Department {
    /// Index in the store.
    pub id: usize,
    /// Its organisation.
    pub org: usize,
    /// Name.
    pub name: String,
    /// Domains delegated to it (lower case).
    pub domains: BTreeSet<String>,
}

/// A domain added to an organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Domain {
    /// The name (lower case; `*.` for a wildcard entry).
    pub name: String,
    /// Its organisation.
    pub org: usize,
    /// Whether Sectigo validated it (pre-validated authorizations) or not (real challenges).
    pub validated: bool,
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
    /// The department's index.
    pub department_id: usize,
    /// The department's name.
    pub department: String,
    /// Profiles it is valid for; empty means every profile.
    pub profiles: Vec<String>,
    /// A fault plan for requests of its accounts, changed at run time by the admin API.
    pub faults: arc_swap::ArcSwapOption<crate::faults::FaultPlan>,
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

    /// Whether the credential may be used with the profile `name`.
    pub fn allows_profile(&self, name: &str) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| p == name)
    }

    /// Whether an administrator revoked it.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

/// Whether `name` is one of `domains` or below one (see [`EabCredential::covers`]).
pub fn covers(domains: &BTreeSet<String>, name: &str) -> bool {
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

/// Why a change to the organisation model was refused; the admin API answers 404, 409 and
/// 400 for the first three.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An organisation, department, domain or credential named in the change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// What the change would add exists already.
    #[error("{0}")]
    Conflict(String),
    /// A value is not acceptable (not a domain name, outside the organisation, ...).
    #[error("{0}")]
    Invalid(String),
    /// The store cannot take changes (a writer panicked).
    #[error("{0}")]
    Unavailable(String),
}

/// The organisations and credentials the server knows: one immutable snapshot. Changes make
/// a new snapshot ([`OrgDirectory`]); credentials are shared between snapshots, so their
/// counters and revocation flags are live.
#[derive(Clone, Debug, Default)]
pub struct Orgs {
    /// Organisations by index.
    pub organizations: Vec<Organization>,
    /// Departments by index.
    pub departments: Vec<Department>,
    /// Domains added to organisations.
    pub domains: Vec<Domain>,
    /// Credentials.
    pub credentials: Vec<Arc<EabCredential>>,
    /// Demo printout values.
    pub demo: Option<DemoSpec>,
}

/// The built-in demo organisation.
pub const DEMO_ORG: &str = include_str!("../../../fixtures/demo-org.toml");

impl Orgs {
    /// Reads [`Orgs::from_toml`] from the file at `path` (`serve --org-file`).
    pub fn from_file(path: &std::path::Path) -> Result<Self, OrgError> {
        let text = std::fs::read_to_string(path).map_err(|e| OrgError::Invalid {
            origin: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

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
        for spec in file.organization {
            let org = orgs.add_org(
                &spec.name,
                &spec.country,
                &spec.state,
                spec.locality.clone(),
            );
            for (names, validated) in [(&spec.domains, true), (&spec.unvalidated_domains, false)] {
                for d in names {
                    orgs.add_domain(org, d, validated)
                        .map_err(|e| invalid(e.to_string()))?;
                }
            }
            for dept in spec.department {
                let dept_id = orgs
                    .add_department(org, &dept.name)
                    .map_err(|e| invalid(e.to_string()))?;
                for d in &dept.domains {
                    orgs.delegate(dept_id, d)
                        .map_err(|e| invalid(e.to_string()))?;
                }
                for eab in dept.eab {
                    let hmac_key = b64::decode_lenient(&eab.hmac_key).map_err(|_| {
                        invalid(format!(
                            "EAB credential {:?}: hmac_key is not base64url",
                            eab.kid
                        ))
                    })?;
                    orgs.add_credential(
                        dept_id,
                        eab.kid,
                        hmac_key,
                        &eab.domains,
                        eab.reusable,
                        eab.profiles,
                    )
                    .map_err(|e| invalid(e.to_string()))?;
                }
            }
        }
        Ok(orgs)
    }

    /// Adds an organisation; returns its index.
    pub fn add_org(
        &mut self,
        name: &str,
        country: &str,
        state: &str,
        locality: Option<String>,
    ) -> usize {
        let id = self.organizations.len();
        self.organizations.push(Organization {
            id,
            name: name.into(),
            country: country.into(),
            state: state.into(),
            locality,
        });
        id
    }

    /// Adds a domain to an organisation.
    pub fn add_domain(
        &mut self,
        org: usize,
        name: &str,
        validated: bool,
    ) -> Result<(), ModelError> {
        let name = name.trim().to_ascii_lowercase();
        self.organizations
            .get(org)
            .ok_or_else(|| ModelError::NotFound(format!("no organisation {org}")))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ModelError::Invalid(format!(
                "{name:?} is not a domain name"
            )));
        }
        if let Some(d) = self.domains.iter().find(|d| d.name == name) {
            return Err(ModelError::Conflict(format!(
                "domain {name} already belongs to organisation {}",
                d.org
            )));
        }
        self.domains.push(Domain {
            name,
            org,
            validated,
        });
        Ok(())
    }

    /// Marks a domain validated or not.
    pub fn set_validated(&mut self, name: &str, validated: bool) -> Result<(), ModelError> {
        let name = name.to_ascii_lowercase();
        let d = self
            .domains
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| ModelError::NotFound(format!("no domain {name}")))?;
        d.validated = validated;
        Ok(())
    }

    /// Adds a department to an organisation; returns its index.
    pub fn add_department(&mut self, org: usize, name: &str) -> Result<usize, ModelError> {
        self.organizations
            .get(org)
            .ok_or_else(|| ModelError::NotFound(format!("no organisation {org}")))?;
        let id = self.departments.len();
        self.departments.push(Department {
            id,
            org,
            name: name.into(),
            domains: BTreeSet::new(),
        });
        Ok(id)
    }

    /// Delegates a domain of the organisation (or a name below one) to a department.
    pub fn delegate(&mut self, dept: usize, domain: &str) -> Result<(), ModelError> {
        let domain = domain.trim().to_ascii_lowercase();
        let org = self
            .departments
            .get(dept)
            .map(|d| d.org)
            .ok_or_else(|| ModelError::NotFound(format!("no department {dept}")))?;
        let org_domains: BTreeSet<String> = self
            .domains
            .iter()
            .filter(|d| d.org == org)
            .map(|d| d.name.clone())
            .collect();
        if !covers(&org_domains, &domain) {
            return Err(ModelError::Invalid(format!(
                "department {:?} cannot have {domain:?}: organisation {:?} does not have it",
                self.departments[dept].name, self.organizations[org].name
            )));
        }
        self.departments[dept].domains.insert(domain);
        Ok(())
    }

    /// Adds an EAB credential for a department with domains delegated to it.
    pub fn add_credential(
        &mut self,
        dept: usize,
        kid: String,
        hmac_key: Vec<u8>,
        domains: &[String],
        reusable: bool,
        profiles: Vec<String>,
    ) -> Result<Arc<EabCredential>, ModelError> {
        let department = self
            .departments
            .get(dept)
            .ok_or_else(|| ModelError::NotFound(format!("no department {dept}")))?
            .clone();
        if self.credential(&kid).is_some() {
            return Err(ModelError::Conflict(format!(
                "EAB key id {kid:?} exists already"
            )));
        }
        let domains: BTreeSet<String> = domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        if let Some(d) = domains.iter().find(|d| !covers(&department.domains, d)) {
            return Err(ModelError::Invalid(format!(
                "EAB credential {kid:?} cannot have {d:?}: department {:?} does not have it",
                department.name
            )));
        }
        let credential = Arc::new(EabCredential {
            kid,
            hmac_key: Secret::new(hmac_key),
            org: department.org,
            department_id: department.id,
            department: department.name,
            profiles,
            faults: arc_swap::ArcSwapOption::empty(),
            domains,
            reusable,
            bindings: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        });
        self.credentials.push(credential.clone());
        Ok(credential)
    }

    /// The built-in demo organisation.
    pub fn demo() -> Self {
        // The fixture is part of the binary and covered by a test, so it parses.
        Self::from_toml(DEMO_ORG, "fixtures/demo-org.toml").unwrap_or_default()
    }

    /// A credential by key identifier.
    pub fn credential(&self, kid: &str) -> Option<&Arc<EabCredential>> {
        self.credentials.iter().find(|c| c.kid == kid)
    }

    /// The most specific domain entry that covers `name` (a wildcard is covered by its base).
    pub fn domain_of(&self, name: &str) -> Option<&Domain> {
        let base = name.strip_prefix("*.").unwrap_or(name);
        self.domains
            .iter()
            .filter(|d| {
                let entry = d.name.strip_prefix("*.").unwrap_or(&d.name);
                covers(&BTreeSet::from([entry.to_owned()]), base)
            })
            .max_by_key(|d| d.name.len())
    }

    /// The organisation a name belongs to.
    pub fn owner_of(&self, name: &str) -> Option<usize> {
        self.domain_of(name).map(|d| d.org)
    }
}

/// An [`Orgs`] as stored by the persistent store, live counters and flags included.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct OrgsRecord {
    organizations: Vec<Organization>,
    departments: Vec<Department>,
    domains: Vec<Domain>,
    credentials: Vec<CredentialRecord>,
    demo: Option<DemoSpec>,
}

#[derive(serde::Serialize, Deserialize)]
struct CredentialRecord {
    kid: String,
    hmac_key: String,
    org: usize,
    department_id: usize,
    department: String,
    profiles: Vec<String>,
    domains: BTreeSet<String>,
    reusable: bool,
    bindings: u64,
    revoked: bool,
    faults: Option<crate::faults::FaultPlan>,
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Orgs {
    /// The snapshot as a storable record.
    pub fn to_record(&self) -> OrgsRecord {
        OrgsRecord {
            organizations: self.organizations.clone(),
            departments: self.departments.clone(),
            domains: self.domains.clone(),
            credentials: self
                .credentials
                .iter()
                .map(|c| CredentialRecord {
                    kid: c.kid.clone(),
                    hmac_key: b64::encode(c.hmac_key.expose()),
                    org: c.org,
                    department_id: c.department_id,
                    department: c.department.clone(),
                    profiles: c.profiles.clone(),
                    domains: c.domains.clone(),
                    reusable: c.reusable,
                    bindings: c.bindings.load(Ordering::Acquire),
                    revoked: c.is_revoked(),
                    faults: c.faults.load_full().map(|p| (*p).clone()),
                })
                .collect(),
            demo: self.demo.clone(),
        }
    }

    /// Rebuilds a snapshot from a stored record.
    pub fn from_record(record: OrgsRecord) -> Self {
        Self {
            organizations: record.organizations,
            departments: record.departments,
            domains: record.domains,
            credentials: record
                .credentials
                .into_iter()
                .map(|c| {
                    Arc::new(EabCredential {
                        hmac_key: Secret::new(b64::decode(&c.hmac_key).unwrap_or_default()),
                        kid: c.kid,
                        org: c.org,
                        department_id: c.department_id,
                        department: c.department,
                        profiles: c.profiles,
                        faults: arc_swap::ArcSwapOption::new(c.faults.map(Arc::new)),
                        domains: c.domains,
                        reusable: c.reusable,
                        bindings: AtomicU64::new(c.bindings),
                        revoked: AtomicBool::new(c.revoked),
                    })
                })
                .collect(),
            demo: record.demo,
        }
    }
}

/// The live organisation data: readers take a snapshot without locking; administrators'
/// changes are serialized and publish a new snapshot.
#[derive(Debug)]
pub struct OrgDirectory {
    current: ArcSwap<Orgs>,
    writer: Mutex<()>,
}

impl OrgDirectory {
    /// Starts from `orgs`.
    pub fn new(orgs: Orgs) -> Self {
        Self {
            current: ArcSwap::from_pointee(orgs),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Orgs> {
        self.current.load_full()
    }

    /// Applies a change to a copy and publishes it, or leaves everything as it was on error.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Orgs) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let _guard = self
            .writer
            .lock()
            .map_err(|_| ModelError::Unavailable("organisation store poisoned".to_owned()))?;
        let mut next = Orgs::clone(&self.current.load());
        let out = change(&mut next)?;
        self.current.store(Arc::new(next));
        Ok(out)
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
        assert_eq!(orgs.owner_of("*.physics.example.edu"), Some(0));
        assert!(orgs.domain_of("physics.example.edu").unwrap().validated);
        assert_eq!(orgs.owner_of("a.physics.example.edu"), Some(0));
        assert!(!format!("{cred:?}").contains("ZGVtby"));
    }

    #[test]
    fn single_use_claims_once() {
        let orgs = Orgs::demo();
        let cred = &orgs.credentials[0];
        let mut orgs2 = orgs.clone();
        let single = orgs2
            .add_credential(
                0,
                "k".into(),
                vec![1],
                &["physics.example.edu".into()],
                false,
                vec![],
            )
            .unwrap();
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

    #[test]
    fn directory_updates_are_all_or_nothing() {
        let dir = OrgDirectory::new(Orgs::demo());
        let before = dir.load().domains.len();
        let err = dir.update(|o| {
            o.add_domain(0, "new.example.edu", true)?;
            o.add_domain(0, "physics.example.edu", true)
        });
        assert!(err.is_err());
        assert_eq!(
            dir.load().domains.len(),
            before,
            "a failed change publishes nothing"
        );
        dir.update(|o| o.add_domain(0, "new.example.edu", false))
            .unwrap();
        assert!(
            !dir.load()
                .domain_of("www.new.example.edu")
                .unwrap()
                .validated
        );
    }

    #[test]
    fn an_organisation_file_that_cannot_be_read_is_named() {
        let err = Orgs::from_file(std::path::Path::new("/nonexistent/org.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/org.toml") && err.contains("cannot read"),
            "{err}"
        );
    }
}
