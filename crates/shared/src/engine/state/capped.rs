//! The claim of a job whose kind has a cluster-wide cap ([`crate::engine::kind_caps`]) when
//! the group claim found no slot free for it ([`super::batch::release_lock_and_claim`] takes
//! free slots itself): one transaction that either moves the job to `processing` within the
//! cap or parks its message in Postgres until a slot frees. The move and its event are those
//! of the claim in [`super`].
//!
//! # Locks, in this order
//! 1. the job's row (`FOR NO KEY UPDATE`): a run ending takes the same row lock before the
//!    release trigger touches its slot, so both orders agree and cannot deadlock. (`NO KEY`:
//!    a release inserting another job's outbox row takes `KEY SHARE` on it, which this allows.)
//! 2. a slot row (`burrow_cap_take`, `FOR UPDATE SKIP LOCKED`): the job's own slot (a
//!    redelivery after a crash, a released waiter's reservation) or a free one. No kind-wide
//!    lock: claims that find a slot never wait for each other or for ends of runs.
//! 3. only when no slot was free: the kind's advisory lock, exclusive (`burrow_cap_lock`,
//!    migration `20261206002000_kind_cap_slots.sql`). Every end of a capped run holds it
//!    shared before it frees or hands on its slot. Taking it exclusive waits for the ends in
//!    flight to commit and holds off the ones that start later until this transaction commits;
//!    the slot is looked for again under it, in a fresh READ COMMITTED snapshot. So a claim
//!    that saw "full" and an end that saw "no waiter" cannot pass each other: an end that
//!    committed first left its slot free and the second look takes it; an end that comes
//!    later finds this waiter and hands its slot over. No waiter is left behind with a slot
//!    free.
//!
//! # Slots and order
//! A slot is held by a `processing` run or reserved for a released waiter for
//! `burrow_cap_reservation()` (30 s). A delivery takes a free slot only when no unreleased
//! waiter is ahead of it (arrival order holds across replicas); otherwise it parks, and if
//! slots are free (older waiters ahead: a cap raised, a reservation expired) the oldest
//! waiters are released into them at once.

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
            "WITH gone AS (DELETE FROM capped_waiters WHERE job_id = $1) \
             SELECT burrow_cap_let_go($2, $1)",
        )
        .bind(id)
        .bind(&kind)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(CappedClaim::Ended(status));
    }
    let mut taken = take_slot(&mut tx, &kind, id).await?;
    if taken == Some(false) {
        // No slot for the taking: park, but only under the kind's exclusive lock, which waits
        // for every end of a run of the kind in flight (they hold it shared) and holds off
        // those that start later until this commits. Looked at again under it, "full" is
        // final: a run that ended before is seen here (its slot is free or handed on), and
        // one that ends after sees this waiter and hands its slot to the oldest waiter.
        sqlx::query("SELECT burrow_cap_lock($1, true)")
            .bind(&kind)
            .execute(&mut *tx)
            .await?;
        taken = take_slot(&mut tx, &kind, id).await?;
        if taken == Some(false) {
            let (cap, busy, free): (i32, i64, i64) = sqlx::query_as(
                "SELECT c.cap, \
                        count(s.slot) FILTER (WHERE s.job_id IS NOT NULL AND s.job_id <> $2 \
                            AND (s.reserved_until IS NULL \
                                 OR s.reserved_until > clock_timestamp())), \
                        count(s.slot) FILTER (WHERE s.slot <= c.cap AND (s.job_id IS NULL \
                            OR s.reserved_until <= clock_timestamp())) \
                 FROM kind_caps c LEFT JOIN kind_cap_slots s ON s.kind = c.kind \
                 WHERE c.kind = $1 GROUP BY c.cap",
            )
            .bind(&kind)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            park(&mut tx, id, &kind, message).await?;
            if free > 0 {
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
                    capped = capped OR $4 \
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
    .bind(taken == Some(true))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let previous: Option<String> = row.try_get("previous_run")?;
    Ok(CappedClaim::Claimed(Box::new(ClaimedRun {
        job: JobRow::from_row(&row)?,
        previous_run: TraceContext::from_headers(previous.as_deref(), None),
    })))
}

/// Takes a slot of `kind` for job `id` (its row locked): `Some(true)` taken, `Some(false)`
/// none free (or an older waiter is ahead), `None` the kind has no cap (any more).
async fn take_slot(
    tx: &mut sqlx::PgConnection,
    kind: &str,
    id: Uuid,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT burrow_cap_take($1, $2)")
        .bind(kind)
        .bind(id)
        .fetch_one(tx)
        .await
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
