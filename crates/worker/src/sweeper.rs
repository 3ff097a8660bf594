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

use burrow_shared::job_lock::JobLock;
use burrow_shared::publish::{open_confirm_channel, publish_job};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::{JobMessage, Topology};
use sqlx::PgPool;
use uuid::Uuid;

/// Advisory lock key of the sweeper ("burrowSW"); the job locks use hashed UUIDs instead.
pub const SWEEPER_LOCK: i64 = 0x6275_7272_6f77_5357;

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

/// One sweep: with the sweeper lock, re-enqueue or bury jobs stuck for longer than `lease`.
///
/// # Errors
/// A database or broker error; the sweep's changes roll back.
pub async fn sweep_once(
    db: &PgPool,
    amqp: &deadpool_lapin::Pool,
    topology: &Topology,
    retry: &RetryPolicy,
    lease: Duration,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let mut tx = db.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SWEEPER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(report);
    }
    report.swept = true;
    let lease_secs = lease.as_secs_f64();
    let candidates: Vec<(Uuid, String, i32, Uuid, i16)> = sqlx::query_as(
        "SELECT id, kind, attempts, correlation_id, priority FROM jobs \
         WHERE (status = 'processing' AND started_at < now() - make_interval(secs => $1)) \
            OR (status = 'retrying' AND next_attempt_at < now() - make_interval(secs => $1)) \
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(lease_secs)
    .bind(SWEEP_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        return Ok(report);
    }
    let connection = amqp.get().await?;
    let channel = open_confirm_channel(&connection).await?;
    for (id, kind, attempts, correlation_id, priority) in candidates {
        // A held job lock means a worker is running it right now, however long it takes. A free
        // one is released at once: a worker must be able to take it when the new message
        // arrives (its claim then waits for this transaction's row lock).
        let Some(lock) = JobLock::try_acquire(db, id).await? else {
            continue;
        };
        lock.release().await;
        let attempts = u32::try_from(attempts).unwrap_or(0);
        if retry.allows_another(attempts) {
            sqlx::query(
                "UPDATE jobs SET status = 'queued', next_attempt_at = NULL, \
                        message = 'Re-enqueued by the sweeper: its worker was lost' WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            // The priority keeps the job in its lane (the high or normal work queue).
            let message = JobMessage {
                priority: u8::try_from(priority.clamp(0, 9)).unwrap_or(0),
                ..JobMessage::new(id, kind, correlation_id).for_attempt(attempts + 1)
            };
            publish_job(&channel, topology, &message).await?;
            report.requeued += 1;
        } else {
            let reason = format!("its worker was lost during attempt {attempts}, the last");
            burrow_shared::jobs::mark_dead(&mut *tx, id, &reason).await?;
            report.buried += 1;
        }
    }
    tx.commit().await?;
    let _ = channel.close(200, "sweep done".into()).await;
    Ok(report)
}
