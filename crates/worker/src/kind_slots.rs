//! Per-kind limits on the jobs one worker process runs at once ([`JobHandler::MAX_CONCURRENCY`]
//! of each kind), under the worker-wide `WORKER_CONCURRENCY`.
//!
//! A delivery waits for its kind's slot before its job is claimed, so a job held back here is
//! still `queued` to everyone watching, and its attempt is not counted. It stays unacked on
//! this worker meanwhile: keep `WORKER_PREFETCH` small where heavy kinds dominate, so they wait
//! in the queue for other replicas instead.
//!
//! [`JobHandler::MAX_CONCURRENCY`]: burrow_shared::handler::JobHandler::MAX_CONCURRENCY

use std::collections::HashMap;
use std::sync::Arc;

use burrow_shared::handler::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per limited kind.
#[derive(Clone, Default)]
pub struct KindSlots {
    limits: HashMap<String, Arc<Semaphore>>,
}

impl KindSlots {
    /// The limits the registry's kinds declare.
    pub fn new(registry: &Registry) -> Self {
        let limits = registry
            .kinds()
            .filter_map(|kind| {
                let limit = registry.get(kind)?.max_concurrency()?;
                Some((kind.to_owned(), Arc::new(Semaphore::new(limit.max(1)))))
            })
            .collect();
        KindSlots { limits }
    }

    /// Waits for a slot of `kind`; `None` (at once) for kinds without a limit. Hold the permit
    /// until the job's outcome is recorded.
    pub async fn acquire(&self, kind: &str) -> Option<OwnedSemaphorePermit> {
        let slots = self.limits.get(kind)?.clone();
        // The semaphores are never closed.
        slots.acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_shared::import::ImportOptions;

    #[tokio::test]
    async fn imports_are_limited_and_noops_are_not() {
        let slots = KindSlots::new(&burrow_shared::kinds::registry(ImportOptions::default()));
        let first = slots.acquire("import_xlsx").await;
        let second = slots.acquire("import_xlsx").await;
        assert!(first.is_some() && second.is_some());
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            slots.acquire("import_xlsx"),
        )
        .await;
        assert!(third.is_err(), "a third import must wait");
        drop(first);
        assert!(slots.acquire("import_xlsx").await.is_some());
        assert!(slots.acquire("noop").await.is_none());
    }
}
