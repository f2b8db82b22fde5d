//! Typed RFC 8555 resources and request payloads.
//!
//! Field names follow the RFC exactly; optional fields are skipped when absent so that the
//! mock server controls every byte it sends. Each type has a test that parses the RFC's own
//! example verbatim.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::problem::Problem;

/// The directory object (RFC 8555 §7.1.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// URL to fetch fresh nonces from.
    pub new_nonce: String,
    /// URL to create accounts at.
    pub new_account: String,
    /// URL to create orders at.
    pub new_order: String,
    /// Pre-authorization URL; absent at Sectigo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_authz: Option<String>,
    /// URL to revoke certificates at.
    pub revoke_cert: String,
    /// URL for account key rollover.
    pub key_change: String,
    /// ACME Renewal Information base URL (RFC 9773).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<String>,
    /// Server metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<DirectoryMeta>,
}

/// Directory metadata (RFC 8555 §7.1.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    /// The current terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service: Option<String>,
    /// The CA's website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Domain names the CA recognises as itself in CAA records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caa_identities: Vec<String>,
    /// Whether newAccount requires external account binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_required: Option<bool>,
    /// Certificate profiles a newOrder may name, each with its description
    /// (draft-ietf-acme-profiles §3).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub profiles: std::collections::BTreeMap<String, String>,
    /// Members this crate does not model (a CA's own additions), as they came:
    /// a client must ignore what it does not know (RFC 8555 §7.1.1).
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Status of an account, order, authorization or challenge (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)] // the RFC 8555 §7.1.6 status of the same name
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Deactivated => "deactivated",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// Defines a string-valued enum with known values and an `Other` for the rest: the wire
/// carries text, the code matches on variants, and an unknown value survives a round trip.
macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        ///
        /// Equality, hashing and order go by the text, so `Other` holding a known value
        /// equals the variant.
        #[derive(Clone, Debug)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this crate has no name for, kept as sent.
            Other(String),
        }

        impl $name {
            /// The text on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(text) => text,
                }
            }

            /// The variant for `text` (`Other` when unknown).
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state);
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self::parse(text)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok(Self::parse(&text))
            }
        }
    };
}

open_enum! {
    /// An identifier type (RFC 8555 §9.7.7).
    IdentifierType {
        /// A DNS name.
        Dns = "dns",
        /// An IP address (RFC 8738).
        Ip = "ip",
    }
}

open_enum! {
    /// A challenge type (RFC 8555 §9.7.8), or a CA's own such as Sectigo's
    /// `sectigo-email-01` on pre-validated authorizations.
    ChallengeType {
        /// RFC 8555 §8.3.
        Http01 = "http-01",
        /// RFC 8555 §8.4.
        Dns01 = "dns-01",
        /// RFC 8737.
        TlsAlpn01 = "tls-alpn-01",
        /// draft-ietf-acme-dns-account-label: dns-01 under a label derived from the
        /// account URL.
        DnsAccount01 = "dns-account-01",
        /// draft-ietf-acme-dns-persist: a standing TXT record at
        /// `_validation-persist.NAME` naming the CA and the account; no token.
        DnsPersist01 = "dns-persist-01",
    }
}

/// An identifier (RFC 8555 §7.1.3, §9.7.7).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// The name or address.
    pub value: String,
}

impl Identifier {
    /// A `dns` identifier.
    pub fn dns(name: impl Into<String>) -> Self {
        Self {
            kind: IdentifierType::Dns,
            value: name.into(),
        }
    }
}

/// An account object (RFC 8555 §7.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `valid`, `deactivated` or `revoked`.
    pub status: Status,
    /// Contact URLs (`mailto:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// Whether the client agreed to the terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
    /// The external account binding the account was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<Value>,
    /// URL of the account's order list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<String>,
}

/// The newAccount request payload (RFC 8555 §7.3), also used for account updates (§7.3.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    /// Contact URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// Agreement to the terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
    /// Look up an existing account instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_return_existing: Option<bool>,
    /// The EAB inner JWS (RFC 8555 §7.3.4), kept as JSON so it can be checked byte-exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<Value>,
    /// `deactivated` in an account deactivation request (§7.3.6). An empty string counts as
    /// absent: acmez (Caddy's ACME library) sent `"status":""` in every newAccount until
    /// v3.1.5 (its commit d34f7bb, "Some strict ACME CAs reject requests that include an empty
    /// status field"), and Sectigo's ZeroSSL, Caddy's default CA, registered those accounts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_status_is_none"
    )]
    pub status: Option<Status>,
}

fn empty_status_is_none<'de, D>(deserializer: D) -> Result<Option<Status>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: Option<Value> = Option::deserialize(deserializer)?;
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => Status::deserialize(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// An order object (RFC 8555 §7.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order's status.
    pub status: Status,
    /// When the order expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The identifiers the order is for.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Requested notAfter (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Why the order is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// Authorization URLs.
    pub authorizations: Vec<String>,
    /// URL to finalize the order at.
    pub finalize: String,
    /// URL of the issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The certificate profile the order was made under (draft-ietf-acme-profiles §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The ARI certificate identifier this order replaces (RFC 9773 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// The newOrder request payload (RFC 8555 §7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// The identifiers wanted.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Requested notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// The certificate profile wanted, one of the directory's `meta.profiles`
    /// (draft-ietf-acme-profiles §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The ARI identifier of the certificate this order replaces (RFC 9773 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// An authorization object (RFC 8555 §7.1.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The identifier authorized.
    pub identifier: Identifier,
    /// The authorization's status.
    pub status: Status,
    /// When it expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The challenges offered.
    pub challenges: Vec<Challenge>,
    /// Whether it is for a wildcard name (the identifier then omits `*.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<bool>,
}

/// A challenge object (RFC 8555 §7.1.5, §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// `http-01`, `dns-01`, `tls-alpn-01`, or a CA's own type such as `sectigo-email-01`.
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    /// URL to respond at.
    pub url: String,
    /// The challenge's status.
    pub status: Status,
    /// When the server validated it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
    /// Why validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// The challenge token; Sectigo's pre-validated challenges and dns-persist-01 have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// dns-persist-01: the account URL the TXT record must name
    /// (draft-ietf-acme-dns-persist §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounturi: Option<String>,
    /// dns-persist-01: the issuer domain names the TXT record may name (the directory's
    /// `caaIdentities`).
    #[serde(
        default,
        rename = "issuer-domain-names",
        skip_serializing_if = "Option::is_none"
    )]
    pub issuer_domain_names: Option<Vec<String>>,
}

/// The finalize request payload (RFC 8555 §7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finalize {
    /// The DER CSR, base64url.
    pub csr: String,
}

/// The revokeCert request payload (RFC 8555 §7.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The DER certificate, base64url.
    pub certificate: String,
    /// The CRL reason code (RFC 5280 §5.3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8555_directory_example() {
        // rfc8555#section-7.1.1
        let text = r#"{
     "newNonce": "https://example.com/acme/new-nonce",
     "newAccount": "https://example.com/acme/new-account",
     "newOrder": "https://example.com/acme/new-order",
     "newAuthz": "https://example.com/acme/new-authz",
     "revokeCert": "https://example.com/acme/revoke-cert",
     "keyChange": "https://example.com/acme/key-change",
     "meta": {
       "termsOfService": "https://example.com/acme/terms/2017-5-30",
       "website": "https://www.example.com/",
       "caaIdentities": ["example.com"],
       "externalAccountRequired": false
     }
   }"#;
        let d: Directory = serde_json::from_str(text).unwrap();
        assert_eq!(
            d.new_authz.as_deref(),
            Some("https://example.com/acme/new-authz")
        );
        let meta = d.meta.unwrap();
        assert_eq!(meta.caa_identities, ["example.com"]);
        assert_eq!(meta.external_account_required, Some(false));
    }

    #[test]
    fn rfc8555_account_example() {
        // rfc8555#section-7.1.2
        let text = r#"{
     "status": "valid",
     "contact": [
       "mailto:cert-admin@example.org",
       "mailto:admin@example.org"
     ],
     "termsOfServiceAgreed": true,
     "orders": "https://example.com/acme/orders/rzGoeA"
   }"#;
        let a: Account = serde_json::from_str(text).unwrap();
        assert_eq!(a.status, Status::Valid);
        assert_eq!(a.contact.unwrap().len(), 2);
    }

    #[test]
    fn rfc8555_order_example() {
        // rfc8555#section-7.1.3
        let text = r#"{
     "status": "valid",
     "expires": "2016-01-20T14:09:07.99Z",

     "identifiers": [
       { "type": "dns", "value": "www.example.org" },
       { "type": "dns", "value": "example.org" }
     ],

     "notBefore": "2016-01-01T00:00:00Z",
     "notAfter": "2016-01-08T00:00:00Z",

     "authorizations": [
       "https://example.com/acme/authz/PAniVnsZcis",
       "https://example.com/acme/authz/r4HqLzrSrpI"
     ],

     "finalize": "https://example.com/acme/order/TOlocE8rfgo/finalize",

     "certificate": "https://example.com/acme/cert/mAt3xBGaobw"
   }"#;
        let o: Order = serde_json::from_str(text).unwrap();
        assert_eq!(o.identifiers[0], Identifier::dns("www.example.org"));
        assert_eq!(o.authorizations.len(), 2);
        assert!(o.certificate.is_some());
    }

    #[test]
    fn rfc8555_authorization_example() {
        // rfc8555#section-7.1.4
        let text = r#"{
     "status": "valid",
     "expires": "2015-03-01T14:09:07.99Z",

     "identifier": {
       "type": "dns",
       "value": "www.example.org"
     },

     "challenges": [
       {
         "url": "https://example.com/acme/chall/prV_B7yEyA4",
         "type": "http-01",
         "status": "valid",
         "token": "DGyRejmCefe7v4NfDGDKfA",
         "validated": "2014-12-01T12:05:58.16Z"
       }
     ],

     "wildcard": false
   }"#;
        let a: Authorization = serde_json::from_str(text).unwrap();
        assert_eq!(a.challenges[0].kind, "http-01");
        assert_eq!(a.challenges[0].status, Status::Valid);
        assert_eq!(a.wildcard, Some(false));
    }

    #[test]
    fn rfc8555_new_account_and_new_order_payloads() {
        // rfc8555#section-7.3
        let text = r#"{
       "termsOfServiceAgreed": true,
       "contact": [
         "mailto:cert-admin@example.org",
         "mailto:admin@example.org"
       ]
     }"#;
        let a: NewAccount = serde_json::from_str(text).unwrap();
        assert_eq!(a.terms_of_service_agreed, Some(true));
        // acmez before v3.1.5 (Caddy 2.6) sends an empty status and orders: taken as absent.
        let a: NewAccount =
            serde_json::from_str(r#"{"contact":[],"status":"","orders":""}"#).unwrap();
        assert_eq!(a.status, None);
        let a: NewAccount = serde_json::from_str(r#"{"status":"deactivated"}"#).unwrap();
        assert_eq!(a.status, Some(Status::Deactivated));
        assert!(serde_json::from_str::<NewAccount>(r#"{"status":"sleepy"}"#).is_err());
        // rfc8555#section-7.4
        let text = r#"{
       "identifiers": [
         { "type": "dns", "value": "www.example.org" },
         { "type": "dns", "value": "example.org" }
       ],
       "notBefore": "2016-01-01T00:04:00+04:00",
       "notAfter": "2016-01-08T00:04:00+04:00"
     }"#;
        let o: NewOrder = serde_json::from_str(text).unwrap();
        assert_eq!(o.identifiers.len(), 2);
        assert_eq!(o.not_before.as_deref(), Some("2016-01-01T00:04:00+04:00"));
    }

    #[test]
    fn rfc8555_revocation_payload() {
        // rfc8555#section-7.6
        let text = r#"{
       "certificate": "MIIEDTCCAvegAwIBAgIRAP8",
       "reason": 4
     }"#;
        let r: Revocation = serde_json::from_str(text).unwrap();
        assert_eq!(r.reason, Some(4));
    }
}

#[cfg(test)]
mod open_enum_tests {
    use super::*;

    #[test]
    fn known_and_unknown_types_round_trip() {
        let c: Challenge =
            serde_json::from_str(r#"{"type": "sectigo-email-01", "url": "u", "status": "valid"}"#)
                .expect("a challenge");
        assert_eq!(c.kind, ChallengeType::Other("sectigo-email-01".into()));
        assert_eq!(
            serde_json::to_value(&c).expect("serialises")["type"],
            "sectigo-email-01"
        );
        assert_eq!(ChallengeType::parse("dns-01"), ChallengeType::Dns01);
        assert_eq!(ChallengeType::TlsAlpn01.to_string(), "tls-alpn-01");
        assert!(ChallengeType::Http01 == "http-01");
        let id: Identifier =
            serde_json::from_str(r#"{"type": "ip", "value": "192.0.2.1"}"#).expect("an id");
        assert_eq!(id.kind, IdentifierType::Ip);
        assert_eq!(
            IdentifierType::parse("email"),
            IdentifierType::Other("email".into())
        );
        // Built by hand, a known value still equals its variant.
        assert_eq!(ChallengeType::Other("dns-01".into()), ChallengeType::Dns01);
    }
}
