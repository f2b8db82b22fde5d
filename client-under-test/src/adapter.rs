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
    ("caddy", include_str!("../../fixtures/clients/caddy.toml")),
    (
        "certbot-pypi",
        include_str!("../../fixtures/clients/certbot-pypi.toml"),
    ),
    (
        "node-acme-client",
        include_str!("../../fixtures/clients/node-acme-client.toml"),
    ),
    (
        "acme-tiny",
        include_str!("../../fixtures/clients/acme-tiny.toml"),
    ),
];

/// Support files of the built-in adapters (wrapper scripts, driver programs), compiled in;
/// an adapter's `[[file]]` names one with `from`.
const SUPPORT: &[(&str, &str)] = &[
    (
        "caddy-run.sh",
        include_str!("../../fixtures/clients/caddy-run.sh"),
    ),
    (
        "node-acme-client-driver.js",
        include_str!("../../fixtures/clients/node-acme-client-driver.js"),
    ),
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

/// A file the adapter writes before the client runs (a config file, a hook script, a wrapper).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Path template.
    pub path: String,
    /// Unix mode.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Content template (placeholders are filled).
    #[serde(default)]
    pub content: String,
    /// Instead of `content`: a support file beside the adapter file (a wrapper script, a
    /// driver program; for a built-in adapter, one compiled in from fixtures/clients/), copied
    /// as it is, placeholders not filled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl InputFile {
    /// The text to write: a support file as it is, else the content with `values` filled in.
    pub fn text(&self, values: &Values) -> String {
        if self.from.is_some() {
            self.content.clone()
        } else {
            values.fill(&self.content)
        }
    }
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
    /// Files that must exist for the client to count as installed, besides its program: the
    /// library a driver program loads, a virtualenv's program.
    #[serde(default)]
    pub needs: Vec<String>,
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
    /// Network traffic the client is known to attempt besides the mock, each with the reason
    /// (`[[expected_egress]]`: `to` a DNS name, an address or `address:port`, and `reason`):
    /// still listed in what it touched, but not held against it.
    #[serde(default, rename = "expected_egress")]
    pub expected_egress: Vec<crate::audit::ExpectedEgress>,
    /// Files or directories (templates) the sandbox lets the client read besides the system,
    /// its work dir and its own install (a program named by path brings its directory).
    #[serde(default)]
    pub sandbox_read_only: Vec<String>,
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
    /// Set when the client cannot be used with Sectigo at all (it has no way to send an
    /// External Account Binding): why, with the client's documentation or source that shows
    /// it. `vet` and `matrix` then run it through one issuing scenario only, to confirm the
    /// CA's refusal from the transcript, and report it as unusable instead of failing every
    /// scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
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
    /// Whether the client can answer an http-01 challenge here: the harness serves its
    /// webroot, or its commands, environment or files are given `{http_port}`, the port the
    /// mock's validator connects to. (Without either, no client can know where to answer.)
    pub fn answers_http01(&self) -> bool {
        let given = |t: &str| t.contains("{http_port}");
        self.webroot.is_some()
            || (self.issue.iter().chain(&self.renew))
                .flatten()
                .any(|a| given(a))
            || self.env.values().any(|v| given(v))
            || self
                .files
                .iter()
                .any(|f| given(&f.content) || given(&f.path))
    }

    /// Parses an adapter file. Support files (`[[file]] from`) are not read yet: see
    /// [`Adapter::load_support_files`].
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let adapter: Self = toml::from_str(text).map_err(|e| Error::Adapter {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let bad = |message: &str| Error::Adapter {
            origin: origin.into(),
            message: message.into(),
        };
        if adapter.issue.is_empty() || adapter.issue.iter().any(Vec::is_empty) {
            return Err(bad("`issue` needs at least one non-empty command"));
        }
        let files = adapter
            .files
            .iter()
            .chain(adapter.other_secret_modes.iter().flat_map(|m| &m.files));
        for f in files {
            if f.from.is_some() && !f.content.is_empty() {
                return Err(bad(&format!(
                    "[[file]] {}: give `content` or `from`, not both",
                    f.path
                )));
            }
        }
        if adapter
            .unusable
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(bad("`unusable` needs the reason"));
        }
        Ok(adapter)
    }

    /// Reads every `[[file]] from` support file: from `dir` (the adapter file's folder) when
    /// given and present there, else from the support files compiled in.
    pub fn load_support_files(&mut self, dir: Option<&Path>) -> Result<(), Error> {
        let origin = self.name.clone();
        let files = self.files.iter_mut().chain(
            self.other_secret_modes
                .iter_mut()
                .flat_map(|m| &mut m.files),
        );
        for f in files {
            let Some(from) = &f.from else { continue };
            let on_disk = dir.map(|d| d.join(from)).filter(|p| p.is_file());
            f.content = match on_disk {
                Some(p) => std::fs::read_to_string(&p).map_err(|e| Error::Adapter {
                    origin: origin.clone(),
                    message: format!("cannot read {}: {e}", p.display()),
                })?,
                None => SUPPORT
                    .iter()
                    .find(|(n, _)| n == from)
                    .map(|(_, t)| (*t).to_owned())
                    .ok_or_else(|| Error::Adapter {
                        origin: origin.clone(),
                        message: format!(
                            "[[file]] {}: no support file {from:?}{}",
                            f.path,
                            dir.map(|d| format!(" in {}", d.display()))
                                .unwrap_or_default()
                        ),
                    })?,
            };
        }
        Ok(())
    }

    /// The scenarios this client is run through, of `selected`: all of them, or for a client
    /// that cannot be used with Sectigo ([`Adapter::unusable`]) the first one that expects a
    /// certificate, which confirms the CA's refusal.
    pub fn scenarios_for(&self, selected: &[crate::Scenario]) -> Vec<crate::Scenario> {
        if self.unusable.is_none() {
            return selected.to_vec();
        }
        selected
            .iter()
            .find(|s| s.expect == crate::scenario::Expect::Issue)
            .cloned()
            .into_iter()
            .collect()
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
            // The files are part of the binary and covered by a test, so they parse and their
            // support files are there.
            .filter_map(|(name, text)| {
                let mut a = Self::parse(text, name).ok()?;
                a.load_support_files(None).ok()?;
                Some(a)
            })
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
            let mut adapter = Self::parse(&text, name_or_path)?;
            adapter.load_support_files(path.parent())?;
            return Ok(adapter);
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
            needs: Vec::new(),
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
            expected_egress: Vec::new(),
            sandbox_read_only: Vec::new(),
            secret_mode: "as-given".into(),
            secret_mode_description: Some("as the command template passes it".into()),
            other_secret_modes: Vec::new(),
            known_secret_modes: Vec::new(),
            unusable: None,
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
        if let Some(missing) = self.needs.iter().find(|p| !Path::new(p).exists()) {
            return Err(format!(
                "{missing} is not there (ci/install-clients.sh installs it)"
            ));
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
    fn new_clients_are_built_in_with_their_support_files() {
        let names: Vec<String> = Adapter::built_in().into_iter().map(|a| a.name).collect();
        for n in ["caddy", "certbot-pypi", "node-acme-client", "acme-tiny"] {
            assert!(names.iter().any(|a| a == n), "{n} missing from {names:?}");
        }
        // Caddy's wrapper and the node driver are written into the work dir as they are.
        let caddy = Adapter::find("caddy").unwrap();
        let wrapper = caddy
            .files
            .iter()
            .find(|f| f.path == "{workdir}/caddy-run.sh")
            .unwrap();
        assert_eq!(wrapper.mode, 0o755);
        assert!(
            wrapper
                .content
                .contains("certificate (obtained|renewed) successfully")
        );
        let node = Adapter::find("node-acme-client").unwrap().safest();
        assert_eq!(node.secret_mode, "key-file");
        let driver = node.files.iter().find(|f| f.from.is_some()).unwrap();
        assert!(driver.content.contains("externalAccountBinding"));
        // Neither takes the key on its command line in its safest mode.
        for a in [caddy.safest(), node] {
            let argv: Vec<&String> = a.issue.iter().flatten().collect();
            assert!(
                !argv.iter().any(|x| x.contains("{eab_hmac_key}")),
                "{}: {argv:?}",
                a.name
            );
        }
        // Caddy: the JSON config (key in it, persistence off) before the Caddyfile, which
        // takes the key from the environment; neither mode has the other's key.
        let caddy = Adapter::find("caddy").unwrap();
        assert_eq!(caddy.secret_modes(), ["config-file", "env"]);
        let json = caddy.in_mode("config-file").unwrap();
        assert_eq!(json.env["CADDY_EAB_MAC_KEY"], "");
        let config = json
            .files
            .iter()
            .find(|f| f.path.ends_with("caddy.json"))
            .unwrap();
        assert_eq!(config.mode, 0o600);
        assert!(config.content.contains(r#""persist": false"#));
        let env = caddy.in_mode("env").unwrap();
        assert_eq!(env.env["CADDY_EAB_MAC_KEY"], "{eab_hmac_key}");
        assert!(
            !env.files
                .iter()
                .any(|f| f.content.contains("{eab_hmac_key}"))
        );
        let caddyfile = env
            .files
            .iter()
            .find(|f| f.path.ends_with("Caddyfile"))
            .unwrap();
        assert!(caddyfile.content.contains("mac_key {$CADDY_EAB_MAC_KEY}"));
        assert!(caddyfile.content.contains("admin off"));
        // certbot from PyPI is run like Debian's: the 0600 cli.ini first.
        let pypi = Adapter::find("certbot-pypi").unwrap();
        assert_eq!(pypi.secret_modes(), ["config-file", "flag"]);
    }

    #[test]
    fn a_support_file_is_copied_verbatim_and_found_beside_the_adapter_file() {
        let dir = std::env::temp_dir().join(format!("adapter-support-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.sh"), "echo {domain} ${HOME}\n").unwrap();
        let toml = dir.join("mine.toml");
        std::fs::write(
            &toml,
            "name='mine'\ntrust='env'\nissue=[['sh','{workdir}/run.sh']]\n\
             key_types={rsa='a',ecdsa='b'}\n[[file]]\npath='{workdir}/run.sh'\nfrom='run.sh'\n",
        )
        .unwrap();
        let a = Adapter::find(toml.to_str().unwrap()).unwrap();
        let v = Values {
            directory: "https://127.0.0.1:1/d".into(),
            eab_kid: "K".into(),
            eab_hmac_key: "H".into(),
            domain: "physics.example.edu".into(),
            ca_bundle: "/ca".into(),
            workdir: "/w".into(),
            http_port: 1,
            key_type: "rsa".into(),
            harness: None,
            preferred_chain: String::new(),
        };
        // Placeholders in a support file are left alone.
        assert_eq!(a.files[0].text(&v), "echo {domain} ${HOME}\n");
        std::fs::remove_file(dir.join("run.sh")).unwrap();
        let e = Adapter::find(toml.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no support file \"run.sh\""), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let both = Adapter::parse(
            "name='x'\ntrust='env'\nissue=[['true']]\nkey_types={rsa='a',ecdsa='b'}\n\
             [[file]]\npath='p'\nfrom='f'\ncontent='c'\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
    }

    #[test]
    fn an_unusable_client_runs_only_the_scenario_that_confirms_it() {
        let all = crate::Scenario::built_in();
        let tiny = Adapter::find("acme-tiny").unwrap();
        assert!(
            tiny.unusable
                .as_deref()
                .unwrap()
                .contains("External Account Binding")
        );
        let ids: Vec<&str> = tiny.scenarios_for(&all).iter().map(|s| s.id).collect();
        assert_eq!(ids, ["happy-rsa-ov-rsa"]);
        // Given only refusal scenarios, there is nothing to confirm it with.
        let refusals: Vec<_> = all
            .iter()
            .filter(|s| s.expect == crate::scenario::Expect::Refuse)
            .cloned()
            .collect();
        assert!(tiny.scenarios_for(&refusals).is_empty());
        // Any other client runs every scenario.
        let lego = Adapter::find("lego").unwrap();
        assert_eq!(lego.scenarios_for(&all).len(), all.len());
        let empty = Adapter::parse(
            "name='x'\ntrust='env'\nissue=[['true']]\nkey_types={rsa='a',ecdsa='b'}\nunusable=' '\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(empty.to_string().contains("needs the reason"), "{empty}");
    }

    #[test]
    fn a_client_whose_library_is_missing_is_not_installed() {
        let mut a = Adapter::custom(vec!["true".into()]);
        a.version = vec!["sh".into(), "-c".into(), "echo 'tool 1.2'".into()];
        a.needs = vec!["/nonexistent/acme-harness/node_modules/acme-client".into()];
        let e = a.detect(None).unwrap_err();
        assert!(
            e.contains("/nonexistent/acme-harness/node_modules/acme-client is not there"),
            "{e}"
        );
        a.needs = vec![std::env::temp_dir().display().to_string()];
        assert_eq!(a.detect(None).unwrap().as_deref(), Some("tool 1.2"));
        // The library-based client names the library it loads.
        let node = Adapter::find("node-acme-client").unwrap();
        assert!(
            node.needs
                .iter()
                .any(|n| n.ends_with("node_modules/acme-client/package.json"))
        );
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
