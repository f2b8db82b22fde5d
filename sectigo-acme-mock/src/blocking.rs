//! The mock for tests without an async runtime (a `#[test]` driving a blocking client).

use std::ops::Deref;
use std::time::Duration;

/// A [`crate::MockCa`] with a runtime of its own, on one background thread. Every method
/// of [`crate::MockCa`] is reachable through `Deref`; dropping it stops the mock and the
/// runtime's thread.
///
/// Use it from plain `#[test]` functions only: starting or dropping it inside an async
/// runtime panics (tokio forbids blocking there).
///
/// ```
/// let ca = sectigo_acme_mock::blocking::MockCa::start();
/// assert!(ca.directory_url().starts_with("https://127.0.0.1:"));
/// ca.assert_conformant();
/// ```
#[derive(Debug)]
pub struct MockCa {
    mock: Option<crate::MockCa>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl MockCa {
    /// Starts a mock with the defaults.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn start() -> Self {
        crate::MockCa::builder().start_blocking()
    }
}

impl crate::Builder {
    /// Starts the mock on a runtime of its own, for blocking tests.
    ///
    /// ```
    /// let ca = sectigo_acme_mock::MockCa::builder()
    ///     .profile("sectigo-ov")
    ///     .start_blocking();
    /// assert_eq!(ca.profile(), "sectigo-ov");
    /// ```
    ///
    /// # Panics
    /// When it cannot start, or when called inside an async runtime.
    pub fn start_blocking(self) -> MockCa {
        match self.try_start_blocking() {
            Ok(ca) => ca,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the mock on a runtime of its own, or says why it cannot.
    ///
    /// # Panics
    /// When called inside an async runtime.
    pub fn try_start_blocking(self) -> Result<MockCa, crate::Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sectigo-acme-mock")
            .enable_all()
            .build()
            .map_err(|e| crate::Error::Start(format!("cannot make a runtime: {e}")))?;
        let mock = runtime.block_on(self.try_start())?;
        Ok(MockCa {
            mock: Some(mock),
            runtime: Some(runtime),
        })
    }
}

impl Deref for MockCa {
    type Target = crate::MockCa;

    fn deref(&self) -> &crate::MockCa {
        // Both are `Some` until drop.
        self.mock
            .as_ref()
            .expect("the mock is running until it is dropped")
    }
}

impl Drop for MockCa {
    fn drop(&mut self) {
        // The server's tasks end with the runtime; the mock's own Drop (which may check the
        // transcript and panic) runs first, inside the runtime.
        if let Some(runtime) = self.runtime.take() {
            {
                let _inside = runtime.enter();
                self.mock.take();
            }
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
