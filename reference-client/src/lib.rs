//! The reference ACME client (RFC 8555): what the harness uses to exercise servers, and a
//! client administrators can use against Sectigo's ACME service (InCommon, ZeroSSL).
//!
//! - [`Client`]: directory discovery, the nonce pool (HEAD newNonce, GET fallback), signed
//!   requests that retry badNonce with the nonce the refusal carries and wait out 429/503
//!   Retry-After, send requests that are safe to repeat again after a proxy's 502/504 page or
//!   a broken connection, polling with Retry-After (seconds or HTTP-date), backoff, jitter and
//!   one overall deadline.
//! - [`Account`]: newAccount with External Account Binding ([`EabCredential`]),
//!   onlyReturnExisting, contact update, deactivation, key rollover.
//! - Orders: [`Account::issue`] runs newOrder, authorizations (already-valid ones are skipped,
//!   whatever challenge types they list), the [`solver`]s, finalize, download and the choice
//!   among alternate chains.
//! - [`manage`]: register, issue, renew, revoke, deactivate, rollover and show over the
//!   account store: what `acme-harness client` runs.
//! - [`cert`]: certificate keys and CSRs, chains, renewal decisions, PEM files and PKCS#12.
//!
//! Secrets: the EAB HMAC key is held in [`acme_proto::Secret`] and used only to sign the
//! binding; keys are written with mode 0600.
//!
//! ```no_run
//! # async fn run() -> reference_client::Result<()> {
//! use reference_client::*;
//! let client = Client::connect("https://acme.example/v2/InCommonRSAOV", ClientConfig::default()).await?;
//! let key = generate_account_key(acme_proto::SignatureAlgorithm::Es256, 2048)?;
//! let eab = EabCredential::new("KeyId", "hmac-key-base64url", None)?;
//! let registered = client
//!     .new_account(key, &NewAccountOptions { eab: Some(eab), terms_of_service_agreed: true, ..Default::default() })
//!     .await?;
//! let issued = registered
//!     .account
//!     .issue(
//!         IssueRequest { names: vec!["www.example.edu".into()], csr: CsrSource::Generate(CertKeyType::EcdsaP256), preferred_chain: None },
//!         &[],
//!     )
//!     .await?;
//! println!("{}", issued.chain.fullchain_pem());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod account;
pub mod cert;
mod client;
#[cfg(feature = "cli")]
pub mod command;
mod error;
pub mod manage;
mod order;
pub mod raw;
pub mod solver;
pub mod store;

pub use account::{
    ACCOUNT_KEY_TYPES, Account, EabCredential, NewAccountOptions, Registered, account_key_from_pem,
    account_key_pem, generate_account_key, write_private,
};
pub use cert::{CertKey, CertKeyType, Chain};
pub use client::{Backoff, Client, ClientConfig, Progress, ProgressFn, parse_retry_after};
pub use error::{Error, ErrorClass, Result, describe_problem};
pub use order::{CsrSource, IssueRequest, Issued, OrderHandle, REVOCATION_REASONS, RenewalWindow};
pub use raw::Response;
