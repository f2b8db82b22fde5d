//! Pebble's management API (`managementListenAddress`, HTTPS with the ACME listener's
//! certificate): the CA certificates suites trust issued certificates with, a certificate's
//! status by serial, and ARI answers set by hand. Bodies and status codes follow Pebble's
//! `ManagementHandler` (wfe/wfe.go); docs/pebble.md lists what differs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use acme_proto::ProblemType;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ca::ListenerIdentity;
use crate::http::{AcmeError, AppState};

/// A running management API; dropping it stops it.
#[derive(Debug)]
pub struct ManagementServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for ManagementServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves the management API of `state`'s server on `addr` with `identity`.
pub async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    identity: ListenerIdentity,
) -> std::io::Result<ManagementServer> {
    let acceptor = crate::server::tls_acceptor(identity).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(crate::server::accept_loop(
        listener,
        acceptor,
        router(state),
        stopped,
        crate::server::Limits::default(),
        Arc::new(AtomicU64::new(0)),
    ));
    Ok(ManagementServer { addr, stop })
}

/// The management routes (tested in-process with `oneshot`).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/roots/{n}", any(roots))
        .route("/root-keys/{n}", any(no_key))
        .route("/intermediates/{n}", any(intermediates))
        .route("/intermediate-keys/{n}", any(no_key))
        .route("/cert-status-by-serial/{serial}", any(cert_status))
        .route("/set-renewal-info/", any(set_renewal_info))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(state)
}

type Shared = State<Arc<AppState>>;

/// Pebble's chain index: a decimal within range, else 404 with an empty body.
fn chain_index(text: &str) -> Option<usize> {
    let n: usize = text.parse().ok()?;
    (n < crate::ca::Ca::CHAINS).then_some(n)
}

/// A PEM answer with `rel="alternate"` links to the other chains' same resource.
fn pem_response(
    (uri, headers): (&Uri, &HeaderMap),
    prefix: &str,
    index: usize,
    pem: String,
) -> Response {
    // HTTP/1.1 names the host in Host, HTTP/2 in the request's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    let mut response = (StatusCode::OK, pem).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pem-certificate-chain; charset=utf-8"),
    );
    for other in (0..crate::ca::Ca::CHAINS).filter(|i| *i != index) {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "<https://{host}/{prefix}/{other}>;rel=\"alternate\""
        )) {
            h.append(header::LINK, v);
        }
    }
    response
}

/// `/roots/N`: the root(s) chain N ends at.
async fn roots(
    State(state): Shared,
    Path(n): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match chain_index(&n).and_then(|i| Some((i, state.ca.chain_roots_pem(i)?.to_owned()))) {
        Some((i, pem)) => pem_response((&uri, &headers), "roots", i, pem),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/intermediates/N`: the CA(s) that sign leaves on chain N.
async fn intermediates(
    State(state): Shared,
    Path(n): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match chain_index(&n).and_then(|i| Some((i, state.ca.issuing_pem(i)?))) {
        Some((i, pem)) => pem_response((&uri, &headers), "intermediates", i, pem),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/root-keys/N`, `/intermediate-keys/N`: Pebble exports RSA CA keys only, and answers 404
/// for ECDSA ones (the `keyAlgorithm: "ecdsa"` of its example configuration); the mock's
/// CA keys are not exported at all.
async fn no_key() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// Pebble's certificate status body, members in its order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CertStatus {
    status: &'static str,
    serial: String,
    certificate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<u8>,
}

/// JSON with Go's `MarshalIndent(v, "", "   ")` layout.
fn go_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    let _ = value.serialize(&mut ser);
    out
}

fn normalise_serial(hex: &str) -> String {
    let trimmed = hex.trim_start_matches('0').to_ascii_lowercase();
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed
    }
}

/// `/cert-status-by-serial/<hex>`: 400 for non-hex, 404 for unknown, else the status.
async fn cert_status(State(state): Shared, Path(serial): Path<String>) -> Response {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let wanted = normalise_serial(&serial);
    let Some(cert) = state
        .store
        .certs()
        .into_iter()
        .find(|c| normalise_serial(&c.serial) == wanted)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = CertStatus {
        status: if cert.revoked.is_some() {
            "Revoked"
        } else {
            "Valid"
        },
        serial: wanted,
        certificate: cert.leaf_pem.clone(),
        reason: cert.revoked.filter(|r| *r != 0),
    };
    let mut response = (StatusCode::OK, go_json(&body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `POST /set-renewal-info/` `{"certificate": PEM, "ariResponse": "..."}`: the renewalInfo
/// answer for that certificate from now on; an empty `ariResponse` restores the computed one.
async fn set_renewal_info(
    State(state): Shared,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut response = match set_renewal_info_inner(&state, &method, &headers, &body) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    };
    if method != Method::POST {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Ok(nonce) = HeaderValue::from_str(&state.store.nonces.issue()) {
        response.headers_mut().insert("replay-nonce", nonce);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=0, no-cache"),
    );
    response
}

fn set_renewal_info_inner(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), AcmeError> {
    if headers
        .get(header::USER_AGENT)
        .is_none_or(|v| v.as_bytes().is_empty())
    {
        return Err(AcmeError::malformed(
            "All requests MUST include a User-Agent header",
        ));
    }
    if method != Method::POST {
        return Err(AcmeError::new(
            ProblemType::Malformed,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| AcmeError::malformed(format!("Unable to unmarshal request body: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| AcmeError::malformed("The request body is not a JSON object"))?;
    // Go's encoding/json: keys match case-insensitively (harnesses send `ARIResponse`).
    let member = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let text = |name: &str| -> Result<String, AcmeError> {
        match member(name) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(AcmeError::malformed(format!("{name} must be a string"))),
        }
    };
    let pem = text("certificate")?;
    let answer = text("ariResponse")?;
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| AcmeError::malformed("Unable to decode the certificate PEM"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| AcmeError::malformed(format!("Unable to parse the certificate: {e}")))?;
    let serial: String = parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let wanted = normalise_serial(&serial);
    let cert = state
        .store
        .certs()
        .into_iter()
        .find(|c| normalise_serial(&c.serial) == wanted)
        .ok_or_else(|| {
            AcmeError::new(
                ProblemType::Malformed,
                StatusCode::NOT_FOUND,
                format!("No certificate with serial {wanted} was issued"),
            )
        })?;
    if answer.is_empty() {
        state.renewal_overrides.remove(&cert.serial);
    } else {
        state.renewal_overrides.insert(cert.serial, answer);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(
        state: &Arc<AppState>,
        method: Method,
        uri: &str,
        body: &str,
        ua: bool,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost:15000");
        if ua {
            request = request.header("user-agent", "test");
        }
        let response = router(state.clone())
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    #[tokio::test]
    async fn roots_and_intermediates_per_chain_with_alternates() {
        let state = Arc::new(crate::http::test_state());
        let (status, headers, body) = call(&state, Method::GET, "/roots/0", "", false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/pem-certificate-chain; charset=utf-8"
        );
        assert_eq!(
            headers["link"],
            "<https://localhost:15000/roots/1>;rel=\"alternate\""
        );
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(text, state.ca.chain_roots_pem(0).unwrap());
        let (status, _, body) = call(&state, Method::POST, "/roots/1", "", false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(String::from_utf8(body).unwrap().matches("BEGIN").count(), 2);
        let (status, _, body) = call(&state, Method::GET, "/intermediates/0", "", false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(String::from_utf8(body).unwrap().matches("BEGIN").count(), 2);
        for path in [
            "/roots/2",
            "/roots/x",
            "/intermediates/-1",
            "/root-keys/0",
            "/intermediate-keys/0",
        ] {
            let (status, _, body) = call(&state, Method::GET, path, "", false).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(body.is_empty(), "{path}");
        }
        let (status, _, body) = call(&state, Method::GET, "/nowhere", "", false).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, b"404 page not found\n");
    }

    #[tokio::test]
    async fn cert_status_and_set_renewal_info_refusals() {
        let state = Arc::new(crate::http::test_state());
        let (status, _, body) =
            call(&state, Method::GET, "/cert-status-by-serial/zz", "", false).await;
        assert_eq!((status, body.len()), (StatusCode::BAD_REQUEST, 0));
        let (status, _, _) = call(
            &state,
            Method::GET,
            "/cert-status-by-serial/0abc",
            "",
            false,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&state, Method::POST, "/set-renewal-info/", "{}", false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no User-Agent");
        let (status, headers, _) =
            call(&state, Method::GET, "/set-renewal-info/", "{}", true).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers["allow"], "POST");
        assert!(headers.contains_key("replay-nonce"));
        let (status, _, body) = call(
            &state,
            Method::POST,
            "/set-renewal-info/",
            r#"{"Certificate": "not pem", "ARIResponse": "{}"}"#,
            true,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8(body).unwrap().contains("malformed"));
    }

    #[test]
    fn go_layout_and_serials() {
        let body = CertStatus {
            status: "Valid",
            serial: "ab".into(),
            certificate: "PEM".into(),
            reason: None,
        };
        assert_eq!(
            String::from_utf8(go_json(&body)).unwrap(),
            "{\n   \"Status\": \"Valid\",\n   \"Serial\": \"ab\",\n   \"Certificate\": \"PEM\"\n}"
        );
        assert_eq!(normalise_serial("00AB"), "ab");
    }
}
