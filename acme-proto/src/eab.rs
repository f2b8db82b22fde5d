//! External Account Binding (RFC 8555 §7.3.4): the inner JWS that binds an account key to a
//! key id and HMAC key the CA handed out.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

use crate::b64;
use crate::jwk::Jwk;
use crate::jws::FlattenedJws;

/// The MAC algorithms an EAB may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// HMAC-SHA-256, what every client sends.
    Hs256,
    /// HMAC-SHA-384.
    Hs384,
    /// HMAC-SHA-512.
    Hs512,
}

impl MacAlgorithm {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }

    /// Parses a JOSE name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Hs256, Self::Hs384, Self::Hs512]
            .into_iter()
            .find(|a| a.name() == name)
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail here.
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(message);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Self::Hs256 => run::<Hmac<Sha256>>(key, message),
            Self::Hs384 => run::<Hmac<Sha384>>(key, message),
            Self::Hs512 => run::<Hmac<Sha512>>(key, message),
        }
    }

    fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> bool {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(message);
                    mac.verify_slice(tag).is_ok() // constant time
                }
                Err(_) => false,
            }
        }
        match self {
            Self::Hs256 => run::<Hmac<Sha256>>(key, message, tag),
            Self::Hs384 => run::<Hmac<Sha384>>(key, message, tag),
            Self::Hs512 => run::<Hmac<Sha512>>(key, message, tag),
        }
    }
}

impl fmt::Display for MacAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an EAB was refused. The server maps each to Sectigo's problem text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EabError {
    /// Not a flattened JWS, or its header is unreadable.
    #[error("the externalAccountBinding is not a valid JWS: {0}")]
    Malformed(String),
    /// `alg` is not HS256/HS384/HS512.
    #[error("the externalAccountBinding uses an unsupported algorithm {0:?}")]
    Algorithm(String),
    /// No `kid` in the inner header.
    #[error("the externalAccountBinding has no key identifier")]
    MissingKid,
    /// A `nonce` in the inner header (RFC 8555 §7.3.4 forbids one).
    #[error("the externalAccountBinding must not contain a nonce")]
    Nonce,
    /// `url` differs from the outer request URL.
    #[error("the externalAccountBinding url does not match the request url")]
    Url,
    /// The payload is not the outer JWS's account key.
    #[error("the externalAccountBinding payload is not the account key")]
    Payload,
    /// The MAC does not verify.
    #[error("the externalAccountBinding MAC does not verify")]
    Mac,
}

/// A parsed EAB inner JWS whose MAC is not yet checked.
#[derive(Clone, Debug)]
pub struct ExternalAccountBinding {
    /// The MAC algorithm.
    pub alg: MacAlgorithm,
    /// The key identifier the CA gave out.
    pub kid: String,
    /// The URL in the inner header.
    pub url: String,
    /// The account key the payload carries.
    pub jwk: Jwk,
    signing_input: Vec<u8>,
    tag: Vec<u8>,
}

impl ExternalAccountBinding {
    /// Parses the `externalAccountBinding` member of a newAccount payload.
    ///
    /// Checks the inner header (alg, kid, no nonce); the MAC, url and payload key are checked
    /// by [`ExternalAccountBinding::verify`] once the server knows the HMAC key.
    pub fn parse(value: &Value) -> Result<Self, EabError> {
        let raw: FlattenedJws = serde_json::from_value(value.clone())
            .map_err(|e| EabError::Malformed(e.to_string()))?;
        let header: Value = b64::decode(&raw.protected)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EabError::Malformed("protected header is not base64url JSON".into()))?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alg = MacAlgorithm::from_name(alg_name)
            .ok_or_else(|| EabError::Algorithm(alg_name.into()))?;
        if header.get("nonce").is_some() {
            return Err(EabError::Nonce);
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or(EabError::MissingKid)?
            .to_owned();
        let url = header
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let payload: Value = b64::decode(&raw.payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(EabError::Payload)?;
        let jwk = Jwk::from_json(&payload).map_err(|_| EabError::Payload)?;
        let tag = b64::decode(&raw.signature)
            .map_err(|_| EabError::Malformed("signature is not base64url".into()))?;
        Ok(Self {
            alg,
            kid,
            url,
            jwk,
            signing_input: format!("{}.{}", raw.protected, raw.payload).into_bytes(),
            tag,
        })
    }

    /// Checks the MAC with `hmac_key`, then that the binding names `request_url` and carries
    /// `account_key` (compared by value).
    pub fn verify(
        &self,
        hmac_key: &[u8],
        request_url: &str,
        account_key: &Jwk,
    ) -> Result<(), EabError> {
        if !self.alg.verify(hmac_key, &self.signing_input, &self.tag) {
            return Err(EabError::Mac);
        }
        if self.url != request_url {
            return Err(EabError::Url);
        }
        if &self.jwk != account_key {
            return Err(EabError::Payload);
        }
        Ok(())
    }
}

/// Builds the EAB inner JWS for a newAccount request (RFC 8555 §7.3.4).
pub fn sign(
    alg: MacAlgorithm,
    kid: &str,
    hmac_key: &[u8],
    new_account_url: &str,
    account_key: &Jwk,
) -> Value {
    let header = json!({ "alg": alg.name(), "kid": kid, "url": new_account_url });
    let protected = b64::encode(header.to_string());
    let payload = b64::encode(account_key.canonical_json());
    let tag = alg.mac(hmac_key, format!("{protected}.{payload}").as_bytes());
    json!({ "protected": protected, "payload": payload, "signature": b64::encode(tag) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::SignatureAlgorithm;
    use crate::key::AccountKey;

    const URL: &str = "https://127.0.0.1/v2/InCommonRSAOV/newAccount";

    #[test]
    fn signs_and_verifies_each_mac_algorithm() {
        let key = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let hmac = [7u8; 64];
        for alg in [
            MacAlgorithm::Hs256,
            MacAlgorithm::Hs384,
            MacAlgorithm::Hs512,
        ] {
            let value = sign(alg, "kid-1", &hmac, URL, key.jwk());
            let eab = ExternalAccountBinding::parse(&value).unwrap();
            assert_eq!(eab.kid, "kid-1");
            assert_eq!(eab.alg, alg);
            eab.verify(&hmac, URL, key.jwk()).unwrap();
            assert_eq!(eab.verify(&[8u8; 64], URL, key.jwk()), Err(EabError::Mac));
            assert_eq!(
                eab.verify(&hmac, "https://other/", key.jwk()),
                Err(EabError::Url)
            );
            let other = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
            assert_eq!(eab.verify(&hmac, URL, other.jwk()), Err(EabError::Payload));
        }
    }

    #[test]
    fn header_rules() {
        let key = AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let payload = b64::encode(key.jwk().canonical_json());
        let with = |header: Value| json!({"protected": b64::encode(header.to_string()), "payload": payload, "signature": "AA"});
        assert_eq!(
            ExternalAccountBinding::parse(&with(json!({"alg":"HS256","url":URL}))).unwrap_err(),
            EabError::MissingKid
        );
        assert_eq!(
            ExternalAccountBinding::parse(&with(
                json!({"alg":"HS256","kid":"k","url":URL,"nonce":"n"})
            ))
            .unwrap_err(),
            EabError::Nonce
        );
        assert_eq!(
            ExternalAccountBinding::parse(&with(json!({"alg":"ES256","kid":"k","url":URL})))
                .unwrap_err(),
            EabError::Algorithm("ES256".into())
        );
        assert!(matches!(
            ExternalAccountBinding::parse(&json!("x")),
            Err(EabError::Malformed(_))
        ));
    }
}
