//! Accounts (RFC 8555 §7.3): creation with External Account Binding, lookup, contact update,
//! deactivation and key rollover; account keys on disk.

use std::fmt;
use std::path::Path;

use acme_proto::eab::{self, MacAlgorithm};
use acme_proto::{AccountKey, NewAccount, ProblemType, Secret, SignatureAlgorithm, Status, b64};
use serde_json::{Value, json};

use crate::client::{Client, Signer};
use crate::error::{Error, Result};

/// An External Account Binding credential (RFC 8555 §7.3.4): the key id and HMAC key the CA
/// handed out. The HMAC key is used only to sign the binding in newAccount; `Debug` never
/// shows it, and nothing in this crate logs, prints or stores it.
#[derive(Clone)]
pub struct EabCredential {
    kid: String,
    hmac_key: Secret<Vec<u8>>,
    alg: MacAlgorithm,
}

impl EabCredential {
    /// A credential from the key id and the HMAC key as the CA prints it: base64url, padded
    /// or not (Sectigo: 86 characters unpadded; some CAs pad, some users paste standard
    /// base64). HS256 unless `alg` says otherwise.
    pub fn new(kid: &str, hmac_key_text: &str, alg: Option<MacAlgorithm>) -> Result<Self> {
        let kid = kid.trim();
        if kid.is_empty() {
            return Err(Error::InvalidInput("the EAB key id is empty".into()));
        }
        let normalised: String = hmac_key_text
            .trim()
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let key = b64::decode_lenient(&normalised)
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                // Never echo the text: it is the secret, or close to it.
                Error::InvalidInput(
                    "the EAB HMAC key is not base64url text; paste it exactly as the CA gave it"
                        .into(),
                )
            })?;
        Ok(Self {
            kid: kid.to_owned(),
            hmac_key: Secret::new(key),
            alg: alg.unwrap_or(MacAlgorithm::Hs256),
        })
    }

    /// The credential a command line names: the key id from `--eab-kid`, the HMAC key from
    /// the file `--eab-hmac-key-file` or, failing that, the environment variable `env_var`
    /// (never from a flag's value, which every local user can read in `ps`). `None` when
    /// neither is given; an error naming the flag, the file or the variable when only half
    /// is, or the file cannot be read.
    pub fn from_command_line(
        kid: Option<&str>,
        key_file: Option<&Path>,
        env_var: &str,
        alg: Option<MacAlgorithm>,
    ) -> Result<Option<Self>> {
        let from_env = std::env::var(env_var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(Secret::new);
        let text = match (key_file, from_env) {
            (Some(path), _) => Some(Secret::new(std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidInput(format!("--eab-hmac-key-file {}: {e}", path.display()))
            })?)),
            (None, env) => env,
        };
        match (kid, text) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(Error::InvalidInput(format!(
                "--eab-kid needs the HMAC key: --eab-hmac-key-file FILE or {env_var}"
            ))),
            (None, Some(_)) => Err(Error::InvalidInput(
                "an EAB HMAC key was given without its key id: add --eab-kid".into(),
            )),
            (Some(kid), Some(text)) => Self::new(kid, text.expose(), alg).map(Some),
        }
    }

    /// The key id (not secret).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The HMAC key itself, for tools that must sign bindings no honest client would (the
    /// server suites' wrong URLs and foreign account keys). Never log or print it.
    pub fn expose_hmac_key(&self) -> &[u8] {
        self.hmac_key.expose()
    }

    /// The MAC algorithm.
    pub fn alg(&self) -> MacAlgorithm {
        self.alg
    }

    /// The `externalAccountBinding` member of a newAccount payload for the account `key`
    /// (RFC 8555 §7.3.4): a JWS MAC-signed with the HMAC key over the account's public key.
    pub fn binding(&self, new_account_url: &str, key: &AccountKey) -> Value {
        eab::sign(
            self.alg,
            &self.kid,
            self.hmac_key.expose(),
            new_account_url,
            key.jwk(),
        )
    }
}

impl fmt::Debug for EabCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EabCredential")
            .field("kid", &self.kid)
            .field("hmac_key", &self.hmac_key)
            .field("alg", &self.alg)
            .finish()
    }
}

/// What newAccount sends.
#[derive(Clone, Debug, Default)]
pub struct NewAccountOptions {
    /// Contact URLs (`mailto:...`).
    pub contact: Vec<String>,
    /// Agree to the CA's terms of service.
    pub terms_of_service_agreed: bool,
    /// The EAB credential, where the CA requires one.
    pub eab: Option<EabCredential>,
}

/// An account: its URL and key, on one client.
#[derive(Debug)]
pub struct Account {
    pub(crate) client: Client,
    pub(crate) key: AccountKey,
    pub(crate) url: String,
}

/// newAccount's outcome.
#[derive(Debug)]
pub struct Registered {
    /// The account.
    pub account: Account,
    /// True when the CA created it (201), false when the key already had one (200).
    pub created: bool,
    /// The account object the CA returned.
    pub object: acme_proto::Account,
}

impl Client {
    /// Creates an account for `key` (RFC 8555 §7.3), with EAB if given (§7.3.4). A key that
    /// already has an account gets that account back (`created: false`).
    pub async fn new_account(
        &self,
        key: AccountKey,
        options: &NewAccountOptions,
    ) -> Result<Registered> {
        let url = self.directory().new_account.clone();
        let eab_required = self
            .directory()
            .meta
            .as_ref()
            .and_then(|m| m.external_account_required)
            .unwrap_or(false);
        if eab_required && options.eab.is_none() {
            return Err(Error::InvalidInput(
                "this CA requires External Account Binding: give the key id (--eab-kid) and the HMAC key (--eab-hmac-key-file or ACME_HARNESS_EAB_HMAC_KEY)".into(),
            ));
        }
        let payload = NewAccount {
            contact: (!options.contact.is_empty()).then(|| options.contact.clone()),
            terms_of_service_agreed: options.terms_of_service_agreed.then_some(true),
            only_return_existing: None,
            external_account_binding: options.eab.as_ref().map(|e| e.binding(&url, &key)),
            status: None,
        };
        let payload = serde_json::to_value(&payload).map_err(|e| Error::Key(e.to_string()))?;
        let response = self
            .post(
                "newAccount",
                &url,
                Signer {
                    key: &key,
                    kid: None,
                },
                Some(&payload),
            )
            .await?;
        let account_url = response.location()?;
        let object = response.json()?;
        Ok(Registered {
            account: Account {
                client: self.clone(),
                key,
                url: account_url,
            },
            created: response.status == 201,
            object,
        })
    }

    /// Finds the account of `key` without creating one (`onlyReturnExisting`, RFC 8555
    /// §7.3.1). An unknown key is [`Error::Refused`] with `accountDoesNotExist`.
    pub async fn find_account(&self, key: AccountKey) -> Result<Account> {
        let url = self.directory().new_account.clone();
        let response = self
            .post(
                "newAccount (onlyReturnExisting)",
                &url,
                Signer {
                    key: &key,
                    kid: None,
                },
                Some(&json!({ "onlyReturnExisting": true })),
            )
            .await?;
        let account_url = response.location()?;
        Ok(Account {
            client: self.clone(),
            key,
            url: account_url,
        })
    }

    /// An account whose URL is already known.
    pub fn account(&self, key: AccountKey, url: impl Into<String>) -> Account {
        Account {
            client: self.clone(),
            key,
            url: url.into(),
        }
    }
}

impl Account {
    /// The account URL (the `kid` of its requests).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The account key.
    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn signer(&self) -> Signer<'_> {
        Signer {
            key: &self.key,
            kid: Some(&self.url),
        }
    }

    /// A signed POST as this account.
    pub(crate) async fn post(
        &self,
        action: &str,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<crate::raw::Response> {
        self.client.post(action, url, self.signer(), payload).await
    }

    /// The account object, by POST-as-GET (RFC 8555 §6.3; Pebble refuses an empty update
    /// for this, Sectigo requires POST-as-GET everywhere).
    pub async fn fetch(&self) -> Result<acme_proto::Account> {
        self.post("account", &self.url, None).await?.json()
    }

    /// Replaces the contact URLs (RFC 8555 §7.3.2).
    pub async fn update_contact(&self, contact: &[String]) -> Result<acme_proto::Account> {
        self.post(
            "account update",
            &self.url,
            Some(&json!({ "contact": contact })),
        )
        .await?
        .json()
    }

    /// Deactivates the account (RFC 8555 §7.3.6). The CA refuses every later request of it.
    pub async fn deactivate(&self) -> Result<acme_proto::Account> {
        let object: acme_proto::Account = self
            .post(
                "account deactivation",
                &self.url,
                Some(&json!({ "status": "deactivated" })),
            )
            .await?
            .json()?;
        if object.status != Status::Deactivated {
            return Err(Error::Unexpected {
                url: self.url.clone(),
                status: 200,
                retry_after: None,
                detail: format!(
                    "the account is {} after deactivation",
                    object.status.as_str()
                ),
            });
        }
        Ok(object)
    }

    /// Rolls the account over to `new_key` (RFC 8555 §7.3.5). On success the account signs
    /// with the new key and the old one is returned. A CA without key rollover (Sectigo
    /// answers serverInternal) gives [`Error::KeyChangeUnsupported`] and keeps the old key.
    pub async fn rollover(&mut self, new_key: AccountKey) -> Result<AccountKey> {
        let url = self.client.directory().key_change.clone();
        let header = json!({
            "alg": new_key.algorithm().name(),
            "jwk": new_key.jwk().to_json(),
            "url": url,
        });
        let inner_payload = json!({ "account": self.url, "oldKey": self.key.jwk().to_json() });
        let inner = new_key
            .sign_parts(&header, Some(&inner_payload))
            .map_err(|e| Error::Key(e.to_string()))?;
        let inner = serde_json::to_value(&inner).map_err(|e| Error::Key(e.to_string()))?;
        match self.post("keyChange", &url, Some(&inner)).await {
            Ok(_) => Ok(std::mem::replace(&mut self.key, new_key)),
            Err(Error::Refused { problem, .. }) if problem.kind == ProblemType::ServerInternal => {
                Err(Error::KeyChangeUnsupported { problem })
            }
            Err(e) => Err(e),
        }
    }
}

/// Account key algorithms offered to users, with their names on the command line.
pub const ACCOUNT_KEY_TYPES: &[(&str, SignatureAlgorithm)] = &[
    ("es256", SignatureAlgorithm::Es256),
    ("es384", SignatureAlgorithm::Es384),
    ("rs256", SignatureAlgorithm::Rs256),
    ("eddsa", SignatureAlgorithm::EdDsa),
];

/// Generates an account key: `alg`, with `rsa_bits` (2048-4096) for RS256.
pub fn generate_account_key(alg: SignatureAlgorithm, rsa_bits: u32) -> Result<AccountKey> {
    match alg {
        SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => {
            AccountKey::generate_rsa(alg, rsa_bits)
        }
        _ => AccountKey::generate(alg),
    }
    .map_err(|e| Error::Key(e.to_string()))
}

/// The account key as a PKCS#8 PEM document.
pub fn account_key_pem(key: &AccountKey) -> Result<Secret<String>> {
    let der = key.to_pkcs8().map_err(|e| Error::Key(e.to_string()))?;
    Ok(Secret::new(pem_encode("PRIVATE KEY", der.expose())))
}

/// Loads a PKCS#8 PEM account key; the algorithm follows from the key (RSA keys sign RS256).
pub fn account_key_from_pem(pem: &str) -> Result<AccountKey> {
    let der = pem_private_key_der(pem)?;
    key_from_pkcs8(der.expose())
}

/// Loads PKCS#8 DER, trying each algorithm the key could be for.
pub(crate) fn key_from_pkcs8(der: &[u8]) -> Result<AccountKey> {
    [
        SignatureAlgorithm::Es256,
        SignatureAlgorithm::Es384,
        SignatureAlgorithm::Es512,
        SignatureAlgorithm::EdDsa,
        SignatureAlgorithm::Rs256,
    ]
    .into_iter()
    .find_map(|alg| AccountKey::from_pkcs8(alg, der).ok())
    .ok_or_else(|| {
        Error::Key("not a PKCS#8 ECDSA (P-256/P-384/P-521), Ed25519 or RSA private key".into())
    })
}

/// The DER of the first `PRIVATE KEY` block of a PEM document.
pub(crate) fn pem_private_key_der(pem: &str) -> Result<Secret<Vec<u8>>> {
    match rustls_pemfile::private_key(&mut pem.as_bytes()) {
        Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k))) => {
            Ok(Secret::new(k.secret_pkcs8_der().to_vec()))
        }
        Ok(Some(_)) => Err(Error::Key(
            "the key is not PKCS#8 (\"BEGIN PRIVATE KEY\"); convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
        )),
        _ => Err(Error::Key("no PEM private key found".into())),
    }
}

/// PEM armour with 64-character lines (RFC 7468).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes `contents` to `path` with mode 0600 (and tightens an existing file's mode).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    crate::store::write_atomic(path, contents, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_key_padded_unpadded_or_standard_alphabet() {
        let raw = [0xfbu8, 0xff, 0x00, 0x10, 0x42];
        let a = EabCredential::new("kid", "-_8AEEI", None).unwrap();
        let b = EabCredential::new("kid", "-_8AEEI=", None).unwrap();
        let c = EabCredential::new("kid", " +/8AEEI=\n", None).unwrap();
        for e in [&a, &b, &c] {
            assert_eq!(e.hmac_key.expose(), &raw);
            assert_eq!(e.alg(), MacAlgorithm::Hs256);
        }
        assert!(EabCredential::new("kid", "not base64!", None).is_err());
        assert!(EabCredential::new("", "AAAA", None).is_err());
        let debug = format!("{a:?}");
        assert!(!debug.contains("-_8AEEI") && debug.contains("Secret(..)"));
    }

    #[test]
    fn account_keys_round_trip_through_pem() {
        for (_, alg) in ACCOUNT_KEY_TYPES {
            let key = generate_account_key(*alg, 2048).unwrap();
            let pem = account_key_pem(&key).unwrap();
            let again = account_key_from_pem(pem.expose()).unwrap();
            assert_eq!(again.jwk(), key.jwk());
            assert_eq!(again.algorithm(), *alg);
        }
    }
}
