//! Per-kind limits on the jobs one worker process runs at once ([`JobHandler::MAX_CONCURRENCY`]
//! of each kind), under the worker-wide `WORKER_CONCURRENCY`.
//!
//! A delivery waits for its kind's slot before its job is claimed, so a job held back here is
//! still `queued` to everyone watching, and its attempt is not counted. At most as many
//! deliveries of a kind wait here as the kind has slots; further ones are handed back
//! ([`Slot::Full`]: the caller parks them in a delay queue and acks), so a worker with a large
//! prefetch does not sit on a backlog of imports that other replicas could run, nor keep them
//! unacked past RabbitMQ's consumer timeout.
//!
//! [`JobHandler::MAX_CONCURRENCY`]: burrow_shared::handler::JobHandler::MAX_CONCURRENCY

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burrow_shared::handler::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per limited kind, and how many deliveries wait for it.
#[derive(Clone, Default)]
pub struct KindSlots {
    limits: HashMap<String, Arc<Limit>>,
}

struct Limit {
    slots: Arc<Semaphore>,
    /// Most deliveries that may wait for a slot (the number of slots).
    max_waiting: usize,
    waiting: AtomicUsize,
}

/// What [`KindSlots::acquire`] got.
#[derive(Debug)]
pub enum Slot {
    /// The kind has no limit.
    Unlimited,
    /// A slot: hold it until the job's outcome is recorded.
    Held(OwnedSemaphorePermit),
    /// Every slot is taken and enough deliveries wait already: hand this one back.
    Full,
}

impl KindSlots {
    /// The limits the registry's kinds declare.
    pub fn new(registry: &Registry) -> Self {
        let limits = registry
            .kinds()
            .filter_map(|kind| {
                let limit = registry.get(kind)?.max_concurrency()?.max(1);
                let limit = Limit {
                    slots: Arc::new(Semaphore::new(limit)),
                    max_waiting: limit,
                    waiting: AtomicUsize::new(0),
                };
                Some((kind.to_owned(), Arc::new(limit)))
            })
            .collect();
        KindSlots { limits }
    }

    /// A slot of `kind`, waiting for one if few enough deliveries wait already.
    pub async fn acquire(&self, kind: &str) -> Slot {
        let Some(limit) = self.limits.get(kind) else {
            return Slot::Unlimited;
        };
        if let Ok(permit) = limit.slots.clone().try_acquire_owned() {
            return Slot::Held(permit);
        }
        if limit.waiting.fetch_add(1, Ordering::AcqRel) >= limit.max_waiting {
            limit.waiting.fetch_sub(1, Ordering::AcqRel);
            return Slot::Full;
        }
        let permit = limit.slots.clone().acquire_owned().await;
        limit.waiting.fetch_sub(1, Ordering::AcqRel);
        // The semaphores are never closed.
        permit.map_or(Slot::Full, Slot::Held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_shared::import::ImportOptions;
    use std::time::Duration;

    #[tokio::test]
    async fn imports_run_two_at_a_time_two_wait_and_the_rest_are_handed_back() {
        let slots = KindSlots::new(&burrow_shared::kinds::shipped(
            ImportOptions::default(),
            Default::default(),
        ));
        let first = slots.acquire("import_xlsx").await;
        let second = slots.acquire("import_xlsx").await;
        assert!(matches!((&first, &second), (Slot::Held(_), Slot::Held(_))));
        let waiting = [slots.clone(), slots.clone()]
            .map(|slots| tokio::spawn(async move { slots.acquire("import_xlsx").await }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiting.iter().all(|w| !w.is_finished()), "two may wait");
        assert!(matches!(slots.acquire("import_xlsx").await, Slot::Full));
        drop(first);
        drop(second);
        for waiter in waiting {
            assert!(matches!(waiter.await.expect("task"), Slot::Held(_)));
        }
        assert!(matches!(slots.acquire("noop").await, Slot::Unlimited));
    }
}
