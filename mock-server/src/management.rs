//! Pebble's management API, served by the Pebble stand-in (crate pebble-compat) on its
//! `managementListenAddress` (HTTPS with the ACME listener's certificate), and under
//! `/admin/pebble` of the admin API for every profile: the CA certificates suites trust issued certificates with and their keys,
//! a certificate's status by serial, and ARI answers set by hand. Bodies and status codes
//! follow Pebble's `ManagementHandler` (wfe/wfe.go); docs/pebble.md lists what differs.
//!
//! The key endpoints send private keys on purpose, as Pebble does: they belong to a test CA
//! made in memory for this run ([`crate::ca::Ca::pebble`]). A CA kept in a data directory
//! has none to send ([`crate::ca::Ca::root_key_pem`]). Nothing here logs a body.

use std::net::SocketAddr;
use std::sync::Arc;

use acme_proto::ProblemType;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde::Serialize;

use crate::ca::ListenerIdentity;
use crate::http::{AcmeError, AppState};

/// A running management API; dropping it stops it.
pub type ManagementServer = crate::server::SideService;

/// Serves the management API of `state`'s server on `addr` with `identity`.
pub async fn serve(
    state: Arc<AppState>,
    addr: SocketAddr,
    identity: ListenerIdentity,
) -> std::io::Result<ManagementServer> {
    crate::server::serve_side(router(state), addr, identity).await
}

/// The management routes (tested in-process with `oneshot`).
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for (prefix, content_type, pick) in CHAIN_ENDPOINTS {
        let answer = move |State(state): Shared,
                           Path(n): Path<String>,
                           OriginalUri(uri): OriginalUri,
                           headers: HeaderMap| async move {
            chain_answer(&state, (&uri, &headers), (prefix, &n), content_type, pick)
        };
        router = router.route(&format!("/{prefix}/{{n}}"), any(answer));
    }
    router
        .route("/cert-status-by-serial/{serial}", any(cert_status))
        .route("/set-renewal-info/", any(set_renewal_info))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(state)
}

type Shared = State<Arc<AppState>>;

/// Pebble's chain index: a decimal within `[0, chains)`, else `None` (404, empty body).
fn chain_index(text: &str, chains: usize) -> Option<usize> {
    let n: usize = text.parse().ok()?;
    (n < chains).then_some(n)
}

/// Content types of Pebble's certificate and key answers.
const PEM_CHAIN: &str = "application/pem-certificate-chain; charset=utf-8";
const PEM_FILE: &str = "application/x-pem-file; charset=utf-8";

/// What chain N gives at one of the four chain endpoints.
type Pick = fn(&crate::ca::Ca, usize) -> Option<String>;

/// The four chain endpoints: path prefix, content type, what each answers for chain N.
const CHAIN_ENDPOINTS: [(&str, &str, Pick); 4] = [
    // The root(s) chain N ends at.
    ("roots", PEM_CHAIN, |ca, i| {
        ca.chain_roots_pem(i).map(str::to_owned)
    }),
    // The CA(s) that sign leaves on chain N (the extra intermediates of
    // `PEBBLE_CHAIN_LENGTH` > 1 are not exposed, as in Pebble).
    ("intermediates", PEM_CHAIN, |ca, i| {
        ca.issuing_pem(i).map(str::to_owned)
    }),
    // The private key(s) of chain N's root(s): PKCS#1 for RSA, as Pebble sends them, PKCS#8
    // for ECDSA ([`crate::ca::export_key_pem`]).
    ("root-keys", PEM_FILE, |ca, i| {
        ca.root_key_pem(i).map(|k| k.expose().clone())
    }),
    // The private key(s) of the CA(s) that sign leaves on chain N.
    ("intermediate-keys", PEM_FILE, |ca, i| {
        ca.issuing_key_pem(i).map(|k| k.expose().clone())
    }),
];

/// Answers one of the four chain endpoints (`/<prefix>/N`): the PEM `pick` gives for chain
/// N, as `content_type`, with `rel="alternate"` links to the same resource of every other
/// chain; 404 with an empty body when N is out of range or the CA has nothing to give.
fn chain_answer(
    state: &AppState,
    (uri, headers): (&Uri, &HeaderMap),
    (prefix, n): (&str, &str),
    content_type: &'static str,
    pick: impl Fn(&crate::ca::Ca, usize) -> Option<String>,
) -> Response {
    let chains = state.ca.chain_count();
    let Some((index, pem)) = chain_index(n, chains).and_then(|i| Some((i, pick(&state.ca, i)?)))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // HTTP/1.1 names the host in Host, HTTP/2 in the request's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    // The path as sent, so that under the admin API (`/admin/pebble/roots/N`) the links
    // keep the prefix they came with.
    let base = uri
        .path()
        .strip_suffix(n)
        .filter(|b| b.ends_with(&format!("/{prefix}/")))
        .map_or_else(|| format!("/{prefix}/"), str::to_owned);
    let mut response = (StatusCode::OK, pem).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for other in (0..chains).filter(|i| *i != index) {
        if let Ok(v) =
            HeaderValue::from_str(&format!("<https://{host}{base}{other}>;rel=\"alternate\""))
        {
            h.append(header::LINK, v);
        }
    }
    response
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
            "/root-keys/2",
            "/intermediate-keys/02x",
        ] {
            let (status, _, body) = call(&state, Method::GET, path, "", false).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(body.is_empty(), "{path}");
        }
        let (status, _, body) = call(&state, Method::GET, "/nowhere", "", false).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, b"404 page not found\n");
    }

    /// The test CA is made in memory, so its keys are handed out: each chain's root key(s)
    /// and issuing keys, RSA as PKCS#1, as Pebble sends them.
    #[tokio::test]
    async fn keys_of_an_in_memory_ca_with_alternates() {
        let state = Arc::new(crate::http::test_state());
        let (status, headers, body) = call(&state, Method::GET, "/root-keys/0", "", false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/x-pem-file; charset=utf-8"
        );
        assert_eq!(
            headers["link"],
            "<https://localhost:15000/root-keys/1>;rel=\"alternate\""
        );
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "the AAA root's"
        );
        assert_eq!(&text, state.ca.root_key_pem(0).unwrap().expose());
        // Chain 1 ends at two roots (USERTrust RSA and ECC): both keys, RSA then ECC.
        let (status, _, body) = call(&state, Method::GET, "/root-keys/1", "", false).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches("-----BEGIN RSA PRIVATE KEY-----").count(), 1);
        assert_eq!(text.matches("-----BEGIN PRIVATE KEY-----").count(), 1);
        let (status, headers, body) =
            call(&state, Method::PUT, "/intermediate-keys/1", "", false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["link"],
            "<https://localhost:15000/intermediate-keys/0>;rel=\"alternate\""
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            *state.ca.issuing_key_pem(1).unwrap().expose()
        );
    }

    /// Under the admin API the links keep the `/admin/pebble` prefix they were asked with.
    #[tokio::test]
    async fn alternate_links_keep_the_prefix() {
        let state = Arc::new(crate::http::test_state());
        let app = Router::new().nest_service("/admin/pebble", router(state));
        let request = Request::builder()
            .uri("/admin/pebble/intermediates/1")
            .header("host", "127.0.0.1:14000")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["link"],
            "<https://127.0.0.1:14000/admin/pebble/intermediates/0>;rel=\"alternate\""
        );
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
