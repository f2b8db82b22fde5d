//! A client of the mock's admin API: the one `acme-harness admin` uses against a running
//! `acme-harness serve`, and tests use against any mock (organisations, departments,
//! delegations, EAB credentials, certificates, fault plans, recorded requests, DNS records).

use std::path::{Path, PathBuf};

use acme_proto::transcript::Exchange;
use mock_server::ReadyInfo;
use mock_server::admin::api::{
    CertificateView, Created, CredentialView, DelegationView, DomainView, FaultEventsView,
    MintedView, NewDelegation, NewDepartment, NewDomain, NewEab, NewOrganization, OrganizationView,
    RevokeCertificate, RevokedView, SetValidation,
};
use mock_server::dns::Records;
use mock_server::faults::FaultPlan as PlanFile;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Where to find a running `acme-harness serve`'s admin API: what is given overrides what its
/// data directory's `ready.json` says.
#[derive(Clone, Debug, Default)]
pub struct Locate {
    /// The server's data directory (its `ready.json`).
    pub data_dir: PathBuf,
    /// The admin URL (`--url`).
    pub url: Option<String>,
    /// The admin token (`--token`).
    pub token: Option<String>,
    /// The CA bundle to trust (`--ca-file`).
    pub ca_file: Option<PathBuf>,
}

/// Talks to the admin API at one URL with its bearer token, trusting the mock's listener CA.
/// Its `Debug` output hides the token.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl AdminClient {
    /// A client of the admin API at `url` (`https://127.0.0.1:PORT/admin`), sending `token`
    /// (none: to see the API refuse), trusting the CA certificates in the PEM file
    /// `ca_bundle`.
    pub fn new(
        url: impl Into<String>,
        token: Option<String>,
        ca_bundle: &Path,
    ) -> Result<Self, Error> {
        let tls = reference_client::raw::tls_config(&[ca_bundle.to_owned()])
            .map_err(|e| Error::Admin(format!("{}: {e}", ca_bundle.display())))?;
        let http = reference_client::raw::http_client(
            tls,
            concat!("sectigo-acme-mock/", env!("CARGO_PKG_VERSION")),
            None,
        )
        .map_err(|e| Error::Admin(e.to_string()))?;
        Ok(Self {
            http,
            url: url.into(),
            token,
        })
    }

    /// The admin API of a running `acme-harness serve`, found through `ready.json` in its data
    /// directory, with the URL, token and CA file overridden where `at` gives them. The
    /// error names what is missing and the flag that would give it.
    pub fn locate(at: &Locate) -> Result<Self, Error> {
        let ready_path = at.data_dir.join("ready.json");
        let ready: Option<ReadyInfo> = match std::fs::read_to_string(&ready_path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::Admin(format!(
                    "{} is not the ready.json `serve` writes: {e}",
                    ready_path.display()
                ))
            })?),
            Err(_) => None,
        };
        let missing = |what: &str, flag: &str| {
            Error::Admin(format!(
                "no {what}: start `acme-harness serve` (it writes {}), or pass --data-dir or {flag}",
                ready_path.display()
            ))
        };
        let url = (at.url.clone())
            .or_else(|| ready.as_ref().and_then(|r| r.admin_url.clone()))
            .ok_or_else(|| missing("admin URL", "--url"))?;
        let token = (at.token.clone())
            .or_else(|| ready.as_ref().and_then(|r| r.admin_token.clone()))
            .ok_or_else(|| missing("admin token", "--token"))?;
        let ca = (at.ca_file.clone())
            .or_else(|| ready.as_ref().map(|r| r.ca_bundle.clone()))
            .ok_or_else(|| missing("CA bundle", "--ca-file"))?;
        Self::new(url, Some(token), &ca)
            .map_err(|e| Error::Admin(format!("--ca-file {}: {e}", ca.display())))
    }

    /// The same API without the token.
    pub fn without_token(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    /// Sends one request (`path` under the admin URL, an optional JSON body) and returns the
    /// status and the answer (JSON, or the text as a JSON string). Only a transport failure
    /// is an error.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let url = format!("{}{path}", self.url);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| {
            Error::Admin(format!(
                "cannot reach the admin API at {url} ({e}): is the server running?"
            ))
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Sends one request and returns the answer; a refusal is an error carrying the API's
    /// own message (it names the field or thing that is wrong) and the status.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<Option<Value>>,
    ) -> Result<Value, Error> {
        let body = body.into();
        let (status, value) = self.send(method, path, body.as_ref()).await?;
        if !(200..300).contains(&status) {
            let message = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            return Err(Error::Admin(format!(
                "the admin API refused ({status}): {message}"
            )));
        }
        Ok(value)
    }

    /// [`AdminClient::call`], with the answer also read as `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<Option<Value>>,
    ) -> Result<(T, Value), Error> {
        let value = self.call(method, path, body).await?;
        let typed = serde_json::from_value(value.clone()).map_err(|e| {
            Error::Admin(format!(
                "the admin API's answer to {path} is not what this client expects: {e}"
            ))
        })?;
        Ok((typed, value))
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, Error> {
        Ok(self.call_as(method, path, body).await?.0)
    }

    async fn with_body<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let body = serde_json::to_value(body)
            .map_err(|e| Error::Admin(format!("cannot encode the request to {path}: {e}")))?;
        self.typed(method, path, Some(body)).await
    }

    /// A Pebble management answer under `/pebble`: the body as text, or the refusal.
    async fn pebble(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<String, Error> {
        let (status, value) = self.send(method, &format!("/pebble{path}"), body).await?;
        let text = match value {
            Value::String(s) => s,
            other => serde_json::to_string_pretty(&other).unwrap_or_default(),
        };
        if !(200..300).contains(&status) {
            return Err(Error::Admin(format!(
                "the admin API refused /pebble{path} ({status}): {text}"
            )));
        }
        Ok(text)
    }

    /// The PEM of the root(s) chain `chain` ends at (Pebble's `/roots/N`; 0 or 1).
    pub async fn roots_pem(&self, chain: usize) -> Result<String, Error> {
        self.pebble(Method::GET, &format!("/roots/{chain}"), None)
            .await
    }

    /// The PEM of the CAs that sign leaves on chain `chain` (Pebble's `/intermediates/N`).
    pub async fn intermediates_pem(&self, chain: usize) -> Result<String, Error> {
        self.pebble(Method::GET, &format!("/intermediates/{chain}"), None)
            .await
    }

    /// The private key(s) of the root(s) chain `chain` ends at (Pebble's `/root-keys/N`):
    /// RSA as PKCS#1, ECDSA as PKCS#8. Only a CA made in memory (the kit's) hands its keys
    /// out; a CA kept in a data directory refuses (404).
    pub async fn root_key_pem(&self, chain: usize) -> Result<acme_proto::Secret<String>, Error> {
        self.pebble(Method::GET, &format!("/root-keys/{chain}"), None)
            .await
            .map(acme_proto::Secret::new)
    }

    /// The private key(s) of the CAs that sign leaves on chain `chain` (Pebble's
    /// `/intermediate-keys/N`), as [`AdminClient::root_key_pem`].
    pub async fn intermediate_key_pem(
        &self,
        chain: usize,
    ) -> Result<acme_proto::Secret<String>, Error> {
        self.pebble(Method::GET, &format!("/intermediate-keys/{chain}"), None)
            .await
            .map(acme_proto::Secret::new)
    }

    /// A certificate's status by serial (hex), as Pebble's `/cert-status-by-serial/`:
    /// `{"Status": "Valid"|"Revoked", "Serial", "Certificate", "Reason"?}`.
    pub async fn certificate_status(&self, serial_hex: &str) -> Result<Value, Error> {
        let text = self
            .pebble(
                Method::GET,
                &format!("/cert-status-by-serial/{serial_hex}"),
                None,
            )
            .await?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Admin(format!("the certificate status is not JSON: {e}")))
    }

    /// From now on, renewalInfo for the certificate `certificate_pem` answers `answer`
    /// verbatim; an empty `answer` restores the computed window (Pebble's
    /// `/set-renewal-info/`).
    pub async fn set_renewal_info(&self, certificate_pem: &str, answer: &str) -> Result<(), Error> {
        let body = serde_json::json!({"certificate": certificate_pem, "ariResponse": answer});
        self.pebble(Method::POST, "/set-renewal-info/", Some(&body))
            .await
            .map(drop)
    }

    /// Every organisation with its domains, departments and delegations.
    pub async fn organizations(&self) -> Result<Vec<OrganizationView>, Error> {
        self.typed(Method::GET, "/organizations", None).await
    }

    /// Adds an organisation; answers its id.
    pub async fn add_organization(&self, org: &NewOrganization) -> Result<Created, Error> {
        self.with_body(Method::POST, "/organizations", org).await
    }

    /// Adds a domain to organisation `org`.
    pub async fn add_domain(&self, org: usize, domain: &NewDomain) -> Result<DomainView, Error> {
        let path = format!("/organizations/{org}/domains");
        self.with_body(Method::POST, &path, domain).await
    }

    /// Marks a domain's validation done or undone.
    pub async fn set_validated(&self, name: &str, validated: bool) -> Result<DomainView, Error> {
        let path = format!("/domains/{name}/validation");
        self.with_body(Method::PUT, &path, &SetValidation { validated })
            .await
    }

    /// Adds a department to organisation `org`; answers its id.
    pub async fn add_department(&self, org: usize, name: &str) -> Result<Created, Error> {
        let path = format!("/organizations/{org}/departments");
        let body = NewDepartment { name: name.into() };
        self.with_body(Method::POST, &path, &body).await
    }

    /// Delegates one of the organisation's domains to department `dept`.
    pub async fn delegate(&self, dept: usize, domain: &str) -> Result<DelegationView, Error> {
        let path = format!("/departments/{dept}/delegations");
        let body = NewDelegation {
            domain: domain.into(),
        };
        self.with_body(Method::POST, &path, &body).await
    }

    /// Mints an EAB credential: the answer is the only place its HMAC key is ever shown.
    pub async fn create_eab(&self, request: &NewEab) -> Result<MintedView, Error> {
        self.with_body(Method::POST, "/eab", request).await
    }

    /// Every EAB credential (without HMAC keys).
    pub async fn credentials(&self) -> Result<Vec<CredentialView>, Error> {
        self.typed(Method::GET, "/eab", None).await
    }

    /// Revokes a credential: its accounts are refused on every later request.
    pub async fn revoke_eab(&self, kid: &str) -> Result<CredentialView, Error> {
        self.typed(Method::POST, &format!("/eab/{kid}/revoke"), None)
            .await
    }

    /// The certificates issued to a credential's accounts.
    pub async fn certificates(&self, kid: &str) -> Result<Vec<CertificateView>, Error> {
        self.typed(Method::GET, &format!("/eab/{kid}/certificates"), None)
            .await
    }

    /// Revokes a certificate (by the id `certificates` lists) with an RFC 5280 reason code.
    pub async fn revoke_certificate(
        &self,
        id: &str,
        reason: Option<u8>,
    ) -> Result<RevokedView, Error> {
        let path = format!("/certificates/{id}/revoke");
        self.with_body(Method::POST, &path, &RevokeCertificate { reason })
            .await
    }

    /// The exchanges recorded for a credential's accounts, in order.
    pub async fn requests(&self, kid: &str) -> Result<Vec<Exchange>, Error> {
        self.typed(Method::GET, &format!("/eab/{kid}/requests"), None)
            .await
    }

    /// Sets a credential's fault plan (as read from a plan file).
    pub async fn set_faults(&self, kid: &str, plan: &PlanFile) -> Result<CredentialView, Error> {
        self.with_body(Method::PUT, &format!("/eab/{kid}/faults"), plan)
            .await
    }

    /// A credential's fault plan, if it has one.
    pub async fn faults(&self, kid: &str) -> Result<Option<PlanFile>, Error> {
        self.typed(Method::GET, &format!("/eab/{kid}/faults"), None)
            .await
    }

    /// Removes a credential's fault plan.
    pub async fn clear_faults(&self, kid: &str) -> Result<(), Error> {
        self.call(Method::DELETE, &format!("/eab/{kid}/faults"), None)
            .await
            .map(drop)
    }

    /// The server's fault seed and every fault injected so far.
    pub async fn fault_events(&self) -> Result<FaultEventsView, Error> {
        self.typed(Method::GET, "/faults/events", None).await
    }

    /// Sets the mock DNS's records of `name`.
    pub async fn set_dns(&self, name: &str, records: &Records) -> Result<Records, Error> {
        self.with_body(Method::PUT, &format!("/dns/{name}"), records)
            .await
    }

    /// The mock DNS's records of `name` (empty when it has none).
    pub async fn dns(&self, name: &str) -> Result<Records, Error> {
        self.typed(Method::GET, &format!("/dns/{name}"), None).await
    }

    /// Removes the mock DNS's records of `name`.
    pub async fn clear_dns(&self, name: &str) -> Result<(), Error> {
        self.call(Method::DELETE, &format!("/dns/{name}"), None)
            .await
            .map(drop)
    }
}
