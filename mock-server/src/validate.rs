//! Real challenge validation (RFC 8555 §8, RFC 8737): http-01, dns-01 and tls-alpn-01 against
//! the addresses the mock DNS gives, which must be loopback, and the CAA check (RFC 8659).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use acme_proto::{ChallengeType, KeyAuthorization, Problem, ProblemType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

/// Where validation looks: the mock DNS and the ports clients answer on.
#[derive(Debug)]
pub struct Validator {
    resolver: TokioResolver,
    /// Port of http-01 answers (80 in production; 5002 by default here).
    pub http_port: u16,
    /// Port of tls-alpn-01 answers (443 in production; 5001 by default here).
    pub tls_port: u16,
}

fn problem(kind: ProblemType, detail: impl Into<String>) -> Problem {
    Problem::new(kind, 400, detail)
}

impl Validator {
    /// A validator resolving through the mock DNS at `dns`.
    pub fn new(dns: SocketAddr, http_port: u16, tls_port: u16) -> Result<Self, String> {
        let mut udp = ConnectionConfig::udp();
        udp.port = dns.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = dns.port();
        let ns = NameServerConfig::new(dns.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let resolver = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| e.to_string())?;
        Ok(Self {
            resolver,
            http_port,
            tls_port,
        })
    }

    fn fqdn(name: &str) -> String {
        format!("{}.", name.trim_end_matches('.'))
    }

    /// The loopback address `name` resolves to. Anything else is refused: validation never
    /// sends traffic off this machine.
    async fn loopback_addr(&self, name: &str) -> Result<IpAddr, Problem> {
        // An IP identifier (RFC 8738) is its own address.
        if let Ok(ip) = name.parse::<IpAddr>() {
            return if ip.is_loopback() {
                Ok(ip)
            } else {
                Err(problem(
                    ProblemType::Connection,
                    format!("{ip} is not a loopback address; the mock only validates on loopback"),
                ))
            };
        }
        let ips = self
            .resolver
            .lookup_ip(Self::fqdn(name))
            .await
            .map_err(|e| {
                problem(
                    ProblemType::Dns,
                    format!("DNS lookup of {name} failed: {e}"),
                )
            })?;
        let ips: Vec<IpAddr> = ips.iter().collect();
        ips.iter().copied().find(IpAddr::is_loopback).ok_or_else(|| {
            problem(
                ProblemType::Connection,
                format!(
                    "{name} resolves to {ips:?}; the mock only validates on loopback addresses (set an A record of 127.0.0.1 through the admin API)"
                ),
            )
        })
    }

    /// Validates one challenge of `kind` for `name` (without `*.`), answered by the account
    /// at `account_url`.
    pub async fn validate(
        &self,
        kind: &ChallengeType,
        name: &str,
        token: &str,
        key_auth: &KeyAuthorization,
        account_url: &str,
    ) -> Result<(), Problem> {
        match kind {
            ChallengeType::Http01 => self.http01(name, token, key_auth).await,
            ChallengeType::Dns01 => {
                self.dns_txt(&format!("_acme-challenge.{name}"), key_auth)
                    .await
            }
            ChallengeType::DnsAccount01 => {
                let record = format!("{}._acme-challenge.{name}", account_label(account_url));
                self.dns_txt(&record, key_auth).await
            }
            ChallengeType::TlsAlpn01 => self.tls_alpn01(name, key_auth).await,
            other => Err(problem(
                ProblemType::Malformed,
                format!("challenge type {other} cannot be validated"),
            )),
        }
    }

    async fn http01(
        &self,
        name: &str,
        token: &str,
        key_auth: &KeyAuthorization,
    ) -> Result<(), Problem> {
        let ip = self.loopback_addr(name).await?;
        // RFC 8738 §4: an IP identifier's http-01 URL has the address as its host.
        let host = match name.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => name.to_owned(),
        };
        let url = format!(
            "http://{host}:{}/.well-known/acme-challenge/{token}",
            self.http_port
        );
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| problem(ProblemType::ServerInternal, e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .resolve(name, SocketAddr::new(ip, self.http_port))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent("acme-harness-validation")
            .build()
            .map_err(|e| problem(ProblemType::ServerInternal, e.to_string()))?;
        let response = client.get(&url).send().await.map_err(|e| {
            problem(
                ProblemType::Connection,
                format!("Fetching {url}: connection to {ip} failed: {e}"),
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(problem(
                ProblemType::Unauthorized,
                format!("Invalid response from {url}: HTTP {}", status.as_u16()),
            ));
        }
        let body = response.text().await.unwrap_or_default();
        if body.trim_end() != key_auth.as_str() {
            let shown: String = body.chars().take(100).collect();
            return Err(problem(
                ProblemType::IncorrectResponse,
                format!(
                    "The key authorization at {url} is wrong: expected {:?}, got {shown:?}",
                    key_auth.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// dns-01 and dns-account-01: a TXT record at `record` holding the key authorization's
    /// digest.
    async fn dns_txt(&self, record: &str, key_auth: &KeyAuthorization) -> Result<(), Problem> {
        let expected = key_auth.dns_value();
        let found = self.txt_values(record).await?;
        if found.iter().any(|v| v == &expected) {
            Ok(())
        } else if found.is_empty() {
            Err(problem(
                ProblemType::Unauthorized,
                format!("No TXT record found at {record}"),
            ))
        } else {
            Err(problem(
                ProblemType::IncorrectResponse,
                format!("Incorrect TXT record at {record}: expected {expected:?}, found {found:?}"),
            ))
        }
    }

    /// dns-persist-01 (draft-ietf-acme-dns-persist §3-§5): some TXT record at
    /// `_validation-persist.NAME` names one of `issuers`, the account URL exactly, and for a
    /// wildcard `policy=wildcard`, and has not passed its `persistUntil` (unix seconds) at
    /// `now`. A record for one of our issuers that does not parse makes the failure
    /// `malformed` when no record succeeds (Pebble's rule); any other failure is
    /// `unauthorized`.
    pub async fn dns_persist01(
        &self,
        name: &str,
        wildcard: bool,
        account_url: &str,
        issuers: &[String],
        now: i64,
    ) -> Result<(), Problem> {
        let record = format!("_validation-persist.{name}");
        let found = self.txt_values(&record).await?;
        let mut syntax_error = None;
        let mut mismatch = None;
        for value in &found {
            match persist::check(value, wildcard, account_url, issuers, now) {
                Ok(()) => return Ok(()),
                Err(persist::Refusal::NotOurs) => {}
                Err(persist::Refusal::Malformed(why)) => {
                    syntax_error.get_or_insert(format!("{record} {value:?}: {why}"));
                }
                Err(persist::Refusal::Mismatch(why)) => {
                    mismatch.get_or_insert(format!("{record} {value:?}: {why}"));
                }
            }
        }
        if let Some(why) = syntax_error {
            return Err(problem(ProblemType::Malformed, why));
        }
        Err(problem(
            ProblemType::Unauthorized,
            mismatch.unwrap_or_else(|| {
                format!("No TXT record at {record} names one of the issuers {issuers:?}")
            }),
        ))
    }

    /// The TXT values at `record`, each RR's strings concatenated; none when the name has
    /// no TXT record.
    async fn txt_values(&self, record: &str) -> Result<Vec<String>, Problem> {
        let found: Vec<String> = match self.resolver.txt_lookup(Self::fqdn(record)).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => {
                return Err(problem(
                    ProblemType::Dns,
                    format!("DNS lookup of TXT {record} failed: {e}"),
                ));
            }
        };
        Ok(found)
    }

    async fn tls_alpn01(&self, name: &str, key_auth: &KeyAuthorization) -> Result<(), Problem> {
        let ip = self.loopback_addr(name).await?;
        let addr = SocketAddr::new(ip, self.tls_port);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| problem(ProblemType::ServerInternal, e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        // RFC 8738 §6: for an IP identifier the SNI is the address's reverse-DNS name.
        let sni = match name.parse::<IpAddr>() {
            Ok(ip) => reverse_name(ip),
            Err(_) => name.to_owned(),
        };
        let server_name = rustls::pki_types::ServerName::try_from(sni)
            .map_err(|e| problem(ProblemType::Malformed, e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            connector.connect(server_name, tcp).await
        })
        .await
        .map_err(|_| {
            problem(
                ProblemType::Connection,
                format!("TLS connection to {addr} timed out"),
            )
        })?
        .map_err(|e| {
            problem(
                ProblemType::Tls,
                format!("TLS connection to {addr} for {name} failed: {e}"),
            )
        })?;
        let (_, session) = conn.get_ref();
        if session.alpn_protocol() != Some(b"acme-tls/1") {
            return Err(problem(
                ProblemType::Tls,
                format!("{addr} did not negotiate the acme-tls/1 protocol"),
            ));
        }
        let cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| problem(ProblemType::Tls, "no certificate presented"))?;
        check_alpn_cert(cert, name, key_auth)
    }

    /// CAA (RFC 8659): the closest non-empty CAA set up the tree must name one of
    /// `identities` for this kind of name, or the authorization is refused. IP identifiers
    /// have no CAA (RFC 8738 §7).
    pub async fn check_caa(
        &self,
        name: &str,
        wildcard: bool,
        identities: &[String],
    ) -> Result<(), Problem> {
        if name.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        let mut labels: &str = name;
        loop {
            let records: Vec<(String, String)> = match self
                .resolver
                .lookup(Self::fqdn(labels), RecordType::CAA)
                .await
            {
                Ok(l) => l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::CAA(c) => Some((
                            c.tag.clone(),
                            String::from_utf8_lossy(&c.value).into_owned(),
                        )),
                        _ => None,
                    })
                    .collect(),
                Err(e) if e.is_no_records_found() => Vec::new(),
                Err(e) => {
                    return Err(problem(
                        ProblemType::Dns,
                        format!("CAA lookup for {labels} failed: {e}"),
                    ));
                }
            };
            if !records.is_empty() {
                let tag = if wildcard && records.iter().any(|(t, _)| t == "issuewild") {
                    "issuewild"
                } else {
                    "issue"
                };
                let allowed = records.iter().filter(|(t, _)| t == tag).any(|(_, v)| {
                    let issuer = v.split(';').next().unwrap_or_default().trim();
                    identities.iter().any(|i| i.eq_ignore_ascii_case(issuer))
                });
                return if allowed {
                    Ok(())
                } else {
                    Err(problem(
                        ProblemType::Caa,
                        format!("CAA records for {labels} forbid issuance by {identities:?}"),
                    ))
                };
            }
            match labels.split_once('.') {
                Some((_, parent)) if parent.contains('.') => labels = parent,
                _ => return Ok(()),
            }
        }
    }
}

/// The dns-persist-01 TXT record (draft-ietf-acme-dns-persist §3): an RFC 8659 issue-value,
/// `ISSUER; accounturi=URL[; policy=wildcard][; persistUntil=SECONDS]`.
mod persist {
    /// Why one record does not authorize.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Refusal {
        /// It names another CA: not looked at further.
        NotOurs,
        /// It names us but does not parse.
        Malformed(String),
        /// It parses but does not authorize this account, name or time.
        Mismatch(String),
    }

    fn same_domain(a: &str, b: &str) -> bool {
        a.trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.'))
    }

    /// A tag: letters and digits, inner hyphens allowed (RFC 8659 §4.2).
    fn good_tag(tag: &str) -> bool {
        let bytes = tag.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    }

    /// A value: printable ASCII, no `;`, no space (RFC 8659 §4.2).
    fn good_value(value: &str) -> bool {
        value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b';')
    }

    /// Whether `value` authorizes `account_url` for the name (a wildcard if `wildcard`)
    /// on behalf of one of `issuers` at unix time `now`.
    pub(super) fn check(
        value: &str,
        wildcard: bool,
        account_url: &str,
        issuers: &[String],
        now: i64,
    ) -> Result<(), Refusal> {
        let mut parts = value.split(';');
        let issuer = parts.next().unwrap_or_default().trim();
        if !issuers.iter().any(|i| same_domain(i, issuer)) {
            return Err(Refusal::NotOurs);
        }
        let bad = |why: String| Refusal::Malformed(why);
        let mut seen: Vec<String> = Vec::new();
        let (mut account, mut policy, mut until) = (None, None, None);
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                // `ISSUER;` with nothing after it is allowed (RFC 8659 §4.2).
                continue;
            }
            let (tag, val) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("parameter {part:?} has no '='")))?;
            let (tag, val) = (tag.trim(), val.trim());
            if !good_tag(tag) {
                return Err(bad(format!("bad parameter name {tag:?}")));
            }
            if !good_value(val) {
                return Err(bad(format!("bad value {val:?} of {tag}")));
            }
            let lower = tag.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(bad(format!("parameter {tag} given twice")));
            }
            seen.push(lower.clone());
            match lower.as_str() {
                "accounturi" => account = Some(val),
                "policy" => policy = Some(val),
                "persistuntil" => {
                    let t: i64 = val
                        .parse()
                        .map_err(|_| bad(format!("persistUntil {val:?} is not unix seconds")))?;
                    until = Some(t);
                }
                // Unknown parameters are ignored (draft-ietf-acme-dns-persist §3).
                _ => {}
            }
        }
        let Some(account) = account else {
            return Err(bad("no accounturi parameter".into()));
        };
        if account != account_url {
            return Err(Refusal::Mismatch(format!(
                "accounturi {account} is not this account ({account_url})"
            )));
        }
        if wildcard && !policy.is_some_and(|p| p.eq_ignore_ascii_case("wildcard")) {
            return Err(Refusal::Mismatch("a wildcard needs policy=wildcard".into()));
        }
        if let Some(t) = until
            && t < now
        {
            return Err(Refusal::Mismatch(format!(
                "persistUntil {t} has passed (now {now})"
            )));
        }
        Ok(())
    }
}

/// The dns-account-01 label of an account (draft-ietf-acme-dns-account-label §3.2): `_` and
/// the lower-case base32 (RFC 4648) of the first 10 bytes of SHA-256 of the account URL.
fn account_label(account_url: &str) -> String {
    use sha2::Digest as _;
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = sha2::Sha256::digest(account_url.as_bytes());
    // 10 bytes are 80 bits: exactly 16 base32 digits, no padding.
    let bits = digest[..10]
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let label: String = (0..16)
        .rev()
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect();
    format!("_{label}")
}

/// The reverse-DNS name of an address (RFC 8738 §6: the SNI of an IP identifier's
/// tls-alpn-01): `1.0.0.127.in-addr.arpa`, or nibbles under `ip6.arpa`.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut labels: Vec<String> = Vec::with_capacity(33);
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.push("ip6.arpa".into());
            labels.join(".")
        }
    }
}

/// RFC 8737 §3: one SAN equal to the identifier (a dNSName, or for an IP identifier an
/// iPAddress, RFC 8738 §6), and a critical acmeIdentifier extension holding the SHA-256 of
/// the key authorization.
// A Problem is what the challenge stores; this runs once per validation, not per request.
#[allow(clippy::result_large_err)]
fn check_alpn_cert(der: &[u8], name: &str, key_auth: &KeyAuthorization) -> Result<(), Problem> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
        problem(
            ProblemType::Tls,
            format!("the acme-tls/1 certificate does not parse: {e}"),
        )
    })?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(raw) => ip_of(raw).map(|ip| ip.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if sans != [name.to_ascii_lowercase()] {
        return Err(problem(
            ProblemType::IncorrectResponse,
            format!("the acme-tls/1 certificate must name exactly {name}, it names {sans:?}"),
        ));
    }
    let oid = x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 31])
        .map_err(|_| problem(ProblemType::ServerInternal, "oid"))?;
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid == oid)
        .ok_or_else(|| {
            problem(
                ProblemType::IncorrectResponse,
                "the acme-tls/1 certificate has no acmeIdentifier extension",
            )
        })?;
    if !ext.critical {
        return Err(problem(
            ProblemType::IncorrectResponse,
            "the acmeIdentifier extension must be critical",
        ));
    }
    let expected = key_auth.digest();
    // OCTET STRING (0x04, 0x20) followed by the digest.
    let ok = ext.value.len() == 34
        && ext.value[0] == 0x04
        && ext.value[1] == 0x20
        && ext.value[2..] == expected;
    if ok {
        Ok(())
    } else {
        Err(problem(
            ProblemType::IncorrectResponse,
            "the acmeIdentifier extension does not hold the key authorization's digest",
        ))
    }
}

/// The address an iPAddress SAN holds (4 or 16 bytes).
fn ip_of(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Accepts any certificate: tls-alpn-01 checks the self-signed certificate's contents instead.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // The config offers TLS 1.3 only.
        Err(rustls::Error::General(
            "TLS 1.2 is not offered for tls-alpn-01".into(),
        ))
    }

    /// The handshake signature is checked against the certificate's key directly: webpki
    /// refuses to parse a certificate with the critical acmeIdentifier extension.
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        use x509_parser::prelude::FromDer as _;
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert)
            .map_err(|_| rustls::Error::General("certificate does not parse".into()))?;
        let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from(
            parsed.tbs_certificate.subject_pki.raw,
        );
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &spki,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_labels() {
        // The expected value computed independently (Python: base64.b32encode of the first
        // ten bytes of hashlib.sha256, lower-cased).
        assert_eq!(
            account_label("https://example.com/acme/acct/ExampleAccount"),
            "_ujmmovf2vn55tgye"
        );
    }

    #[test]
    fn dns_persist_records() {
        use persist::{Refusal, check};
        let issuers = ["pebble.letsencrypt.org".to_owned()];
        let acct = "https://127.0.0.1:14000/v2/rfc8555/account/a1";
        let ok = |v: &str, wild: bool| check(v, wild, acct, &issuers, 1_000);
        assert_eq!(
            ok(&format!("pebble.letsencrypt.org; accounturi={acct}"), false),
            Ok(())
        );
        assert_eq!(
            ok(
                &format!(
                    " PEBBLE.letsencrypt.org. ;ACCOUNTURI={acct};policy=Wildcard;persistuntil=1000;x-new=1"
                ),
                true
            ),
            Ok(())
        );
        assert_eq!(ok("ca.example; accounturi=x", false), Err(Refusal::NotOurs));
        let mismatch = |r: Result<(), Refusal>| matches!(r, Err(Refusal::Mismatch(_)));
        let malformed = |r: Result<(), Refusal>| matches!(r, Err(Refusal::Malformed(_)));
        assert!(mismatch(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}"),
            true
        )));
        assert!(mismatch(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}; policy=other"),
            true
        )));
        assert!(mismatch(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}; persistUntil=999"),
            false
        )));
        assert!(mismatch(ok(
            "pebble.letsencrypt.org; accounturi=https://elsewhere/acct/1",
            false
        )));
        assert!(
            malformed(ok("pebble.letsencrypt.org", false)),
            "no accounturi"
        );
        assert!(malformed(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}; accountUri={acct}"),
            false
        )));
        assert!(malformed(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}; persistUntil=soon"),
            false
        )));
        assert!(malformed(ok(
            &format!("pebble.letsencrypt.org; accounturi={acct}; policy"),
            false
        )));
        assert!(malformed(ok(
            &format!("pebble.letsencrypt.org; -x=1; accounturi={acct}"),
            false
        )));
        assert!(malformed(ok(
            "pebble.letsencrypt.org; accounturi=a b",
            false
        )));
    }

    #[test]
    fn reverse_names_of_addresses() {
        assert_eq!(
            reverse_name("127.0.0.1".parse().unwrap()),
            "1.0.0.127.in-addr.arpa"
        );
        let v6 = reverse_name("::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".0.ip6.arpa"), "{v6}");
        assert_eq!(v6.split('.').count(), 34);
        assert_eq!(ip_of(&[127, 0, 0, 1]), "127.0.0.1".parse().ok());
        assert_eq!(ip_of(&[1, 2, 3]), None);
    }

    /// An IP identifier's http-01 is fetched from the address itself, on each address family,
    /// with no DNS lookup; a non-loopback address is refused without a connection.
    #[tokio::test]
    async fn http01_for_ip_identifiers() {
        let key = acme_proto::AccountKey::generate(acme_proto::SignatureAlgorithm::Es256).unwrap();
        let thumbprint = key.jwk().thumbprint();
        let key_auth = KeyAuthorization::new("tok", &thumbprint);
        for host in ["127.0.0.1", "::1"] {
            let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let body = key_auth.as_str().to_owned();
            let app = axum::Router::new().route(
                "/.well-known/acme-challenge/tok",
                axum::routing::get(move || async move { body }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            // The DNS address is never asked: nothing listens there.
            let v = Validator::new("127.0.0.1:9".parse().unwrap(), port, 9).unwrap();
            v.validate(&ChallengeType::Http01, host, "tok", &key_auth, "")
                .await
                .unwrap_or_else(|p| panic!("{host}: {p:?}"));
        }
        let v = Validator::new("127.0.0.1:9".parse().unwrap(), 9, 9).unwrap();
        let err = v
            .validate(&ChallengeType::Http01, "192.0.2.1", "tok", &key_auth, "")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ProblemType::Connection);
    }
}
