//! A wrapper that keeps secrets out of `Debug` and `Display` output.

use std::fmt;

/// A secret value (an HMAC key, a private key, a token). Its `Debug` prints `Secret(..)`, so a
/// struct holding one can derive `Debug` without leaking it into logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is really used.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new(String::from("canary-hmac-key"));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(s.expose(), "canary-hmac-key");
    }
}
