//! What an administrator changes while the server runs, in one place: the admin API, `vet`
//! and the embeddable mock call these, so each rule is checked once and every change is
//! persisted the same way.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use acme_proto::Secret;

use crate::faults::FaultPlan;
use crate::http::AppState;
use crate::state::org::{EabCredential, ModelError, Orgs};

/// A credential to mint.
#[derive(Clone, Debug, Default)]
pub struct NewCredential {
    /// The department it belongs to (its index).
    pub department: usize,
    /// Names delegated to it; each must be delegated to the department.
    pub domains: Vec<String>,
    /// Whether several ACME accounts may bind with it.
    pub reusable: bool,
    /// Profiles it is valid for; empty means every profile.
    pub profiles: Vec<String>,
}

/// A minted credential. The HMAC key is here only: it is never shown again.
#[derive(Debug)]
pub struct MintedCredential {
    /// The key identifier (22 characters, as Sectigo's).
    pub kid: String,
    /// The HMAC key, base64url (86 characters, as Sectigo's).
    pub hmac_key: Secret<String>,
    /// The credential as the server holds it (live counters and flags).
    pub credential: Arc<EabCredential>,
}

impl AppState {
    /// Applies `change` to a copy of the organisation model, publishes it and persists it; on
    /// error nothing changes.
    pub fn change_orgs<T>(
        &self,
        change: impl FnOnce(&mut Orgs) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let out = self.store.orgs.update(change)?;
        self.store.save_orgs();
        Ok(out)
    }

    /// Mints a credential with a fresh key id and HMAC key.
    pub fn mint_credential(&self, request: &NewCredential) -> Result<MintedCredential, ModelError> {
        if let Some(p) = request
            .profiles
            .iter()
            .find(|p| !self.profiles.values().any(|c| &c.profile.name == *p))
        {
            return Err(ModelError::Invalid(format!("no profile {p:?} is served")));
        }
        let kid = crate::state::new_id();
        let (hmac, hmac_text) = crate::state::random_b64(64);
        let credential = self.change_orgs(|o| {
            o.add_credential(
                request.department,
                kid.clone(),
                hmac,
                &request.domains,
                request.reusable,
                request.profiles.clone(),
            )
        })?;
        tracing::info!(kid = %kid, "EAB credential created");
        Ok(MintedCredential {
            kid,
            hmac_key: Secret::new(hmac_text),
            credential,
        })
    }

    /// The credential `kid`.
    pub fn credential(&self, kid: &str) -> Result<Arc<EabCredential>, ModelError> {
        self.store
            .orgs
            .load()
            .credential(kid)
            .cloned()
            .ok_or_else(|| ModelError::NotFound(format!("no EAB credential {kid:?}")))
    }

    /// Sets (or, with `None`, clears) the fault plan of a credential's accounts.
    pub fn set_credential_faults(
        &self,
        kid: &str,
        plan: Option<FaultPlan>,
    ) -> Result<Arc<EabCredential>, ModelError> {
        let c = self.credential(kid)?;
        if let Some(plan) = &plan {
            plan.check().map_err(ModelError::Invalid)?;
        }
        c.faults.store(plan.map(Arc::new));
        self.store.save_orgs();
        Ok(c)
    }

    /// Revokes a credential: its accounts are refused on every later request.
    pub fn revoke_credential(&self, kid: &str) -> Result<Arc<EabCredential>, ModelError> {
        let c = self.credential(kid)?;
        c.revoked.store(true, Ordering::Release);
        self.store.save_orgs();
        tracing::info!(kid = %kid, "EAB credential revoked");
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AppState {
        crate::http::test_state()
    }

    #[test]
    fn minted_credentials_are_checked_against_the_department_and_profiles() {
        let state = state();
        let minted = state
            .mint_credential(&NewCredential {
                department: 0,
                domains: vec!["www.physics.example.edu".into()],
                ..NewCredential::default()
            })
            .expect("a name under the department's delegation");
        assert_eq!(minted.kid.len(), 22);
        assert_eq!(minted.hmac_key.expose().len(), 86);
        assert!(minted.credential.covers("www.physics.example.edu"));
        assert!(state.credential(&minted.kid).is_ok());

        let outside = state.mint_credential(&NewCredential {
            department: 0,
            domains: vec!["chemistry.example.edu".into()],
            ..NewCredential::default()
        });
        assert!(matches!(outside, Err(ModelError::Invalid(m)) if m.contains("chemistry")));
        let no_dept = state.mint_credential(&NewCredential {
            department: 99,
            ..NewCredential::default()
        });
        assert!(matches!(no_dept, Err(ModelError::NotFound(_))));
        let no_profile = state.mint_credential(&NewCredential {
            department: 0,
            profiles: vec!["nope".into()],
            ..NewCredential::default()
        });
        assert!(matches!(no_profile, Err(ModelError::Invalid(m)) if m.contains("nope")));
    }

    #[test]
    fn faults_and_revocation_reach_the_live_credential() {
        let state = state();
        let kid = state.store.orgs.load().credentials[0].kid.clone();
        let plan = FaultPlan::parse(
            "[[rule]]\nendpoint = \"newOrder\"\nfault = \"badNonce\"\nnth = [1]\n",
            "test",
        )
        .expect("plan");
        state
            .set_credential_faults(&kid, Some(plan.clone()))
            .expect("set");
        assert_eq!(
            state
                .credential(&kid)
                .expect("kid")
                .faults
                .load_full()
                .as_deref(),
            Some(&plan)
        );
        state.set_credential_faults(&kid, None).expect("clear");
        assert!(state.credential(&kid).expect("kid").faults.load().is_none());
        assert!(matches!(
            state.set_credential_faults("missing", None),
            Err(ModelError::NotFound(_))
        ));
        state.revoke_credential(&kid).expect("revoke");
        assert!(state.credential(&kid).expect("kid").is_revoked());
    }
}
