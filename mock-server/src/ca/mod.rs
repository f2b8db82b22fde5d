//! The embedded CA: a hierarchy shaped like Sectigo's (docs/evidence.md §7), kept in the data
//! directory so that clients' trust survives a restart, and the TLS identity of the listener.
//!
//! ```text
//! Mock AAA Certificate Services (root, RSA)
//!  ├── Mock USERTrust RSA (cross-signed)  ── Mock InCommon RSA Server CA 2 ── leaf (RSA CSR)
//!  └── Mock USERTrust ECC (cross-signed)  ── Mock InCommon ECC Server CA 2 ── leaf (EC CSR)
//! Mock USERTrust RSA / ECC also exist as self-signed roots: the alternate chain ends there.
//! ```

pub mod csr;

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime, Time};

use crate::state::org::Organization;
use csr::CheckedCsr;

/// Why the CA could not be loaded, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file in the data directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate operation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// A stored file is not what the harness wrote.
    #[error("{path} is damaged: {message}; remove the data directory's ca/ folder to start over")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One issuing path: the issuing CA and the certificates above it.
struct IssuingPath {
    issuer: Issuer<'static, KeyPair>,
    /// PEM of the issuing CA certificate.
    issuing_pem: String,
    /// PEM of the cross-signed intermediate (signed by the AAA root).
    cross_pem: String,
}

/// The CA hierarchy and the listener's TLS identity.
pub struct Ca {
    rsa: IssuingPath,
    ecc: IssuingPath,
    /// PEM of every root issued certificates chain to.
    pub roots_pem: String,
    /// The root(s) each chain of [`Ca::chain`] ends at: the AAA root for chain 0, the two
    /// USERTrust roots (RSA, then ECC) for chain 1.
    chain_roots: [String; Self::CHAINS],
    /// PEM of the CA that signs the HTTPS listener's certificate (what clients must trust).
    pub listener_ca_pem: String,
    listener_ca: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// The TLS identity of the listener.
#[derive(Debug)]
pub struct ListenerIdentity {
    /// Leaf then the listener CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

const FILES: [&str; 8] = [
    "aaa-root",
    "usertrust-rsa-root",
    "usertrust-rsa-cross",
    "usertrust-ecc-root",
    "usertrust-ecc-cross",
    "incommon-rsa",
    "incommon-ecc",
    "listener-ca",
];

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "GB");
    dn.push(
        DnType::OrganizationName,
        "acme-harness mock CA (not trusted anywhere)",
    );
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x10; // and 16 bytes long
    SerialNumber::from_slice(&bytes)
}

fn write_secret(path: &Path, contents: &str) -> Result<(), CaError> {
    write(path, contents, acme_proto::file::Access::OwnerOnly)
}

fn write_public(path: &Path, contents: &str) -> Result<(), CaError> {
    write(path, contents, acme_proto::file::Access::Public)
}

fn write(path: &Path, contents: &str, access: acme_proto::file::Access) -> Result<(), CaError> {
    acme_proto::file::write_atomic(path, contents.as_bytes(), access).map_err(|source| {
        CaError::Io {
            action: "cannot write",
            path: path.to_owned(),
            source,
        }
    })
}

fn read(path: &Path) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(|source| CaError::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    })
}

impl Ca {
    /// Loads the CA from `dir`, or creates it there (keys 0600) when `dir` has none.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        fs::create_dir_all(dir).map_err(|source| CaError::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source,
        })?;
        let complete = FILES.iter().all(|f| {
            dir.join(format!("{f}.pem")).exists() && dir.join(format!("{f}.key")).exists()
        });
        if !complete {
            for (name, cert, key) in Self::generate_files()? {
                write_secret(&dir.join(format!("{name}.key")), &key)?;
                write_public(&dir.join(format!("{name}.pem")), &cert)?;
            }
        }
        Self::assemble(
            |name| {
                let cert = read(&dir.join(format!("{name}.pem")))?;
                let key = read(&dir.join(format!("{name}.key")))?;
                Ok((cert, key))
            },
            |name| dir.join(name),
        )
    }

    /// A fresh CA held in memory only: nothing is written. Generating the RSA keys takes a
    /// second or two, so callers that start many servers make one and share it
    /// ([`ServerConfig::ca`](crate::ServerConfig::ca)).
    pub fn generate() -> Result<Self, CaError> {
        let files = Self::generate_files()?;
        Self::assemble(
            |name| {
                files
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map(|(_, cert, key)| (cert.clone(), key.clone()))
                    .ok_or_else(|| CaError::Damaged {
                        path: PathBuf::from(name),
                        message: "not generated".into(),
                    })
            },
            |name| PathBuf::from(name),
        )
    }

    /// The process's in-memory CA, made at the first call ([`Ca::generate`]) and shared by
    /// every later caller: what tests and embedded mocks use, so that only the first server
    /// of a process pays for the RSA keys.
    pub fn shared() -> Result<std::sync::Arc<Self>, CaError> {
        static SHARED: std::sync::OnceLock<std::sync::Arc<Ca>> = std::sync::OnceLock::new();
        if let Some(ca) = SHARED.get() {
            return Ok(ca.clone());
        }
        let ca = std::sync::Arc::new(Self::generate()?);
        Ok(SHARED.get_or_init(|| ca).clone())
    }

    /// Builds the CA from its certificates and keys, `fetch(name)` giving (cert PEM, key PEM)
    /// and `origin(file)` naming where a damaged one came from.
    fn assemble(
        fetch: impl Fn(&str) -> Result<(String, String), CaError>,
        origin: impl Fn(&str) -> PathBuf,
    ) -> Result<Self, CaError> {
        let load = |name: &str| -> Result<(String, KeyPair), CaError> {
            let (cert, key_pem) = fetch(name)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Damaged {
                path: origin(&format!("{name}.key")),
                message: e.to_string(),
            })?;
            Ok((cert, key))
        };
        let issuer = |name: &str| -> Result<(String, Issuer<'static, KeyPair>), CaError> {
            let (pem, key) = load(name)?;
            let issuer = Issuer::from_ca_cert_pem(&pem, key).map_err(|e| CaError::Damaged {
                path: origin(&format!("{name}.pem")),
                message: e.to_string(),
            })?;
            Ok((pem, issuer))
        };
        let (aaa, _) = load("aaa-root")?;
        let (rsa_root, _) = load("usertrust-rsa-root")?;
        let (ecc_root, _) = load("usertrust-ecc-root")?;
        let (rsa_cross, _) = load("usertrust-rsa-cross")?;
        let (ecc_cross, _) = load("usertrust-ecc-cross")?;
        let (rsa_issuing, rsa_issuer) = issuer("incommon-rsa")?;
        let (ecc_issuing, ecc_issuer) = issuer("incommon-ecc")?;
        let (listener_ca_pem, listener_ca) = issuer("listener-ca")?;
        Ok(Self {
            rsa: IssuingPath {
                issuer: rsa_issuer,
                issuing_pem: rsa_issuing,
                cross_pem: rsa_cross,
            },
            ecc: IssuingPath {
                issuer: ecc_issuer,
                issuing_pem: ecc_issuing,
                cross_pem: ecc_cross,
            },
            roots_pem: format!("{aaa}{rsa_root}{ecc_root}"),
            chain_roots: [aaa.clone(), format!("{rsa_root}{ecc_root}")],
            listener_ca_pem,
            listener_ca,
        })
    }

    /// Generates every certificate and key: (file name, cert PEM, key PEM).
    fn generate_files() -> Result<Vec<(&'static str, String, String)>, CaError> {
        let rsa = || KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048);
        let aaa_key = rsa()?;
        let aaa_params = ca_params("Mock AAA Certificate Services", None);
        let aaa = aaa_params.self_signed(&aaa_key)?;
        let aaa_issuer = Issuer::new(aaa_params, &aaa_key);

        let mut out = vec![("aaa-root", aaa.pem(), aaa_key.serialize_pem())];
        for (family, key, issuing_cn, issuing_key) in [
            ("rsa", rsa()?, "Mock InCommon RSA Server CA 2", rsa()?),
            (
                "ecc",
                KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?,
                "Mock InCommon ECC Server CA 2",
                KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?,
            ),
        ] {
            let cn = format!(
                "Mock USERTrust {} Certification Authority",
                family.to_uppercase()
            );
            let params = ca_params(&cn, None);
            let root = params.self_signed(&key)?;
            let cross = ca_params(&cn, None).signed_by(&key, &aaa_issuer)?;
            let user_trust = Issuer::new(params, &key);
            let issuing = ca_params(issuing_cn, Some(0)).signed_by(&issuing_key, &user_trust)?;
            let (root_name, cross_name, issuing_name) = if family == "rsa" {
                ("usertrust-rsa-root", "usertrust-rsa-cross", "incommon-rsa")
            } else {
                ("usertrust-ecc-root", "usertrust-ecc-cross", "incommon-ecc")
            };
            out.push((root_name, root.pem(), key.serialize_pem()));
            out.push((cross_name, cross.pem(), key.serialize_pem()));
            out.push((issuing_name, issuing.pem(), issuing_key.serialize_pem()));
        }
        let listener_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let listener = ca_params("acme-harness listener CA", Some(0)).self_signed(&listener_key)?;
        out.push(("listener-ca", listener.pem(), listener_key.serialize_pem()));
        Ok(out)
    }

    /// A fresh listener certificate for localhost, 127.0.0.1, ::1 and `extra` names: DNS
    /// names, and IP literals (which become IP address SANs), each listed once.
    pub fn listener_identity(&self, extra: &[String]) -> Result<ListenerIdentity, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        for name in extra {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name("acme-harness listener");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365);
        let cert = params.signed_by(&key, &self.listener_ca)?;
        let ca_der = rustls_pemfile::certs(&mut self.listener_ca_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| CaError::Damaged {
                path: PathBuf::from("listener-ca.pem"),
                message: "no certificate in it".into(),
            })?;
        Ok(ListenerIdentity {
            chain: vec![cert.der().clone(), ca_der],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The chains of a leaf: the default (leaf, issuing CA, cross-signed intermediate) and the
    /// alternate (leaf, issuing CA), built at download so that each certificate stores its
    /// leaf only.
    pub fn chain(&self, leaf_pem: &str, family: Family, index: usize) -> Option<String> {
        let path = match family {
            Family::Rsa => &self.rsa,
            Family::Ecc => &self.ecc,
        };
        match index {
            0 => Some(format!("{leaf_pem}{}{}", path.issuing_pem, path.cross_pem)),
            1 => Some(format!("{leaf_pem}{}", path.issuing_pem)),
            _ => None,
        }
    }

    /// The PEM of the root(s) chain `index` ends at (Pebble's `/roots/N`): one certificate
    /// for chain 0, the RSA and the ECC root for chain 1.
    pub fn chain_roots_pem(&self, index: usize) -> Option<&str> {
        self.chain_roots.get(index).map(String::as_str)
    }

    /// The PEM of the CAs that sign leaves, RSA then ECC (Pebble's `/intermediates/N`): the
    /// same two in both chains.
    pub fn issuing_pem(&self, index: usize) -> Option<String> {
        (index < Self::CHAINS).then(|| format!("{}{}", self.rsa.issuing_pem, self.ecc.issuing_pem))
    }

    /// How many chains [`Ca::chain`] offers.
    pub const CHAINS: usize = 2;

    /// Issues a certificate for `names` over the CSR's key: the CSR's key type picks the RSA or
    /// ECC issuing CA.
    pub fn issue(
        &self,
        csr: &CheckedCsr,
        names: &[String],
        org: Option<&Organization>,
        policy: CertPolicy,
        validity_days: u32,
    ) -> Result<Issued, CaError> {
        let family = if csr.key.is_rsa() {
            Family::Rsa
        } else {
            Family::Ecc
        };
        let path = match family {
            Family::Rsa => &self.rsa,
            Family::Ecc => &self.ecc,
        };
        let mut params = CertificateParams::default();
        // IP identifiers (RFC 8738) become iPAddress SANs, DNS names dNSNames.
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        if let Some(org) = org {
            dn.push(DnType::CountryName, org.country.as_str());
            dn.push(DnType::StateOrProvinceName, org.state.as_str());
            dn.push(DnType::OrganizationName, org.name.as_str());
        }
        // The CN is the first DNS name; a certificate for IP addresses only has none.
        if let Some(first) = names
            .iter()
            .find(|n| n.parse::<std::net::IpAddr>().is_err())
        {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = if csr.key.is_rsa() {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        let serial_hex: String = serial
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        params.serial_number = Some(serial);
        // §7: notBefore at 00:00:00Z today, notAfter at 23:59:59Z `validity_days` later.
        let today = OffsetDateTime::now_utc().replace_time(Time::MIDNIGHT);
        params.not_before = today;
        params.not_after = (today + Duration::days(i64::from(validity_days)))
            .replace_time(Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT));
        params
            .custom_extensions
            .push(certificate_policies(policy.oid()));
        let public = SubjectPublicKeyInfo::from_der(&csr.spki_der)?;
        let leaf = params.signed_by(&public, &path.issuer)?;
        Ok(Issued {
            leaf_pem: leaf.pem(),
            leaf_der: leaf.der().to_vec(),
            family,
            serial: serial_hex,
        })
    }
}

/// Which issuing path a certificate is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// RSA issuing CA under USERTrust RSA.
    Rsa,
    /// ECC issuing CA under USERTrust ECC.
    Ecc,
}

/// A freshly issued leaf.
#[derive(Debug)]
pub struct Issued {
    /// PEM of the leaf.
    pub leaf_pem: String,
    /// DER of the leaf.
    pub leaf_der: Vec<u8>,
    /// Its issuing path.
    pub family: Family,
    /// Serial number, lower-case hex.
    pub serial: String,
}

/// The CA/Browser Forum policy a certificate asserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertPolicy {
    /// Domain validated, 2.23.140.1.2.1.
    Dv,
    /// Organization validated, 2.23.140.1.2.2.
    Ov,
    /// Extended validation, 2.23.140.1.1.
    Ev,
}

impl CertPolicy {
    fn oid(self) -> &'static [u64] {
        match self {
            Self::Dv => &[2, 23, 140, 1, 2, 1],
            Self::Ov => &[2, 23, 140, 1, 2, 2],
            Self::Ev => &[2, 23, 140, 1, 1],
        }
    }
}

/// A certificatePolicies extension (RFC 5280 §4.2.1.4) with one policy OID.
fn certificate_policies(oid: &[u64]) -> CustomExtension {
    let oid = yasna::models::ObjectIdentifier::from_slice(oid);
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| w.next().write_sequence(|w| w.next().write_oid(&oid)))
    });
    CustomExtension::from_oid_content(&[2, 5, 29, 32], der)
}
