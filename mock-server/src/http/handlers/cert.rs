//! Certificates: download (default and alternate chains), revocation by the account or by
//! the certificate's key, and ARI renewalInfo.

use acme_proto::{ProblemType, Revocation, Status, b64};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use time::OffsetDateTime;

use super::super::jose::KeyMode;
use super::super::{AcmeError, AppState, repr};
use super::{
    JosePost, Shared, gate, json_response, not_found_problem, now_utc, require_post_as_get,
    with_link, with_retry_after,
};
use crate::faults::Endpoint;
use crate::state::ops::{RevokeError, Revoker};

async fn certificate_at(
    state: &AppState,
    post: JosePost,
    id: &str,
    index: usize,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Kid)?;
    gate(state, &post, &auth, Endpoint::Certificate).await?;
    require_post_as_get(&auth)?;
    let account = auth.account()?;
    let not_found = || {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "Certificate not found",
        )
    };
    let cert = state.store.cert(id).ok_or_else(not_found)?;
    if cert.account != account.id {
        return Err(AcmeError::unauthorized(
            "This certificate belongs to another account",
        ));
    }
    // Not visible until the order it belongs to is valid.
    let visible = state
        .store
        .order(&cert.order)
        .is_some_and(|o| o.status_at(now_utc()) == Status::Valid);
    let pem = state
        .ca
        .chain(&cert.leaf_pem, cert.family, index)
        .filter(|_| visible)
        .ok_or_else(not_found)?;
    let mut response = (StatusCode::OK, pem).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pem-certificate-chain"),
    );
    // Every other chain, as Pebble links them: chain 0 at the certificate's URL, chain i at
    // `.../alternate/i`.
    let ctx = &post.ctx;
    for other in (0..state.ca.chain_count()).filter(|i| *i != index) {
        let url = if other == 0 {
            ctx.url("cert", id)
        } else {
            format!("{}/alternate/{other}", ctx.url("cert", id))
        };
        response = with_link(response, &url, "alternate");
    }
    Ok(response)
}

/// POST-as-GET cert/{id}: the default chain (RFC 8555 §7.4.2).
pub(crate) async fn certificate(
    State(state): Shared,
    Path((_, id)): Path<(String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    certificate_at(&state, post, &id, 0).await
}

/// POST-as-GET cert/{id}/alternate/{n}: chain n (0 is the default chain, as at Pebble's
/// `/certZ/<id>/alternate/0`); a number out of range is not found.
pub(crate) async fn certificate_alternate(
    State(state): Shared,
    Path((_, id, n)): Path<(String, String, String)>,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let index = n.parse::<usize>().map_err(|_| {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "Certificate not found",
        )
    })?;
    certificate_at(&state, post, &id, index).await
}

/// POST revokeCert (RFC 8555 §7.6), by the owning account or by the certificate's key.
pub(crate) async fn revoke_cert(
    State(state): Shared,
    post: JosePost,
) -> Result<Response, AcmeError> {
    let auth = state.authenticate(&post, KeyMode::Either)?;
    gate(&state, &post, &auth, Endpoint::RevokeCert).await?;
    let req: Revocation = auth.payload()?;
    let der = b64::decode(&req.certificate)
        .map_err(|_| AcmeError::malformed("The \"certificate\" field is not base64url"))?;
    let cert = state.store.cert_by_der(&der).ok_or_else(|| {
        not_found_problem("Certificate not found: it was not issued by this server")
    })?;
    let reason = req.reason.unwrap_or(0);
    if !matches!(reason, 0 | 1 | 3 | 4 | 5 | 9) {
        return Err(AcmeError::new(
            ProblemType::BadRevocationReason,
            StatusCode::BAD_REQUEST,
            format!("Revocation reason {reason} is not allowed; use 0, 1, 3, 4, 5 or 9"),
        ));
    }
    let by = match &auth.account {
        Some(account) => Revoker::Account(&account.id),
        None => Revoker::Key(&auth.jwk),
    };
    let id = cert.id;
    match state.store.revoke_certificate(&id, reason, by) {
        Ok(_) => {}
        Err(RevokeError::NotAuthorised) => {
            return Err(AcmeError::unauthorized(
                "The request is signed neither by the account that owns the certificate nor by the certificate's key",
            ));
        }
        Err(RevokeError::AlreadyRevoked) => {
            return Err(AcmeError::new(
                ProblemType::AlreadyRevoked,
                StatusCode::BAD_REQUEST,
                "Certificate already revoked",
            ));
        }
        Err(RevokeError::NotFound) => {
            return Err(AcmeError::internal(
                "The server experienced an internal error",
            ));
        }
    }
    tracing::info!(cert = %id, reason, "certificate revoked");
    Ok(StatusCode::OK.into_response())
}

/// The ARI identifier (base64url AKI "." base64url serial), notBefore and notAfter of a leaf.
pub(super) fn leaf_facts(der: &[u8]) -> (Option<String>, OffsetDateTime, OffsetDateTime) {
    use x509_parser::prelude::*;
    let Ok((_, c)) = X509Certificate::from_der(der) else {
        let now = now_utc();
        return (None, now, now);
    };
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    let id = aki.map(|a| format!("{}.{}", b64::encode(a), b64::encode(c.raw_serial())));
    (
        id,
        c.validity().not_before.to_datetime(),
        c.validity().not_after.to_datetime(),
    )
}

/// GET renewalInfo/{id} (RFC 9773 §4.2): the suggested window is the middle of the last third
/// of the validity; a revoked certificate's window is already open.
pub(crate) async fn renewal_info(
    State(state): Shared,
    Path((dir, id)): Path<(String, String)>,
) -> Result<Response, AcmeError> {
    let ctx = state.profile(&dir)?;
    let not_found = || {
        AcmeError::new(
            ProblemType::Malformed,
            StatusCode::NOT_FOUND,
            "No certificate has that renewalInfo identifier",
        )
    };
    if !ctx.profile.renewal_info {
        return Err(not_found());
    }
    let cert = state.store.cert_by_ari(&id).ok_or_else(not_found)?;
    if let Some(answer) = state.renewal_overrides.get(&cert.serial) {
        // Pebble's /set-renewal-info/: the answer given, verbatim, even if it is not JSON.
        let mut response = (StatusCode::OK, answer.value().clone()).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        return Ok(with_retry_after(response, 21600));
    }
    let lifetime = cert.not_after - cert.not_before;
    let (start, end) = if cert.revoked.is_some() {
        let now = now_utc();
        (
            now - time::Duration::hours(1),
            now + time::Duration::hours(1),
        )
    } else {
        let start = cert.not_after - lifetime / 3;
        (start, start + lifetime / 9)
    };
    let body = serde_json::json!({
        "suggestedWindow": { "start": repr::timestamp(start), "end": repr::timestamp(end) }
    });
    Ok(with_retry_after(
        json_response(StatusCode::OK, &body),
        21600,
    ))
}
