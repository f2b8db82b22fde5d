//! Checking the certificate a client left behind, independently of the mock: webpki builds
//! the path to the mock's roots, x509-parser reads the names and the key.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::scenario::KeyKind;

/// What a verified certificate holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The file it was read from.
    pub path: PathBuf,
    /// Serial, lower-case hex without leading zeros.
    pub serial: String,
    /// DNS names of the SAN extension.
    pub names: Vec<String>,
    /// The issuer's common name of the last certificate in the file: the chain's top issuer
    /// (what `--preferred-chain` options match).
    pub top_issuer: String,
}

/// Reads every certificate of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut text.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The serial of a DER certificate, lower-case hex without leading zeros.
pub fn serial_of(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(normalise_serial(&cert.raw_serial_as_string()))
}

/// `0a:1b:..` or `0A1B..` to `a1b..`.
pub fn normalise_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// Checks `path` (leaf first, then its chain) against `roots` (PEM): the path verifies for
/// server auth now, the SAN names are exactly `names`, and the key is of kind `key`.
pub fn check_certificate(
    path: &Path,
    roots: &Path,
    names: &[&str],
    key: KeyKind,
) -> Result<CertInfo, String> {
    let certs = read_pem_certs(path)?;
    let roots = read_pem_certs(roots)?;
    let anchors = roots
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the mock's roots do not parse: {e:?}"))?;
    let leaf = &certs[0];
    let intermediates = &certs[1..];
    if intermediates.is_empty() {
        return Err(format!(
            "{} holds the leaf but no chain: a server would send an incomplete chain",
            path.display()
        ));
    }
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the leaf does not parse: {e:?}"))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("the chain does not verify to the mock's roots: {e:?}"))?;

    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("the leaf does not parse: {e}"))?;
    let mut got: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    want.sort();
    if got != want {
        return Err(format!(
            "the certificate names {got:?}, the client asked for {want:?}"
        ));
    }
    let alg = cert.public_key().algorithm.algorithm.to_id_string();
    let want_alg = match key {
        KeyKind::Rsa => "1.2.840.113549.1.1.1",
        KeyKind::Ecdsa => "1.2.840.10045.2.1",
    };
    if alg != want_alg {
        return Err(format!(
            "the certificate key is {alg}, not the {key:?} key asked for"
        ));
    }
    let top_issuer = certs
        .last()
        .and_then(|c| X509Certificate::from_der(c.as_ref()).ok())
        .and_then(|(_, c)| {
            c.issuer()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        })
        .unwrap_or_default();
    Ok(CertInfo {
        path: path.to_owned(),
        serial: normalise_serial(&cert.raw_serial_as_string()),
        names: got,
        top_issuer,
    })
}
