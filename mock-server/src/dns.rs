//! The built-in mock DNS (hickory-server): every name resolves to 127.0.0.1 unless the admin
//! API set other records, so challenge validation stays on loopback. A, AAAA, TXT and CAA.

use std::collections::BTreeMap;
use std::io;
use std::iter;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CAA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};

/// A CAA record (RFC 8659).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caa {
    /// The issuer-critical flag.
    #[serde(default)]
    pub critical: bool,
    /// `issue`, `issuewild` or `iodef`.
    pub tag: String,
    /// The value, e.g. `sectigo.com`.
    pub value: String,
}

/// The records of one name, as the admin API sets them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    /// IPv4 addresses.
    #[serde(default)]
    pub a: Vec<Ipv4Addr>,
    /// IPv6 addresses.
    #[serde(default)]
    pub aaaa: Vec<Ipv6Addr>,
    /// TXT strings.
    #[serde(default)]
    pub txt: Vec<String>,
    /// CAA records.
    #[serde(default)]
    pub caa: Vec<Caa>,
}

/// The zone data: names without the trailing dot, lower case.
#[derive(Debug, Default)]
pub struct MockDns {
    records: DashMap<String, Records>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl MockDns {
    /// Replaces the records of `name`.
    pub fn set(&self, name: &str, records: Records) -> Result<(), String> {
        let k = key(name);
        Name::from_ascii(&k).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
        for c in &records.caa {
            if !matches!(c.tag.as_str(), "issue" | "issuewild" | "iodef") {
                return Err(format!(
                    "CAA tag {:?} is not issue, issuewild or iodef",
                    c.tag
                ));
            }
        }
        self.records.insert(k, records);
        Ok(())
    }

    /// Adds one TXT string to `name` (dns-01 solvers).
    pub fn add_txt(&self, name: &str, value: &str) {
        self.records
            .entry(key(name))
            .or_insert_with(|| Records {
                a: vec![Ipv4Addr::LOCALHOST],
                ..Records::default()
            })
            .txt
            .push(value.to_owned());
    }

    /// The records of `name`: what was set, or the default (A 127.0.0.1 and nothing else).
    pub fn get(&self, name: &str) -> Records {
        self.records
            .get(&key(name))
            .map(|r| r.clone())
            .unwrap_or_else(|| Records {
                a: vec![Ipv4Addr::LOCALHOST],
                ..Records::default()
            })
    }

    /// Forgets what was set for `name`.
    pub fn clear(&self, name: &str) {
        self.records.remove(&key(name));
    }

    /// Everything set explicitly.
    pub fn all(&self) -> BTreeMap<String, Records> {
        self.records
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    fn answer(&self, name: &Name, qtype: RecordType) -> Vec<Record> {
        let records = self.get(&name.to_ascii());
        let owner = name.clone();
        let rdata: Vec<RData> = match qtype {
            RecordType::A => records.a.iter().map(|ip| RData::A(A(*ip))).collect(),
            RecordType::AAAA => records
                .aaaa
                .iter()
                .map(|ip| RData::AAAA(AAAA(*ip)))
                .collect(),
            RecordType::TXT => records
                .txt
                .iter()
                .map(|t| RData::TXT(TXT::new(vec![t.clone()])))
                .collect(),
            RecordType::CAA => records
                .caa
                .iter()
                .filter_map(|c| caa_rdata(c).map(RData::CAA))
                .collect(),
            _ => Vec::new(),
        };
        rdata
            .into_iter()
            .map(|d| Record::from_rdata(owner.clone(), 5, d))
            .collect()
    }
}

fn caa_rdata(c: &Caa) -> Option<CAA> {
    match c.tag.as_str() {
        "issue" | "issuewild" => {
            let name = if c.value.is_empty() {
                None
            } else {
                Some(Name::from_ascii(&c.value).ok()?)
            };
            Some(if c.tag == "issue" {
                CAA::new_issue(c.critical, name, vec![])
            } else {
                CAA::new_issuewild(c.critical, name, vec![])
            })
        }
        _ => None,
    }
}

/// The request handler over a [`MockDns`].
#[derive(Clone, Debug)]
pub struct Handler(pub Arc<MockDns>);

fn servfail_info(mut meta: Metadata) -> ResponseInfo {
    meta.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata: meta,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut edns = Edns::new();
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(req_edns) = &request.edns {
            edns.set_max_payload(req_edns.max_payload().max(512));
            builder.edns(&edns);
        }
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => Ok(info.query),
            Ok(_) => Err(ResponseCode::NotImp),
            Err(_) => Err(ResponseCode::FormErr),
        };
        let query = match query {
            Ok(q) => q,
            Err(rc) => {
                let response = builder.error_msg(&request.metadata, rc);
                return response_handle
                    .send_response(response)
                    .await
                    .unwrap_or_else(|_| servfail_info(meta));
            }
        };
        let name: Name = query.name().into();
        let answers = self.0.answer(&name, query.query_type());
        meta.response_code = ResponseCode::NoError;
        let response = builder.build(
            meta,
            answers.iter(),
            iter::empty(),
            iter::empty(),
            iter::empty(),
        );
        response_handle
            .send_response(response)
            .await
            .unwrap_or_else(|_| servfail_info(meta))
    }
}

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    /// Where it listens (UDP and TCP on the same port).
    pub addr: SocketAddr,
    _server: Server<Handler>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Serves `dns` on `addr` (UDP and TCP); port 0 picks one free for both.
pub async fn serve(dns: Arc<MockDns>, addr: SocketAddr) -> io::Result<DnsServer> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = io::Error::new(
        io::ErrorKind::AddrInUse,
        "no port free for both UDP and TCP",
    );
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => {
                let mut server = Server::new(Handler(dns.clone()));
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(5), 32);
                return Ok(DnsServer {
                    addr: bound,
                    _server: server,
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
