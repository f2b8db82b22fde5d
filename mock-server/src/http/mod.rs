//! Transport and dispatch: routes, the request pipeline (JWS, nonce, account), responses.

pub mod error;
mod handlers;
mod jose;
mod record;
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
    /// The directory URL.
    pub base: String,
    /// The base of every other URL: the directory URL, or below it a random segment.
    pub resources: String,
    /// The random segment, when the profile randomises its paths.
    prefix: Option<String>,
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
        let prefix = profile
            .randomize_paths
            .then(|| format!("r{}", crate::state::new_id().replace(['-', '_'], "")));
        let resources = match &prefix {
            Some(p) => format!("{base}/{p}"),
            None => base.clone(),
        };
        let directory = repr::directory(&profile, &resources);
        Self {
            profile,
            base,
            resources,
            prefix,
            link_index,
            directory: serde_json::to_vec_pretty(&directory)
                .unwrap_or_default()
                .into(),
        }
    }

    /// The URL of `kind/id` under this profile.
    pub fn url(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.resources)
    }

    /// The URL of a directory endpoint (`newOrder`).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.resources)
    }
}

/// Everything a request handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// Accounts, orders, nonces, organisations.
    pub store: Store,
    /// The embedded CA (shared by the servers of one process in tests).
    pub ca: Arc<Ca>,
    /// Served profiles by the last segment of their directory path.
    pub profiles: HashMap<String, Arc<ProfileCtx>>,
    /// `https://host:port`, the origin every URL is built on.
    pub origin: String,
    /// Counts requests and decides injected faults.
    pub faults: crate::faults::FaultEngine,
    /// The server-wide fault plan (`serve --faults`).
    pub server_faults: Option<crate::faults::FaultPlan>,
    /// Rate-limit windows: key -> (window start, requests in it).
    rate: dashmap::DashMap<String, (std::time::Instant, u32)>,
    /// Bearer token of the admin API.
    pub admin_token: acme_proto::Secret<String>,
    /// The mock DNS's records.
    pub dns: Arc<crate::dns::MockDns>,
    /// Challenge validation through the mock DNS.
    pub validator: Arc<crate::validate::Validator>,
    /// Request limits.
    pub limits: crate::server::Limits,
    /// The profile also served at Pebble's own paths, `/dir` and its ARI path (the Pebble
    /// stand-in).
    pub pebble_paths: Option<Arc<ProfileCtx>>,
    /// renewalInfo answers set through Pebble's `/set-renewal-info/`, by certificate serial
    /// (lower-case hex), served verbatim instead of the computed window.
    pub renewal_overrides: dashmap::DashMap<String, String>,
    /// Routes other crates add to the listener (the web console), from
    /// [`ServerConfig::mounts`](crate::ServerConfig::mounts).
    pub mounts: Vec<Mount>,
}

/// Routes another crate adds to the mock's own listener, next to the ACME and admin routes:
/// the web console (crate mock-console) is one. Its handlers reach the mock through
/// `State<Arc<AppState>>`: the store, the recorded exchanges and their live subscription
/// (`store.transcripts.subscribe()`), the admin API in-process ([`crate::admin::call`]).
/// Requests under `prefix` answer of their own: no ACME headers, no problem documents.
#[derive(Clone, Debug)]
pub struct Mount {
    /// The path the routes live under (`/console`): that path and everything below it.
    pub prefix: &'static str,
    /// The routes, with their full paths.
    pub routes: Router<Arc<AppState>>,
}

impl Mount {
    /// Whether `path` is this mount's.
    fn owns(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// What [`AppState::new`] needs besides the store, the CA and the profiles.
#[derive(Debug)]
pub struct Extras {
    /// Request limits.
    pub limits: crate::server::Limits,
    /// Seed of fault decisions.
    pub seed: u64,
    /// Server-wide fault plan.
    pub server_faults: Option<crate::faults::FaultPlan>,
    /// Admin API token.
    pub admin_token: acme_proto::Secret<String>,
    /// The mock DNS's records.
    pub dns: Arc<crate::dns::MockDns>,
    /// Challenge validation.
    pub validator: Arc<crate::validate::Validator>,
}

/// Per-connection facts and controls, in every request's extensions.
#[derive(Clone, Debug, Default)]
pub struct ConnControl {
    /// Notified to close the connection without answering (the `drop` fault).
    pub drop: Arc<tokio::sync::Notify>,
    /// The peer's address.
    pub peer: Option<std::net::SocketAddr>,
    /// The fault the plan applied to the request being served, whatever its kind: the
    /// recorder gives each ACME request a fresh slot, so that the transcript marks a slow
    /// answer, a dropped connection or a processing order as injected too.
    pub injected: Arc<std::sync::OnceLock<crate::faults::FaultKind>>,
}

impl AppState {
    /// State serving `profiles` at `origin`, faults drawn from `seed`.
    pub fn new(
        store: Store,
        ca: Arc<Ca>,
        profiles: Vec<Profile>,
        origin: String,
        extras: Extras,
    ) -> Self {
        let profiles = profiles
            .into_iter()
            .map(|p| (p.slug().to_owned(), Arc::new(ProfileCtx::new(p, &origin))))
            .collect();
        Self {
            store,
            ca,
            profiles,
            origin,
            faults: crate::faults::FaultEngine::new(extras.seed),
            server_faults: extras.server_faults,
            rate: dashmap::DashMap::new(),
            admin_token: extras.admin_token,
            dns: extras.dns,
            validator: extras.validator,
            limits: extras.limits,
            pebble_paths: None,
            renewal_overrides: dashmap::DashMap::new(),
            mounts: Vec::new(),
        }
    }

    /// Decides whether this request meets a fault. Faults that answer for the server come back
    /// as `Err` (or never return, for `drop`); `slow` sleeps and continues; `processing` and
    /// `invalidChallenge` are returned for the endpoint to apply.
    pub(crate) async fn inject(
        &self,
        ctx: &ProfileCtx,
        endpoint: crate::faults::Endpoint,
        eab_kid: Option<&str>,
        conn: Option<&ConnControl>,
    ) -> Result<Option<crate::faults::FaultRule>, AcmeError> {
        use crate::faults::FaultKind as F;
        use http::StatusCode as S;
        let orgs = self.store.orgs.load();
        let credential_plan = eab_kid
            .and_then(|kid| orgs.credential(kid))
            .and_then(|c| c.faults.load_full());
        let plans = credential_plan
            .as_deref()
            .into_iter()
            .chain(ctx.profile.faults.as_ref())
            .chain(self.server_faults.as_ref());
        let Some(rule) = self.faults.decide(plans, eab_kid, endpoint) else {
            return Ok(None);
        };
        let kind = rule.fault;
        if let Some(conn) = conn {
            let _ = conn.injected.set(kind);
        }
        let decided = match rule.fault {
            F::BadNonce => Err(AcmeError::bad_nonce("The Replay Nonce is not recognized")),
            F::RateLimited => Err(AcmeError::html_page(
                S::TOO_MANY_REQUESTS,
                Some(rule.retry_after.unwrap_or(60)),
            )),
            F::BadGateway => Err(AcmeError::html_page(S::BAD_GATEWAY, rule.retry_after)),
            F::ServiceUnavailable => Err(AcmeError::html_page(
                S::SERVICE_UNAVAILABLE,
                Some(rule.retry_after.unwrap_or(30)),
            )),
            F::GatewayTimeout => Err(AcmeError::html_page(S::GATEWAY_TIMEOUT, rule.retry_after)),
            F::ServerInternal => Err(AcmeError::internal(
                "The server experienced an internal error",
            )),
            F::Slow => {
                let ms = rule.delay_ms.unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(None)
            }
            F::Drop => match conn {
                Some(conn) => {
                    conn.drop.notify_one();
                    std::future::pending().await
                }
                None => Err(AcmeError::html_page(S::BAD_GATEWAY, None)),
            },
            F::Processing | F::InvalidChallenge => Ok(Some(rule)),
        };
        decided.map_err(|e| e.injected_by(kind))
    }

    /// An order's status now: `processing` turns `valid` when its time has come, and a
    /// `pending` order follows its authorizations (all valid: `ready`; one failed: `invalid`).
    pub(crate) fn order_status(&self, order: &crate::state::Order) -> acme_proto::Status {
        use acme_proto::Status as S;
        match order.status {
            // Before finalize an order follows its authorizations: one deactivated, expired or
            // failed makes it invalid (RFC 8555 §7.1.6), also when it was created ready.
            S::Pending | S::Ready => {
                let mut all_valid = true;
                for id in &order.authzs {
                    match self.store.authz_status(id) {
                        Some(S::Valid) => {}
                        Some(S::Pending) => all_valid = false,
                        _ => return S::Invalid,
                    }
                }
                if all_valid { S::Ready } else { S::Pending }
            }
            _ => order.status_at(time::OffsetDateTime::now_utc()),
        }
    }

    /// The profile's rate limit (§8 \[Z\]): past it, 429 with an nginx page and Retry-After
    /// until the minute is over.
    pub(crate) fn rate_limit(&self, ctx: &ProfileCtx, key: &str) -> Result<(), AcmeError> {
        let Some(limit) = ctx.profile.rate_limit.requests_per_minute else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let window = std::time::Duration::from_secs(60);
        let mut entry = self
            .rate
            .entry(format!("{}/{key}", ctx.profile.name))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let left = window
                .saturating_sub(now.duration_since(entry.0))
                .as_secs()
                .max(1);
            return Err(AcmeError::html_page(
                http::StatusCode::TOO_MANY_REQUESTS,
                Some(left),
            ));
        }
        Ok(())
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
    let inner = routes(state.clone());
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn_with_state(state, unprefix))
        // A bug must not take the connection down with it: the peer gets a problem document.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_problem,
        ))
}

fn panic_problem(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse as _;
    tracing::error!("a request handler panicked");
    AcmeError::internal("The server experienced an internal error").into_response()
}

/// Where Pebble serves ARI (`/draft-ietf-acme-ari-03/renewalInfo/<certID>`), served by the
/// stand-in too, for suites that build that URL themselves.
pub const PEBBLE_ARI_PATH: &str = "/draft-ietf-acme-ari-03/renewalInfo/";

/// The path a request was sent to, before [`unprefix`] took a random segment out.
#[derive(Clone, Debug)]
pub(crate) struct SentPath(pub String);

/// For profiles that randomise their paths: `/v2/NAME/<segment>/rest` is routed as
/// `/v2/NAME/rest`, and a resource path without the segment is a client that built its own
/// URLs instead of taking them from the directory and Location headers: 404.
async fn unprefix(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    let mut path = req.uri().path().to_owned();
    // Pebble serves its directory at `/dir`; suites written for it poll that path.
    if path == "/dir"
        && let Some(ctx) = &state.pebble_paths
        && let Ok(uri) = ctx.profile.directory_path.parse()
    {
        *req.uri_mut() = uri;
        path = ctx.profile.directory_path.clone();
    }
    // Pebble serves ARI at its draft's path (GET and HEAD; a POST is its 500); the directory
    // advertises the profile's own renewalInfo URL, and this serves the same answers.
    if let Some(cert_id) = path.strip_prefix(PEBBLE_ARI_PATH)
        && let Some(ctx) = &state.pebble_paths
    {
        if req.method() == http::Method::POST {
            let mut response =
                AcmeError::internal("renewalInfo answers GET and HEAD only").into_response();
            apply_common_headers(&state, &ctx.profile.directory_path, &mut response);
            return response;
        }
        let rewritten = format!("{}/renewalInfo/{cert_id}", ctx.profile.directory_path);
        if let Ok(uri) = rewritten.parse() {
            *req.uri_mut() = uri;
            path = rewritten;
        }
    }
    let mut parts = path.splitn(5, '/');
    let (_, v2, slug, segment) = (parts.next(), parts.next(), parts.next(), parts.next());
    let ctx = (v2 == Some("v2"))
        .then(|| slug.and_then(|s| state.profiles.get(s)))
        .flatten();
    if let Some(prefix) = ctx.and_then(|c| c.prefix.as_deref()) {
        let rest = parts.next();
        match (segment, rest) {
            (Some(seg), Some(rest)) if seg == prefix => {
                let mut rewritten = format!("/v2/{}/{rest}", slug.unwrap_or_default());
                if let Some(q) = req.uri().query() {
                    rewritten.push('?');
                    rewritten.push_str(q);
                }
                if let Ok(uri) = rewritten.parse() {
                    *req.uri_mut() = uri;
                }
            }
            (Some(_), _) => {
                let mut response = AcmeError::new(
                    acme_proto::ProblemType::Malformed,
                    http::StatusCode::NOT_FOUND,
                    format!("Nothing is served at {path}: take URLs from the directory and Location headers"),
                )
                .into_response();
                apply_common_headers(&state, &path, &mut response);
                return response;
            }
            _ => {}
        }
    }
    req.extensions_mut().insert(SentPath(path));
    next.run(req).await
}

fn routes(state: Arc<AppState>) -> Router {
    use handlers as h;
    let routes = Router::new()
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
            "/v2/{dir}/renewalInfo/{id}",
            get(h::renewal_info).fallback(h::get_only),
        )
        .route(
            "/v2/{dir}/account/{id}/orders",
            post(h::orders_list).fallback(h::post_only),
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
            "/v2/{dir}/cert/{id}/alternate/{n}",
            post(h::certificate_alternate).fallback(h::post_only),
        )
        .nest("/admin", crate::admin::router(state.clone()));
    let routes = state
        .mounts
        .iter()
        .fold(routes, |routes, m| routes.merge(m.routes.clone()));
    routes
        .fallback(h::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record::record,
        ))
        .with_state(state)
}

/// Headers Sectigo sends on every response, errors included (docs/evidence.md §6, §10):
/// a fresh Replay-Nonce, Link rel="index", Cache-Control, CORS and HSTS.
async fn common_headers(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/admin/") || state.mounts.iter().any(|m| m.owns(&path)) {
        // The admin API and mounted routes (the console) answer of their own, without ACME's
        // headers.
        return next.run(req).await;
    }
    if let Some(refusal) = user_agent_refusal(&state, &path, req.headers()) {
        return refusal;
    }
    let mut response = problem_for_every_error(next.run(req).await).await;
    apply_common_headers(&state, &path, &mut response);
    response
}

/// `strict.require_user_agent`: any request to the profile's endpoints (directory, newNonce,
/// renewalInfo, every POST) without a User-Agent is `malformed` (RFC 8555 §6.1: clients MUST
/// send one), as Pebble 2.10 answers it: before anything else, with no nonce and no Link.
fn user_agent_refusal(state: &AppState, path: &str, headers: &http::HeaderMap) -> Option<Response> {
    use axum::response::IntoResponse as _;
    let slug = path.strip_prefix("/v2/")?.split('/').next()?;
    let ctx = state.profiles.get(slug)?;
    let missing = headers.get(header::USER_AGENT).is_none_or(|v| v.is_empty());
    (ctx.profile.strict.require_user_agent && missing).then(|| {
        AcmeError::malformed("All requests MUST include a User-Agent header").into_response()
    })
}

/// Adds the headers of [`common_headers`] to a response made outside it.
pub(crate) fn apply_common_headers(state: &AppState, path: &str, response: &mut Response) {
    let slug = path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.split('/').next());
    let ctx = slug.and_then(|s| state.profiles.get(s));
    // A proxy's HTML page carries no nonce: the request never reached the CA.
    let proxy_page = response.extensions().get::<error::Injected>().is_some()
        && !ctx.is_some_and(|c| c.profile.nonce.proxy_pages_consume_nonce);
    let headers = response.headers_mut();
    if !proxy_page && let Ok(nonce) = HeaderValue::from_str(&state.store.nonces.issue()) {
        headers.insert("replay-nonce", nonce);
    }
    if let Some(ctx) = ctx {
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
    let injected = response.extensions().get::<error::Injected>().is_some();
    if !(status.is_client_error() || status.is_server_error()) || is_problem || injected {
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

/// A state for unit tests: the demo organisation, every built-in profile, one CA per test
/// binary.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_state() -> AppState {
    static CA: std::sync::OnceLock<Arc<Ca>> = std::sync::OnceLock::new();
    let ca = CA.get_or_init(|| Arc::new(Ca::generate().unwrap())).clone();
    AppState::new(
        crate::state::Store::new(crate::Orgs::demo()),
        ca,
        Profile::all_built_in().unwrap(),
        "https://127.0.0.1:1".into(),
        Extras {
            limits: crate::server::Limits::default(),
            seed: 1,
            server_faults: None,
            admin_token: acme_proto::Secret::new("t".repeat(43)),
            dns: Arc::default(),
            validator: Arc::new(
                crate::validate::Validator::new(([127, 0, 0, 1], 53).into(), 5002, 5001).unwrap(),
            ),
        },
    )
}

/// The router in-process, request by request (`tower::ServiceExt::oneshot`), no socket: the
/// endpoints that need no signed request, and the refusals a broken client gets before its
/// JWS is even read.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod router_tests {
    use axum::body::Body;
    use http::{Method, Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(method: Method, uri: &str, body: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        call_on(test_state(), method, uri, body).await
    }

    async fn call_on(
        state: AppState,
        method: Method,
        uri: &str,
        body: &str,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let app = router(Arc::new(state));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/jose+json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn problem_type(headers: &http::HeaderMap, body: &[u8]) -> String {
        assert_eq!(headers["content-type"], "application/problem+json");
        let p: serde_json::Value = serde_json::from_slice(body).unwrap();
        p["type"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn directory_and_nonce_without_a_socket() {
        let (status, headers, body) = call(Method::GET, "/v2/InCommonRSAOV", "").await;
        assert_eq!(status, StatusCode::OK);
        let dir: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(dir["meta"]["externalAccountRequired"], true);
        assert!(headers.contains_key("replay-nonce"));
        let new_nonce = dir["newNonce"].as_str().unwrap();
        let path = new_nonce.split_once("127.0.0.1:1").unwrap().1.to_owned();
        let (status, headers, _) = call(Method::HEAD, &path, "").await;
        assert_eq!(status, StatusCode::OK);
        // RFC 8555 §7.2: newNonce answers must not be cached.
        let cache = headers["cache-control"].to_str().unwrap();
        assert!(cache.contains("no-store"), "{cache}");
        assert!(headers.contains_key("replay-nonce"));
    }

    /// Routes another crate mounts (the console) are served next to ACME's, with the mock's
    /// state, and answer of their own: no nonce, no problem document. Without the mount the
    /// path is an ACME 404 like any other.
    #[tokio::test]
    async fn mounted_routes_answer_of_their_own_with_the_mocks_state() {
        let mounted = || {
            let mut state = test_state();
            state.mounts = vec![Mount {
                prefix: "/panel",
                routes: Router::new()
                    .route(
                        "/panel",
                        get(|| async { (StatusCode::IM_A_TEAPOT, "the panel") }),
                    )
                    .route(
                        "/panel/{*rest}",
                        get(|State(state): State<Arc<AppState>>| async move {
                            format!("{} profiles", state.profiles.len())
                        }),
                    ),
            }];
            state
        };
        let profiles = test_state().profiles.len();
        let (status, headers, body) = call_on(mounted(), Method::GET, "/panel", "").await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body, b"the panel");
        assert!(!headers.contains_key("replay-nonce"), "{headers:?}");
        let (status, headers, body) = call_on(mounted(), Method::GET, "/panel/x/y", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("{profiles} profiles")
        );
        assert!(!headers.contains_key("replay-nonce"), "{headers:?}");

        // A path that only starts like the prefix, and the prefix unmounted: ACME's 404.
        for (state, path) in [(mounted(), "/panelx"), (test_state(), "/panel")] {
            let (status, headers, body) = call_on(state, Method::GET, path, "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(problem_type(&headers, &body).ends_with(":malformed"));
            assert!(headers.contains_key("replay-nonce"), "{path}");
        }
    }

    #[tokio::test]
    async fn sectigo_refuses_the_generic_directory() {
        let (status, _, _) = call(Method::GET, "/v2/directory", "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn unknown_paths_and_garbage_get_problem_documents() {
        let (status, headers, body) = call(Method::GET, "/nowhere", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(problem_type(&headers, &body).ends_with(":malformed"));

        let dir = call(Method::GET, "/v2/InCommonRSAOV", "").await.2;
        let dir: serde_json::Value = serde_json::from_slice(&dir).unwrap();
        let new_account = dir["newAccount"].as_str().unwrap();
        let path = new_account.split_once("127.0.0.1:1").unwrap().1.to_owned();
        let (status, headers, body) = call(Method::POST, &path, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(problem_type(&headers, &body).ends_with(":malformed"));
        assert!(
            headers.contains_key("replay-nonce"),
            "refusals carry a nonce too"
        );
    }
}
