//! Server state: accounts, orders, authorizations, challenges and certificates in sharded
//! maps (one entry lock at a time, no global lock), the nonce store and the organisations.

pub mod nonce;
pub mod ops;
pub mod org;
pub mod persist;
pub mod transcripts;

use acme_proto::{Identifier, Jwk, Problem, Status, Thumbprint};
use dashmap::DashMap;
use rand::RngCore;
use time::OffsetDateTime;

/// The key of the store's certificates by DER: SHA-256 of a certificate's DER.
pub fn der_key(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    out
}

/// A 22-character base64url id from 16 random bytes, the shape of Sectigo's ids.
pub fn new_id() -> String {
    random_b64(16).1
}

/// `len` random bytes and their base64url text, which never starts with `-`: a key id or HMAC
/// key given to a client as a separate argument (`--eab-kid -x...`) would read as an option
/// (and did, now and then, in this project's own tests).
pub fn random_b64(len: usize) -> (Vec<u8>, String) {
    let mut bytes = vec![0u8; len];
    loop {
        rand::rng().fill_bytes(&mut bytes);
        let text = acme_proto::b64::encode(&bytes);
        if !text.starts_with('-') {
            return (bytes, text);
        }
    }
}

/// An ACME account.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// Id in the account URL.
    pub id: String,
    /// The account key.
    pub jwk: Jwk,
    /// `valid` or `deactivated`.
    pub status: Status,
    /// Contact URLs.
    pub contact: Vec<String>,
    /// Whether the terms were agreed to.
    pub terms_agreed: bool,
    /// The EAB credential it bound with.
    pub eab_kid: Option<String>,
    /// The binding as the client sent it (a JWS MAC-signed with the credential's key), kept
    /// only where the profile echoes it in the account object (`account.echo_eab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_binding: Option<serde_json::Value>,
    /// The profile (directory) it was created under.
    pub profile: String,
}

/// An order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// Id in the order URL.
    pub id: String,
    /// Owning account id.
    pub account: String,
    /// Status as last stored; see [`Order::status_at`].
    pub status: Status,
    /// Identifiers, as requested.
    pub identifiers: Vec<Identifier>,
    /// Authorization ids, one per identifier.
    pub authzs: Vec<String>,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// While `processing`: when it becomes `valid` (wall clock, so that it survives a restart).
    pub ready_at: Option<OffsetDateTime>,
    /// Retry-After while processing, when a fault set one.
    pub retry_after: Option<u64>,
    /// Certificate id, set at finalize (revealed once valid).
    pub cert: Option<String>,
    /// Why it is invalid.
    pub error: Option<Problem>,
    /// The certificate profile it was made under (draft-ietf-acme-profiles); empty: none.
    #[serde(default)]
    pub profile: String,
    /// The ARI identifier of the certificate it replaces (RFC 9773 §5).
    #[serde(default)]
    pub replaces: Option<String>,
}

impl Order {
    /// The status now: a processing order whose time has come is valid.
    pub fn status_at(&self, now: OffsetDateTime) -> Status {
        match (self.status, self.ready_at) {
            (Status::Processing, Some(at)) if now >= at => Status::Valid,
            (status, _) => status,
        }
    }
}

/// An authorization.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Authz {
    /// Id in the authz URL.
    pub id: String,
    /// Owning account id.
    pub account: String,
    /// The identifier (without `*.`).
    pub identifier: Identifier,
    /// Whether the order asked for the wildcard.
    pub wildcard: bool,
    /// Status.
    pub status: Status,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// Challenge ids.
    pub challenges: Vec<String>,
}

/// A challenge.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// Id in the challenge URL.
    pub id: String,
    /// Owning authorization id.
    pub authz: String,
    /// Challenge type.
    pub kind: acme_proto::ChallengeType,
    /// Status.
    pub status: Status,
    /// Token, for challenges that have one.
    pub token: Option<String>,
    /// When it was validated.
    pub validated: Option<OffsetDateTime>,
    /// Why validation failed; `{}` where a fault asks for Sectigo's empty error object.
    pub error: Option<serde_json::Value>,
}

/// An issued certificate.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IssuedCert {
    /// Id in the certificate URL.
    pub id: String,
    /// Owning account id.
    pub account: String,
    /// The names it is for.
    pub names: Vec<String>,
    /// Serial number, hex.
    pub serial: String,
    /// The order it was issued for.
    pub order: String,
    /// PEM of the leaf; chains are built at download ([`crate::ca::Ca::chain`]).
    pub leaf_pem: String,
    /// Its issuing path.
    pub family: crate::ca::Family,
    /// DER of the leaf, to match revocation requests.
    pub leaf_der: Vec<u8>,
    /// The certificate's public key as a JWK, for revocation by certificate key.
    pub key: Option<Jwk>,
    /// RFC 5280 reason code once revoked.
    pub revoked: Option<u8>,
    /// The ARI certificate identifier (RFC 9773 §4.1).
    pub ari_id: Option<String>,
    /// Validity, for ARI's suggested window.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
    /// The order that replaced it (RFC 9773 §5), set when that order is finalized.
    #[serde(default)]
    pub replaced_by: Option<String>,
}

/// The maps of the server's state: sharded (no global lock) and hashed with foldhash, which
/// costs a fraction of the standard SipHash on the short ids every request looks up.
pub type Map<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

/// All mutable server state. The maps are private: [`ops`] holds the operations that keep
/// their indexes in step and persist each change as one transaction.
#[derive(Debug)]
pub struct Store {
    /// Accounts by id.
    accounts: Map<String, Account>,
    /// Account ids by key thumbprint.
    account_keys: Map<Thumbprint, String>,
    /// Orders by id.
    orders: Map<String, Order>,
    /// Authorizations by id.
    authzs: Map<String, Authz>,
    /// Challenges by id.
    challenges: Map<String, Challenge>,
    /// Certificates by id.
    certs: Map<String, IssuedCert>,
    /// Certificate ids by the SHA-256 of the leaf DER, for revokeCert.
    certs_by_der: Map<[u8; 32], String>,
    /// Certificate ids by ARI certificate identifier (RFC 9773 §4.1).
    certs_by_ari: Map<String, String>,
    /// Nonces.
    pub nonces: nonce::NonceStore,
    /// Organisations and credentials.
    pub orgs: org::OrgDirectory,
    /// Recorded exchanges.
    pub transcripts: transcripts::Transcripts,
    /// The persistent store, when the server keeps its state on disk.
    pub persist: Option<persist::Persist>,
}

impl Store {
    /// An empty store over `orgs`.
    pub fn new(orgs: org::Orgs) -> Self {
        Self {
            accounts: Map::default(),
            account_keys: Map::default(),
            orders: Map::default(),
            authzs: Map::default(),
            challenges: Map::default(),
            certs: Map::default(),
            certs_by_der: Map::default(),
            certs_by_ari: Map::default(),
            nonces: nonce::NonceStore::new(1 << 16, std::time::Duration::from_secs(3600)),
            orgs: org::OrgDirectory::new(orgs),
            transcripts: transcripts::Transcripts::default(),
            persist: None,
        }
    }

    /// Keeps memory bounded on a long-lived server: drops the oldest orders beyond `keep`
    /// (except those still processing) with their authorizations, challenges and certificates.
    /// Returns how many orders went. The persistent store, if any, keeps them.
    pub fn prune(&self, keep: usize) -> usize {
        let total = self.orders.len();
        if total <= keep {
            return 0;
        }
        let now = OffsetDateTime::now_utc();
        let mut candidates: Vec<(OffsetDateTime, String)> = self
            .orders
            .iter()
            .filter(|o| o.status_at(now) != Status::Processing)
            .map(|o| (o.expires, o.id.clone()))
            .collect();
        candidates.sort_unstable();
        let mut dropped = 0;
        let mut gone_authzs = Vec::new();
        for (_, id) in candidates.into_iter().take(total - keep) {
            let Some((_, order)) = self.orders.remove(&id) else {
                continue;
            };
            gone_authzs.extend(order.authzs.iter().cloned());
            if let Some(cert) = &order.cert
                && let Some((_, c)) = self.certs.remove(cert)
            {
                self.certs_by_der.remove(&der_key(&c.leaf_der));
                if let Some(ari) = &c.ari_id {
                    self.certs_by_ari.remove(ari);
                }
            }
            dropped += 1;
        }
        // A reused authorization (Pebble's PEBBLE_AUTHZREUSE) stays while a kept order has it.
        let kept: std::collections::HashSet<String> =
            self.orders.iter().flat_map(|o| o.authzs.clone()).collect();
        for authz in gone_authzs.iter().filter(|a| !kept.contains(*a)) {
            if let Some((_, a)) = self.authzs.remove(authz) {
                for c in &a.challenges {
                    self.challenges.remove(c);
                }
            }
        }
        dropped
    }

    /// Writes the rows `rows` makes to the persistent store, in one transaction. Without a
    /// store `rows` is not called: serializing records nobody keeps was 2% of the CPU time.
    pub fn save(&self, rows: impl FnOnce() -> Vec<persist::Row>) {
        if let Some(p) = &self.persist {
            p.write(&rows());
        }
    }

    /// Whether changes are written to a persistent store.
    pub fn persisting(&self) -> bool {
        self.persist.is_some()
    }

    /// Writes the organisation snapshot to the persistent store, if there is one.
    pub fn save_orgs(&self) {
        if let Some(p) = &self.persist {
            p.write_orgs(&self.orgs.load().to_record());
        }
    }

    /// Opens the persistent store at `path` and loads what it holds; organisations from the
    /// store replace `self.orgs` when it has them, else the current ones are written to it.
    pub fn attach(&mut self, path: &std::path::Path) -> Result<(), String> {
        let p = persist::Persist::open(path)?;
        if let Some(record) = p.load_orgs::<org::OrgsRecord>()? {
            self.orgs = org::OrgDirectory::new(org::Orgs::from_record(record));
        } else {
            p.write_orgs(&self.orgs.load().to_record());
        }
        for a in p.load::<Account>(persist::Kind::Account)? {
            self.account_keys.insert(a.jwk.thumbprint(), a.id.clone());
            self.accounts.insert(a.id.clone(), a);
        }
        for o in p.load::<Order>(persist::Kind::Order)? {
            self.orders.insert(o.id.clone(), o);
        }
        for a in p.load::<Authz>(persist::Kind::Authz)? {
            self.authzs.insert(a.id.clone(), a);
        }
        for c in p.load::<Challenge>(persist::Kind::Challenge)? {
            self.challenges.insert(c.id.clone(), c);
        }
        for c in p.load::<IssuedCert>(persist::Kind::Cert)? {
            self.certs_by_der.insert(der_key(&c.leaf_der), c.id.clone());
            if let Some(ari) = &c.ari_id {
                self.certs_by_ari.insert(ari.clone(), c.id.clone());
            }
            self.certs.insert(c.id.clone(), c);
        }
        for e in p.load_exchanges()? {
            self.transcripts.restore(e);
        }
        self.persist = Some(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys_never_start_with_a_dash() {
        // One text in 64 would start with `-` if nothing prevented it.
        for _ in 0..2_000 {
            let id = new_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
        let (bytes, text) = random_b64(64);
        assert_eq!(acme_proto::b64::encode(&bytes), text);
        assert_eq!(text.len(), 86);
    }
}
