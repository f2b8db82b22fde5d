//! The admin API's bodies, typed: the server writes them, `acme-harness admin` and the
//! project's tests read them. One definition, so the two sides cannot drift.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::faults::{FaultEvent, FaultPlan};

/// `POST /organizations`: a new organisation (its validated subject).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// The organisation's name (O).
    pub name: String,
    /// Two-letter ISO 3166 country code (C).
    pub country: String,
    /// State or province (ST).
    pub state: String,
    /// Locality (L).
    #[serde(default)]
    pub locality: Option<String>,
}

/// `POST /organizations/{org}/domains`: a domain of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// The name (`*.` for a wildcard entry).
    pub name: String,
    /// Whether its validation (DCV) is done; default true.
    #[serde(default = "yes")]
    pub validated: bool,
}

fn yes() -> bool {
    true
}

/// `PUT /domains/{name}/validation`: a domain's validation done or undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetValidation {
    /// Whether its validation is done.
    pub validated: bool,
}

/// `POST /organizations/{org}/departments`: a department of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    /// The department's name.
    pub name: String,
}

/// `POST /departments/{dept}/delegations`: a domain delegated to a department.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDelegation {
    /// The domain, one of the organisation's.
    pub domain: String,
}

/// `POST /eab`: mint an EAB credential (an ACME account's key id and HMAC key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEab {
    /// The department whose domains it covers.
    pub department: usize,
    /// The delegated domains it covers.
    pub domains: Vec<String>,
    /// Whether it binds more than one ACME account.
    #[serde(default)]
    pub reusable: bool,
    /// The profiles (directory names) it may be used with; empty: every one.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// `POST /certificates/{id}/revoke`: the reason (RFC 5280 code), default 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeCertificate {
    /// The CRL reason code.
    #[serde(default)]
    pub reason: Option<u8>,
}

/// `{"id": N}`: what creating an organisation or a department answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The new id.
    pub id: usize,
}

/// A domain of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainView {
    /// The name (`*.` for a wildcard entry).
    pub name: String,
    /// Whether it is validated (pre-validated authorizations).
    pub validated: bool,
}

/// A department with its delegated domains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentView {
    /// Its id.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// Domains delegated to it.
    pub domains: BTreeSet<String>,
}

/// An organisation, as `GET /admin/organizations` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationView {
    /// Its id.
    pub id: usize,
    /// O.
    pub name: String,
    /// C.
    pub country: String,
    /// ST.
    pub state: String,
    /// L.
    pub locality: Option<String>,
    /// Its domains.
    pub domains: Vec<DomainView>,
    /// Its departments.
    pub departments: Vec<DepartmentView>,
}

/// A delegation made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationView {
    /// The department.
    pub department: usize,
    /// The domain delegated to it.
    pub domain: String,
}

/// A freshly minted credential: the only answer that ever carries the HMAC key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintedView {
    /// The key id.
    pub eab_kid: String,
    /// The HMAC key (base64url).
    pub eab_hmac_key: String,
    /// Whether several accounts may bind with it.
    pub reusable: bool,
}

/// A credential as listed (never its HMAC key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialView {
    /// The key id.
    pub eab_kid: String,
    /// Its organisation.
    pub organization: usize,
    /// Its department's id.
    pub department: usize,
    /// Its department's name.
    pub department_name: String,
    /// Names delegated to it.
    pub domains: BTreeSet<String>,
    /// Whether several accounts may bind with it.
    pub reusable: bool,
    /// Profiles it is valid for; empty: every one.
    pub profiles: Vec<String>,
    /// Accounts bound with it.
    pub accounts_bound: u64,
    /// Whether an administrator revoked it.
    pub revoked: bool,
    /// Its fault plan.
    pub faults: Option<FaultPlan>,
}

impl From<&crate::state::org::EabCredential> for CredentialView {
    fn from(c: &crate::state::org::EabCredential) -> Self {
        Self {
            eab_kid: c.kid.clone(),
            organization: c.org,
            department: c.department_id,
            department_name: c.department.clone(),
            domains: c.domains.clone(),
            reusable: c.reusable,
            profiles: c.profiles.clone(),
            accounts_bound: c.bindings.load(std::sync::atomic::Ordering::Relaxed),
            revoked: c.is_revoked(),
            faults: c.faults.load_full().map(|p| (*p).clone()),
        }
    }
}

/// A certificate issued through a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// Its id (in its URL).
    pub id: String,
    /// Serial number, hex.
    pub serial: String,
    /// Its names.
    pub names: Vec<String>,
    /// The account it was issued to.
    pub account: String,
    /// Whether it is revoked.
    pub revoked: bool,
    /// The RFC 5280 reason, once revoked.
    pub reason: Option<u8>,
}

/// An order of a credential's accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Its id.
    pub id: String,
    /// Its account.
    pub account: String,
    /// Its status now.
    pub status: acme_proto::Status,
    /// Its names.
    pub identifiers: Vec<String>,
    /// Its certificate id, once finalized.
    pub certificate: Option<String>,
}

/// What revoking a certificate answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedView {
    /// The certificate id.
    pub id: String,
    /// Always true.
    pub revoked: bool,
    /// The reason.
    pub reason: Option<u8>,
}

/// The faults fired so far, with the server's seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEventsView {
    /// The seed: `serve --seed` replays the run.
    pub seed: u64,
    /// Each fault that fired.
    pub events: Vec<FaultEvent>,
}

/// Every refusal: `{"error": "..."}` with a 4xx status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    /// What is wrong, naming the field or thing.
    pub error: String,
}

// The text forms `acme-harness admin` prints: one per view, beside the JSON it prints with
// `--json`, so the CLI holds no formatting of its own.

impl std::fmt::Display for OrganizationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}  {} (C={}, ST={})",
            self.id, self.name, self.country, self.state
        )?;
        for d in &self.domains {
            let state = if d.validated {
                "validated"
            } else {
                "not validated"
            };
            write!(f, "\n    domain {} ({state})", d.name)?;
        }
        for d in &self.departments {
            let domains: Vec<&str> = d.domains.iter().map(String::as_str).collect();
            write!(
                f,
                "\n    department {} {}: {}",
                d.id,
                d.name,
                domains.join(", ")
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for MintedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EAB credential created. The HMAC key is shown this once: keep it like a private \
             key.\n  key id:   {}\n  HMAC key: {}",
            self.eab_kid, self.eab_hmac_key
        )
    }
}

impl std::fmt::Display for CredentialView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let domains: Vec<&str> = self.domains.iter().map(String::as_str).collect();
        write!(
            f,
            "{}  dept {} ({})  {}  accounts {}{}{}\n    domains: {}",
            self.eab_kid,
            self.department,
            self.department_name,
            if self.reusable {
                "reusable"
            } else {
                "single-use"
            },
            self.accounts_bound,
            if self.revoked { "  REVOKED" } else { "" },
            if self.faults.is_some() {
                "  faults set"
            } else {
                ""
            },
            domains.join(", ")
        )
    }
}

impl std::fmt::Display for CertificateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}  serial {}  {}{}",
            self.id,
            self.serial,
            self.names.join(", "),
            if self.revoked { "  REVOKED" } else { "" }
        )
    }
}

impl std::fmt::Display for FaultEventsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}", self.seed)?;
        for e in &self.events {
            write!(
                f,
                "\n{}  {:?} #{}  {:?}",
                e.scope, e.endpoint, e.ordinal, e.fault
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_name_what_an_administrator_looks_for() {
        let org = OrganizationView {
            id: 2,
            name: "Example College".into(),
            country: "US".into(),
            state: "Ohio".into(),
            locality: None,
            domains: vec![DomainView {
                name: "college.example".into(),
                validated: false,
            }],
            departments: vec![DepartmentView {
                id: 3,
                name: "Library".into(),
                domains: ["lib.college.example".to_owned()].into(),
            }],
        };
        assert_eq!(
            org.to_string(),
            "2  Example College (C=US, ST=Ohio)\n    domain college.example (not validated)\n    \
             department 3 Library: lib.college.example"
        );
        let cred = CredentialView {
            eab_kid: "kid1".into(),
            organization: 2,
            department: 3,
            department_name: "Library".into(),
            domains: ["lib.college.example".to_owned()].into(),
            reusable: false,
            profiles: Vec::new(),
            accounts_bound: 1,
            revoked: true,
            faults: None,
        };
        assert_eq!(
            cred.to_string(),
            "kid1  dept 3 (Library)  single-use  accounts 1  REVOKED\n    domains: lib.college.example"
        );
        let minted = MintedView {
            eab_kid: "kid1".into(),
            eab_hmac_key: "hmac".into(),
            reusable: false,
        };
        assert!(minted.to_string().contains("shown this once"));
        assert!(minted.to_string().ends_with("HMAC key: hmac"));
    }
}
