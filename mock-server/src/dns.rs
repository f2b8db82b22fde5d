//! The built-in mock DNS (hickory-server): every name resolves to 127.0.0.1 unless the admin
//! API set other records, so challenge validation stays on loopback. A, AAAA, TXT and CAA.

use std::collections::BTreeMap;
use std::io;
use std::iter;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CAA, CNAME, TXT};
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
#[derive(Debug)]
pub struct MockDns {
    records: DashMap<String, Records>,
    /// What A and AAAA queries get where nothing is set (pebble-challtestsrv's
    /// `-defaultIPv4`/`-defaultIPv6`): 127.0.0.1 and nothing, unless changed.
    defaults: std::sync::RwLock<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    /// Each record type falls back to its default on its own (challtestsrv), instead of a
    /// name with any record set having exactly those records (the admin API).
    per_type_defaults: AtomicBool,
    /// CNAMEs: name -> target (FQDN without the trailing dot).
    cnames: DashMap<String, String>,
    /// Names every query for which gets SERVFAIL.
    servfail: DashMap<String, ()>,
    /// Whether questions are kept for [`MockDns::history`].
    keep_history: AtomicBool,
    /// Questions asked, by name as asked (without the trailing dot).
    history: DashMap<String, Vec<DnsQuestion>>,
}

/// The record types the mock keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Text.
    Txt,
    /// Certification Authority Authorization.
    Caa,
}

/// A question the DNS server was asked (challtestsrv's `dns-request-history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuestion {
    /// The name, as asked, with its trailing dot.
    pub name: String,
    /// The query type (1 A, 28 AAAA, 16 TXT, 257 CAA, ...).
    pub qtype: u16,
    /// The query class (1 IN).
    pub qclass: u16,
    /// The User-Agent of a DNS-over-HTTPS query; empty for plain DNS.
    #[serde(default)]
    pub user_agent: String,
}

impl Default for MockDns {
    fn default() -> Self {
        Self {
            records: DashMap::new(),
            defaults: std::sync::RwLock::new((Some(Ipv4Addr::LOCALHOST), None)),
            per_type_defaults: AtomicBool::new(false),
            cnames: DashMap::new(),
            servfail: DashMap::new(),
            keep_history: AtomicBool::new(false),
            history: DashMap::new(),
        }
    }
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
        self.entry(name, |r| r.txt.push(value.to_owned()));
    }

    /// Changes the records of `name`, made with the default addresses (admin semantics) or
    /// empty (per-type defaults) if it has none yet.
    fn entry(&self, name: &str, change: impl FnOnce(&mut Records)) {
        let per_type = self.per_type_defaults.load(Ordering::Relaxed);
        let (v4, v6) = self.defaults();
        let mut entry = self.records.entry(key(name)).or_insert_with(|| {
            if per_type {
                Records::default()
            } else {
                Records {
                    a: v4.into_iter().collect(),
                    aaaa: v6.into_iter().collect(),
                    ..Records::default()
                }
            }
        });
        change(&mut entry);
    }

    fn defaults(&self) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
        *self.defaults.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets what A queries get where no A record is set (`None`: nothing).
    pub fn set_default_ipv4(&self, ip: Option<Ipv4Addr>) {
        self.defaults.write().unwrap_or_else(|p| p.into_inner()).0 = ip;
    }

    /// Sets what AAAA queries get where no AAAA record is set (`None`: nothing).
    pub fn set_default_ipv6(&self, ip: Option<Ipv6Addr>) {
        self.defaults.write().unwrap_or_else(|p| p.into_inner()).1 = ip;
    }

    /// pebble-challtestsrv's model: each record type of a name falls back to its default on
    /// its own, and questions are kept for [`MockDns::history`].
    pub fn challtestsrv_mode(&self) {
        self.per_type_defaults.store(true, Ordering::Relaxed);
        self.keep_history.store(true, Ordering::Relaxed);
    }

    /// Appends A records.
    pub fn add_a(&self, name: &str, ips: &[Ipv4Addr]) {
        self.entry(name, |r| r.a.extend_from_slice(ips));
    }

    /// Appends AAAA records.
    pub fn add_aaaa(&self, name: &str, ips: &[Ipv6Addr]) {
        self.entry(name, |r| r.aaaa.extend_from_slice(ips));
    }

    /// Appends a CAA record.
    pub fn add_caa(&self, name: &str, caa: Caa) {
        self.entry(name, |r| r.caa.push(caa));
    }

    /// Removes one record type of `name`.
    pub fn clear_type(&self, name: &str, kind: RecordKind) {
        if let Some(mut r) = self.records.get_mut(&key(name)) {
            match kind {
                RecordKind::A => r.a.clear(),
                RecordKind::Aaaa => r.aaaa.clear(),
                RecordKind::Txt => r.txt.clear(),
                RecordKind::Caa => r.caa.clear(),
            }
        }
    }

    /// Sets (or with `None` removes) the CNAME of `name`.
    pub fn set_cname(&self, name: &str, target: Option<&str>) {
        match target {
            Some(t) => {
                self.cnames.insert(key(name), key(t));
            }
            None => {
                self.cnames.remove(&key(name));
            }
        }
    }

    /// Makes every query for `name` fail with SERVFAIL, or not.
    pub fn set_servfail(&self, name: &str, on: bool) {
        if on {
            self.servfail.insert(key(name), ());
        } else {
            self.servfail.remove(&key(name));
        }
    }

    /// The questions asked for `name` (as asked, without the trailing dot).
    pub fn history(&self, name: &str) -> Vec<DnsQuestion> {
        self.history
            .get(name.trim_end_matches('.'))
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Forgets the questions asked for `name`.
    pub fn clear_history(&self, name: &str) {
        self.history.remove(name.trim_end_matches('.'));
    }

    fn note(&self, name: &Name, qtype: RecordType, qclass: u16, user_agent: &str) {
        if !self.keep_history.load(Ordering::Relaxed) {
            return;
        }
        let asked = name.to_ascii();
        let mut list = self
            .history
            .entry(asked.trim_end_matches('.').to_owned())
            .or_default();
        if list.len() < 10_000 {
            list.push(DnsQuestion {
                name: asked,
                qtype: u16::from(qtype),
                qclass,
                user_agent: user_agent.to_owned(),
            });
        }
    }

    /// The records of `name`: what was set, or the default (A 127.0.0.1 and nothing else).
    pub fn get(&self, name: &str) -> Records {
        let (v4, v6) = self.defaults();
        let per_type = self.per_type_defaults.load(Ordering::Relaxed);
        let mut records = self
            .records
            .get(&key(name))
            .map(|r| r.clone())
            .unwrap_or_else(|| Records {
                a: v4.into_iter().collect(),
                aaaa: v6.into_iter().collect(),
                ..Records::default()
            });
        if per_type {
            if records.a.is_empty() {
                records.a = v4.into_iter().collect();
            }
            if records.aaaa.is_empty() {
                records.aaaa = v6.into_iter().collect();
            }
        }
        records
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

    /// The answer to one question, for plain DNS and DoH alike: SERVFAIL where set, else a
    /// CNAME (which answers for itself and, for other types, is followed once), else the
    /// records or defaults.
    fn resolve(&self, name: &Name, qtype: RecordType) -> Result<Vec<Record>, ResponseCode> {
        if self.servfail.contains_key(&key(&name.to_ascii())) {
            return Err(ResponseCode::ServFail);
        }
        let cname = self.cnames.get(&key(&name.to_ascii())).map(|t| t.clone());
        Ok(
            match cname.and_then(|t| Name::from_ascii(format!("{t}.")).ok()) {
                Some(target) => {
                    let mut answers = vec![Record::from_rdata(
                        name.clone(),
                        0,
                        RData::CNAME(CNAME(target.clone())),
                    )];
                    if qtype != RecordType::CNAME {
                        answers.extend(self.answer(&target, qtype));
                    }
                    answers
                }
                None => self.answer(name, qtype),
            },
        )
    }

    /// Answers a DNS message in wire format (RFC 1035 §4), as a DNS-over-HTTPS server does
    /// (RFC 8484 §4.1): the question is recorded with `user_agent` in the history and answered
    /// as the UDP and TCP servers answer it. An undecodable message is an error.
    pub fn answer_wire(&self, query: &[u8], user_agent: &str) -> Result<Vec<u8>, String> {
        use hickory_server::proto::op::{Message, MessageType};
        let request = Message::from_vec(query).map_err(|e| format!("not a DNS message: {e}"))?;
        let mut response = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.metadata.authoritative = true;
        response.queries = request.queries.clone();
        response.metadata.response_code = match request.queries.as_slice() {
            _ if request.metadata.op_code != OpCode::Query => ResponseCode::NotImp,
            [question] => {
                let name = question.name().clone();
                let qtype = question.query_type();
                self.note(&name, qtype, u16::from(question.query_class()), user_agent);
                match self.resolve(&name, qtype) {
                    Ok(answers) => {
                        response.answers = answers;
                        ResponseCode::NoError
                    }
                    Err(rc) => rc,
                }
            }
            _ => ResponseCode::FormErr,
        };
        response.to_vec().map_err(|e| e.to_string())
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
        let qtype = query.query_type();
        self.0
            .note(&name, qtype, u16::from(query.query_class()), "");
        let answers = match self.0.resolve(&name, qtype) {
            Ok(answers) => answers,
            Err(rc) => {
                let response = builder.error_msg(&request.metadata, rc);
                return response_handle
                    .send_response(response)
                    .await
                    .unwrap_or_else(|_| servfail_info(meta));
            }
        };
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

/// A running DNS-over-HTTPS server (RFC 8484); dropping it stops it.
pub type DohServer = crate::server::SideService;

/// Serves `dns` over HTTPS on `addr` with `identity`, as pebble-challtestsrv's `-doh` does: a
/// POST of a DNS message (any path) gets the answer as `application/dns-message`; other
/// methods 405, an undecodable message 400. The same answers as [`serve`]'s.
pub async fn serve_doh(
    dns: Arc<MockDns>,
    addr: SocketAddr,
    identity: crate::ca::ListenerIdentity,
) -> io::Result<DohServer> {
    let app = axum::Router::new().fallback(doh_query).with_state(dns);
    crate::server::serve_side(app, addr, identity).await
}

async fn doh_query(
    axum::extract::State(dns): axum::extract::State<Arc<MockDns>>,
    method: http::Method,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use http::StatusCode;
    if method != http::Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match dns.answer_wire(&body, user_agent) {
        Ok(answer) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/dns-message")],
            answer,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
