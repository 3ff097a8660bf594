//! The run watcher: while a job runs, flushes its progress to the job row and turns a cancel
//! request (`POST /api/jobs/{id}/cancel`) into its cancellation token, every ~250 ms.

use std::time::Duration;

use burrow_shared::jobs;
use burrow_shared::progress::Progress;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often progress is flushed and the cancel flag read: often enough to look live, rare
/// enough to cost nothing measurable (one UPDATE per tick).
pub const TICK: Duration = Duration::from_millis(250);

/// Watches job `id` until `stop` is cancelled: each tick stores `progress` and cancels `cancel` once someone asked to. Database errors are skipped: progress is best
/// effort and the next tick tries again.
pub async fn watch_run(
    db: PgPool,
    id: Uuid,
    progress: Progress,
    cancel: CancellationToken,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let (done, total) = progress.get();
        if let Ok(true) = jobs::store_progress(&db, id, done, total).await {
            cancel.cancel();
        }
    }
}
