//! The read-only pages: login, live view, grading, one exchange, the rules, reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::live::ExchangeView;
use super::{Session, render};
use mock_server::http::AppState;

use crate::Console;

pub(crate) async fn login_page() -> Response {
    render("login.html", minijinja::context! { failed => false })
}

pub(crate) fn login_failed() -> Response {
    render("login.html", minijinja::context! { failed => true })
}

/// The credentials the filters offer: every one the model has, and `-`.
fn scopes(state: &AppState) -> Vec<String> {
    let orgs = state.store.orgs.load();
    let mut out: Vec<String> = orgs.credentials.iter().map(|c| c.kid.clone()).collect();
    out.push("-".into());
    out
}

pub(crate) async fn live(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(
        "live.html",
        minijinja::context! {
            page => "live",
            csrf => session.csrf,
            scopes => scopes(&state),
        },
    )
}

/// One failed rule of one credential's grade, with what broke it.
#[derive(Serialize)]
struct FailedRule {
    id: &'static str,
    statement: &'static str,
    source: &'static str,
    severity: &'static str,
    findings: Vec<conformance::rules::Finding>,
}

/// One credential's grade.
#[derive(Serialize)]
struct Grade {
    scope: String,
    summary: String,
    exchanges: usize,
    must_failed: bool,
    failed: Vec<FailedRule>,
    passed: usize,
    not_applicable: usize,
}

/// The judge's verdict on every credential that has exchanges, graded now.
fn grades(state: &AppState) -> Vec<Grade> {
    let mut by_scope: BTreeMap<String, Vec<acme_proto::transcript::Exchange>> = BTreeMap::new();
    for e in state.store.transcripts.all() {
        let scope = e.eab_kid.clone().unwrap_or_else(|| "-".into());
        by_scope.entry(scope).or_default().push(e);
    }
    by_scope
        .into_iter()
        .map(|(scope, exchanges)| {
            let report = conformance::grade(scope.clone(), exchanges);
            let failed = report
                .failed()
                .map(|r| FailedRule {
                    id: r.id,
                    statement: r.statement,
                    source: r.source,
                    severity: r.severity.label(),
                    findings: r.findings.clone(),
                })
                .collect();
            Grade {
                summary: report.summary(),
                exchanges: report.exchanges,
                must_failed: report.must_failed(),
                passed: report.rules.iter().filter(|r| r.verdict == "pass").count(),
                not_applicable: report
                    .rules
                    .iter()
                    .filter(|r| r.verdict == "not-applicable")
                    .count(),
                failed,
                scope,
            }
        })
        .collect()
}

pub(crate) async fn grading(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
) -> Response {
    let grades = grades(&state);
    render(
        "grading.html",
        minijinja::context! { page => "grading", csrf => session.csrf, grades => grades },
    )
}

/// The grades alone, for the grading page to swap in as exchanges arrive.
pub(crate) async fn grading_fragment(State(state): State<Arc<AppState>>) -> Response {
    render(
        "grades.html",
        minijinja::context! { grades => grades(&state) },
    )
}

#[derive(Serialize)]
struct RuleView {
    id: &'static str,
    statement: &'static str,
    source: &'static str,
    severity: &'static str,
    explanation: &'static str,
    fix: &'static str,
}

pub(crate) async fn rules(Extension(session): Extension<Session>) -> Response {
    let rules: Vec<RuleView> = conformance::rules::catalogue()
        .iter()
        .map(|r| RuleView {
            id: r.id,
            statement: r.statement,
            source: r.source,
            severity: r.severity.label(),
            explanation: r.explanation,
            fix: r.fix,
        })
        .collect();
    render(
        "rules.html",
        minijinja::context! { page => "rules", csrf => session.csrf, rules => rules },
    )
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// One exchange in full: what the rules' findings link to.
pub(crate) async fn exchange(
    State(state): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    Path(seq): Path<String>,
) -> Response {
    let found = seq.parse::<u64>().ok().and_then(|seq| {
        state
            .store
            .transcripts
            .since_with_faults(seq.saturating_sub(1))
            .into_iter()
            .find(|(e, _)| e.seq == seq)
    });
    let Some((e, fault)) = found else {
        return message(
            &session,
            StatusCode::NOT_FOUND,
            "No such exchange",
            &format!(
                "No exchange #{seq} is kept (the oldest are dropped past 10,000 per credential)."
            ),
        );
    };
    let view = ExchangeView::new(e, fault);
    let e = &view.exchange;
    render(
        "exchange.html",
        minijinja::context! {
            page => "live",
            csrf => session.csrf,
            e => &view,
            protected => e.jws.as_ref().map(|j| pretty(&j.protected)),
            payload => e.jws.as_ref().map(|j| if j.post_as_get { String::new() } else { pretty(&j.payload) }),
            request_headers => pretty(&e.request_headers),
            response_headers => pretty(&e.response_headers),
            response_body => e.response_body.as_ref().map(pretty),
            problem => e.problem.as_ref().map(pretty),
        },
    )
}

/// A page that says one thing (an error, a result).
pub(crate) fn message(session: &Session, status: StatusCode, title: &str, text: &str) -> Response {
    let mut response = render(
        "message.html",
        minijinja::context! { csrf => session.csrf, title => title, text => text },
    );
    *response.status_mut() = status;
    response
}

pub(crate) async fn not_found(Extension(session): Extension<Session>) -> Response {
    message(
        &session,
        StatusCode::NOT_FOUND,
        "Not found",
        "The console has no such page.",
    )
}

pub(crate) async fn reports(
    Extension(console): Extension<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(
        "reports.html",
        minijinja::context! {
            page => "reports",
            csrf => session.csrf,
            available => console.report_view.get().is_some(),
            shown => session.report.is_some(),
            error => None::<String>,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct ReportForm {
    report: String,
}

/// Opens a vet or matrix JSON report: rendered by the HTML report's own code, shown in a
/// sandboxed frame (its page has inline styles, which the console's policy forbids).
pub(crate) async fn open_report(
    Extension(console): Extension<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(form): Form<ReportForm>,
) -> Response {
    let Some(view) = console.report_view.get() else {
        return message(
            &session,
            StatusCode::NOT_IMPLEMENTED,
            "Reports are not available",
            "This server was started without the report reader (acme-harness serve has it).",
        );
    };
    let (status, error) = match view(&form.report) {
        Ok(html) => {
            console.set_report(&session.id, html);
            (StatusCode::OK, None)
        }
        Err(e) => (StatusCode::BAD_REQUEST, Some(e)),
    };
    let mut response = render(
        "reports.html",
        minijinja::context! {
            page => "reports",
            csrf => session.csrf,
            available => true,
            shown => error.is_none() || session.report.is_some(),
            error => error,
        },
    );
    *response.status_mut() = status;
    response
}

/// The report last opened, as the HTML report renders it. Its page carries inline CSS and no
/// script: it gets a policy of its own that allows exactly that, inside a sandbox.
pub(crate) async fn report_frame(
    Extension(console): Extension<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Response {
    let current = console.find(&session.id).and_then(|s| s.report);
    let Some(html) = current else {
        return message(
            &session,
            StatusCode::NOT_FOUND,
            "No report",
            "Open a report first.",
        );
    };
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        (*html).clone(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'",
        ),
    );
    response.headers_mut().insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    response
}
