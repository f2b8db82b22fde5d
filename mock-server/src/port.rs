//! Ports on loopback for listeners the caller opens later.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A loopback port for a listener that someone else opens later: the http-01 answerer
/// ([`ServerConfig::http01_port`](crate::ServerConfig::http01_port)) or tls-alpn-01
/// responder of a client under test, a program a test starts with a port to listen on.
///
/// Asking the kernel for a free port (binding port 0) and closing it again would hand out
/// a port from the ephemeral range, where every later `bind(0)` (the mock started next,
/// the tests or scenarios running at the same time) and every outgoing connection takes
/// its port too: one of those could take it before the listener opens, which then fails
/// with "address in use" for no fault of its own. So the port comes from outside that
/// range, where the kernel hands nothing out; this process goes round the whole stretch
/// before it hands a port out again; and each candidate is checked by binding it.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let pool = outside_ephemeral(ephemeral_range());
    let size = pool.len();
    if size > 0 {
        // Processes on one host (parallel test binaries) start at different places.
        let offset = (std::process::id() as usize).wrapping_mul(7919) % size;
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = pool.start + ((offset + n) % size) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(5002)
}

/// The kernel's ephemeral port range (Linux's default when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32768, 60999))
}

/// The ports to hand out: the widest stretch above 10000 that the ephemeral range `(low,
/// high)` leaves free (below it, or above it); empty when neither has a thousand ports.
fn outside_ephemeral((low, high): (u16, u16)) -> std::ops::Range<u16> {
    const FLOOR: u16 = 10_000;
    let below = FLOOR..low.max(FLOOR);
    let above = high.saturating_add(1).max(FLOOR)..u16::MAX;
    let best = if below.len() >= above.len() {
        below
    } else {
        above
    };
    if best.len() >= 1000 { best } else { 0..0 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ports_for_clients_come_from_outside_the_kernels_ephemeral_range() {
        // Linux's default range leaves 10000-32767 below it.
        assert_eq!(outside_ephemeral((32768, 60999)), 10_000..32768);
        // A range that starts low leaves the top.
        assert_eq!(outside_ephemeral((1024, 40000)), 40001..u16::MAX);
        // A range over nearly everything leaves nothing worth taking: bind(0) it is.
        assert!(outside_ephemeral((1024, 65000)).is_empty());

        let (low, high) = ephemeral_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for p in &ports {
            assert!(
                !(low..=high).contains(p),
                "{p} is in the ephemeral range {low}-{high}"
            );
            // Free when handed out: a client can listen on it.
            std::net::TcpListener::bind(("127.0.0.1", *p)).unwrap();
        }
        let distinct: std::collections::BTreeSet<&u16> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "handed out twice: {ports:?}");
        // None of them is what a bind(0) now gets, whatever it gets.
        let kernel = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!ports.contains(&kernel.local_addr().unwrap().port()));
    }
}
