//! Request handling, one module per resource: accounts ([`account`]), orders and finalize
//! ([`order`]), authorizations and challenges ([`authz`]), certificates, revocation and ARI
//! ([`cert`]); the directory, newNonce and the shared helpers here. Handlers reach the
//! store only through its operations (`crate::state::ops`).

mod account;
mod authz;
mod cert;
mod identifiers;
mod order;

use std::sync::Arc;

use acme_proto::ProblemType;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use time::OffsetDateTime;

use super::jose::{Authenticated, JosePost};
use super::{AcmeError, AppState, ConnControl};
use crate::faults::{Endpoint, FaultRule};
use crate::state::Account;

pub(crate) use account::{account, key_change, new_account};
pub(crate) use authz::{authz, challenge};
pub(crate) use cert::{certificate, certificate_alternate, renewal_info, revoke_cert};
pub(crate) use order::{finalize, new_order, order, orders_list};

type Shared = State<Arc<AppState>>;
type Conn = Option<axum::Extension<ConnControl>>;

/// Fault injection for an authenticated request, scoped to the account's EAB credential.
async fn gate(
    state: &AppState,
    post: &JosePost,
    auth: &Authenticated,
    endpoint: Endpoint,
) -> Result<Option<FaultRule>, AcmeError> {
    let scope = auth.account.as_ref().and_then(|a| a.eab_kid.as_deref());
    state
        .inject(&post.ctx, endpoint, scope, post.conn.as_ref())
        .await
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (status, Json(value)).into_response()
}

fn with_location(mut response: Response, url: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Retry-After as an HTTP-date `seconds` from now (rounded up to the next whole second, so
/// that a client reading it waits at least that long).
fn with_retry_after_date(mut response: Response, seconds: u64) -> Response {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds + 1);
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn with_link(mut response: Response, url: &str, rel: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
        response.headers_mut().append(header::LINK, v);
    }
    response
}

/// GET /v2/{dir}: the directory. /v2/directory answers 403, as at Sectigo (§1).
pub(crate) async fn directory(
    State(state): Shared,
    Path(dir): Path<String>,
    conn: Conn,
) -> Response {
    if dir == "directory" {
        let served: Vec<&str> = state.profiles.values().map(|c| c.base.as_str()).collect();
        return AcmeError::new(
            ProblemType::Unauthorized,
            StatusCode::FORBIDDEN,
            format!(
                "There is no directory at /v2/directory: each directory is its own base URL ({})",
                served.join(", ")
            ),
        )
        .into_response();
    }
    let ctx = match state.profile(&dir) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let conn = conn.map(|c| c.0);
    match state
        .inject(&ctx, Endpoint::Directory, None, conn.as_ref())
        .await
    {
        Ok(_) => {
            let mut response = (StatusCode::OK, ctx.directory.clone()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

/// HEAD (200) and GET (204) newNonce (RFC 8555 §7.2); the nonce comes from the middleware.
pub(crate) async fn new_nonce(
    State(state): Shared,
    Path(dir): Path<String>,
    conn: Conn,
    req: Request,
) -> Response {
    let ctx = match state.profile(&dir) {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.rate_limit(&ctx, "-") {
        return e.into_response();
    }
    let conn = conn.map(|c| c.0);
    if let Err(e) = state
        .inject(&ctx, Endpoint::NewNonce, None, conn.as_ref())
        .await
    {
        return e.into_response();
    }
    if req.method() == http::Method::HEAD {
        let mut response = StatusCode::OK.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Any other method on a GET-only URL.
pub(crate) async fn get_only() -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: this URL answers GET and HEAD",
    )
    .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
    .into_response()
}

/// GET (or anything but POST) on an ACME resource: POST-as-GET is enforced (§4).
pub(crate) async fn post_only() -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: ACME resources are fetched with POST-as-GET (RFC 8555 §6.3)",
    )
    .with_header(header::ALLOW, HeaderValue::from_static("POST"))
    .into_response()
}

/// Anything outside the served URLs.
pub(crate) async fn not_found(req: Request) -> Response {
    AcmeError::new(
        ProblemType::Malformed,
        StatusCode::NOT_FOUND,
        format!("Nothing is served at {}", req.uri().path()),
    )
    .into_response()
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A resource, if it exists and belongs to `account`: 404 when there is none, 403 when it
/// is another account's.
fn owned<T>(
    item: Option<T>,
    account: &Account,
    what: &str,
    owner: impl Fn(&T) -> &String,
) -> Result<T, AcmeError> {
    let item = item.ok_or_else(|| not_found_problem(&format!("{what} not found")))?;
    if owner(&item) != &account.id {
        return Err(AcmeError::unauthorized(format!(
            "This {} belongs to another account",
            what.to_ascii_lowercase()
        )));
    }
    Ok(item)
}

/// 404 with a `malformed` problem document, as for every unknown resource.
fn not_found_problem(detail: &str) -> AcmeError {
    AcmeError::new(ProblemType::Malformed, StatusCode::NOT_FOUND, detail)
}

fn require_post_as_get(auth: &Authenticated) -> Result<(), AcmeError> {
    if auth.jws.post_as_get {
        Ok(())
    } else {
        Err(AcmeError::malformed(
            "This resource is fetched with POST-as-GET: the payload must be empty",
        ))
    }
}
