//! Pebble's JSON configuration file (`{"pebble": {...}}`), read as Pebble reads it: keys match
//! case-insensitively (Go's `encoding/json`), `null` leaves the default, a value of the wrong
//! type is an error, and an unknown key is ignored — here with a warning that names it,
//! because suites carry keys of other Pebble versions and a typo should not go unseen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One certificate profile (`profiles.<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertProfile {
    /// Shown in the directory's `meta.profiles`.
    pub description: String,
    /// Leaf lifetime in seconds; 0 means Pebble's default of 90 days.
    pub validity_period: u64,
    /// Put the first name into the subject CN as well.
    pub promote_common_name: bool,
}

/// Pebble's leaf lifetime when a profile gives none, or one too large (90 days).
pub const DEFAULT_VALIDITY_SECONDS: u64 = 7_776_000;

impl CertProfile {
    /// The lifetime Pebble applies: 0 and absurdly large values become 90 days.
    pub fn effective_validity(&self) -> u64 {
        match self.validity_period {
            0 => DEFAULT_VALIDITY_SECONDS,
            s if s >= 9_223_372_038 => DEFAULT_VALIDITY_SECONDS,
            s => s,
        }
    }
}

/// The `pebble` object of the configuration file. Defaults are Go's zero values, as in Pebble.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PebbleConfig {
    /// `listenAddress`: the ACME HTTPS listener (`host:port`); empty means `:443`.
    pub listen_address: String,
    /// `managementListenAddress`: the management API; empty disables it.
    pub management_listen_address: String,
    /// `certificate`: PEM chain of both HTTPS listeners (relative to the working directory).
    pub certificate: String,
    /// `privateKey`: its PEM key.
    pub private_key: String,
    /// `httpPort`: where http-01 answers are fetched.
    pub http_port: i64,
    /// `tlsPort`: where tls-alpn-01 answers are fetched.
    pub tls_port: i64,
    /// `ocspResponderURL`: AIA OCSP URL of issued leaves.
    pub ocsp_responder_url: String,
    /// `externalAccountBindingRequired`.
    pub eab_required: bool,
    /// `externalAccountMACKeys`: key id -> base64url HMAC key (not decoded yet).
    pub eab_keys: BTreeMap<String, String>,
    /// `domainBlocklist`: names refused with everything below them.
    pub domain_blocklist: Vec<String>,
    /// `caaIdentities`: `meta.caaIdentities` (`None`: Pebble's default).
    pub caa_identities: Option<Vec<String>>,
    /// `retryAfter.authz` in seconds (0: no header).
    pub retry_after_authz: i64,
    /// `retryAfter.order` in seconds (0: no header).
    pub retry_after_order: i64,
    /// `keyAlgorithm`: `rsa` or `ecdsa` (empty: `rsa`).
    pub key_algorithm: String,
    /// `profiles` (empty: Pebble's one `default` profile).
    pub profiles: BTreeMap<String, CertProfile>,
    /// `certificateValidityPeriod`: read for its type, otherwise ignored as by Pebble 2.10.
    pub certificate_validity_period: u64,
    /// Unknown keys, each as its path (`pebble.foo`), for the startup warning.
    pub unknown_keys: Vec<String>,
}

/// Why the configuration was refused; the message names the file or the key.
#[derive(Debug, thiserror::Error)]
#[error("Reading JSON config file into config structure: {0}")]
pub struct ConfigError(pub String);

/// A JSON type's name in messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(path: &str, want: &str, got: &Value) -> ConfigError {
    ConfigError(format!(
        "{path}: expected {want}, found {} ({got})",
        type_name(got)
    ))
}

/// A JSON object member: its path and its value.
type Member<'a> = (String, &'a Map<String, Value>);

/// Walks one JSON object, handing each member to the field it matches case-insensitively.
struct Fields<'a> {
    path: String,
    members: Vec<(&'a String, &'a Value)>,
    unknown: &'a mut Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(path: &str, object: &'a Map<String, Value>, unknown: &'a mut Vec<String>) -> Self {
        Self {
            path: path.to_owned(),
            members: object.iter().collect(),
            unknown,
        }
    }

    /// The member named `name` (any case), if present and not null. Go takes the last
    /// of several that match; so does this.
    fn take(&mut self, name: &str) -> Option<(String, &'a Value)> {
        let mut found = None;
        self.members.retain(|(k, v)| {
            if k.eq_ignore_ascii_case(name) {
                found = Some((format!("{}.{k}", self.path), *v));
                false
            } else {
                true
            }
        });
        found.filter(|(_, v)| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Result<String, ConfigError> {
        match self.take(name) {
            None => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some((p, v)) => Err(wrong(&p, "a string", v)),
        }
    }

    fn boolean(&mut self, name: &str) -> Result<bool, ConfigError> {
        match self.take(name) {
            None => Ok(false),
            Some((_, Value::Bool(b))) => Ok(*b),
            Some((p, v)) => Err(wrong(&p, "true or false", v)),
        }
    }

    fn int(&mut self, name: &str) -> Result<i64, ConfigError> {
        match self.take(name) {
            None => Ok(0),
            Some((p, v)) => v.as_i64().ok_or_else(|| wrong(&p, "an integer", v)),
        }
    }

    fn uint(&mut self, name: &str) -> Result<u64, ConfigError> {
        match self.take(name) {
            None => Ok(0),
            Some((p, v)) => v
                .as_u64()
                .ok_or_else(|| wrong(&p, "a non-negative integer", v)),
        }
    }

    fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some((p, v)) = self.take(name) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(wrong(&p, "an array of strings", v));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(wrong(&format!("{p}[{i}]"), "a string", other)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn object(&mut self, name: &str) -> Result<Option<Member<'a>>, ConfigError> {
        match self.take(name) {
            None => Ok(None),
            Some((p, Value::Object(m))) => Ok(Some((p, m))),
            Some((p, v)) => Err(wrong(&p, "an object", v)),
        }
    }

    /// Records what nobody took as unknown.
    fn finish(self) {
        for (k, _) in self.members {
            self.unknown.push(format!("{}.{k}", self.path));
        }
    }
}

impl PebbleConfig {
    /// Reads and parses the file at `path`; errors name the file or the key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|ConfigError(m)| ConfigError(format!("{}: {m}", path.display())))
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| ConfigError(format!("invalid JSON: {e}")))?;
        let Value::Object(root) = root else {
            return Err(wrong("top level", "an object", &root));
        };
        let mut unknown = Vec::new();
        let mut pebble = None;
        for (k, v) in &root {
            if k.eq_ignore_ascii_case("pebble") {
                pebble = match v {
                    Value::Null => None,
                    Value::Object(m) => Some(m),
                    other => return Err(wrong("pebble", "an object", other)),
                };
            } else {
                unknown.push(k.clone());
            }
        }
        let mut config = Self::default();
        if let Some(pebble) = pebble {
            let mut f = Fields::new("pebble", pebble, &mut unknown);
            config.listen_address = f.string("listenAddress")?;
            config.management_listen_address = f.string("managementListenAddress")?;
            config.certificate = f.string("certificate")?;
            config.private_key = f.string("privateKey")?;
            config.http_port = f.int("httpPort")?;
            config.tls_port = f.int("tlsPort")?;
            config.ocsp_responder_url = f.string("ocspResponderURL")?;
            config.eab_required = f.boolean("externalAccountBindingRequired")?;
            if let Some((p, keys)) = f.object("externalAccountMACKeys")? {
                for (kid, v) in keys {
                    match v {
                        Value::String(s) => {
                            config.eab_keys.insert(kid.clone(), s.clone());
                        }
                        other => return Err(wrong(&format!("{p}.{kid}"), "a string", other)),
                    }
                }
            }
            config.domain_blocklist = f.strings("domainBlocklist")?.unwrap_or_default();
            config.caa_identities = f.strings("caaIdentities")?;
            config.key_algorithm = f.string("keyAlgorithm")?;
            config.certificate_validity_period = f.uint("certificateValidityPeriod")?;
            if let Some((p, retry)) = f.object("retryAfter")? {
                let mut r = Fields::new(&p, retry, f.unknown);
                config.retry_after_authz = r.int("authz")?;
                config.retry_after_order = r.int("order")?;
                r.finish();
            }
            if let Some((p, profiles)) = f.object("profiles")? {
                for (name, v) in profiles {
                    let path = format!("{p}.{name}");
                    let Value::Object(m) = v else {
                        return Err(wrong(&path, "an object", v));
                    };
                    let mut pf = Fields::new(&path, m, f.unknown);
                    let profile = CertProfile {
                        description: pf.string("description")?,
                        validity_period: pf.uint("validityPeriod")?,
                        promote_common_name: pf.boolean("promoteCommonName")?,
                    };
                    pf.finish();
                    config.profiles.insert(name.clone(), profile);
                }
            }
            f.finish();
        }
        config.unknown_keys = unknown;
        config.check()?;
        Ok(config)
    }

    /// The checks Pebble makes at startup, with its messages where it has one.
    fn check(&self) -> Result<(), ConfigError> {
        if !matches!(self.key_algorithm.as_str(), "" | "rsa" | "ecdsa") {
            return Err(ConfigError(format!(
                "pebble.keyAlgorithm: invalid key algorithm: {:?} is not one of []string{{\"rsa\", \"ecdsa\"}}",
                self.key_algorithm
            )));
        }
        for (name, port) in [("httpPort", self.http_port), ("tlsPort", self.tls_port)] {
            if !(0..=65535).contains(&port) {
                return Err(ConfigError(format!(
                    "pebble.{name}: {port} is not a port number (0 to 65535)"
                )));
            }
        }
        for (kid, key) in &self.eab_keys {
            let ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && acme_proto::b64::decode(key).is_ok();
            if !ok {
                return Err(ConfigError(format!(
                    "pebble.externalAccountMACKeys.{kid}: Failed to add key to external account bindings: the HMAC key is not base64url without padding"
                )));
            }
        }
        if let Some(i) = self.domain_blocklist.iter().position(String::is_empty) {
            return Err(ConfigError(format!(
                "pebble.domainBlocklist[{i}]: Failed to add domain to block list: empty name"
            )));
        }
        Ok(())
    }

    /// The certificate file, resolved against `cwd` as Pebble resolves it against its own.
    pub fn certificate_path(&self, cwd: &Path) -> PathBuf {
        cwd.join(&self.certificate)
    }

    /// The profiles as Pebble serves them: the configured ones, or its one default.
    pub fn effective_profiles(&self) -> BTreeMap<String, CertProfile> {
        if !self.profiles.is_empty() {
            return self.profiles.clone();
        }
        BTreeMap::from([(
            "default".to_owned(),
            CertProfile {
                description: "The default profile".into(),
                ..CertProfile::default()
            },
        )])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../fixtures/pebble/pebble-config.json");

    fn err(text: &str) -> String {
        PebbleConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_example_reads_as_pebble_reads_it() {
        let c = PebbleConfig::parse(SHIPPED).unwrap();
        assert_eq!(c.listen_address, "0.0.0.0:14000");
        assert_eq!(c.management_listen_address, "0.0.0.0:15000");
        assert_eq!(c.http_port, 5002);
        assert_eq!(c.tls_port, 5001);
        assert_eq!(c.retry_after_authz, 3);
        assert_eq!(c.retry_after_order, 5);
        assert_eq!(c.key_algorithm, "ecdsa");
        assert_eq!(c.domain_blocklist, ["blocked-domain.example"]);
        assert_eq!(c.profiles["shortlived"].validity_period, 518_400);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    }

    #[test]
    fn keys_match_in_any_case_and_null_is_absent() {
        let c = PebbleConfig::parse(
            r#"{"Pebble": {"LISTENADDRESS": "127.0.0.1:1", "httpport": 80, "tlsPort": null}}"#,
        )
        .unwrap();
        assert_eq!(c.listen_address, "127.0.0.1:1");
        assert_eq!(c.http_port, 80);
        assert_eq!(c.tls_port, 0);
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let e = err(r#"{"pebble": {"httpPort": "5002"}}"#);
        assert!(e.contains("pebble.httpPort"), "{e}");
        assert!(
            e.starts_with("Reading JSON config file into config structure"),
            "{e}"
        );
        let e = err(r#"{"pebble": {"retryAfter": {"authz": 1.5}}}"#);
        assert!(e.contains("pebble.retryAfter.authz"), "{e}");
        let e = err(r#"{"pebble": {"profiles": {"p": {"validityPeriod": -1}}}}"#);
        assert!(e.contains("pebble.profiles.p.validityPeriod"), "{e}");
        let e = err(r#"{"pebble": {"externalAccountBindingRequired": "yes"}}"#);
        assert!(e.contains("pebble.externalAccountBindingRequired"), "{e}");
        let e = err(r#"{"pebble": {"domainBlocklist": [1]}}"#);
        assert!(e.contains("pebble.domainBlocklist[0]"), "{e}");
        let e = err(r#"{"pebble": ["x"]}"#);
        assert!(e.contains("pebble: expected an object"), "{e}");
        let e = err("{");
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn pebble_startup_checks_name_the_key() {
        let e = err(r#"{"pebble": {"keyAlgorithm": "ed25519"}}"#);
        assert!(e.contains("pebble.keyAlgorithm"), "{e}");
        assert!(e.contains("invalid key algorithm: \"ed25519\""), "{e}");
        let e = err(r#"{"pebble": {"externalAccountMACKeys": {"kid-1": "abc="}}}"#);
        assert!(e.contains("pebble.externalAccountMACKeys.kid-1"), "{e}");
        assert!(!e.contains("abc="), "the key itself is never printed: {e}");
        let e = err(r#"{"pebble": {"domainBlocklist": ["a.example", ""]}}"#);
        assert!(e.contains("pebble.domainBlocklist[1]"), "{e}");
        let e = err(r#"{"pebble": {"httpPort": 70000}}"#);
        assert!(e.contains("pebble.httpPort"), "{e}");
    }

    #[test]
    fn unknown_keys_are_listed_not_refused() {
        let c = PebbleConfig::parse(
            r#"{"pebble": {"httpPort": 1, "futureKey": true, "retryAfter": {"authz": 1, "x": 2}}, "other": 1}"#,
        )
        .unwrap();
        assert_eq!(
            c.unknown_keys,
            ["other", "pebble.retryAfter.x", "pebble.futureKey"]
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = PebbleConfig::from_file(Path::new("/nonexistent/pebble.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/pebble.json"), "{e}");
    }

    #[test]
    fn profiles_default_and_validity() {
        let c = PebbleConfig::parse(r#"{"pebble": {}}"#).unwrap();
        let p = c.effective_profiles();
        assert_eq!(p["default"].effective_validity(), DEFAULT_VALIDITY_SECONDS);
        let c = PebbleConfig::parse(SHIPPED).unwrap();
        assert_eq!(
            c.effective_profiles()["shortlived"].effective_validity(),
            518_400
        );
    }
}
