//! A mock of Sectigo's ACME service (InCommon, Sectigo, ZeroSSL) to start inside `cargo
//! test`: point the ACME client under test at it, make it misbehave on cue, and check
//! afterwards that the client behaved.
//!
//! The mock behaves as Sectigo's service does: External Account Binding is mandatory,
//! delegated names come back with authorizations that are already `valid`, resources are
//! fetched with POST-as-GET, orders sit in `processing` after finalize with `Retry-After`, and
//! refusals carry Sectigo's texts. Every exchange is recorded, and the judge of the
//! acme-harness project grades the record against its rules (RFC 8555 MUSTs and SHOULDs, and
//! what Sectigo's service needs in practice).
//!
//! ```
//! use sectigo_acme_mock::{Endpoint, Fault, FaultPlan, MockCa};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let ca = MockCa::start().await; // InCommon RSA OV on 127.0.0.1, a free port
//! let eab = ca.demo_credential();
//! ca.set_faults(
//!     eab,
//!     FaultPlan::new()
//!         .nth(Endpoint::NewOrder, Fault::BadNonce, [1, 2])
//!         .nth(Endpoint::Finalize, Fault::Processing { seconds: 2, retry_after: 1 }, [1]),
//! );
//! // Run the client under test here: directory `ca.directory_url()`, trusting
//! // `ca.ca_bundle_path()`, EAB `eab.key_id()` and `eab.hmac_key()`, for `eab.names()[0]`.
//! # let _ = client::issue(&ca, eab).await;
//! ca.assert_conformant();
//! # }
//! # mod client {
//! #     pub async fn issue(ca: &sectigo_acme_mock::MockCa, eab: &sectigo_acme_mock::Credential) {
//! #         let http = ca.http_client();
//! #         let dir = http.get(ca.directory_url()).send().await.unwrap();
//! #         assert_eq!(dir.status(), 200);
//! #         let _ = eab;
//! #     }
//! # }
//! ```
//!
//! - [`MockCa::start`] starts one with the defaults, [`MockCa::builder`] chooses the
//!   profile, the seed, a server-wide fault plan, the processing delay and a check on drop.
//! - What a client needs: [`MockCa::directory_url`], [`MockCa::ca_bundle_path`] (or the PEM,
//!   a rustls root store, a ready reqwest client), an EAB [`Credential`].
//! - Misbehaviour: a [`FaultPlan`] per credential ([`MockCa::set_faults`]).
//! - Checks: [`MockCa::assert_conformant`], [`MockCa::grade`], and helpers for what tests
//!   usually assert ([`MockCa::assert_orders`], [`MockCa::assert_bad_nonce_retried`],
//!   [`MockCa::assert_retry_after_honoured`]).
//! - Tests without an async runtime: [`blocking::MockCa`].
//! - The admin API of this mock or of a running `acme-harness serve`: [`AdminClient`]
//!   ([`MockCa::admin`]).
//!
//! Everything runs in the test's process on loopback; dropping the mock stops it and
//! removes its temporary directory. The CA (its RSA and ECDSA keys) is generated once per
//! process and shared, so every start after the first takes a few milliseconds.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod admin;
pub mod blocking;
mod faults;
mod judge;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use acme_proto::transcript::Exchange;
pub use admin::{AdminClient, Locate};
pub use faults::{Endpoint, Fault, FaultPlan};
pub use judge::{Failure, Grade, Rules, Severity};
/// The admin API's request and answer bodies, as the typed [`AdminClient`] calls take and
/// return them.
pub use mock_server::admin::api as admin_api;
/// The mock DNS's records of a name, as [`AdminClient::set_dns`] takes them.
pub use mock_server::dns::{Caa, Records as DnsRecords};

use mock_server::ca::Ca;
use mock_server::control::NewCredential;
use mock_server::state::org::{ModelError, Orgs};
use mock_server::{MockServer, Profile, ServerConfig};

/// The profile served when none is chosen: Sectigo's InCommon RSA OV.
pub const DEFAULT_PROFILE: &str = "sectigo-incommon-rsa-ov";

/// Why a mock could not start, or a plan or profile was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A profile is not built in, or its file is unreadable or invalid.
    #[error("profile {name}: {message}")]
    Profile {
        /// The built-in name or the file.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A fault plan is invalid.
    #[error("{0}")]
    Faults(String),
    /// The server could not start (the CA, the port, the temporary directory).
    #[error("the mock could not start: {0}")]
    Start(String),
    /// The admin API could not be reached, or refused a request.
    #[error("{0}")]
    Admin(String),
}

/// An EAB credential: what Sectigo's administrators hand a department (key id and HMAC
/// key). Its `Debug` output hides the HMAC key.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ca = sectigo_acme_mock::MockCa::start().await;
/// let eab = ca.demo_credential();
/// assert_eq!(eab.key_id().len(), 22);
/// assert!(!format!("{eab:?}").contains(eab.hmac_key()));
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    kid: String,
    hmac_key: String,
    names: Vec<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kid", &self.kid)
            .field("hmac_key", &"[redacted]")
            .field("names", &self.names)
            .finish()
    }
}

impl Credential {
    /// A credential from its parts: one minted through [`AdminClient::create_eab`], say, for
    /// the names given to it.
    pub fn new(kid: &str, hmac_key: &str, names: &[&str]) -> Self {
        Self {
            kid: kid.to_owned(),
            hmac_key: hmac_key.to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    /// The EAB key identifier.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The HMAC key, base64url without padding, as Sectigo hands it out and as clients take
    /// it (`--eab-hmac-key`).
    pub fn hmac_key(&self) -> &str {
        &self.hmac_key
    }

    /// The HMAC key's bytes, for client libraries that take them decoded.
    pub fn hmac_key_bytes(&self) -> Vec<u8> {
        // The mock made this text from bytes; it always decodes.
        acme_proto::b64::decode_lenient(&self.hmac_key).unwrap_or_default()
    }

    /// The names delegated to it, plain names first: ask for `names()[0]`.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One CA per process: generating its RSA keys takes a second or two.
fn shared_ca() -> Result<Arc<Ca>, Error> {
    Ca::shared().map_err(|e| Error::Start(e.to_string()))
}

#[derive(Clone, Debug)]
enum ProfileSource {
    BuiltIn(String),
    File(PathBuf),
}

/// Chooses what [`MockCa`] serves. Made by [`MockCa::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use sectigo_acme_mock::{MockCa, Rules};
///
/// let ca = MockCa::builder()
///     .profile("zerossl-dv90")
///     .processing_delay(Duration::ZERO)
///     .seed(42)
///     .check_on_drop(Rules::default())
///     .start()
///     .await;
/// assert!(ca.directory_url().ends_with("/v2/DV90"));
/// assert_eq!(ca.seed(), 42);
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder {
    raw: Option<ServerConfig>,
    profiles: Vec<ProfileSource>,
    seed: Option<u64>,
    processing: Option<Duration>,
    faults: Option<FaultPlan>,
    check_on_drop: Option<Rules>,
    http01_port: Option<u16>,
    tlsalpn01_port: Option<u16>,
}

impl Builder {
    /// Serves the built-in profile `name` (see [`MockCa::profiles`]). Called more than
    /// once, serves each on its own directory; the first is the default.
    pub fn profile(mut self, name: &str) -> Self {
        self.profiles.push(ProfileSource::BuiltIn(name.to_owned()));
        self
    }

    /// Serves a profile from a TOML file (the format of acme-harness's
    /// `fixtures/profiles/`).
    pub fn profile_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.profiles.push(ProfileSource::File(path.into()));
        self
    }

    /// The seed of every random fault decision (random otherwise; see [`MockCa::seed`]).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long orders stay `processing` after finalize, for every served profile (the
    /// profiles' own value, 1.5 s for InCommon, otherwise). `Duration::ZERO` issues at once.
    pub fn processing_delay(mut self, delay: Duration) -> Self {
        self.processing = Some(delay);
        self
    }

    /// A fault plan for every request, whatever the credential (per-credential plans:
    /// [`MockCa::set_faults`]).
    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = Some(plan);
        self
    }

    /// Grades the transcript with `rules` when the mock is dropped, and panics with the
    /// report if a rule failed (unless the test is already panicking).
    pub fn check_on_drop(mut self, rules: Rules) -> Self {
        self.check_on_drop = Some(rules);
        self
    }

    /// The port http-01 answers are fetched from on 127.0.0.1 (default 5002), for names
    /// delegated with [`MockCa::delegate_unvalidated`].
    pub fn http01_port(mut self, port: u16) -> Self {
        self.http01_port = Some(port);
        self
    }

    /// The port tls-alpn-01 answers are fetched from on 127.0.0.1 (default 5001).
    pub fn tlsalpn01_port(mut self, port: u16) -> Self {
        self.tlsalpn01_port = Some(port);
        self
    }

    /// Starts the server exactly as `config` says, every other setting of the builder
    /// ignored: for acme-harness's own tests, which need knobs a client author does not.
    /// Not part of the stable API.
    #[doc(hidden)]
    pub fn server_config(mut self, config: ServerConfig) -> Self {
        self.raw = Some(config);
        self
    }

    /// Starts the mock.
    ///
    /// # Panics
    /// When it cannot start; [`Builder::try_start`] returns the error instead.
    pub async fn start(self) -> MockCa {
        match self.try_start().await {
            Ok(ca) => ca,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the mock, or says why it cannot.
    pub async fn try_start(self) -> Result<MockCa, Error> {
        if let Some(config) = self.raw {
            let default_profile = config
                .profiles
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            return MockCa::from_server(config, default_profile, self.check_on_drop).await;
        }
        let sources = if self.profiles.is_empty() {
            vec![ProfileSource::BuiltIn(DEFAULT_PROFILE.to_owned())]
        } else {
            self.profiles
        };
        let mut profiles = Vec::new();
        for source in &sources {
            let (name, loaded) = match source {
                ProfileSource::BuiltIn(name) => (name.clone(), Profile::built_in(name)),
                ProfileSource::File(path) => (path.display().to_string(), Profile::from_file(path)),
            };
            let mut profile = loaded.map_err(|e| Error::Profile {
                name,
                message: e.to_string(),
            })?;
            if let Some(delay) = self.processing {
                profile.order.processing_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            }
            profiles.push(profile);
        }
        let default_profile = profiles[0].name.clone();
        if let Some(plan) = &self.faults {
            plan.plan.check().map_err(Error::Faults)?;
        }
        let ca = tokio::task::spawn_blocking(shared_ca)
            .await
            .map_err(|e| Error::Start(format!("generating the CA failed: {e}")))??;
        let defaults = ServerConfig::ephemeral();
        let config = ServerConfig {
            ca: Some(ca),
            profiles,
            orgs: Orgs::demo(),
            seed: self.seed,
            faults: self.faults.map(|f| f.plan),
            http01_port: self.http01_port.unwrap_or(defaults.http01_port),
            tlsalpn01_port: self.tlsalpn01_port.unwrap_or(defaults.tlsalpn01_port),
            ..defaults
        };
        MockCa::from_server(config, default_profile, self.check_on_drop).await
    }
}

/// A running mock Sectigo CA. Dropping it stops it and removes its temporary files.
///
/// Every method but the start is synchronous and cheap, so it works the same in async and
/// blocking tests (see [`blocking::MockCa`] for the latter).
#[derive(Debug)]
pub struct MockCa {
    server: Option<MockServer>,
    default_profile: String,
    demo: Option<Credential>,
    check_on_drop: Option<Rules>,
    http: OnceLock<reqwest::Client>,
}

impl MockCa {
    async fn from_server(
        mut config: ServerConfig,
        default_profile: String,
        check_on_drop: Option<Rules>,
    ) -> Result<Self, Error> {
        // The web console on the mock's own origin, as `acme-harness serve` has it.
        if !config
            .mounts
            .iter()
            .any(|m| m.prefix == mock_console::PREFIX)
        {
            config.mounts.push(mock_console::mount(Arc::new(
                mock_console::Console::default(),
            )));
        }
        let server = MockServer::start(config)
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        let demo = server.ready().demo.clone().map(|d| Credential {
            kid: d.eab_kid,
            hmac_key: d.eab_hmac_key,
            names: d.domains,
        });
        Ok(Self {
            server: Some(server),
            default_profile,
            demo,
            check_on_drop,
            http: OnceLock::new(),
        })
    }

    /// Starts a mock with the defaults: [`DEFAULT_PROFILE`], the demo organisation, a random
    /// seed.
    ///
    /// # Panics
    /// When it cannot start (use [`Builder::try_start`] for the error).
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Chooses the profile, seed, faults and checks before starting.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The names of the built-in profiles: InCommon RSA and ECC OV, Sectigo OV, DV and EV,
    /// ZeroSSL DV90, and plain RFC 8555.
    ///
    /// ```
    /// assert!(sectigo_acme_mock::MockCa::profiles().any(|p| p == "sectigo-incommon-ecc-ov"));
    /// ```
    pub fn profiles() -> impl Iterator<Item = &'static str> {
        Profile::built_in_names()
    }

    /// The default profile's directory URL: what the client under test is given.
    pub fn directory_url(&self) -> &str {
        &self.inner().ready().directory
    }

    /// The directory URL of the served profile `name`.
    pub fn directory_url_of(&self, profile: &str) -> Option<&str> {
        self.inner().directory_url(profile)
    }

    /// The default profile's name.
    pub fn profile(&self) -> &str {
        &self.default_profile
    }

    /// The address the mock listens on (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.inner().addr()
    }

    /// The seed of the fault decisions: pass it to [`Builder::seed`] to replay a run.
    pub fn seed(&self) -> u64 {
        self.inner().ready().seed
    }

    /// The PEM of the CA that signs the mock's HTTPS listener: what the client must trust.
    pub fn listener_ca_pem(&self) -> &str {
        &self.inner().state().ca.listener_ca_pem
    }

    /// A file holding [`MockCa::listener_ca_pem`], for clients that take a path
    /// (`REQUESTS_CA_BUNDLE`, `LEGO_CA_CERTIFICATES`, instant-acme's
    /// `Account::builder_with_root`). It lives in the mock's temporary directory.
    pub fn ca_bundle_path(&self) -> &Path {
        &self.inner().ready().ca_bundle
    }

    /// The PEM of the roots issued certificates chain to (the AAA root and the two
    /// USERTrust roots of the alternate chains).
    pub fn roots_pem(&self) -> &str {
        &self.inner().state().ca.roots_pem
    }

    /// A file holding [`MockCa::roots_pem`].
    pub fn roots_path(&self) -> &Path {
        &self.inner().ready().roots
    }

    /// A rustls root store trusting the HTTPS listener.
    pub fn listener_root_store(&self) -> rustls::RootCertStore {
        root_store(self.listener_ca_pem())
    }

    /// A rustls root store of the roots issued certificates chain to: verify an issued
    /// chain with it.
    pub fn issuer_root_store(&self) -> rustls::RootCertStore {
        root_store(self.roots_pem())
    }

    /// A reqwest client that trusts the mock's listener (made once, then cloned).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ca = sectigo_acme_mock::MockCa::start().await;
    /// let directory: serde_json::Value =
    ///     ca.http_client().get(ca.directory_url()).send().await.unwrap().json().await.unwrap();
    /// assert_eq!(directory["meta"]["externalAccountRequired"], true);
    /// # }
    /// ```
    pub fn http_client(&self) -> reqwest::Client {
        self.http
            .get_or_init(|| {
                let tls = reference_client::raw::tls_config(&[self.ca_bundle_path().to_owned()])
                    .expect("the mock wrote its listener CA to its bundle file");
                reference_client::raw::http_client(
                    tls,
                    concat!("sectigo-acme-mock/", env!("CARGO_PKG_VERSION")),
                    None,
                )
                .expect("a client with rustls and fixed roots builds")
            })
            .clone()
    }

    /// A client of this mock's admin API, with its token.
    pub fn admin(&self) -> AdminClient {
        let ready = self.inner().ready();
        AdminClient::new(
            ready.admin_url.clone().unwrap_or_default(),
            ready.admin_token.clone(),
            self.ca_bundle_path(),
        )
        .expect("the mock wrote its listener CA to its bundle file")
    }

    /// The demo credential: reusable (many accounts may bind with it), delegated
    /// `physics.example.edu` and its subdomains, `*.physics.example.edu` included.
    ///
    /// # Panics
    /// When the mock was started from an organisation without credentials (only possible
    /// through acme-harness's own test hooks).
    pub fn demo_credential(&self) -> &Credential {
        self.demo
            .as_ref()
            .expect("the organisation this mock serves has a credential")
    }

    /// Mints a fresh single-use credential (one ACME account may bind with it, as with
    /// Sectigo by default) for `names`, delegating each name first when it is not yet
    /// (pre-validated, so its authorizations come back `valid`; a name given to
    /// [`MockCa::delegate_unvalidated`] before stays unvalidated).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ca = sectigo_acme_mock::MockCa::start().await;
    /// let eab = ca.mint_credential(&["www.example.com", "*.example.com"]);
    /// assert_eq!(eab.names(), ["www.example.com", "*.example.com"]);
    /// assert_ne!(eab.key_id(), ca.demo_credential().key_id());
    /// # }
    /// ```
    ///
    /// # Panics
    /// When a name cannot be delegated (not a domain name, or owned by another organisation
    /// of the demo data, such as `institute.example.org`).
    pub fn mint_credential(&self, names: &[&str]) -> Credential {
        self.mint(names, false)
    }

    /// Like [`MockCa::mint_credential`], but reusable: several ACME accounts may bind with it
    /// (Sectigo's "EAB reuse").
    ///
    /// # Panics
    /// As [`MockCa::mint_credential`].
    pub fn mint_reusable_credential(&self, names: &[&str]) -> Credential {
        self.mint(names, true)
    }

    fn mint(&self, names: &[&str], reusable: bool) -> Credential {
        for name in names {
            // Names delegated earlier keep their validation (delegate_unvalidated).
            self.delegate_as(name, None);
        }
        let state = self.inner().state();
        let minted = state
            .mint_credential(&NewCredential {
                department: self.demo_department(),
                domains: names.iter().map(|n| (*n).to_owned()).collect(),
                reusable,
                profiles: Vec::new(),
            })
            .unwrap_or_else(|e| panic!("cannot mint a credential for {names:?}: {e}"));
        Credential {
            kid: minted.kid,
            hmac_key: minted.hmac_key.expose().clone(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    /// Adds `name` to the demo organisation as a validated domain and delegates it to the
    /// demo department; credentials minted afterwards for it get pre-validated
    /// authorizations. (The demo credential itself keeps its own names.)
    ///
    /// # Panics
    /// When the name cannot be delegated (see [`MockCa::mint_credential`]).
    pub fn delegate(&self, name: &str) {
        self.delegate_as(name, Some(true));
    }

    /// Like [`MockCa::delegate`], but the domain is not validated: its authorizations need a
    /// real http-01, dns-01 or tls-alpn-01 challenge, which the mock checks through its own
    /// DNS ([`MockCa::set_a`], [`MockCa::set_txt`]).
    ///
    /// # Panics
    /// When the name cannot be delegated, or is already validated under a parent domain.
    pub fn delegate_unvalidated(&self, name: &str) {
        self.delegate_as(name, Some(false));
    }

    fn demo_department(&self) -> usize {
        let orgs = self.inner().state().store.orgs.load();
        orgs.credential(&self.demo_credential().kid)
            .map(|c| c.department_id)
            .unwrap_or_default()
    }

    /// Delegates `name` to the demo department, adding it to the organisation when no domain
    /// of it covers the name. `Some(validated)` also sets the domain's validation; `None`
    /// keeps what an earlier delegation set (a new domain is validated).
    fn delegate_as(&self, name: &str, validated: Option<bool>) {
        let department = self.demo_department();
        let result = self.inner().state().change_orgs(|o| {
            let org = o
                .departments
                .get(department)
                .map(|d| d.org)
                .ok_or_else(|| ModelError::NotFound("no demo department".into()))?;
            let lower = name.trim().to_ascii_lowercase();
            match o.domain_of(&lower).map(|d| (d.name.clone(), d.validated)) {
                None => o.add_domain(org, &lower, validated.unwrap_or(true))?,
                Some((entry, was)) if validated.is_some_and(|v| v != was) => {
                    let validated = !was;
                    if entry != lower {
                        return Err(ModelError::Conflict(format!(
                            "{lower} is under {entry}, whose validation is {was}; delegate a \
                             name outside it"
                        )));
                    }
                    o.set_validated(&lower, validated)?;
                }
                Some(_) => {}
            }
            o.delegate(department, &lower)
        });
        if let Err(e) = result {
            panic!("cannot delegate {name:?}: {e}");
        }
    }

    /// Sets the A record of `name` in the mock's DNS, where challenge validation looks.
    ///
    /// # Panics
    /// When `name` is not a DNS name.
    pub fn set_a(&self, name: &str, addr: Ipv4Addr) {
        self.edit_dns(name, |r| r.a = vec![addr]);
    }

    /// Sets the AAAA record of `name` in the mock's DNS.
    ///
    /// # Panics
    /// When `name` is not a DNS name.
    pub fn set_aaaa(&self, name: &str, addr: Ipv6Addr) {
        self.edit_dns(name, |r| r.aaaa = vec![addr]);
    }

    /// Sets the TXT strings of `name` (for dns-01: `_acme-challenge.NAME`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let ca = sectigo_acme_mock::MockCa::start().await;
    /// ca.set_txt("_acme-challenge.lab.example.com", &["token-digest"]);
    /// ca.clear_dns("_acme-challenge.lab.example.com");
    /// # }
    /// ```
    ///
    /// # Panics
    /// When `name` is not a DNS name.
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.edit_dns(name, |r| {
            r.txt = values.iter().map(|v| (*v).to_owned()).collect();
        });
    }

    /// Forgets what was set for `name`: it answers the default again (A 127.0.0.1, nothing
    /// else).
    pub fn clear_dns(&self, name: &str) {
        self.inner().state().dns.clear(name);
    }

    /// The mock DNS (UDP and TCP on loopback) that challenge validation resolves through.
    pub fn dns_addr(&self) -> SocketAddr {
        self.inner().ready().dns
    }

    fn edit_dns(&self, name: &str, edit: impl FnOnce(&mut mock_server::dns::Records)) {
        let dns = &self.inner().state().dns;
        let mut records = dns.get(name);
        edit(&mut records);
        if let Err(e) = dns.set(name, records) {
            panic!("cannot set DNS records of {name:?}: {e}");
        }
    }

    /// Gives the accounts of `credential` a fault plan, replacing any earlier one. Other
    /// credentials' accounts are not affected, so tests that share a mock do not disturb
    /// each other.
    ///
    /// # Panics
    /// When the credential is not this mock's, or the plan has a rule that can never fire
    /// (an empty `nth` list).
    pub fn set_faults(&self, credential: &Credential, plan: FaultPlan) {
        if let Err(e) = self
            .inner()
            .state()
            .set_credential_faults(&credential.kid, Some(plan.plan))
        {
            panic!("cannot set the fault plan: {e}");
        }
    }

    /// Removes the fault plan of `credential`'s accounts.
    ///
    /// # Panics
    /// When the credential is not this mock's.
    pub fn clear_faults(&self, credential: &Credential) {
        if let Err(e) = self
            .inner()
            .state()
            .set_credential_faults(&credential.kid, None)
        {
            panic!("cannot clear the fault plan: {e}");
        }
    }

    /// Revokes a credential, as an administrator would: its accounts are refused from the
    /// next request on.
    ///
    /// # Panics
    /// When the credential is not this mock's.
    pub fn revoke_credential(&self, credential: &Credential) {
        if let Err(e) = self.inner().state().revoke_credential(&credential.kid) {
            panic!("cannot revoke the credential: {e}");
        }
    }

    /// Every exchange recorded so far, in order: method, URL, headers, the decoded JWS
    /// (EAB MAC redacted), status, problem and timing.
    pub fn transcript(&self) -> Vec<Exchange> {
        self.inner().state().store.transcripts.all()
    }

    /// The exchanges of the accounts bound with `credential`.
    pub fn transcript_of(&self, credential: &Credential) -> Vec<Exchange> {
        self.inner().state().store.transcripts.of(&credential.kid)
    }

    /// Grades the transcript with the default rules ([`Rules::default`]).
    pub fn grade(&self) -> Grade {
        self.grade_with(&Rules::default())
    }

    /// Grades the transcript with `rules`.
    pub fn grade_with(&self, rules: &Rules) -> Grade {
        Grade::new(self.transcript(), rules)
    }

    /// Panics with the judge's Markdown report (each broken rule, the offending exchanges
    /// and how to fix the client) when a rule of [`Rules::default`] failed.
    pub fn assert_conformant(&self) {
        self.assert_conformant_with(&Rules::default());
    }

    /// Like [`MockCa::assert_conformant`], with a rule selection or severity floor.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sectigo_acme_mock::{MockCa, Rules, Severity};
    /// let ca = MockCa::start().await;
    /// ca.assert_conformant_with(&Rules::at_least(Severity::Must).except(["user-agent-sent"]));
    /// # }
    /// ```
    pub fn assert_conformant_with(&self, rules: &Rules) {
        let grade = self.grade_with(rules);
        if !grade.is_conformant() {
            panic!(
                "the ACME client broke the judge's rules\n\n{}",
                grade.to_markdown()
            );
        }
    }

    /// Panics unless exactly `n` newOrder requests were accepted (201).
    pub fn assert_orders(&self, n: usize) {
        let accepted = self
            .transcript()
            .iter()
            .filter(|e| {
                conformance::view::kind(e) == conformance::view::Kind::NewOrder && e.status == 201
            })
            .count();
        assert_eq!(
            accepted, n,
            "expected {n} accepted newOrder request(s), the mock accepted {accepted}"
        );
    }

    /// Panics unless the mock answered at least one request with `badNonce` and the client
    /// retried each with a fresh nonce (the judge's `bad-nonce-retried` rule).
    pub fn assert_bad_nonce_retried(&self) {
        self.assert_rule_exercised(
            "bad-nonce-retried",
            |e| {
                e.problem
                    .as_ref()
                    .is_some_and(|p| p.kind.ends_with(":badNonce"))
            },
            "no request was answered with badNonce (set a fault plan with Fault::BadNonce)",
        );
    }

    /// Panics unless the mock sent at least one `Retry-After` and the client made no request
    /// to the resource before it had passed (the judge's `retry-after-honoured` rule).
    pub fn assert_retry_after_honoured(&self) {
        self.assert_rule_exercised(
            "retry-after-honoured",
            // A Retry-After on a resource that will not change (Sectigo's on valid,
            // pre-validated authorizations) asks for no wait: it does not count.
            |e| {
                e.response_headers.contains_key("retry-after")
                    && !conformance::view::in_final_state(e)
            },
            "no answer carried Retry-After on a resource still changing (orders in processing \
             do; or set a fault plan)",
        );
    }

    fn assert_rule_exercised(&self, id: &str, trigger: impl Fn(&Exchange) -> bool, none: &str) {
        let transcript = self.transcript();
        assert!(transcript.iter().any(trigger), "{none}");
        let grade = Grade::new(transcript, &Rules::only([id]));
        if !grade.passed(id) {
            panic!("{id} failed\n\n{}", grade.to_markdown());
        }
    }

    /// Stops accepting connections and waits for requests in flight (dropping the mock stops
    /// it too, without waiting).
    ///
    /// # Panics
    /// As on drop, when [`Builder::check_on_drop`] was set and a rule failed.
    pub async fn stop(mut self) {
        self.check_now();
        self.check_on_drop = None;
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    fn check_now(&self) {
        if let Some(rules) = &self.check_on_drop {
            self.assert_conformant_with(rules);
        }
    }

    /// The server underneath, for acme-harness's own tests. Not part of the stable API.
    #[doc(hidden)]
    pub fn server(&self) -> &MockServer {
        self.inner()
    }

    fn inner(&self) -> &MockServer {
        // `None` only inside `stop`, which consumes the mock.
        self.server
            .as_ref()
            .expect("the mock is running until it is stopped or dropped")
    }
}

impl Drop for MockCa {
    fn drop(&mut self) {
        if self.server.is_some() && !std::thread::panicking() {
            self.check_now();
        }
    }
}

fn root_store(pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()).flatten() {
        // The mock made these certificates; each is a valid trust anchor.
        let _ = roots.add(cert);
    }
    roots
}

/// Hooks for acme-harness's own tests, which start every server through this crate so that
/// it is exercised every day, and then look at the server underneath. Not part of the
/// stable API.
#[doc(hidden)]
pub mod internal {
    use std::ops::Deref;

    use mock_server::{MockServer, Orgs, Profile, ServerConfig};

    /// A mock seen as the server underneath.
    #[derive(Debug)]
    pub struct TestServer(pub crate::MockCa);

    impl Deref for TestServer {
        type Target = MockServer;

        fn deref(&self) -> &MockServer {
            self.0.server()
        }
    }

    impl TestServer {
        /// Stops accepting connections and waits for requests in flight.
        pub async fn shutdown(self) {
            self.0.stop().await;
        }
    }

    /// Starts `config` exactly as given.
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start(config: ServerConfig) -> TestServer {
        TestServer(crate::MockCa::builder().server_config(config).start().await)
    }

    /// The InCommon RSA OV profile's name, the one most tests use.
    pub const RSA: &str = "sectigo-incommon-rsa-ov";
    /// The InCommon ECC OV profile's name.
    pub const ECC: &str = "sectigo-incommon-ecc-ov";

    /// Every built-in profile with the demo organisation.
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start_demo() -> TestServer {
        start_with(
            Orgs::demo(),
            Profile::all_built_in().expect("built-in profiles"),
        )
        .await
    }

    /// `profiles` with `orgs` on an ephemeral server (the shared test CA, port 0).
    ///
    /// # Panics
    /// When the server cannot start.
    pub async fn start_with(orgs: Orgs, profiles: Vec<Profile>) -> TestServer {
        let mut config = ServerConfig::ephemeral();
        config.orgs = orgs;
        config.profiles = profiles;
        start(config).await
    }

    /// A web console session logged in with the admin token, as a browser holds it (the
    /// cookie; redirects not followed), for tests of the console's pages and forms.
    #[derive(Debug)]
    pub struct ConsoleSession {
        /// The client, trusting the listener.
        pub http: reqwest::Client,
        /// `https://HOST:PORT`, the origin forms are posted from.
        pub origin: String,
        /// The session cookie (`name=value`).
        pub cookie: String,
    }

    impl ConsoleSession {
        /// Logs in to the console next to `admin_url` with `token`, trusting `ca_bundle`.
        ///
        /// # Panics
        /// When the login is not answered with a redirect and a cookie.
        pub async fn login(admin_url: &str, ca_bundle: &std::path::Path, token: &str) -> Self {
            let tls = reference_client::raw::tls_config(&[ca_bundle.to_path_buf()])
                .expect("the listener's CA bundle");
            let http = reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client");
            let origin = admin_url.trim_end_matches("/admin").to_owned();
            let r = http
                .post(format!("{origin}/console/login"))
                .header("origin", &origin)
                .form(&[("token", token)])
                .send()
                .await
                .expect("the login answers");
            assert_eq!(r.status(), 303, "a login redirects");
            let set = r.headers()["set-cookie"].to_str().expect("a cookie");
            let cookie = set.split(';').next().unwrap_or_default().to_owned();
            ConsoleSession {
                http,
                origin,
                cookie,
            }
        }

        /// Logs in to `server`'s console.
        ///
        /// # Panics
        /// When the server has no admin API or the login fails.
        pub async fn of(server: &MockServer) -> Self {
            let ready = server.ready();
            let admin = ready.admin_url.as_deref().expect("an admin API");
            let token = ready.admin_token.as_deref().expect("an admin token");
            Self::login(admin, &ready.ca_bundle, token).await
        }

        /// GETs a console path (`/console/...`) in the session.
        ///
        /// # Panics
        /// When the request gets no answer.
        pub async fn get(&self, path: &str) -> reqwest::Response {
            self.http
                .get(format!("{}{path}", self.origin))
                .header("cookie", &self.cookie)
                .send()
                .await
                .expect("the console answers")
        }

        /// The text of a console page.
        ///
        /// # Panics
        /// When the request gets no answer.
        pub async fn page(&self, path: &str) -> String {
            self.get(path).await.text().await.expect("a page")
        }

        /// POSTs a form to a console path in the session, from the console's origin, with
        /// the CSRF token of `form_page` (the page the form is on) added to `fields`.
        ///
        /// # Panics
        /// When `form_page` has no CSRF token or the request gets no answer.
        pub async fn submit(
            &self,
            path: &str,
            form_page: &str,
            fields: &[(&str, &str)],
        ) -> reqwest::Response {
            let csrf = form_page
                .split("name=\"csrf\" value=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("a CSRF token on the form's page");
            let mut form = vec![("csrf", csrf)];
            form.extend_from_slice(fields);
            self.http
                .post(format!("{}{path}", self.origin))
                .header("cookie", &self.cookie)
                .header("origin", &self.origin)
                .form(&form)
                .send()
                .await
                .expect("the console answers")
        }
    }

    /// A copy of the built-in profile `base` named `name` and served at `path`, for tweaking.
    ///
    /// # Panics
    /// When `base` is not a built-in profile.
    pub fn profile_variant(base: &str, name: &str, path: &str) -> Profile {
        let mut p = Profile::built_in(base).expect("a built-in profile");
        p.name = name.into();
        p.directory_path = path.into();
        p
    }
}
