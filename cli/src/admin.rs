//! `acme-harness admin`: the admin API from the command line. Reads the URL, token and CA
//! from the data directory's ready.json unless told otherwise.

use std::path::PathBuf;

use acme_proto::transcript::Exchange;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use mock_server::ReadyInfo;
use mock_server::admin::api::{
    CertificateView, Created, CredentialView, FaultEventsView, MintedView, OrganizationView,
};
use sectigo_acme_mock::AdminClient;
use serde_json::{Value, json};

/// Arguments of `acme-harness admin`.
#[derive(Debug, Args)]
#[command(
    after_help = "The workflow of Sectigo's administrators, for a new department:\n\n  \
acme-harness admin org add --name \"Example College\" --country US --state Ohio\n  \
acme-harness admin domain add --org 2 college.example\n  \
acme-harness admin dept add --org 2 --name Library\n  \
acme-harness admin delegate --dept 3 lib.college.example\n  \
acme-harness admin eab create --dept 3 --domain lib.college.example\n  \
acme-harness admin eab revoke KEY_ID\n\n\
`org add` and `dept add` print the new ids; `eab create` prints the key id and HMAC key once;\n\
after `eab revoke`, the credential's ACME accounts are refused on every request.\n\
The URL, token and CA come from the data directory's ready.json (written by `serve`)."
)]
pub(crate) struct AdminArgs {
    /// The server's data directory (where ready.json is). Default: as `serve`'s.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Admin API URL, instead of ready.json's.
    #[arg(
        long,
        env = "ACME_HARNESS_ADMIN_URL",
        value_name = "URL",
        global = true
    )]
    url: Option<String>,

    /// Admin token, instead of ready.json's.
    #[arg(
        long,
        env = "ACME_HARNESS_ADMIN_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,

    /// PEM file that trusts the server, instead of ready.json's ca_bundle.
    #[arg(long, value_name = "FILE", global = true)]
    ca_file: Option<PathBuf>,

    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Organisations (the OV subject: name, country, state, locality).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Domains of an organisation and their validation.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Departments of an organisation.
    #[command(subcommand)]
    Dept(DeptCommand),
    /// Delegate a domain of the organisation to a department.
    Delegate {
        /// Department id.
        #[arg(long)]
        dept: usize,
        /// The domain (or a name below one of the organisation's).
        domain: String,
    },
    /// EAB credentials: a department's ACME accounts.
    #[command(subcommand)]
    Eab(EabCommand),
    /// Certificates issued through a credential.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The requests a credential's accounts sent, as recorded (secrets redacted).
    Requests {
        /// EAB key id (`-` for requests outside any credential).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// JSON Lines, for `acme-harness conformance grade`.
        #[arg(long)]
        jsonl: bool,
    },
    /// Fault plans per credential.
    #[command(subcommand)]
    Faults(FaultsCommand),
    /// Records of the mock DNS.
    #[command(subcommand)]
    Dns(DnsCommand),
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Add an organisation.
    Add {
        #[arg(long)]
        name: String,
        /// Two-letter country code.
        #[arg(long)]
        country: String,
        #[arg(long)]
        state: String,
        #[arg(long)]
        locality: Option<String>,
    },
    /// List organisations with their domains and departments.
    List,
}

#[derive(Debug, Subcommand)]
enum DomainCommand {
    /// Add a domain to an organisation (validated unless --unvalidated).
    Add {
        #[arg(long)]
        org: usize,
        name: String,
        /// Added but not validated: its names get real challenges.
        #[arg(long)]
        unvalidated: bool,
    },
    /// Mark a domain validated (or not, with --no).
    Validate {
        name: String,
        #[arg(long)]
        no: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeptCommand {
    /// Add a department.
    Add {
        #[arg(long)]
        org: usize,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum EabCommand {
    /// Mint a credential; prints the key id and HMAC key once.
    Create {
        #[arg(long)]
        dept: usize,
        /// Domain delegated to the credential; repeat for several.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// Let several ACME accounts bind with it (Sectigo's "EAB reuse").
        #[arg(long)]
        reusable: bool,
        /// Profile it is valid for; repeat for several; default every profile.
        #[arg(long = "profile")]
        profiles: Vec<String>,
    },
    /// List credentials (never their HMAC keys).
    List,
    /// Revoke a credential: its accounts are refused from now on.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Certificates issued through a credential.
    List {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Revoke a certificate by id.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// RFC 5280 reason code.
        #[arg(long)]
        reason: Option<u8>,
    },
}

#[derive(Debug, Subcommand)]
enum FaultsCommand {
    /// Set a credential's fault plan from a TOML or JSON file.
    Set {
        #[arg(allow_hyphen_values = true)]
        kid: String,
        file: PathBuf,
    },
    /// Show a credential's fault plan.
    Show {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Remove a credential's fault plan.
    Clear {
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// The faults injected so far, and the seed.
    Events,
}

#[derive(Debug, Subcommand)]
enum DnsCommand {
    /// Set the records of a name (replacing what was set before).
    Set {
        name: String,
        #[arg(long = "a")]
        a: Vec<std::net::Ipv4Addr>,
        #[arg(long = "aaaa")]
        aaaa: Vec<std::net::Ipv6Addr>,
        #[arg(long = "txt")]
        txt: Vec<String>,
        /// CAA `issue` value, e.g. sectigo.com.
        #[arg(long = "caa-issue")]
        caa_issue: Vec<String>,
    },
    /// Show the records of a name.
    Show { name: String },
    /// Forget what was set for a name (it resolves to 127.0.0.1 again).
    Clear { name: String },
}

/// The admin API of the server the flags or the data directory's ready.json name.
fn connect(args: &AdminArgs) -> anyhow::Result<AdminClient> {
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => crate::serve::default_data_dir()?,
    };
    let ready_path = dir.join("ready.json");
    let ready: Option<ReadyInfo> = match std::fs::read_to_string(&ready_path) {
        Ok(text) => Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not the ready.json `serve` writes",
                ready_path.display()
            )
        })?),
        Err(_) => None,
    };
    let missing = |what: &str, flag: &str| {
        anyhow::anyhow!(
            "no {what}: start `acme-harness serve` (it writes {}), or pass --data-dir or {flag}",
            ready_path.display()
        )
    };
    let url = args
        .url
        .clone()
        .or_else(|| ready.as_ref().and_then(|r| r.admin_url.clone()))
        .ok_or_else(|| missing("admin URL", "--url"))?;
    let token = args
        .token
        .clone()
        .or_else(|| ready.as_ref().and_then(|r| r.admin_token.clone()))
        .ok_or_else(|| missing("admin token", "--token"))?;
    let ca = args
        .ca_file
        .clone()
        .or_else(|| ready.as_ref().map(|r| r.ca_bundle.clone()))
        .ok_or_else(|| missing("CA bundle", "--ca-file"))?;
    AdminClient::new(url, Some(token), &ca).with_context(|| format!("--ca-file {}", ca.display()))
}

/// Lines of text, one view each, or `empty` when there are none.
fn lines<T: std::fmt::Display>(items: &[T], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_owned();
    }
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let api = connect(&args)?;
    let (value, text): (Value, String) = match &args.command {
        AdminCommand::Org(OrgCommand::Add {
            name,
            country,
            state,
            locality,
        }) => {
            let body =
                json!({"name": name, "country": country, "state": state, "locality": locality});
            let (created, v): (Created, _) = api.call_as(M::POST, "/organizations", body).await?;
            (v, format!("organisation {} added: {name}", created.id))
        }
        AdminCommand::Org(OrgCommand::List) => {
            let (orgs, v): (Vec<OrganizationView>, _) =
                api.call_as(M::GET, "/organizations", None).await?;
            (v, lines(&orgs, ""))
        }
        AdminCommand::Domain(DomainCommand::Add {
            org,
            name,
            unvalidated,
        }) => {
            let body = json!({"name": name, "validated": !unvalidated});
            let v = api
                .call(M::POST, &format!("/organizations/{org}/domains"), body)
                .await?;
            let how = if *unvalidated {
                "not validated"
            } else {
                "validated"
            };
            (
                v,
                format!("domain {name} added to organisation {org} ({how})"),
            )
        }
        AdminCommand::Domain(DomainCommand::Validate { name, no }) => {
            let body = json!({"validated": !no});
            let v = api
                .call(M::PUT, &format!("/domains/{name}/validation"), body)
                .await?;
            (v, format!("domain {name}: validated = {}", !no))
        }
        AdminCommand::Dept(DeptCommand::Add { org, name }) => {
            let path = format!("/organizations/{org}/departments");
            let (created, v): (Created, _) =
                api.call_as(M::POST, &path, json!({"name": name})).await?;
            (v, format!("department {} added: {name}", created.id))
        }
        AdminCommand::Delegate { dept, domain } => {
            let path = format!("/departments/{dept}/delegations");
            let v = api.call(M::POST, &path, json!({"domain": domain})).await?;
            (v, format!("{domain} delegated to department {dept}"))
        }
        AdminCommand::Eab(EabCommand::Create {
            dept,
            domains,
            reusable,
            profiles,
        }) => {
            let body = json!({"department": dept, "domains": domains, "reusable": reusable, "profiles": profiles});
            let (minted, v): (MintedView, _) = api.call_as(M::POST, "/eab", body).await?;
            (v, minted.to_string())
        }
        AdminCommand::Eab(EabCommand::List) => {
            let (credentials, v): (Vec<CredentialView>, _) =
                api.call_as(M::GET, "/eab", None).await?;
            (v, lines(&credentials, ""))
        }
        AdminCommand::Eab(EabCommand::Revoke { kid }) => {
            let v = api
                .call(M::POST, &format!("/eab/{kid}/revoke"), None)
                .await?;
            (
                v,
                format!("EAB credential {kid} revoked: its accounts are refused from now on"),
            )
        }
        AdminCommand::Certs(CertsCommand::List { kid }) => {
            let path = format!("/eab/{kid}/certificates");
            let (certs, v): (Vec<CertificateView>, _) = api.call_as(M::GET, &path, None).await?;
            (v, lines(&certs, "no certificates"))
        }
        AdminCommand::Certs(CertsCommand::Revoke { id, reason }) => {
            let path = format!("/certificates/{id}/revoke");
            let v = api.call(M::POST, &path, json!({"reason": reason})).await?;
            (v, format!("certificate {id} revoked"))
        }
        AdminCommand::Requests { kid, jsonl } => {
            let path = format!("/eab/{kid}/requests");
            let (exchanges, v): (Vec<Exchange>, _) = api.call_as(M::GET, &path, None).await?;
            if *jsonl {
                for e in &exchanges {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(());
            }
            (v, lines(&exchanges, ""))
        }
        AdminCommand::Faults(FaultsCommand::Set { kid, file }) => {
            let plan = mock_server::faults::FaultPlan::from_file(file)?;
            let body = serde_json::to_value(&plan)?;
            let v = api
                .call(M::PUT, &format!("/eab/{kid}/faults"), body)
                .await?;
            (
                v,
                format!("fault plan of {kid} set ({} rules)", plan.rules.len()),
            )
        }
        AdminCommand::Faults(FaultsCommand::Show { kid }) => {
            let v = api
                .call(M::GET, &format!("/eab/{kid}/faults"), None)
                .await?;
            let t = serde_json::to_string_pretty(&v)?;
            (v, t)
        }
        AdminCommand::Faults(FaultsCommand::Clear { kid }) => {
            api.call(M::DELETE, &format!("/eab/{kid}/faults"), None)
                .await?;
            (Value::Null, format!("fault plan of {kid} cleared"))
        }
        AdminCommand::Faults(FaultsCommand::Events) => {
            let (fired, v): (FaultEventsView, _) =
                api.call_as(M::GET, "/faults/events", None).await?;
            (v, fired.to_string())
        }
        AdminCommand::Dns(DnsCommand::Set {
            name,
            a,
            aaaa,
            txt,
            caa_issue,
        }) => {
            let caa: Vec<Value> = caa_issue
                .iter()
                .map(|v| json!({"tag": "issue", "value": v}))
                .collect();
            let body = json!({"a": a, "aaaa": aaaa, "txt": txt, "caa": caa});
            let v = api.call(M::PUT, &format!("/dns/{name}"), body).await?;
            (v, format!("records of {name} set"))
        }
        AdminCommand::Dns(DnsCommand::Show { name }) => {
            let v = api.call(M::GET, &format!("/dns/{name}"), None).await?;
            let t = serde_json::to_string_pretty(&v)?;
            (v, t)
        }
        AdminCommand::Dns(DnsCommand::Clear { name }) => {
            api.call(M::DELETE, &format!("/dns/{name}"), None).await?;
            (Value::Null, format!("records of {name} cleared"))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}
