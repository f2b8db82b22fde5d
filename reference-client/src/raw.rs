//! The raw transport: one ACME exchange per call, nothing retried, nothing waited for,
//! nothing interpreted. A signed request is built from exactly the key, `kid`, nonce, URL and
//! payload given, or sent as the bytes given, so that tools which must send what a broken
//! client sends (the server suites, the load generator, the mock's own tests) use the same
//! layer as the [`Client`](crate::Client), which puts its retry and polling policy on top
//! (as instant-acme layers `post` over `post_attempt`).
//!
//! ```no_run
//! # async fn run() -> reference_client::Result<()> {
//! use reference_client::raw::{Raw, http_client, tls_config};
//! let tls = tls_config(&["ca-bundle.pem".into()])?;
//! let raw = Raw::new(http_client(tls, "my-test/1", None)?);
//! let directory = raw.get("https://127.0.0.1:14000/v2/InCommonRSAOV").await?;
//! let directory: acme_proto::Directory = directory.json()?;
//! let nonce = raw.new_nonce(&directory.new_nonce).await?;
//! let key = acme_proto::AccountKey::generate(acme_proto::SignatureAlgorithm::Es256)
//!     .map_err(|e| reference_client::Error::Key(e.to_string()))?;
//! // A newAccount without EAB: Sectigo refuses it with externalAccountRequired.
//! let payload = serde_json::json!({"termsOfServiceAgreed": true});
//! let answer = raw.post_signed(&key, None, &nonce, &directory.new_account, Some(&payload)).await?;
//! assert_eq!(answer.status, 400);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use acme_proto::jws::FlattenedJws;
use acme_proto::{AccountKey, JOSE_CONTENT_TYPE, Problem};
use reqwest::header::{self, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::parse_retry_after;
use crate::error::{Error, Result};

/// Where the system keeps its CA bundle, by distribution.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The one trust builder: a rustls client configuration (aws-lc-rs) that trusts exactly the
/// certificates in the PEM files `ca_files` (a private CA such as the mock's), or, when none
/// is given, the system's CA bundle. The error names the file that holds no certificate.
pub fn tls_config(ca_files: &[PathBuf]) -> Result<rustls::ClientConfig> {
    let files: Vec<PathBuf> = if ca_files.is_empty() {
        SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .take(1)
            .collect()
    } else {
        ca_files.to_vec()
    };
    if files.is_empty() {
        return Err(Error::InvalidInput(
            "no CA bundle found on this system; give the server's CA with --ca-file".into(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for path in &files {
        let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| Error::io(path, e))?;
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 {
            return Err(Error::InvalidInput(format!(
                "{} holds no PEM certificate to trust",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidInput(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTP client over `tls` with a User-Agent (RFC 8555 §6.1 asks for one) and, when
/// given, a timeout for each exchange.
pub fn http_client(
    tls: rustls::ClientConfig,
    user_agent: &str,
    request_timeout: Option<Duration>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(30));
    if let Some(t) = request_timeout {
        builder = builder.timeout(t);
    }
    builder.build().map_err(|source| Error::Transport {
        url: String::new(),
        source,
    })
}

/// An HTTP answer, read whole, with the request URL: what every layer above the raw
/// transport reads.
#[derive(Debug, Clone)]
pub struct Response {
    /// The request URL.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Unexpected {
            url: self.url.clone(),
            status: self.status,
            retry_after: None,
            detail: format!(
                "the body is not the JSON expected ({e}): {}",
                snippet(&self.body)
            ),
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The Replay-Nonce header.
    pub fn nonce(&self) -> Option<&str> {
        self.header("replay-nonce")
    }

    /// The problem document, when the answer is one.
    pub fn problem(&self) -> Option<Problem> {
        problem_of(self)
    }

    /// Whether the answer is an RFC 7807 problem document, strictly: media type
    /// `application/problem+json` and a string `type` member (what the server suites demand
    /// of a server; [`Response::problem`] is lenient, as a client must be).
    pub fn is_problem_document(&self) -> bool {
        self.header("content-type")
            .is_some_and(|ct| ct.starts_with(acme_proto::PROBLEM_CONTENT_TYPE))
            && self
                .json_value()
                .is_some_and(|p| p.get("type").is_some_and(Value::is_string))
    }

    /// The short name of the problem type (`badNonce` for
    /// `urn:ietf:params:acme:error:badNonce`), when the answer is a problem document.
    pub fn problem_name(&self) -> Option<String> {
        if !self.is_problem_document() {
            return None;
        }
        let value = self.json_value()?;
        let t = value.get("type")?.as_str()?;
        Some(t.rsplit(':').next().unwrap_or(t).to_owned())
    }

    /// The body as a JSON value, when it is JSON.
    pub fn json_value(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the answer is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// One line for messages: status, content type and the start of the body.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.status,
            self.header("content-type").unwrap_or("-"),
            snippet(&self.body)
        )
    }

    /// The Location header, which RFC 8555 requires on created resources.
    pub fn location(&self) -> Result<String> {
        self.header("location")
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected {
                url: self.url.clone(),
                status: self.status,
                retry_after: None,
                detail: "no Location header".into(),
            })
    }

    /// The Retry-After header in either form (RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    }

    /// The targets of `Link` headers with `rel` (RFC 8288), e.g. `alternate` chains.
    pub fn links(&self, rel: &str) -> Vec<String> {
        self.headers
            .get_all(header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_links)
            .filter(|(_, r)| r.split_whitespace().any(|r| r == rel))
            .map(|(url, _)| url)
            .collect()
    }
}

/// Parses `Link` header text into (target, rel) pairs.
fn parse_links(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Targets are in <...>; a comma inside <> would split a naive parse, so walk the text.
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let url = rest[start + 1..start + end].to_owned();
        rest = &rest[start + end + 1..];
        let params_end = rest.find('<').unwrap_or(rest.len());
        let params = &rest[..params_end];
        let rel = params
            .split(';')
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("rel"))
                    .then(|| v.trim().trim_end_matches(',').trim().trim_matches('"'))
            })
            .next()
            .unwrap_or_default()
            .to_owned();
        out.push((url, rel));
    }
    out
}

/// The problem document, when the answer is one (RFC 7807; `application/json` accepted too).
pub(crate) fn problem_of(response: &Response) -> Option<Problem> {
    let ct = response.header("content-type").unwrap_or_default();
    if !(ct.starts_with(acme_proto::PROBLEM_CONTENT_TYPE) || ct.starts_with("application/json")) {
        return None;
    }
    serde_json::from_slice(&response.body).ok()
}

/// The start of a body, whitespace folded, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    cut
}

/// Sends single requests: see the module documentation.
#[derive(Clone, Debug)]
pub struct Raw {
    http: reqwest::Client,
}

impl Raw {
    /// A transport over `http` (see [`http_client`]).
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A plain GET (the directory, ARI renewalInfo; a resource when a test means to send the
    /// GET a broken client sends).
    pub async fn get(&self, url: &str) -> Result<Response> {
        send(self.http.get(url), url).await
    }

    /// A HEAD (newNonce).
    pub async fn head(&self, url: &str) -> Result<Response> {
        send(self.http.head(url), url).await
    }

    /// One HEAD to `new_nonce_url`; its Replay-Nonce, or an error naming what came instead.
    pub async fn new_nonce(&self, new_nonce_url: &str) -> Result<String> {
        let r = self.head(new_nonce_url).await?;
        r.nonce()
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected {
                url: new_nonce_url.to_owned(),
                status: r.status,
                retry_after: None,
                detail: "newNonce gave no Replay-Nonce header".into(),
            })
    }

    /// POSTs `body` with `content_type` as it is.
    pub async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> Result<Response> {
        send(
            self.http
                .post(url)
                .header(header::CONTENT_TYPE, content_type)
                .body(body),
            url,
        )
        .await
    }

    /// POSTs a JWS as `application/jose+json`.
    pub async fn post_jws(&self, url: &str, jws: &FlattenedJws) -> Result<Response> {
        let body = serde_json::to_vec(jws).map_err(|e| Error::Key(e.to_string()))?;
        self.post(url, JOSE_CONTENT_TYPE, body).await
    }

    /// One signed request: `payload` signed by `key` with `kid` (the account URL) or, without
    /// one, the `jwk`, for `nonce` and `url`; `None` is POST-as-GET.
    pub async fn post_signed(
        &self,
        key: &AccountKey,
        kid: Option<&str>,
        nonce: &str,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Response> {
        let jws = key
            .sign_request(kid, nonce, url, payload)
            .map_err(|e| Error::Key(e.to_string()))?;
        self.post_jws(url, &jws).await
    }
}

/// Sends one request and reads the answer whole.
async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<Response> {
    let r = request.send().await.map_err(|source| Error::Transport {
        url: url.to_owned(),
        source,
    })?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.map_err(|source| Error::Transport {
        url: url.to_owned(),
        source,
    })?;
    Ok(Response {
        url: url.to_owned(),
        status,
        headers,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let links = parse_links(
            r#"<https://x/v2/dir>;rel="index", <https://x/cert/1/1>; rel="alternate", <https://x/cert/1/2>;rel=alternate"#,
        );
        assert_eq!(
            links,
            vec![
                ("https://x/v2/dir".into(), "index".into()),
                ("https://x/cert/1/1".into(), "alternate".into()),
                ("https://x/cert/1/2".into(), "alternate".into()),
            ]
        );
    }
}
