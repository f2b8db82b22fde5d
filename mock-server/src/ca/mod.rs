//! The embedded CA: a hierarchy shaped like Sectigo's (docs/evidence.md §7), kept in the data
//! directory so that clients' trust survives a restart, and the TLS identity of the listener.
//!
//! ```text
//! Mock AAA Certificate Services (root, RSA)
//!  ├── Mock USERTrust RSA (cross-signed)  ── Mock InCommon RSA Server CA 2 ── leaf (RSA CSR)
//!  └── Mock USERTrust ECC (cross-signed)  ── Mock InCommon ECC Server CA 2 ── leaf (EC CSR)
//! Mock USERTrust RSA / ECC also exist as self-signed roots: the alternate chain ends there.
//! ```
//!
//! The Pebble stand-in makes a CA of Pebble's shape instead ([`Ca::pebble`]): 1 +
//! `PEBBLE_ALTERNATE_ROOTS` chains, each with its own root and `PEBBLE_CHAIN_LENGTH`
//! intermediates, the one that signs leaves sharing its name and key across the chains.
//! Both shapes are the same `Chain` list, served by the same download, management and
//! admin code.

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

use acme_proto::Secret;

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

/// One chain a leaf can be downloaded with (RFC 8555 §7.4.2: the default, then the
/// alternates): what follows the leaf, and the root(s) it ends at.
struct Chain {
    /// The certificates after a leaf of each [`Family`] (RSA, then ECC), issuing CA first.
    above_leaf: [String; 2],
    /// The root(s) the chain ends at (Pebble's `/roots/N`).
    roots_pem: String,
    /// The CA(s) that sign leaves on it (Pebble's `/intermediates/N`).
    issuing_pem: String,
    /// The private keys of those roots and issuing CAs, in the PEM form
    /// [`export_key_pem`] gives; only a CA made in memory has them (see [`Ca::root_key_pem`]).
    keys: Option<ChainKeys>,
}

/// The exportable keys of a [`Chain`].
struct ChainKeys {
    root: Secret<String>,
    issuing: Secret<String>,
}

/// The CAs that sign leaves: one per [`Family`] (Sectigo's shape), or one for every leaf
/// (Pebble's, whose intermediate signs RSA and ECDSA leaves alike).
struct Signers {
    /// Signs RSA leaves, and every leaf when there is no `ecc`.
    main: Issuer<'static, KeyPair>,
    /// Signs ECDSA leaves.
    ecc: Option<Issuer<'static, KeyPair>>,
}

impl Signers {
    fn for_family(&self, family: Family) -> &Issuer<'static, KeyPair> {
        match (family, &self.ecc) {
            (Family::Ecc, Some(ecc)) => ecc,
            _ => &self.main,
        }
    }
}

/// The CA hierarchy and the listener's TLS identity.
pub struct Ca {
    signers: Signers,
    /// The chains a leaf is offered with: the default first.
    chains: Vec<Chain>,
    /// PEM of every root issued certificates chain to.
    pub roots_pem: String,
    /// PEM of the CA that signs the HTTPS listener's certificate (what clients must trust).
    pub listener_ca_pem: String,
    listener_ca: Issuer<'static, KeyPair>,
}

/// The key type of a Pebble-shaped CA (Pebble's `keyAlgorithm`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaKeyAlgorithm {
    /// RSA 2048 (Pebble's default).
    #[default]
    Rsa,
    /// ECDSA P-256.
    Ecdsa,
}

/// The shape of a Pebble-like CA ([`Ca::pebble`]): Pebble's `PEBBLE_CHAIN_LENGTH`,
/// `PEBBLE_ALTERNATE_ROOTS` and `keyAlgorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PebbleShape {
    /// Intermediates between a leaf and the root in every chain (at least 1).
    pub chain_length: u32,
    /// Chains beyond the first, each ending at a root of its own.
    pub alternate_roots: u32,
    /// The CA keys' type.
    pub key_algorithm: CaKeyAlgorithm,
}

impl Default for PebbleShape {
    fn default() -> Self {
        Self {
            chain_length: 1,
            alternate_roots: 0,
            key_algorithm: CaKeyAlgorithm::Rsa,
        }
    }
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

/// The parameters of a Pebble CA certificate: the name alone, 30 years, a CA for server
/// certificates (Pebble's `makeCACert`).
fn pebble_ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(30 * 365);
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

/// A fresh CA for the listener's TLS certificates (the same in every CA shape): its
/// certificate PEM and key.
fn new_listener_ca() -> Result<(String, KeyPair), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = ca_params("acme-harness listener CA", Some(0)).self_signed(&key)?;
    Ok((cert.pem(), key))
}

/// Six hex digits naming a Pebble CA certificate (Pebble takes three bytes of a serial).
fn short_id() -> String {
    let mut bytes = [0u8; 3];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA key as Pebble's key endpoints send it: an RSA key as PKCS#1 (`RSA PRIVATE KEY`),
/// as Pebble does; an ECDSA key as PKCS#8 (`PRIVATE KEY`), which every PEM reader takes
/// with its curve (Pebble exports none: it answers 404 for ECDSA keys).
pub fn export_key_pem(key: &KeyPair) -> Result<Secret<String>, CaError> {
    let pkcs8 = key.serialized_der();
    if !key.is_compatible(&PKCS_RSA_SHA256) {
        return Ok(pem_encode("PRIVATE KEY", pkcs8));
    }
    // PKCS#8 PrivateKeyInfo (RFC 5208 §5): the RSA key (RFC 8017 A.1.2) is its OCTET STRING.
    let pkcs1 = yasna::parse_der(pkcs8, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_der()?;
            let key = r.next().read_bytes()?;
            // attributes [0], and publicKey [1] of a version 2 key (RFC 5958).
            r.read_optional(|r| r.read_der())?;
            r.read_optional(|r| r.read_der())?;
            Ok(key)
        })
    })
    .map_err(|e| CaError::Damaged {
        path: PathBuf::from("CA key"),
        message: format!("not a PKCS#8 RSA key: {e}"),
    })?;
    Ok(pem_encode("RSA PRIVATE KEY", &pkcs1))
}

fn pem_encode(label: &str, der: &[u8]) -> Secret<String> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Secret::new(pem::encode_config(&pem::Pem::new(label, der), config))
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
    /// Loads the CA from `dir`, or creates it there (keys 0600) when `dir` has none. Its keys
    /// are never exported: a CA kept in a directory outlives the run, and its roots may sit in
    /// a trust store.
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
            false,
        )
    }

    /// A fresh CA held in memory only: nothing is written, and its keys are exported through
    /// Pebble's management endpoints ([`Ca::root_key_pem`]). Generating the RSA keys takes a
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
            true,
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
    /// and `origin(file)` naming where a damaged one came from; `exportable` keeps the CA
    /// keys for Pebble's key endpoints.
    fn assemble(
        fetch: impl Fn(&str) -> Result<(String, String), CaError>,
        origin: impl Fn(&str) -> PathBuf,
        exportable: bool,
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
        let (aaa, aaa_key) = load("aaa-root")?;
        let (rsa_root, rsa_root_key) = load("usertrust-rsa-root")?;
        let (ecc_root, ecc_root_key) = load("usertrust-ecc-root")?;
        let (rsa_cross, _) = load("usertrust-rsa-cross")?;
        let (ecc_cross, _) = load("usertrust-ecc-cross")?;
        let (rsa_issuing, rsa_issuer) = issuer("incommon-rsa")?;
        let (ecc_issuing, ecc_issuer) = issuer("incommon-ecc")?;
        let (listener_ca_pem, listener_ca) = issuer("listener-ca")?;
        let keys = |roots: &[&KeyPair]| -> Result<Option<ChainKeys>, CaError> {
            if !exportable {
                return Ok(None);
            }
            let pems = |keys: &[&KeyPair]| -> Result<Secret<String>, CaError> {
                let mut out = String::new();
                for key in keys {
                    out.push_str(export_key_pem(key)?.expose());
                }
                Ok(Secret::new(out))
            };
            Ok(Some(ChainKeys {
                root: pems(roots)?,
                issuing: pems(&[rsa_issuer.key(), ecc_issuer.key()])?,
            }))
        };
        let issuing_pem = format!("{rsa_issuing}{ecc_issuing}");
        let chains = vec![
            Chain {
                above_leaf: [
                    format!("{rsa_issuing}{rsa_cross}"),
                    format!("{ecc_issuing}{ecc_cross}"),
                ],
                roots_pem: aaa.clone(),
                issuing_pem: issuing_pem.clone(),
                keys: keys(&[&aaa_key])?,
            },
            Chain {
                above_leaf: [rsa_issuing.clone(), ecc_issuing.clone()],
                roots_pem: format!("{rsa_root}{ecc_root}"),
                issuing_pem,
                keys: keys(&[&rsa_root_key, &ecc_root_key])?,
            },
        ];
        Ok(Self {
            signers: Signers {
                main: rsa_issuer,
                ecc: Some(ecc_issuer),
            },
            chains,
            roots_pem: format!("{aaa}{rsa_root}{ecc_root}"),
            listener_ca_pem,
            listener_ca,
        })
    }

    /// A CA of Pebble's shape, made in memory (Pebble's `ca.New`): 1 + `alternate_roots`
    /// chains, each a root of its own (`Pebble Root CA <6 hex>`) over `chain_length`
    /// intermediates; the one that signs leaves (`Pebble Intermediate CA <6 hex>`) has the same
    /// name and key in every chain, so that one leaf verifies through any of them, and the
    /// ones between it and the root are `Pebble Intermediate CA <chain id> #<i>`. Its keys are
    /// exported ([`Ca::root_key_pem`]), as Pebble's management API exports them.
    pub fn pebble(shape: PebbleShape) -> Result<Self, CaError> {
        let chain_length = shape.chain_length.max(1);
        let key = || match shape.key_algorithm {
            CaKeyAlgorithm::Rsa => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            CaKeyAlgorithm::Ecdsa => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        };
        let issuing_key = key()?;
        let issuing_params = pebble_ca_params(&format!("Pebble Intermediate CA {}", short_id()));
        let issuing_export = export_key_pem(&issuing_key)?;
        let mut chains = Vec::new();
        let mut roots_pem = String::new();
        for _ in 0..=shape.alternate_roots {
            let chain_id = short_id();
            let root_key = key()?;
            let root_params = pebble_ca_params(&format!("Pebble Root CA {chain_id}"));
            let root = root_params.self_signed(&root_key)?;
            let root_export = export_key_pem(&root_key)?;
            // From the root down: the extra intermediates #N-1 .. #1, then the issuing one.
            let mut top_down = Vec::new();
            let (mut parent, mut parent_key) = (root_params, root_key);
            for i in (1..chain_length).rev() {
                let k = key()?;
                let params = pebble_ca_params(&format!("Pebble Intermediate CA {chain_id} #{i}"));
                let cert = params.signed_by(&k, &Issuer::from_params(&parent, &parent_key))?;
                top_down.push(cert.pem());
                (parent, parent_key) = (params, k);
            }
            let mut params = issuing_params.clone();
            params.serial_number = Some(random_serial());
            let issuing =
                params.signed_by(&issuing_key, &Issuer::from_params(&parent, &parent_key))?;
            let above_leaf = format!(
                "{}{}",
                issuing.pem(),
                top_down
                    .iter()
                    .rev()
                    .map(String::as_str)
                    .collect::<String>()
            );
            roots_pem.push_str(&root.pem());
            chains.push(Chain {
                above_leaf: [above_leaf.clone(), above_leaf],
                roots_pem: root.pem(),
                issuing_pem: issuing.pem(),
                keys: Some(ChainKeys {
                    root: root_export,
                    issuing: Secret::new(issuing_export.expose().clone()),
                }),
            });
        }
        // Leaves name the issuing CA's subject and key identifier, the same in every chain.
        let signer = Issuer::new(issuing_params, issuing_key);
        let (listener_ca_pem, listener_key) = new_listener_ca()?;
        let listener_ca = Issuer::from_ca_cert_pem(&listener_ca_pem, listener_key)?;
        Ok(Self {
            signers: Signers {
                main: signer,
                ecc: None,
            },
            chains,
            roots_pem,
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
        let (listener_pem, listener_key) = new_listener_ca()?;
        out.push(("listener-ca", listener_pem, listener_key.serialize_pem()));
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

    /// A leaf with chain `index` after it, built at download so that each certificate
    /// stores its leaf only. Sectigo's shape: chain 0 is (leaf, issuing CA, cross-signed
    /// intermediate), chain 1 (leaf, issuing CA); Pebble's: the leaf and that chain's
    /// intermediates.
    pub fn chain(&self, leaf_pem: &str, family: Family, index: usize) -> Option<String> {
        let chain = self.chains.get(index)?;
        Some(format!("{leaf_pem}{}", chain.above_leaf[family.index()]))
    }

    /// The PEM of the root(s) chain `index` ends at (Pebble's `/roots/N`). Sectigo's shape:
    /// one certificate for chain 0, the RSA and the ECC root for chain 1.
    pub fn chain_roots_pem(&self, index: usize) -> Option<&str> {
        self.chains.get(index).map(|c| c.roots_pem.as_str())
    }

    /// The PEM of the CA(s) that sign leaves on chain `index` (Pebble's `/intermediates/N`):
    /// in Sectigo's shape the RSA and the ECC issuing CA, the same two in both chains.
    pub fn issuing_pem(&self, index: usize) -> Option<&str> {
        self.chains.get(index).map(|c| c.issuing_pem.as_str())
    }

    /// The private key(s) of the root(s) of chain `index` (Pebble's `/root-keys/N`), in the
    /// form [`export_key_pem`] gives; `None` for a CA kept in a data directory, whose keys
    /// never leave it ([`Ca::load_or_create`]).
    pub fn root_key_pem(&self, index: usize) -> Option<&Secret<String>> {
        self.chains.get(index)?.keys.as_ref().map(|k| &k.root)
    }

    /// The private key(s) of the CA(s) that sign leaves on chain `index` (Pebble's
    /// `/intermediate-keys/N`); `None` as for [`Ca::root_key_pem`].
    pub fn issuing_key_pem(&self, index: usize) -> Option<&Secret<String>> {
        self.chains.get(index)?.keys.as_ref().map(|k| &k.issuing)
    }

    /// How many chains [`Ca::chain`] offers: 2 in Sectigo's shape, 1 +
    /// `PEBBLE_ALTERNATE_ROOTS` in Pebble's.
    pub fn chain_count(&self) -> usize {
        self.chains.len()
    }

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
        let leaf = params.signed_by(&public, self.signers.for_family(family))?;
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

impl Family {
    fn index(self) -> usize {
        match self {
            Self::Rsa => 0,
            Self::Ecc => 1,
        }
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rcgen::PublicKeyData as _;
    use rustls::pki_types::{PrivateKeyDer, UnixTime};
    use x509_parser::prelude::*;

    use super::*;

    fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .map(Result::unwrap)
            .collect()
    }

    fn common_name(der: &[u8]) -> String {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        let cn = c.subject().iter_common_name().next().unwrap();
        cn.as_str().unwrap().to_owned()
    }

    /// Whether webpki builds a path from `chain` (leaf first) to one of `roots`.
    fn verifies(chain: &[CertificateDer<'static>], roots: &str) -> bool {
        let roots = ders(roots);
        let anchors: Vec<_> = roots
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).unwrap())
            .collect();
        let leaf = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
    }

    fn leaf(ca: &Ca) -> Issued {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = CertificateParams::new(vec!["leaf.example".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        let checked = csr::check(csr.der()).unwrap();
        ca.issue(&checked, &["leaf.example".into()], None, CertPolicy::Dv, 90)
            .unwrap()
    }

    /// The public key (SubjectPublicKeyInfo) of the private key in `pem`, read by aws-lc.
    fn public_of(pem: &str) -> Vec<u8> {
        let der = rustls_pemfile::private_key(&mut pem.as_bytes())
            .unwrap()
            .unwrap();
        KeyPair::try_from(&der).unwrap().subject_public_key_info()
    }

    fn spki_der(der: &[u8]) -> Vec<u8> {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        c.public_key().raw.to_vec()
    }

    fn spki(cert_pem: &str) -> Vec<u8> {
        spki_der(&ders(cert_pem)[0])
    }

    #[test]
    fn pebble_shape_gives_independent_chains_of_the_asked_length() {
        let ca = Ca::pebble(PebbleShape {
            chain_length: 3,
            alternate_roots: 2,
            key_algorithm: CaKeyAlgorithm::Ecdsa,
        })
        .unwrap();
        assert_eq!(ca.chain_count(), 3);
        let issued = leaf(&ca);
        let roots: Vec<&str> = (0..3).map(|i| ca.chain_roots_pem(i).unwrap()).collect();
        let root_names: std::collections::BTreeSet<String> =
            roots.iter().map(|r| common_name(&ders(r)[0])).collect();
        assert_eq!(root_names.len(), 3, "{root_names:?}");
        assert_eq!(ca.roots_pem, roots.concat());
        let mut issuing = Vec::new();
        for (i, root) in roots.iter().enumerate() {
            let chain = ders(&ca.chain(&issued.leaf_pem, issued.family, i).unwrap());
            assert_eq!(chain.len(), 4, "the leaf and 3 intermediates");
            let names: Vec<String> = chain[1..].iter().map(|c| common_name(c)).collect();
            let root_id = common_name(&ders(root)[0]).replace("Pebble Root CA ", "");
            assert_eq!(
                names[1..],
                [
                    format!("Pebble Intermediate CA {root_id} #1"),
                    format!("Pebble Intermediate CA {root_id} #2")
                ]
            );
            issuing.push((names[0].clone(), spki_der(&chain[1])));
            assert_eq!(ders(ca.issuing_pem(i).unwrap()), chain[1..2]);
            assert!(verifies(&chain, root), "chain {i} to its root");
            for (j, other) in roots.iter().enumerate().filter(|(j, _)| *j != i) {
                assert!(!verifies(&chain, other), "chain {i} to root {j}");
            }
        }
        assert!(issuing[0].0.starts_with("Pebble Intermediate CA "));
        assert!(issuing.iter().all(|x| *x == issuing[0]), "one name and key");
        assert!(ca.chain(&issued.leaf_pem, issued.family, 3).is_none());
        // ECDSA keys as PKCS#8, each the key of its certificate.
        for (i, root) in roots.iter().enumerate() {
            let key = ca.root_key_pem(i).unwrap().expose();
            assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{i}");
            assert_eq!(public_of(key), spki(root));
            let key = ca.issuing_key_pem(i).unwrap().expose();
            assert_eq!(public_of(key), spki(ca.issuing_pem(i).unwrap()));
        }
        assert!(ca.root_key_pem(3).is_none());
    }

    #[test]
    fn rsa_ca_keys_are_exported_as_pkcs1_as_pebble_sends_them() {
        let ca = Ca::pebble(PebbleShape::default()).unwrap();
        assert_eq!(ca.chain_count(), 1);
        let issued = leaf(&ca);
        let chain = ders(&ca.chain(&issued.leaf_pem, issued.family, 0).unwrap());
        assert_eq!(chain.len(), 2);
        assert!(verifies(&chain, ca.chain_roots_pem(0).unwrap()));
        let key = ca.root_key_pem(0).unwrap().expose();
        assert!(
            key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{}",
            &key[..40]
        );
        let der = rustls_pemfile::private_key(&mut key.as_bytes())
            .unwrap()
            .unwrap();
        assert!(matches!(der, PrivateKeyDer::Pkcs1(_)));
        assert_eq!(public_of(key), spki(ca.chain_roots_pem(0).unwrap()));
        let key = ca.issuing_key_pem(0).unwrap().expose();
        assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert_eq!(public_of(key), spki(ca.issuing_pem(0).unwrap()));
        // Secrets stay out of debug output.
        assert_eq!(format!("{:?}", ca.root_key_pem(0).unwrap()), "Secret(..)");
    }
}
