//! The store's operations: the only way in or out of its maps, so that every index
//! (account keys, certificates by DER and by ARI id, an order's authorizations and
//! challenges) is kept in step, and each change is written to the persistent store as one
//! transaction.

use acme_proto::{Jwk, Status, Thumbprint};
use time::OffsetDateTime;

use super::persist::{Kind, Row};
use super::{Account, Authz, Challenge, IssuedCert, Order, Store, der_key};

/// Why a key change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyChangeError {
    /// The new key already belongs to this account id.
    InUse(String),
    /// The account is gone.
    NoAccount,
    /// The account's key is no longer the one the request proved (a concurrent key change
    /// won).
    KeyChanged,
}

/// Why a revocation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RevokeError {
    /// No such certificate.
    NotFound,
    /// The request is signed by neither its account nor its key.
    NotAuthorised,
    /// It is revoked already.
    AlreadyRevoked,
}

/// Who asks for a revocation.
#[derive(Clone, Copy, Debug)]
pub enum Revoker<'a> {
    /// The account with this id.
    Account(&'a str),
    /// The holder of this key (the certificate's own).
    Key(&'a Jwk),
    /// An administrator.
    Admin,
}

/// How many of each the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Accounts.
    pub accounts: usize,
    /// Orders.
    pub orders: usize,
    /// Authorizations.
    pub authzs: usize,
    /// Challenges.
    pub challenges: usize,
    /// Certificates.
    pub certs: usize,
}

impl Store {
    // ------------------------------------------------------------------ accounts

    /// The account `id`.
    pub fn account(&self, id: &str) -> Option<Account> {
        self.accounts.get(id).map(|a| a.clone())
    }

    /// The status of account `id` (cheap: no copy of the account).
    pub fn account_status(&self, id: &str) -> Option<Status> {
        self.accounts.get(id).map(|a| a.status)
    }

    /// The EAB key id account `id` bound with.
    pub fn account_eab_kid(&self, id: &str) -> Option<String> {
        self.accounts.get(id).and_then(|a| a.eab_kid.clone())
    }

    /// The account whose key has this thumbprint.
    pub fn account_by_key(&self, thumbprint: &Thumbprint) -> Option<Account> {
        let id = self.account_keys.get(thumbprint).map(|id| id.clone())?;
        self.account(&id)
    }

    /// Stores a new account under its key; when two requests race for one key, the first
    /// wins and the second gets the winner back as `Err`. The account is in the map before
    /// its key slot is released, so a loser always finds the winner.
    pub fn create_account(&self, account: Account) -> Result<(), Box<Account>> {
        // Lock order: the key index, then the accounts (as everywhere in this module).
        match self.account_keys.entry(account.jwk.thumbprint()) {
            dashmap::Entry::Occupied(taken) => {
                let winner = taken.get().clone();
                drop(taken);
                // The winner was inserted under the slot's lock, so it is there.
                let existing = self.account(&winner).unwrap_or_else(|| account.clone());
                return Err(Box::new(existing));
            }
            dashmap::Entry::Vacant(slot) => {
                self.accounts.insert(account.id.clone(), account.clone());
                slot.insert(account.id.clone());
            }
        }
        self.save(|| vec![Row::new(Kind::Account, &account.id, &account)]);
        Ok(())
    }

    /// Changes account `id` with `change` and persists it; the account as changed.
    pub fn update_account(&self, id: &str, change: impl FnOnce(&mut Account)) -> Option<Account> {
        let updated = self.accounts.get_mut(id).map(|mut a| {
            change(&mut a);
            a.clone()
        })?;
        self.save(|| vec![Row::new(Kind::Account, id, &updated)]);
        Some(updated)
    }

    /// Gives account `id` the key `new_key` in place of `old_key` (the key the request
    /// proved), moving the key index with it. Two concurrent changes cannot both win: the
    /// second finds the key changed and undoes its claim.
    pub fn change_account_key(
        &self,
        id: &str,
        old_key: &Jwk,
        new_key: Jwk,
    ) -> Result<Account, KeyChangeError> {
        let new_tp = new_key.thumbprint();
        // Lock order: the key index, then the accounts.
        match self.account_keys.entry(new_tp.clone()) {
            dashmap::Entry::Occupied(taken) => {
                return Err(KeyChangeError::InUse(taken.get().clone()));
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(id.to_owned());
            }
        }
        let changed = match self.accounts.get_mut(id) {
            None => Err(KeyChangeError::NoAccount),
            Some(a) if &a.jwk != old_key => Err(KeyChangeError::KeyChanged),
            Some(mut a) => {
                a.jwk = new_key;
                Ok(a.clone())
            }
        };
        match changed {
            Ok(updated) => {
                let old_tp = old_key.thumbprint();
                self.account_keys
                    .remove_if(&old_tp, |_, holder| holder == id);
                self.save(|| vec![Row::new(Kind::Account, id, &updated)]);
                Ok(updated)
            }
            Err(e) => {
                self.account_keys
                    .remove_if(&new_tp, |_, holder| holder == id);
                Err(e)
            }
        }
    }

    // ------------------------------------------------------------------ orders

    /// Stores a new order with its authorizations and their challenges, written together.
    pub fn create_order(&self, order: Order, authzs: Vec<Authz>, challenges: Vec<Challenge>) {
        self.save(|| {
            let mut rows = vec![Row::new(Kind::Order, &order.id, &order)];
            rows.extend(authzs.iter().map(|a| Row::new(Kind::Authz, &a.id, a)));
            rows.extend(
                challenges
                    .iter()
                    .map(|c| Row::new(Kind::Challenge, &c.id, c)),
            );
            rows
        });
        for c in challenges {
            self.challenges.insert(c.id.clone(), c);
        }
        for a in authzs {
            self.authzs.insert(a.id.clone(), a);
        }
        self.orders.insert(order.id.clone(), order);
    }

    /// The order `id`.
    pub fn order(&self, id: &str) -> Option<Order> {
        self.orders.get(id).map(|o| o.clone())
    }

    /// Every order (a copy: for checks and listings, not for request paths).
    pub fn orders(&self) -> Vec<Order> {
        self.orders.iter().map(|o| o.clone()).collect()
    }

    /// The ids of account `account`'s orders, sorted.
    pub fn order_ids_of(&self, account: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .orders
            .iter()
            .filter(|o| o.account == account)
            .map(|o| o.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Every order whose account `pick` accepts (the admin API's listings).
    pub fn orders_where(&self, pick: impl Fn(&Account) -> bool) -> Vec<Order> {
        self.orders
            .iter()
            .filter(|o| self.accounts.get(&o.account).is_some_and(|a| pick(&a)))
            .map(|o| o.clone())
            .collect()
    }

    /// Moves order `id` from ready to processing with its certificate, if `ready` still says
    /// it is ready under the entry's lock: two finalize requests cannot both win. The
    /// certificate and the order are written together, so after a crash either the order is
    /// still ready or it is processing with its certificate on disk.
    pub fn finalize_order(
        &self,
        id: &str,
        ready: impl FnOnce(&Order) -> bool,
        ready_at: OffsetDateTime,
        retry_after: Option<u64>,
        cert: IssuedCert,
    ) -> Option<Order> {
        let updated = match self.orders.get_mut(id) {
            Some(mut live) if ready(&live) => {
                live.status = Status::Processing;
                live.ready_at = Some(ready_at);
                live.retry_after = retry_after;
                live.cert = Some(cert.id.clone());
                live.clone()
            }
            _ => return None,
        };
        // RFC 9773 §5: the certificate this order replaces is marked replaced with it.
        let replaced = updated.replaces.as_deref().and_then(|ari| {
            let old = self.certs_by_ari.get(ari).map(|c| c.clone())?;
            let mut entry = self.certs.get_mut(&old)?;
            entry.replaced_by = Some(id.to_owned());
            Some(entry.clone())
        });
        self.save(|| {
            let mut rows = vec![
                Row::new(Kind::Cert, &cert.id, &cert),
                Row::new(Kind::Order, id, &updated),
            ];
            rows.extend(replaced.iter().map(|c| Row::new(Kind::Cert, &c.id, c)));
            rows
        });
        self.index_certificate(cert);
        Some(updated)
    }

    // ------------------------------------------------------------------ authorizations

    /// A valid, unexpired authorization of `account` for `identifier` (a wildcard one when
    /// `wildcard`), to be reused by a new order (RFC 8555 §7.1.3 lets a server do so; Pebble's
    /// PEBBLE_AUTHZREUSE). A scan: only profiles that reuse authorizations call it.
    pub fn reusable_authz(
        &self,
        account: &str,
        identifier: &acme_proto::Identifier,
        wildcard: bool,
        now: OffsetDateTime,
    ) -> Option<Authz> {
        self.authzs
            .iter()
            .find(|a| {
                a.account == account
                    && a.status == Status::Valid
                    && a.wildcard == wildcard
                    && a.expires > now
                    && a.identifier == *identifier
            })
            .map(|a| a.clone())
    }

    /// The authorization `id`.
    pub fn authz(&self, id: &str) -> Option<Authz> {
        self.authzs.get(id).map(|a| a.clone())
    }

    /// The status of authorization `id`.
    pub fn authz_status(&self, id: &str) -> Option<Status> {
        self.authzs.get(id).map(|a| a.status)
    }

    /// Changes authorization `id` and persists it; the authorization as changed.
    pub fn update_authz(&self, id: &str, change: impl FnOnce(&mut Authz)) -> Option<Authz> {
        let updated = self.authzs.get_mut(id).map(|mut a| {
            change(&mut a);
            a.clone()
        })?;
        self.save(|| vec![Row::new(Kind::Authz, id, &updated)]);
        Some(updated)
    }

    /// The challenge `id`.
    pub fn challenge(&self, id: &str) -> Option<Challenge> {
        self.challenges.get(id).map(|c| c.clone())
    }

    /// Moves challenge `id` from pending to processing; `None` when it is not pending (a
    /// second response to it starts nothing).
    pub fn start_challenge(&self, id: &str) -> Option<Challenge> {
        let mut c = self.challenges.get_mut(id)?;
        if c.status != Status::Pending {
            return None;
        }
        c.status = Status::Processing;
        Some(c.clone())
    }

    /// Settles a validated challenge and, if still pending, its authorization; both written
    /// together.
    pub fn settle_challenge(
        &self,
        challenge: &str,
        authz: &str,
        valid: bool,
        error: Option<serde_json::Value>,
        at: OffsetDateTime,
    ) {
        let status = if valid {
            Status::Valid
        } else {
            Status::Invalid
        };
        let c = self.challenges.get_mut(challenge).map(|mut c| {
            c.status = status;
            c.error = error;
            if valid {
                c.validated = Some(at);
            }
            c.clone()
        });
        let a = self.authzs.get_mut(authz).map(|mut a| {
            if a.status == Status::Pending {
                a.status = status;
            }
            a.clone()
        });
        self.save(|| {
            let mut rows = Vec::new();
            if let Some(c) = &c {
                rows.push(Row::new(Kind::Challenge, &c.id, c));
            }
            if let Some(a) = &a {
                rows.push(Row::new(Kind::Authz, &a.id, a));
            }
            rows
        });
    }

    // ------------------------------------------------------------------ certificates

    fn index_certificate(&self, cert: IssuedCert) {
        self.certs_by_der
            .insert(der_key(&cert.leaf_der), cert.id.clone());
        if let Some(ari) = &cert.ari_id {
            self.certs_by_ari.insert(ari.clone(), cert.id.clone());
        }
        self.certs.insert(cert.id.clone(), cert);
    }

    /// The certificate `id`.
    pub fn cert(&self, id: &str) -> Option<IssuedCert> {
        self.certs.get(id).map(|c| c.clone())
    }

    /// The certificate whose leaf is `der`.
    pub fn cert_by_der(&self, der: &[u8]) -> Option<IssuedCert> {
        let id = self.certs_by_der.get(&der_key(der)).map(|id| id.clone())?;
        self.cert(&id)
    }

    /// The certificate with the ARI identifier `ari_id` (RFC 9773 §4.1).
    pub fn cert_by_ari(&self, ari_id: &str) -> Option<IssuedCert> {
        let id = self.certs_by_ari.get(ari_id).map(|id| id.clone())?;
        self.cert(&id)
    }

    /// Every certificate (a copy: for checks and listings, not for request paths).
    pub fn certs(&self) -> Vec<IssuedCert> {
        self.certs.iter().map(|c| c.clone()).collect()
    }

    /// Every certificate whose account `pick` accepts (the admin API's listings).
    pub fn certs_where(&self, pick: impl Fn(&Account) -> bool) -> Vec<IssuedCert> {
        self.certs
            .iter()
            .filter(|c| self.accounts.get(&c.account).is_some_and(|a| pick(&a)))
            .map(|c| c.clone())
            .collect()
    }

    /// Revokes certificate `id` with RFC 5280 `reason`, if `by` may.
    pub fn revoke_certificate(
        &self,
        id: &str,
        reason: u8,
        by: Revoker<'_>,
    ) -> Result<IssuedCert, RevokeError> {
        let revoked = {
            let mut cert = self.certs.get_mut(id).ok_or(RevokeError::NotFound)?;
            let authorised = match by {
                Revoker::Account(account) => cert.account == account,
                Revoker::Key(jwk) => cert.key.as_ref() == Some(jwk),
                Revoker::Admin => true,
            };
            if !authorised {
                return Err(RevokeError::NotAuthorised);
            }
            if cert.revoked.is_some() {
                return Err(RevokeError::AlreadyRevoked);
            }
            cert.revoked = Some(reason);
            cert.clone()
        };
        // Written after the entry's lock is released.
        self.save(|| vec![Row::new(Kind::Cert, id, &revoked)]);
        Ok(revoked)
    }

    // ------------------------------------------------------------------ the whole

    /// How many of each the store holds.
    pub fn counts(&self) -> Counts {
        Counts {
            accounts: self.accounts.len(),
            orders: self.orders.len(),
            authzs: self.authzs.len(),
            challenges: self.challenges.len(),
            certs: self.certs.len(),
        }
    }

    /// Checks that the indexes agree with what they index: every account key points at its
    /// account, every certificate is indexed by its DER (and ARI id) and belongs to an order
    /// that points back at it, every order's authorizations and their challenges exist. The
    /// first disagreement found, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        for entry in self.account_keys.iter() {
            match self.accounts.get(entry.value()) {
                Some(a) if &a.jwk.thumbprint() == entry.key() => {}
                _ => return Err(format!("account key index points at {}", entry.value())),
            }
        }
        if self.certs.len() != self.certs_by_der.len() {
            return Err(format!(
                "{} certificates, {} indexed by DER",
                self.certs.len(),
                self.certs_by_der.len()
            ));
        }
        for c in self.certs.iter() {
            if self.certs_by_der.get(&der_key(&c.leaf_der)).as_deref() != Some(&c.id) {
                return Err(format!("certificate {} is not indexed by its DER", c.id));
            }
            if let Some(ari) = &c.ari_id
                && self.certs_by_ari.get(ari).as_deref() != Some(&c.id)
            {
                return Err(format!("certificate {} is not indexed by its ARI id", c.id));
            }
            match self.orders.get(&c.order) {
                Some(o) if o.cert.as_deref() == Some(c.id.as_str()) => {}
                _ => return Err(format!("certificate {} has no order pointing at it", c.id)),
            }
        }
        for o in self.orders.iter() {
            for a in &o.authzs {
                let Some(authz) = self.authzs.get(a) else {
                    return Err(format!("order {} lost authorization {a}", o.id));
                };
                if let Some(c) = authz
                    .challenges
                    .iter()
                    .find(|c| !self.challenges.contains_key(*c))
                {
                    return Err(format!("authorization {a} lost challenge {c}"));
                }
            }
            if let Some(cert) = &o.cert
                && !self.certs.contains_key(cert)
            {
                return Err(format!("order {} points at a missing certificate", o.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use acme_proto::{AccountKey, SignatureAlgorithm};

    use super::*;

    fn account(id: &str, key: &AccountKey) -> Account {
        Account {
            id: id.into(),
            jwk: key.jwk().clone(),
            status: Status::Valid,
            contact: Vec::new(),
            terms_agreed: true,
            eab_kid: None,
            eab_binding: None,
            profile: "p".into(),
        }
    }

    fn key() -> AccountKey {
        AccountKey::generate(SignatureAlgorithm::Es256).unwrap()
    }

    #[test]
    fn racing_new_accounts_for_one_key_make_one_account() {
        for _ in 0..20 {
            let store = Arc::new(Store::new(crate::Orgs::demo()));
            let k = Arc::new(key());
            let outcomes: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|i| {
                        let (store, k) = (store.clone(), k.clone());
                        s.spawn(move || store.create_account(account(&format!("a{i}"), &k)).is_ok())
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                outcomes.iter().filter(|won| **won).count(),
                1,
                "{outcomes:?}"
            );
            assert_eq!(store.counts().accounts, 1);
            store.check_invariants().unwrap();
        }
    }

    #[test]
    fn racing_key_changes_leave_one_winner_and_a_clean_index() {
        for _ in 0..20 {
            let store = Arc::new(Store::new(crate::Orgs::demo()));
            let old = key();
            store.create_account(account("a", &old)).unwrap();
            let old = Arc::new(old.jwk().clone());
            let news: Vec<AccountKey> = (0..4).map(|_| key()).collect();
            let outcomes: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = news
                    .iter()
                    .map(|n| {
                        let (store, old, jwk) = (store.clone(), old.clone(), n.jwk().clone());
                        s.spawn(move || store.change_account_key("a", &old, jwk).is_ok())
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                outcomes.iter().filter(|won| **won).count(),
                1,
                "{outcomes:?}"
            );
            store.check_invariants().unwrap();
            let now = store.account("a").unwrap().jwk;
            assert_eq!(store.account_by_key(&now.thumbprint()).unwrap().id, "a");
            assert!(store.account_by_key(&old.thumbprint()).is_none());
            for n in &news {
                if n.jwk() != &now {
                    assert!(store.account_by_key(&n.jwk().thumbprint()).is_none());
                }
            }
        }
    }
}
