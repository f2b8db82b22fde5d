//! The reference client's command line, `acme-harness client ...`, for people and scripts
//! (feature `cli`): its arguments, what each subcommand calls, its output and exit codes.
//!
//! State (account key 0600, account.json without any secret) lives under
//! `--state-dir/accounts/<server>/`; certificates go to `--out` (default
//! `--state-dir/live/<first name>/`). The EAB HMAC key is read from a file or the environment,
//! never from the command line, and is never written anywhere.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::manage::{CertRequest, Registration, Workspace, secret_from_file_or_env};
use crate::solver::{Dns01Hook, Http01Standalone, Http01Webroot, Solver, TlsAlpn01Standalone};
use crate::{Client, ClientConfig, Error, Progress};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Environment variable holding the EAB HMAC key (instead of --eab-hmac-key-file).
const ENV_HMAC: &str = "ACME_HARNESS_EAB_HMAC_KEY";
/// Environment variable holding the PFX password (instead of --pfx-password-file).
const ENV_PFX: &str = "ACME_HARNESS_PFX_PASSWORD";

const AFTER_HELP: &str = "\
Examples (InCommon; the CA gives you the URL, the key id and the HMAC key):
  printf '%s' 'HMAC-KEY-FROM-THE-CA' > ~/.eab-hmac && chmod 600 ~/.eab-hmac
  acme-harness client register --server https://acme.sectigo.com/v2/InCommonRSAOV \\
      --eab-kid KEY-ID --eab-hmac-key-file ~/.eab-hmac --email admin@example.edu --agree-tos
  acme-harness client issue --server https://acme.sectigo.com/v2/InCommonRSAOV \\
      -d www.example.edu -d example.edu --out /etc/ssl/example --pfx --pfx-password-file ~/.pfx-pass
  acme-harness client renew --server https://acme.sectigo.com/v2/InCommonRSAOV \\
      --out /etc/ssl/example

Names delegated to your ACME account come back already valid: no challenge flag is needed.
For other CAs pick a solver: --http-01 ADDR:PORT, --webroot DIR, --tls-alpn-01 ADDR:PORT or
--dns-hook COMMAND.

Secrets: the HMAC key is read from --eab-hmac-key-file or ACME_HARNESS_EAB_HMAC_KEY, never
from the command line, used only to sign the account binding, and never written or printed.
Account keys and private keys are written with mode 0600.

Exit codes:
  0  success (renew: also when no renewal was due)
  1  local trouble: files, keys, a challenge solver
  2  usage: a missing or wrong flag or file
  3  refused by the CA (its problem document is printed: type, detail, subproblems)
  4  network or transport: cannot connect, TLS, non-ACME answers, deadline reached";

/// Reference ACME client: register an account with EAB, issue, renew and revoke certificates.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ClientArgs {
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create (or find) the ACME account, binding it with the EAB key id and HMAC key.
    Register(Box<RegisterArgs>),
    /// Obtain a certificate (registers first if there is no account yet).
    Issue(Box<IssueArgs>),
    /// Renew the certificate in --out when it is due (last third of its lifetime, or --days).
    Renew(Box<RenewArgs>),
    /// Revoke a certificate, as the account or with the certificate's own key.
    Revoke(Box<RevokeArgs>),
    /// Deactivate the account for good (the CA refuses it afterwards).
    Deactivate(Box<DeactivateArgs>),
    /// Replace the account key (key rollover; Sectigo does not support it).
    Rollover(Box<RolloverArgs>),
    /// Show the account and the orders this client made with it.
    Show(Box<ShowArgs>),
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The ACME directory URL (Sectigo: the base URL, e.g.
    /// https://acme.sectigo.com/v2/InCommonRSAOV).
    #[arg(long, env = "ACME_HARNESS_SERVER", value_name = "URL")]
    server: String,

    /// PEM file of CA certificates to trust for the server (a private CA, the mock's
    /// ca-bundle.pem); repeatable. Default: the system's bundle.
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,

    /// Where the account key and account.json are kept.
    /// Default: ~/.local/share/acme-harness/client.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Give up after this many seconds in all (waits for Retry-After count).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    timeout: u64,

    /// Print one JSON object on stdout instead of human text (progress stays on stderr).
    #[arg(long)]
    json: bool,

    /// Misbehave: poll whatever Retry-After asks (a planted client for vet's own tests).
    #[arg(long, hide = true)]
    planted_ignore_retry_after: bool,
}

#[derive(Debug, Args)]
struct EabArgs {
    /// EAB key id from the CA (base64url: one that starts with `-` is taken as the id).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    eab_kid: Option<String>,

    /// File holding the EAB HMAC key (base64url, padded or not). Or set
    /// ACME_HARNESS_EAB_HMAC_KEY.
    #[arg(long, value_name = "FILE")]
    eab_hmac_key_file: Option<PathBuf>,

    /// EAB MAC algorithm.
    #[arg(long, default_value = "HS256", value_parser = ["HS256", "HS384", "HS512"])]
    eab_alg: String,

    /// Contact email for the account; repeatable.
    #[arg(long = "email", value_name = "ADDRESS")]
    emails: Vec<String>,

    /// Agree to the CA's terms of service.
    #[arg(long)]
    agree_tos: bool,

    /// Account key type for a new account: es256, es384, rs256, eddsa.
    #[arg(long, default_value = "es256", value_name = "TYPE")]
    account_key_type: String,

    /// RSA account key size (rs256).
    #[arg(long, default_value_t = 2048, value_name = "BITS")]
    account_rsa_bits: u32,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    eab: EabArgs,
}

#[derive(Debug, Args)]
struct SolverArgs {
    /// Answer http-01 from a built-in web server listening on ADDR:PORT (the CA connects to
    /// port 80 of each name), e.g. 0.0.0.0:80.
    #[arg(long = "http-01", value_name = "ADDR:PORT")]
    http01: Option<SocketAddr>,

    /// Answer http-01 by writing files under DIR/.well-known/acme-challenge/ for a web server
    /// that already serves the names.
    #[arg(long, value_name = "DIR")]
    webroot: Option<PathBuf>,

    /// Answer tls-alpn-01 from a built-in TLS listener on ADDR:PORT (the CA connects to port
    /// 443), e.g. 0.0.0.0:443.
    #[arg(long = "tls-alpn-01", value_name = "ADDR:PORT")]
    tls_alpn01: Option<SocketAddr>,

    /// Answer dns-01 with a command run as `COMMAND add|remove RECORD VALUE DOMAIN` that
    /// publishes and removes the _acme-challenge TXT record.
    #[arg(long, value_name = "COMMAND")]
    dns_hook: Option<PathBuf>,

    /// Seconds to wait after the DNS hook's `add` before the CA looks.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    dns_propagation: u64,
}

#[derive(Debug, Args)]
struct CertArgs {
    /// Certificate key: p256 (default), p384, rsa2048, rsa3072, rsa4096. Always a fresh key,
    /// never the account key.
    #[arg(long, default_value = "p256", value_name = "TYPE")]
    key_type: String,

    /// Use this CSR (PEM or DER) instead of making a key; the names come from the CSR.
    #[arg(long, value_name = "FILE", conflicts_with = "key_type")]
    csr: Option<PathBuf>,

    /// Prefer the chain whose top issuer has this common name, when the CA offers several.
    #[arg(long, value_name = "ISSUER CN")]
    preferred_chain: Option<String>,

    /// Directory for cert.pem, chain.pem, fullchain.pem and privkey.pem (0600).
    /// Default: STATE_DIR/live/<first name>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Also write cert.pfx (PKCS#12, AES-256 + SHA-256) with the key and the full chain, for
    /// Windows/IIS.
    #[arg(long)]
    pfx: bool,

    /// File holding the PFX password. Or set ACME_HARNESS_PFX_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pfx_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct IssueArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A DNS name for the certificate; repeatable (`*.example.edu` for a wildcard).
    #[arg(short = 'd', long = "domain", value_name = "NAME")]
    domains: Vec<String>,
    #[command(flatten)]
    cert: CertArgs,
    #[command(flatten)]
    solvers: SolverArgs,
    #[command(flatten)]
    eab: EabArgs,
}

#[derive(Debug, Args)]
struct RenewArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Names for the new certificate. Default: those of the current one.
    #[arg(short = 'd', long = "domain", value_name = "NAME")]
    domains: Vec<String>,
    /// Renew when fewer than DAYS remain (default: in the last third of the lifetime).
    #[arg(long, value_name = "DAYS")]
    days: Option<u64>,
    /// Renew even when not due.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    cert: CertArgs,
    #[command(flatten)]
    solvers: SolverArgs,
    #[command(flatten)]
    eab: EabArgs,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The certificate to revoke (PEM; the first certificate in the file).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Revoke with the certificate's private key (PEM) instead of the account.
    #[arg(long, value_name = "FILE")]
    cert_key: Option<PathBuf>,
    /// unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation.
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
}

#[derive(Debug, Args)]
struct DeactivateArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Confirm: a deactivated account cannot be used again.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Args)]
struct RolloverArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Type of the new account key: es256, es384, rs256, eddsa.
    #[arg(long, default_value = "es256", value_name = "TYPE")]
    new_key_type: String,
    /// RSA size of the new key (rs256).
    #[arg(long, default_value_t = 2048, value_name = "BITS")]
    rsa_bits: u32,
}

#[derive(Debug, Args)]
struct ShowArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Runs a client command and prints its answer (text, or one JSON object with `--json`).
/// Runs one subcommand, prints its answer (text, or JSON with `--json`) and returns the exit
/// code. The exit codes (0-4, see `--help`) are part of the interface scripts rely on.
pub async fn run(args: ClientArgs) -> ExitCode {
    let (name, common) = match &args.command {
        ClientCommand::Register(a) => ("register", &a.common),
        ClientCommand::Issue(a) => ("issue", &a.common),
        ClientCommand::Renew(a) => ("renew", &a.common),
        ClientCommand::Revoke(a) => ("revoke", &a.common),
        ClientCommand::Deactivate(a) => ("deactivate", &a.common),
        ClientCommand::Rollover(a) => ("rollover", &a.common),
        ClientCommand::Show(a) => ("show", &a.common),
    };
    let json_mode = common.json;
    let code = match command(args.command).await {
        Ok((mut value, text)) => {
            if json_mode {
                value["command"] = name.into();
                value["ok"] = true.into();
                println!("{value:#}");
            } else {
                print!("{text}");
            }
            0
        }
        Err(e) => {
            let (code, class) = (e.class().exit_code(), e.class().name());
            if json_mode {
                let problem = e.problem().and_then(|p| serde_json::to_value(p).ok());
                let error = json!({"class": class, "exit_code": code, "message": e.to_string(), "problem": problem});
                println!("{:#}", json!({"ok": false, "error": error}));
            }
            eprintln!("error: {e}");
            code
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    ExitCode::from(code)
}

/// The JSON and the text answer of a report.
fn answer<T: serde::Serialize + std::fmt::Display>(report: T) -> Result<(Value, String), Error> {
    let value = serde_json::to_value(&report)
        .map_err(|e| Error::InvalidInput(format!("cannot serialize the answer: {e}")))?;
    Ok((value, report.to_string()))
}

async fn command(command: ClientCommand) -> Result<(Value, String), Error> {
    match command {
        ClientCommand::Register(a) => {
            let (w, client) = connect(&a.common).await?;
            answer(w.register(&client, &registration(&a.eab)).await?)
        }
        ClientCommand::Issue(a) => {
            let (w, client) = connect(&a.common).await?;
            let request = cert_request(a.domains, a.cert)?;
            let solvers = solvers(&a.solvers);
            answer(
                w.obtain(&client, &registration(&a.eab), request, &refs(&solvers))
                    .await?,
            )
        }
        ClientCommand::Renew(a) => {
            let request = cert_request(a.domains, a.cert)?;
            let (w, client) = connect(&a.common).await?;
            let solvers = solvers(&a.solvers);
            let reg = registration(&a.eab);
            answer(
                w.renew(&client, &reg, request, a.days, a.force, &refs(&solvers))
                    .await?,
            )
        }
        ClientCommand::Revoke(a) => {
            let (w, client) = connect(&a.common).await?;
            answer(
                w.revoke(&client, &a.cert, a.cert_key.as_deref(), a.reason.as_deref())
                    .await?,
            )
        }
        ClientCommand::Deactivate(a) => {
            if !a.yes {
                return Err(Error::InvalidInput(
                    "deactivation is permanent: add --yes to confirm".into(),
                ));
            }
            let (w, client) = connect(&a.common).await?;
            answer(w.deactivate(&client).await?)
        }
        ClientCommand::Rollover(a) => {
            let (w, client) = connect(&a.common).await?;
            answer(w.rollover(&client, &a.new_key_type, a.rsa_bits).await?)
        }
        ClientCommand::Show(a) => {
            let (w, client) = connect(&a.common).await?;
            answer(w.show(&client).await?)
        }
    }
}

/// The state root's workspace for `--server`, and a client connected to it.
async fn connect(common: &CommonArgs) -> Result<(Workspace, Client), Error> {
    let root = match &common.state_dir {
        Some(d) => d.clone(),
        None => dirs::data_local_dir()
            .map(|d| d.join("acme-harness").join("client"))
            .ok_or_else(|| {
                Error::InvalidInput("cannot find a data directory: pass --state-dir DIR".into())
            })?,
    };
    let progress: crate::ProgressFn = Arc::new(|p: &Progress| eprintln!("{p}"));
    let config = ClientConfig {
        ca_files: common.ca_files.clone(),
        deadline: Duration::from_secs(common.timeout),
        progress: Some(progress),
        ignore_retry_after: common.planted_ignore_retry_after,
        ..ClientConfig::default()
    };
    let client = Client::connect(&common.server, config).await?;
    Ok((Workspace::new(root, common.server.clone()), client))
}

fn registration(eab: &EabArgs) -> Registration {
    Registration {
        key_type: eab.account_key_type.clone(),
        rsa_bits: eab.account_rsa_bits,
        eab_kid: eab.eab_kid.clone(),
        eab_hmac_key_file: eab.eab_hmac_key_file.clone(),
        eab_hmac_key_env: ENV_HMAC,
        eab_alg: eab.eab_alg.clone(),
        emails: eab.emails.clone(),
        agree_tos: eab.agree_tos,
    }
}

fn cert_request(names: Vec<String>, cert: CertArgs) -> Result<CertRequest, Error> {
    let file = cert.pfx_password_file.as_deref();
    let pfx_password = match (cert.pfx, file) {
        (false, Some(_)) => {
            return Err(Error::InvalidInput(
                "--pfx-password-file needs --pfx".into(),
            ));
        }
        (false, None) => None,
        (true, _) => Some(
            secret_from_file_or_env("--pfx-password-file", file, ENV_PFX)?.ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--pfx needs a password: --pfx-password-file FILE or {ENV_PFX}"
                ))
            })?,
        ),
    };
    Ok(CertRequest {
        names,
        csr: cert.csr,
        key_type: cert.key_type,
        out: cert.out,
        pfx_password,
        preferred_chain: cert.preferred_chain,
    })
}

fn solvers(args: &SolverArgs) -> Vec<Box<dyn Solver>> {
    let mut out: Vec<Box<dyn Solver>> = Vec::new();
    if let Some(addr) = args.http01 {
        out.push(Box::new(Http01Standalone::new(addr)));
    }
    if let Some(root) = &args.webroot {
        out.push(Box::new(Http01Webroot::new(root)));
    }
    if let Some(addr) = args.tls_alpn01 {
        out.push(Box::new(TlsAlpn01Standalone::new(addr)));
    }
    if let Some(cmd) = &args.dns_hook {
        let wait = Duration::from_secs(args.dns_propagation);
        out.push(Box::new(Dns01Hook::new(cmd, wait)));
    }
    out
}

fn refs(solvers: &[Box<dyn Solver>]) -> Vec<&dyn Solver> {
    solvers.iter().map(|s| s.as_ref()).collect()
}
