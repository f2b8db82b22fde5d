//! Shared setup: the mock server in-process, and a reference client pointed at it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acme_proto::SignatureAlgorithm;
use mock_server::MockServer;
use reference_client::{
    Account, Backoff, Client, ClientConfig, EabCredential, NewAccountOptions, Progress,
    generate_account_key,
};

/// Mocks started through the embeddable kit (sectigo-acme-mock), seen as the server.
pub use sectigo_acme_mock::internal::{ECC, RSA, profile_variant, start_demo as start, start_with};

/// Progress events, recorded.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Progress>>>);

impl Events {
    pub fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
    pub fn lines(&self) -> Vec<String> {
        self.all().iter().map(ToString::to_string).collect()
    }
}

pub fn config(server: &MockServer, events: &Events, deadline: Duration) -> ClientConfig {
    let recorder = events.clone();
    ClientConfig {
        ca_files: vec![server.ready().ca_bundle.clone()],
        deadline,
        progress: Some(Arc::new(move |p: &Progress| {
            recorder.0.lock().unwrap().push(p.clone())
        })),
        // The client's own waits a tenth as long as a real run's: the tests count retries,
        // not seconds (Retry-After is still honoured as the server asks).
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            ..Backoff::default()
        },
        ..ClientConfig::default()
    }
}

pub async fn client(server: &MockServer, profile: &str, events: &Events) -> Client {
    Client::connect(
        server.directory_url(profile).unwrap(),
        config(server, events, Duration::from_secs(60)),
    )
    .await
    .unwrap()
}

pub fn demo_eab(server: &MockServer) -> EabCredential {
    let demo = server.ready().demo.clone().unwrap();
    EabCredential::new(&demo.eab_kid, &demo.eab_hmac_key, None).unwrap()
}

/// A registered account with the demo credential.
pub async fn register(server: &MockServer, client: &Client) -> Account {
    let key = generate_account_key(SignatureAlgorithm::Es256, 2048).unwrap();
    let registered = client
        .new_account(
            key,
            &NewAccountOptions {
                contact: vec!["mailto:admin@physics.example.edu".into()],
                terms_of_service_agreed: true,
                eab: Some(demo_eab(server)),
            },
        )
        .await
        .unwrap();
    assert!(registered.created);
    registered.account
}
