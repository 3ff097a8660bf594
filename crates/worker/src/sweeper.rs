//! The stuck-job sweeper: re-enqueues jobs whose worker is gone and whose message is lost.
//!
//! Normally a job left `processing` by a dead worker is finished by redelivery: its message was
//! never acked, so RabbitMQ hands it to another worker. The sweeper is the backstop for when the
//! message itself is gone (dead-lettered by the delivery limit, or a queue purged): a job that
//! has been `processing` (or overdue in `retrying`) for longer than the lease while nobody holds
//! its job lock gets a fresh message, or is marked `dead` if it has used all its attempts.
//!
//! Every replica runs it (from [`crate::maintenance`]), but each sweep happens under a
//! transaction-level advisory lock, so exactly one replica sweeps at a time.

use std::time::Duration;

use burrow_shared::enqueue::requeue;
use burrow_shared::job_lock::JobLock;
use burrow_shared::leader::{try_lead, Chore};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::state::{self, Transition};
use sqlx::PgPool;
use uuid::Uuid;

/// Jobs looked at per sweep.
const SWEEP_BATCH: i64 = 100;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Whether this replica held the sweeper lock (otherwise it did nothing).
    pub swept: bool,
    /// Jobs given a fresh message.
    pub requeued: u32,
    /// Jobs marked dead: their worker was lost during their last attempt.
    pub buried: u32,
}

/// One sweep: as the sweeper's leader, re-enqueue (through the outbox, so the message is
/// published whatever happens to this process) or bury jobs stuck for longer than `lease`.
/// Each change is a transition of [`burrow_shared::state`], with its history entry.
///
/// # Errors
/// A database error; the sweep's changes roll back.
pub async fn sweep_once(
    db: &PgPool,
    retry: &RetryPolicy,
    lease: Duration,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut tx = db.begin().await?;
    if !try_lead(&mut tx, Chore::Sweeper).await? {
        return Ok(report);
    }
    report.swept = true;
    let lease_secs = lease.as_secs_f64();
    let candidates: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, attempts FROM jobs \
         WHERE (status = 'processing' AND started_at < now() - make_interval(secs => $1)) \
            OR (status = 'retrying' AND next_attempt_at < now() - make_interval(secs => $1)) \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(lease_secs)
    .bind(SWEEP_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    for (id, attempts) in candidates {
        // A held job lock means a worker is running it right now, however long it takes. A free
        // one is released at once: a worker must be able to take it when the new message
        // arrives (its claim then waits for this transaction's row lock).
        let Some(lock) = JobLock::try_acquire(db, id).await? else {
            continue;
        };
        lock.release().await;
        let attempts = u32::try_from(attempts).unwrap_or(0);
        if retry.allows_another(attempts) {
            let lost = Transition::Requeue {
                why: "Re-enqueued by the sweeper: its worker was lost",
            };
            if requeue(&mut tx, id, lost, attempts + 1).await? {
                report.requeued += 1;
            }
        } else {
            let reason = format!("its worker was lost during attempt {attempts}, the last");
            if state::apply(&mut *tx, id, Transition::Bury { reason: &reason }).await? {
                report.buried += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(report)
}
