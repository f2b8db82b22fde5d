//! The admin API: what Sectigo's administrators do in Certificate Manager, as JSON over HTTP on
//! the server's own (loopback) listener, under `/admin`, behind a bearer token.
//!
//! Organisations, departments, domains and their validation, delegations, EAB credentials
//! (minted, listed, revoked), certificates per credential (listed, revoked), recorded requests
//! per credential, fault plans per credential, and the mock DNS's records.

use std::sync::Arc;

use acme_proto::{Secret, b64};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::{HeaderValue, StatusCode, header};
use rand::RngCore;
use serde::Deserialize;

pub mod api;

use crate::control::NewCredential;
use crate::faults::FaultPlan;
use crate::http::AppState;
use crate::state::ops::{RevokeError, Revoker};
use crate::state::org::ModelError;

/// An admin error: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl AdminError {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }
}

impl From<ModelError> for AdminError {
    fn from(e: ModelError) -> Self {
        let status = match &e {
            ModelError::NotFound(_) => StatusCode::NOT_FOUND,
            ModelError::Conflict(_) => StatusCode::CONFLICT,
            ModelError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(api::ErrorView { error: self.1 })).into_response()
    }
}

type AdminResult = Result<Response, AdminError>;

/// A fresh admin token (32 random bytes, base64url).
pub fn new_token() -> Secret<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(b64::encode(bytes))
}

/// The admin routes, nested under `/admin` by the caller.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/organizations", get(list_orgs).post(add_org))
        .route("/organizations/{org}/domains", post(add_domain))
        .route("/organizations/{org}/departments", post(add_department))
        .route("/domains/{name}/validation", put(set_validation))
        .route("/departments/{dept}/delegations", post(delegate))
        .route("/eab", get(list_eab).post(create_eab))
        .route("/eab/{kid}/revoke", post(revoke_eab))
        .route("/eab/{kid}/certificates", get(list_certs))
        .route("/eab/{kid}/orders", get(list_orders))
        .route("/eab/{kid}/requests", get(requests))
        .route("/requests", get(all_requests))
        .route(
            "/eab/{kid}/faults",
            put(set_faults).delete(clear_faults).get(get_faults),
        )
        .route("/certificates/{id}/revoke", post(revoke_cert))
        .route("/faults/events", get(fault_events))
        .route("/dns/{name}", put(set_dns).delete(clear_dns).get(get_dns))
        // Pebble's management API (roots, intermediates, certificate status, ARI answers),
        // for every profile: the same handlers as `acme-harness pebble`'s own listener.
        .nest_service("/pebble", crate::management::router(state.clone()))
        .layer(middleware::from_fn_with_state(state, require_token))
        .layer(middleware::from_fn(loopback_only))
}

/// 403 from anywhere but loopback: the admin API's guard, and a mounted console's
/// ([`crate::http::Mount`]).
pub async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<crate::http::ConnControl>()
        .and_then(|c| c.peer);
    if peer.is_some_and(|p| !p.ip().is_loopback()) {
        return AdminError(
            StatusCode::FORBIDDEN,
            "the admin API and the console answer loopback clients only".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Runs one admin API request in-process, as the admin token's holder: the console's forms
/// go through here, so they get the admin API's validation and its error messages. `path`
/// is under the admin API (`/organizations`, not `/admin/organizations`); an error is the
/// API's status and message.
pub async fn call(
    state: &Arc<AppState>,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    call_text(state, method, path, body).await
}

/// [`call`] with a body as it is (a fault plan in TOML).
pub async fn call_text(
    state: &Arc<AppState>,
    method: http::Method,
    path: &str,
    body: String,
) -> Result<serde_json::Value, (StatusCode, String)> {
    use tower::ServiceExt as _;
    let app = router(state.clone()).with_state(state.clone());
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", state.admin_token.expose()),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let response = match app.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        return Ok(json);
    }
    let message = json
        .get("error")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| status.to_string());
    Err((status, message))
}

/// 401 without `Authorization: Bearer <token>`, compared in constant time.
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq as _;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = state.admin_token.expose().as_bytes();
    if bool::from(given.as_bytes().ct_eq(expected)) {
        return next.run(req).await;
    }
    let mut response = AdminError(
        StatusCode::UNAUTHORIZED,
        "admin API: missing or wrong bearer token (see admin_token in ready.json)".into(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"acme-harness admin\""),
    );
    response
}

fn update<T>(
    state: &AppState,
    change: impl FnOnce(&mut crate::Orgs) -> Result<T, ModelError>,
) -> Result<T, AdminError> {
    Ok(state.change_orgs(change)?)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::bad(format!("invalid JSON body: {e}")))
}

async fn list_orgs(State(state): State<Arc<AppState>>) -> AdminResult {
    let orgs = state.store.orgs.load();
    let out: Vec<api::OrganizationView> = orgs
        .organizations
        .iter()
        .map(|o| api::OrganizationView {
            id: o.id,
            name: o.name.clone(),
            country: o.country.clone(),
            state: o.state.clone(),
            locality: o.locality.clone(),
            domains: orgs
                .domains
                .iter()
                .filter(|d| d.org == o.id)
                .map(|d| api::DomainView {
                    name: d.name.clone(),
                    validated: d.validated,
                })
                .collect(),
            departments: orgs
                .departments
                .iter()
                .filter(|d| d.org == o.id)
                .map(|d| api::DepartmentView {
                    id: d.id,
                    name: d.name.clone(),
                    domains: d.domains.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(out).into_response())
}

async fn add_org(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let req: api::NewOrganization = parse_json(&body)?;
    if req.country.len() != 2 {
        return Err(AdminError::bad(
            "country must be a two-letter ISO 3166 code",
        ));
    }
    let id = update(&state, |o| {
        Ok(o.add_org(&req.name, &req.country, &req.state, req.locality.clone()))
    })?;
    Ok((StatusCode::CREATED, Json(api::Created { id })).into_response())
}

async fn add_domain(
    State(state): State<Arc<AppState>>,
    Path(org): Path<usize>,
    body: Bytes,
) -> AdminResult {
    let req: api::NewDomain = parse_json(&body)?;
    update(&state, |o| o.add_domain(org, &req.name, req.validated))?;
    Ok((
        StatusCode::CREATED,
        Json(api::DomainView {
            name: req.name.to_ascii_lowercase(),
            validated: req.validated,
        }),
    )
        .into_response())
}

async fn set_validation(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> AdminResult {
    let req: api::SetValidation = parse_json(&body)?;
    update(&state, |o| o.set_validated(&name, req.validated))?;
    Ok(Json(api::DomainView {
        name,
        validated: req.validated,
    })
    .into_response())
}

async fn add_department(
    State(state): State<Arc<AppState>>,
    Path(org): Path<usize>,
    body: Bytes,
) -> AdminResult {
    let req: api::NewDepartment = parse_json(&body)?;
    let id = update(&state, |o| o.add_department(org, &req.name))?;
    Ok((StatusCode::CREATED, Json(api::Created { id })).into_response())
}

async fn delegate(
    State(state): State<Arc<AppState>>,
    Path(dept): Path<usize>,
    body: Bytes,
) -> AdminResult {
    let req: api::NewDelegation = parse_json(&body)?;
    update(&state, |o| o.delegate(dept, &req.domain))?;
    Ok((
        StatusCode::CREATED,
        Json(api::DelegationView {
            department: dept,
            domain: req.domain,
        }),
    )
        .into_response())
}

/// Mints a credential: a 22-character key id and an 86-character HMAC key, as Sectigo's (§2).
/// The HMAC key is in this response only.
async fn create_eab(State(state): State<Arc<AppState>>, body: Bytes) -> AdminResult {
    let req: api::NewEab = parse_json(&body)?;
    let minted = state.mint_credential(&NewCredential {
        department: req.department,
        domains: req.domains,
        reusable: req.reusable,
        profiles: req.profiles,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(api::MintedView {
            eab_kid: minted.kid,
            eab_hmac_key: minted.hmac_key.expose().clone(),
            reusable: req.reusable,
        }),
    )
        .into_response())
}

fn credential_json(c: &crate::state::org::EabCredential) -> api::CredentialView {
    api::CredentialView::from(c)
}

async fn list_eab(State(state): State<Arc<AppState>>) -> AdminResult {
    let orgs = state.store.orgs.load();
    Ok(Json(
        orgs.credentials
            .iter()
            .map(|c| credential_json(c))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

fn credential(
    state: &AppState,
    kid: &str,
) -> Result<Arc<crate::state::org::EabCredential>, AdminError> {
    Ok(state.credential(kid)?)
}

/// Revokes a credential: its accounts are refused on every later request.
async fn revoke_eab(State(state): State<Arc<AppState>>, Path(kid): Path<String>) -> AdminResult {
    let c = state.revoke_credential(&kid)?;
    Ok(Json(credential_json(&c)).into_response())
}

async fn list_certs(State(state): State<Arc<AppState>>, Path(kid): Path<String>) -> AdminResult {
    credential(&state, &kid)?;
    let mut out: Vec<api::CertificateView> = state
        .store
        .certs_where(|a| a.eab_kid.as_deref() == Some(kid.as_str()))
        .into_iter()
        .map(|c| api::CertificateView {
            revoked: c.revoked.is_some(),
            reason: c.revoked,
            id: c.id,
            serial: c.serial,
            names: c.names,
            account: c.account,
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out).into_response())
}

/// Orders of a credential's accounts with their current status and certificate.
async fn list_orders(State(state): State<Arc<AppState>>, Path(kid): Path<String>) -> AdminResult {
    credential(&state, &kid)?;
    let mut out: Vec<api::OrderView> = state
        .store
        .orders_where(|a| a.eab_kid.as_deref() == Some(kid.as_str()))
        .into_iter()
        .map(|o| api::OrderView {
            status: state.order_status(&o),
            identifiers: o.identifiers.iter().map(|i| i.value.clone()).collect(),
            id: o.id,
            account: o.account,
            certificate: o.cert,
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out).into_response())
}

async fn revoke_cert(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let req: api::RevokeCertificate = if body.is_empty() {
        api::RevokeCertificate::default()
    } else {
        parse_json(&body)?
    };
    let cert = state
        .store
        .revoke_certificate(&id, req.reason.unwrap_or(0), Revoker::Admin)
        .map_err(|e| match e {
            RevokeError::AlreadyRevoked => {
                AdminError(StatusCode::CONFLICT, "certificate already revoked".into())
            }
            _ => AdminError::not_found(format!("no certificate {id:?}")),
        })?;
    Ok(Json(api::RevokedView {
        id,
        revoked: true,
        reason: cert.revoked,
    })
    .into_response())
}

#[derive(Deserialize)]
struct Format {
    #[serde(default)]
    format: Option<String>,
}

/// The recorded exchanges of a credential's accounts: JSON, or JSON Lines with `?format=jsonl`.
async fn requests(
    State(state): State<Arc<AppState>>,
    Path(kid): Path<String>,
    Query(f): Query<Format>,
) -> AdminResult {
    if kid != "-" {
        credential(&state, &kid)?;
    }
    let exchanges = state.store.transcripts.of(&kid);
    exchanges_response(&exchanges, f.format.as_deref())
}

/// Exchanges as a JSON array, or as JSON Lines for `format=jsonl`.
fn exchanges_response(
    exchanges: &[acme_proto::transcript::Exchange],
    format: Option<&str>,
) -> AdminResult {
    if format != Some("jsonl") {
        return Ok(Json(exchanges).into_response());
    }
    let text = acme_proto::transcript::to_jsonl(exchanges).map_err(|e| {
        AdminError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the exchanges: {e}"),
        )
    })?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    format: Option<String>,
}

/// Every recorded exchange of every scope after `?since=SEQ`, in order: what a client sent
/// before it had an account (directory, newNonce) is here too.
async fn all_requests(State(state): State<Arc<AppState>>, Query(q): Query<Since>) -> AdminResult {
    let exchanges = state.store.transcripts.since(q.since);
    exchanges_response(&exchanges, q.format.as_deref())
}

/// Sets a credential's fault plan (JSON or TOML body) at run time.
async fn set_faults(
    State(state): State<Arc<AppState>>,
    Path(kid): Path<String>,
    body: Bytes,
) -> AdminResult {
    credential(&state, &kid)?;
    let text = std::str::from_utf8(&body).map_err(|_| AdminError::bad("the plan is not UTF-8"))?;
    let plan =
        FaultPlan::parse(text, "request body").map_err(|e| AdminError::bad(e.to_string()))?;
    let c = state.set_credential_faults(&kid, Some(plan))?;
    Ok(Json(credential_json(&c)).into_response())
}

async fn get_faults(State(state): State<Arc<AppState>>, Path(kid): Path<String>) -> AdminResult {
    let c = credential(&state, &kid)?;
    Ok(Json(c.faults.load_full().map(|p| (*p).clone())).into_response())
}

async fn clear_faults(State(state): State<Arc<AppState>>, Path(kid): Path<String>) -> AdminResult {
    state.set_credential_faults(&kid, None)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn fault_events(State(state): State<Arc<AppState>>) -> AdminResult {
    Ok(Json(api::FaultEventsView {
        seed: state.faults.seed(),
        events: state.faults.events(),
    })
    .into_response())
}

async fn set_dns(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> AdminResult {
    let records: crate::dns::Records = parse_json(&body)?;
    state
        .dns
        .set(&name, records.clone())
        .map_err(AdminError::bad)?;
    Ok(Json(records).into_response())
}

async fn get_dns(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> AdminResult {
    Ok(Json(state.dns.get(&name)).into_response())
}

async fn clear_dns(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> AdminResult {
    state.dns.clear(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}
