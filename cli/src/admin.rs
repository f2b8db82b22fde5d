//! `acme-harness admin`: the admin API from the command line. Reads the URL, token and CA
//! from the data directory's ready.json unless told otherwise.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mock_server::admin::api::{NewDomain, NewEab, NewOrganization};
use mock_server::dns::{Caa, Records};
use sectigo_acme_mock::{AdminClient, Locate};
use serde_json::Value;

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
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => crate::serve::default_data_dir()?,
    };
    Ok(AdminClient::locate(&Locate {
        data_dir,
        url: args.url.clone(),
        token: args.token.clone(),
        ca_file: args.ca_file.clone(),
    })?)
}

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

/// An answer as JSON (for --json) and as text.
fn shown<T: serde::Serialize>(answer: &T, text: String) -> anyhow::Result<(Value, String)> {
    Ok((serde_json::to_value(answer)?, text))
}

fn pretty<T: serde::Serialize>(answer: &T) -> anyhow::Result<(Value, String)> {
    let value = serde_json::to_value(answer)?;
    let text = serde_json::to_string_pretty(&value)?;
    Ok((value, text))
}

pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let api = connect(&args)?;
    let (value, text) = match &args.command {
        AdminCommand::Org(OrgCommand::Add {
            name,
            country,
            state,
            locality,
        }) => {
            let org = NewOrganization {
                name: name.clone(),
                country: country.clone(),
                state: state.clone(),
                locality: locality.clone(),
            };
            let created = api.add_organization(&org).await?;
            shown(
                &created,
                format!("organisation {} added: {name}", created.id),
            )?
        }
        AdminCommand::Org(OrgCommand::List) => {
            let orgs = api.organizations().await?;
            shown(&orgs, lines(&orgs, ""))?
        }
        AdminCommand::Domain(DomainCommand::Add {
            org,
            name,
            unvalidated,
        }) => {
            let domain = NewDomain {
                name: name.clone(),
                validated: !unvalidated,
            };
            let added = api.add_domain(*org, &domain).await?;
            let how = if *unvalidated { "not " } else { "" };
            let text = format!("domain {name} added to organisation {org} ({how}validated)");
            shown(&added, text)?
        }
        AdminCommand::Domain(DomainCommand::Validate { name, no }) => {
            let domain = api.set_validated(name, !no).await?;
            shown(&domain, format!("domain {name}: validated = {}", !no))?
        }
        AdminCommand::Dept(DeptCommand::Add { org, name }) => {
            let created = api.add_department(*org, name).await?;
            shown(&created, format!("department {} added: {name}", created.id))?
        }
        AdminCommand::Delegate { dept, domain } => {
            let delegation = api.delegate(*dept, domain).await?;
            shown(
                &delegation,
                format!("{domain} delegated to department {dept}"),
            )?
        }
        AdminCommand::Eab(EabCommand::Create {
            dept,
            domains,
            reusable,
            profiles,
        }) => {
            let request = NewEab {
                department: *dept,
                domains: domains.clone(),
                reusable: *reusable,
                profiles: profiles.clone(),
            };
            let minted = api.create_eab(&request).await?;
            shown(&minted, minted.to_string())?
        }
        AdminCommand::Eab(EabCommand::List) => {
            let credentials = api.credentials().await?;
            shown(&credentials, lines(&credentials, ""))?
        }
        AdminCommand::Eab(EabCommand::Revoke { kid }) => {
            let revoked = api.revoke_eab(kid).await?;
            let text =
                format!("EAB credential {kid} revoked: its accounts are refused from now on");
            shown(&revoked, text)?
        }
        AdminCommand::Certs(CertsCommand::List { kid }) => {
            let certs = api.certificates(kid).await?;
            shown(&certs, lines(&certs, "no certificates"))?
        }
        AdminCommand::Certs(CertsCommand::Revoke { id, reason }) => {
            let revoked = api.revoke_certificate(id, *reason).await?;
            shown(&revoked, format!("certificate {id} revoked"))?
        }
        AdminCommand::Requests { kid, jsonl } => {
            let exchanges = api.requests(kid).await?;
            if *jsonl {
                for e in &exchanges {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(());
            }
            shown(&exchanges, lines(&exchanges, ""))?
        }
        AdminCommand::Faults(FaultsCommand::Set { kid, file }) => {
            let plan = mock_server::faults::FaultPlan::from_file(file)?;
            let credential = api.set_faults(kid, &plan).await?;
            let text = format!("fault plan of {kid} set ({} rules)", plan.rules.len());
            shown(&credential, text)?
        }
        AdminCommand::Faults(FaultsCommand::Show { kid }) => pretty(&api.faults(kid).await?)?,
        AdminCommand::Faults(FaultsCommand::Clear { kid }) => {
            api.clear_faults(kid).await?;
            (Value::Null, format!("fault plan of {kid} cleared"))
        }
        AdminCommand::Faults(FaultsCommand::Events) => {
            let fired = api.fault_events().await?;
            shown(&fired, fired.to_string())?
        }
        AdminCommand::Dns(DnsCommand::Set {
            name,
            a,
            aaaa,
            txt,
            caa_issue,
        }) => {
            let records = Records {
                a: a.clone(),
                aaaa: aaaa.clone(),
                txt: txt.clone(),
                caa: (caa_issue.iter())
                    .map(|v| Caa {
                        critical: false,
                        tag: "issue".into(),
                        value: v.clone(),
                    })
                    .collect(),
            };
            let set = api.set_dns(name, &records).await?;
            shown(&set, format!("records of {name} set"))?
        }
        AdminCommand::Dns(DnsCommand::Show { name }) => pretty(&api.dns(name).await?)?,
        AdminCommand::Dns(DnsCommand::Clear { name }) => {
            api.clear_dns(name).await?;
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
