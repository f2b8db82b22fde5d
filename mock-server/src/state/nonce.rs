//! Anti-replay nonces (RFC 8555 §6.5): single use, bounded in number, expiring.
//!
//! A nonce is 32 bytes (43 base64url characters, as Sectigo's): an 8-byte sequence number and
//! 24 random bytes. Outstanding nonces sit in a sharded map keyed by sequence number, so issue
//! and redeem take one shard lock, never a global one. Anything older than `capacity` issues
//! ago counts as expired without a lookup, and a sweep every `capacity / 4` issues drops them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use acme_proto::b64;
use dashmap::DashMap;
use rand::RngCore;

/// Why a nonce was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceError {
    /// Not base64url, or not the size this server issues.
    Garbled,
    /// Never issued, already used, evicted or expired.
    Unknown,
}

/// The nonce store.
#[derive(Debug)]
pub struct NonceStore {
    next: AtomicU64,
    outstanding: super::Map<u64, ([u8; 24], Instant)>,
    capacity: u64,
    lifetime: Duration,
}

impl NonceStore {
    /// A store holding at most `capacity` unused nonces, each valid for `lifetime`.
    pub fn new(capacity: u64, lifetime: Duration) -> Self {
        Self {
            next: AtomicU64::new(1),
            outstanding: DashMap::with_capacity_and_hasher(
                capacity.min(1 << 16) as usize,
                Default::default(),
            ),
            capacity: capacity.max(4),
            lifetime,
        }
    }

    /// Issues a fresh nonce.
    pub fn issue(&self) -> String {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut random = [0u8; 24];
        rand::rng().fill_bytes(&mut random);
        self.outstanding.insert(seq, (random, Instant::now()));
        if seq.is_multiple_of(self.capacity / 4) {
            self.sweep(seq);
        }
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seq.to_be_bytes());
        bytes[8..].copy_from_slice(&random);
        b64::encode(bytes)
    }

    /// Redeems a nonce: succeeds once per issued nonce, while it is fresh.
    pub fn redeem(&self, nonce: &str) -> Result<(), NonceError> {
        let bytes = b64::decode(nonce).map_err(|_| NonceError::Garbled)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| NonceError::Garbled)?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        let seq = u64::from_be_bytes(seq);
        let newest = self.next.load(Ordering::Relaxed);
        if seq.saturating_add(self.capacity) < newest {
            return Err(NonceError::Unknown);
        }
        let (_, (_, issued)) = self
            .outstanding
            .remove_if(&seq, |_, (random, _)| random[..] == bytes[8..])
            .ok_or(NonceError::Unknown)?;
        if issued.elapsed() > self.lifetime {
            return Err(NonceError::Unknown);
        }
        Ok(())
    }

    /// Makes a redeemed nonce usable again: for a request a proxy refused before it reached
    /// the CA (an injected HTML error page). A nonce this store did not issue, or one too old
    /// to be kept, stays unknown.
    pub fn restore(&self, nonce: &str) {
        let Ok(bytes) = b64::decode(nonce) else {
            return;
        };
        let Ok(bytes) = <[u8; 32]>::try_from(bytes) else {
            return;
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[..8]);
        let seq = u64::from_be_bytes(seq);
        let next = self.next.load(Ordering::Relaxed);
        // Only a nonce this store issued (seq below the next one) and not too old; never over
        // a nonce outstanding under the same seq.
        if seq == 0 || seq >= next || seq.saturating_add(self.capacity) < next {
            return;
        }
        let mut random = [0u8; 24];
        random.copy_from_slice(&bytes[8..]);
        self.outstanding
            .entry(seq)
            .or_insert((random, Instant::now()));
    }

    /// How many nonces are outstanding (for tests and metrics).
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether no nonce is outstanding.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    fn sweep(&self, newest: u64) {
        let lifetime = self.lifetime;
        let capacity = self.capacity;
        self.outstanding.retain(|seq, (_, issued)| {
            seq.saturating_add(capacity) >= newest && issued.elapsed() <= lifetime
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_brings_back_only_an_issued_nonce() {
        let store = NonceStore::new(64, Duration::from_secs(60));
        let n = store.issue();
        assert_eq!(store.redeem(&n), Ok(()));
        store.restore(&n);
        assert_eq!(store.redeem(&n), Ok(()), "restored once, usable once");
        assert_eq!(store.redeem(&n), Err(NonceError::Unknown));
        // A forged nonce with a seq not yet issued is not made valid.
        let mut forged = [0u8; 32];
        forged[..8].copy_from_slice(&1000u64.to_be_bytes());
        let forged = b64::encode(forged);
        store.restore(&forged);
        assert_eq!(store.redeem(&forged), Err(NonceError::Unknown));
        // Nor does a restore replace a nonce still outstanding under the same seq.
        let live = store.issue();
        let mut bytes = b64::decode(&live).unwrap();
        bytes[31] ^= 1;
        let twin = b64::encode(&bytes);
        store.restore(&twin);
        assert_eq!(store.redeem(&twin), Err(NonceError::Unknown));
        assert_eq!(store.redeem(&live), Ok(()));
    }

    #[test]
    fn single_use() {
        let store = NonceStore::new(1024, Duration::from_secs(60));
        let n = store.issue();
        assert_eq!(n.len(), 43);
        assert_eq!(store.redeem(&n), Ok(()));
        assert_eq!(store.redeem(&n), Err(NonceError::Unknown));
    }

    #[test]
    fn garbled_and_forged() {
        let store = NonceStore::new(1024, Duration::from_secs(60));
        assert_eq!(store.redeem("***"), Err(NonceError::Garbled));
        assert_eq!(store.redeem("AAAA"), Err(NonceError::Garbled));
        let n = store.issue();
        // Same sequence number, other random part: refused, and the real one still works.
        let mut bytes = b64::decode(&n).unwrap();
        bytes[31] ^= 1;
        assert_eq!(store.redeem(&b64::encode(&bytes)), Err(NonceError::Unknown));
        assert_eq!(store.redeem(&n), Ok(()));
    }

    #[test]
    fn bounded_and_expiring() {
        let store = NonceStore::new(64, Duration::from_secs(60));
        let first = store.issue();
        for _ in 0..10_000 {
            store.issue();
        }
        assert!(store.len() <= 64 + 64 / 4, "store grew to {}", store.len());
        assert_eq!(store.redeem(&first), Err(NonceError::Unknown));

        let store = NonceStore::new(64, Duration::from_millis(0));
        let n = store.issue();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(store.redeem(&n), Err(NonceError::Unknown));
    }

    #[test]
    fn concurrent_redeem_succeeds_once() {
        let store = std::sync::Arc::new(NonceStore::new(1024, Duration::from_secs(60)));
        let n = store.issue();
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| usize::from(store.redeem(&n).is_ok())))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    }
}
