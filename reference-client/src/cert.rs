//! Certificate keys and CSRs, chains (with alternates chosen by issuer), renewal decisions,
//! and PEM / PKCS#12 output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use acme_proto::Secret;
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate, X509Name};

use crate::account::{pem_encode, write_private};
use crate::error::{Error, Result};

/// The certificate key types offered (never the account key: RFC 8555 §11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertKeyType {
    /// ECDSA P-256 (default).
    #[default]
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA with this many bits (2048, 3072, 4096).
    Rsa(u32),
}

impl CertKeyType {
    /// Parses `p256`, `p384`, `rsa2048`, `rsa3072`, `rsa4096` (and `rsa` for 2048).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa" | "ec" => Some(Self::EcdsaP256),
            "p384" | "p-384" => Some(Self::EcdsaP384),
            "rsa" | "rsa2048" => Some(Self::Rsa(2048)),
            "rsa3072" => Some(Self::Rsa(3072)),
            "rsa4096" => Some(Self::Rsa(4096)),
            _ => None,
        }
    }
}

/// A fresh certificate key.
pub struct CertKey {
    pair: rcgen::KeyPair,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("alg", &self.pair.algorithm())
            .finish_non_exhaustive()
    }
}

impl CertKey {
    /// Generates a key of `kind`.
    pub fn generate(kind: CertKeyType) -> Result<Self> {
        let pair = match kind {
            CertKeyType::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            CertKeyType::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            CertKeyType::Rsa(bits) => {
                let size = match bits {
                    2048 => rcgen::RsaKeySize::_2048,
                    3072 => rcgen::RsaKeySize::_3072,
                    4096 => rcgen::RsaKeySize::_4096,
                    _ => {
                        return Err(Error::InvalidInput(
                            "RSA certificate keys must be 2048, 3072 or 4096 bits".into(),
                        ));
                    }
                };
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
            }
        }
        .map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self { pair })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Secret<String> {
        Secret::new(self.pair.serialize_pem())
    }

    /// The key as PKCS#8 DER.
    pub fn to_der(&self) -> Secret<Vec<u8>> {
        Secret::new(self.pair.serialize_der())
    }

    /// A CSR (DER) for `names`, the first as the subject CN (RFC 8555 §7.4: the CA takes the
    /// names from the SAN extension).
    pub fn csr(&self, names: &[String]) -> Result<Vec<u8>> {
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let mut dn = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(rcgen::DnType::CommonName, first.clone());
        }
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&self.pair)
            .map_err(|e| Error::Certificate(e.to_string()))?;
        Ok(csr.der().to_vec())
    }
}

/// Reads a CSR given by the user (PEM or DER) and returns its DER and the DNS names it asks
/// for (SAN, else the CN).
pub fn read_csr(bytes: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let der = match rustls_pemfile::read_one(&mut &bytes[..]) {
        Ok(Some(rustls_pemfile::Item::Csr(der))) => der.to_vec(),
        _ if bytes.first() == Some(&0x30) => bytes.to_vec(),
        _ => {
            return Err(Error::Certificate(
                "the CSR file holds neither a PEM \"CERTIFICATE REQUEST\" nor DER".into(),
            ));
        }
    };
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| Error::Certificate(format!("the CSR does not parse: {e}")))?;
    csr.verify_signature()
        .map_err(|e| Error::Certificate(format!("the CSR's signature does not verify: {e}")))?;
    let mut names = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::DNSName(n) = name {
                    names.push(n.to_string());
                }
            }
        }
    }
    if names.is_empty() {
        for cn in csr.certification_request_info.subject.iter_common_name() {
            if let Ok(n) = cn.as_str() {
                names.push(n.to_owned());
            }
        }
    }
    if names.is_empty() {
        return Err(Error::Certificate("the CSR names no DNS name".into()));
    }
    Ok((der, names))
}

/// A certificate chain as issued: leaf first.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The PEM text as the CA sent it.
    pub pem: String,
    /// Each certificate as DER, leaf first.
    pub certs: Vec<Vec<u8>>,
}

impl Chain {
    /// Parses a `application/pem-certificate-chain` body (RFC 8555 §9.1).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Certificate(format!("the chain is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Certificate(
                "the CA sent no certificate in the chain".into(),
            ));
        }
        Ok(Self {
            pem: pem.to_owned(),
            certs,
        })
    }

    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        &self.certs[0]
    }

    /// The leaf as PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.certs[0])
    }

    /// The issuer certificates as PEM.
    pub fn chain_pem(&self) -> String {
        self.certs[1..]
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c))
            .collect()
    }

    /// Leaf and issuers as PEM.
    pub fn fullchain_pem(&self) -> String {
        self.certs
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c))
            .collect()
    }

    /// The issuer common name of the topmost certificate: what certbot's
    /// `--preferred-chain` matches, and the first thing [`Chain::choose`] tries.
    pub fn top_issuer(&self) -> Option<String> {
        let top = parse(self.certs.last()?).ok()?;
        common_names(top.issuer()).into_iter().next()
    }

    /// Every issuer common name in the chain, leaf's issuer first.
    pub fn issuer_names(&self) -> Vec<String> {
        self.certs
            .iter()
            .filter_map(|c| parse(c).ok())
            .flat_map(|c| common_names(c.issuer()))
            .collect()
    }

    /// True when `name` (case-insensitive) is the issuer of the topmost certificate.
    pub fn matches_issuer(&self, name: &str) -> bool {
        self.top_issuer()
            .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
    }

    /// The chain to use among `chains` (default first) for a preferred issuer `name`: the
    /// first whose topmost issuer is `name`, else the first with `name` as any issuer, else
    /// the default.
    pub fn choose<'a>(chains: &'a [Chain], name: Option<&str>) -> Option<&'a Chain> {
        let Some(name) = name.map(str::trim) else {
            return chains.first();
        };
        chains
            .iter()
            .find(|c| c.matches_issuer(name))
            .or_else(|| {
                chains.iter().find(|c| {
                    c.issuer_names()
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .or(chains.first())
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| Error::Certificate(format!("a certificate does not parse: {e}")))
}

fn common_names(name: &X509Name<'_>) -> Vec<String> {
    name.iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect()
}

/// Facts about a certificate, for `show` and renewal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// DNS names in the SAN.
    pub names: Vec<String>,
    /// notBefore.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl CertInfo {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let c = parse(der)?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                if let GeneralName::DNSName(n) = n {
                    names.push(n.to_string());
                }
            }
        }
        Ok(Self {
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            names,
            not_before: c.validity().not_before.to_datetime(),
            not_after: c.validity().not_after.to_datetime(),
        })
    }
}

/// Whether to renew, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewalDecision {
    /// Renew now.
    pub due: bool,
    /// For people.
    pub reason: String,
}

/// Decides renewal from the certificate's lifetime: due once less than `fraction` of it
/// remains (certbot and Let's Encrypt use a third), or less than `min_remaining`, if given.
pub fn renewal_due(
    info: &CertInfo,
    now: OffsetDateTime,
    fraction: f64,
    min_remaining: Option<Duration>,
) -> RenewalDecision {
    let lifetime = (info.not_after - info.not_before).max(time::Duration::ZERO);
    let remaining = info.not_after - now;
    let days = remaining.whole_hours() as f64 / 24.0;
    if remaining <= time::Duration::ZERO {
        return RenewalDecision {
            due: true,
            reason: format!("the certificate expired on {}", info.not_after.date()),
        };
    }
    let threshold = lifetime * fraction;
    if remaining < threshold {
        return RenewalDecision {
            due: true,
            reason: format!(
                "{days:.1} days left of a {}-day lifetime (renewing in the last {:.0}%)",
                lifetime.whole_days(),
                fraction * 100.0
            ),
        };
    }
    if let Some(min) = min_remaining
        && remaining.unsigned_abs() < min
    {
        return RenewalDecision {
            due: true,
            reason: format!(
                "{days:.1} days left, less than the {} days asked for",
                min.as_secs() / 86_400
            ),
        };
    }
    RenewalDecision {
        due: false,
        reason: format!(
            "{days:.1} days left of a {}-day lifetime; not due yet",
            lifetime.whole_days()
        ),
    }
}

/// The ARI certificate identifier (RFC 9773 §4.1): base64url(AKI keyIdentifier) "."
/// base64url(serial DER content).
pub fn ari_cert_id(der: &[u8]) -> Result<String> {
    let c = parse(der)?;
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .ok_or_else(|| {
            Error::Certificate("the certificate has no authority key identifier".into())
        })?;
    Ok(format!(
        "{}.{}",
        acme_proto::b64::encode(aki),
        acme_proto::b64::encode(c.raw_serial())
    ))
}

/// The files an issuance writes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WrittenFiles {
    /// cert.pem (the leaf).
    pub cert: PathBuf,
    /// chain.pem (the issuers).
    pub chain: PathBuf,
    /// fullchain.pem (leaf and issuers).
    pub fullchain: PathBuf,
    /// privkey.pem (mode 0600), when the client made the key.
    pub privkey: Option<PathBuf>,
    /// The PKCS#12 bundle (mode 0600), when asked for.
    pub pfx: Option<PathBuf>,
}

/// Writes cert.pem, chain.pem, fullchain.pem and (mode 0600) privkey.pem into `dir`.
pub fn write_pem_files(
    dir: &Path,
    chain: &Chain,
    key_pem: Option<&Secret<String>>,
) -> Result<WrittenFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    };
    let privkey = match key_pem {
        Some(pem) => {
            let path = dir.join("privkey.pem");
            write_private(&path, pem.expose().as_bytes())?;
            Some(path)
        }
        None => None,
    };
    Ok(WrittenFiles {
        cert: write("cert.pem", &chain.cert_pem())?,
        chain: write("chain.pem", &chain.chain_pem())?,
        fullchain: write("fullchain.pem", &chain.fullchain_pem())?,
        privkey,
        pfx: None,
    })
}

/// A PKCS#12 bundle of the key and the full chain, encrypted with PBES2 (PBKDF2-HMAC-SHA256,
/// AES-256-CBC) and MACed with HMAC-SHA256, which Windows (certutil, IIS) since Windows 10
/// 1709 / Server 2019 and OpenSSL 1.1+ import. `friendly_name` labels the key entry.
pub fn pkcs12(
    chain: &Chain,
    key_pkcs8_der: &Secret<Vec<u8>>,
    password: &Secret<String>,
    friendly_name: &str,
) -> Result<Secret<Vec<u8>>> {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };
    let err = |e: p12_keystore::error::Error| Error::Pkcs12(e.to_string());
    let key = PrivateKey::from_der(key_pkcs8_der.expose()).map_err(err)?;
    let certs = chain
        .certs
        .iter()
        .map(|c| Certificate::from_der(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(err)?;
    // The local key id ties the key to its certificate; the leaf's SHA-256 is unique enough.
    let local_key_id =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, chain.leaf()).as_ref()[..20].to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        friendly_name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );
    let der = store
        .writer(password.expose())
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(10_000)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(10_000)
        .write()
        .map_err(err)?;
    Ok(Secret::new(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str], days: i64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn renewal_from_lifetime() {
        let now = OffsetDateTime::now_utc();
        let mk = |before: i64, after: i64| CertInfo {
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            names: vec![],
            not_before: now - time::Duration::days(before),
            not_after: now + time::Duration::days(after),
        };
        assert!(!renewal_due(&mk(10, 355), now, 1.0 / 3.0, None).due);
        assert!(renewal_due(&mk(300, 65), now, 1.0 / 3.0, None).due);
        assert!(renewal_due(&mk(400, -1), now, 1.0 / 3.0, None).due);
        let d = renewal_due(
            &mk(10, 20),
            now,
            0.0,
            Some(Duration::from_secs(30 * 86_400)),
        );
        assert!(d.due, "{}", d.reason);
        let info = CertInfo::from_der(&self_signed(&["a.example", "b.example"], 90)).unwrap();
        assert_eq!(info.names, ["a.example", "b.example"]);
        assert!(!renewal_due(&info, now, 1.0 / 3.0, None).due);
    }

    #[test]
    fn csr_round_trip_for_each_key_type() {
        for kind in [
            CertKeyType::EcdsaP256,
            CertKeyType::EcdsaP384,
            CertKeyType::Rsa(2048),
        ] {
            let key = CertKey::generate(kind).unwrap();
            let names = vec!["a.example".to_owned(), "*.a.example".to_owned()];
            let der = key.csr(&names).unwrap();
            let (_, got) = read_csr(&der).unwrap();
            assert_eq!(got, names);
            let pem = pem_encode("CERTIFICATE REQUEST", &der);
            assert_eq!(read_csr(pem.as_bytes()).unwrap().1, names);
        }
        assert!(read_csr(b"junk").is_err());
    }

    #[test]
    fn ari_certificate_id_is_aki_dot_serial() {
        // rfc9773#section-4.1: base64url(keyIdentifier) "." base64url(serial DER content).
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![0x69, 0x88, 0x5b]);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43]));
        leaf.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().unwrap();
        let der = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();
        assert_eq!(ari_cert_id(&der).unwrap(), "aYhb.AIdlQw");
        assert!(ari_cert_id(ca_cert.der()).is_err(), "a root has no AKI");
    }

    #[test]
    fn chain_split_and_issuer_match() {
        let leaf = self_signed(&["a.example"], 90);
        let pem = format!(
            "{}{}",
            pem_encode("CERTIFICATE", &leaf),
            pem_encode("CERTIFICATE", &leaf)
        );
        let chain = Chain::from_pem(&pem).unwrap();
        assert_eq!(chain.certs.len(), 2);
        assert_eq!(chain.fullchain_pem(), pem);
        assert_eq!(chain.chain_pem(), pem_encode("CERTIFICATE", &leaf));
        // rcgen's default subject CN.
        assert!(chain.matches_issuer("rcgen self signed cert"));
        assert!(!chain.matches_issuer("Other Root"));
        assert!(Chain::from_pem("nothing").is_err());
    }
}
