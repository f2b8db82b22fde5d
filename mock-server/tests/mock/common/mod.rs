//! A deliberately small ACME client for the server tests: it signs what it is told to, so
//! tests can send both what honest clients send and what they never would.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;

use acme_proto::eab::{self, MacAlgorithm};
use acme_proto::{AccountKey, Directory, Problem, SignatureAlgorithm, b64};
use mock_server::{MockServer, Orgs, Profile, ServerConfig};
use reference_client::raw;
use serde_json::{Value, json};

pub const DEMO_KID: &str = "DemoPhysicsKeyId0000Ab";
/// A mock started through the embeddable kit (sectigo-acme-mock), so that every server test
/// exercises the kit's start and drop; the tests look at the server underneath. (The browser
/// test, a binary of its own, uses only some of them.)
#[allow(unused_imports)]
pub use sectigo_acme_mock::internal::{
    ECC, RSA, TestServer as Server, profile_variant, start as start_config, start_demo as start,
    start_with,
};

/// The built-in profiles without the processing wait after finalize: for tests about what is
/// issued rather than when (the wait has tests of its own).
pub async fn start_without_processing() -> Server {
    let mut profiles = Profile::all_built_in().unwrap();
    for p in &mut profiles {
        p.order.processing_ms = 0;
    }
    start_with(Orgs::demo(), profiles).await
}

pub fn demo_hmac() -> Vec<u8> {
    Orgs::demo().credentials[0].hmac_key.expose().clone()
}

/// An HTTP client trusting the mock's listener: the one trust builder of the raw transport.
pub fn http_client(ca_bundle: &Path) -> reqwest::Client {
    let tls = raw::tls_config(&[ca_bundle.to_owned()]).unwrap();
    raw::http_client(tls, "acme-harness-tests", None).unwrap()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl From<raw::Response> for Resp {
    fn from(r: raw::Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn problem(&self) -> Problem {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "status {} body {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let p: Problem = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(p.status, Some(self.status));
        p
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
    pub fn location(&self) -> String {
        self.header("location").expect("Location header")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts a problem of `kind` (short name) and returns its detail.
    pub fn expect_problem(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let p = self.problem();
        assert_eq!(p.kind.name(), kind, "{}", self.text());
        p.detail.unwrap_or_default()
    }
}

/// Signs what it is told to over the raw transport (reference_client::raw), which sends it
/// exactly: no retry, no repair.
pub struct Client {
    pub http: reqwest::Client,
    raw: raw::Raw,
    pub dir: Directory,
    pub key: AccountKey,
    pub kid: Option<String>,
    nonce: Option<String>,
}

impl Client {
    pub async fn new(server: &MockServer, profile: &str, alg: SignatureAlgorithm) -> Self {
        Self::with_key(server, profile, AccountKey::generate(alg).unwrap()).await
    }

    pub async fn with_key(server: &MockServer, profile: &str, key: AccountKey) -> Self {
        let url = server.directory_url(profile).unwrap();
        Self::at(url, &server.ready().ca_bundle, key).await
    }

    /// A client of the directory at `url` over TLS trusting `ca_file`: for a server with a
    /// listener certificate of its own (the Pebble stand-in's).
    pub async fn at(url: &str, ca_file: &Path, key: AccountKey) -> Self {
        let http = http_client(ca_file);
        let raw = raw::Raw::new(http.clone());
        let dir: Directory = raw.get(url).await.unwrap().json().unwrap();
        Self {
            http,
            raw,
            dir,
            key,
            kid: None,
            nonce: None,
        }
    }

    pub async fn fresh_nonce(&mut self) -> String {
        if let Some(n) = self.nonce.take() {
            return n;
        }
        self.raw.new_nonce(&self.dir.new_nonce).await.unwrap()
    }

    async fn send(&mut self, url: &str, body: String, content_type: &str) -> Resp {
        let resp = Resp::from(
            self.raw
                .post(url, content_type, body.into_bytes())
                .await
                .unwrap(),
        );
        self.nonce = resp.header("replay-nonce");
        // Every answer carries a fresh nonce, except a proxy's HTML page (the request never
        // reached the CA, and the nonce sent is still unspent).
        let proxy_page = resp.status >= 400
            && resp
                .header("content-type")
                .is_some_and(|ct| ct.starts_with("text/html"));
        assert_eq!(
            self.nonce.is_some(),
            !proxy_page,
            "Replay-Nonce on a {} {:?} answer",
            resp.status,
            resp.header("content-type")
        );
        resp
    }

    /// Signed with the kid when the client has one, else with the jwk.
    pub async fn post(&mut self, url: &str, payload: Option<Value>) -> Resp {
        let nonce = self.fresh_nonce().await;
        let jws = self
            .key
            .sign_request(self.kid.as_deref(), &nonce, url, payload.as_ref())
            .unwrap();
        self.send(
            url,
            serde_json::to_string(&jws).unwrap(),
            "application/jose+json",
        )
        .await
    }

    /// Signs an arbitrary header (nonce and url filled in unless present) and payload.
    pub async fn post_header(
        &mut self,
        url: &str,
        mut header: Value,
        payload: Option<Value>,
    ) -> Resp {
        if header.get("nonce").is_none() {
            header["nonce"] = Value::from(self.fresh_nonce().await);
        }
        if header.get("url").is_none() {
            header["url"] = Value::from(url);
        }
        let jws = self.key.sign_parts(&header, payload.as_ref()).unwrap();
        self.send(
            url,
            serde_json::to_string(&jws).unwrap(),
            "application/jose+json",
        )
        .await
    }

    pub async fn post_raw(&mut self, url: &str, body: String, content_type: &str) -> Resp {
        self.send(url, body, content_type).await
    }

    pub fn eab(&self, kid: &str, hmac: &[u8], alg: MacAlgorithm) -> Value {
        eab::sign(alg, kid, hmac, &self.dir.new_account, self.key.jwk())
    }

    pub async fn register_with(&mut self, payload: Value) -> Resp {
        let url = self.dir.new_account.clone();
        let saved = self.kid.take();
        let r = self.post(&url, Some(payload)).await;
        self.kid = saved;
        if r.status == 201 || r.status == 200 {
            self.kid = Some(r.location());
        }
        r
    }

    /// Registers with the demo EAB credential.
    pub async fn register(&mut self) -> Resp {
        let eab = self.eab(DEMO_KID, &demo_hmac(), MacAlgorithm::Hs256);
        self.register_with(json!({
            "termsOfServiceAgreed": true,
            "contact": ["mailto:admin@physics.example.edu"],
            "externalAccountBinding": eab,
        }))
        .await
    }

    pub async fn new_order(&mut self, names: &[&str]) -> Resp {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let url = self.dir.new_order.clone();
        self.post(&url, Some(json!({ "identifiers": ids }))).await
    }

    pub async fn get(&mut self, url: &str) -> Resp {
        self.post(url, None).await
    }

    /// Finalizes `order` with a CSR for `names` and waits for the certificate.
    /// A pre-validated order for `names`, finalized with a fresh P-256 key, and its
    /// certificate downloaded.
    pub async fn issue(&mut self, names: &[&str]) -> Issued {
        let r = self.new_order(names).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let order_url = r.location();
        let (der, _) = csr(names, &rcgen::PKCS_ECDSA_P256_SHA256);
        let done = self.finalize_and_wait(&order_url, &der).await;
        let cert_url = done["certificate"].as_str().unwrap().to_owned();
        let r = self.get(&cert_url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let pem = r.text();
        let leaf = pem_certs(&pem).remove(0);
        Issued {
            order_url,
            cert_url,
            pem,
            leaf,
        }
    }

    /// revokeCert for `leaf` (DER), signed by the account; the response status.
    pub async fn revoke(&mut self, leaf: &[u8]) -> u16 {
        let url = self.dir.revoke_cert.clone();
        self.post(&url, Some(json!({"certificate": b64::encode(leaf)})))
            .await
            .status
    }

    pub async fn finalize_and_wait(&mut self, order_url: &str, csr_der: &[u8]) -> Value {
        let order = self.get(order_url).await.json();
        let finalize = order["finalize"].as_str().unwrap().to_owned();
        let r = self
            .post(&finalize, Some(json!({ "csr": b64::encode(csr_der) })))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        match r.json()["status"].as_str() {
            Some("processing") => assert!(r.header("retry-after").is_some()),
            Some("valid") => return r.json(),
            other => panic!("finalize answered {other:?}"),
        }
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let o = self.get(order_url).await.json();
            if o["status"] == "valid" {
                return o;
            }
            assert_eq!(o["status"], "processing");
        }
        panic!("order never became valid");
    }
}

/// What [`Client::issue`] got.
pub struct Issued {
    pub order_url: String,
    pub cert_url: String,
    /// The chain as served.
    pub pem: String,
    /// The leaf, DER.
    pub leaf: Vec<u8>,
}

/// A CSR for `names` over a fresh key of `alg`, with the key.
pub fn csr(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, rcgen::KeyPair) {
    let key = if alg == &rcgen::PKCS_RSA_SHA256 {
        rcgen::KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
    } else {
        rcgen::KeyPair::generate_for(alg).unwrap()
    };
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    (der, key)
}

/// Every certificate in a PEM chain, as DER.
pub fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// Verifies `chain` (leaf first) up to one of the PEM roots with webpki, for `name`.
pub fn verify_chain(chain: &[Vec<u8>], roots_pem: &str, name: &str) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let roots: Vec<CertificateDer<'static>> = pem_certs(roots_pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let anchors: Vec<_> = roots
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).unwrap().to_owned())
        .collect();
    let leaf = CertificateDer::from(chain[0].clone());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| e.to_string())?;
    let algs = webpki::ALL_VERIFICATION_ALGS;
    ee.verify_for_usage(
        algs,
        &anchors,
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|e| e.to_string())
}

/// Calls the admin API with the server's token (or `token`).
pub async fn admin(
    server: &MockServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    admin_with(
        server,
        method,
        path,
        body,
        server.ready().admin_token.as_deref(),
    )
    .await
}

pub async fn admin_with(
    server: &MockServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let ready = server.ready();
    let admin = sectigo_acme_mock::AdminClient::new(
        ready.admin_url.clone().unwrap(),
        token.map(str::to_owned),
        &ready.ca_bundle,
    )
    .unwrap();
    admin.send(method, path, body.as_ref()).await.unwrap()
}

/// A server with one profile changed by `edit` (served at its own path under `name`).
pub async fn start_profile(base: &str, name: &str, edit: impl FnOnce(&mut Profile)) -> Server {
    let mut profile = profile_variant(base, name, &format!("/v2/{name}"));
    edit(&mut profile);
    start_with(Orgs::demo(), vec![profile]).await
}

/// A server whose configuration `edit` adjusts (shares the test CA).
pub async fn start_custom(edit: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = ServerConfig::ephemeral();
    edit(&mut config);
    start_config(config).await
}

/// A certificate for the demo name through the reference client; its certificate URL.
pub async fn reference_issuance(server: &MockServer) -> String {
    use reference_client::{
        CertKeyType, ClientConfig, CsrSource, EabCredential, IssueRequest, NewAccountOptions,
    };
    let config = ClientConfig {
        ca_files: vec![server.ready().ca_bundle.clone()],
        ..ClientConfig::default()
    };
    let client = reference_client::Client::connect(server.directory_url(RSA).unwrap(), config)
        .await
        .unwrap();
    let key = reference_client::generate_account_key(acme_proto::SignatureAlgorithm::Es256, 2048)
        .unwrap();
    let hmac = acme_proto::b64::encode(demo_hmac());
    let registered = client
        .new_account(
            key,
            &NewAccountOptions {
                contact: vec!["mailto:admin@physics.example.edu".into()],
                terms_of_service_agreed: true,
                eab: Some(EabCredential::new(DEMO_KID, &hmac, None).unwrap()),
            },
        )
        .await
        .unwrap();
    let issued = registered
        .account
        .issue(
            IssueRequest {
                names: vec!["physics.example.edu".into()],
                csr: CsrSource::Generate(CertKeyType::EcdsaP256),
                preferred_chain: None,
            },
            &[],
        )
        .await
        .unwrap();
    issued.order.order.certificate.unwrap()
}
