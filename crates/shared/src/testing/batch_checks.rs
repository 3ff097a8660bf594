//! What the batch tests hold a finished batch to: every member ended, and each callback
//! enqueued, delivered and run exactly once, counted from the database rather than inferred
//! from a status (a callback released twice would still end `succeeded`).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::engine::batches::{find_batch, BatchStatus, BatchSummary};
use crate::jobs;

/// How often a job was handed out, from its outbox rows and its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runs {
    /// Its messages in the outbox, published or not: 1 unless it was enqueued (or released)
    /// more than once.
    pub messages: i64,
    /// Its `queued` events: its enqueue, or its release from `awaiting`, and every requeue.
    pub queued: i64,
    /// Its `processing` events: one per claim by a worker.
    pub claims: i64,
    /// Its `attempts` column: deliveries that reached a worker.
    pub attempts: i32,
}

impl Runs {
    /// Enqueued once, claimed once, on its first attempt.
    pub const ONCE: Runs = Runs {
        messages: 1,
        queued: 1,
        claims: 1,
        attempts: 1,
    };
}

/// The [`Runs`] of job `id`.
///
/// # Errors
/// The database error, or `RowNotFound` if the job does not exist.
pub async fn runs_of(db: &PgPool, id: Uuid) -> Result<Runs, sqlx::Error> {
    let (messages, queued, claims, attempts) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE job_id = $1), \
                (SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'queued'), \
                (SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'processing'), \
                attempts \
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok(Runs {
        messages,
        queued,
        claims,
        attempts,
    })
}

/// Polls batch `id` (every 100 ms, for at most `within`) until every member has ended and so
/// have its callbacks; returns its last summary either way (the caller asserts on it), and
/// whether it ended in time. A query that fails (Postgres restarting) is polled again.
///
/// # Panics
/// If the batch does not exist.
pub async fn wait_for_batch_end(
    db: &PgPool,
    id: Uuid,
    within: Duration,
) -> (Option<BatchSummary>, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    loop {
        if let Ok(summary) = find_batch(db, id).await {
            let summary = summary.unwrap_or_else(|| panic!("batch {id} does not exist"));
            let ended = summary.status != BatchStatus::Running
                && callbacks_ended(db, &summary).await.unwrap_or(false);
            last = Some(summary);
            if ended {
                return (last, true);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return (last, false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether each of the batch's callbacks has ended.
async fn callbacks_ended(db: &PgPool, batch: &BatchSummary) -> Result<bool, sqlx::Error> {
    for id in [batch.on_success, batch.on_complete].into_iter().flatten() {
        let ended = jobs::find_job(db, id)
            .await?
            .is_some_and(|job| job.status.is_terminal());
        if !ended {
            return Ok(false);
        }
    }
    Ok(true)
}
