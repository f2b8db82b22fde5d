//! Recorded exchanges, kept per EAB credential (or `-` for requests outside any), bounded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use acme_proto::transcript::Exchange;
use dashmap::DashMap;

/// How many exchanges each scope keeps; older ones are dropped first.
pub const PER_SCOPE: usize = 10_000;

/// The transcript store.
#[derive(Debug)]
pub struct Transcripts {
    started: Instant,
    seq: AtomicU64,
    scopes: DashMap<String, Mutex<VecDeque<Exchange>>>,
}

impl Default for Transcripts {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            seq: AtomicU64::new(0),
            scopes: DashMap::new(),
        }
    }
}

impl Transcripts {
    /// The next sequence number and the monotonic milliseconds since start.
    pub fn stamp(&self) -> (u64, u64) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        (seq, self.started.elapsed().as_millis() as u64)
    }

    /// Puts back an exchange loaded from the persistent store; later ones number after it.
    pub fn restore(&self, exchange: Exchange) {
        self.seq.fetch_max(exchange.seq, Ordering::Relaxed);
        self.record(exchange);
    }

    /// Stores an exchange under its EAB key id (or `-`).
    pub fn record(&self, exchange: Exchange) {
        let scope = exchange.eab_kid.as_deref().unwrap_or("-");
        // The common case takes a read lock on the shard; a new scope needs the write lock.
        let evicted = match self.scopes.get(scope) {
            Some(list) => push(&list, exchange),
            None => {
                let key = scope.to_owned();
                let list = self.scopes.entry(key).or_default();
                push(&list, exchange)
            }
        };
        // Dropped here, after the locks: freeing an old exchange is not done while holding them.
        drop(evicted);
    }

    /// The exchanges of one scope, oldest first.
    pub fn of(&self, scope: &str) -> Vec<Exchange> {
        self.scopes
            .get(scope)
            .and_then(|l| l.lock().ok().map(|l| l.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// Every exchange after sequence number `since`, in sequence order.
    pub fn since(&self, since: u64) -> Vec<Exchange> {
        let mut all: Vec<Exchange> = self
            .scopes
            .iter()
            .filter_map(|l| {
                l.lock().ok().map(|l| {
                    l.iter()
                        .filter(|e| e.seq > since)
                        .cloned()
                        .collect::<Vec<_>>()
                })
            })
            .flatten()
            .collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    /// Every exchange, in sequence order.
    pub fn all(&self) -> Vec<Exchange> {
        let mut all: Vec<Exchange> = self
            .scopes
            .iter()
            .filter_map(|l| l.lock().ok().map(|l| l.iter().cloned().collect::<Vec<_>>()))
            .flatten()
            .collect();
        all.sort_by_key(|e| e.seq);
        all
    }
}

fn push(list: &Mutex<VecDeque<Exchange>>, exchange: Exchange) -> Option<Exchange> {
    let mut list = list.lock().ok()?;
    let evicted = (list.len() == PER_SCOPE)
        .then(|| list.pop_front())
        .flatten();
    list.push_back(exchange);
    evicted
}
