//! Control of the mock: the admin API, the built-in profiles, fault plans.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use acme_proto::eab::MacAlgorithm;
use acme_proto::{SignatureAlgorithm, b64};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn every_built_in_profile_has_its_own_directory() {
    let server = start().await;
    let http = http_client(&server.ready().ca_bundle);
    let names: Vec<String> = mock_server::Profile::built_in_names()
        .map(String::from)
        .collect();
    assert_eq!(server.ready().directories.len(), names.len());
    for name in names {
        let url = server.directory_url(&name).unwrap();
        let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let text = serde_json::to_string_pretty(&body).unwrap().replace(
            &format!("127.0.0.1:{}", server.addr().port()),
            "127.0.0.1:[port]",
        );
        insta::assert_snapshot!(format!("directory-{name}"), text);
    }
}

#[tokio::test]
async fn admin_api_needs_the_token() {
    let server = start().await;
    let (status, body) = admin_with(&server, Method::GET, "/eab", None, None).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("bearer token"));
    let (status, _) = admin_with(
        &server,
        Method::GET,
        "/eab",
        None,
        Some("wrong-token-wrong-token-wrong-token"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = admin(&server, Method::GET, "/eab", None).await;
    assert_eq!(status, 200);
    assert!(
        !body.to_string().contains("hmac"),
        "listing never shows HMAC keys"
    );
}

/// A missing thing is 404, a duplicate 409, a bad value 400, each with its message.
#[tokio::test]
async fn admin_refusals_say_what_happened() {
    let server = start().await;
    let post = async |path: &str, body: serde_json::Value| {
        admin(&server, Method::POST, path, Some(body)).await
    };
    let (s, e) = post("/organizations/9/domains", json!({"name": "x.example"})).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("no organisation 9")));
    let (s, e) = post(
        "/organizations/0/domains",
        json!({"name": "physics.example.edu"}),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("already belongs"),
        "{e}"
    );
    let (s, e) = post("/organizations/0/domains", json!({"name": "not a name"})).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post(
        "/departments/42/delegations",
        json!({"domain": "x.example"}),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (404, Some("no department 42")));
    let (s, e) = post(
        "/eab",
        json!({"department": 0, "domains": ["chemistry.example.edu"]}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post(
        "/eab",
        json!({"department": 0, "domains": [], "profiles": ["nope"]}),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("no profile \"nope\" is served"))
    );
    let (s, _) = admin(
        &server,
        Method::PUT,
        "/domains/nowhere.example/validation",
        Some(json!({"validated": true})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post("/eab/NoSuchKeyId/revoke", json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = admin(&server, Method::DELETE, "/eab/NoSuchKeyId/faults", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn the_admin_workflow_end_to_end() {
    let server = start().await;
    // An organisation with a validated domain, a department, a delegation, a credential.
    let (s, org) = admin(
        &server,
        Method::POST,
        "/organizations",
        Some(json!({"name": "Example College", "country": "US", "state": "Ohio"})),
    )
    .await;
    assert_eq!(s, 201);
    let org = org["id"].as_u64().unwrap();
    let (s, _) = admin(
        &server,
        Method::POST,
        &format!("/organizations/{org}/domains"),
        Some(json!({"name": "college.example", "validated": true})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, dept) = admin(
        &server,
        Method::POST,
        &format!("/organizations/{org}/departments"),
        Some(json!({"name": "Library"})),
    )
    .await;
    assert_eq!(s, 201);
    let dept = dept["id"].as_u64().unwrap();
    // Only the organisation's domains can be delegated.
    let (s, e) = admin(
        &server,
        Method::POST,
        &format!("/departments/{dept}/delegations"),
        Some(json!({"domain": "physics.example.edu"})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = admin(
        &server,
        Method::POST,
        &format!("/departments/{dept}/delegations"),
        Some(json!({"domain": "lib.college.example"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, cred) = admin(
        &server,
        Method::POST,
        "/eab",
        Some(json!({"department": dept, "domains": ["lib.college.example"], "reusable": false})),
    )
    .await;
    assert_eq!(s, 201, "{cred}");
    let kid = cred["eab_kid"].as_str().unwrap().to_owned();
    let hmac = b64::decode(cred["eab_hmac_key"].as_str().unwrap()).unwrap();
    assert_eq!(kid.len(), 22);
    assert_eq!(cred["eab_hmac_key"].as_str().unwrap().len(), 86);

    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = client.eab(&kid, &hmac, MacAlgorithm::Hs256);
    assert_eq!(
        client
            .register_with(
                json!({"contact": ["mailto:a@college.example"], "externalAccountBinding": e})
            )
            .await
            .status,
        201
    );
    let Issued {
        order_url, leaf, ..
    } = client.issue(&["www.lib.college.example"]).await;
    use x509_parser::prelude::FromDer as _;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf).unwrap();
    assert!(
        cert.subject().to_string().contains("O=Example College"),
        "OV subject from the new organisation"
    );

    // Certificates per credential; revoke one.
    let (s, certs) = admin(
        &server,
        Method::GET,
        &format!("/eab/{kid}/certificates"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(certs.as_array().unwrap().len(), 1);
    assert_eq!(certs[0]["names"], json!(["www.lib.college.example"]));
    let cert_id = certs[0]["id"].as_str().unwrap();
    let (s, _) = admin(
        &server,
        Method::POST,
        &format!("/certificates/{cert_id}/revoke"),
        Some(json!({"reason": 4})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, certs) = admin(
        &server,
        Method::GET,
        &format!("/eab/{kid}/certificates"),
        None,
    )
    .await;
    assert_eq!(certs[0]["revoked"], true);

    // The recorded requests of the credential, with the EAB MAC redacted.
    let (s, log) = admin(&server, Method::GET, &format!("/eab/{kid}/requests"), None).await;
    assert_eq!(s, 200);
    let log = log.as_array().unwrap();
    assert!(log.len() >= 5, "{}", log.len());
    let text = serde_json::to_string(log).unwrap();
    assert!(text.contains("[redacted]"));
    assert!(!text.contains(&b64::encode(&hmac)));
    let new_account = log
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("/newAccount"))
        .unwrap();
    assert_eq!(new_account["status"], 201);
    assert_eq!(new_account["jws"]["protected"]["alg"], "ES256");

    // Revoke the credential: its account is refused on every request from now on.
    let (s, _) = admin(&server, Method::POST, &format!("/eab/{kid}/revoke"), None).await;
    assert_eq!(s, 200);
    let detail = client
        .new_order(&["www.lib.college.example"])
        .await
        .expect_problem(403, "unauthorized");
    assert!(detail.contains("revoked"), "{detail}");
    let detail = client
        .get(&order_url)
        .await
        .expect_problem(403, "unauthorized");
    assert!(detail.contains("revoked"), "{detail}");
    // And it cannot bind a new account either.
    let mut other = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = other.eab(&kid, &hmac, MacAlgorithm::Hs256);
    other
        .register_with(json!({"externalAccountBinding": e}))
        .await
        .expect_problem(403, "unauthorized");
}

#[tokio::test]
async fn unvalidated_domains_get_real_challenges() {
    let server = start().await;
    let (s, _) = admin(
        &server,
        Method::POST,
        "/organizations/0/domains",
        Some(json!({"name": "new.example.edu", "validated": false})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, cred) = admin(
        &server,
        Method::POST,
        "/departments/0/delegations",
        Some(json!({"domain": "new.example.edu"})),
    )
    .await;
    assert_eq!(s, 201, "{cred}");
    let (_, cred) = admin(&server, Method::POST, "/eab", Some(json!({"department": 0, "domains": ["new.example.edu", "physics.example.edu"], "reusable": true}))).await;
    let kid = cred["eab_kid"].as_str().unwrap();
    let hmac = b64::decode(cred["eab_hmac_key"].as_str().unwrap()).unwrap();
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = client.eab(kid, &hmac, MacAlgorithm::Hs256);
    client
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    let order = client
        .new_order(&["new.example.edu", "physics.example.edu"])
        .await
        .json();
    assert_eq!(order["status"], "pending");
    let unvalidated = client
        .get(order["authorizations"][0].as_str().unwrap())
        .await
        .json();
    assert_eq!(unvalidated["status"], "pending");
    let kinds: Vec<&str> = unvalidated["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["http-01", "dns-01", "tls-alpn-01"]);
    assert!(
        unvalidated["challenges"][0]["token"]
            .as_str()
            .unwrap()
            .len()
            >= 43
    );
    let validated = client
        .get(order["authorizations"][1].as_str().unwrap())
        .await
        .json();
    assert_eq!(validated["status"], "valid");

    // Persistent DCV: validated names get a dns-01 challenge too.
    let server = start_profile(RSA, "dcv", |p| p.order.persistent_dcv = true).await;
    let mut client = Client::new(&server, "dcv", SignatureAlgorithm::Es256).await;
    client.register().await;
    let order = client.new_order(&["physics.example.edu"]).await.json();
    let authz = client
        .get(order["authorizations"][0].as_str().unwrap())
        .await
        .json();
    assert_eq!(authz["status"], "pending");
    assert_eq!(authz["challenges"][0]["type"], "dns-01");
    assert_eq!(authz["challenges"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn zerossl_refuses_accounts_without_email_and_rate_limits() {
    let server = start_profile("zerossl-dv90", "z", |p| {
        p.rate_limit.requests_per_minute = Some(3)
    })
    .await;
    let mut client = Client::new(&server, "z", SignatureAlgorithm::Es256).await;
    let e = client.eab(DEMO_KID, &demo_hmac(), MacAlgorithm::Hs256);
    let r = client
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    r.expect_problem(400, "externalAccountRequired");
    let e = client.eab(DEMO_KID, &demo_hmac(), MacAlgorithm::Hs256);
    let r = client
        .register_with(
            json!({"contact": ["mailto:a@physics.example.edu"], "externalAccountBinding": e}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Any name is accepted (no delegation) and needs challenges; the fourth request in the
    // minute is over the limit.
    let r = client.new_order(&["anything.example.com"]).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"], "pending");
    client.new_order(&["anything.example.com"]).await;
    client.new_order(&["anything.example.com"]).await;
    let limited = client.new_order(&["anything.example.com"]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("content-type").as_deref(), Some("text/html"));
    assert!(limited.text().contains("<center>nginx</center>"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn rfc8555_profile_has_order_lists_and_optional_eab() {
    let server = start().await;
    let mut client = Client::new(&server, "rfc8555", SignatureAlgorithm::Es256).await;
    let r = client
        .register_with(json!({"termsOfServiceAgreed": true}))
        .await;
    assert_eq!(r.status, 201, "no EAB needed");
    let orders_url = r.json()["orders"].as_str().unwrap().to_owned();
    let first = client.new_order(&["a.example.com"]).await.location();
    let second = client.new_order(&["b.example.com"]).await.location();
    let list = client.get(&orders_url).await.json();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(list["orders"], json!(want));
}

// ------------------------------------------------------------------ faults

async fn faulted_client(plan: &str) -> (Server, Client) {
    let server = start().await;
    let (s, e) = admin(
        &server,
        Method::PUT,
        &format!("/eab/{DEMO_KID}/faults"),
        Some(serde_json::from_str(plan).unwrap()),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    assert_eq!(client.register().await.status, 201);
    (server, client)
}

#[tokio::test]
async fn each_fault_kind() {
    // badNonce, then serverInternal, on the first and second newOrder.
    let (_s, mut c) = faulted_client(
        r#"{"rule": [
        {"endpoint": "newOrder", "fault": "badNonce", "nth": [1]},
        {"endpoint": "newOrder", "fault": "serverInternal", "nth": [2]},
        {"endpoint": "newOrder", "fault": "rateLimited", "nth": [3], "retry_after": 7},
        {"endpoint": "newOrder", "fault": "badGateway", "nth": [4]},
        {"endpoint": "newOrder", "fault": "serviceUnavailable", "nth": [5], "retry_after": 9},
        {"endpoint": "newOrder", "fault": "gatewayTimeout", "nth": [6]},
        {"endpoint": "newOrder", "fault": "slow", "nth": [7], "delay_ms": 400}
    ]}"#,
    )
    .await;
    let names = ["physics.example.edu"];
    assert_eq!(
        c.new_order(&names).await.expect_problem(400, "badNonce"),
        "The Replay Nonce is not recognized"
    );
    assert_eq!(
        c.new_order(&names)
            .await
            .expect_problem(500, "serverInternal"),
        "The server experienced an internal error"
    );
    for (status, retry, title) in [
        (429, Some("7"), "429 Too Many Requests"),
        (502, None, "502 Bad Gateway"),
        (503, Some("9"), "503 Service Unavailable"),
        (504, None, "504 Gateway Timeout"),
    ] {
        let r = c.new_order(&names).await;
        assert_eq!(r.status, status);
        assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
        assert!(r.text().contains(title), "{}", r.text());
        assert_eq!(r.header("retry-after").as_deref(), retry);
        assert!(
            r.header("replay-nonce").is_none(),
            "a proxy's HTML page carries no nonce: the request never reached the CA"
        );
    }
    let started = Instant::now();
    assert_eq!(c.new_order(&names).await.status, 201);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(c.new_order(&names).await.status, 201, "the plan is spent");

    // processing on finalize: long, with the plan's Retry-After.
    let (_s, mut c) = faulted_client(r#"{"rule": [{"endpoint": "finalize", "fault": "processing", "nth": [1], "seconds": 3600, "retry_after": 86400}]}"#).await;
    let order_url = c.new_order(&names).await.location();
    let (der, _) = csr(&names, &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = c
        .post(
            &format!("{order_url}/finalize"),
            Some(json!({"csr": b64::encode(&der)})),
        )
        .await;
    assert_eq!(r.json()["status"], "processing");
    assert_eq!(r.header("retry-after").as_deref(), Some("86400"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = c.get(&order_url).await;
    assert_eq!(
        r.json()["status"],
        "processing",
        "still processing past the profile's delay"
    );

    // drop: the connection closes without a response.
    let (_s, mut c) =
        faulted_client(r#"{"rule": [{"endpoint": "newOrder", "fault": "drop", "nth": [1]}]}"#)
            .await;
    let url = c.dir.new_order.clone();
    let nonce = c.fresh_nonce().await;
    let jws = c
        .key
        .sign_request(
            c.kid.as_deref(),
            &nonce,
            &url,
            Some(&json!({"identifiers": [{"type": "dns", "value": names[0]}]})),
        )
        .unwrap();
    let err = c
        .http
        .post(&url)
        .header("content-type", "application/jose+json")
        .json(&jws)
        .send()
        .await;
    assert!(
        err.is_err(),
        "dropped connections give the client a transport error: {err:?}"
    );
}

#[tokio::test]
async fn faults_are_scoped_to_their_credential() {
    let (server, mut faulted) = faulted_client(
        r#"{"rule": [{"endpoint": "newOrder", "fault": "serverInternal", "probability": 1.0}]}"#,
    )
    .await;
    faulted
        .new_order(&["physics.example.edu"])
        .await
        .expect_problem(500, "serverInternal");
    // Another credential on the same server is not disturbed.
    let (_, cred) = admin(
        &server,
        Method::POST,
        "/eab",
        Some(json!({"department": 0, "domains": ["physics.example.edu"]})),
    )
    .await;
    let mut other = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
    let e = other.eab(
        cred["eab_kid"].as_str().unwrap(),
        &b64::decode(cred["eab_hmac_key"].as_str().unwrap()).unwrap(),
        MacAlgorithm::Hs256,
    );
    other
        .register_with(json!({"externalAccountBinding": e}))
        .await;
    assert_eq!(other.new_order(&["physics.example.edu"]).await.status, 201);
    // Cleared at run time.
    let (s, _) = admin(
        &server,
        Method::DELETE,
        &format!("/eab/{DEMO_KID}/faults"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        faulted.new_order(&["physics.example.edu"]).await.status,
        201
    );
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults() {
    let plan: mock_server::faults::FaultPlan = mock_server::faults::FaultPlan::parse(
        "[[rule]]\nendpoint = \"any\"\nfault = \"badNonce\"\nprobability = 0.4\n",
        "test",
    )
    .unwrap();
    let run = async |seed: u64| {
        let plan = plan.clone();
        let server = start_custom(|c| {
            c.seed = Some(seed);
            c.faults = Some(plan);
        })
        .await;
        let mut client = Client::new(&server, RSA, SignatureAlgorithm::Es256).await;
        // Register until it gets through, then a fixed sequence of requests.
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            let r = client.register().await;
            outcomes.push(r.status);
            if r.status == 201 || r.status == 200 {
                break;
            }
        }
        for _ in 0..15 {
            outcomes.push(client.new_order(&["physics.example.edu"]).await.status);
        }
        let (_, events) = admin(&server, Method::GET, "/faults/events", None).await;
        assert_eq!(events["seed"], seed);
        (outcomes, events["events"].clone())
    };
    let (a, events_a) = run(42).await;
    let (b, events_b) = run(42).await;
    assert_eq!(a, b);
    assert_eq!(events_a, events_b);
    assert!(a.contains(&400) && a.contains(&201), "{a:?}");
    let (c, _) = run(43).await;
    assert_ne!(a, c, "another seed, other faults");
}

#[tokio::test]
async fn randomized_paths_catch_clients_that_build_urls() {
    let server = start_profile(RSA, "random", |p| p.randomize_paths = true).await;
    let mut client = Client::new(&server, "random", SignatureAlgorithm::Es256).await;
    let base = server.directory_url("random").unwrap().to_owned();
    assert!(
        client.dir.new_order.starts_with(&format!("{base}/r")),
        "{}",
        client.dir.new_order
    );
    assert_ne!(client.dir.new_order, format!("{base}/newOrder"));
    // A client that follows the directory and Location headers gets its certificate.
    assert_eq!(client.register().await.status, 201);
    client.issue(&["physics.example.edu"]).await;
    // One that guesses the usual path does not.
    let guessed = format!("{base}/newOrder");
    let r = client
        .post(
            &guessed,
            Some(json!({"identifiers": [{"type": "dns", "value": "physics.example.edu"}]})),
        )
        .await;
    let detail = r.expect_problem(404, "malformed");
    assert!(detail.contains("take URLs from the directory"), "{detail}");
}

/// Sends one newOrder JWS twice, verbatim: the two answers.
async fn new_order_twice(
    c: &mut Client,
) -> (reference_client::Response, reference_client::Response) {
    let nonce = c.fresh_nonce().await;
    let url = c.dir.new_order.clone();
    let payload = json!({"identifiers": [{"type": "dns", "value": "physics.example.edu"}]});
    let jws = c
        .key
        .sign_request(c.kid.as_deref(), &nonce, &url, Some(&payload))
        .unwrap();
    let body = serde_json::to_string(&jws).unwrap().into_bytes();
    let raw = reference_client::raw::Raw::new(c.http.clone());
    let first = raw
        .post(&url, "application/jose+json", body.clone())
        .await
        .unwrap();
    let again = raw.post(&url, "application/jose+json", body).await.unwrap();
    (first, again)
}

/// A proxy's HTML page stands for a request that never reached the CA: no Replay-Nonce comes
/// back and the nonce stays unused, so the same JWS sent again is served. The CA's own
/// refusal (a problem document) spent it.
#[tokio::test]
async fn a_proxy_page_leaves_the_nonce_unspent() {
    for (fault, spent) in [
        ("rateLimited", false),
        ("badGateway", false),
        ("serverInternal", true),
    ] {
        let plan = format!(
            r#"{{"rule": [{{"endpoint": "newOrder", "fault": "{fault}", "nth": [1], "retry_after": 1}}]}}"#
        );
        let (_server, mut c) = faulted_client(&plan).await;
        let (first, again) = new_order_twice(&mut c).await;
        assert!(first.status >= 429, "{fault}: {}", first.describe());
        assert_eq!(
            first.nonce().is_some(),
            spent,
            "{fault}: Replay-Nonce on the answer"
        );
        if spent {
            assert_eq!(again.problem_name().as_deref(), Some("badNonce"), "{fault}");
        } else {
            assert_eq!(
                again.status,
                201,
                "{fault}: the resend is served: {}",
                again.describe()
            );
        }
    }
}

/// With `nonce.proxy_pages_consume_nonce`, a fault page behaves like the CA's own answer: it
/// carries a fresh nonce and the one sent is spent.
#[tokio::test]
async fn proxy_pages_can_be_made_to_spend_the_nonce() {
    let server = start_profile("sectigo-incommon-rsa-ov", "consuming", |p| {
        p.nonce.proxy_pages_consume_nonce = true;
    })
    .await;
    let plan = json!({"rule": [{"endpoint": "newOrder", "fault": "rateLimited", "nth": [1]}]});
    let (s, e) = admin(
        &server,
        Method::PUT,
        &format!("/eab/{DEMO_KID}/faults"),
        Some(plan),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let mut c = Client::new(&server, "consuming", SignatureAlgorithm::Es256).await;
    assert_eq!(c.register().await.status, 201);
    let (first, again) = new_order_twice(&mut c).await;
    assert_eq!(first.status, 429);
    assert!(first.nonce().is_some());
    assert_eq!(again.problem_name().as_deref(), Some("badNonce"));
}
