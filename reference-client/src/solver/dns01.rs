//! dns-01 (RFC 8555 §8.4) through a hook command that publishes and removes the TXT record.

use acme_proto::ChallengeType;
use std::path::PathBuf;
use std::time::Duration;

use super::{BoxFuture, ChallengeData, Solver};
use crate::error::{Error, Result};

/// Runs `COMMAND add|remove <record name> <value> <identifier>` to publish and remove the
/// `_acme-challenge` TXT record, with the same values in `ACME_DNS_ACTION`, `ACME_TXT_NAME`,
/// `ACME_TXT_VALUE` and `ACME_DOMAIN`. A non-zero exit fails the challenge. After `add` it
/// waits `propagation` before the CA is asked to look.
#[derive(Debug)]
pub struct Dns01Hook {
    command: PathBuf,
    propagation: Duration,
}

impl Dns01Hook {
    /// A solver running `command` (an executable path, not a shell line).
    pub fn new(command: impl Into<PathBuf>, propagation: Duration) -> Self {
        Self {
            command: command.into(),
            propagation,
        }
    }

    async fn run(&self, action: &str, challenge: &ChallengeData) -> Result<()> {
        let name = challenge.dns_name();
        let value = challenge.dns_value();
        let output = tokio::process::Command::new(&self.command)
            .args([action, &name, &value, &challenge.identifier])
            .env("ACME_DNS_ACTION", action)
            .env("ACME_TXT_NAME", &name)
            .env("ACME_TXT_VALUE", &value)
            .env("ACME_DOMAIN", &challenge.identifier)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Error::Solver {
                kind: ChallengeType::Dns01,
                message: format!("cannot run {}: {e}", self.command.display()),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(Error::Solver {
            kind: ChallengeType::Dns01,
            message: format!(
                "{} {action} {name} exited with {}: {}",
                self.command.display(),
                output.status,
                stderr.trim()
            ),
        })
    }
}

impl Solver for Dns01Hook {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Dns01
    }

    fn supports(&self, _wildcard: bool) -> bool {
        true
    }

    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.run("add", challenge).await?;
            if !self.propagation.is_zero() {
                tokio::time::sleep(self.propagation).await;
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.run("remove", challenge).await })
    }
}

/// Publishes the TXT record through the acme-harness mock's admin API
/// (`PUT {admin_url}/dns/{name}`), for tests and CI against the mock's real dns-01 validation.
pub struct Dns01MockAdmin {
    http: reqwest::Client,
    admin_url: String,
    token: acme_proto::Secret<String>,
}

impl std::fmt::Debug for Dns01MockAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns01MockAdmin")
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

impl Dns01MockAdmin {
    /// A solver calling the admin API at `admin_url` with `token`, over `http` (which must
    /// trust the mock's listener, as the ACME client's own does).
    pub fn new(
        http: reqwest::Client,
        admin_url: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        Self {
            http,
            admin_url: admin_url.into().trim_end_matches('/').to_owned(),
            token: acme_proto::Secret::new(token.into()),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        name: &str,
        body: Option<serde_json::Value>,
    ) -> Result<()> {
        let url = format!("{}/dns/{name}", self.admin_url);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.map_err(|e| Error::Solver {
            kind: ChallengeType::Dns01,
            message: format!("the mock's admin API at {url} is unreachable: {e}"),
        })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::Solver {
                kind: ChallengeType::Dns01,
                message: format!(
                    "the mock's admin API answered {} for {url}",
                    response.status()
                ),
            })
        }
    }
}

impl Solver for Dns01MockAdmin {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Dns01
    }

    fn supports(&self, _wildcard: bool) -> bool {
        true
    }

    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let body = serde_json::json!({ "txt": [challenge.dns_value()] });
            self.call(reqwest::Method::PUT, &challenge.dns_name(), Some(body))
                .await
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.call(reqwest::Method::DELETE, &challenge.dns_name(), None)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_proto::{KeyAuthorization, SignatureAlgorithm};

    #[tokio::test]
    async fn hook_gets_arguments_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hook = dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho \"$1 $2 $3 $4 $ACME_TXT_NAME $ACME_TXT_VALUE\" >> {}\n[ \"$4\" != fail.example ]\n",
                log.display()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let mut ch = ChallengeData {
            identifier: "example.org".into(),
            wildcard: true,
            kind: ChallengeType::Dns01,
            token: "tok".into(),
            key_authorization: KeyAuthorization::new("tok", &key.jwk().thumbprint()),
        };
        let solver = Dns01Hook::new(&hook, Duration::ZERO);
        assert!(solver.supports(true));
        solver.present(&ch).await.unwrap();
        solver.cleanup(&ch).await.unwrap();
        let v = ch.dns_value();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!(
                "add _acme-challenge.example.org {v} example.org _acme-challenge.example.org {v}\nremove _acme-challenge.example.org {v} example.org _acme-challenge.example.org {v}\n"
            )
        );
        ch.identifier = "fail.example".into();
        let e = solver.present(&ch).await.unwrap_err();
        assert!(e.to_string().contains("exited with"), "{e}");
    }
}
