//! The web server of a site, for clients that answer http-01 by writing files (dehydrated's
//! WELLKNOWN, uacme's hook): `GET /.well-known/acme-challenge/TOKEN` answers the file `TOKEN`
//! of the adapter's webroot, on the scenario's http-01 port, loopback only.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const PREFIX: &str = "/.well-known/acme-challenge/";

/// Serves `root` on 127.0.0.1:`port` until dropped.
#[derive(Debug)]
pub(crate) struct Webroot {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webroot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webroot {
    pub(crate) async fn start(root: PathBuf, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let root = root.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = match stream.read(&mut buf).await {
                        Ok(n) => n,
                        Err(_) => return,
                    };
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let path = request
                        .lines()
                        .next()
                        .and_then(|l| l.strip_prefix("GET "))
                        .and_then(|l| l.split(' ').next())
                        .unwrap_or("");
                    let body = path
                        .strip_prefix(PREFIX)
                        // A token is base64url: no `/`, no `..`.
                        .filter(|t| {
                            !t.is_empty()
                                && t.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        })
                        .and_then(|t| std::fs::read(root.join(t)).ok());
                    let response = match body {
                        Some(body) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend(body);
                            r
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(Self { task })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn get(port: u16, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_tokens_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok_EN-1"), "tok_EN-1.thumb").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        let port = mock_server::free_port();
        let _w = Webroot::start(dir.path().to_owned(), port).await.unwrap();
        let ok = get(port, "/.well-known/acme-challenge/tok_EN-1").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("tok_EN-1.thumb"),
            "{ok}"
        );
        assert!(
            get(port, "/.well-known/acme-challenge/missing")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get(port, "/.well-known/acme-challenge/../secret")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(get(port, "/secret").await.starts_with("HTTP/1.1 404"));
    }
}
