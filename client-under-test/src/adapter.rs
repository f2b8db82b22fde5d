//! Client adapters: data, not code. One TOML file in `fixtures/clients/` says how to run a
//! client (command templates with placeholders), how it is told to trust the mock's CA, where
//! it leaves its certificate and where its logs live. Adding a client is adding a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The built-in adapters (fixtures/clients/*.toml), compiled in.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "reference",
        include_str!("../../fixtures/clients/reference.toml"),
    ),
    (
        "certbot",
        include_str!("../../fixtures/clients/certbot.toml"),
    ),
    ("lego", include_str!("../../fixtures/clients/lego.toml")),
    (
        "dehydrated",
        include_str!("../../fixtures/clients/dehydrated.toml"),
    ),
    ("uacme", include_str!("../../fixtures/clients/uacme.toml")),
];

/// How a client is told to trust the mock's CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// An environment variable in `[env]` names `{ca_bundle}`.
    Env,
    /// A flag or config-file line names `{ca_bundle}`.
    Flag,
    /// The client reads only the system bundle: each command runs in a private mount
    /// namespace with `{ca_bundle}` bind-mounted over /etc/ssl/certs/ca-certificates.crt
    /// (root only; the system itself is not changed).
    MountNamespace,
}

/// A file the adapter writes before the client runs (a config file, a hook script).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Path template.
    pub path: String,
    /// Unix mode.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Content template.
    pub content: String,
}

fn default_mode() -> u32 {
    0o600
}

/// Another way the client can take the EAB HMAC key (a config file, the environment, a key
/// file, stdin), with what changes from the adapter's own commands. The adapter's own
/// `issue` is the mode named by [`Adapter::secret_mode`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretMode {
    /// Short name (`--secret-mode NAME`): `config-file`, `env`, `key-file`, `stdin`, `flag`.
    pub name: String,
    /// Where the key goes, in one line.
    pub description: String,
    /// Where the client's documentation or source says it takes the key this way.
    pub source: String,
    /// The commands of this mode, instead of the adapter's `issue`.
    pub issue: Vec<Vec<String>>,
    /// Instead of the adapter's `renew`, when given.
    #[serde(default)]
    pub renew: Option<Vec<Vec<String>>>,
    /// Files written before the run, besides the adapter's.
    #[serde(default, rename = "file")]
    pub files: Vec<InputFile>,
    /// Environment, besides (and over) the adapter's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Per-scenario key type values for `{key_type}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTypes {
    /// RSA 2048.
    pub rsa: String,
    /// ECDSA P-256.
    pub ecdsa: String,
}

/// One client adapter (a `fixtures/clients/*.toml` file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapter {
    /// Short name (`--client NAME`).
    pub name: String,
    /// One line for reports.
    #[serde(default)]
    pub description: String,
    /// Command printing the version (first line of its output); the client counts as
    /// installed when it runs and exits 0.
    #[serde(default)]
    pub version: Vec<String>,
    /// How the client trusts the CA.
    pub trust: Trust,
    /// Needs root (the mount namespace).
    #[serde(default)]
    pub requires_root: bool,
    /// Values of `{key_type}`.
    pub key_types: KeyTypes,
    /// Directories created before the run.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Files written before the run.
    #[serde(default, rename = "file")]
    pub files: Vec<InputFile>,
    /// Commands that obtain a certificate, run in order; the first non-zero exit stops.
    pub issue: Vec<Vec<String>>,
    /// Commands that renew it (the renewal scenario runs `issue`, then these).
    #[serde(default)]
    pub renew: Vec<Vec<String>>,
    /// Commands that try to obtain a certificate with no EAB credential at all (the
    /// eab-missing scenario); none: the scenario is not run for this client.
    #[serde(default)]
    pub issue_without_eab: Vec<Vec<String>>,
    /// Arguments appended to the last `issue` command (in whatever secret mode) to ask for
    /// the chain whose top issuer is `{preferred_chain}` (the preferred-chain scenario);
    /// none: the client cannot choose by name, and the scenario is not run for it.
    #[serde(default)]
    pub preferred_chain_args: Vec<String>,
    /// A directory the client writes http-01 answers into (`TOKEN` files) instead of
    /// answering itself: the harness serves it on `{http_port}`, as the web server of a real
    /// site would.
    #[serde(default)]
    pub webroot: Option<String>,
    /// Text in the client's output that means it crashed rather than failed cleanly, besides
    /// the traces every runtime prints (a Python traceback, a Go or Rust panic).
    #[serde(default)]
    pub crash_patterns: Vec<String>,
    /// The PEM file holding the leaf first (and possibly the chain after it). When absent or
    /// missing, every PEM file under the work dir is searched for a certificate the mock
    /// issued.
    #[serde(default)]
    pub cert: Option<String>,
    /// Log files or directories: the canary secret there fails whatever the mode.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Environment for every command (templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How `issue` passes the EAB key (default `flag`: on the command line).
    #[serde(default = "flag_mode")]
    pub secret_mode: String,
    /// That way, in one line, for reports (default: said from the mode's name).
    #[serde(default)]
    pub secret_mode_description: Option<String>,
    /// The other ways the client can take the key, safest first: `vet` and `matrix` use the
    /// first unless told otherwise (`--secret-mode`).
    #[serde(default, rename = "other_secret_mode")]
    pub other_secret_modes: Vec<SecretMode>,
    /// Every way the client takes the key, once it is set to one of them ([`Adapter::in_mode`]
    /// keeps the list for the reports).
    #[serde(skip)]
    pub known_secret_modes: Vec<String>,
}

fn flag_mode() -> String {
    "flag".into()
}

/// The values substituted into templates.
#[derive(Clone, Debug)]
pub struct Values {
    /// Directory URL.
    pub directory: String,
    /// EAB key id.
    pub eab_kid: String,
    /// EAB HMAC key (base64url).
    pub eab_hmac_key: String,
    /// The name asked for.
    pub domain: String,
    /// PEM bundle the client must trust.
    pub ca_bundle: PathBuf,
    /// The client's own directory.
    pub workdir: PathBuf,
    /// Free loopback port for http-01.
    pub http_port: u16,
    /// The adapter's `{key_type}` value.
    pub key_type: String,
    /// The acme-harness binary.
    pub harness: Option<PathBuf>,
    /// The issuer name of the chain to prefer (`{preferred_chain}`; empty when the scenario
    /// asks for none).
    pub preferred_chain: String,
}

impl Values {
    /// Replaces every placeholder in `template`.
    pub fn fill(&self, template: &str) -> String {
        let harness = self
            .harness
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "acme-harness".into());
        template
            .replace("{directory}", &self.directory)
            .replace("{eab_kid}", &self.eab_kid)
            .replace("{eab_hmac_key}", &self.eab_hmac_key)
            .replace("{domain_file}", &self.domain.replace('*', "_"))
            .replace("{domain}", &self.domain)
            .replace("{ca_bundle}", &self.ca_bundle.display().to_string())
            .replace("{workdir}", &self.workdir.display().to_string())
            .replace("{http_port}", &self.http_port.to_string())
            .replace("{key_type}", &self.key_type)
            .replace("{preferred_chain}", &self.preferred_chain)
            .replace("{harness}", &harness)
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "{directory}",
    "{eab_kid}",
    "{eab_hmac_key}",
    "{domain}",
    "{domain_file}",
    "{ca_bundle}",
    "{workdir}",
    "{http_port}",
    "{key_type}",
    "{preferred_chain}",
    "{harness}",
];

impl Adapter {
    /// Parses an adapter file.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let adapter: Self = toml::from_str(text).map_err(|e| Error::Adapter {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        if adapter.issue.is_empty() || adapter.issue.iter().any(Vec::is_empty) {
            return Err(Error::Adapter {
                origin: origin.into(),
                message: "`issue` needs at least one non-empty command".into(),
            });
        }
        Ok(adapter)
    }

    /// Every secret-passing mode, safest first: the other modes in their order, then the
    /// adapter's own.
    pub fn secret_modes(&self) -> Vec<&str> {
        if !self.known_secret_modes.is_empty() {
            return self.known_secret_modes.iter().map(String::as_str).collect();
        }
        self.other_secret_modes
            .iter()
            .map(|m| m.name.as_str())
            .chain(std::iter::once(self.secret_mode.as_str()))
            .collect()
    }

    /// The adapter as run in its safest secret-passing mode.
    pub fn safest(&self) -> Self {
        let safest = self.secret_modes()[0].to_owned();
        // The name comes from the list, so it is known.
        self.in_mode(&safest).unwrap_or_else(|_| self.clone())
    }

    /// The adapter as run in the secret-passing mode `name`; an error names the known ones.
    pub fn in_mode(&self, name: &str) -> Result<Self, Error> {
        let known: Vec<String> = self
            .secret_modes()
            .iter()
            .map(|m| (*m).to_owned())
            .collect();
        if name == self.secret_mode {
            let mut base = self.clone();
            base.other_secret_modes.clear();
            base.known_secret_modes = known;
            return Ok(base);
        }
        let mode = self
            .other_secret_modes
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::Adapter {
                origin: self.name.clone(),
                message: format!(
                    "no secret mode {name:?}; {} takes the key as: {}",
                    self.name,
                    self.secret_modes().join(", ")
                ),
            })?;
        let mut out = self.clone();
        out.issue = mode.issue.clone();
        if let Some(renew) = &mode.renew {
            out.renew = renew.clone();
        }
        out.files.extend(mode.files.iter().cloned());
        out.env.extend(mode.env.clone());
        out.secret_mode = mode.name.clone();
        out.secret_mode_description = Some(mode.description.clone());
        out.other_secret_modes.clear();
        out.known_secret_modes = known;
        Ok(out)
    }

    /// How this adapter (in its current mode) gives the client the key, in words.
    pub fn secret_mode_how(&self) -> String {
        if let Some(d) = &self.secret_mode_description {
            return d.clone();
        }
        match self.secret_mode.as_str() {
            "flag" => "on the command line",
            "config-file" => "in a config file only its owner can read",
            "env" => "in an environment variable",
            "key-file" => "in a key file only its owner can read",
            "stdin" => "on standard input",
            _ => "as its adapter says",
        }
        .to_owned()
    }

    /// The built-in adapters, reference client first.
    pub fn built_in() -> Vec<Self> {
        BUILT_IN
            .iter()
            // The files are part of the binary and covered by a test, so they parse.
            .filter_map(|(name, text)| Self::parse(text, name).ok())
            .collect()
    }

    /// A built-in adapter by name, or an adapter file by path.
    pub fn find(name_or_path: &str) -> Result<Self, Error> {
        if let Some(a) = Self::built_in()
            .into_iter()
            .find(|a| a.name == name_or_path)
        {
            return Ok(a);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Adapter {
                origin: name_or_path.into(),
                message: format!("cannot read: {e}"),
            })?;
            return Self::parse(&text, name_or_path);
        }
        let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        Err(Error::Adapter {
            origin: name_or_path.into(),
            message: format!(
                "no such built-in client (known: {}); give an adapter file (fixtures/clients/*.toml) or `vet -- COMMAND`",
                known.join(", ")
            ),
        })
    }

    /// An adapter for an ad-hoc command template (`vet -- COMMAND ...`): it trusts the CA by
    /// whatever the template says, and its certificate is looked for under the work dir.
    pub fn custom(argv: Vec<String>) -> Self {
        Self {
            name: "custom".into(),
            description: format!("command: {}", argv.join(" ")),
            version: Vec::new(),
            trust: Trust::Flag,
            requires_root: false,
            key_types: KeyTypes {
                rsa: "rsa".into(),
                ecdsa: "ecdsa".into(),
            },
            dirs: Vec::new(),
            files: Vec::new(),
            issue: vec![argv],
            renew: Vec::new(),
            issue_without_eab: Vec::new(),
            preferred_chain_args: Vec::new(),
            webroot: None,
            crash_patterns: Vec::new(),
            cert: None,
            logs: Vec::new(),
            env: BTreeMap::new(),
            secret_mode: "as-given".into(),
            secret_mode_description: Some("as the command template passes it".into()),
            other_secret_modes: Vec::new(),
            known_secret_modes: Vec::new(),
        }
    }

    fn uses_harness(&self) -> bool {
        self.issue
            .iter()
            .chain(&self.renew)
            .flatten()
            .chain(&self.version)
            .any(|a| a.contains("{harness}"))
    }

    /// Whether the client can run here, and its version line; `Err` says why not.
    pub fn detect(&self, harness: Option<&Path>) -> Result<Option<String>, String> {
        if self.uses_harness() && harness.is_none() {
            return Err("needs the acme-harness binary ({harness})".into());
        }
        if self.requires_root && !is_root() {
            return Err("needs root (private mount namespace for its CA bundle)".into());
        }
        if self.trust == Trust::MountNamespace && which("unshare").is_none() {
            return Err("needs `unshare` (util-linux)".into());
        }
        let program = self.issue[0][0].clone();
        let program = fill_harness(&program, harness);
        if !program.contains('/') && which(&program).is_none() {
            return Err(format!(
                "{program} is not installed (ci/install-clients.sh)"
            ));
        }
        if self.version.is_empty() {
            return Ok(None);
        }
        let argv: Vec<String> = self
            .version
            .iter()
            .map(|a| fill_harness(a, harness))
            .collect();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .env("HOME", std::env::temp_dir())
            .output()
            .map_err(|e| format!("{} does not run: {e}", argv[0]))?;
        let text = if out.stdout.is_empty() {
            String::from_utf8_lossy(&out.stderr).into_owned()
        } else {
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // The first line that looks like a version (dehydrated prints its config file first).
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Ok(lines
            .iter()
            .find(|l| l.chars().any(|c| c.is_ascii_digit()))
            .or(lines.first())
            .map(|l| (*l).to_owned()))
    }

    /// The installed built-in adapters, with their versions; the others with the reason.
    pub fn installed(harness: Option<&Path>) -> Vec<(Self, Result<Option<String>, String>)> {
        Self::built_in()
            .into_iter()
            .map(|a| {
                let d = a.detect(harness);
                (a, d)
            })
            .collect()
    }
}

fn fill_harness(s: &str, harness: Option<&Path>) -> String {
    match harness {
        Some(h) => s.replace("{harness}", &h.display().to_string()),
        None => s.to_owned(),
    }
}

/// Whether this process runs as root (the owner of /proc/self).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The program's path on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn certbot_runs_in_its_safest_secret_mode_by_default() {
        let certbot = Adapter::find("certbot").unwrap();
        assert_eq!(certbot.secret_modes(), ["config-file", "flag"]);
        let safest = certbot.safest();
        assert_eq!(safest.secret_mode, "config-file");
        let argv: Vec<&String> = safest.issue.iter().flatten().collect();
        assert!(!argv.iter().any(|a| a.contains("eab")), "{argv:?}");
        assert!(argv.iter().any(|a| *a == "-c"), "{argv:?}");
        let ini = safest
            .files
            .iter()
            .find(|f| f.path.ends_with("cli.ini"))
            .unwrap();
        assert_eq!(ini.mode, 0o600);
        assert!(ini.content.contains("eab-hmac-key = {eab_hmac_key}"));
        let flag = certbot.in_mode("flag").unwrap();
        assert!(flag.issue[0].iter().any(|a| a == "--eab-hmac-key"));
        let err = certbot.in_mode("stdin").unwrap_err().to_string();
        assert!(err.contains("config-file, flag"), "{err}");
        // A client with one way only is run that way.
        let lego = Adapter::find("lego").unwrap();
        assert_eq!(lego.secret_modes(), ["flag"]);
        assert_eq!(lego.safest().issue, lego.issue);
    }

    #[test]
    fn built_in_adapters_parse() {
        for (name, text) in BUILT_IN {
            let a = Adapter::parse(text, name).unwrap();
            assert_eq!(&a.name, name);
        }
        assert_eq!(Adapter::built_in().len(), BUILT_IN.len());
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = Adapter::parse(
            "name='x'\ntrust='env'\nissue=[['true']]\nkey_types={rsa='a',ecdsa='b'}\ncolour='red'",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn placeholders_are_filled() {
        let v = Values {
            directory: "https://127.0.0.1:1/v2/X".into(),
            eab_kid: "KID".into(),
            eab_hmac_key: "HMAC".into(),
            domain: "*.physics.example.edu".into(),
            ca_bundle: "/ca.pem".into(),
            workdir: "/w".into(),
            http_port: 5002,
            key_type: "ec256".into(),
            harness: Some("/bin/acme-harness".into()),
            preferred_chain: "Mock USERTrust RSA Certification Authority".into(),
        };
        assert_eq!(
            v.fill("{harness} {directory} {eab_kid}:{eab_hmac_key} {domain} {domain_file} {ca_bundle} {workdir}/x {http_port} {key_type}"),
            "/bin/acme-harness https://127.0.0.1:1/v2/X KID:HMAC *.physics.example.edu _.physics.example.edu /ca.pem /w/x 5002 ec256"
        );
    }
}
