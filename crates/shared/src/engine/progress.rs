//! Progress of a running job: `done` of `total` units (rows, for imports).
//!
//! Handlers update it as often as they like (two relaxed atomic stores); the worker flushes it
//! to `job_progress` at most every ~250 ms, so reporting never slows the job measurably.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A cheap, cloneable progress handle.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    /// Records `done` units of `total` (0 = unknown).
    pub fn set(&self, done: u64, total: u64) {
        self.inner.done.store(done, Ordering::Relaxed);
        self.inner.total.store(total, Ordering::Relaxed);
    }

    /// The latest `(done, total)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.inner.done.load(Ordering::Relaxed),
            self.inner.total.load(Ordering::Relaxed),
        )
    }
}
