//! CSR checks at finalize (RFC 8555 §7.4): the signature, the names, the key.

use std::collections::BTreeSet;

use acme_proto::Jwk;
use acme_proto::jwk::EcCurve;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{self, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The certificate key kinds the CA issues for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with this many modulus bits (2048 to 4096).
    Rsa(usize),
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
}

impl KeyKind {
    /// Whether the RSA or the ECC issuing CA signs for this key (Sectigo §7).
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa(_))
    }
}

/// A CSR that parsed and whose signature verified.
#[derive(Clone, Debug)]
pub struct CheckedCsr {
    /// DER of the SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// The key kind.
    pub key: KeyKind,
    /// The key as a JWK, to compare with the account key.
    pub jwk: Option<Jwk>,
    /// Lower-cased dNSNames and canonical iPAddresses of the SAN extension, plus the CN.
    pub names: BTreeSet<String>,
}

/// Why a CSR was refused; each becomes a `badCSR` problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Not DER PKCS#10.
    #[error("The CSR could not be parsed: {0}")]
    Unparseable(String),
    /// Signature algorithm not supported or signature invalid.
    #[error("The CSR's signature is invalid")]
    BadSignature,
    /// Key type, size or curve not issued for (Sectigo's text, §7).
    #[error("The CSR's public key uses an unsupported key size or curve")]
    UnsupportedKey,
}

/// Parses and verifies a DER CSR.
pub fn check(der: &[u8]) -> Result<CheckedCsr, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CsrError::Unparseable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Unparseable("trailing bytes after the CSR".into()));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let (key, jwk) = key_of(spki)?;
    verify(&csr, key)?;

    let mut names = BTreeSet::new();
    for cn in info.subject.iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            names.insert(cn.to_ascii_lowercase());
        }
    }
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => {
                            names.insert(dns.to_ascii_lowercase());
                        }
                        // RFC 8738 §3: IP identifiers as iPAddress SANs, in canonical text.
                        GeneralName::IPAddress(raw) => {
                            let ip = match raw.len() {
                                4 => <[u8; 4]>::try_from(*raw).ok().map(std::net::IpAddr::from),
                                16 => <[u8; 16]>::try_from(*raw).ok().map(std::net::IpAddr::from),
                                _ => None,
                            };
                            if let Some(ip) = ip {
                                names.insert(ip.to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(CheckedCsr {
        spki_der: spki.raw.to_vec(),
        key,
        jwk,
        names,
    })
}

/// The key kind and JWK of a SubjectPublicKeyInfo.
pub fn key_of(spki: &SubjectPublicKeyInfo<'_>) -> Result<(KeyKind, Option<Jwk>), CsrError> {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let n = strip_zeros(rsa.modulus);
            // An all-zero modulus has no bits (found by the csr fuzz target).
            let bits = n
                .first()
                .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
            if !(2048..=4096).contains(&bits) {
                return Err(CsrError::UnsupportedKey);
            }
            let jwk = Jwk::Rsa {
                n: n.to_vec(),
                e: strip_zeros(rsa.exponent).to_vec(),
            };
            Ok((KeyKind::Rsa(bits), Some(jwk)))
        }
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let (kind, crv) = match curve {
                Some(oid) if oid == oid_registry::OID_EC_P256 => (KeyKind::P256, EcCurve::P256),
                Some(oid) if oid == oid_registry::OID_NIST_EC_P384 => {
                    (KeyKind::P384, EcCurve::P384)
                }
                _ => return Err(CsrError::UnsupportedKey),
            };
            let data = point.data();
            let len = crv.coordinate_len();
            if data.len() != 1 + 2 * len || data[0] != 4 {
                return Err(CsrError::UnsupportedKey);
            }
            let jwk = Jwk::Ec {
                crv,
                x: data[1..1 + len].to_vec(),
                y: data[1 + len..].to_vec(),
            };
            Ok((kind, Some(jwk)))
        }
        _ => Err(CsrError::UnsupportedKey),
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn verify(csr: &X509CertificationRequest<'_>, key: KeyKind) -> Result<(), CsrError> {
    let alg = &csr.signature_algorithm.algorithm;
    let oid = |o: &Oid<'_>| alg == o;
    let verifier: &'static dyn VerificationAlgorithm = match key {
        KeyKind::Rsa(_) if oid(&oid_registry::OID_PKCS1_SHA256WITHRSA) => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        KeyKind::Rsa(_) if oid(&oid_registry::OID_PKCS1_SHA384WITHRSA) => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        KeyKind::Rsa(_) if oid(&oid_registry::OID_PKCS1_SHA512WITHRSA) => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        KeyKind::P256 if oid(&oid_registry::OID_SIG_ECDSA_WITH_SHA256) => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        KeyKind::P256 if oid(&oid_registry::OID_SIG_ECDSA_WITH_SHA384) => {
            &signature::ECDSA_P256_SHA384_ASN1
        }
        KeyKind::P384 if oid(&oid_registry::OID_SIG_ECDSA_WITH_SHA384) => {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        KeyKind::P384 if oid(&oid_registry::OID_SIG_ECDSA_WITH_SHA256) => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        _ => return Err(CsrError::BadSignature),
    };
    let public = &csr
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data;
    UnparsedPublicKey::new(verifier, public.as_ref())
        .verify(
            csr.certification_request_info.raw,
            &csr.signature_value.data,
        )
        .map_err(|_| CsrError::BadSignature)
}
