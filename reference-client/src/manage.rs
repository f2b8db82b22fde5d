//! The client's day-to-day operations on its stored state: what `acme-harness client` runs.
//!
//! A [`Workspace`] is the state root (account stores per directory URL, default certificate
//! folders) together with one server's directory URL. Each operation returns a report that
//! serializes to the command's JSON answer and displays as its text answer, so scripts and
//! people read the same facts. Usage mistakes (a missing flag, an unreadable file) are
//! [`Error::InvalidInput`] naming the flag or file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acme_proto::eab::MacAlgorithm;
use acme_proto::{Secret, SignatureAlgorithm, Status, Thumbprint};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::{CertInfo, WrittenFiles, pkcs12, read_csr, renewal_due, write_pem_files};
use crate::solver::Solver;
use crate::store::{AccountState, AccountStore, OrderRecord};
use crate::{
    ACCOUNT_KEY_TYPES, Account, CertKeyType, Client, CsrSource, EabCredential, Error, IssueRequest,
    NewAccountOptions, REVOCATION_REASONS, Result, generate_account_key, write_private,
};

/// The state root and the server it keeps state for.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    server: String,
}

/// How to register an account when the store has none: the `register` flags.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Account key type: es256, es384, rs256 or eddsa.
    pub key_type: String,
    /// RSA modulus bits, for rs256.
    pub rsa_bits: u32,
    /// The EAB key id.
    pub eab_kid: Option<String>,
    /// The file holding the EAB HMAC key.
    pub eab_hmac_key_file: Option<PathBuf>,
    /// The environment variable that may hold the EAB HMAC key instead.
    pub eab_hmac_key_env: &'static str,
    /// The EAB MAC algorithm name (HS256 when unknown).
    pub eab_alg: String,
    /// Contact addresses (`mailto:` is added when missing).
    pub emails: Vec<String>,
    /// Agree to the CA's terms of service.
    pub agree_tos: bool,
}

/// What to certify and where to put it: the `issue` and `renew` flags.
#[derive(Debug, Clone, Default)]
pub struct CertRequest {
    /// Names (`-d`); taken from the CSR when empty and a CSR is given.
    pub names: Vec<String>,
    /// A CSR file to use instead of a generated key.
    pub csr: Option<PathBuf>,
    /// Certificate key type when the client makes the key: p256, p384, rsa2048/3072/4096.
    pub key_type: String,
    /// Output folder (default: `<root>/live/<first name>`).
    pub out: Option<PathBuf>,
    /// Also write a password-protected PKCS#12 file with this password.
    pub pfx_password: Option<Secret<String>>,
    /// The preferred chain's top issuer name.
    pub preferred_chain: Option<String>,
}

/// A certificate obtained and written.
#[derive(Debug, Serialize)]
pub struct Obtained {
    /// The order URL.
    pub order: String,
    /// The certificate URL.
    pub certificate_url: Option<String>,
    /// The leaf's facts.
    pub certificate: CertInfo,
    /// The top issuer of every chain the CA offered.
    pub chains_offered: Vec<Option<String>>,
    /// The files written.
    pub files: WrittenFiles,
}

/// An account registered (or found).
#[derive(Debug, Serialize)]
pub struct Registered {
    /// The account URL.
    pub account: String,
    /// Whether this call created it.
    pub created: bool,
    /// Its status.
    pub status: Status,
    /// The EAB key id it was bound with.
    pub eab_kid: Option<String>,
    /// Where its key and state are.
    pub state_dir: PathBuf,
    #[serde(skip)]
    what: &'static str,
    #[serde(skip)]
    key: String,
}

/// The answer to `renew`: renewed, or why not.
#[derive(Debug, Serialize)]
pub struct Renewal {
    /// Whether a new certificate was obtained.
    pub renewed: bool,
    /// Why (the lifetime rule or the CA's renewal window).
    pub reason: String,
    /// The new certificate, or the current one's facts.
    #[serde(flatten)]
    pub details: RenewalDetails,
}

/// The certificate a [`Renewal`] is about.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RenewalDetails {
    /// Not due: the current certificate.
    Kept {
        /// Its facts.
        certificate: CertInfo,
    },
    /// Renewed.
    Renewed(Obtained),
}

/// A certificate revoked.
#[derive(Debug, Serialize)]
pub struct Revoked {
    /// Its serial, hex.
    pub serial: String,
    /// The reason code given.
    pub reason: Option<u8>,
    /// "the account" or "the certificate's key".
    pub signed_by: &'static str,
}

/// An account deactivated.
#[derive(Debug, Serialize)]
pub struct Deactivated {
    /// The account URL.
    pub account: String,
}

/// An account key replaced.
#[derive(Debug, Serialize)]
pub struct RolledOver {
    /// The account URL.
    pub account: String,
    /// The new key, described.
    pub key: String,
    /// Where the old key is kept.
    #[serde(skip)]
    pub old_key: PathBuf,
}

/// The account and the orders this client made with it.
#[derive(Debug, Serialize)]
pub struct AccountReport {
    /// The account URL.
    pub account: String,
    /// Its status.
    pub status: Status,
    /// Its contacts.
    pub contact: Option<Vec<String>>,
    /// Its key, described.
    pub key: String,
    /// Its key's thumbprint.
    pub thumbprint: Thumbprint,
    /// The EAB key id it was bound with.
    pub eab_kid: Option<String>,
    /// The last 20 orders, newest first.
    pub orders: Vec<OrderSummary>,
}

/// One order made by this client, as it stands now.
#[derive(Debug, Serialize)]
pub struct OrderSummary {
    /// The order URL.
    pub url: String,
    /// Its names.
    pub names: Vec<String>,
    /// Its status now, or why it is unknown.
    pub status: String,
    /// Where its certificate was written.
    pub out: Option<PathBuf>,
    /// The written certificate's notAfter.
    pub not_after: Option<String>,
    #[serde(skip)]
    at: OffsetDateTime,
}

fn usage(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// The account key algorithm named `name` (es256, es384, rs256, eddsa; ed25519 for eddsa).
pub fn account_key_type(name: &str) -> Result<SignatureAlgorithm> {
    if name.eq_ignore_ascii_case("ed25519") {
        return Ok(SignatureAlgorithm::EdDsa);
    }
    ACCOUNT_KEY_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            usage(format!(
                "unknown account key type {name:?}: use es256, es384, rs256 or eddsa"
            ))
        })
}

/// The revocation reason code named `name` (RFC 5280 names, case-insensitive).
pub fn revocation_reason(name: &str) -> Result<u8> {
    REVOCATION_REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let known: Vec<&str> = REVOCATION_REASONS.iter().map(|(n, _)| *n).collect();
            usage(format!(
                "unknown --reason {name:?}: use one of {}",
                known.join(", ")
            ))
        })
}

/// Reads a secret from `file` (named by `flag`) or else the environment variable `env`;
/// a trailing newline (as `echo` writes) is not part of it. `None` when neither is given.
pub fn secret_from_file_or_env(
    flag: &str,
    file: Option<&Path>,
    env: &str,
) -> Result<Option<Secret<String>>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| usage(format!("{flag} {}: {e}", path.display())))?,
        None => match std::env::var(env) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
    };
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.is_empty() {
        return Err(usage(format!("the secret in {flag} or {env} is empty")));
    }
    Ok(Some(Secret::new(text)))
}

/// The DER of the first certificate in the PEM file at `path`.
pub fn first_cert_der(path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .and_then(|c| c.ok())
        .map(|c| c.to_vec())
        .ok_or_else(|| usage(format!("{} holds no PEM certificate", path.display())))
}

impl Workspace {
    /// State for `server` (a directory URL) under `root`.
    pub fn new(root: impl Into<PathBuf>, server: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            server: server.into(),
        }
    }

    /// The account store of this server.
    pub fn store(&self) -> AccountStore {
        AccountStore::for_directory(&self.root, &self.server)
    }

    /// The default certificate folder for a first name: `<root>/live/<name without *.>`.
    pub fn default_out(&self, first_name: &str) -> PathBuf {
        self.root
            .join("live")
            .join(first_name.trim_start_matches("*."))
    }

    /// The stored account, or a new one registered as `registration` says (an error naming
    /// `register` when there is none and no registration is given). The bool says whether
    /// the CA created the account just now.
    pub async fn account(
        &self,
        client: &Client,
        registration: Option<&Registration>,
    ) -> Result<(Account, AccountState, bool)> {
        let store = self.store();
        if let Some((state, key)) = store.load()? {
            let url = state.url.clone();
            return Ok((client.account(key, url), state, false));
        }
        let Some(reg) = registration else {
            return Err(usage(format!(
                "no account for {} in {}: run `acme-harness client register` first",
                self.server,
                store.dir().display()
            )));
        };
        let key = generate_account_key(account_key_type(&reg.key_type)?, reg.rsa_bits)?;
        let credential = EabCredential::from_command_line(
            reg.eab_kid.as_deref(),
            reg.eab_hmac_key_file.as_deref(),
            reg.eab_hmac_key_env,
            MacAlgorithm::from_name(&reg.eab_alg),
        )?;
        let contact: Vec<String> = reg
            .emails
            .iter()
            .map(|e| {
                if e.starts_with("mailto:") {
                    e.clone()
                } else {
                    format!("mailto:{e}")
                }
            })
            .collect();
        let registered = client
            .new_account(
                key,
                &NewAccountOptions {
                    contact: contact.clone(),
                    terms_of_service_agreed: reg.agree_tos,
                    eab: credential.clone(),
                },
            )
            .await?;
        store.save_key(registered.account.key())?;
        let state = AccountState {
            directory: self.server.clone(),
            url: registered.account.url().to_owned(),
            key_type: reg.key_type.to_ascii_lowercase(),
            contact,
            eab_kid: credential.as_ref().map(|c| c.kid().to_owned()),
            orders: Vec::new(),
        };
        store.save_state(&state)?;
        Ok((registered.account, state, registered.created))
    }

    /// Registers (or finds) the account and reads it back.
    pub async fn register(&self, client: &Client, reg: &Registration) -> Result<Registered> {
        let store = self.store();
        let existed = store.exists();
        let (account, state, created) = self.account(client, Some(reg)).await?;
        let object = account.fetch().await?;
        Ok(Registered {
            account: account.url().to_owned(),
            created: created && !existed,
            status: object.status,
            eab_kid: state.eab_kid,
            state_dir: store.dir().to_owned(),
            what: if existed {
                "account already registered"
            } else if created {
                "account created"
            } else {
                "account found (the key already had one)"
            },
            key: account.key().jwk().describe(),
        })
    }

    /// Orders, finalizes and writes the certificate files (and the PKCS#12 file when a
    /// password is given); records the order in the account state.
    pub async fn obtain(
        &self,
        client: &Client,
        reg: &Registration,
        request: CertRequest,
        solvers: &[&dyn Solver],
    ) -> Result<Obtained> {
        let (csr, names) = match &request.csr {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| usage(format!("--csr {}: {e}", path.display())))?;
                let (der, csr_names) = read_csr(&bytes)?;
                let names = if request.names.is_empty() {
                    csr_names
                } else {
                    request.names.clone()
                };
                (CsrSource::Given(der), names)
            }
            None => {
                let kind = CertKeyType::parse(&request.key_type).ok_or_else(|| {
                    usage(format!(
                        "unknown --key-type {:?}: use p256, p384, rsa2048, rsa3072 or rsa4096",
                        request.key_type
                    ))
                })?;
                (CsrSource::Generate(kind), request.names.clone())
            }
        };
        let Some(first) = names.first() else {
            return Err(usage("no name to certify: give -d NAME (repeatable)"));
        };
        if request.pfx_password.is_some() && matches!(csr, CsrSource::Given(_)) {
            return Err(usage(
                "--pfx needs the private key, which the client does not have with --csr",
            ));
        }
        let out = request
            .out
            .clone()
            .unwrap_or_else(|| self.default_out(first));
        let (account, mut state, _) = self.account(client, Some(reg)).await?;
        let issued = account
            .issue(
                IssueRequest {
                    names: names.clone(),
                    csr,
                    preferred_chain: request.preferred_chain.clone(),
                },
                solvers,
            )
            .await?;
        let key_pem = issued.key.as_ref().map(|k| k.to_pem());
        let mut files = write_pem_files(&out, &issued.chain, key_pem.as_ref())?;
        if let (Some(password), Some(key)) = (&request.pfx_password, &issued.key) {
            let der = pkcs12(&issued.chain, &key.to_der(), password, &names[0])?;
            let path = out.join("cert.pfx");
            write_private(&path, der.expose())?;
            files.pfx = Some(path);
        }
        state.orders.push(OrderRecord {
            url: issued.order.url.clone(),
            names,
            certificate: issued.order.order.certificate.clone(),
            out: Some(out),
            at: OffsetDateTime::now_utc(),
        });
        self.store().save_state(&state)?;
        Ok(Obtained {
            order: issued.order.url.clone(),
            certificate_url: issued.order.order.certificate.clone(),
            certificate: CertInfo::from_der(issued.chain.leaf())?,
            chains_offered: issued.alternatives.iter().map(|c| c.top_issuer()).collect(),
            files,
        })
    }

    /// Renews the certificate in `request.out` (or the default folder of its first name)
    /// when due: less than a third of its lifetime left, or less than `days` when given, or
    /// inside the CA's ARI window where the CA offers one; always with `force`.
    pub async fn renew(
        &self,
        client: &Client,
        reg: &Registration,
        mut request: CertRequest,
        days: Option<u64>,
        force: bool,
        solvers: &[&dyn Solver],
    ) -> Result<Renewal> {
        let out = match (&request.out, request.names.first()) {
            (Some(d), _) => d.clone(),
            (None, Some(name)) => self.default_out(name),
            (None, None) => {
                return Err(usage(
                    "renew needs the certificate directory: --out DIR (or -d NAME for the default one)",
                ));
            }
        };
        let current = first_cert_der(&out.join("cert.pem"))?;
        let info = CertInfo::from_der(&current)?;
        let now = OffsetDateTime::now_utc();
        let mut decision = renewal_due(
            &info,
            now,
            if days.is_some() { 0.0 } else { 1.0 / 3.0 },
            days.map(|d| Duration::from_secs(d * 86_400)),
        );
        // ARI, where the CA offers it: its window wins over the lifetime rule.
        if let Ok(Some(window)) = client.renewal_info(&current).await {
            decision.due = now >= window.start;
            decision.reason = format!(
                "the CA suggests renewing between {} and {}",
                window.start, window.end
            );
        }
        if !decision.due && !force {
            return Ok(Renewal {
                renewed: false,
                reason: decision.reason,
                details: RenewalDetails::Kept { certificate: info },
            });
        }
        if request.names.is_empty() {
            request.names = info.names.clone();
        }
        request.out = Some(out);
        let obtained = self.obtain(client, reg, request, solvers).await?;
        Ok(Renewal {
            renewed: true,
            reason: decision.reason,
            details: RenewalDetails::Renewed(obtained),
        })
    }

    /// Revokes the certificate in the PEM file `cert`, signed with the certificate's own key
    /// (`cert_key`, a PEM file) or else with the stored account.
    pub async fn revoke(
        &self,
        client: &Client,
        cert: &Path,
        cert_key: Option<&Path>,
        reason: Option<&str>,
    ) -> Result<Revoked> {
        let der = first_cert_der(cert)?;
        let reason = reason.map(revocation_reason).transpose()?;
        let signed_by = match cert_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("--cert-key {}: {e}", path.display())))?;
                client
                    .revoke_with_cert_key(&der, &Secret::new(pem), reason)
                    .await?;
                "the certificate's key"
            }
            None => {
                let (account, _, _) = self.account(client, None).await?;
                account.revoke(&der, reason).await?;
                "the account"
            }
        };
        Ok(Revoked {
            serial: CertInfo::from_der(&der)?.serial,
            reason,
            signed_by,
        })
    }

    /// Deactivates the stored account and retires its key from the store.
    pub async fn deactivate(&self, client: &Client) -> Result<Deactivated> {
        let (account, _, _) = self.account(client, None).await?;
        account.deactivate().await?;
        // Keep the key for the record, but stop using the account.
        self.store().retire()?;
        Ok(Deactivated {
            account: account.url().to_owned(),
        })
    }

    /// Replaces the stored account's key with a new one of `key_type`; the old key is kept
    /// beside it until the new one is safely stored.
    pub async fn rollover(
        &self,
        client: &Client,
        key_type: &str,
        rsa_bits: u32,
    ) -> Result<RolledOver> {
        let (mut account, mut state, _) = self.account(client, None).await?;
        let new_key = generate_account_key(account_key_type(key_type)?, rsa_bits)?;
        let store = self.store();
        let old = account.rollover(new_key).await?;
        let old_key = store.save_old_key(&old)?;
        store.save_key(account.key())?;
        state.key_type = key_type.to_ascii_lowercase();
        store.save_state(&state)?;
        Ok(RolledOver {
            account: account.url().to_owned(),
            key: account.key().jwk().describe(),
            old_key,
        })
    }

    /// The stored account as the CA sees it, and the status of its last 20 orders.
    pub async fn show(&self, client: &Client) -> Result<AccountReport> {
        let (account, state, _) = self.account(client, None).await?;
        let object = account.fetch().await?;
        let mut orders = Vec::new();
        for record in state.orders.iter().rev().take(20) {
            let status = match account.fetch_order(&record.url).await {
                Ok((o, _)) => o.status.as_str().to_owned(),
                Err(e) => format!("unknown ({e})"),
            };
            let cert = record
                .out
                .as_ref()
                .and_then(|d| first_cert_der(&d.join("cert.pem")).ok())
                .and_then(|der| CertInfo::from_der(&der).ok());
            orders.push(OrderSummary {
                url: record.url.clone(),
                names: record.names.clone(),
                status,
                out: record.out.clone(),
                not_after: cert.map(|c| c.not_after.to_string()),
                at: record.at,
            });
        }
        Ok(AccountReport {
            account: account.url().to_owned(),
            status: object.status,
            contact: object.contact,
            key: account.key().jwk().describe(),
            thumbprint: account.key().jwk().thumbprint(),
            eab_kid: state.eab_kid,
            orders,
        })
    }
}

impl fmt::Display for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.what, self.account)?;
        writeln!(f, "status: {}", self.status.as_str())?;
        writeln!(
            f,
            "account key: {} in {}",
            self.key,
            self.state_dir.join("account-key.pem").display()
        )
    }
}

impl fmt::Display for Obtained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.certificate;
        writeln!(
            f,
            "certificate for {} issued by {}",
            c.names.join(", "),
            c.issuer
        )?;
        writeln!(f, "valid until {}", c.not_after)?;
        writeln!(f, "files:")?;
        for p in [&self.files.cert, &self.files.chain, &self.files.fullchain] {
            writeln!(f, "  {}", p.display())?;
        }
        for p in [&self.files.privkey, &self.files.pfx].into_iter().flatten() {
            writeln!(f, "  {} (mode 0600)", p.display())?;
        }
        Ok(())
    }
}

impl fmt::Display for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.details {
            RenewalDetails::Kept { .. } => writeln!(f, "not renewed: {}", self.reason),
            RenewalDetails::Renewed(o) => write!(f, "renewing: {}\n{o}", self.reason),
        }
    }
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "revoked certificate {} (signed by {})",
            self.serial, self.signed_by
        )
    }
}

impl fmt::Display for Deactivated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "account deactivated: {}", self.account)
    }
}

impl fmt::Display for RolledOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "account key replaced ({}); the old key is in {}",
            self.key,
            self.old_key.display()
        )
    }
}

impl fmt::Display for AccountReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "account: {}", self.account)?;
        writeln!(f, "status: {}", self.status.as_str())?;
        writeln!(
            f,
            "contact: {}",
            self.contact.clone().unwrap_or_default().join(", ")
        )?;
        writeln!(f, "key: {} (thumbprint {})", self.key, self.thumbprint)?;
        writeln!(f, "eab key id: {}", self.eab_kid.as_deref().unwrap_or("-"))?;
        if !self.orders.is_empty() {
            writeln!(f, "orders made by this client:")?;
        }
        for o in &self.orders {
            let until = o
                .not_after
                .as_deref()
                .map(|n| format!(" valid until {}", n.split(' ').next().unwrap_or(n)))
                .unwrap_or_default();
            writeln!(
                f,
                "  {} {} [{}]{until}",
                o.at.date(),
                o.names.join(", "),
                o.status
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_in_flags_are_checked_with_the_flag_named() {
        assert_eq!(
            account_key_type("ES256").unwrap(),
            SignatureAlgorithm::Es256
        );
        let e = account_key_type("dsa").unwrap_err().to_string();
        assert!(e.contains("es256, es384, rs256 or eddsa"), "{e}");
        assert!(revocation_reason("keyCompromise").is_ok());
        let e = revocation_reason("bored").unwrap_err().to_string();
        assert!(e.contains("--reason") && e.contains("keyCompromise"), "{e}");
    }

    #[test]
    fn a_secret_file_loses_its_trailing_newline_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "s3cret\n").unwrap();
        let got = secret_from_file_or_env("--pfx-password-file", Some(&file), "UNSET_VAR_X")
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "s3cret");
        std::fs::write(&file, "\n").unwrap();
        let e = secret_from_file_or_env("--pfx-password-file", Some(&file), "UNSET_VAR_X")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--pfx-password-file") && e.contains("empty"),
            "{e}"
        );
        let missing = dir.path().join("nope");
        let e = secret_from_file_or_env("--pfx-password-file", Some(&missing), "UNSET_VAR_X")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--pfx-password-file") && e.contains("nope"),
            "{e}"
        );
        assert!(
            secret_from_file_or_env("--x", None, "ACME_HARNESS_SURELY_UNSET_VAR")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_default_certificate_folder_drops_the_wildcard() {
        let w = Workspace::new("/state", "https://ca.example/dir");
        assert_eq!(
            w.default_out("*.physics.example.edu"),
            Path::new("/state/live/physics.example.edu")
        );
    }
}
