//! tls-alpn-01 (RFC 8737): a TLS listener that, for a connection offering ALPN `acme-tls/1`
//! with SNI `<name>`, presents a self-signed certificate for `<name>` carrying the critical
//! acmeIdentifier extension with the SHA-256 of the key authorization.

use acme_proto::ChallengeType;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{BoxFuture, ChallengeData, Solver};
use crate::error::{Error, Result};

mod sha2_digest {
    /// SHA-256 of `data`.
    pub(super) fn sha256(data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
            .as_ref()
            .to_vec()
    }
}

/// The ALPN protocol of RFC 8737 §6.2.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

type Certs = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;

/// A ClientHello the listener saw: its SNI and the ALPN protocols it offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloSeen {
    /// The server name asked for (empty without SNI).
    pub server_name: String,
    /// The ALPN protocols offered.
    pub alpn: Vec<String>,
}

/// Called with every ClientHello (pebble-challtestsrv's request history).
pub type HelloObserver = Arc<dyn Fn(HelloSeen) + Send + Sync>;

struct BySni(Certs, Option<HelloObserver>);

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BySni").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(observe) = &self.1 {
            observe(HelloSeen {
                server_name: hello.server_name().unwrap_or_default().to_owned(),
                alpn: hello
                    .alpn()
                    .map(|protos| {
                        protos
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        // RFC 8737 §3: only a hello offering acme-tls/1 gets the validation certificate.
        if !hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ACME_TLS_ALPN))
        {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned()
    }
}

fn solver_error(message: impl Into<String>) -> Error {
    Error::Solver {
        kind: ChallengeType::TlsAlpn01,
        message: message.into(),
    }
}

/// Answers tls-alpn-01 from its own listener (the CA connects to port 443 of the name). The
/// listener is bound on the first challenge and closed when the solver is dropped.
pub struct TlsAlpn01Standalone {
    addr: SocketAddr,
    certs: Certs,
    observer: Option<HelloObserver>,
    server: tokio::sync::Mutex<Option<(SocketAddr, JoinHandle<()>)>>,
}

impl std::fmt::Debug for HelloObserverSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

struct HelloObserverSlot<'a>(&'a Option<HelloObserver>);

impl std::fmt::Debug for TlsAlpn01Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAlpn01Standalone")
            .field("addr", &self.addr)
            .field("observer", &HelloObserverSlot(&self.observer))
            .finish_non_exhaustive()
    }
}

impl TlsAlpn01Standalone {
    /// A solver that will listen on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            certs: Arc::default(),
            observer: None,
            server: tokio::sync::Mutex::new(None),
        }
    }

    /// As [`TlsAlpn01Standalone::new`], calling `observer` with every ClientHello.
    pub fn with_observer(addr: SocketAddr, observer: HelloObserver) -> Self {
        Self {
            addr,
            certs: Arc::default(),
            observer: Some(observer),
            server: tokio::sync::Mutex::new(None),
        }
    }

    /// Answers handshakes for `name` with the validation certificate of the key
    /// authorization `key_authorization` (what pebble-challtestsrv's `add-tlsalpn01` does).
    pub fn set_answer(&self, name: &str, key_authorization: &str) -> Result<()> {
        use sha2_digest::sha256;
        let cert = validation_cert_for(name, &sha256(key_authorization.as_bytes()))?;
        self.certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), Arc::new(cert));
        Ok(())
    }

    /// Stops answering for `name`.
    pub fn remove_answer(&self, name: &str) {
        self.certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name.to_ascii_lowercase());
    }

    /// Binds now; returns the bound address.
    pub async fn bind(&self) -> Result<SocketAddr> {
        let mut server = self.server.lock().await;
        if let Some((addr, _)) = &*server {
            return Ok(*addr);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| solver_error(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(BySni(self.certs.clone(), self.observer.clone())));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(self.addr).await.map_err(|e| {
            solver_error(format!(
                "cannot listen on {}: {e} (is a TLS server using the port?)",
                self.addr
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| solver_error(e.to_string()))?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The validation is the handshake itself; close right after it.
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(tcp),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(mut tls)) => {
                            tracing::debug!(%peer, "tls-alpn-01 handshake served");
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls-alpn-01 handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "tls-alpn-01 handshake timed out"),
                    }
                });
            }
        });
        *server = Some((addr, task));
        Ok(addr)
    }
}

impl Drop for TlsAlpn01Standalone {
    fn drop(&mut self) {
        if let Some((_, task)) = self.server.get_mut().take() {
            task.abort();
        }
    }
}

/// The RFC 8737 §3 validation certificate for `challenge`.
pub(crate) fn validation_cert(challenge: &ChallengeData) -> Result<CertifiedKey> {
    validation_cert_for(&challenge.identifier, &challenge.key_authorization.digest())
}

/// The validation certificate for `name` over the SHA-256 `digest` of a key authorization.
fn validation_cert_for(name: &str, digest: &[u8]) -> Result<CertifiedKey> {
    let key = rcgen::KeyPair::generate().map_err(|e| solver_error(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| solver_error(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params
        .self_signed(&key)
        .map_err(|e| solver_error(e.to_string()))?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| solver_error(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

impl Solver for TlsAlpn01Standalone {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::TlsAlpn01
    }

    fn present<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.bind().await?;
            let cert = validation_cert(challenge)?;
            self.certs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(challenge.identifier.to_ascii_lowercase(), Arc::new(cert));
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, challenge: &'a ChallengeData) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.certs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&challenge.identifier.to_ascii_lowercase());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_proto::{KeyAuthorization, SignatureAlgorithm};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate: the test checks the certificate's content itself, as a CA's
    /// validator does (RFC 8737 §3: the certificate is self-signed by design).
    #[derive(Debug)]
    struct AcceptAny;

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    #[tokio::test]
    async fn answers_acme_tls_1_with_the_acme_identifier() {
        let solver = TlsAlpn01Standalone::new("127.0.0.1:0".parse().unwrap());
        let addr = solver.bind().await.unwrap();
        let key = acme_proto::AccountKey::generate(SignatureAlgorithm::Es256).unwrap();
        let ch = ChallengeData {
            identifier: "example.org".into(),
            wildcard: false,
            kind: ChallengeType::TlsAlpn01,
            token: "tok".into(),
            key_authorization: KeyAuthorization::new("tok", &key.jwk().thumbprint()),
        };
        solver.present(&ch).await.unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth();
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("example.org").unwrap(), tcp)
            .await
            .unwrap();
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(ACME_TLS_ALPN));
        let cert = conn.peer_certificates().unwrap()[0].clone();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // OCTET STRING (0x04, 32) wrapping the digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &ch.key_authorization.digest());
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            "[DNSName(\"example.org\")]"
        );
    }
}
