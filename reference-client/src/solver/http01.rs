//! http-01 (RFC 8555 §8.3): `GET http://<name>/.well-known/acme-challenge/<token>` answers the
//! key authorization.

use acme_proto::ChallengeType;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{BoxFuture, ChallengeData, Solver};
use crate::error::{Error, Result};

const PREFIX: &str = "/.well-known/acme-challenge/";

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// A request the listener saw (pebble-challtestsrv's `http-request-history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequestSeen {
    /// The request target (path and query).
    pub target: String,
    /// The Host header, port included.
    pub host: String,
    /// The User-Agent header.
    pub user_agent: String,
    /// Whether it came over TLS.
    pub https: bool,
    /// The TLS server name asked for (empty over plain HTTP).
    pub server_name: String,
}

/// What pebble-challtestsrv adds to a plain http-01 listener.
#[derive(Clone, Default)]
pub struct Http01Hooks {
    /// Path -> URL: requests for exactly that path get a 302 there.
    pub redirects: Arc<Mutex<HashMap<String, String>>>,
    /// Called with every request.
    pub observer: Option<Arc<dyn Fn(HttpRequestSeen) + Send + Sync>>,
    /// Anything but a known token gets 200 with an empty body instead of 404.
    pub empty_200_for_unknown: bool,
    /// Serve HTTPS with this acceptor instead of plain HTTP (challtestsrv's `-https01`;
    /// redirects apply to plain HTTP only).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Http01Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http01Hooks")
            .field("empty_200_for_unknown", &self.empty_200_for_unknown)
            .finish_non_exhaustive()
    }
}

/// Serves http-01 answers from its own listener (like certbot `--standalone`). The listener
/// is bound on the first challenge and closed when the solver is dropped.
#[derive(Debug)]
pub struct Http01Standalone {
    addr: SocketAddr,
    tokens: Tokens,
    hooks: Http01Hooks,
    server: tokio::sync::Mutex<Option<(SocketAddr, JoinHandle<()>)>>,
}

impl Http01Standalone {
    /// A solver that will listen on `addr` (the CA connects to port 80 of the name; in tests
    /// and behind a port forward, another port).
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_hooks(addr, Http01Hooks::default())
    }

    /// As [`Http01Standalone::new`], with pebble-challtestsrv's additions.
    pub fn with_hooks(addr: SocketAddr, hooks: Http01Hooks) -> Self {
        Self {
            addr,
            tokens: Arc::default(),
            hooks,
            server: tokio::sync::Mutex::new(None),
        }
    }

    /// Serves `content` at `/.well-known/acme-challenge/<token>` (replacing any).
    pub fn set_answer(&self, token: &str, content: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), content.to_owned());
    }

    /// Stops serving `token`.
    pub fn remove_answer(&self, token: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Binds now instead of at the first challenge; returns the bound address (port 0 picks
    /// a free one).
    pub async fn bind(&self) -> Result<SocketAddr> {
        let mut server = self.server.lock().await;
        if let Some((addr, _)) = &*server {
            return Ok(*addr);
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|e| Error::Solver {
                kind: ChallengeType::Http01,
                message: format!(
                    "cannot listen on {}: {e} (is a web server using the port? use --webroot instead, or another --http-01-address)",
                    self.addr
                ),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Solver {
            kind: ChallengeType::Http01,
            message: e.to_string(),
        })?;
        let tokens = self.tokens.clone();
        let hooks = self.hooks.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let tokens = tokens.clone();
                let hooks = hooks.clone();
                tokio::spawn(async move {
                    match hooks.tls.clone() {
                        None => {
                            let _ = serve_one(stream, tokens, &hooks, None).await;
                        }
                        Some(acceptor) => {
                            let accepted = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await;
                            if let Ok(Ok(tls)) = accepted {
                                let sni =
                                    tls.get_ref().1.server_name().unwrap_or_default().to_owned();
                                let _ = serve_one(tls, tokens, &hooks, Some(sni)).await;
                            }
                        }
                    }
                });
            }
        });
        *server = Some((addr, task));
        Ok(addr)
    }
}

impl Drop for Http01Standalone {
    fn drop(&mut self) {
        if let Some((_, task)) = self.server.get_mut().take() {
            task.abort();
        }
    }
}

/// Answers one request; `sni` is the TLS server name when the connection is HTTPS.
async fn serve_one<S>(
    mut stream: S,
    tokens: Tokens,
    hooks: &Http01Hooks,
    sni: Option<String>,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    if let Some(observe) = &hooks.observer {
        observe(HttpRequestSeen {
            target: path.to_owned(),
            host: header("host"),
            user_agent: header("user-agent"),
            https: sni.is_some(),
            server_name: sni.clone().unwrap_or_default(),
        });
    }
    let redirect = hooks
        .redirects
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path.split('?').next().unwrap_or_default())
        .cloned()
        .filter(|_| sni.is_none());
    if let Some(target) = redirect {
        let response = format!(
            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let answer = path
        .strip_prefix(PREFIX)
        .filter(|_| method == "GET" || method == "HEAD")
        .and_then(|token| {
            tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(token)
                .cloned()
        });
    let response = match answer {
        Some(body) => {
            tracing::debug!(path, "http-01 answer served");
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None if hooks.empty_200_for_unknown => {
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

impl Solver for Http01Standalone {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.bind().await?;
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    challenge.token.clone(),
                    challenge.key_authorization.as_str().to_owned(),
                );
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&challenge.token);
            Ok(())
        })
    }
}

/// Writes http-01 answers to `<webroot>/.well-known/acme-challenge/<token>` for a web server
/// that already serves the name (like certbot `--webroot`).
#[derive(Debug)]
pub struct Http01Webroot {
    root: PathBuf,
}

impl Http01Webroot {
    /// A solver writing under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, token: &str) -> Result<PathBuf> {
        // A token is base64url (RFC 8555 §8.1); anything else could climb out of the root.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Solver {
                kind: ChallengeType::Http01,
                message: "the CA sent a token that is not base64url".into(),
            });
        }
        Ok(self.root.join(".well-known/acme-challenge").join(token))
    }
}

impl Solver for Http01Webroot {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Http01
    }

    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.path(&challenge.token)?;
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::io(dir, e))?;
            }
            tokio::fs::write(&path, challenge.key_authorization.as_str())
                .await
                .map_err(|e| Error::io(&path, e))
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let path = self.path(&challenge.token)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(&path, e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_proto::{KeyAuthorization, SignatureAlgorithm};

    fn challenge(token: &str) -> ChallengeData {
        let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        ChallengeData {
            identifier: "example.org".into(),
            wildcard: false,
            kind: ChallengeType::Http01,
            token: token.into(),
            key_authorization: KeyAuthorization::new(token, &key.jwk().thumbprint()),
        }
    }

    async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: example.org\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn standalone_serves_the_key_authorization_then_forgets_it() {
        let solver = Http01Standalone::new("127.0.0.1:0".parse().unwrap());
        let addr = solver.bind().await.unwrap();
        let ch = challenge("tok_en-1");
        solver.present(&ch).await.unwrap();
        let r = http_get(addr, "/.well-known/acme-challenge/tok_en-1").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with(ch.key_authorization.as_str()), "{r}");
        solver.cleanup(&ch).await.unwrap();
        let r = http_get(addr, "/.well-known/acme-challenge/tok_en-1").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    }

    #[tokio::test]
    async fn webroot_writes_and_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let solver = Http01Webroot::new(dir.path());
        let ch = challenge("abc");
        solver.present(&ch).await.unwrap();
        let path = dir.path().join(".well-known/acme-challenge/abc");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            ch.key_authorization.as_str()
        );
        solver.cleanup(&ch).await.unwrap();
        assert!(!path.exists());
        assert!(solver.present(&challenge("../../etc")).await.is_err());
    }
}
