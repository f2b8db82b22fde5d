//! The web console in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, with fantoccini). It logs in, watches a reference-client issuance appear live,
//! sees a planted rule failure on the grading page, creates and revokes an EAB credential, and
//! checks the browser logged no error (a script error or a Content-Security-Policy violation
//! would be one). Screenshots of the main views go to target/console/. Needs `chromium` and
//! `chromium-driver`; .ci/run installs them and runs this with `--ignored`.

#![allow(clippy::unwrap_used)]

#[path = "mock/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = mock_server::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) is not installed");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Browser {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--window-size=1400,900", "--disable-dev-shm-usage"],
        }),
    );
    // The mock's listener certificate is from its own test CA.
    caps.insert("acceptInsecureCerts".into(), Value::Bool(true));
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(b) => return b,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

/// chromedriver's log of the page's console (`goog:loggingPrefs`), drained on each read.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

async fn console_errors(b: &Browser) -> Vec<String> {
    let log = b.issue_cmd(BrowserLog).await.unwrap();
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        // Chromium asks for a favicon the console does not have; that 404 is no page error.
        .filter(|m| !m.contains("favicon.ico"))
        .collect()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Browser, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// Waits (up to `limit`) for an element; how long it took.
async fn wait_css(b: &Browser, css: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(found) = b.find_all(Locator::Css(css)).await
            && !found.is_empty()
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{css} did not show up within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver; .ci/run runs it"]
async fn the_console_in_chromium() {
    let server = start_without_processing().await;
    let origin = server
        .ready()
        .admin_url
        .clone()
        .unwrap()
        .strip_suffix("/admin")
        .unwrap()
        .to_owned();
    let driver = Driver::start();
    let b = browser(&driver).await;

    // Without a session the console sends the browser to the login page.
    b.goto(&format!("{origin}/console/")).await.unwrap();
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    b.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("not-the-token")
        .await
        .unwrap();
    b.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&b, "#login-error", Duration::from_secs(5)).await;
    // The refused login is the page's one expected error (a 401 answer).
    let refused = console_errors(&b).await;
    assert!(refused.iter().all(|m| m.contains("401")), "{refused:?}");
    b.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(server.ready().admin_token.as_deref().unwrap())
        .await
        .unwrap();
    b.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&b, "#status.on", Duration::from_secs(5)).await;
    assert!(b.current_url().await.unwrap().path().ends_with("/console/"));

    // A reference-client issuance (its whole flow) appears as it happens.
    let cert_url = reference_issuance(&server).await;
    let seq = server
        .state()
        .store
        .transcripts
        .all()
        .into_iter()
        .find(|e| e.url == cert_url)
        .unwrap()
        .seq;
    let took = wait_css(
        &b,
        &format!("tr.row[data-seq=\"{seq}\"]"),
        Duration::from_secs(1),
    )
    .await;
    eprintln!("the certificate download showed up {took:?} after the client had it");
    let rows = b.find_all(Locator::Css("tr.row")).await.unwrap().len();
    assert!(rows >= 6, "{rows} rows");
    // A row opens to the decoded request: the newAccount's EAB binding, its MAC redacted.
    let new_account = b
        .find(Locator::XPath(
            "//tr[contains(@class,'row')][td[5]='newAccount']",
        ))
        .await
        .unwrap();
    new_account.click().await.unwrap();
    wait_css(&b, "tr.detail pre", Duration::from_secs(2)).await;
    let detail = text_of(&b, "tr.detail").await;
    assert!(detail.contains("externalAccountBinding"), "{detail}");
    assert!(detail.contains("Nonce chain"), "{detail}");
    screenshot(&b, "live").await;

    // A planted rule failure: the same nonce sent twice. The grading page, open, shows it.
    b.goto(&format!("{origin}/console/grading")).await.unwrap();
    wait_css(&b, "#status.on", Duration::from_secs(5)).await;
    assert!(
        b.find_all(Locator::Css("li.rule[data-rule=\"nonce-not-reused\"]"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut client = Client::new(&server, RSA, acme_proto::SignatureAlgorithm::Es256).await;
    assert_eq!(client.register().await.status, 201);
    let nonce = client.fresh_nonce().await;
    let account = client.kid.clone().unwrap();
    for _ in 0..2 {
        client
            .post_header(
                &account,
                json!({"alg": "ES256", "kid": account, "nonce": nonce}),
                None,
            )
            .await;
    }
    wait_css(
        &b,
        "li.rule[data-rule=\"nonce-not-reused\"]",
        Duration::from_secs(3),
    )
    .await;
    let grade = text_of(&b, &format!("section.grade[data-scope=\"{DEMO_KID}\"]")).await;
    assert!(grade.contains("FAIL"), "{grade}");
    screenshot(&b, "grading").await;
    // The failed rule links to the exchange that broke it.
    let link = b
        .find(Locator::Css("li.rule[data-rule=\"nonce-not-reused\"] ul a"))
        .await
        .unwrap();
    link.click().await.unwrap();
    wait_css(&b, "pre", Duration::from_secs(5)).await;
    let page = text_of(&b, "main").await;
    assert!(
        page.contains("Problem document") && page.contains("badNonce"),
        "{page}"
    );

    // A credential: created (its HMAC key shown once), then revoked.
    b.goto(&format!("{origin}/console/org")).await.unwrap();
    wait_css(&b, "#new-credential", Duration::from_secs(5)).await;
    screenshot(&b, "org").await;
    b.find(Locator::Id("create-credential"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&b, "#minted-hmac", Duration::from_secs(5)).await;
    let kid = text_of(&b, "#minted-kid").await;
    assert_eq!(text_of(&b, "#minted-hmac").await.len(), 86);
    screenshot(&b, "credential-created").await;
    b.goto(&format!("{origin}/console/credentials/{kid}"))
        .await
        .unwrap();
    wait_css(&b, "#revoke-credential", Duration::from_secs(5)).await;
    b.find(Locator::Css("#revoke-credential button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_css(&b, "#credential-state .revoked", Duration::from_secs(5)).await;
    assert!(server.state().credential(&kid).unwrap().is_revoked());

    // Nothing went wrong in the page along the way: no script error, no policy violation.
    let errors = console_errors(&b).await;
    assert!(errors.is_empty(), "browser console: {errors:#?}");
    b.close().await.unwrap();
}
