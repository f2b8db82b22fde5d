//! The organisation model, as Sectigo's portal shows it: organisations, domains, departments,
//! delegations, EAB credentials, their certificates and fault plans. Every read and every
//! change goes through the admin API in-process ([`mock_server::admin::call`]), so the console has
//! the same validation and the same error messages, kept in one place.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use super::pages::message;
use super::{Session, render};
use mock_server::admin::{api, call};
use mock_server::http::AppState;

/// A request body of the admin API, from its own typed request (these always serialize; a
/// null body would be refused by the API, visibly).
fn typed<T: serde::Serialize>(request: &T) -> Value {
    serde_json::to_value(request).unwrap_or(Value::Null)
}

/// An admin API refusal, shown as a page with the API's own message.
fn refused(session: &Session, (status, text): (StatusCode, String)) -> Response {
    message(session, status, "Refused", &text)
}

/// A path segment as the admin API's router expects it.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) async fn org_page(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    let orgs = match call(&state, Method::GET, "/organizations", None).await {
        Ok(v) => v,
        Err(e) => return refused(&session, e),
    };
    let credentials = match call(&state, Method::GET, "/eab", None).await {
        Ok(v) => v,
        Err(e) => return refused(&session, e),
    };
    let profiles: Vec<String> = {
        let mut p: Vec<String> = state
            .profiles
            .values()
            .map(|c| c.profile.name.clone())
            .collect();
        p.sort();
        p
    };
    render(
        "org.html",
        minijinja::context! {
            page => "org",
            csrf => session.csrf,
            orgs => orgs,
            credentials => credentials,
            profiles => profiles,
        },
    )
}

fn back_to_org() -> Response {
    Redirect::to("/console/org").into_response()
}

/// A text field that may be left empty.
fn optional(s: &str) -> Option<String> {
    match s.trim() {
        "" => None,
        t => Some(t.to_owned()),
    }
}

/// Names typed into one field, separated by commas, spaces or new lines.
fn names(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct OrgForm {
    name: String,
    country: String,
    #[serde(rename = "state")]
    region: String,
    #[serde(default)]
    locality: String,
}

pub(crate) async fn add_org(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Form(f): Form<OrgForm>,
) -> Response {
    let body = typed(&api::NewOrganization {
        name: f.name,
        country: f.country,
        state: f.region,
        locality: optional(&f.locality),
    });
    match call(&state, Method::POST, "/organizations", Some(body)).await {
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct DomainForm {
    name: String,
    #[serde(default)]
    validated: Option<String>,
}

pub(crate) async fn add_domain(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(org): Path<String>,
    Form(f): Form<DomainForm>,
) -> Response {
    let body = typed(&api::NewDomain {
        name: f.name,
        validated: f.validated.is_some(),
    });
    let path = format!("/organizations/{}/domains", segment(&org));
    match call(&state, Method::POST, &path, Some(body)).await {
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct ValidationForm {
    validated: String,
}

pub(crate) async fn set_validation(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(f): Form<ValidationForm>,
) -> Response {
    let body = typed(&api::SetValidation {
        validated: f.validated == "true",
    });
    let path = format!("/domains/{}/validation", segment(&name));
    match call(&state, Method::PUT, &path, Some(body)).await {
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct NameForm {
    name: String,
}

pub(crate) async fn add_department(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(org): Path<String>,
    Form(f): Form<NameForm>,
) -> Response {
    let path = format!("/organizations/{}/departments", segment(&org));
    match call(
        &state,
        Method::POST,
        &path,
        Some(typed(&api::NewDepartment { name: f.name })),
    )
    .await
    {
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct DelegationForm {
    domain: String,
}

pub(crate) async fn delegate(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(dept): Path<String>,
    Form(f): Form<DelegationForm>,
) -> Response {
    let path = format!("/departments/{}/delegations", segment(&dept));
    match call(
        &state,
        Method::POST,
        &path,
        Some(typed(&api::NewDelegation { domain: f.domain })),
    )
    .await
    {
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct CredentialForm {
    department: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    reusable: Option<String>,
    #[serde(default)]
    profile: String,
}

/// Mints a credential and shows its HMAC key, this once: the key is in this page only.
pub(crate) async fn create_credential(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Form(f): Form<CredentialForm>,
) -> Response {
    let Ok(department) = f.department.trim().parse::<usize>() else {
        return message(
            &session,
            StatusCode::BAD_REQUEST,
            "Refused",
            "department: pick a department",
        );
    };
    let profiles: Vec<String> = names(&f.profile);
    let body = typed(&api::NewEab {
        department,
        domains: names(&f.domains),
        reusable: f.reusable.is_some(),
        profiles,
    });
    match call(&state, Method::POST, "/eab", Some(body)).await {
        Ok(minted) => render(
            "minted.html",
            minijinja::context! { page => "org", csrf => session.csrf, minted => minted },
        ),
        Err(e) => refused(&session, e),
    }
}

pub(crate) async fn credential_page(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(kid): Path<String>,
) -> Response {
    let all = match call(&state, Method::GET, "/eab", None).await {
        Ok(v) => v,
        Err(e) => return refused(&session, e),
    };
    let Some(credential) = all
        .as_array()
        .and_then(|a| a.iter().find(|c| c["eab_kid"] == kid.as_str()))
        .cloned()
    else {
        return message(
            &session,
            StatusCode::NOT_FOUND,
            "Refused",
            &format!("no EAB credential {kid:?}"),
        );
    };
    let base = format!("/eab/{}", segment(&kid));
    let certificates = call(&state, Method::GET, &format!("{base}/certificates"), None).await;
    let orders = call(&state, Method::GET, &format!("{base}/orders"), None).await;
    let (certificates, orders) = match (certificates, orders) {
        (Ok(c), Ok(o)) => (c, o),
        (Err(e), _) | (_, Err(e)) => return refused(&session, e),
    };
    let plan = credential
        .get("faults")
        .filter(|p| !p.is_null())
        .map(|p| {
            toml::to_string_pretty(p)
                .unwrap_or_else(|_| serde_json::to_string_pretty(p).unwrap_or_default())
        })
        .unwrap_or_default();
    render(
        "credential.html",
        minijinja::context! {
            page => "org",
            csrf => session.csrf,
            c => credential,
            certificates => certificates,
            orders => orders,
            plan => plan,
        },
    )
}

fn back_to_credential(kid: &str) -> Response {
    Redirect::to(&format!("/console/credentials/{}", segment(kid))).into_response()
}

pub(crate) async fn revoke_credential(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(kid): Path<String>,
) -> Response {
    let path = format!("/eab/{}/revoke", segment(&kid));
    match call(&state, Method::POST, &path, None).await {
        Ok(_) => back_to_credential(&kid),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct FaultsForm {
    #[serde(default)]
    plan: String,
}

/// Sets the credential's fault plan (TOML or JSON, as the admin API takes it); an empty plan
/// clears it.
pub(crate) async fn set_faults(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(kid): Path<String>,
    Form(f): Form<FaultsForm>,
) -> Response {
    let path = format!("/eab/{}/faults", segment(&kid));
    let result = if f.plan.trim().is_empty() {
        mock_server::admin::call_text(&state, Method::DELETE, &path, String::new()).await
    } else {
        mock_server::admin::call_text(&state, Method::PUT, &path, f.plan).await
    };
    match result {
        Ok(_) => back_to_credential(&kid),
        Err(e) => refused(&session, e),
    }
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    credential: String,
}

pub(crate) async fn revoke_certificate(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let reason = match f.reason.trim() {
        "" => None,
        r => match r.parse::<u8>() {
            Ok(r) => Some(r),
            Err(_) => {
                return message(
                    &session,
                    StatusCode::BAD_REQUEST,
                    "Refused",
                    "reason: an RFC 5280 reason code (0-10)",
                );
            }
        },
    };
    let path = format!("/certificates/{}/revoke", segment(&id));
    match call(
        &state,
        Method::POST,
        &path,
        Some(typed(&api::RevokeCertificate { reason })),
    )
    .await
    {
        Ok(_) if !f.credential.is_empty() => back_to_credential(&f.credential),
        Ok(_) => back_to_org(),
        Err(e) => refused(&session, e),
    }
}

/// The certificate's PEM, as a file.
pub(crate) async fn download_certificate(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Some(cert) = state.store.cert(&id) else {
        return message(
            &session,
            StatusCode::NOT_FOUND,
            "Refused",
            &format!("no certificate {id:?}"),
        );
    };
    let name = format!(
        "attachment; filename=\"{}.pem\"",
        cert.serial.replace(['"', '\\'], "")
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "application/pem-certificate-chain".to_owned(),
            ),
            (header::CONTENT_DISPOSITION, name),
        ],
        // The chain as the ACME certificate URL serves it (the default one), not the leaf
        // alone: what a client would have installed.
        state
            .ca
            .chain(&cert.leaf_pem, cert.family, 0)
            .unwrap_or(cert.leaf_pem),
    )
        .into_response()
}
