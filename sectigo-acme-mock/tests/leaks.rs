//! Starting and dropping a mock leaves nothing behind: no threads, no file descriptors, no
//! ports, no files. Alone in its binary, so no other test's threads or sockets count.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sectigo_acme_mock::MockCa;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// One mock's life: start, one request over TLS, drop. Returns what it held.
async fn one() -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    std::path::PathBuf,
) {
    let ca = MockCa::start().await;
    let status = ca
        .http_client()
        .get(ca.directory_url())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let dir = ca.ca_bundle_path().parent().unwrap().to_owned();
    (ca.addr(), ca.dns_addr(), dir)
}

#[test]
fn a_hundred_mocks_leave_no_threads_ports_or_files() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The first start makes the shared CA (on a blocking-pool thread, which stays idle).
    runtime.block_on(async {
        one().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let (fds_before, threads_before) = (open_fds(), threads());
    let held = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(one().await);
        }
        // Dropped servers end their tasks at the next poll.
        tokio::time::sleep(Duration::from_millis(300)).await;
        held
    });
    assert_eq!(open_fds(), fds_before, "file descriptors leaked");
    assert_eq!(threads(), threads_before, "threads leaked");
    for (listener, dns, dir) in held {
        std::net::TcpListener::bind(listener)
            .unwrap_or_else(|e| panic!("{listener} still bound: {e}"));
        std::net::UdpSocket::bind(dns).unwrap_or_else(|e| panic!("DNS {dns} still bound: {e}"));
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}
