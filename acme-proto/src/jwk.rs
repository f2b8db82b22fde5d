//! JSON Web Keys (RFC 7517/7518) for account keys, with RFC 7638 thumbprints.
//!
//! Keys are compared by value: two JWKs that differ only in member order, whitespace or extra
//! members (`kid`, `use`, `alg`) are the same key. That is what EAB needs (clients such as
//! dehydrated send the JWK with spaces in its JSON).

use std::fmt;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64;

/// A public key as a JWK, reduced to the members that define the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Jwk {
    /// An elliptic-curve key (`kty: EC`).
    Ec {
        /// `P-256`, `P-384` or `P-521`.
        crv: EcCurve,
        /// The x coordinate, big-endian, exactly the curve's field size.
        x: Vec<u8>,
        /// The y coordinate, big-endian, exactly the curve's field size.
        y: Vec<u8>,
    },
    /// An RSA key (`kty: RSA`).
    Rsa {
        /// The modulus, big-endian, without leading zeros.
        n: Vec<u8>,
        /// The public exponent, big-endian, without leading zeros.
        e: Vec<u8>,
    },
    /// An Edwards-curve key (`kty: OKP`, `crv: Ed25519`).
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
}

/// The NIST curves JOSE names for ECDSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
    /// NIST P-521 (ES512).
    P521,
}

impl EcCurve {
    /// The JOSE curve name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Size in bytes of one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// Why a JWK could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The JWK is not a JSON object with the members its `kty` needs.
    #[error("JWK is malformed: {0}")]
    Malformed(&'static str),
    /// A key type or curve no ACME server here accepts.
    #[error("unsupported JWK key type or curve: {0}")]
    Unsupported(String),
    /// The key is too small or otherwise weak.
    #[error("JWK key is not acceptable: {0}")]
    Weak(&'static str),
}

impl Jwk {
    /// Parses a JWK from its JSON value, checking member sizes.
    pub fn from_json(value: &Value) -> Result<Self, JwkError> {
        let obj = value
            .as_object()
            .ok_or(JwkError::Malformed("not a JSON object"))?;
        let member = |name: &'static str| -> Result<Vec<u8>, JwkError> {
            let text = obj
                .get(name)
                .and_then(Value::as_str)
                .ok_or(JwkError::Malformed(
                    "a required member is missing or not a string",
                ))?;
            b64::decode(text).map_err(|_| JwkError::Malformed("a member is not base64url"))
        };
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(JwkError::Malformed("\"kty\" is missing"))?;
        match kty {
            "EC" => {
                let crv = match obj.get("crv").and_then(Value::as_str) {
                    Some("P-256") => EcCurve::P256,
                    Some("P-384") => EcCurve::P384,
                    Some("P-521") => EcCurve::P521,
                    Some(other) => return Err(JwkError::Unsupported(format!("EC curve {other}"))),
                    None => return Err(JwkError::Malformed("\"crv\" is missing")),
                };
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != crv.coordinate_len() || y.len() != crv.coordinate_len() {
                    return Err(JwkError::Malformed(
                        "EC coordinates do not have the curve's size",
                    ));
                }
                Ok(Self::Ec { crv, x, y })
            }
            "RSA" => {
                let (n, e) = (member("n")?, member("e")?);
                if n.first() == Some(&0) || e.first() == Some(&0) || e.is_empty() {
                    return Err(JwkError::Malformed("RSA members have leading zero bytes"));
                }
                if n.len() < 256 {
                    return Err(JwkError::Weak("RSA modulus shorter than 2048 bits"));
                }
                if n.len() > 1024 {
                    return Err(JwkError::Weak("RSA modulus longer than 8192 bits"));
                }
                Ok(Self::Rsa { n, e })
            }
            "OKP" => match obj.get("crv").and_then(Value::as_str) {
                Some("Ed25519") => {
                    let x = member("x")?;
                    if x.len() != 32 {
                        return Err(JwkError::Malformed("Ed25519 key is not 32 bytes"));
                    }
                    Ok(Self::Ed25519 { x })
                }
                Some(other) => Err(JwkError::Unsupported(format!("OKP curve {other}"))),
                None => Err(JwkError::Malformed("\"crv\" is missing")),
            },
            other => Err(JwkError::Unsupported(format!("kty {other}"))),
        }
    }

    /// The JWK as JSON, with only the required members, in RFC 7638's lexical order.
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.canonical_json()).unwrap_or(Value::Null)
    }

    /// The RFC 7638 canonical JSON: required members only, sorted, no whitespace.
    pub fn canonical_json(&self) -> String {
        match self {
            Self::Ec { crv, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                crv.name(),
                b64::encode(x),
                b64::encode(y)
            ),
            Self::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(e),
                b64::encode(n)
            ),
            Self::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
        }
    }

    /// The RFC 7638 SHA-256 thumbprint.
    pub fn thumbprint(&self) -> Thumbprint {
        let digest = digest::digest(&digest::SHA256, self.canonical_json().as_bytes());
        Thumbprint(b64::encode(digest.as_ref()))
    }

    /// The key in SubjectPublicKeyInfo-free raw form the verifier needs: the uncompressed
    /// point for EC, the 32 bytes for Ed25519. RSA keys have no such form.
    pub(crate) fn raw_public(&self) -> Option<Vec<u8>> {
        match self {
            Self::Ec { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some(point)
            }
            Self::Ed25519 { x } => Some(x.clone()),
            Self::Rsa { .. } => None,
        }
    }

    /// A short description for people: `EC P-256`, `RSA 2048`, `Ed25519`.
    pub fn describe(&self) -> String {
        match self {
            Self::Ec { crv, .. } => format!("EC {}", crv.name()),
            Self::Rsa { n, .. } => format!("RSA {}", n.len() * 8),
            Self::Ed25519 { .. } => "Ed25519".into(),
        }
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jwk({}, {})", self.describe(), self.thumbprint())
    }
}

impl Serialize for Jwk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// An RFC 7638 JWK SHA-256 thumbprint, base64url.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The base64url text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key authorization (RFC 8555 §8.1): `token || '.' || thumbprint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAuthorization(String);

impl KeyAuthorization {
    /// Builds the key authorization for `token` and the account key's thumbprint.
    pub fn new(token: &str, thumbprint: &Thumbprint) -> Self {
        Self(format!("{token}.{thumbprint}"))
    }

    /// The text served for http-01.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base64url SHA-256 digest published as the dns-01 TXT record (RFC 8555 §8.4).
    pub fn dns_value(&self) -> String {
        b64::encode(digest::digest(&digest::SHA256, self.0.as_bytes()).as_ref())
    }

    /// The SHA-256 digest carried in the tls-alpn-01 acmeIdentifier extension (RFC 8737 §3).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, self.0.as_bytes()).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // rfc7638#section-3.1
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let jwk = Jwk::from_json(&jwk).unwrap();
        assert_eq!(
            jwk.thumbprint().as_str(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn compared_by_value_not_bytes() {
        let a: Value = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "y" : "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "crv": "P-256", "kty": "EC", "use": "sig" }"#,
        )
        .unwrap();
        assert_eq!(Jwk::from_json(&a).unwrap(), Jwk::from_json(&b).unwrap());
    }

    #[test]
    fn bad_keys_are_refused() {
        let short = serde_json::json!({"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"});
        assert!(matches!(
            Jwk::from_json(&short),
            Err(JwkError::Malformed(_))
        ));
        let secp = serde_json::json!({"kty":"EC","crv":"secp256k1","x":"AAAA","y":"AAAA"});
        assert!(matches!(
            Jwk::from_json(&secp),
            Err(JwkError::Unsupported(_))
        ));
        let small_rsa = serde_json::json!({"kty":"RSA","n": b64::encode([0xc5; 128]),"e":"AQAB"});
        assert!(matches!(Jwk::from_json(&small_rsa), Err(JwkError::Weak(_))));
        assert!(Jwk::from_json(&serde_json::json!("text")).is_err());
    }

    #[test]
    fn key_authorization_dns_value() {
        // rfc8555#section-8.4 example values are not self-consistent; check the construction.
        let tp = Thumbprint("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0".into());
        let ka = KeyAuthorization::new("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &tp);
        assert_eq!(
            ka.as_str(),
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
        );
        assert_eq!(ka.dns_value().len(), 43);
    }
}
