//! A client of the mock's admin API: the one `acme-harness admin` uses against a running
//! `acme-harness serve`, and tests use against any mock (organisations, departments,
//! delegations, EAB credentials, certificates, fault plans, recorded requests, DNS records).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

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
}
