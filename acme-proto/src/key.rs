//! Account keys that sign ACME requests, and the JWS signing side.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use serde_json::{Value, json};

use crate::b64;
use crate::jwk::{EcCurve, Jwk};
use crate::jws::{FlattenedJws, SignatureAlgorithm};
use crate::secret::Secret;

/// Why a key could not be made or loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PKCS#8 document does not hold a key of the kind asked for.
    #[error("the private key could not be loaded: {0}")]
    Rejected(String),
    /// The crypto library failed.
    #[error("key operation failed")]
    Crypto,
    /// An RSA size outside 2048..=4096 bits.
    #[error("RSA keys must be 2048, 3072 or 4096 bits")]
    RsaSize,
}

/// An ACME account key pair with the algorithm it signs with.
pub struct AccountKey {
    inner: Inner,
    jwk: Jwk,
}

enum Inner {
    Ecdsa(SignatureAlgorithm, EcdsaKeyPair),
    Rsa(SignatureAlgorithm, RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

fn ecdsa_alg(alg: SignatureAlgorithm) -> Option<(&'static EcdsaSigningAlgorithm, EcCurve)> {
    match alg {
        SignatureAlgorithm::Es256 => {
            Some((&signature::ECDSA_P256_SHA256_FIXED_SIGNING, EcCurve::P256))
        }
        SignatureAlgorithm::Es384 => {
            Some((&signature::ECDSA_P384_SHA384_FIXED_SIGNING, EcCurve::P384))
        }
        SignatureAlgorithm::Es512 => {
            Some((&signature::ECDSA_P521_SHA512_FIXED_SIGNING, EcCurve::P521))
        }
        _ => None,
    }
}

impl AccountKey {
    /// Generates a key for `alg` (RSA keys are 2048 bits; see [`AccountKey::generate_rsa`]).
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self, KeyError> {
        match alg {
            SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => Self::generate_rsa(alg, 2048),
            SignatureAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto)?;
                Ok(Self::from_inner(Inner::Ed25519(pair)))
            }
            ecdsa => {
                let (signing, _) = ecdsa_alg(ecdsa).ok_or(KeyError::Crypto)?;
                let pair = EcdsaKeyPair::generate(signing).map_err(|_| KeyError::Crypto)?;
                Ok(Self::from_inner(Inner::Ecdsa(ecdsa, pair)))
            }
        }
    }

    /// Generates an RSA key of `bits` (2048, 3072 or 4096) signing with RS256 or PS256.
    pub fn generate_rsa(alg: SignatureAlgorithm, bits: u32) -> Result<Self, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(KeyError::RsaSize),
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Crypto)?;
        Ok(Self::from_inner(Inner::Rsa(alg, pair)))
    }

    /// Loads a PKCS#8 (v1 or v2) DER key to sign with `alg`.
    pub fn from_pkcs8(alg: SignatureAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected(e.to_string());
        let inner = match alg {
            SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => {
                Inner::Rsa(alg, RsaKeyPair::from_pkcs8(der).map_err(rejected)?)
            }
            SignatureAlgorithm::EdDsa => {
                Inner::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?)
            }
            ecdsa => {
                let (signing, _) = ecdsa_alg(ecdsa).ok_or(KeyError::Crypto)?;
                Inner::Ecdsa(
                    ecdsa,
                    EcdsaKeyPair::from_pkcs8(signing, der).map_err(rejected)?,
                )
            }
        };
        Ok(Self::from_inner(inner))
    }

    fn from_inner(inner: Inner) -> Self {
        let jwk = match &inner {
            Inner::Ecdsa(alg, pair) => {
                let point = pair.public_key().as_ref();
                let curve = ecdsa_alg(*alg).map(|(_, c)| c).unwrap_or(EcCurve::P256);
                let len = curve.coordinate_len();
                Jwk::Ec {
                    crv: curve,
                    x: point[1..1 + len].to_vec(),
                    y: point[1 + len..].to_vec(),
                }
            }
            Inner::Rsa(_, pair) => {
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                Jwk::Rsa {
                    n: parts.n,
                    e: parts.e,
                }
            }
            Inner::Ed25519(pair) => Jwk::Ed25519 {
                x: pair.public_key().as_ref().to_vec(),
            },
        };
        Self { inner, jwk }
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match &self.inner {
            Inner::Ecdsa(alg, _) | Inner::Rsa(alg, _) => *alg,
            Inner::Ed25519(_) => SignatureAlgorithm::EdDsa,
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key as PKCS#8 DER, wrapped so it cannot be printed by accident.
    pub fn to_pkcs8(&self) -> Result<Secret<Vec<u8>>, KeyError> {
        let der = match &self.inner {
            Inner::Ecdsa(_, pair) => pair
                .to_pkcs8v1()
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec(),
            Inner::Rsa(_, pair) => {
                let doc: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| KeyError::Crypto)?;
                doc.as_ref().to_vec()
            }
            Inner::Ed25519(pair) => pair
                .to_pkcs8v1()
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec(),
        };
        Ok(Secret::new(der))
    }

    /// Signs `message` with this key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ecdsa(_, pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto),
            Inner::Rsa(alg, pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    SignatureAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .map_err(|_| KeyError::Crypto)?;
                Ok(out)
            }
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// Signs an ACME request. `kid` is the account URL; `None` puts the `jwk` in the header
    /// instead (newAccount, revokeCert by certificate key). `payload` of `None` is
    /// POST-as-GET (an empty payload member).
    pub fn sign_request(
        &self,
        kid: Option<&str>,
        nonce: &str,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<FlattenedJws, KeyError> {
        let mut header = json!({ "alg": self.algorithm().name(), "nonce": nonce, "url": url });
        match kid {
            Some(kid) => header["kid"] = Value::from(kid),
            None => header["jwk"] = self.jwk.to_json(),
        }
        self.sign_parts(&header, payload)
    }

    /// Signs an arbitrary protected header and payload; the building block for tests that
    /// need a JWS an honest client would never send.
    pub fn sign_parts(
        &self,
        header: &Value,
        payload: Option<&Value>,
    ) -> Result<FlattenedJws, KeyError> {
        let protected = b64::encode(header.to_string());
        let payload = payload
            .map(|p| b64::encode(p.to_string()))
            .unwrap_or_default();
        let signature = self.sign(format!("{protected}.{payload}").as_bytes())?;
        Ok(FlattenedJws {
            protected,
            payload,
            signature: b64::encode(signature),
        })
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("alg", &self.algorithm())
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::{Jws, JwsError};

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in SignatureAlgorithm::ALL {
            let key = AccountKey::generate(alg).unwrap();
            let jws = key
                .sign_request(
                    None,
                    "nonce",
                    "https://x/newAccount",
                    Some(&json!({"a": 1})),
                )
                .unwrap();
            let parsed = Jws::parse(serde_json::to_string(&jws).unwrap().as_bytes()).unwrap();
            let jwk = Jwk::from_json(parsed.header.jwk.as_ref().unwrap()).unwrap();
            assert_eq!(&jwk, key.jwk(), "{alg}");
            parsed.verify(&jwk).unwrap();

            // Reload from PKCS#8: same public key.
            let again = AccountKey::from_pkcs8(alg, key.to_pkcs8().unwrap().expose()).unwrap();
            assert_eq!(again.jwk(), key.jwk());

            // One flipped payload bit fails.
            let mut bad = jws.clone();
            bad.payload = b64::encode(r#"{"a":2}"#);
            let parsed = Jws::from_flattened(&bad).unwrap();
            assert_eq!(parsed.verify(&jwk), Err(JwsError::BadSignature), "{alg}");
        }
    }

    #[test]
    fn algorithm_must_suit_key() {
        let ec = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let header = json!({"alg": "ES384", "nonce": "n", "url": "u", "jwk": ec.jwk().to_json()});
        let jws = ec.sign_parts(&header, None).unwrap();
        let parsed = Jws::from_flattened(&jws).unwrap();
        assert!(parsed.post_as_get);
        assert!(matches!(
            parsed.verify(ec.jwk()),
            Err(JwsError::Malformed(_))
        ));
        let header = json!({"alg": "HS256", "nonce": "n", "url": "u"});
        let parsed = Jws::from_flattened(&ec.sign_parts(&header, None).unwrap()).unwrap();
        assert_eq!(
            parsed.verify(ec.jwk()),
            Err(JwsError::UnsupportedAlgorithm("HS256".into()))
        );
    }

    #[test]
    fn non_flattened_bodies_are_malformed() {
        for body in [
            &b"not json"[..],
            br#"{"protected":"e30","payload":"","signature":"","header":{}}"#,
            br#"{"payload":"","signatures":[]}"#,
            br#"{"protected":"!!","payload":"","signature":""}"#,
            br#"{"protected":"WzFd","payload":"","signature":""}"#,
        ] {
            assert!(matches!(Jws::parse(body), Err(JwsError::Malformed(_))));
        }
    }
}
