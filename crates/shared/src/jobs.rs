//! The SQL for job rows: small functions over the `jobs` and `job_files` tables.
//!
//! Every state change is one `UPDATE … WHERE` whose condition is the legal previous state, so a
//! late or duplicate delivery cannot move a job that already ended. (That two deliveries never
//! run one job at the same time is [`crate::job_lock`]'s part; claims and the successes of
//! small jobs go many at a time through [`crate::job_batch`].)

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::handler::JobOutput;
use crate::status::JobStatus;

/// The columns of [`JobRow`], in one place so every query returns the same shape.
pub(crate) const JOB_COLUMNS: &str = "id, kind, user_id, file_name, status, message, attempts, \
     rows_imported, worker, correlation_id, created_at, started_at, completed_at, \
     next_attempt_at, last_error, payload, priority, run_at, \
     CASE WHEN status = 'processing' \
          THEN (SELECT p.done FROM job_progress p WHERE p.job_id = jobs.id) \
          ELSE progress_done END AS progress_done, \
     CASE WHEN status = 'processing' \
          THEN (SELECT p.total FROM job_progress p WHERE p.job_id = jobs.id) \
          ELSE progress_total END AS progress_total, \
     cancel_requested, \
     (SELECT r.file_name FROM job_results r WHERE r.job_id = jobs.id) AS result_file_name";

/// One job as stored, and as the api shows it (timestamps serialise as RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRow {
    /// The job's id (UUIDv7).
    pub id: Uuid,
    /// Which handler runs it, e.g. `import_xlsx`.
    pub kind: String,
    /// The client's owner tag, if it gave one.
    pub user_id: Option<String>,
    /// The uploaded file's display name.
    pub file_name: Option<String>,
    /// Where the job is in its life.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// "Imported N rows", or the error that ended the job.
    pub message: Option<String>,
    /// Deliveries that reached a worker.
    pub attempts: i32,
    /// Rows committed by the import (set when the job ends).
    pub rows_imported: Option<i64>,
    /// The worker that ran the latest attempt.
    pub worker: Option<String>,
    /// Ties request, message and logs together.
    pub correlation_id: Uuid,
    /// When the api accepted the job.
    pub created_at: DateTime<Utc>,
    /// When a worker last claimed it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// While `retrying`: about when the next attempt starts.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The latest transient error (kept while retrying, and on `dead`).
    pub last_error: Option<String>,
    /// The kind's parameters.
    pub payload: serde_json::Value,
    /// 0 (normal) to 9 (most urgent).
    pub priority: i16,
    /// Not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Units done in the running (or last) attempt, e.g. rows.
    pub progress_done: Option<i64>,
    /// Units in all, when known.
    pub progress_total: Option<i64>,
    /// Someone asked to cancel it while it was running.
    pub cancel_requested: bool,
    /// The result file's name, when the job made one (`GET /api/jobs/{id}/result`).
    pub result_file_name: Option<String>,
}

/// What the api knows about a job before it is stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The kind's parameters (already validated against the kind).
    pub payload: serde_json::Value,
    /// 0 (normal) to 9 (most urgent).
    pub priority: i16,
    /// Not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// The id to give it (UUIDv7).
    pub id: Uuid,
    /// Which handler runs it.
    pub kind: String,
    /// The client's owner tag.
    pub user_id: Option<String>,
    /// The uploaded file's display name.
    pub file_name: Option<String>,
    /// Ties request, message and logs together.
    pub correlation_id: Uuid,
}

impl NewJob {
    /// A job of `kind` with a fresh UUIDv7 id and correlation id, empty payload, priority 0.
    pub fn new(kind: &str) -> Self {
        NewJob {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            user_id: None,
            file_name: None,
            correlation_id: Uuid::new_v4(),
            payload: serde_json::json!({}),
            priority: 0,
            run_at: None,
            idempotency_key: None,
        }
    }
}

/// Inserts a `queued` job, or returns `None` when its `(user_id, idempotency_key)` exists
/// already (then nothing is written; see [`find_by_idempotency_key`]). Records the `queued`
/// event.
///
/// # Errors
/// The database error.
pub async fn insert_job(
    tx: &mut PgConnection,
    job: &NewJob,
) -> Result<Option<JobRow>, sqlx::Error> {
    Ok(insert_jobs(tx, &[job]).await?.pop())
}

/// Inserts `queued` jobs and their `queued` events in one statement; returns the rows
/// inserted, in no particular order. A job whose `(user_id, idempotency_key)` exists already
/// (or comes earlier in `jobs`) is skipped: it is missing from the answer and nothing of it is
/// written.
///
/// # Errors
/// The database error; nothing is inserted then.
pub async fn insert_jobs(
    tx: &mut PgConnection,
    jobs: &[&NewJob],
) -> Result<Vec<JobRow>, sqlx::Error> {
    let column = |f: fn(&NewJob) -> Option<String>| jobs.iter().map(|j| f(j)).collect::<Vec<_>>();
    sqlx::query_as::<_, JobRow>(&format!(
        "WITH inserted AS ( \
             INSERT INTO jobs (id, kind, user_id, file_name, correlation_id, payload, priority, \
                               run_at, idempotency_key) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
                                  $6::jsonb[], $7::int2[], $8::timestamptz[], $9::text[]) \
             ON CONFLICT (coalesce(user_id, ''), idempotency_key) \
                 WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING {JOB_COLUMNS}), \
         event AS (INSERT INTO job_events (job_id, event) SELECT id, 'queued' FROM inserted) \
         SELECT * FROM inserted"
    ))
    .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
    .bind(column(|j| j.user_id.clone()))
    .bind(column(|j| j.file_name.clone()))
    .bind(jobs.iter().map(|j| j.correlation_id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| &j.payload).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
    .bind(column(|j| j.idempotency_key.clone()))
    .fetch_all(&mut *tx)
    .await
}

/// The job an earlier request created with this owner tag and `Idempotency-Key`.
///
/// # Errors
/// The database error.
pub async fn find_by_idempotency_key(
    db: impl PgExecutor<'_>,
    user_id: Option<&str>,
    key: &str,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE coalesce(user_id, '') = coalesce($1, '') AND idempotency_key = $2"
    ))
    .bind(user_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Appends to a job's history (`job_events`).
///
/// # Errors
/// The database error.
pub async fn record_event(
    db: impl PgExecutor<'_>,
    id: Uuid,
    event: &str,
    attempt: Option<i32>,
    worker: Option<&str>,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_events (job_id, event, attempt, worker, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(event)
    .bind(attempt)
    .bind(worker)
    .bind(detail)
    .execute(db)
    .await?;
    Ok(())
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The new state, or the action.
    pub event: String,
    /// The attempt it belongs to.
    pub attempt: Option<i32>,
    /// The worker involved.
    pub worker: Option<String>,
    /// The error or message.
    pub detail: Option<String>,
}

/// A job's history, oldest first.
///
/// # Errors
/// The database error.
pub async fn list_events(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<JobEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, event, attempt, worker, detail FROM job_events WHERE job_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

/// Inserts a `queued` job and its file (both, or neither: call inside a transaction); `None`
/// on an idempotency-key conflict, as [`insert_job`].
///
/// # Errors
/// The database error.
pub async fn insert_job_with_file(
    tx: &mut PgConnection,
    job: &NewJob,
    file: &[u8],
) -> Result<Option<JobRow>, sqlx::Error> {
    let Some(row) = insert_job(&mut *tx, job).await? else {
        return Ok(None);
    };
    insert_file(tx, job.id, file).await?;
    Ok(Some(row))
}

/// Stores the uploaded file of job `id`. Call in the transaction that inserts the job.
///
/// # Errors
/// The database error.
pub async fn insert_file(tx: &mut PgConnection, id: Uuid, file: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO job_files (job_id, content, size_bytes) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(file)
        .bind(i64::try_from(file.len()).unwrap_or(i64::MAX))
        .execute(tx)
        .await?;
    Ok(())
}

/// Deletes a job with its file and rows (`ON DELETE CASCADE`) and its live progress.
///
/// # Errors
/// The database error.
pub async fn delete_job(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "WITH {LIVE_PROGRESS} DELETE FROM jobs WHERE id = $1"
    ))
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// The job with this id, if any.
///
/// # Errors
/// The database error.
pub async fn find_job(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as::<_, JobRow>(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs with this owner tag.
    pub user_id: Option<String>,
    /// Only jobs strictly older than this `(created_at, id)` keyset position.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// At most this many rows.
    pub limit: i64,
}

/// Jobs matching `filter`, newest first (`created_at DESC, id DESC`), at most `filter.limit`.
///
/// # Errors
/// The database error.
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    filter: &JobFilter,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let (before_at, before_id) = filter.before.unzip();
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::text IS NULL OR user_id = $2) \
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(filter.status.map(JobStatus::as_str))
    .bind(&filter.user_id)
    .bind(before_at)
    .bind(before_id)
    .bind(filter.limit)
    .fetch_all(db)
    .await
}

/// The uploaded bytes of a job, if it has a file.
///
/// # Errors
/// The database error.
pub async fn load_file(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT content FROM job_files WHERE job_id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Ends a `processing` job as `succeeded` with `output` (message, rows, result file). Run it
/// in the transaction that wrote the job's effect, so both commit together or not at all.
///
/// Timestamps use `clock_timestamp()`: `now()` is the transaction's start, before the run.
///
/// # Errors
/// The database error; [`sqlx::Error::RowNotFound`] if the job was not `processing`.
pub async fn mark_succeeded(
    tx: &mut PgConnection,
    id: Uuid,
    output: &JobOutput,
) -> Result<(), sqlx::Error> {
    let rows = output.rows.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
    let changed = transition(
        &mut *tx,
        id,
        "status = 'succeeded', rows_imported = $3, message = $2, completed_at = clock_timestamp(), \
         progress_done = coalesce($3, (SELECT total FROM live), progress_done), \
         progress_total = coalesce($3, (SELECT total FROM live), progress_total)",
        "status = 'processing'",
        "succeeded",
        Some(&output.message),
        rows,
    )
    .await?;
    if !changed {
        return Err(sqlx::Error::RowNotFound);
    }
    if let Some(result) = &output.result {
        sqlx::query(
            "INSERT INTO job_results (job_id, file_name, content_type, content, size_bytes) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (job_id) DO UPDATE SET file_name = $2, content_type = $3, content = $4, \
                                               size_bytes = $5",
        )
        .bind(id)
        .bind(&result.file_name)
        .bind(&result.content_type)
        .bind(&result.bytes)
        .bind(i64::try_from(result.bytes.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Ends a `processing` job as `failed` with `message` (a permanent error), and no rows.
///
/// # Errors
/// The database error.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    message: &str,
) -> Result<(), sqlx::Error> {
    transition(
        db,
        id,
        &format!(
            "status = 'failed', message = $2, rows_imported = 0, \
             completed_at = clock_timestamp(), {FREEZE_PROGRESS}"
        ),
        "status = 'processing'",
        "failed",
        Some(message),
        None,
    )
    .await
    .map(drop)
}

/// Records a transient failure: the job waits for its next attempt at `next_attempt_at`.
///
/// # Errors
/// The database error.
pub async fn mark_retrying(
    db: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "WITH {LIVE_PROGRESS}, changed AS ( \
             UPDATE jobs SET status = 'retrying', last_error = $2, next_attempt_at = $3, \
                    message = 'Retrying after: ' || $2, {FREEZE_PROGRESS} \
             WHERE id = $1 AND status IN ('queued', 'processing', 'retrying') \
             RETURNING id, attempts, worker) \
         INSERT INTO job_events (job_id, event, attempt, worker, detail) \
         SELECT id, 'retrying', attempts, worker, $2 FROM changed"
    ))
    .bind(id)
    .bind(error)
    .bind(next_attempt_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Ends a job `dead`: retries exhausted, or its message could not be run. Its message is in
/// the DLQ, from where it can be re-driven.
///
/// # Errors
/// The database error.
pub async fn mark_dead(db: impl PgExecutor<'_>, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    transition(
        db,
        id,
        &format!(
            "status = 'dead', last_error = $2, message = $2, next_attempt_at = NULL, \
             rows_imported = 0, completed_at = clock_timestamp(), {FREEZE_PROGRESS}"
        ),
        "status IN ('queued', 'processing', 'retrying')",
        "dead",
        Some(error),
        None,
    )
    .await
    .map(drop)
}

/// Cancels a job that waits (`queued` or `retrying`) at once. Returns whether it changed. Its
/// message stays queued; the worker that receives it finds the job ended and acks.
///
/// # Errors
/// The database error.
pub async fn cancel_waiting(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    mark_cancelled_from(db, id, "status IN ('queued', 'retrying')").await
}

/// Ends a `processing` job `cancelled`: its run stopped on a cancel request and rolled back.
/// Returns whether it changed.
///
/// # Errors
/// The database error.
pub async fn mark_cancelled(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    mark_cancelled_from(db, id, "status = 'processing'").await
}

async fn mark_cancelled_from(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: &str,
) -> Result<bool, sqlx::Error> {
    transition(
        db,
        id,
        &format!(
            "status = 'cancelled', message = 'Cancelled', next_attempt_at = NULL, \
             completed_at = clock_timestamp(), {FREEZE_PROGRESS}"
        ),
        from,
        "cancelled",
        None,
        None,
    )
    .await
}

/// Asks a `processing` job to stop: its worker sees the flag and cancels the run. Returns
/// whether the job was processing.
///
/// # Errors
/// The database error.
pub async fn request_cancel(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    // Not a `transition`: the run goes on, and so does its live progress.
    let done = sqlx::query(
        "WITH changed AS ( \
             UPDATE jobs SET cancel_requested = true WHERE id = $1 AND status = 'processing' \
             RETURNING id, attempts, worker) \
         INSERT INTO job_events (job_id, event, attempt, worker) \
         SELECT id, 'cancel_requested', attempts, worker FROM changed",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Puts a `failed`, `dead` or `cancelled` job back to `queued` with a fresh attempt budget
/// (its history stays in `job_events`). Returns whether it changed; the caller publishes its
/// message (through the outbox) in the same transaction.
///
/// # Errors
/// The database error.
pub async fn requeue_finished(
    db: impl PgExecutor<'_>,
    id: Uuid,
    why: &str,
) -> Result<bool, sqlx::Error> {
    transition(
        db,
        id,
        "status = 'queued', attempts = 0, message = $2, cancel_requested = false, \
         next_attempt_at = NULL, started_at = NULL, completed_at = NULL, \
         progress_done = NULL, progress_total = NULL",
        "status IN ('failed', 'dead', 'cancelled')",
        "queued",
        Some(why),
        None,
    )
    .await
}

/// Stores progress of a running job in `job_progress` (no event: progress is not a state
/// change) and returns whether someone asked to cancel it: one round trip for the worker's
/// 250 ms tick. It never writes the `jobs` row, which an import's foreign-key checks keep
/// locked (see the `job_progress` migration).
///
/// # Errors
/// The database error.
pub async fn store_progress(
    db: impl PgExecutor<'_>,
    id: Uuid,
    done: u64,
    total: u64,
) -> Result<bool, sqlx::Error> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "WITH stored AS ( \
             INSERT INTO job_progress (job_id, done, total) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO UPDATE \
             SET done = excluded.done, total = excluded.total, updated_at = clock_timestamp()) \
         SELECT cancel_requested FROM jobs WHERE id = $1 AND status = 'processing'",
    )
    .bind(id)
    .bind(i64::try_from(done).unwrap_or(i64::MAX))
    .bind(i64::try_from(total).unwrap_or(i64::MAX))
    .fetch_optional(db)
    .await?;
    Ok(cancel.unwrap_or(false))
}

/// Whether someone asked to cancel running job `id`: a plain read, no row lock.
///
/// # Errors
/// The database error.
pub async fn cancel_requested(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let cancel: Option<bool> = sqlx::query_scalar(
        "SELECT cancel_requested FROM jobs WHERE id = $1 AND status = 'processing'",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(cancel.unwrap_or(false))
}

/// The result file of a job: `(file_name, content_type, bytes)`.
///
/// # Errors
/// The database error.
pub async fn load_result(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<(String, String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT file_name, content_type, content FROM job_results WHERE job_id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A run's live progress, taken out of `job_progress` by a statement that ends or restarts the
/// run; its `SET` reads `(SELECT done FROM live)`. Deleting it even when the `UPDATE` matches
/// nothing is right: a job that is not running has no live progress.
pub(crate) const LIVE_PROGRESS: &str =
    "live AS (DELETE FROM job_progress WHERE job_id = $1 RETURNING done, total)";

/// `SET` items keeping the final progress of a run that ends, for the job detail.
const FREEZE_PROGRESS: &str = "progress_done = coalesce((SELECT done FROM live), progress_done), \
     progress_total = coalesce((SELECT total FROM live), progress_total)";

/// One state change and its history entry, in one statement: `UPDATE jobs SET {set} WHERE id =
/// $1 AND {from}`, then an event named `event` with `$2` (detail) as its detail. `$3` is
/// `rows`. Every transition ends or restarts a run, so it also takes the run's live progress
/// out of `job_progress` ([`LIVE_PROGRESS`]). Returns whether the job changed.
async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    set: &str,
    from: &str,
    event: &str,
    detail: Option<&str>,
    rows: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "WITH {LIVE_PROGRESS}, changed AS ( \
             UPDATE jobs SET {set} WHERE id = $1 AND {from} RETURNING id, attempts, worker) \
         INSERT INTO job_events (job_id, event, attempt, worker, detail) \
         SELECT id, '{event}', attempts, worker, $2 FROM changed"
    ))
    .bind(id)
    .bind(detail)
    .bind(rows)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
