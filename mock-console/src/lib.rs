//! The web console at `/console` on the mock's own listener: watch the exchanges as they
//! happen, the judge's verdict per credential, the organisation model, and vet or matrix
//! reports, in a browser (docs/console.md).
//!
//! The mock does not serve it by itself: whoever starts the server adds [`mount`] to
//! [`ServerConfig::mounts`](mock_server::ServerConfig::mounts) (`acme-harness serve` and the
//! embeddable kit do). Its pages read the mock through the server's state: the store, the
//! recorded exchanges and their live subscription, the admin API in-process.
//!
//! Like `/admin` it answers loopback clients only. Logging in with the admin token sets an
//! HttpOnly, SameSite=Strict session cookie; every form carries the session's CSRF token and a
//! request from another origin is refused; pages are rendered from templates that escape
//! everything they are given, and the Content-Security-Policy allows nothing but the
//! console's own script and style sheet, which are served from the binary.

mod live;
mod manage;
mod pages;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use acme_proto::b64;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rand::RngCore;
use serde::Serialize;
use subtle::ConstantTimeEq as _;

use mock_server::http::{AppState, Mount};

/// Where the console lives on the mock's listener (its [`Mount`]'s prefix).
pub const PREFIX: &str = "/console";

/// The session cookie's name.
pub const COOKIE: &str = "acme_console";

/// The most sessions kept at once; logging in past it ends the oldest.
const MAX_SESSIONS: usize = 64;

/// The largest form accepted (a pasted vet or matrix report).
const MAX_FORM_BYTES: usize = 16 * 1024 * 1024;

/// Renders a vet or matrix JSON report as the HTML report does, or says why it cannot.
/// The mock cannot read reports itself (they belong to the real-client harness), so whoever
/// starts the server hands it one ([`Console::set_report_view`]).
pub type ReportView = fn(&str) -> Result<String, String>;

/// One logged-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    id: String,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    /// The report last opened (rendered HTML), shown in the report frame.
    report: Option<Arc<String>>,
}

/// The console's state: sessions and the report renderer.
#[derive(Default)]
pub struct Console {
    sessions: Mutex<VecDeque<Session>>,
    report_view: OnceLock<ReportView>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sessions = self.sessions.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("Console")
            .field("sessions", &sessions)
            .field("report_view", &self.report_view.get().is_some())
            .finish()
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    b64::encode(bytes)
}

impl Console {
    /// Lets the console open vet and matrix reports (set once; later calls are ignored).
    pub fn set_report_view(&self, view: ReportView) {
        let _ = self.report_view.set(view);
    }

    fn login(&self) -> Session {
        let session = Session {
            id: random_token(),
            csrf: random_token(),
            report: None,
        };
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= MAX_SESSIONS {
                sessions.pop_front();
            }
            sessions.push_back(session.clone());
        }
        session
    }

    fn find(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .iter()
            .find(|s| bool::from(s.id.as_bytes().ct_eq(id.as_bytes())))
            .cloned()
    }

    fn logout(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|s| s.id != id);
        }
    }

    fn set_report(&self, id: &str, html: String) {
        if let Ok(mut sessions) = self.sessions.lock()
            && let Some(s) = sessions.iter_mut().find(|s| s.id == id)
        {
            s.report = Some(Arc::new(html));
        }
    }
}

/// Where the console of a server that mounts it is: on the admin API's (loopback) origin;
/// `None` when the server has no admin URL.
pub fn url(ready: &mock_server::ReadyInfo) -> Option<String> {
    let admin = ready.admin_url.as_deref()?;
    Some(format!("{}{PREFIX}/", admin.strip_suffix("/admin")?))
}

/// The console, to add to [`ServerConfig::mounts`](mock_server::ServerConfig::mounts), with
/// `console` holding its sessions (and the report renderer, which the caller may set).
pub fn mount(console: Arc<Console>) -> Mount {
    Mount {
        prefix: PREFIX,
        routes: router(console),
    }
}

/// The console's routes (full paths: `/console/`, `/console/grading`, ...). `/console`
/// without the slash redirects to it.
fn router(console: Arc<Console>) -> Router<Arc<AppState>> {
    let open = Router::new().route("/console/login", get(pages::login_page).post(login));
    let guarded = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::live))
        .route("/console/grading", get(pages::grading))
        .route("/console/grading/fragment", get(pages::grading_fragment))
        .route("/console/rules", get(pages::rules))
        .route("/console/exchanges/{seq}", get(pages::exchange))
        .route("/console/org", get(manage::org_page))
        .route("/console/org/organizations", post(manage::add_org))
        .route(
            "/console/org/organizations/{org}/domains",
            post(manage::add_domain),
        )
        .route(
            "/console/org/organizations/{org}/departments",
            post(manage::add_department),
        )
        .route(
            "/console/org/domains/{name}/validation",
            post(manage::set_validation),
        )
        .route(
            "/console/org/departments/{dept}/delegations",
            post(manage::delegate),
        )
        .route("/console/credentials", post(manage::create_credential))
        .route("/console/credentials/{kid}", get(manage::credential_page))
        .route(
            "/console/credentials/{kid}/revoke",
            post(manage::revoke_credential),
        )
        .route(
            "/console/credentials/{kid}/faults",
            post(manage::set_faults),
        )
        .route(
            "/console/certificates/{id}/revoke",
            post(manage::revoke_certificate),
        )
        .route(
            "/console/certificates/{id}/pem",
            get(manage::download_certificate),
        )
        .route(
            "/console/reports",
            get(pages::reports).post(pages::open_report),
        )
        .route("/console/reports/current", get(pages::report_frame))
        .route("/console/api/exchanges", get(live::exchanges))
        .route("/console/api/events", get(live::events))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
        .route("/console/logout", post(logout))
        .route(
            "/console/{*rest}",
            get(pages::not_found).post(pages::not_found),
        )
        .layer(middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    open.merge(guarded)
        .layer(middleware::from_fn(same_origin_posts))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(mock_server::admin::loopback_only))
        .layer(Extension(console))
}

/// The session cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Pages of a browser without a session go to the login page; everything else (the API, the
/// event stream, the assets, forms) answers 401.
async fn require_session(
    State(console): State<Arc<Console>>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = cookie(req.headers()).and_then(|id| console.find(id));
    let Some(session) = session else {
        let path = req.uri().path();
        let page = req.method() == Method::GET
            && !path.contains("/api/")
            && !path.contains("/assets/")
            && req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        if page {
            return Redirect::to("/console/login").into_response();
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "console: log in at /console/login with the admin token\n",
        )
            .into_response();
    };
    if req.method() == Method::POST {
        // Every form carries the session's CSRF token, checked here once for all of them.
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let token = form_urlencoded_value(&bytes, "csrf");
        let valid = token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(session.csrf.as_bytes())));
        if !valid {
            return refuse(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale: reload the page",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("console: {message}\n"),
    )
        .into_response()
}

/// Whether a request comes from a page of the console's own origin: its `Origin`, when it
/// names one, is the host it was sent to, and its `Sec-Fetch-Site`, when the browser sends
/// it, says same-origin (or `none`: typed by the user). An opaque `Origin: null` counts only
/// with a same-origin `Sec-Fetch-Site`.
fn same_origin(headers: &HeaderMap, uri: &http::Uri) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let fetch_site = headers.get("sec-fetch-site").and_then(|s| s.to_str().ok());
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("null"))
    {
        Some("null") => fetch_site.is_some(),
        Some(origin) => host.is_some_and(|host| origin == format!("https://{host}")),
        None => true,
    }
}

/// A form posted from another site is refused before anything reads it, login included.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !same_origin(req.headers(), req.uri())
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-origin request refused: use the console's own pages",
        );
    }
    next.run(req).await
}

/// What every console answer carries: a Content-Security-Policy that allows the console's own
/// script and style sheet and nothing else, no framing, no caching, no sniffing.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// Checks the admin token and starts a session.
async fn login(
    State(state): State<Arc<AppState>>,
    Extension(console): Extension<Arc<Console>>,
    body: axum::body::Bytes,
) -> Response {
    let form: Option<LoginForm> = serde_urlencoded::from_bytes(&body).ok();
    let given = form.map(|f| f.token).unwrap_or_default();
    let expected = state.admin_token.expose().as_bytes();
    if !bool::from(given.trim().as_bytes().ct_eq(expected)) {
        let mut response = pages::login_failed();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let session = console.login();
    let mut response = Redirect::to("/console/").into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/console; HttpOnly; Secure; SameSite=Strict",
        session.id
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(Extension(console): Extension<Arc<Console>>, req: Request) -> Response {
    if let Some(id) = cookie(req.headers()) {
        console.logout(id);
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "acme_console=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The templates, parsed once; names ending `.html` are auto-escaped.
fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("live.html", include_str!("templates/live.html")),
            ("grading.html", include_str!("templates/grading.html")),
            ("grades.html", include_str!("templates/grades.html")),
            ("exchange.html", include_str!("templates/exchange.html")),
            ("rules.html", include_str!("templates/rules.html")),
            ("org.html", include_str!("templates/org.html")),
            ("credential.html", include_str!("templates/credential.html")),
            ("minted.html", include_str!("templates/minted.html")),
            ("reports.html", include_str!("templates/reports.html")),
            ("message.html", include_str!("templates/message.html")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "console template does not parse");
            }
        }
        env
    })
}

/// A page from its template; a template error is the server's fault and says so.
fn render(name: &str, context: impl Serialize) -> Response {
    match templates()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "a page failed to render")
        }
    }
}

#[cfg(test)]
mod tests;
