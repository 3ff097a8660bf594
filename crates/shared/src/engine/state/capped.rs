//! The claim of a job whose kind has a cluster-wide cap ([`crate::engine::kind_caps`]): one
//! transaction that either moves the job to `processing` within the cap or parks its message
//! in Postgres until a slot frees. The move and its event are those of the claim in [`super`].
//!
//! # Locks, in this order
//! 1. the job's row (`FOR NO KEY UPDATE`): a run ending takes the same row lock before the
//!    release trigger takes the kind's, so both orders agree and cannot deadlock. (`NO KEY`:
//!    a release inserting another job's outbox row takes `KEY SHARE` on it, which this allows.)
//! 2. the kind's row in `kind_caps` (`FOR UPDATE`): every claim and every release of the kind
//!    (`burrow_pump_capped`, migration `20261205000700_kind_caps.sql`) holds it while it counts
//!    and decides, so under READ COMMITTED each one's counting statement, run after the lock,
//!    sees everything the previous holder committed. A claim that saw the kind full has parked
//!    its waiter before a run ending after it counts the waiters; a run that ended first is not
//!    counted by the claim. Either way no waiter is left behind with a free slot.
//!
//! # Counting
//! Busy slots are the kind's `capped` jobs in `processing` (the slot is the job row) plus the
//! reservations of waiters whose message was released less than `burrow_cap_reservation()`
//! (30 s) ago, both without the job being claimed: a redelivery after a crash finds its job
//! `processing` and takes back its own slot. A delivery claims when a slot is free and no
//! unreleased waiter is ahead of it (arrival order holds across replicas); otherwise it parks.

use sqlx::{FromRow as _, PgPool, Row as _};
use uuid::Uuid;

use crate::engine::jobs::{JobRow, JOB_COLUMNS};
use crate::engine::status::JobStatus;
use crate::job_batch::ClaimedRun;
use crate::telemetry::TraceContext;

/// What [`claim`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CappedClaim {
    /// The job is now `processing` by the worker, within its kind's cap.
    Claimed(Box<ClaimedRun>),
    /// The kind is at its cap: the message waits in `capped_waiters` (the job stays as it was,
    /// `queued` or `retrying`) and comes back through the outbox when a slot frees. Ack the
    /// delivery.
    Waiting {
        /// The kind's cap when the claim looked.
        cap: u32,
        /// Slots busy then (running jobs and reservations), without this job.
        busy: u32,
    },
    /// The job cannot run: it ended (a late duplicate) or awaits its parents.
    Ended(JobStatus),
    /// No such job.
    Missing,
}

/// Claims job `id` for `worker` under its kind's cap, or parks `message` (the delivery's
/// encoded [`crate::JobMessage`], as it will be published again) until a slot frees. `run` is
/// the claiming run's trace context, kept on the job as in the group claim. Hold the job's
/// advisory lock ([`crate::job_lock`]) around the call, as for every claim: it keeps two
/// deliveries of one job from running at once. A kind without a row in `kind_caps` (its cap
/// was removed) is claimed without a cap.
///
/// # Errors
/// The database error; nothing changed then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool, id: uuid::Uuid, message: Vec<u8>) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::state::capped::{claim, CappedClaim};
/// match claim(&db, id, "worker-1", None, &message).await? {
///     CappedClaim::Claimed(run) => { /* run run.job, then end it through state */ }
///     CappedClaim::Waiting { cap, busy } => { /* ack the delivery: it is parked */ }
///     CappedClaim::Ended(_) | CappedClaim::Missing => { /* ack: nothing to run */ }
/// }
/// # Ok(()) }
/// ```
pub async fn claim(
    db: &PgPool,
    id: Uuid,
    worker: &str,
    run: Option<&TraceContext>,
    message: &[u8],
) -> Result<CappedClaim, sqlx::Error> {
    let mut tx = db.begin().await?;
    let job: Option<(String, String)> =
        sqlx::query_as("SELECT kind, status FROM jobs WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((kind, status)) = job else {
        return Ok(CappedClaim::Missing);
    };
    let status = JobStatus::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?;
    if status.is_terminal() || status == JobStatus::Awaiting {
        // A parked copy of a job that ended meanwhile (cancelled while it waited) is of no use
        // any more. If it held a reservation, that slot is free now: the next waiter goes.
        sqlx::query(
            "WITH gone AS (DELETE FROM capped_waiters WHERE job_id = $1 \
                           RETURNING kind, released_at IS NOT NULL AS reserved) \
             SELECT burrow_pump_capped(kind) FROM gone WHERE reserved",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(CappedClaim::Ended(status));
    }
    let cap: Option<i32> =
        sqlx::query_scalar("SELECT cap FROM kind_caps WHERE kind = $1 FOR UPDATE")
            .bind(&kind)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(cap) = cap {
        let (busy, ahead): (i64, bool) = sqlx::query_as(
            "WITH mine AS (SELECT seq FROM capped_waiters WHERE job_id = $2) \
             SELECT (SELECT count(*) FROM jobs \
                     WHERE kind = $1 AND capped AND status = 'processing' AND id <> $2) \
                  + (SELECT count(*) FROM capped_waiters \
                     WHERE kind = $1 AND job_id <> $2 \
                       AND released_at > clock_timestamp() - burrow_cap_reservation()), \
                    EXISTS (SELECT 1 FROM capped_waiters \
                            WHERE kind = $1 AND job_id <> $2 \
                              AND (released_at IS NULL \
                                   OR released_at <= clock_timestamp() - burrow_cap_reservation()) \
                              AND seq < coalesce((SELECT seq FROM mine), 9223372036854775807))",
        )
        .bind(&kind)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if busy >= i64::from(cap) || ahead {
            park(&mut tx, id, &kind, message).await?;
            if busy < i64::from(cap) {
                // Free slots but older waiters: they go first (a cap raised, a reservation
                // expired), and this one waits its turn behind them.
                sqlx::query("SELECT burrow_pump_capped($1)")
                    .bind(&kind)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            return Ok(CappedClaim::Waiting {
                cap: count(cap.into()),
                busy: count(busy),
            });
        }
    }
    let row = sqlx::query(&format!(
        "WITH unparked AS (DELETE FROM capped_waiters WHERE job_id = $1), \
         live AS (DELETE FROM job_progress WHERE job_id = $1), \
         previous AS (SELECT run_traceparent FROM jobs WHERE id = $1), \
         claimed AS ( \
             UPDATE jobs SET status = 'processing', attempts = attempts + 1, worker = $2, \
                    started_at = clock_timestamp(), message = NULL, next_attempt_at = NULL, \
                    rate_slot_at = NULL, \
                    progress_done = NULL, progress_total = NULL, run_traceparent = $3, \
                    capped = $4 \
             WHERE id = $1 \
             RETURNING {JOB_COLUMNS}, (SELECT run_traceparent FROM previous) AS previous_run), \
         event AS ( \
             INSERT INTO job_events (job_id, event, attempt, worker) \
             SELECT id, 'processing', attempts, worker FROM claimed) \
         SELECT * FROM claimed"
    ))
    .bind(id)
    .bind(worker)
    .bind(run.map(|run| run.traceparent.as_str()))
    .bind(cap.is_some())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let previous: Option<String> = row.try_get("previous_run")?;
    Ok(CappedClaim::Claimed(Box::new(ClaimedRun {
        job: JobRow::from_row(&row)?,
        previous_run: TraceContext::from_headers(previous.as_deref(), None),
    })))
}

/// Parks `message` at the end of its kind's waiters, or, for a waiter whose released message
/// came back to a full kind (its reservation expired, the cap was lowered), back in its place
/// with its reservation dropped. The first park is recorded in the job's history.
async fn park(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    kind: &str,
    message: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH parked AS ( \
             INSERT INTO capped_waiters (job_id, kind, message) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO UPDATE SET released_at = NULL, message = EXCLUDED.message \
             RETURNING (xmax = 0) AS first) \
         INSERT INTO job_events (job_id, event, attempt, detail) \
         SELECT $1, 'waiting_for_slot', j.attempts, 'every slot of kind ' || $2 || ' is busy' \
         FROM jobs j, parked WHERE j.id = $1 AND parked.first",
    )
    .bind(id)
    .bind(kind)
    .bind(message)
    .execute(tx)
    .await?;
    Ok(())
}
