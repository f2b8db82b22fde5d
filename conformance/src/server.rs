//! Talking to an ACME server under test, only over HTTP (the server suites' side of the judge).
//!
//! The target comes from the environment, as hickory's conformance tests take
//! `DNS_TEST_SUBJECT`:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `ACME_DIRECTORY` | the directory URL; unset: the suites start a mock in-process |
//! | `ACME_CA_FILE` | PEM file of the CA that signed the server's TLS certificate |
//! | `ACME_EAB_KID`, `ACME_EAB_HMAC` | an EAB credential (HMAC key base64url) |
//! | `ACME_TARGET_NAME` | a name for reports and the divergence list (`pebble`, ...) |
//! | `ACME_DOMAIN` | a name the target will order a certificate for |
//! | `ACME_POST_AS_GET` | `1` (default) if the target promises POST-as-GET only, `0` if not |
//! | `ACME_DIVERGENCES` | a TOML file of known divergences, checked to still hold |

use std::path::PathBuf;

use acme_proto::jws::FlattenedJws;
use acme_proto::{AccountKey, Directory};
use reference_client::raw::{Raw, http_client as build_http_client, tls_config};
pub use reference_client::{EabCredential, Response};
use serde_json::{Value, json};

/// What can go wrong talking to the target (not a conformance failure: the suites assert
/// those).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// An environment variable or file is missing or unusable.
    #[error("target configuration: {0}")]
    Config(String),
    /// The exchange failed (transport, or an answer that is not what was asked for).
    #[error("{0}")]
    Exchange(#[from] reference_client::Error),
    /// The server answered something the suite cannot go on with.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// The server under test.
#[derive(Clone, Debug)]
pub struct Target {
    /// A name for messages and the divergence list.
    pub name: String,
    /// The directory URL.
    pub directory: String,
    /// The CA file to trust for its TLS certificate.
    pub ca_file: PathBuf,
    /// The EAB credential, when the target has one.
    pub eab: Option<EabCredential>,
    /// A domain the target issues for.
    pub domain: String,
    /// Whether the target promises to refuse plain GET on resources.
    pub post_as_get: bool,
    /// The known-divergences file, if any.
    pub divergences: Option<PathBuf>,
}

impl Target {
    /// The target named by `ACME_DIRECTORY` and friends; `None` when it is unset.
    pub fn from_env() -> Result<Option<Self>, TargetError> {
        let Ok(directory) = std::env::var("ACME_DIRECTORY") else {
            return Ok(None);
        };
        let ca_file = std::env::var("ACME_CA_FILE")
            .map(PathBuf::from)
            .map_err(|_| {
                TargetError::Config("ACME_DIRECTORY is set but ACME_CA_FILE is not".into())
            })?;
        let eab = match (
            std::env::var("ACME_EAB_KID"),
            std::env::var("ACME_EAB_HMAC"),
        ) {
            (Ok(kid), Ok(hmac)) => Some(
                EabCredential::new(&kid, &hmac, None)
                    .map_err(|e| TargetError::Config(format!("ACME_EAB_HMAC: {e}")))?,
            ),
            (Err(_), Err(_)) => None,
            _ => {
                return Err(TargetError::Config(
                    "set both ACME_EAB_KID and ACME_EAB_HMAC, or neither".into(),
                ));
            }
        };
        Ok(Some(Self {
            name: std::env::var("ACME_TARGET_NAME").unwrap_or_else(|_| "env".into()),
            directory,
            ca_file,
            eab,
            domain: std::env::var("ACME_DOMAIN").unwrap_or_else(|_| "example.com".into()),
            post_as_get: std::env::var("ACME_POST_AS_GET").map_or(true, |v| v != "0"),
            divergences: std::env::var("ACME_DIVERGENCES").ok().map(PathBuf::from),
        }))
    }
}

/// An HTTP client that trusts exactly the target's CA file.
pub fn http_client(ca_file: &std::path::Path) -> Result<reqwest::Client, TargetError> {
    let config = |e: reference_client::Error| TargetError::Config(format!("ACME_CA_FILE: {e}"));
    let tls = tls_config(&[ca_file.to_owned()]).map_err(config)?;
    build_http_client(
        tls,
        concat!("acme-harness-conformance/", env!("CARGO_PKG_VERSION")),
        None,
    )
    .map_err(config)
}

/// A connection to the target: its directory and the raw transport, which sends exactly
/// what a suite signs (a broken client's requests included).
#[derive(Clone, Debug)]
pub struct Acme {
    /// The transport.
    pub raw: Raw,
    /// The directory.
    pub dir: Directory,
    /// The target.
    pub target: Target,
}

impl Acme {
    /// Fetches the directory.
    pub async fn connect(target: Target) -> Result<Self, TargetError> {
        let raw = Raw::new(http_client(&target.ca_file)?);
        let dir = raw.get(&target.directory).await?.json()?;
        Ok(Self { raw, dir, target })
    }

    /// A fresh nonce from newNonce (HEAD).
    pub async fn nonce(&self) -> Result<String, TargetError> {
        Ok(self.raw.new_nonce(&self.dir.new_nonce).await?)
    }

    /// POSTs a body as application/jose+json.
    pub async fn send(&self, url: &str, body: String) -> Result<Response, TargetError> {
        Ok(self
            .raw
            .post(url, acme_proto::JOSE_CONTENT_TYPE, body.into_bytes())
            .await?)
    }

    /// A plain GET.
    pub async fn get(&self, url: &str) -> Result<Response, TargetError> {
        Ok(self.raw.get(url).await?)
    }

    /// Signs a request with a fresh nonce.
    pub async fn sign(
        &self,
        key: &AccountKey,
        kid: Option<&str>,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<FlattenedJws, TargetError> {
        let nonce = self.nonce().await?;
        key.sign_request(kid, &nonce, url, payload)
            .map_err(|e| TargetError::Protocol(format!("signing: {e}")))
    }

    /// Signs with a fresh nonce and sends: one attempt, whatever the answer.
    pub async fn post(
        &self,
        key: &AccountKey,
        kid: Option<&str>,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Response, TargetError> {
        let nonce = self.nonce().await?;
        Ok(self.raw.post_signed(key, kid, &nonce, url, payload).await?)
    }

    /// The newAccount payload, with the target's EAB when it has one.
    pub fn new_account_payload(&self, key: &AccountKey) -> Value {
        let mut payload =
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:admin@example.com"]});
        if let Some(c) = &self.target.eab {
            payload["externalAccountBinding"] = c.binding(&self.dir.new_account, key);
        }
        payload
    }

    /// Registers `key`; returns the account URL.
    pub async fn register(&self, key: &AccountKey) -> Result<String, TargetError> {
        let payload = self.new_account_payload(key);
        let r = self
            .post(key, None, &self.dir.new_account, Some(&payload))
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(TargetError::Protocol(format!(
                "newAccount: {}",
                r.describe()
            )));
        }
        r.header("location")
            .map(str::to_owned)
            .ok_or_else(|| TargetError::Protocol("newAccount gave no Location".into()))
    }

    /// Places an order for `names`.
    pub async fn new_order(
        &self,
        key: &AccountKey,
        kid: &str,
        names: &[&str],
    ) -> Result<Response, TargetError> {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        self.post(
            key,
            Some(kid),
            &self.dir.new_order,
            Some(&json!({"identifiers": ids})),
        )
        .await
    }
}

/// The flattened JWS as a request body.
///
/// # Panics
/// Never in practice: a flattened JWS is three strings. (An empty body would be sent
/// otherwise, and a suite would blame the server for it.)
pub fn body(jws: &FlattenedJws) -> String {
    serde_json::to_string(jws).expect("a flattened JWS serializes")
}

/// RFC 8555 §7.1.6: whether an order observed in status `from` may later be observed in
/// `to`, i.e. `to` is `from` or reachable from it along the order state diagram
/// (pending -> ready -> processing -> valid, and any of the first three -> invalid). Reachable
/// rather than adjacent, since a client only sees snapshots: a server that issues at once
/// passes through `processing` between two fetches.
pub fn order_transition_allowed(from: &str, to: &str) -> bool {
    const ORDER: [&str; 4] = ["pending", "ready", "processing", "valid"];
    let rank = |s: &str| ORDER.iter().position(|o| *o == s);
    if from == to {
        return true;
    }
    match (rank(from), to) {
        (Some(f), "invalid") => f < 3,
        (Some(f), _) => rank(to).is_some_and(|t| t > f),
        (None, _) => false,
    }
}
