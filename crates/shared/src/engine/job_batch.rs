//! A worker's lock session: one connection holding the advisory locks ([`crate::job_lock`]) of
//! every job the worker runs. If that session dies, Postgres frees them all, as it would free a
//! crashed worker's. Its claims, which take locks and move jobs in one statement, are
//! [`crate::engine::state::batch`]'s.

use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::job_lock::lock_key;
use crate::jobs::JobRow;
use crate::status::JobStatus;
use crate::telemetry::TraceContext;

/// Opens a connection of its own (outside the pool's accounting) for the batch statements
/// below, which look every job up by primary key.
///
/// Its planner may not scan `jobs` whole or through bitmaps: a burst of jobs leaves the
/// table's statistics far behind (autovacuum analyses it a minute later at best), and with
/// them the planner chose a sequential scan, or the status index with thousands of dead
/// entries, for a batch of ten ids: 4 to 7 ms a statement instead of well under one
/// (auto_explain, bench/README.md). Index scans by primary key stay cheap however stale the
/// statistics are.
///
/// # Errors
/// The database error.
pub async fn open_session(db: &PgPool) -> Result<PgConnection, sqlx::Error> {
    let mut conn = db.acquire().await?.detach();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await?;
    sqlx::query("SET enable_bitmapscan = off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// What claiming a job found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The job is now `processing` by this worker, with its attempt counted and its lock held.
    Claimed(Box<ClaimedRun>),
    /// Another delivery of the job is running (its lock is held elsewhere, or by this worker).
    Busy,
    /// The job already ended (a duplicate or late redelivery): nothing to do.
    Ended(JobStatus),
    /// No such job (deleted, or a message from another installation).
    Missing,
    /// Only for a [`ClaimRequest::capped`] request: no slot of the job's kind was free, so the
    /// job was not claimed; its lock is held, for the claim that parks it
    /// ([`crate::engine::state::capped::claim`]).
    Full,
}

/// A job to claim, and the trace context of the span of the run that claims it (kept on the
/// job so that the next run can link to this one).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// The job.
    pub id: Uuid,
    /// The claiming run's span, when tracing is on.
    pub run: Option<TraceContext>,
    /// The job's kind has a cluster-wide cap (as the worker last read them): claim it only
    /// if it takes a slot ([`crate::engine::kind_caps`]).
    pub capped: bool,
}

/// A job claimed by [`release_lock_and_claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    /// The job, now `processing`.
    pub job: JobRow,
    /// The span of the run before this one (a retry's or a redelivery's earlier attempt), when
    /// that run was traced.
    pub previous_run: Option<TraceContext>,
}

/// Takes the advisory lock of each job in `ids` on this session, without waiting; returns the
/// ids it got. Session locks stack: never ask twice for a job this session holds.
///
/// # Errors
/// The database error (then no lock was taken, or the session is gone and holds none).
pub async fn try_lock(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    let keys: Vec<i64> = ids.iter().map(|id| lock_key(*id)).collect();
    sqlx::query_scalar(
        "SELECT id FROM unnest($1::uuid[], $2::bigint[]) AS r(id, key) \
         WHERE pg_try_advisory_lock(key)",
    )
    .bind(ids)
    .bind(&keys)
    .fetch_all(conn)
    .await
}

/// Releases the advisory locks of `ids` held by this session.
///
/// # Errors
/// The database error.
pub async fn unlock(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    let keys: Vec<i64> = ids.iter().map(|id| lock_key(*id)).collect();
    sqlx::query("SELECT pg_advisory_unlock(key) FROM unnest($1::bigint[]) AS key")
        .bind(&keys)
        .execute(conn)
        .await?;
    Ok(())
}

/// The status of each job of `ids` that exists.
///
/// # Errors
/// The database error.
pub async fn statuses(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, JobStatus)>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, status FROM jobs WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    rows.into_iter()
        .map(|(id, status)| {
            let status = JobStatus::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?;
            Ok((id, status))
        })
        .collect()
}
