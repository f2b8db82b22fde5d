//! Orders (RFC 8555 §7.4): newOrder, authorizations and challenges, finalize, polling,
//! certificate download with alternate chains; revocation (§7.6) and ARI renewalInfo.

use std::time::Duration;

use acme_proto::{
    Authorization, Identifier, KeyAuthorization, NewOrder, Order, Secret, Status, b64,
};
use serde_json::json;

use crate::account::{Account, key_from_pkcs8, pem_private_key_der};
use crate::cert::{CertKey, CertKeyType, Chain};
use crate::client::{Client, Progress, Signer};
use crate::error::{Error, Result};
use crate::solver::{ChallengeData, Solver};

/// How many times finalize is sent while the CA answers it with a server error and the order
/// stays `ready` (the CSR was not taken).
const FINALIZE_ATTEMPTS: u32 = 4;

/// An order and its URL.
#[derive(Clone, Debug)]
pub struct OrderHandle {
    /// The order URL (Location of newOrder).
    pub url: String,
    /// The order as last fetched.
    pub order: Order,
}

/// Where the certificate key comes from.
#[derive(Debug)]
pub enum CsrSource {
    /// A fresh key of this type, made by the client.
    Generate(CertKeyType),
    /// A CSR the user made (DER); the user keeps the key.
    Given(Vec<u8>),
}

/// What to issue.
#[derive(Debug)]
pub struct IssueRequest {
    /// DNS names, wildcards as `*.example.org`.
    pub names: Vec<String>,
    /// Key and CSR.
    pub csr: CsrSource,
    /// Choose the chain whose issuer has this common name, when the CA offers several.
    pub preferred_chain: Option<String>,
}

/// What an issuance produced.
#[derive(Debug)]
pub struct Issued {
    /// The order.
    pub order: OrderHandle,
    /// The chosen chain.
    pub chain: Chain,
    /// Every chain the CA offered (default first).
    pub alternatives: Vec<Chain>,
    /// The certificate key, when the client made it.
    pub key: Option<CertKey>,
}

/// Revocation reasons (RFC 5280 §5.3.1) that ACME servers accept.
pub const REVOCATION_REASONS: &[(&str, u8)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
];

fn dns_names(names: &[String]) -> Result<Vec<Identifier>> {
    if names.is_empty() {
        return Err(Error::InvalidInput(
            "no name to order: give at least one -d NAME".into(),
        ));
    }
    Ok(names
        .iter()
        .map(|n| Identifier::dns(n.trim().trim_end_matches('.').to_ascii_lowercase()))
        .collect())
}

impl Account {
    /// Creates an order for `names` (RFC 8555 §7.4).
    pub async fn new_order(&self, names: &[String]) -> Result<OrderHandle> {
        let payload = NewOrder {
            identifiers: dns_names(names)?,
            not_before: None,
            not_after: None,
            profile: None,
            replaces: None,
        };
        let payload = serde_json::to_value(&payload).map_err(|e| Error::Key(e.to_string()))?;
        let url = self.client.directory().new_order.clone();
        let response = self.post("newOrder", &url, Some(&payload)).await?;
        Ok(OrderHandle {
            url: response.location()?,
            order: response.json()?,
        })
    }

    /// Fetches an order (POST-as-GET), with the Retry-After it came with.
    pub async fn fetch_order(&self, url: &str) -> Result<(Order, Option<Duration>)> {
        let r = self.post("order", url, None).await?;
        Ok((r.json()?, r.retry_after()))
    }

    /// Fetches an authorization (POST-as-GET), with its Retry-After.
    pub async fn fetch_authorization(
        &self,
        url: &str,
    ) -> Result<(Authorization, Option<Duration>)> {
        let r = self.post("authorization", url, None).await?;
        Ok((r.json()?, r.retry_after()))
    }

    /// Brings one authorization to `valid`: skips it when it already is (whatever challenge
    /// types it lists, e.g. Sectigo's `sectigo-email-01`), else answers the first challenge
    /// a solver handles, in the solvers' order.
    pub async fn authorize(&self, url: &str, solvers: &[&dyn Solver]) -> Result<()> {
        let (authz, _) = self.fetch_authorization(url).await?;
        let name = authz.identifier.value.clone();
        let wildcard = authz.wildcard.unwrap_or(false);
        let shown = if wildcard {
            format!("*.{name}")
        } else {
            name.clone()
        };
        match authz.status {
            Status::Valid => {
                self.client
                    .progress(Progress::AuthorizationAlreadyValid { identifier: shown });
                return Ok(());
            }
            Status::Pending => {}
            other => {
                return Err(Error::AuthorizationFailed {
                    identifier: shown,
                    status: other,
                    problem: authz
                        .challenges
                        .iter()
                        .find_map(|c| c.error.clone())
                        .map(Box::new),
                });
            }
        }
        let pick = solvers.iter().find_map(|s| {
            if !s.supports(wildcard) {
                return None;
            }
            authz
                .challenges
                .iter()
                .find(|c| c.kind == s.challenge_type() && c.token.is_some())
                .map(|c| (*s, c))
        });
        let Some((solver, challenge)) = pick else {
            return Err(Error::NoSolver {
                identifier: shown,
                offered: authz
                    .challenges
                    .iter()
                    .map(|c| c.kind.to_string())
                    .collect(),
                configured: solvers
                    .iter()
                    .map(|s| s.challenge_type().to_string())
                    .collect(),
            });
        };
        let token = challenge.token.clone().unwrap_or_default();
        let data = ChallengeData {
            identifier: name,
            wildcard,
            kind: challenge.kind.clone(),
            key_authorization: KeyAuthorization::new(&token, &self.key.jwk().thumbprint()),
            token,
        };
        solver.present(&data).await?;
        let outcome = self.validate(url, &challenge.url, &data, &shown).await;
        let cleaned = solver.cleanup(&data).await;
        outcome?;
        cleaned
    }

    async fn validate(
        &self,
        authz_url: &str,
        challenge_url: &str,
        data: &ChallengeData,
        shown: &str,
    ) -> Result<()> {
        // RFC 8555 §7.5.1: an empty object asks the CA to validate.
        self.post("challenge", challenge_url, Some(&json!({})))
            .await?;
        self.client.progress(Progress::ChallengeTriggered {
            identifier: shown.to_owned(),
            kind: data.kind.to_string(),
        });
        // The CA needs a moment to validate; the authorization was read just before.
        self.client
            .wait(
                &format!("validation of {shown}"),
                self.client.backoff(0),
                false,
            )
            .await?;
        let what = format!("authorization for {shown} pending");
        let authz = self
            .client
            .poll(
                &what,
                async || self.fetch_authorization(authz_url).await,
                |a: &Authorization| !matches!(a.status, Status::Pending | Status::Processing),
            )
            .await?;
        if authz.status == Status::Valid {
            return Ok(());
        }
        let problem = authz
            .challenges
            .iter()
            .find(|c| c.kind == data.kind)
            .and_then(|c| c.error.clone())
            .or_else(|| authz.challenges.iter().find_map(|c| c.error.clone()))
            .map(Box::new);
        Err(Error::AuthorizationFailed {
            identifier: shown.to_owned(),
            status: authz.status,
            problem,
        })
    }

    /// Polls an order until it leaves `from` states, honouring Retry-After.
    async fn wait_order(&self, url: &str, what: &str, waiting: &[Status]) -> Result<Order> {
        self.client
            .poll(
                what,
                async || self.fetch_order(url).await,
                |o: &Order| !waiting.contains(&o.status),
            )
            .await
    }

    /// Finalizes a ready order with `csr_der` and waits for it to become valid
    /// (RFC 8555 §7.4; Sectigo keeps it `processing` with Retry-After for a while). A server
    /// error at finalize is followed by a look at the order: the CSR is sent again (up to
    /// four times in all, with backoff) only while the order is still `ready`.
    pub async fn finalize(&self, order: &OrderHandle, csr_der: &[u8]) -> Result<Order> {
        let payload = json!({ "csr": b64::encode(csr_der) });
        let mut attempt = 0;
        let (after, retry_after) = loop {
            match self
                .post("finalize", &order.order.finalize, Some(&payload))
                .await
            {
                Ok(r) => {
                    self.client.progress(Progress::Finalized {
                        order: order.url.clone(),
                    });
                    break (r.json::<Order>()?, r.retry_after());
                }
                // Sectigo answers finalize with serverInternal now and then (lego #1183). The
                // order tells whether the CA took the CSR anyway: processing or valid, follow
                // it; still ready, the CSR was not taken, so send it again, a few times.
                // An HTML 5xx from a proxy in front of the CA (Error::Unexpected), or a
                // connection that broke before the answer, likewise.
                Err(e) if server_error_or_lost(&e) => {
                    let (now, retry_after) = self.fetch_order(&order.url).await?;
                    match now.status {
                        Status::Processing | Status::Valid => {
                            // The CA took the CSR despite the error.
                            self.client.progress(Progress::Finalized {
                                order: order.url.clone(),
                            });
                            break (now, retry_after);
                        }
                        Status::Ready if attempt + 1 < FINALIZE_ATTEMPTS => {
                            // The error page's Retry-After if it had one (a proxy's 502
                            // may), else the client's backoff.
                            let (delay, server_asked) = match e.retry_after() {
                                Some(d) => (d, true),
                                None => (self.client.backoff(attempt + 1), false),
                            };
                            self.client
                                .wait(
                                    "finalize got no answer or a server error, order still ready",
                                    delay,
                                    server_asked,
                                )
                                .await?;
                            attempt += 1;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let order_now = if after.status == Status::Valid {
            after
        } else {
            if let Some(d) = retry_after {
                self.client.wait("order processing", d, true).await?;
            }
            // `ready` right after finalize happens too (acme.sh d2539c3f): keep polling.
            self.wait_order(
                &order.url,
                "order processing",
                &[Status::Processing, Status::Ready, Status::Pending],
            )
            .await?
        };
        if order_now.status != Status::Valid {
            return Err(Error::OrderFailed {
                status: order_now.status,
                problem: order_now.error.map(Box::new),
            });
        }
        Ok(order_now)
    }

    /// Downloads the certificate chain at `url` and every alternate chain the CA links
    /// (`Link: rel="alternate"`, RFC 8555 §7.4.2). The default chain comes first.
    pub async fn download(&self, url: &str) -> Result<Vec<Chain>> {
        let r = self.post("certificate download", url, None).await?;
        let text = String::from_utf8(r.body.clone()).map_err(|_| Error::Unexpected {
            url: url.to_owned(),
            status: r.status,
            retry_after: None,
            detail: "the certificate chain is not text".into(),
        })?;
        let mut chains = vec![Chain::from_pem(&text)?];
        for alt in r.links("alternate") {
            let r = self.post("alternate chain download", &alt, None).await?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            chains.push(Chain::from_pem(&text)?);
        }
        Ok(chains)
    }

    /// The whole issuance: newOrder, authorizations (skipping valid ones), finalize with a
    /// fresh key (or the given CSR), download, chain choice.
    pub async fn issue(&self, request: IssueRequest, solvers: &[&dyn Solver]) -> Result<Issued> {
        let (key, csr) = match request.csr {
            CsrSource::Generate(kind) => {
                let key = CertKey::generate(kind)?;
                let csr = key.csr(&request.names)?;
                (Some(key), csr)
            }
            CsrSource::Given(der) => (None, der),
        };
        let mut handle = self.new_order(&request.names).await?;
        if handle.order.status == Status::Pending {
            for url in handle.order.authorizations.clone() {
                self.authorize(&url, solvers).await?;
            }
        }
        if handle.order.status != Status::Ready && handle.order.status != Status::Valid {
            handle.order = self
                .wait_order(&handle.url, "order pending", &[Status::Pending])
                .await?;
        }
        match handle.order.status {
            Status::Ready => {
                handle.order = self.finalize(&handle, &csr).await?;
            }
            Status::Valid | Status::Processing => {
                handle.order = self
                    .wait_order(&handle.url, "order processing", &[Status::Processing])
                    .await?;
            }
            other => {
                return Err(Error::OrderFailed {
                    status: other,
                    problem: handle.order.error.clone().map(Box::new),
                });
            }
        }
        let cert_url = handle
            .order
            .certificate
            .clone()
            .ok_or_else(|| Error::Unexpected {
                url: handle.url.clone(),
                status: 200,
                retry_after: None,
                detail: "the order is valid but names no certificate URL".into(),
            })?;
        let chains = self.download(&cert_url).await?;
        let chosen = Chain::choose(&chains, request.preferred_chain.as_deref())
            .unwrap_or(&chains[0])
            .clone();
        Ok(Issued {
            order: handle,
            chain: chosen,
            alternatives: chains,
            key,
        })
    }

    /// Revokes a certificate (DER) as the account that ordered it (RFC 8555 §7.6).
    pub async fn revoke(&self, cert_der: &[u8], reason: Option<u8>) -> Result<()> {
        let url = self.client.directory().revoke_cert.clone();
        self.post("revokeCert", &url, Some(&revocation(cert_der, reason)))
            .await
            .map(|_| ())
    }
}

fn revocation(cert_der: &[u8], reason: Option<u8>) -> serde_json::Value {
    let mut payload = json!({ "certificate": b64::encode(cert_der) });
    if let Some(r) = reason {
        payload["reason"] = r.into();
    }
    payload
}

/// The ARI suggested renewal window (RFC 9773 §4.2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RenewalWindow {
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub start: time::OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    pub end: time::OffsetDateTime,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenewalInfo {
    suggested_window: RenewalWindow,
}

impl Client {
    /// Revokes a certificate with its own private key (PKCS#8 PEM) instead of an account
    /// (RFC 8555 §7.6: the JWS carries the certificate key as `jwk`).
    pub async fn revoke_with_cert_key(
        &self,
        cert_der: &[u8],
        key_pem: &Secret<String>,
        reason: Option<u8>,
    ) -> Result<()> {
        let der = pem_private_key_der(key_pem.expose())?;
        let key = key_from_pkcs8(der.expose())?;
        let url = self.directory().revoke_cert.clone();
        self.post(
            "revokeCert",
            &url,
            Signer {
                key: &key,
                kid: None,
            },
            Some(&revocation(cert_der, reason)),
        )
        .await
        .map(|_| ())
    }

    /// The CA's suggested renewal window for a certificate (ARI, RFC 9773), or `None` when
    /// the directory has no `renewalInfo`.
    pub async fn renewal_info(&self, cert_der: &[u8]) -> Result<Option<RenewalWindow>> {
        let Some(base) = self.directory().renewal_info.clone() else {
            return Ok(None);
        };
        let id = crate::cert::ari_cert_id(cert_der)?;
        let url = format!("{}/{id}", base.trim_end_matches('/'));
        let r = self.get("renewalInfo", &url).await?;
        if r.status != 200 {
            return Err(Error::Unexpected {
                url,
                status: r.status,
                retry_after: None,
                detail: "renewalInfo did not answer 200".into(),
            });
        }
        Ok(Some(r.json::<RenewalInfo>()?.suggested_window))
    }
}

/// A finalize that may or may not have been taken: the CA answered a 5xx (its own problem
/// or a proxy's page), or the connection broke after the request was sent.
fn server_error_or_lost(e: &Error) -> bool {
    match e {
        Error::Refused { status, .. } | Error::Unexpected { status, .. } => *status >= 500,
        Error::Transport { source, .. } => !source.is_connect(),
        _ => false,
    }
}
