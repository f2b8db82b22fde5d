//! `acme-harness client ...`: the reference ACME client for people and scripts.
//!
//! State (account key 0600, account.json without any secret) lives under
//! `--state-dir/accounts/<server>/`; certificates go to `--out` (default
//! `--state-dir/live/<first name>/`). The EAB HMAC key is read from a file or the environment,
//! never from the command line, and is never written anywhere.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acme_proto::{Secret, SignatureAlgorithm};
use clap::{Args, Subcommand};
use reference_client::cert::{CertInfo, WrittenFiles, pkcs12, renewal_due, write_pem_files};
use reference_client::solver::{
    Dns01Hook, Http01Standalone, Http01Webroot, Solver, TlsAlpn01Standalone,
};
use reference_client::store::{AccountState, AccountStore, OrderRecord};
use reference_client::{
    ACCOUNT_KEY_TYPES, Account, CertKeyType, Client, ClientConfig, CsrSource, EabCredential, Error,
    ErrorClass, IssueRequest, NewAccountOptions, Progress, REVOCATION_REASONS,
    generate_account_key, write_private,
};
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
pub(crate) struct ClientArgs {
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

/// An error with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
    problem: Option<Value>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
            problem: None,
        }
    }
    fn class(&self) -> &'static str {
        match self.code {
            2 => "usage",
            3 => "refused",
            4 => "transport",
            _ => "local",
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.class() {
            ErrorClass::Refused => 3,
            ErrorClass::Transport => 4,
            ErrorClass::Usage => 2,
            _ => 1,
        };
        Self {
            code,
            message: e.to_string(),
            problem: e.problem().and_then(|p| serde_json::to_value(p).ok()),
        }
    }
}

type Outcome = Result<(Value, String), Failure>;

/// Runs a client command. Exits the process with the command's exit code (0-4, see
/// `--help`): the codes are part of the interface scripts rely on.
pub(crate) async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let json_mode = match &args.command {
        ClientCommand::Register(a) => a.common.json,
        ClientCommand::Issue(a) => a.common.json,
        ClientCommand::Renew(a) => a.common.json,
        ClientCommand::Revoke(a) => a.common.json,
        ClientCommand::Deactivate(a) => a.common.json,
        ClientCommand::Rollover(a) => a.common.json,
        ClientCommand::Show(a) => a.common.json,
    };
    let outcome = match args.command {
        ClientCommand::Register(a) => register(*a).await,
        ClientCommand::Issue(a) => issue(*a).await,
        ClientCommand::Renew(a) => renew(*a).await,
        ClientCommand::Revoke(a) => revoke(*a).await,
        ClientCommand::Deactivate(a) => deactivate(*a).await,
        ClientCommand::Rollover(a) => rollover(*a).await,
        ClientCommand::Show(a) => show(*a).await,
    };
    let code = match outcome {
        Ok((value, text)) => {
            if json_mode {
                let mut value = value;
                value["ok"] = Value::Bool(true);
                println!("{value:#}");
            } else {
                print!("{text}");
            }
            0
        }
        Err(f) => {
            if json_mode {
                let v = json!({
                    "ok": false,
                    "error": {"class": f.class(), "exit_code": f.code, "message": f.message, "problem": f.problem},
                });
                println!("{v:#}");
            }
            eprintln!("error: {}", f.message);
            f.code
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    Ok(ExitCode::from(code))
}

// ---- state -------------------------------------------------------------------------------

fn state_root(common: &CommonArgs) -> Result<PathBuf, Failure> {
    match &common.state_dir {
        Some(d) => Ok(d.clone()),
        None => dirs::data_local_dir()
            .map(|d| d.join("acme-harness").join("client"))
            .ok_or_else(|| Failure::usage("cannot find a data directory: pass --state-dir DIR")),
    }
}

/// The account store of the `--server` directory under the state root.
fn store(common: &CommonArgs) -> Result<AccountStore, Failure> {
    Ok(AccountStore::for_directory(
        &state_root(common)?,
        &common.server,
    ))
}

// ---- helpers ------------------------------------------------------------------------------

async fn connect(common: &CommonArgs) -> Result<Client, Failure> {
    let progress: reference_client::ProgressFn = Arc::new(|p: &Progress| eprintln!("{p}"));
    let config = ClientConfig {
        ca_files: common.ca_files.clone(),
        deadline: Duration::from_secs(common.timeout),
        progress: Some(progress),
        ..ClientConfig::default()
    };
    Ok(Client::connect(&common.server, config).await?)
}

fn key_type(name: &str) -> Result<SignatureAlgorithm, Failure> {
    ACCOUNT_KEY_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            Failure::usage(format!(
                "unknown account key type {name:?}: use es256, es384, rs256 or eddsa"
            ))
        })
}

/// The EAB credential from --eab-kid and the HMAC key file or environment.
fn eab_credential(eab: &EabArgs) -> Result<Option<EabCredential>, Failure> {
    let alg = acme_proto::eab::MacAlgorithm::from_name(&eab.eab_alg);
    Ok(EabCredential::from_command_line(
        eab.eab_kid.as_deref(),
        eab.eab_hmac_key_file.as_deref(),
        ENV_HMAC,
        alg,
    )?)
}

/// The stored account, or a new one registered with the EAB flags.
async fn account(
    client: &Client,
    common: &CommonArgs,
    eab: Option<&EabArgs>,
) -> Result<(Account, AccountState, bool), Failure> {
    let store = store(common)?;
    if let Some((state, key)) = store.load()? {
        let url = state.url.clone();
        return Ok((client.account(key, url), state, false));
    }
    let Some(eab) = eab else {
        return Err(Failure::usage(format!(
            "no account for {} in {}: run `acme-harness client register` first",
            common.server,
            store.dir().display()
        )));
    };
    let alg = key_type(&eab.account_key_type)?;
    let key = generate_account_key(alg, eab.account_rsa_bits)?;
    let credential = eab_credential(eab)?;
    let contact: Vec<String> = eab
        .emails
        .iter()
        .map(|e| {
            if e.starts_with("mailto:") {
                e.clone()
            } else {
                format!("mailto:{e}")
            }
        })
        .collect();
    let registered = client
        .new_account(
            key,
            &NewAccountOptions {
                contact: contact.clone(),
                terms_of_service_agreed: eab.agree_tos,
                eab: credential.clone(),
            },
        )
        .await?;
    store.save_key(registered.account.key())?;
    let state = AccountState {
        directory: common.server.clone(),
        url: registered.account.url().to_owned(),
        key_type: eab.account_key_type.to_ascii_lowercase(),
        contact,
        eab_kid: credential.as_ref().map(|c| c.kid().to_owned()),
        orders: Vec::new(),
    };
    store.save_state(&state)?;
    Ok((registered.account, state, registered.created))
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
        out.push(Box::new(Dns01Hook::new(
            cmd,
            Duration::from_secs(args.dns_propagation),
        )));
    }
    out
}

fn pfx_password(cert: &CertArgs) -> Result<Option<Secret<String>>, Failure> {
    if !cert.pfx {
        if cert.pfx_password_file.is_some() {
            return Err(Failure::usage("--pfx-password-file needs --pfx"));
        }
        return Ok(None);
    }
    let text = match &cert.pfx_password_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--pfx-password-file {}: {e}", path.display())))?,
        None => std::env::var(ENV_PFX).map_err(|_| {
            Failure::usage(format!(
                "--pfx needs a password: --pfx-password-file FILE or {ENV_PFX}"
            ))
        })?,
    };
    // A file written by `echo` ends with a newline that is not part of the password.
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(Failure::usage("the PFX password is empty"));
    }
    Ok(Some(Secret::new(password)))
}

/// Orders, finalizes, writes the files; shared by issue and renew.
async fn obtain(
    client: &Client,
    common: &CommonArgs,
    eab: &EabArgs,
    names: Vec<String>,
    cert: &CertArgs,
    solver_args: &SolverArgs,
) -> Outcome {
    let password = pfx_password(cert)?;
    let (csr, names) = match &cert.csr {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("--csr {}: {e}", path.display())))?;
            let (der, csr_names) = reference_client::cert::read_csr(&bytes)?;
            let names = if names.is_empty() { csr_names } else { names };
            (CsrSource::Given(der), names)
        }
        None => {
            let kind = CertKeyType::parse(&cert.key_type).ok_or_else(|| {
                Failure::usage(format!(
                    "unknown --key-type {:?}: use p256, p384, rsa2048, rsa3072 or rsa4096",
                    cert.key_type
                ))
            })?;
            (CsrSource::Generate(kind), names)
        }
    };
    if names.is_empty() {
        return Err(Failure::usage(
            "no name to certify: give -d NAME (repeatable)",
        ));
    }
    if password.is_some() && matches!(csr, CsrSource::Given(_)) {
        return Err(Failure::usage(
            "--pfx needs the private key, which the client does not have with --csr",
        ));
    }
    let out = match &cert.out {
        Some(d) => d.clone(),
        None => state_root(common)?
            .join("live")
            .join(names[0].trim_start_matches("*.")),
    };
    let (account, mut state, _) = account(client, common, Some(eab)).await?;
    let solvers = solvers(solver_args);
    let solver_refs: Vec<&dyn Solver> = solvers.iter().map(|s| s.as_ref()).collect();
    let issued = account
        .issue(
            IssueRequest {
                names: names.clone(),
                csr,
                preferred_chain: cert.preferred_chain.clone(),
            },
            &solver_refs,
        )
        .await?;
    let key_pem = issued.key.as_ref().map(|k| k.to_pem());
    let mut files: WrittenFiles = write_pem_files(&out, &issued.chain, key_pem.as_ref())?;
    if let (Some(password), Some(key)) = (&password, &issued.key) {
        let der = pkcs12(&issued.chain, &key.to_der(), password, &names[0])?;
        let path = out.join("cert.pfx");
        write_private(&path, der.expose())?;
        files.pfx = Some(path);
    }
    state.orders.push(OrderRecord {
        url: issued.order.url.clone(),
        names: names.clone(),
        certificate: issued.order.order.certificate.clone(),
        out: Some(out.clone()),
        at: time::OffsetDateTime::now_utc(),
    });
    store(common)?.save_state(&state)?;
    let info = CertInfo::from_der(issued.chain.leaf())?;
    let text = format!(
        "certificate for {} issued by {}\nvalid until {}\nfiles:\n  {}\n  {}\n  {}\n{}{}",
        info.names.join(", "),
        info.issuer,
        info.not_after,
        files.cert.display(),
        files.chain.display(),
        files.fullchain.display(),
        files
            .privkey
            .as_ref()
            .map(|p| format!("  {} (mode 0600)\n", p.display()))
            .unwrap_or_default(),
        files
            .pfx
            .as_ref()
            .map(|p| format!("  {} (mode 0600)\n", p.display()))
            .unwrap_or_default(),
    );
    let value = json!({
        "command": "issue",
        "order": issued.order.url,
        "certificate_url": issued.order.order.certificate,
        "certificate": info,
        "chains_offered": issued.alternatives.iter().map(|c| c.top_issuer()).collect::<Vec<_>>(),
        "files": files,
    });
    Ok((value, text))
}

fn first_cert_der(path: &Path) -> Result<Vec<u8>, Failure> {
    let pem =
        std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .and_then(|c| c.ok())
        .map(|c| c.to_vec())
        .ok_or_else(|| Failure::usage(format!("{} holds no PEM certificate", path.display())))
}

// ---- commands -----------------------------------------------------------------------------

async fn register(args: RegisterArgs) -> Outcome {
    let client = connect(&args.common).await?;
    let dir = store(&args.common)?.dir().to_owned();
    let existed = store(&args.common)?.exists();
    let (account, state, created) = account(&client, &args.common, Some(&args.eab)).await?;
    let object = account.fetch().await?;
    let what = if existed {
        "account already registered"
    } else if created {
        "account created"
    } else {
        "account found (the key already had one)"
    };
    let text = format!(
        "{what}: {}\nstatus: {}\naccount key: {} in {}\n",
        account.url(),
        object.status.as_str(),
        account.key().jwk().describe(),
        dir.join("account-key.pem").display()
    );
    Ok((
        json!({"command": "register", "account": account.url(), "created": created && !existed,
               "status": object.status, "eab_kid": state.eab_kid, "state_dir": dir}),
        text,
    ))
}

async fn issue(args: IssueArgs) -> Outcome {
    let client = connect(&args.common).await?;
    obtain(
        &client,
        &args.common,
        &args.eab,
        args.domains.clone(),
        &args.cert,
        &args.solvers,
    )
    .await
}

async fn renew(args: RenewArgs) -> Outcome {
    let out = match &args.cert.out {
        Some(d) => d.clone(),
        None if !args.domains.is_empty() => state_root(&args.common)?
            .join("live")
            .join(args.domains[0].trim_start_matches("*.")),
        None => {
            return Err(Failure::usage(
                "renew needs the certificate directory: --out DIR (or -d NAME for the default one)",
            ));
        }
    };
    let current = first_cert_der(&out.join("cert.pem"))?;
    let info = CertInfo::from_der(&current)?;
    let client = connect(&args.common).await?;
    let now = time::OffsetDateTime::now_utc();
    let mut decision = renewal_due(
        &info,
        now,
        if args.days.is_some() { 0.0 } else { 1.0 / 3.0 },
        args.days.map(|d| Duration::from_secs(d * 86_400)),
    );
    // ARI, where the CA offers it: its window wins over the lifetime rule.
    if let Ok(Some(window)) = client.renewal_info(&current).await {
        decision.due = now >= window.start;
        decision.reason = format!(
            "the CA suggests renewing between {} and {}",
            window.start, window.end
        );
    }
    if !decision.due && !args.force {
        return Ok((
            json!({"command": "renew", "renewed": false, "reason": decision.reason, "certificate": info}),
            format!("not renewed: {}\n", decision.reason),
        ));
    }
    let names = if args.domains.is_empty() {
        info.names.clone()
    } else {
        args.domains.clone()
    };
    let mut cert = args.cert;
    cert.out = Some(out);
    let (mut value, text) = obtain(
        &client,
        &args.common,
        &args.eab,
        names,
        &cert,
        &args.solvers,
    )
    .await?;
    value["command"] = "renew".into();
    value["renewed"] = true.into();
    value["reason"] = decision.reason.clone().into();
    Ok((value, format!("renewing: {}\n{text}", decision.reason)))
}

async fn revoke(args: RevokeArgs) -> Outcome {
    let der = first_cert_der(&args.cert)?;
    let reason = match &args.reason {
        None => None,
        Some(r) => Some(
            REVOCATION_REASONS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(r))
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "unknown --reason {r:?}: use one of {}",
                        REVOCATION_REASONS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        ),
    };
    let client = connect(&args.common).await?;
    let by = match &args.cert_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("--cert-key {}: {e}", path.display())))?;
            client
                .revoke_with_cert_key(&der, &Secret::new(pem), reason)
                .await?;
            "the certificate's key"
        }
        None => {
            let (account, _, _) = account(&client, &args.common, None).await?;
            account.revoke(&der, reason).await?;
            "the account"
        }
    };
    let info = CertInfo::from_der(&der)?;
    Ok((
        json!({"command": "revoke", "serial": info.serial, "reason": reason, "signed_by": by}),
        format!("revoked certificate {} (signed by {by})\n", info.serial),
    ))
}

async fn deactivate(args: DeactivateArgs) -> Outcome {
    if !args.yes {
        return Err(Failure::usage(
            "deactivation is permanent: add --yes to confirm",
        ));
    }
    let client = connect(&args.common).await?;
    let (account, _, _) = account(&client, &args.common, None).await?;
    account.deactivate().await?;
    // Keep the key for the record, but stop using the account.
    store(&args.common)?.retire()?;
    Ok((
        json!({"command": "deactivate", "account": account.url()}),
        format!("account deactivated: {}\n", account.url()),
    ))
}

async fn rollover(args: RolloverArgs) -> Outcome {
    let client = connect(&args.common).await?;
    let (mut account, mut state, _) = account(&client, &args.common, None).await?;
    let alg = key_type(&args.new_key_type)?;
    let new_key = generate_account_key(alg, args.rsa_bits)?;
    let store = store(&args.common)?;
    let old = account.rollover(new_key).await?;
    // Keep the old key until the new one is safely stored.
    let old_path = store.save_old_key(&old)?;
    store.save_key(account.key())?;
    state.key_type = args.new_key_type.to_ascii_lowercase();
    store.save_state(&state)?;
    Ok((
        json!({"command": "rollover", "account": account.url(), "key": account.key().jwk().describe()}),
        format!(
            "account key replaced ({}); the old key is in {}\n",
            account.key().jwk().describe(),
            old_path.display()
        ),
    ))
}

async fn show(args: ShowArgs) -> Outcome {
    let client = connect(&args.common).await?;
    let (account, state, _) = account(&client, &args.common, None).await?;
    let object = account.fetch().await?;
    let mut text = format!(
        "account: {}\nstatus: {}\ncontact: {}\nkey: {} (thumbprint {})\neab key id: {}\n",
        account.url(),
        object.status.as_str(),
        object.contact.clone().unwrap_or_default().join(", "),
        account.key().jwk().describe(),
        account.key().jwk().thumbprint(),
        state.eab_kid.as_deref().unwrap_or("-"),
    );
    let mut orders = Vec::new();
    if !state.orders.is_empty() {
        text.push_str("orders made by this client:\n");
    }
    for record in state.orders.iter().rev().take(20) {
        let status = match account.fetch_order(&record.url).await {
            Ok((o, _)) => o.status.as_str().to_owned(),
            Err(e) => format!("unknown ({e})"),
        };
        let cert = record
            .out
            .as_ref()
            .and_then(|d| first_cert_der(&d.join("cert.pem")).ok())
            .and_then(|der| CertInfo::from_der(&der).ok());
        text.push_str(&format!(
            "  {} {} [{}]{}\n",
            record.at.date(),
            record.names.join(", "),
            status,
            cert.as_ref()
                .map(|c| format!(" valid until {}", c.not_after.date()))
                .unwrap_or_default()
        ));
        orders.push(
            json!({"url": record.url, "names": record.names, "status": status,
                           "out": record.out, "not_after": cert.map(|c| c.not_after.to_string())}),
        );
    }
    Ok((
        json!({"command": "show", "account": account.url(), "status": object.status,
               "contact": object.contact, "key": account.key().jwk().describe(),
               "thumbprint": account.key().jwk().thumbprint(), "eab_kid": state.eab_kid,
               "orders": orders}),
        text,
    ))
}
