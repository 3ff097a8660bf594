//! The SQL for job rows: small functions over the `jobs` and `job_files` tables.
//!
//! Inserts and reads only: every change of a job's status is [`crate::engine::state`]'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::status::JobStatus;
use crate::telemetry::TraceContext;

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
     (SELECT r.file_name FROM job_results r WHERE r.job_id = jobs.id) AS result_file_name, \
     substring(traceparent from 4 for 32) AS trace_id, output, batch_id, queue";

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
    /// The W3C trace id (32 hex digits) of the request or schedule that enqueued it, when
    /// tracing was on: every run of the job is a span of this trace.
    pub trace_id: Option<String>,
    /// What its successful run returned, for its children (at most 16 KiB of JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<serde_json::Value>,
    /// The batch it is a member of (`GET /api/batches/{id}`).
    pub batch_id: Option<Uuid>,
    /// The queue it travels through (`default` unless its kind declares another).
    pub queue: String,
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

/// Deletes a job with its file (`ON DELETE CASCADE`), its imported rows (a trigger on `jobs`,
/// see the migration `…_imported_rows_without_foreign_key`) and its live progress.
///
/// # Errors
/// The database error.
pub async fn delete_job(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH live AS (DELETE FROM job_progress WHERE job_id = $1) DELETE FROM jobs WHERE id = $1",
    )
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

/// The jobs with these ids (any order; missing ids are left out).
///
/// # Errors
/// The database error.
pub async fn find_jobs(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await
}

/// The trace context job `id` was enqueued with (`None`: no such job, or tracing was off).
///
/// # Errors
/// The database error.
pub async fn trace_context(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<TraceContext>, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT traceparent, tracestate FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(parent, state)| {
        TraceContext::from_headers(parent.as_deref(), state.as_deref())
    }))
}

/// The owner tag of each of `ids` that exists (one query, whatever the number of ids).
///
/// # Errors
/// The database error.
pub async fn owners_of(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Option<String>>, sqlx::Error> {
    let rows: Vec<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT id, user_id FROM jobs WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs with this owner tag.
    pub user_id: Option<String>,
    /// Only the members of this batch ([`crate::engine::batches`]).
    pub batch_id: Option<Uuid>,
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
           AND ($6::uuid IS NULL OR batch_id = $6) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(filter.status.map(JobStatus::as_str))
    .bind(&filter.user_id)
    .bind(before_at)
    .bind(before_id)
    .bind(filter.limit)
    .bind(filter.batch_id)
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
