//! Job-row SQL for many jobs at once, so a worker pays one statement and one commit for a
//! batch of small jobs instead of several per job (group commit).
//!
//! The per-job rules are those of [`crate::jobs`] and [`crate::job_lock`]: a job runs under
//! its advisory lock, a claim counts the attempt and only moves a job that has not ended, and
//! every state change writes its `job_events` entry in the same statement. Here the locks live
//! on one session that holds them for all of a worker's running jobs; if that session dies,
//! Postgres frees them all, as it would free a crashed worker's.

use sqlx::{FromRow as _, PgConnection, PgExecutor, PgPool, Row as _};
use uuid::Uuid;

use crate::handler::JobOutput;
use crate::job_lock::lock_key;
use crate::jobs::{JobRow, JOB_COLUMNS};
use crate::status::JobStatus;

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
    Claimed(Box<JobRow>),
    /// Another delivery of the job is running (its lock is held elsewhere, or by this worker).
    Busy,
    /// The job already ended (a duplicate or late redelivery): nothing to do.
    Ended(JobStatus),
    /// No such job (deleted, or a message from another installation).
    Missing,
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

/// One turn of a worker's lock session, in one statement (one round trip, one commit):
/// releases the locks of `release` (jobs that ended), takes the advisory lock of each job of
/// `claim` without waiting, and claims every locked job that has not ended for `worker` —
/// status `processing`, attempt counted, `processing` event, leftover progress removed. A
/// redelivery after a crash finds its job `processing` and claims it again (the run it left
/// behind never committed).
///
/// Session locks stack, so never ask for a job this session holds. Returns the ids locked
/// and the rows claimed; a locked id without a row has ended or does not exist ([`statuses`]
/// tells which) and stays locked until released.
///
/// # Errors
/// The database error; nothing is claimed then (the session may hold locks it took: close
/// it).
pub async fn release_lock_and_claim(
    conn: &mut PgConnection,
    release: &[Uuid],
    claim: &[Uuid],
    worker: &str,
) -> Result<(Vec<Uuid>, Vec<JobRow>), sqlx::Error> {
    let keys = |ids: &[Uuid]| ids.iter().map(|id| lock_key(*id)).collect::<Vec<i64>>();
    if claim.is_empty() {
        // The statement below reads `released` only while joining it to the ids to lock: with
        // none, Postgres would never run the unlocks.
        unlock(conn, release).await?;
        return Ok((Vec::new(), Vec::new()));
    }
    // `released` is a one-row aggregate joined into `locked`, so every release happens before
    // the first lock: a job released and asked for again in the same turn is locked once, not
    // twice. "Not ended" is spelled NOT IN on purpose: the status index cannot serve it, so
    // the ids are looked up by primary key (see [`open_session`]).
    let rows = sqlx::query(&format!(
        "WITH released AS ( \
             SELECT count(pg_advisory_unlock(key)) FROM unnest($1::bigint[]) AS key), \
         locked AS ( \
             SELECT r.id FROM unnest($2::uuid[], $3::bigint[]) AS r(id, key), released \
             WHERE pg_try_advisory_lock(r.key)), \
         live AS (DELETE FROM job_progress WHERE job_id IN (SELECT id FROM locked)), \
         claimed AS ( \
             UPDATE jobs SET status = 'processing', attempts = attempts + 1, worker = $4, \
                    started_at = clock_timestamp(), message = NULL, next_attempt_at = NULL, \
                    progress_done = NULL, progress_total = NULL \
             WHERE id IN (SELECT id FROM locked) \
               AND status NOT IN ('succeeded', 'failed', 'dead', 'cancelled') \
             RETURNING {JOB_COLUMNS}), \
         event AS ( \
             INSERT INTO job_events (job_id, event, attempt, worker) \
             SELECT id, 'processing', attempts, worker FROM claimed) \
         SELECT locked.id AS locked_id, claimed.* FROM locked LEFT JOIN claimed USING (id)"
    ))
    .bind(keys(release))
    .bind(claim)
    .bind(keys(claim))
    .bind(worker)
    .fetch_all(conn)
    .await?;
    let mut locked = Vec::with_capacity(rows.len());
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        locked.push(row.try_get("locked_id")?);
        if row.try_get::<Option<Uuid>, _>("id")?.is_some() {
            claimed.push(JobRow::from_row(&row)?);
        }
    }
    Ok((locked, claimed))
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

/// Marks every `processing` job of `done` succeeded with its output's message and rows, in one
/// statement (one commit): [`crate::jobs::mark_succeeded`] for runs that wrote nothing and made
/// no result file. Returns the ids that changed; the others were no longer `processing`.
///
/// # Errors
/// The database error; nothing is marked then.
pub async fn mark_succeeded(
    db: impl PgExecutor<'_>,
    done: &[(Uuid, JobOutput)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = done.iter().map(|(id, _)| *id).collect();
    let messages: Vec<&str> = done.iter().map(|(_, o)| o.message.as_str()).collect();
    let rows: Vec<Option<i64>> = done
        .iter()
        .map(|(_, o)| o.rows.map(|r| i64::try_from(r).unwrap_or(i64::MAX)))
        .collect();
    sqlx::query_scalar(
        "WITH done AS ( \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS d(id, message, rows)), \
         live AS ( \
             DELETE FROM job_progress WHERE job_id = ANY($1) RETURNING job_id, total), \
         changed AS ( \
             UPDATE jobs j SET status = 'succeeded', rows_imported = d.rows, message = d.message, \
                    completed_at = clock_timestamp(), \
                    progress_done = coalesce(d.rows, l.total, j.progress_done), \
                    progress_total = coalesce(d.rows, l.total, j.progress_total) \
             FROM done d LEFT JOIN live l ON l.job_id = d.id \
             WHERE j.id = d.id AND j.status = 'processing' \
             RETURNING j.id, j.attempts, j.worker, d.message), \
         event AS ( \
             INSERT INTO job_events (job_id, event, attempt, worker, detail) \
             SELECT id, 'succeeded', attempts, worker, message FROM changed) \
         SELECT id FROM changed",
    )
    .bind(&ids)
    .bind(&messages)
    .bind(&rows)
    .fetch_all(db)
    .await
}
