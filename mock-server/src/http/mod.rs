//! Transport and dispatch: routes, the request pipeline (JWS, nonce, account), responses.

pub mod error;
mod handlers;
mod jose;
mod repr;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderValue, header};

use crate::ca::Ca;
use crate::profile::Profile;
use crate::state::Store;

pub use error::AcmeError;

/// One served profile: its settings and its URLs.
#[derive(Debug)]
pub struct ProfileCtx {
    /// The profile.
    pub profile: Profile,
    /// The directory URL, the base of every other URL of the profile.
    pub base: String,
    /// The `Link: <directory>;rel="index"` value.
    link_index: HeaderValue,
    /// The directory JSON, built once.
    directory: bytes::Bytes,
}

impl ProfileCtx {
    fn new(profile: Profile, origin: &str) -> Self {
        let base = format!("{origin}{}", profile.directory_path);
        let link_index = HeaderValue::from_str(&format!("<{base}>;rel=\"index\""))
            .unwrap_or(HeaderValue::from_static(""));
        let directory = repr::directory(&profile, &base);
        Self {
            profile,
            base,
            link_index,
            directory: serde_json::to_vec_pretty(&directory)
                .unwrap_or_default()
                .into(),
        }
    }

    /// The URL of `kind/id` under this profile.
    pub fn url(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.base)
    }

    /// The URL of a directory endpoint (`newOrder`).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

/// Everything a request handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// Accounts, orders, nonces, organisations.
    pub store: Store,
    /// The embedded CA.
    pub ca: Ca,
    /// Served profiles by the last segment of their directory path.
    pub profiles: HashMap<String, Arc<ProfileCtx>>,
    /// `https://host:port`, the origin every URL is built on.
    pub origin: String,
}

impl AppState {
    /// State serving `profiles` at `origin`.
    pub fn new(store: Store, ca: Ca, profiles: Vec<Profile>, origin: String) -> Self {
        let profiles = profiles
            .into_iter()
            .map(|p| (p.slug().to_owned(), Arc::new(ProfileCtx::new(p, &origin))))
            .collect();
        Self {
            store,
            ca,
            profiles,
            origin,
        }
    }

    /// The profile serving `slug`.
    pub fn profile(&self, slug: &str) -> Result<Arc<ProfileCtx>, AcmeError> {
        self.profiles.get(slug).cloned().ok_or_else(|| {
            AcmeError::new(
                acme_proto::ProblemType::Malformed,
                http::StatusCode::NOT_FOUND,
                format!("No ACME directory is served at /v2/{slug}"),
            )
        })
    }
}

/// The router for every served profile.
pub fn router(state: Arc<AppState>) -> Router {
    use handlers as h;
    Router::new()
        .route("/v2/{dir}", get(h::directory).fallback(h::get_only))
        .route(
            "/v2/{dir}/newNonce",
            get(h::new_nonce).fallback(h::get_only),
        )
        .route(
            "/v2/{dir}/newAccount",
            post(h::new_account).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/newOrder",
            post(h::new_order).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/revokeCert",
            post(h::revoke_cert).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/keyChange",
            post(h::key_change).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/account/{id}",
            post(h::account).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/order/{id}",
            post(h::order).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/order/{id}/finalize",
            post(h::finalize).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/authz/{id}",
            post(h::authz).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/chall/{id}",
            post(h::challenge).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/cert/{id}",
            post(h::certificate).fallback(h::post_only),
        )
        .route(
            "/v2/{dir}/cert/{id}/{n}",
            post(h::certificate_alternate).fallback(h::post_only),
        )
        .fallback(h::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .with_state(state)
}

/// Headers Sectigo sends on every response, errors included (§6, §10 of the evidence):
/// a fresh Replay-Nonce, Link rel="index", Cache-Control, CORS and HSTS.
async fn common_headers(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let slug = req
        .uri()
        .path()
        .strip_prefix("/v2/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned);
    let mut response = problem_for_every_error(next.run(req).await).await;
    let headers = response.headers_mut();
    if let Ok(nonce) = HeaderValue::from_str(&state.store.nonces.issue()) {
        headers.insert("replay-nonce", nonce);
    }
    if let Some(ctx) = slug.as_deref().and_then(|s| state.profiles.get(s)) {
        headers.append(header::LINK, ctx.link_index.clone());
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// Refusals made below the handlers (axum's own extractor rejections, a body the transport
/// could not read) come as plain text; the peer always gets a problem document instead.
async fn problem_for_every_error(response: Response) -> Response {
    use axum::response::IntoResponse as _;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| {
            ct.as_bytes()
                .starts_with(acme_proto::PROBLEM_CONTENT_TYPE.as_bytes())
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    let kind = if status.is_server_error() {
        acme_proto::ProblemType::ServerInternal
    } else {
        acme_proto::ProblemType::Malformed
    };
    let mut converted = AcmeError::new(kind, status, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().append(name, value.clone());
        }
    }
    converted
}
