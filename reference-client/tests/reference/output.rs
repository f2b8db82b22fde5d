//! What the client leaves behind: PEM files and modes, and a PKCS#12 bundle that OpenSSL
//! reads back with the key and the full chain.
#![allow(clippy::unwrap_used)] // test helpers panic on purpose

use crate::common;

use std::path::Path;

use acme_proto::Secret;
use common::*;
use reference_client::cert::{pkcs12, write_pem_files};
use reference_client::{CertKeyType, CsrSource, IssueRequest, write_private};

async fn issue_demo(
    server: &mock_server::MockServer,
    key: CertKeyType,
) -> reference_client::Issued {
    let events = Events::default();
    let client = client(server, ECC, &events).await;
    let account = register(server, &client).await;
    account
        .issue(
            IssueRequest {
                names: vec![
                    "physics.example.edu".into(),
                    "www.physics.example.edu".into(),
                ],
                csr: CsrSource::Generate(key),
                preferred_chain: None,
            },
            &[],
        )
        .await
        .unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn pem_files_and_a_pfx_that_openssl_reads_back() {
    let server = start().await;
    for key_type in [CertKeyType::EcdsaP256, CertKeyType::Rsa(2048)] {
        let issued = issue_demo(&server, key_type).await;
        let dir = tempfile::tempdir().unwrap();
        let key = issued.key.as_ref().unwrap();
        let files = write_pem_files(dir.path(), &issued.chain, Some(&key.to_pem())).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode(files.privkey.as_ref().unwrap()), 0o600);
        }
        let fullchain = std::fs::read_to_string(&files.fullchain).unwrap();
        let cert = std::fs::read_to_string(&files.cert).unwrap();
        let chain = std::fs::read_to_string(&files.chain).unwrap();
        assert_eq!(fullchain, format!("{cert}{chain}"));
        assert_eq!(
            fullchain.matches("BEGIN CERTIFICATE").count(),
            issued.chain.certs.len()
        );

        // The chain verifies with OpenSSL up to the mock's roots.
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&server.ready().roots)
            .arg("-untrusted")
            .arg(&files.chain)
            .arg(&files.cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let password = Secret::new("correct horse battery staple".to_owned());
        let pfx = pkcs12(
            &issued.chain,
            &key.to_der(),
            &password,
            "physics.example.edu",
        )
        .unwrap();
        let pfx_path = dir.path().join("cert.pfx");
        write_private(&pfx_path, pfx.expose()).unwrap();
        let pass_file = dir.path().join("pass");
        write_private(&pass_file, password.expose().as_bytes()).unwrap();
        let out = std::process::Command::new("openssl")
            .arg("pkcs12")
            .arg("-in")
            .arg(&pfx_path)
            .arg("-info")
            .arg("-nodes")
            .arg("-passin")
            .arg(format!("file:{}", pass_file.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // Modern encryption and MAC (what Windows 10 1709+ and OpenSSL 3 import).
        assert!(stderr.contains("MAC: sha256"), "{stderr}");
        assert!(
            stderr.contains("PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256"),
            "{stderr}"
        );
        // The key and the full chain, in order.
        assert_eq!(stdout.matches("BEGIN PRIVATE KEY").count(), 1, "{stdout}");
        let certs_in_pfx: Vec<_> = rustls_pemfile_certs(&stdout);
        assert_eq!(certs_in_pfx.len(), issued.chain.certs.len());
        for c in &issued.chain.certs {
            assert!(certs_in_pfx.contains(c));
        }
        let key_in_pfx = stdout
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .unwrap()
            .split("-----END PRIVATE KEY-----")
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<String>();
        let key_pem = key.to_pem();
        let key_in_pem = key_pem
            .expose()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        assert_eq!(
            key_in_pfx, key_in_pem,
            "the PFX holds the certificate's key"
        );
        // A wrong password is refused.
        let out = std::process::Command::new("openssl")
            .args(["pkcs12", "-noout", "-passin", "pass:wrong", "-in"])
            .arg(&pfx_path)
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
}

fn rustls_pemfile_certs(text: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|block| {
            let body: String = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        })
        .collect()
}
