//! The SQL for job rows: small functions over the `jobs` and `job_files` tables.
//!
//! Every state change is one `UPDATE … WHERE` whose condition is the legal previous state, so a
//! late or duplicate delivery cannot move a job that already ended. (That two deliveries never
//! run one job at the same time is [`crate::job_lock`]'s part.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::status::JobStatus;

/// The columns of [`JobRow`], in one place so every query returns the same shape.
const JOB_COLUMNS: &str = "id, kind, user_id, file_name, status, message, attempts, \
     rows_imported, worker, correlation_id, created_at, started_at, completed_at, \
     next_attempt_at, last_error";

/// One job as stored, and as the api shows it (timestamps serialise as RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
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
}

/// What the api knows about a job before it is stored.
#[derive(Debug, Clone)]
pub struct NewJob {
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

/// Inserts a `queued` job and its file. Call inside a transaction so neither exists alone.
///
/// # Errors
/// The database error.
pub async fn insert_job_with_file(
    tx: &mut PgConnection,
    job: &NewJob,
    file: &[u8],
) -> Result<JobRow, sqlx::Error> {
    let row = sqlx::query_as::<_, JobRow>(&format!(
        "INSERT INTO jobs (id, kind, user_id, file_name, correlation_id) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {JOB_COLUMNS}"
    ))
    .bind(job.id)
    .bind(&job.kind)
    .bind(&job.user_id)
    .bind(&job.file_name)
    .bind(job.correlation_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO job_files (job_id, content, size_bytes) VALUES ($1, $2, $3)")
        .bind(job.id)
        .bind(file)
        .bind(i64::try_from(file.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    Ok(row)
}

/// Deletes a job with its file and rows (`ON DELETE CASCADE`).
///
/// # Errors
/// The database error.
pub async fn delete_job(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM jobs WHERE id = $1")
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

/// The result of trying to claim a job for a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The job is now `processing` by this worker, with its attempt counted.
    Claimed(Box<JobRow>),
    /// The job already ended (a duplicate or late redelivery): nothing to do.
    AlreadyFinished(JobStatus),
    /// No such job (deleted, or a message from another installation).
    Missing,
}

/// Marks the job `processing` by `worker` and counts the attempt, unless it already ended.
///
/// A job found `processing` is claimed again: that is a redelivery after its worker died, and
/// the import it left behind was never committed (rows and status commit together).
///
/// # Errors
/// The database error.
pub async fn claim_job(
    db: &mut PgConnection,
    id: Uuid,
    worker: &str,
) -> Result<Claim, sqlx::Error> {
    let claimed = sqlx::query_as::<_, JobRow>(&format!(
        "UPDATE jobs SET status = 'processing', attempts = attempts + 1, worker = $2, \
                started_at = clock_timestamp(), message = NULL, next_attempt_at = NULL \
         WHERE id = $1 AND status IN ('queued', 'processing', 'retrying') \
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(id)
    .bind(worker)
    .fetch_optional(&mut *db)
    .await?;
    if let Some(job) = claimed {
        return Ok(Claim::Claimed(Box::new(job)));
    }
    Ok(match find_job(&mut *db, id).await? {
        Some(job) => Claim::AlreadyFinished(job.status),
        None => Claim::Missing,
    })
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

/// Ends a `processing` job as `succeeded` with `rows` imported. Run it in the transaction that
/// wrote the rows, so the rows and the status commit together or not at all.
///
/// Timestamps use `clock_timestamp()`: `now()` is the transaction's start, before the import.
///
/// # Errors
/// The database error; [`sqlx::Error::RowNotFound`] if the job was not `processing`.
pub async fn mark_succeeded(db: &mut PgConnection, id: Uuid, rows: u64) -> Result<(), sqlx::Error> {
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    let result = sqlx::query(
        "UPDATE jobs SET status = 'succeeded', rows_imported = $2, completed_at = clock_timestamp(), \
                message = 'Imported ' || $2 || ' rows' \
         WHERE id = $1 AND status = 'processing'",
    )
    .bind(id)
    .bind(rows)
    .execute(db)
    .await?;
    if result.rows_affected() == 0 {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(())
}

/// Ends a `processing` job as `failed` with `message`, and no rows.
///
/// # Errors
/// The database error.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', message = $2, rows_imported = 0, completed_at = clock_timestamp() \
         WHERE id = $1 AND status = 'processing'",
    )
    .bind(id)
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
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
    sqlx::query(
        "UPDATE jobs SET status = 'retrying', last_error = $2, next_attempt_at = $3, \
                message = 'Retrying after: ' || $2 \
         WHERE id = $1 AND status IN ('queued', 'processing', 'retrying')",
    )
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
    sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error = $2, message = $2, next_attempt_at = NULL, \
                rows_imported = 0, completed_at = clock_timestamp() \
         WHERE id = $1 AND status IN ('queued', 'processing', 'retrying')",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}
