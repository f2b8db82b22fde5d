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

    /// Validates one challenge of `kind` for `name` (without `*.`).
    pub async fn validate(
        &self,
        kind: &ChallengeType,
        name: &str,
        token: &str,
        key_auth: &KeyAuthorization,
    ) -> Result<(), Problem> {
        match kind {
            ChallengeType::Http01 => self.http01(name, token, key_auth).await,
            ChallengeType::Dns01 => self.dns01(name, key_auth).await,
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
        let url = format!(
            "http://{name}:{}/.well-known/acme-challenge/{token}",
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

    async fn dns01(&self, name: &str, key_auth: &KeyAuthorization) -> Result<(), Problem> {
        let record = format!("_acme-challenge.{name}");
        let expected = key_auth.dns_value();
        let found: Vec<String> = match self.resolver.txt_lookup(Self::fqdn(&record)).await {
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
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())
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
    /// `identities` for this kind of name, or the authorization is refused.
    pub async fn check_caa(
        &self,
        name: &str,
        wildcard: bool,
        identities: &[String],
    ) -> Result<(), Problem> {
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

/// RFC 8737 §3: one dNSName SAN equal to the name, and a critical acmeIdentifier extension
/// holding the SHA-256 of the key authorization.
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
