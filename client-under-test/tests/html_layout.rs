//! The HTML report in a real browser (Debian's headless Chromium): at 1,400 px, a laptop
//! screen, nothing runs off to the side, with every fold opened and long values (paths,
//! rule messages, outcome details) in the cells. Needs `chromium`; .ci/run installs it and
//! runs this with `--ignored`.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use client_under_test::grade::{Grade, RuleFailure};
use client_under_test::report::{self, RunReport};
use client_under_test::run::{Outcome, OutcomeKind, ScenarioResult};
use client_under_test::scan::{Finding, Level, Place};
use client_under_test::scenario::{Expect, Scenario};

fn long_results() -> Vec<ScenarioResult> {
    let long_path = format!(
        "/tmp/acme-harness-matrix-1764460000000-12345/{}",
        "x/".repeat(60)
    );
    Scenario::built_in()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ok = i % 3 != 0;
            ScenarioResult {
                client: "certbot [config-file]".into(),
                client_version: Some("certbot 2.1.0 (Debian 2.1.0-4, python3-acme 2.1.0-1)".into()),
                secret_mode: "config-file".into(),
                secret_mode_how: "eab-hmac-key in a 0600 cli.ini given with -c".into(),
        secret_modes: vec!["config-file".into(), "flag".into()],
                scenario: s.id.into(),
                description: s.description.into(),
                expect: Expect::Issue,
                outcome: Outcome {
                    kind: if ok { OutcomeKind::Issued } else { OutcomeKind::Failed },
                    ok,
                    detail: format!("{long_path}fullchain.pem verifies to the roots, SAN [\"physics.example.edu\"]"),
                    exits: vec![Some(0)],
                },
                touched: Default::default(),
                grade: Some(Grade {
                    exchanges: 40,
                    rules: 20,
                    failed: vec![RuleFailure {
                        id: "retry-after-honoured".into(),
                        severity: "Sectigo-needed".into(),
                        count: 9,
                        first: format!("POST {long_path}order/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA polled 0.2 s after Retry-After: 15"),
                        statement: "No request to a resource before its Retry-After has passed".into(),
                        seqs: (1..60).collect(),
                    }],
                }),
                secrets: vec![Finding {
                    level: if ok { Level::Info } else { Level::Fail },
                    place: Place::Log,
                    location: format!("{long_path}logs/letsencrypt.log"),
                    detail: "the HMAC key (base64url) is in a log file (mode 0644)".into(),
                }],
                reason_shown: None,
                passed: ok,
                seconds: 3.3,
                dir: long_path.clone(),
                seed: 8,
                unusable: None,
            }
        })
        .collect()
}

/// Renders `html` in headless Chromium at `width` px and returns the page's scroll width.
fn scroll_width(html: &str, width: u32) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    // Every fold open; a script (only in this copy) writes the width into the DOM.
    let probe = html.replace("<details>", "<details open>").replace(
        "</body>",
        "<script>document.body.setAttribute('data-scroll-width', \
         String(document.documentElement.scrollWidth));</script></body>",
    );
    let page = dir.path().join("report.html");
    std::fs::write(&page, probe).unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--window-size={width},900"),
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (.ci/run installs Debian's chromium)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let marker = "data-scroll-width=\"";
    let at = dom.find(marker).unwrap_or_else(|| {
        panic!(
            "no width in the dumped DOM: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let rest = &dom[at + marker.len()..];
    rest[..rest.find('"').unwrap()].parse().unwrap()
}

#[test]
#[ignore = "needs Debian's chromium; .ci/run runs it"]
fn the_html_report_fits_a_laptop_screen_with_every_fold_open() {
    let report = RunReport::new(8, long_results());
    let html = report::html(&report);
    let width = scroll_width(&html, 1400);
    assert!(
        width <= 1400,
        "the report is {width} px wide at a 1,400 px window"
    );
    // The probe itself can fail: a page with a fixed 2,000 px element is seen as too wide.
    let wide = html.replace("<h1>", "<div style=\"width:2000px\">wide</div><h1>");
    assert!(scroll_width(&wide, 1400) > 1400, "the probe sees overflow");
}
