//! The pebble-challtestsrv stand-in over real sockets: records set through its management API
//! are what its DNS answers, http-01 answers are served, and requests are in the histories.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use pebble_compat::challtestsrv::{ChallTestSrv, Settings};

/// A plain-HTTP client (reqwest wants a TLS provider even for http://).
fn http(redirects: bool) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let policy = if redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder().redirect(policy).build().unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start() -> ChallTestSrv {
    ChallTestSrv::start(&Settings {
        http01: vec![any_port()],
        https01: vec![any_port()],
        tlsalpn01: vec![any_port()],
        dns: vec![any_port()],
        management: Some(any_port()),
        default_ipv4: Some("127.0.0.1".parse().unwrap()),
        default_ipv6: Some("::1".parse().unwrap()),
        ..Settings::default()
    })
    .await
}

fn resolver(dns: SocketAddr) -> hickory_resolver::TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let ns = NameServerConfig::new(dns.ip(), true, vec![udp]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .unwrap()
}

async fn post(srv: &ChallTestSrv, path: &str, body: &str) -> (u16, String) {
    let url = format!("http://{}{path}", srv.management_addr().unwrap());
    let r = http(true)
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn txt(r: &hickory_resolver::TokioResolver, name: &str) -> Vec<String> {
    match r.txt_lookup(name).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn set_txt_is_what_the_dns_answers_and_history_records_it() {
    let srv = start().await;
    let r = resolver(srv.bound.2[0]);
    let host = "_acme-challenge.test.example.";
    assert_eq!(
        post(
            &srv,
            "/set-txt",
            &format!(r#"{{"host":"{host}","value":"one"}}"#)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &srv,
            "/set-txt",
            &format!(r#"{{"Host":"{host}","Value":"two"}}"#)
        )
        .await
        .0,
        200
    );
    let mut got = txt(&r, host).await;
    got.sort();
    assert_eq!(got, ["one", "two"], "set-txt appends");
    assert_eq!(
        post(&srv, "/clear-txt", &format!(r#"{{"host":"{host}"}}"#))
            .await
            .0,
        200
    );
    assert!(txt(&r, host).await.is_empty());

    // Defaults per type, explicit records, SERVFAIL.
    let ips = r.lookup_ip("anything.example.").await.unwrap();
    assert!(ips.iter().any(|ip| ip.is_loopback()));
    post(
        &srv,
        "/add-a",
        r#"{"host":"a.example","addresses":["127.0.0.9","nope"]}"#,
    )
    .await;
    let a = r.lookup_ip("a.example.").await.unwrap();
    assert_eq!(
        a.iter()
            .filter(|ip| ip.is_ipv4())
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["127.0.0.9"]
    );
    post(&srv, "/set-servfail", r#"{"host":"bad.example"}"#).await;
    assert!(r.lookup("bad.example.", RecordType::TXT).await.is_err());

    let (status, body) = post(
        &srv,
        "/dns-request-history",
        r#"{"host":"_acme-challenge.test.example"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["Question"]["Name"], host);
    assert_eq!(events[0]["Question"]["Qtype"], 16);
    assert!(body.contains("\n   {"), "Go's 3-space indent: {body}");
}

#[tokio::test]
async fn http01_answers_redirects_and_history() {
    let srv = start().await;
    let base = format!("http://{}", srv.bound.0[0]);
    assert_eq!(
        post(
            &srv,
            "/add-http01",
            r#"{"token":"tok","content":"tok.thumb"}"#
        )
        .await
        .0,
        200
    );
    let client = http(false);
    let r = client
        .get(format!("{base}/.well-known/acme-challenge/tok"))
        .header("user-agent", "probe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "tok.thumb");
    let r = client
        .get(format!("{base}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, String::new())
    );
    post(
        &srv,
        "/add-redirect",
        r#"{"path":"/moved","targetURL":"https://example.invalid/x"}"#,
    )
    .await;
    let r = client.get(format!("{base}/moved")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.invalid/x");
    assert_eq!(post(&srv, "/del-http01", r#"{"token":"tok"}"#).await.0, 200);
    let r = client
        .get(format!("{base}/.well-known/acme-challenge/tok"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "");

    let (_, body) = post(&srv, "/http-request-history", r#"{"host":"127.0.0.1"}"#).await;
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["URL"], "/.well-known/acme-challenge/tok");
    assert_eq!(events[0]["UserAgent"], "probe");
    assert_eq!(events[0]["HTTPS"], false);
    assert_eq!(
        post(
            &srv,
            "/clear-request-history",
            r#"{"host":"127.0.0.1","type":"http"}"#
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(&srv, "/http-request-history", r#"{"host":"127.0.0.1"}"#)
            .await
            .1,
        "[]"
    );
}

#[tokio::test]
async fn refusals_match_challtestsrv() {
    let srv = start().await;
    let (status, body) = post(&srv, "/set-txt", "").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "expected JSON POST body, was empty\n")
    );
    let (status, body) = post(&srv, "/set-txt", r#"{"host":"x.example."}"#).await;
    assert_eq!(
        (status, body.as_str()),
        (400, ""),
        "missing value: 400, empty body"
    );
    let (status, body) = post(
        &srv,
        "/clear-request-history",
        r#"{"host":"x","type":"ftp"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("\"ftp\" event type unknown"), "{body}");
    assert_eq!(
        post(&srv, "/add-servfail", "{}").await.0,
        404,
        "there is no add-servfail"
    );
    assert_eq!(
        post(
            &srv,
            "/add-tlsalpn01",
            r#"{"host":"t.example","content":"k.a"}"#
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn https01_serves_the_same_answers_over_tls_and_records_it() {
    let srv = start().await;
    let https = srv.bound.0[1];
    post(
        &srv,
        "/add-http01",
        r#"{"token":"sec","content":"sec.thumb"}"#,
    )
    .await;
    post(
        &srv,
        "/add-redirect",
        r#"{"path":"/.well-known/acme-challenge/sec","targetURL":"http://x.invalid/"}"#,
    )
    .await;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "https://localhost:{}/.well-known/acme-challenge/sec",
            https.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "redirects apply to plain HTTP only");
    assert_eq!(r.text().await.unwrap(), "sec.thumb");
    let (_, body) = post(&srv, "/http-request-history", r#"{"host":"localhost"}"#).await;
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["HTTPS"], true);
    assert_eq!(events[0]["ServerName"], "localhost");
}

/// `-doh`: DNS over HTTPS (RFC 8484) with the `-doh-cert` pair, answering what the DNS
/// answers: a POSTed wire query gets an `application/dns-message` answer, recorded in the
/// history with the User-Agent; GET is 405, garbage 400. Without a certificate, the DoH
/// listener is skipped and the rest still runs.
#[tokio::test]
async fn doh_answers_posted_queries_over_https() {
    use hickory_resolver::proto::op::{Message, Query, ResponseCode};
    use hickory_resolver::proto::rr::Name;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pebble/certs");
    let srv = ChallTestSrv::start(&Settings {
        dns: vec![any_port()],
        management: Some(any_port()),
        doh: vec![any_port()],
        doh_cert: format!("{certs}/cert.pem"),
        doh_cert_key: format!("{certs}/key.pem"),
        ..Settings::default()
    })
    .await;
    let doh = srv.doh_addrs()[0];
    let host = "_validation-persist.doh.example";
    let (status, _) = post(
        &srv,
        "/set-txt",
        &format!(r#"{{"host":"{host}","value":"pebble.letsencrypt.org; accounturi=x"}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let ca = std::fs::read(format!("{certs}/ca.pem")).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .user_agent("doh-test/1")
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/dns-query", doh.port());
    let ask = |name: &str, qtype: RecordType| {
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        query.metadata.recursion_desired = true;
        query
    };
    let query = ask(&format!("{host}."), RecordType::TXT);
    let r = https
        .post(&url)
        .header("content-type", "application/dns-message")
        .body(query.to_vec().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/dns-message");
    let answer = Message::from_vec(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.metadata.id, query.metadata.id);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    let texts: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["pebble.letsencrypt.org; accounturi=x"]);
    // The same DNS: an A query gets the default address, a SERVFAIL name SERVFAIL.
    post(&srv, "/set-servfail", r#"{"host":"down.example"}"#).await;
    let r = https
        .post(&url)
        .body(ask("down.example.", RecordType::A).to_vec().unwrap())
        .send()
        .await
        .unwrap();
    let answer = Message::from_vec(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // The history has the DoH question with its User-Agent.
    let (_, body) = post(
        &srv,
        "/dns-request-history",
        &format!(r#"{{"host":"{host}"}}"#),
    )
    .await;
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["Question"]["Qtype"], 16);
    assert_eq!(events[0]["UserAgent"], "doh-test/1");
    // POST only; a body that is no DNS message is 400.
    assert_eq!(https.get(&url).send().await.unwrap().status(), 405);
    let r = https.post(&url).body("nonsense").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // No certificate (challtestsrv's default): no DoH, the rest runs.
    let srv = ChallTestSrv::start(&Settings {
        dns: vec![any_port()],
        doh: vec![any_port()],
        ..Settings::default()
    })
    .await;
    assert!(srv.doh_addrs().is_empty());
    assert_eq!(srv.bound.2.len(), 1);
}

/// dns-persist-01 end to end as a suite runs it: the Pebble stand-in validating through
/// `-dnsserver` pointed at challtestsrv's DNS, the standing record set with challtestsrv's
/// `/set-txt`, the challenge answered by an account of the reference client.
#[tokio::test]
async fn dns_persist_01_through_pebble_and_set_txt() {
    use acme_proto::{ChallengeType, SignatureAlgorithm, Status};
    use pebble_compat::{config::PebbleConfig, knobs::Knobs};
    use reference_client::{ClientConfig, NewAccountOptions};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pebble/certs");
    let srv = ChallTestSrv::start(&Settings {
        dns: vec![any_port()],
        management: Some(any_port()),
        ..Settings::default()
    })
    .await;
    let config = PebbleConfig::parse(&format!(
        r#"{{"pebble": {{"listenAddress": "127.0.0.1:0", "certificate": "{certs}/cert.pem",
            "privateKey": "{certs}/key.pem", "httpPort": 5002, "tlsPort": 5001}}}}"#
    ))
    .unwrap();
    let knobs = Knobs::from_lookup(|k| match k {
        "PEBBLE_VA_NOSLEEP" => Some("1".into()),
        "PEBBLE_WFE_NONCEREJECT" => Some("0".into()),
        _ => None,
    });
    let dnsserver = srv.bound.2[0].to_string();
    let pebble = pebble_compat::start(&config, &dnsserver, &knobs, std::path::Path::new("/"))
        .await
        .unwrap();
    let directory = format!("https://127.0.0.1:{}/dir", pebble.server.addr().port());
    let client = reference_client::Client::connect(
        &directory,
        ClientConfig {
            ca_files: vec![format!("{certs}/ca.pem").into()],
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    let key = reference_client::generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let options = NewAccountOptions {
        terms_of_service_agreed: true,
        ..NewAccountOptions::default()
    };
    let account = client.new_account(key, &options).await.unwrap().account;
    let order = account
        .new_order(&["*.persist.example".to_owned()])
        .await
        .unwrap();
    let authz_url = order.order.authorizations[0].clone();
    let (authz, _) = account.fetch_authorization(&authz_url).await.unwrap();
    let chall = authz
        .challenges
        .iter()
        .find(|c| c.kind == ChallengeType::DnsPersist01)
        .unwrap()
        .clone();
    assert_eq!(chall.token, None);
    assert_eq!(chall.accounturi.as_deref(), Some(account.url()));
    let issuers = chall.issuer_domain_names.clone().unwrap();
    assert_eq!(issuers, ["pebble.letsencrypt.org"]);
    let record = format!(
        "{}; accounturi={}; policy=wildcard",
        issuers[0],
        account.url()
    );
    let body = serde_json::json!({"host": "_validation-persist.persist.example.", "value": record});
    assert_eq!(post(&srv, "/set-txt", &body.to_string()).await.0, 200);
    let nonce = client.nonce().await.unwrap();
    let r = client
        .raw()
        .post_signed(
            account.key(),
            Some(account.url()),
            &nonce,
            &chall.url,
            Some(&serde_json::json!({})),
        )
        .await
        .unwrap();
    assert!(r.is_success(), "{}", r.describe());
    let mut status = Status::Pending;
    for _ in 0..100 {
        let (authz, _) = account.fetch_authorization(&authz_url).await.unwrap();
        status = authz.status;
        if !matches!(status, Status::Pending | Status::Processing) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Status::Valid);
    let (_, history) = post(
        &srv,
        "/dns-request-history",
        r#"{"host":"_validation-persist.persist.example"}"#,
    )
    .await;
    assert!(history.contains("\"Qtype\": 16"), "{history}");
    pebble.server.shutdown().await;
}
