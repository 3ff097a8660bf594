//! The run watcher: while a job runs, flushes its progress to `job_progress` and turns a cancel
//! request (`POST /api/jobs/{id}/cancel`) into its cancellation token, every ~250 ms.

use std::time::Duration;

use burrow_shared::jobs;
use burrow_shared::progress::Progress;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often progress is flushed and the cancel flag read: often enough to look live, rare
/// enough to cost nothing measurable (one small upsert per tick, into `job_progress`).
pub const TICK: Duration = Duration::from_millis(250);

/// Watches job `id` until `stop` is cancelled: each tick stores `progress` (when it changed)
/// and cancels `cancel` once someone asked to. Database errors are skipped: progress is best
/// effort and the next tick tries again.
pub async fn watch_run(
    db: PgPool,
    id: Uuid,
    progress: Progress,
    cancel: CancellationToken,
    stop: CancellationToken,
) {
    let mut stored = (0, 0);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
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
