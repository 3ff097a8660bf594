//! Aggregates over the `jobs` table for the dashboard: jobs per status, completions per
//! minute, and failed or dead jobs grouped by their error.
//!
//! Each is one read-only query; none locks rows. They are polled every second or two by each
//! open dashboard, so they stay on indexes where they can (`jobs_status_newest_idx`,
//! `jobs_completed_idx`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::status::JobStatus;

/// Most job ids listed per failure group; `count` still counts them all.
pub const MAX_GROUP_IDS: i64 = 100;
/// Most failure groups returned, the largest first.
pub const MAX_GROUPS: i64 = 100;

/// The SQL expression that turns a job's error text into its group key: UUIDs become `<id>`,
/// quoted text `"…"`, and runs of digits `#`. So `row 7, column Id (cell A7): expected a whole
/// number, found "abc"` and the same error in row 12 of another file land in one group
/// (`row #, column Id (cell A#): expected a whole number, found "…"`).
const NORMALISED_ERROR: &str = "regexp_replace(regexp_replace(regexp_replace(error, \
     '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<id>', 'g'), \
     '\"[^\"]*\"', '\"…\"', 'g'), \
     '[0-9]+', '#', 'g')";

/// How many jobs are in each status, every status included (0 when none).
///
/// # Errors
/// The database error.
pub async fn count_by_status(
    db: impl PgExecutor<'_>,
) -> Result<Vec<(JobStatus, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status")
            .fetch_all(db)
            .await?;
    Ok(JobStatus::ALL
        .iter()
        .map(|status| {
            let count = rows
                .iter()
                .find(|(name, _)| name == status.as_str())
                .map_or(0, |(_, count)| *count);
            (*status, count)
        })
        .collect())
}

/// Jobs that ended within one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteCount {
    /// The minute's start (UTC, whole minute).
    pub minute: DateTime<Utc>,
    /// Jobs whose `completed_at` falls in the minute, whatever their end.
    pub completed: i64,
    /// Of those, `succeeded`.
    pub succeeded: i64,
    /// Of those, `failed` or `dead`.
    pub failed: i64,
}

/// Jobs completed per minute over the last `minutes` minutes, oldest first, the current
/// (partial) minute last; minutes without completions are included with zeros.
///
/// Counts `completed_at` as it is now: a job retried since is not counted until it ends again.
///
/// # Errors
/// The database error.
pub async fn completed_per_minute(
    db: impl PgExecutor<'_>,
    minutes: i32,
) -> Result<Vec<MinuteCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.minute, \
                count(j.id) AS completed, \
                count(j.id) FILTER (WHERE j.status = 'succeeded') AS succeeded, \
                count(j.id) FILTER (WHERE j.status IN ('failed', 'dead')) AS failed \
         FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1), \
                              date_trunc('minute', now()), interval '1 minute') AS m(minute) \
         LEFT JOIN jobs j ON j.completed_at >= m.minute \
                         AND j.completed_at < m.minute + interval '1 minute' \
         GROUP BY m.minute ORDER BY m.minute",
    )
    .bind(minutes.max(1))
    .fetch_all(db)
    .await
}

/// Failed or dead jobs that share one normalised error.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureGroup {
    /// The normalised error (numbers as `#`, quoted text as `"…"`, ids as `<id>`).
    pub error: String,
    /// The newest job's error text, as it was.
    pub example: String,
    /// `failed` (permanent error) or `dead` (retries exhausted, message in the DLQ).
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// Jobs in the group.
    pub count: i64,
    /// The newest [`MAX_GROUP_IDS`] of them, newest first.
    pub job_ids: Vec<Uuid>,
    /// When the newest of them ended.
    pub last_at: Option<DateTime<Utc>>,
}

/// `failed` and `dead` jobs grouped by status and normalised error (`message`, else
/// `last_error`), the largest groups first, at most [`MAX_GROUPS`].
///
/// # Errors
/// The database error.
pub async fn failure_groups(db: impl PgExecutor<'_>) -> Result<Vec<FailureGroup>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH failed AS ( \
             SELECT id, status, completed_at, \
                    coalesce(nullif(message, ''), last_error, 'no error recorded') AS error \
             FROM jobs WHERE status IN ('failed', 'dead')) \
         SELECT {NORMALISED_ERROR} AS error, \
                (array_agg(error ORDER BY completed_at DESC NULLS LAST, id DESC))[1] AS example, \
                status, count(*) AS count, \
                (array_agg(id ORDER BY completed_at DESC NULLS LAST, id DESC))[1:$1] AS job_ids, \
                max(completed_at) AS last_at \
         FROM failed GROUP BY 1, status \
         ORDER BY count DESC, last_at DESC NULLS LAST, error LIMIT $2"
    ))
    .bind(MAX_GROUP_IDS)
    .bind(MAX_GROUPS)
    .fetch_all(db)
    .await
}
