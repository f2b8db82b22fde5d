//! Flattened JWS (RFC 7515 §7.2.2) as ACME uses it (RFC 8555 §6.2): parsing, verification
//! against a [`Jwk`], and signing with an [`AccountKey`](crate::key::AccountKey).

use std::fmt;

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64;
use crate::jwk::{EcCurve, Jwk};

/// The media type of every ACME POST body (RFC 8555 §6.2).
pub const JOSE_CONTENT_TYPE: &str = "application/jose+json";

/// The asymmetric algorithms accepted for account keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// Ed25519.
    EdDsa,
}

impl SignatureAlgorithm {
    /// Every algorithm, in the order servers advertise them.
    pub const ALL: [Self; 6] = [
        Self::Es256,
        Self::Es384,
        Self::Es512,
        Self::Rs256,
        Self::Ps256,
        Self::EdDsa,
    ];

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a JWS was refused. Each variant maps to one ACME problem type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not a flattened JWS, or a member is not what RFC 7515 says it must be (`malformed`).
    #[error("{0}")]
    Malformed(String),
    /// An algorithm outside [`SignatureAlgorithm::ALL`] (`badSignatureAlgorithm`).
    #[error("the JWS algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify (`malformed`).
    #[error("JWS signature verification failed")]
    BadSignature,
}

/// The flattened JSON serialization, members kept as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenedJws {
    /// base64url of the protected header JSON.
    pub protected: String,
    /// base64url of the payload; empty for POST-as-GET.
    pub payload: String,
    /// base64url of the signature.
    pub signature: String,
}

/// The protected header of an ACME request (RFC 8555 §6.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedHeader {
    /// The signature algorithm as sent.
    pub alg: String,
    /// The anti-replay nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The URL the request was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The account key, on newAccount and revokeCert-by-certificate-key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Value>,
    /// The account URL, on every other request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// A parsed (not yet verified) ACME JWS.
#[derive(Clone, Debug)]
pub struct Jws {
    /// The decoded protected header.
    pub header: ProtectedHeader,
    /// The protected header as JSON, for recording.
    pub header_json: Value,
    /// The decoded payload bytes; empty for POST-as-GET.
    pub payload: Vec<u8>,
    /// Whether the payload member was the empty string (POST-as-GET, RFC 8555 §6.3).
    pub post_as_get: bool,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Parses a request body as a flattened JWS, as RFC 8555 §6.2 requires: no unprotected
    /// header, no general serialization, a JSON-object protected header.
    pub fn parse(body: &[u8]) -> Result<Self, JwsError> {
        let raw: FlattenedJws = serde_json::from_slice(body).map_err(|e| {
            JwsError::Malformed(format!(
                "Request body is not a flattened JWS (protected, payload, signature only): {e}"
            ))
        })?;
        Self::from_flattened(&raw)
    }

    /// Decodes the members of a flattened JWS.
    pub fn from_flattened(raw: &FlattenedJws) -> Result<Self, JwsError> {
        let header_bytes = b64::decode(&raw.protected).map_err(|_| {
            JwsError::Malformed("The JWS protected header is not valid base64url".into())
        })?;
        let header_json: Value = serde_json::from_slice(&header_bytes).map_err(|_| {
            JwsError::Malformed("The JWS protected header is not a JSON object".into())
        })?;
        if !header_json.is_object() {
            return Err(JwsError::Malformed(
                "The JWS protected header is not a JSON object".into(),
            ));
        }
        let header: ProtectedHeader = serde_json::from_value(header_json.clone()).map_err(|e| {
            JwsError::Malformed(format!("The JWS protected header is invalid: {e}"))
        })?;
        let payload = b64::decode(&raw.payload)
            .map_err(|_| JwsError::Malformed("The JWS payload is not valid base64url".into()))?;
        let signature = b64::decode(&raw.signature)
            .map_err(|_| JwsError::Malformed("The JWS signature is not valid base64url".into()))?;
        let mut signing_input = Vec::with_capacity(raw.protected.len() + raw.payload.len() + 1);
        signing_input.extend_from_slice(raw.protected.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(raw.payload.as_bytes());
        Ok(Self {
            header,
            header_json,
            payload,
            post_as_get: raw.payload.is_empty(),
            signing_input,
            signature,
        })
    }

    /// The algorithm, if it is one ACME account keys may use.
    pub fn algorithm(&self) -> Result<SignatureAlgorithm, JwsError> {
        SignatureAlgorithm::from_name(&self.header.alg)
            .ok_or_else(|| JwsError::UnsupportedAlgorithm(self.header.alg.clone()))
    }

    /// Verifies the signature with `key`; the algorithm must suit the key.
    pub fn verify(&self, key: &Jwk) -> Result<(), JwsError> {
        verify_signature(self.algorithm()?, key, &self.signing_input, &self.signature)
    }
}

/// Verifies `signature` over `message` with `key` under `alg`.
pub fn verify_signature(
    alg: SignatureAlgorithm,
    key: &Jwk,
    message: &[u8],
    sig: &[u8],
) -> Result<(), JwsError> {
    use SignatureAlgorithm as A;
    let mismatch = || {
        JwsError::Malformed(format!(
            "The JWS algorithm {alg} does not suit the {} key",
            key.describe()
        ))
    };
    let result = match (alg, key) {
        (A::Rs256 | A::Ps256, Jwk::Rsa { n, e }) => {
            let params = if alg == A::Rs256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            PublicKeyComponents { n, e }.verify(params, message, sig)
        }
        (A::Es256 | A::Es384 | A::Es512, Jwk::Ec { crv, .. }) => {
            let verifier: &'static dyn signature::VerificationAlgorithm = match (alg, crv) {
                (A::Es256, EcCurve::P256) => &signature::ECDSA_P256_SHA256_FIXED,
                (A::Es384, EcCurve::P384) => &signature::ECDSA_P384_SHA384_FIXED,
                (A::Es512, EcCurve::P521) => &signature::ECDSA_P521_SHA512_FIXED,
                _ => return Err(mismatch()),
            };
            let point = key.raw_public().ok_or_else(mismatch)?;
            UnparsedPublicKey::new(verifier, point).verify(message, sig)
        }
        (A::EdDsa, Jwk::Ed25519 { x }) => {
            UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig)
        }
        _ => return Err(mismatch()),
    };
    result.map_err(|_| JwsError::BadSignature)
}
