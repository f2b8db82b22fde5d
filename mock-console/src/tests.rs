//! The console in-process (`tower::ServiceExt::oneshot`): no way in without the session, no
//! form from another site, nothing a client sent reaches the page as markup.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use mock_server::http::{AppState, router};
use mock_server::{MockServer, ServerConfig};

use crate::{Console, mount};

/// A mock with the console mounted (the tests send to its router in-process), and the
/// console's own state.
async fn started() -> (MockServer, Arc<Console>) {
    let console = Arc::new(Console::default());
    let server = MockServer::start(ServerConfig {
        mounts: vec![mount(console.clone())],
        ..ServerConfig::ephemeral()
    })
    .await
    .unwrap();
    (server, console)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(state: &Arc<AppState>, request: Request<Body>) -> Reply {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, "127.0.0.1:1")
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, origin: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "127.0.0.1:1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

const ORIGIN: &str = "https://127.0.0.1:1";

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_owned()
}

/// Logs in; the session cookie (`name=value`) and the session's CSRF token.
async fn login(state: &Arc<AppState>) -> (String, String) {
    let token = state.admin_token.expose().clone();
    let r = send(
        state,
        post(
            "/console/login",
            None,
            Some(ORIGIN),
            &format!("token={}", enc(&token)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = send(state, get("/console/", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

/// Every route of the console, with a method it answers.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/console"),
    ("GET", "/console/"),
    ("GET", "/console/grading"),
    ("GET", "/console/grading/fragment"),
    ("GET", "/console/rules"),
    ("GET", "/console/exchanges/1"),
    ("GET", "/console/org"),
    ("POST", "/console/org/organizations"),
    ("POST", "/console/org/organizations/1/domains"),
    ("POST", "/console/org/organizations/1/departments"),
    (
        "POST",
        "/console/org/domains/physics.example.edu/validation",
    ),
    ("POST", "/console/org/departments/1/delegations"),
    ("POST", "/console/credentials"),
    ("GET", "/console/credentials/DemoPhysicsKeyId0000Ab"),
    ("POST", "/console/credentials/DemoPhysicsKeyId0000Ab/revoke"),
    ("POST", "/console/credentials/DemoPhysicsKeyId0000Ab/faults"),
    ("POST", "/console/certificates/x/revoke"),
    ("GET", "/console/certificates/x/pem"),
    ("GET", "/console/reports"),
    ("POST", "/console/reports"),
    ("GET", "/console/reports/current"),
    ("GET", "/console/api/exchanges"),
    ("GET", "/console/api/events"),
    ("GET", "/console/assets/console.js"),
    ("GET", "/console/assets/console.css"),
    ("POST", "/console/logout"),
    ("GET", "/console/no-such-page"),
];

#[tokio::test]
async fn without_the_session_every_console_url_is_401_or_the_login_page() {
    let (server, _console) = started().await;
    let state = server.state().clone();
    for (method, path) in ROUTES {
        for cookie in [None, Some("acme_console=forged-session-id")] {
            let request = match *method {
                "GET" => get(path, cookie),
                _ => post(path, cookie, Some(ORIGIN), "csrf=x"),
            };
            let r = send(&state, request).await;
            let to_login = r.status == StatusCode::SEE_OTHER
                && r.headers[header::LOCATION] == "/console/login";
            assert!(
                r.status == StatusCode::UNAUTHORIZED || to_login,
                "{method} {path} with {cookie:?}: {}",
                r.status
            );
            assert!(r.headers.contains_key(header::CONTENT_SECURITY_POLICY));
        }
    }
    // Nothing changed behind the refusals.
    let orgs = state.store.orgs.load();
    assert!(orgs.credentials.iter().all(|c| !c.is_revoked()));
}

/// The URL `serve`'s banner prints: the console next to the admin API, on the server's own
/// origin; none for a server without an admin URL.
#[tokio::test]
async fn the_url_is_on_the_admin_apis_origin() {
    let (server, _console) = started().await;
    let port = server.addr().port();
    assert_eq!(
        crate::url(server.ready()).as_deref(),
        Some(format!("https://127.0.0.1:{port}/console/").as_str())
    );
    let mut ready = server.ready().clone();
    ready.admin_url = None;
    assert_eq!(crate::url(&ready), None);
}

#[tokio::test]
async fn login_takes_the_admin_token_and_sets_a_strict_http_only_cookie() {
    let (server, _console) = started().await;
    let state = server.state().clone();
    let r = send(
        &state,
        post("/console/login", None, Some(ORIGIN), "token=wrong"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.headers.contains_key(header::SET_COOKIE));
    assert!(r.body.contains("not the admin token"));

    let token = state.admin_token.expose().clone();
    let r = send(
        &state,
        post(
            "/console/login",
            None,
            Some(ORIGIN),
            &format!("token={}", enc(&token)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(&token),
        "the cookie is a session id, not the token"
    );

    let (cookie, csrf) = login(&state).await;
    let page = send(&state, get("/console/", Some(&cookie))).await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // The page's only script is the file the binary serves.
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(
        page.body
            .contains("<script src=\"/console/assets/console.js\"")
    );
    let js = send(&state, get("/console/assets/console.js", Some(&cookie))).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    // Logging out ends the session.
    let r = send(
        &state,
        post(
            "/console/logout",
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = send(&state, get("/console/api/exchanges", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let (server, _console) = started().await;
    let state = server.state().clone();
    let (cookie, csrf) = login(&state).await;
    let kid = "DemoPhysicsKeyId0000Ab";
    let path = format!("/console/credentials/{kid}/revoke");
    let form = format!("csrf={csrf}");
    // Another site's page posting with the victim's cookie: refused on its Origin.
    let r = send(
        &state,
        post(&path, Some(&cookie), Some("https://evil.example"), &form),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A browser that sends no Origin but says the request is cross-site.
    let mut request = post(&path, Some(&cookie), None, &form);
    request
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&state, request).await.status, StatusCode::FORBIDDEN);
    // The right origin but no (or a wrong) CSRF token.
    for form in ["", "csrf=wrong"] {
        let r = send(&state, post(&path, Some(&cookie), Some(ORIGIN), form)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form}: {}", r.body);
    }
    // Login from another site too.
    let r = send(
        &state,
        post(
            "/console/login",
            None,
            Some("https://evil.example"),
            "token=x",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!state.credential(kid).unwrap().is_revoked());

    // The console's own form goes through.
    let r = send(&state, post(&path, Some(&cookie), Some(ORIGIN), &form)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(state.credential(kid).unwrap().is_revoked());
}

/// A hostile client's strings: a `<script>` in a domain name and in a problem detail.
#[tokio::test]
async fn hostile_strings_are_escaped_everywhere_they_are_shown() {
    use acme_proto::b64;
    use mock_server::state::transcripts::RawExchange;
    let (server, _console) = started().await;
    let state = server.state().clone();
    let (cookie, csrf) = login(&state).await;
    let name = "<script>alert('name')</script>.example.edu";
    let detail = "<script>alert('detail')</script> is not a name";
    let protected = serde_json::json!({
        "alg": "ES256", "kid": "https://127.0.0.1:1/v2/InCommonRSAOV/account/A",
        "nonce": "n1", "url": "https://127.0.0.1:1/v2/InCommonRSAOV/newOrder",
    });
    let payload = serde_json::json!({"identifiers": [{"type": "dns", "value": name}]});
    let body = serde_json::json!({
        "protected": b64::encode(protected.to_string().as_bytes()),
        "payload": b64::encode(payload.to_string().as_bytes()),
        "signature": "c2ln",
    });
    let problem = serde_json::json!({
        "type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": detail, "status": 400,
    });
    let (seq, elapsed_ms) = state.store.transcripts.stamp();
    state.store.transcripts.record(RawExchange {
        seq,
        time: time::OffsetDateTime::now_utc(),
        elapsed_ms,
        duration_us: Some(1500),
        method: http::Method::POST,
        url: "https://127.0.0.1:1/v2/InCommonRSAOV/newOrder".into(),
        request_headers: vec![("content-type", "application/jose+json".parse().unwrap())],
        request_body: Some(body.to_string().into()),
        status: 400,
        response_headers: vec![(
            "content-type",
            acme_proto::PROBLEM_CONTENT_TYPE.parse().unwrap(),
        )],
        response_body: Some(problem.to_string().into()),
        account: Some("https://127.0.0.1:1/v2/InCommonRSAOV/account/A".into()),
        eab_kid: Some("<script>alert('kid')</script>".into()),
        fault: None,
    });
    // An organisation named like an attack, made through the console's own form.
    let r = send(
        &state,
        post(
            "/console/org/organizations",
            Some(&cookie),
            Some(ORIGIN),
            &format!(
                "csrf={csrf}&name={}&country=US&state=NY",
                enc("<script>alert('org')</script>")
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    for path in [
        format!("/console/exchanges/{seq}"),
        "/console/grading".to_owned(),
        "/console/grading/fragment".to_owned(),
        "/console/".to_owned(),
        "/console/org".to_owned(),
    ] {
        let page = send(&state, get(&path, Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "{path} shows markup:\n{}",
            page.body
        );
        assert_eq!(
            page.body.matches("<script").count(),
            usize::from(path != "/console/grading/fragment"),
            "{path}"
        );
    }
    let detail_page = send(
        &state,
        get(&format!("/console/exchanges/{seq}"), Some(&cookie)),
    )
    .await;
    assert!(
        detail_page.body.contains("&lt;script&gt;alert("),
        "{}",
        detail_page.body
    );
    let org = send(&state, get("/console/org", Some(&cookie))).await;
    assert!(org.body.contains("&lt;script&gt;alert("));
    // The JSON the live view reads is JSON, never sniffed as a page; the script puts its
    // strings into the page as text.
    let api = send(&state, get("/console/api/exchanges", Some(&cookie))).await;
    assert_eq!(api.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(api.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let list: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(list[0]["problem"]["detail"], detail);
    assert_eq!(list[0]["endpoint"], "newOrder");
}

#[tokio::test]
async fn forms_get_the_admin_api_validation_and_messages() {
    let (server, _console) = started().await;
    let state = server.state().clone();
    let (cookie, csrf) = login(&state).await;
    // The admin API's refusal, word for word.
    let r = send(
        &state,
        post(
            "/console/org/organizations",
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&name=X&country=USA&state=NY"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains("country must be a two-letter ISO 3166 code"),
        "{}",
        r.body
    );

    // A credential: its HMAC key is on the page that minted it, and nowhere after.
    let orgs = state.store.orgs.load();
    let dept = orgs.departments[0].id;
    drop(orgs);
    let r = send(
        &state,
        post(
            "/console/credentials",
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&department={dept}&domains="),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let hmac = r
        .body
        .split("id=\"minted-hmac\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let kid = r
        .body
        .split("id=\"minted-kid\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(hmac.len(), 86);
    for path in [
        "/console/org".to_owned(),
        format!("/console/credentials/{kid}"),
    ] {
        let page = send(&state, get(&path, Some(&cookie))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(&kid));
        assert!(
            !page.body.contains(&hmac),
            "{path} shows the HMAC key again"
        );
    }
    // A fault plan the admin API refuses, with its message; then one it takes; then cleared.
    let faults = format!("/console/credentials/{kid}/faults");
    let r = send(
        &state,
        post(
            &faults,
            Some(&cookie),
            Some(ORIGIN),
            &format!(
                "csrf={csrf}&plan={}",
                enc("[[rule]]\nendpoint = \"nowhere\"\n")
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let plan = "[[rule]]\nendpoint = \"newOrder\"\nfault = \"badNonce\"\nnth = [1]\n";
    let r = send(
        &state,
        post(
            &faults,
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&plan={}", enc(plan)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(state.credential(&kid).unwrap().faults.load_full().is_some());
    let r = send(
        &state,
        post(
            &faults,
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&plan="),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(state.credential(&kid).unwrap().faults.load_full().is_none());
}

/// The administrator's workflow through the console's forms, as in Sectigo's portal: a new
/// organisation, a domain added unvalidated and then validated, a department, a delegation; a
/// delegation of a name the organisation does not have is refused with the admin API's words.
#[tokio::test]
async fn the_organisation_workflow_runs_through_the_forms() {
    let (server, _console) = started().await;
    let state = server.state().clone();
    let (cookie, csrf) = login(&state).await;
    let form = |path: &str, fields: &str| {
        post(
            path,
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&{fields}"),
        )
    };
    let r = send(
        &state,
        form(
            "/console/org/organizations",
            "name=Example+College&country=US&state=Ohio",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let org = (state.store.orgs.load().organizations.iter())
        .find(|o| o.name == "Example College")
        .map(|o| o.id)
        .unwrap();
    // Added without `validated`: not validated.
    let r = send(
        &state,
        form(
            &format!("/console/org/organizations/{org}/domains"),
            "name=college.example",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let validated = |state: &AppState| {
        (state.store.orgs.load().domains.iter())
            .find(|d| d.name == "college.example")
            .map(|d| (d.org, d.validated))
    };
    assert_eq!(validated(&state), Some((org, false)));
    let r = send(
        &state,
        form(
            "/console/org/domains/college.example/validation",
            "validated=true",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(validated(&state), Some((org, true)));
    let r = send(
        &state,
        form(
            &format!("/console/org/organizations/{org}/departments"),
            "name=Library",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let dept = (state.store.orgs.load().departments.iter())
        .find(|d| d.org == org && d.name == "Library")
        .map(|d| d.id)
        .unwrap();
    let delegations = format!("/console/org/departments/{dept}/delegations");
    let r = send(&state, form(&delegations, "domain=college.example")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        state.store.orgs.load().departments[dept]
            .domains
            .contains("college.example")
    );
    // A name of another organisation: refused, with the admin API's message on the page.
    let r = send(&state, form(&delegations, "domain=physics.example.edu")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let admin = mock_server::admin::call(
        &state,
        http::Method::POST,
        &format!("/departments/{dept}/delegations"),
        Some(serde_json::json!({"domain": "physics.example.edu"})),
    )
    .await
    .unwrap_err();
    assert!(
        r.body.replace("&quot;", "\"").contains(&admin.1),
        "{}\n{}",
        r.body,
        admin.1
    );
    // The organisation page lists what was made.
    let page = send(&state, get("/console/org", Some(&cookie))).await;
    for text in ["Example College", "college.example", "Library"] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
}

/// Stands in for the real-client harness's HTML report (which depends on this crate): a page
/// with inline CSS, as that report has.
fn fake_report(text: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    Ok(format!(
        "<!DOCTYPE html><html><head><style>body{{color:red}}</style></head><body>seed {}</body></html>",
        v["seed"]
    ))
}

#[tokio::test]
async fn a_report_opens_in_a_sandboxed_frame_of_its_own() {
    let (server, console) = started().await;
    let state = server.state().clone();
    let (cookie, csrf) = login(&state).await;
    // Without a renderer the page says where to get one.
    let page = send(&state, get("/console/reports", Some(&cookie))).await;
    assert!(page.body.contains("acme-harness serve"), "{}", page.body);
    console.set_report_view(fake_report);

    let r = send(
        &state,
        post(
            "/console/reports",
            Some(&cookie),
            Some(ORIGIN),
            &format!("csrf={csrf}&report=nonsense"),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not JSON"), "{}", r.body);
    let r = send(&state, get("/console/reports/current", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = send(
        &state,
        post(
            "/console/reports",
            Some(&cookie),
            Some(ORIGIN),
            &format!(
                "csrf={csrf}&report={}",
                enc(r#"{"seed": 8, "results": []}"#)
            ),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains("<iframe id=\"report-frame\" src=\"/console/reports/current\" sandbox")
    );
    let frame = send(&state, get("/console/reports/current", Some(&cookie))).await;
    assert_eq!(frame.status, StatusCode::OK);
    assert!(frame.body.contains("seed 8"));
    let csp = frame.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("frame-ancestors 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    // Another session does not see it.
    let (other, _) = login(&state).await;
    let r = send(&state, get("/console/reports/current", Some(&other))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
