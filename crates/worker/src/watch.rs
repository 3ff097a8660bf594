//! The run watcher: while a job runs, flushes its progress to `job_progress` and turns a cancel
//! request (`POST /api/jobs/{id}/cancel`) into its cancellation token, every ~250 ms.

use std::sync::Arc;
use std::time::Duration;

use burrow_shared::jobs;
use burrow_shared::progress::Progress;
use sqlx::PgPool;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often progress is flushed and the cancel flag read: often enough to look live, rare
/// enough to cost nothing measurable (one small upsert per tick, into `job_progress`).
pub const TICK: Duration = Duration::from_millis(250);

/// Stops a [`watch_run`]: cancelled, it ends the watcher at its next tick; [`WatchStop::quiesce`]
/// also waits for a flush in flight.
#[derive(Clone, Default)]
pub struct WatchStop {
    stop: CancellationToken,
    /// Held by the watcher through each tick's round trip.
    flushing: Arc<Mutex<()>>,
}

impl WatchStop {
    /// Stops the watcher at its next tick, without waiting.
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Stops the watcher and waits until no tick is in flight; none starts while the guard
    /// lives. Taken before a run's success is recorded: that commit deletes the job's
    /// `job_progress` row, and a flush landing after it would leave a stale one.
    pub async fn quiesce(&self) -> OwnedMutexGuard<()> {
        self.stop.cancel();
        self.flushing.clone().lock_owned().await
    }
}

/// Watches job `id` until `stop` is cancelled: each tick stores `progress` (when it changed)
/// and cancels `cancel` once someone asked to. Database errors are skipped: progress is best
/// effort and the next tick tries again.
pub async fn watch_run(
    db: PgPool,
    id: Uuid,
    progress: Progress,
    cancel: CancellationToken,
    stop: WatchStop,
) {
    let mut stored = (0, 0);
    loop {
        tokio::select! {
            _ = stop.stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let _flushing = stop.flushing.lock().await;
        if stop.stop.is_cancelled() {
            return;
        }
        let now = progress.get();
        // Unchanged progress (a job that reports none, or waits) costs a read, not a write.
        let asked = if now == stored {
            jobs::cancel_requested(&db, id).await
        } else {
            jobs::store_progress(&db, id, now.0, now.1).await
        };
        match asked {
            Ok(asked) => {
                stored = now;
                if asked {
                    cancel.cancel();
                }
            }
            Err(_) => stored = (u64::MAX, u64::MAX),
        }
    }
}
