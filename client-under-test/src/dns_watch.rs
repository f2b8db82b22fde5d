//! The resolver a sandboxed scenario's client is given: a UDP listener on an address of its
//! own in the run's private network (`127.53.X.Y:53`, named in the sandbox's resolv.conf) that
//! records every query's name and refuses it. The trace sees the names of lookups sent with
//! `sendto`/`sendmsg` (glibc); a resolver that writes to a connected socket (Go's) is seen
//! only here, and the address tells which scenario asked.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The next address to try, over the run (127.53.0.1, 127.53.0.2, ...).
static NEXT: AtomicU32 = AtomicU32::new(1);

/// A running watcher; stops when dropped.
#[derive(Debug)]
pub(crate) struct DnsWatch {
    addr: SocketAddr,
    names: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl DnsWatch {
    /// Starts a watcher on a fresh `127.53.X.Y:53`. `None` where port 53 cannot be bound (an
    /// ordinary user in a namespace without the capability): the trace alone names lookups.
    pub(crate) async fn start() -> Option<Self> {
        for _ in 0..16 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % 65_534 + 1;
            let [_, _, x, y] = n.to_be_bytes();
            let addr = SocketAddr::from((Ipv4Addr::new(127, 53, x, y), 53));
            match UdpSocket::bind(addr).await {
                Ok(socket) => return Some(Self::serve(socket, addr)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(_) => return None,
            }
        }
        None
    }

    fn serve(socket: UdpSocket, addr: SocketAddr) -> Self {
        let names: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = names.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let query = &buf[..n];
                let Some(name) = crate::audit::dns_query_name(query) else {
                    continue;
                };
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                }
                let _ = socket.send_to(&refused(query), from).await;
            }
        });
        Self { addr, names, task }
    }

    /// The address clients are told to use.
    pub(crate) fn ip(&self) -> std::net::IpAddr {
        self.addr.ip()
    }

    /// `127.53.X.Y:53`, as the trace writes a destination.
    pub(crate) fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// The names queried so far, in order of first query.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for DnsWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer to `query`: the same message, marked a response, REFUSED (RFC 1035 RCODE 5),
/// without recursion: the client stops asking at once, and nothing is resolved.
fn refused(query: &[u8]) -> Vec<u8> {
    let mut answer = query.to_vec();
    answer[2] |= 0x80;
    answer[3] = (answer[3] & 0x70) | 5;
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A query for `name` (type A, class IN), as a stub resolver sends it.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend(label.as_bytes());
        }
        q.extend([0, 0, 1, 0, 1]);
        q
    }

    #[tokio::test]
    async fn records_each_name_once_and_refuses_it() {
        // Port 53 needs the capability (root here, and in CI); elsewhere there is no watcher.
        let Some(watch) = DnsWatch::start().await else {
            return;
        };
        assert!(
            watch.authority().starts_with("127.53."),
            "{}",
            watch.authority()
        );
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(watch.addr).await.unwrap();
        let mut buf = [0u8; 512];
        for (id, name) in [
            (7, "telemetry.vendor.example"),
            (8, "telemetry.vendor.example"),
            (9, "update.vendor.example"),
        ] {
            client.send(&query(id, name)).await.unwrap();
            let n = client.recv(&mut buf).await.unwrap();
            assert_eq!(
                &buf[..2],
                &id.to_be_bytes(),
                "the answer carries the query's id"
            );
            assert_eq!(buf[2] & 0x80, 0x80, "marked a response");
            assert_eq!(buf[3] & 0x0f, 5, "REFUSED");
            assert_eq!(n, query(id, name).len());
        }
        assert_eq!(
            watch.names(),
            ["telemetry.vendor.example", "update.vendor.example"]
        );
        // A second watcher gets another address: scenarios are told apart by it.
        let other = DnsWatch::start().await.unwrap();
        assert_ne!(other.authority(), watch.authority());
    }
}
