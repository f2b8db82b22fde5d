//! Profiles: the mock's personality. Every quirk is a named switch, documented in the built-in
//! TOML files with the evidence it reproduces (docs/evidence.md, whose §N the comments cite).

use std::path::Path;

use acme_proto::ChallengeType;

use serde::{Deserialize, Serialize};

/// A profile as loaded from TOML. Unknown fields are an error that names the field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name (`sectigo-incommon-rsa-ov`).
    pub name: String,
    /// One line for people.
    #[serde(default)]
    pub description: String,
    /// Path of the directory; the base of every other URL of this profile (`/v2/InCommonRSAOV`).
    pub directory_path: String,
    /// Resource URLs carry a random segment chosen at start, so that a client which builds
    /// URLs instead of taking them from the directory and Location headers fails (404).
    #[serde(default)]
    pub randomize_paths: bool,
    /// The directory offers ACME Renewal Information (RFC 9773) at `renewalInfo`.
    #[serde(default)]
    pub renewal_info: bool,
    /// Directory metadata.
    #[serde(default)]
    pub meta: MetaProfile,
    /// Account switches.
    #[serde(default)]
    pub account: AccountProfile,
    /// Order switches.
    #[serde(default)]
    pub order: OrderProfile,
    /// Nonce switches.
    #[serde(default)]
    pub nonce: NonceProfile,
    /// Rate limiting.
    #[serde(default)]
    pub rate_limit: RateLimitProfile,
    /// A fault plan every request to this profile is subject to.
    #[serde(default)]
    pub faults: Option<crate::faults::FaultPlan>,
    /// Refusals a strict server makes (Pebble's: always, or under `-strict`).
    #[serde(default)]
    pub strict: StrictProfile,
}

/// Requests a strict server refuses as `malformed` (Pebble's wfe/wfe.go checks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictProfile {
    /// Any request to the profile's ACME endpoints (directory, newNonce, renewalInfo, every
    /// POST) without a User-Agent header (RFC 8555 §6.1: clients MUST send one; Pebble 2.10
    /// refuses every request without one, Pebble 2.4 none).
    #[serde(default)]
    pub require_user_agent: bool,
    /// A challenge response whose payload is not exactly the two bytes `{}` (RFC 8555
    /// §7.5.1; Pebble's `-strict`).
    #[serde(default)]
    pub challenge_payload_exactly_empty_object: bool,
    /// A payload with a non-empty `resource` member, left over from ACME v1 (Pebble's
    /// `-strict`).
    #[serde(default)]
    pub refuse_resource_field: bool,
}

/// The directory's `meta` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaProfile {
    /// `meta.termsOfService`.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// `meta.website`.
    #[serde(default)]
    pub website: Option<String>,
    /// `meta.caaIdentities`: the CA's issuer domain names, which CAA records (RFC 8659) and
    /// dns-persist-01 records must name.
    #[serde(default)]
    pub caa_identities: Vec<String>,
    /// Leave `caaIdentities` out of the directory; the names above still bind CAA and
    /// dns-persist-01. The Pebble stand-in does this unless its config sets `caaIdentities`,
    /// as Pebble 2.4 did (suites written against it assert that the member is absent).
    #[serde(default)]
    pub hide_caa_identities: bool,
    /// `meta.externalAccountRequired`.
    #[serde(default)]
    pub external_account_required: bool,
    /// Further `meta` members, served as given: members no RFC defines, which clients must
    /// ignore (vet's unknown-meta scenario).
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Account behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountProfile {
    /// newAccount without `externalAccountBinding` is refused.
    #[serde(default = "yes")]
    pub eab_required: bool,
    /// Whether keyChange works; otherwise 500 serverInternal "Not yet implemented".
    #[serde(default)]
    pub key_change_supported: bool,
    /// newAccount without a `mailto:` contact is refused as externalAccountRequired (ZeroSSL).
    #[serde(default)]
    pub contact_required: bool,
    /// Accounts have an `orders` list URL (RFC 8555 §7.1.2.1).
    #[serde(default)]
    pub orders_list: bool,
    /// Order URLs per page of the orders list; further pages are linked with `rel="next"`
    /// (RFC 8555 §7.1.2.1; Pebble's PEBBLE_WFE_ORDERS_PER_PAGE). Absent: one page.
    #[serde(default)]
    pub orders_per_page: Option<usize>,
    /// newAccount without `termsOfServiceAgreed: true` is refused as `userActionRequired`
    /// with a `Link: rel="terms-of-service"` where the directory has terms (RFC 8555 §7.3.3;
    /// Pebble).
    #[serde(default)]
    pub terms_agreement_required: bool,
    /// The account object carries the `externalAccountBinding` it was created with, as Pebble's
    /// does (RFC 8555 §7.1.2 allows it, and does not require it).
    #[serde(default)]
    pub echo_eab: bool,
}

impl Default for AccountProfile {
    fn default() -> Self {
        Self {
            eab_required: true,
            key_change_supported: false,
            contact_required: false,
            orders_list: false,
            orders_per_page: None,
            terms_agreement_required: false,
            echo_eab: false,
        }
    }
}

/// Which names an account may order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delegation {
    /// Only names delegated to the account's EAB credential (Sectigo).
    Required,
    /// Any syntactically valid name; challenges prove control (ZeroSSL, RFC 8555).
    None,
}

/// How the certificate subject is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectStyle {
    /// C, ST, O from the organisation and CN from the first name (OV, EV).
    Ov,
    /// CN only (DV).
    Dv,
    /// As OV, with the EV certificate policy.
    Ev,
}

/// Order behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderProfile {
    /// Challenge type listed on pre-validated authorizations.
    #[serde(default = "sectigo_email")]
    pub prevalidated_challenge_type: ChallengeType,
    /// Retry-After sent with a pre-validated authorization, if any.
    #[serde(default)]
    pub prevalidated_authz_retry_after: Option<u64>,
    /// How long an order stays `processing` after finalize, in milliseconds.
    #[serde(default = "default_processing_ms")]
    pub processing_ms: u64,
    /// Retry-After (seconds) sent while an order is `processing`.
    #[serde(default = "default_retry_after")]
    pub processing_retry_after: u64,
    /// Send that Retry-After as an HTTP-date (RFC 9110 §10.2.3: the other form, which some
    /// clients cannot read) instead of seconds.
    #[serde(default)]
    pub retry_after_http_date: bool,
    /// Certificate validity in days; notAfter is that day at 23:59:59Z.
    #[serde(default = "default_validity")]
    pub validity_days: u32,
    /// How the subject is filled.
    #[serde(default = "ov")]
    pub subject: SubjectStyle,
    /// Which names may be ordered.
    #[serde(default = "required")]
    pub delegation: Delegation,
    /// Validated domains get already-valid authorizations.
    #[serde(default = "yes")]
    pub prevalidated: bool,
    /// Even validated domains get a dns-01 challenge (Sectigo's 2026 persistent DCV).
    #[serde(default)]
    pub persistent_dcv: bool,
    /// Challenge types offered where a name must be validated.
    #[serde(default = "all_challenges")]
    pub challenge_types: Vec<ChallengeType>,
    /// Retry-After (seconds) while a challenge is being validated.
    #[serde(default)]
    pub challenge_retry_after: Option<u64>,
    /// A `valid` order carries no `certificate` URL (a CA-side fault clients must survive:
    /// a clean failure, not a crash or a hang).
    #[serde(default)]
    pub omit_certificate_url: bool,
    /// DANGER, benchmarks only: a challenge the client responds to turns `valid` without
    /// any validation (no HTTP fetch, DNS lookup or CAA check), like Pebble's
    /// `PEBBLE_VA_ALWAYS_VALID=1`. `acme-harness bench` and ci/bench-vs-pebble.sh use it to
    /// measure the server rather than the validation round trips. Never set it in a profile
    /// used to vet a client: every challenge passes.
    #[serde(default)]
    pub danger_skip_validation: bool,
    /// Certificate profiles (draft-ietf-acme-profiles, as Pebble's `profiles` config): listed
    /// in the directory's `meta.profiles`; a newOrder may name one (`profile`) and gets
    /// `invalidProfile` for any other name. An order naming none is made under `default` if
    /// there is one, else under the first by name. Empty: no profiles are offered, and a
    /// newOrder naming one is refused as `invalidProfile`.
    #[serde(default)]
    pub cert_profiles: std::collections::BTreeMap<String, CertProfile>,
    /// Names refused by policy (Pebble's `domainBlocklist`): each entry refuses itself and
    /// every name below it; the newOrder gets `rejectedIdentifier` with one subproblem per
    /// refused identifier (RFC 8555 §6.7.1).
    #[serde(default)]
    pub blocked_domains: Vec<String>,
    /// IP address identifiers (RFC 8738) are accepted, with http-01 and tls-alpn-01 (validated
    /// on the address itself). Off: `unsupportedIdentifier`, as at Sectigo (§3).
    #[serde(default)]
    pub ip_identifiers: bool,
    /// Percentage (0-100) of a new order's identifiers that get an existing valid
    /// authorization of the account for the same identifier instead of a fresh one, where
    /// there is one (RFC 8555 §7.1.3; Pebble's PEBBLE_AUTHZREUSE).
    #[serde(default)]
    pub authz_reuse_percent: u8,
}

/// One certificate profile of [`OrderProfile::cert_profiles`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProfile {
    /// Shown in `meta.profiles`.
    #[serde(default)]
    pub description: String,
    /// Certificate validity in days for orders under this profile; absent: the order
    /// profile's `validity_days`.
    #[serde(default)]
    pub validity_days: Option<u32>,
}

impl OrderProfile {
    /// The certificate profile an order asking for `wanted` is made under, or `None` when
    /// that name is not offered (`invalidProfile`). No profiles and none wanted: `Some("")`.
    pub fn cert_profile_for(&self, wanted: Option<&str>) -> Option<&str> {
        match wanted {
            Some(name) => self
                .cert_profiles
                .get_key_value(name)
                .map(|(k, _)| k.as_str()),
            None if self.cert_profiles.is_empty() => Some(""),
            None => self
                .cert_profiles
                .get_key_value("default")
                .or_else(|| self.cert_profiles.iter().next())
                .map(|(k, _)| k.as_str()),
        }
    }

    /// Whether policy refuses `name` (without `*.`): it or a parent is in `blocked_domains`.
    pub fn is_blocked(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.blocked_domains.iter().any(|b| {
            let b = b.trim_end_matches('.').trim_start_matches("*.");
            !b.is_empty()
                && (name.eq_ignore_ascii_case(b)
                    || name.len().checked_sub(b.len() + 1).is_some_and(|cut| {
                        name.as_bytes()[cut] == b'.' && name[cut + 1..].eq_ignore_ascii_case(b)
                    }))
        })
    }

    /// The validity in days of a certificate issued under certificate profile `name`.
    pub fn validity_days_for(&self, name: &str) -> u32 {
        self.cert_profiles
            .get(name)
            .and_then(|p| p.validity_days)
            .unwrap_or(self.validity_days)
    }
}

impl Default for OrderProfile {
    fn default() -> Self {
        Self {
            prevalidated_challenge_type: sectigo_email(),
            prevalidated_authz_retry_after: None,
            processing_ms: default_processing_ms(),
            processing_retry_after: default_retry_after(),
            retry_after_http_date: false,
            validity_days: default_validity(),
            subject: SubjectStyle::Ov,
            delegation: Delegation::Required,
            prevalidated: true,
            persistent_dcv: false,
            challenge_types: all_challenges(),
            challenge_retry_after: None,
            omit_certificate_url: false,
            danger_skip_validation: false,
            cert_profiles: Default::default(),
            blocked_domains: Vec::new(),
            ip_identifiers: false,
            authz_reuse_percent: 0,
        }
    }
}

/// Rate limiting: past the limit, 429 with an nginx HTML page and Retry-After.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitProfile {
    /// Requests per account key (or per client address before there is one) per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
}

/// Nonce behaviour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceProfile {
    /// A nonce that is not base64url gets `malformed` (Sectigo) instead of `badNonce` (RFC).
    #[serde(default)]
    pub garbled_is_malformed: bool,
    /// An HTML error page (429/502/503/504) stands for a proxy in front of the CA: the request
    /// never reached it, so its nonce stays unused and no Replay-Nonce comes back. `true`
    /// makes such pages consume the nonce and carry a fresh one, as the CA's own answers do.
    #[serde(default)]
    pub proxy_pages_consume_nonce: bool,
}

fn yes() -> bool {
    true
}
fn sectigo_email() -> ChallengeType {
    ChallengeType::parse("sectigo-email-01")
}
fn default_processing_ms() -> u64 {
    1500
}
fn default_retry_after() -> u64 {
    2
}
fn default_validity() -> u32 {
    365
}
fn ov() -> SubjectStyle {
    SubjectStyle::Ov
}
fn required() -> Delegation {
    Delegation::Required
}
fn all_challenges() -> Vec<ChallengeType> {
    vec![
        ChallengeType::Http01,
        ChallengeType::Dns01,
        ChallengeType::TlsAlpn01,
    ]
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// No built-in profile has that name.
    #[error("unknown profile {name:?}; built-in profiles: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// The file could not be read.
    #[error("cannot read profile file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or has an unknown field.
    #[error("invalid profile {origin}: {message}")]
    Invalid {
        /// Built-in name or file path.
        origin: String,
        /// The parser's message, which names the field.
        message: String,
    },
}

const BUILT_IN: &[(&str, &str)] = &[
    (
        "sectigo-incommon-rsa-ov",
        include_str!("../../../fixtures/profiles/sectigo-incommon-rsa-ov.toml"),
    ),
    (
        "sectigo-incommon-ecc-ov",
        include_str!("../../../fixtures/profiles/sectigo-incommon-ecc-ov.toml"),
    ),
    (
        "sectigo-ov",
        include_str!("../../../fixtures/profiles/sectigo-ov.toml"),
    ),
    (
        "sectigo-dv",
        include_str!("../../../fixtures/profiles/sectigo-dv.toml"),
    ),
    (
        "sectigo-ev",
        include_str!("../../../fixtures/profiles/sectigo-ev.toml"),
    ),
    (
        "zerossl-dv90",
        include_str!("../../../fixtures/profiles/zerossl-dv90.toml"),
    ),
    (
        "rfc8555",
        include_str!("../../../fixtures/profiles/rfc8555.toml"),
    ),
];

impl Profile {
    /// The names of the built-in profiles.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(n, _)| *n)
    }

    /// A built-in profile by name.
    pub fn built_in(name: &str) -> Result<Self, ProfileError> {
        let (_, text) =
            BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| ProfileError::Unknown {
                    name: name.into(),
                    known: Self::built_in_names().collect::<Vec<_>>().join(", "),
                })?;
        Self::from_toml(text, name)
    }

    /// Every built-in profile.
    pub fn all_built_in() -> Result<Vec<Self>, ProfileError> {
        Self::built_in_names().map(Self::built_in).collect()
    }

    /// Parses a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let profile: Self = toml::from_str(text).map_err(|e| ProfileError::Invalid {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        if let Some(plan) = &profile.faults {
            plan.check().map_err(|message| ProfileError::Invalid {
                origin: origin.into(),
                message: format!("faults: {message}"),
            })?;
        }
        profile.check().map_err(|message| ProfileError::Invalid {
            origin: origin.into(),
            message,
        })?;
        Ok(profile)
    }

    /// Loads a profile from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// A built-in name, or else a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Self, ProfileError> {
        if BUILT_IN.iter().any(|(n, _)| *n == name_or_path) {
            return Self::built_in(name_or_path);
        }
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || path.exists() {
            return Self::from_file(path);
        }
        Self::built_in(name_or_path)
    }

    fn check(&self) -> Result<(), String> {
        let p = &self.directory_path;
        let name = p.strip_prefix("/v2/").unwrap_or_default();
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "directory_path {p:?} must look like \"/v2/NAME\" (letters, digits, - and _)"
            ));
        }
        if self.order.authz_reuse_percent > 100 {
            return Err(format!(
                "order.authz_reuse_percent is {}; it is a percentage (0 to 100)",
                self.order.authz_reuse_percent
            ));
        }
        if name == "directory" {
            return Err(
                "directory_path \"/v2/directory\" is reserved: Sectigo answers it with 403".into(),
            );
        }
        Ok(())
    }

    /// The last path segment, which routes requests to this profile.
    pub fn slug(&self) -> &str {
        self.directory_path.rsplit('/').next().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_load() {
        let all = Profile::all_built_in().unwrap();
        assert_eq!(all.len(), 7);
        let paths: std::collections::HashSet<&str> =
            all.iter().map(|p| p.directory_path.as_str()).collect();
        assert_eq!(paths.len(), 7, "each profile has its own directory path");
        for p in &all {
            assert_eq!(
                Profile::built_in(&p.name).unwrap(),
                *p,
                "name matches the table"
            );
        }
        let rsa = Profile::built_in("sectigo-incommon-rsa-ov").unwrap();
        assert_eq!(rsa.slug(), "InCommonRSAOV");
        assert!(rsa.account.eab_required);
        assert!(!rsa.account.key_change_supported);
        assert_eq!(rsa.order.prevalidated_authz_retry_after, Some(300));
    }

    #[test]
    fn cert_profiles_blocklist_and_defaults() {
        let p = Profile::built_in("rfc8555").unwrap();
        let order = &p.order;
        assert!(order.ip_identifiers);
        assert_eq!(order.cert_profile_for(None), Some("default"));
        assert_eq!(
            order.cert_profile_for(Some("shortlived")),
            Some("shortlived")
        );
        assert_eq!(order.cert_profile_for(Some("nonesuch")), None);
        assert!(order.validity_days_for("shortlived") < order.validity_days_for("default"));
        let mut o = OrderProfile::default();
        assert_eq!(o.cert_profile_for(None), Some(""));
        assert_eq!(o.cert_profile_for(Some("default")), None);
        o.blocked_domains = vec!["blocked-domain.example".into()];
        assert!(o.is_blocked("blocked-domain.example"));
        assert!(o.is_blocked("a.b.Blocked-Domain.example"));
        assert!(!o.is_blocked("notblocked-domain.example"));
        assert!(!o.is_blocked("example"));
        // Sectigo takes no IP identifiers and offers no certificate profiles.
        let s = Profile::built_in("sectigo-dv").unwrap();
        assert!(!s.order.ip_identifiers && s.order.cert_profiles.is_empty());
    }

    #[test]
    fn unknown_field_is_named() {
        let text = "name = \"x\"\ndirectory_path = \"/v2/X\"\n[order]\nprocesing_ms = 5\n";
        let err = Profile::from_toml(text, "custom.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("procesing_ms"), "{err}");
        assert!(err.contains("custom.toml"), "{err}");
    }

    #[test]
    fn bad_directory_path_and_unknown_name() {
        let err = Profile::from_toml("name = \"x\"\ndirectory_path = \"/acme\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/v2/NAME"), "{err}");
        let err = Profile::built_in("letsencrypt").unwrap_err().to_string();
        assert!(err.contains("sectigo-incommon-rsa-ov"), "{err}");
    }
}
