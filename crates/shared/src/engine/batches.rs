//! Batches: member jobs enqueued together, with optional callbacks, and their aggregate status.
//!
//! A batch's callbacks are ordinary jobs that wait for every member
//! ([`crate::engine::dependencies`]): `on_complete` with `run_on_failure`, so it runs once all
//! members have ended whatever their outcome; `on_success` without, so the first member that
//! fails, dies or is cancelled cancels it. Each is released by the transaction that ends the
//! last member, so it is enqueued exactly once, however many members end at the same moment on
//! different replicas, and whatever crashes in between (a rolled-back end releases nothing).
//! This is Sidekiq's batch `on(:complete)` / `on(:success)` and Celery's chord, without a
//! counter outside the job table.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::engine::enqueue::{enqueue_many, EnqueueError, Enqueued, NewJob};
use crate::engine::status::JobStatus;

/// Most members of one batch: callbacks wait on one edge per member.
pub const MAX_MEMBERS: usize = 10_000;

/// A batch to enqueue.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// Its id (UUIDv7).
    pub id: Uuid,
    /// The owner tag of the batch (its members carry their own).
    pub user_id: Option<String>,
    /// Free text shown with it.
    pub description: Option<String>,
    /// 1 to [`MAX_MEMBERS`] jobs; no idempotency keys (a member returned from an earlier
    /// request would not be this batch's).
    pub members: Vec<NewJob>,
    /// Runs once every member succeeded; cancelled by the first that does not.
    pub on_success: Option<NewJob>,
    /// Runs once every member has ended, whatever the outcome.
    pub on_complete: Option<NewJob>,
}

impl NewBatch {
    /// A batch of `members` with a fresh id and no callbacks.
    ///
    /// # Example
    /// ```
    /// use burrow_shared::engine::batches::NewBatch;
    /// use burrow_shared::engine::enqueue::NewJob;
    ///
    /// let batch = NewBatch::of((0..3).map(|_| NewJob::new("noop")).collect())
    ///     .on_complete(NewJob::new("webhook"));
    /// assert_eq!(batch.members.len(), 3);
    /// ```
    pub fn of(members: Vec<NewJob>) -> NewBatch {
        NewBatch {
            id: Uuid::now_v7(),
            user_id: None,
            description: None,
            members,
            on_success: None,
            on_complete: None,
        }
    }

    /// With an `on_success` callback.
    #[must_use]
    pub fn on_success(mut self, job: NewJob) -> NewBatch {
        self.on_success = Some(job);
        self
    }

    /// With an `on_complete` callback.
    #[must_use]
    pub fn on_complete(mut self, job: NewJob) -> NewBatch {
        self.on_complete = Some(job);
        self
    }
}

/// A stored batch: its members and callbacks as enqueued.
#[derive(Debug, Clone)]
pub struct EnqueuedBatch {
    /// The batch's id.
    pub id: Uuid,
    /// The members, in the order given.
    pub members: Vec<Enqueued>,
    /// The `on_success` callback.
    pub on_success: Option<Enqueued>,
    /// The `on_complete` callback.
    pub on_complete: Option<Enqueued>,
}

/// Enqueues `batch` (its row, members and callbacks) in one transaction inside the caller's,
/// all or none.
///
/// # Errors
/// [`EnqueueError::Invalid`] for no members or more than [`MAX_MEMBERS`], a member with an
/// idempotency key or parents of its own, or an invalid job; [`EnqueueError::Database`].
pub async fn enqueue_batch(
    conn: &mut PgConnection,
    batch: NewBatch,
) -> Result<EnqueuedBatch, EnqueueError> {
    if batch.members.is_empty() || batch.members.len() > MAX_MEMBERS {
        return Err(EnqueueError::Invalid(format!(
            "a batch has 1 to {MAX_MEMBERS} members"
        )));
    }
    if batch.members.iter().any(|m| m.idempotency_key.is_some()) {
        return Err(EnqueueError::Invalid(
            "batch members take no idempotency key".to_owned(),
        ));
    }
    let member_ids: Vec<Uuid> = batch.members.iter().map(|m| m.id).collect();
    let mut tx = conn.begin().await?;
    sqlx::query("INSERT INTO batches (id, user_id, description, members) VALUES ($1, $2, $3, $4)")
        .bind(batch.id)
        .bind(&batch.user_id)
        .bind(&batch.description)
        .bind(i32::try_from(member_ids.len()).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    let members = batch.members.len();
    let mut jobs: Vec<NewJob> = batch
        .members
        .into_iter()
        .map(|m| NewJob {
            batch_id: Some(batch.id),
            ..m
        })
        .collect();
    let callback = |job: NewJob, run_on_failure: bool| NewJob {
        run_on_failure: job.run_on_failure || run_on_failure,
        ..job.depends_on(member_ids.iter().copied())
    };
    let has_success = batch.on_success.is_some();
    jobs.extend(batch.on_success.map(|job| callback(job, false)));
    jobs.extend(batch.on_complete.map(|job| callback(job, true)));
    let mut stored = enqueue_many(&mut tx, jobs).await?;
    let mut callbacks = stored.split_off(members).into_iter();
    let on_success = if has_success { callbacks.next() } else { None };
    let on_complete = callbacks.next();
    sqlx::query("UPDATE batches SET on_success = $2, on_complete = $3 WHERE id = $1")
        .bind(batch.id)
        .bind(on_success.as_ref().map(|e| e.job.id))
        .bind(on_complete.as_ref().map(|e| e.job.id))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(EnqueuedBatch {
        id: batch.id,
        members: stored,
        on_success,
        on_complete,
    })
}

/// Where a batch is: `running` while a member has not ended, then `succeeded` if every
/// member succeeded, else `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// A member has not ended.
    Running,
    /// Every member succeeded.
    Succeeded,
    /// Every member ended, and at least one did not succeed.
    Failed,
}

/// A batch as the api shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSummary {
    /// The batch's id.
    pub id: Uuid,
    /// Its owner tag.
    pub user_id: Option<String>,
    /// Its free text.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its aggregate status.
    pub status: BatchStatus,
    /// Members in all.
    pub members: i64,
    /// Members per status (only statuses with members).
    pub counts: BTreeMap<String, i64>,
    /// When its last member ended (`None` while running).
    pub completed_at: Option<DateTime<Utc>>,
    /// The `on_success` callback job.
    pub on_success: Option<Uuid>,
    /// The `on_success` callback's status: `awaiting` until every member ended, then
    /// `cancelled` if one did not succeed.
    pub on_success_status: Option<JobStatus>,
    /// The `on_complete` callback job.
    pub on_complete: Option<Uuid>,
    /// The `on_complete` callback's status: `awaiting` until every member ended.
    pub on_complete_status: Option<JobStatus>,
}

impl BatchSummary {
    /// Whether nothing of the batch will change any more: every member ended, and so did its
    /// callbacks.
    pub fn is_settled(&self) -> bool {
        self.status != BatchStatus::Running
            && [self.on_success_status, self.on_complete_status]
                .into_iter()
                .flatten()
                .all(JobStatus::is_terminal)
    }
}

/// The batch `id`, with its counts, if it exists.
///
/// # Errors
/// The database error.
pub async fn find_batch(
    db: impl PgExecutor<'_> + Copy,
    id: Uuid,
) -> Result<Option<BatchSummary>, sqlx::Error> {
    let row: Option<BatchRow> = sqlx::query_as(
        "SELECT b.id, b.user_id, b.description, b.created_at, \
                b.on_success, s.status AS on_success_status, \
                b.on_complete, c.status AS on_complete_status \
         FROM batches b \
         LEFT JOIN jobs s ON s.id = b.on_success \
         LEFT JOIN jobs c ON c.id = b.on_complete \
         WHERE b.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let per_status: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT status, count(*), max(completed_at) FROM jobs WHERE batch_id = $1 \
         GROUP BY status",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    let members: i64 = per_status.iter().map(|(_, n, _)| n).sum();
    let ended = |status: &str| {
        status
            .parse::<JobStatus>()
            .is_ok_and(JobStatus::is_terminal)
    };
    let running = per_status.iter().any(|(status, _, _)| !ended(status));
    let status = if running {
        BatchStatus::Running
    } else if per_status
        .iter()
        .all(|(status, _, _)| status == "succeeded")
    {
        BatchStatus::Succeeded
    } else {
        BatchStatus::Failed
    };
    let completed_at = if running {
        None
    } else {
        per_status.iter().filter_map(|(_, _, at)| *at).max()
    };
    Ok(Some(BatchSummary {
        id: row.id,
        user_id: row.user_id,
        description: row.description,
        created_at: row.created_at,
        status,
        members,
        counts: per_status.into_iter().map(|(s, n, _)| (s, n)).collect(),
        completed_at,
        on_success: row.on_success,
        on_success_status: parse_status(row.on_success_status.as_deref()),
        on_complete: row.on_complete,
        on_complete_status: parse_status(row.on_complete_status.as_deref()),
    }))
}

/// The batch whose `on_success` or `on_complete` callback is job `callback`, if any.
///
/// # Errors
/// The database error.
pub async fn find_batch_called_back(
    db: impl PgExecutor<'_> + Copy,
    callback: Uuid,
) -> Result<Option<BatchSummary>, sqlx::Error> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM batches WHERE on_success = $1 OR on_complete = $1")
            .bind(callback)
            .fetch_optional(db)
            .await?;
    match id {
        Some(id) => find_batch(db, id).await,
        None => Ok(None),
    }
}

/// A status column as [`JobStatus`] (the table's check constraint allows no other value).
fn parse_status(status: Option<&str>) -> Option<JobStatus> {
    status.and_then(|s| s.parse().ok())
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: Uuid,
    user_id: Option<String>,
    description: Option<String>,
    created_at: DateTime<Utc>,
    on_success: Option<Uuid>,
    on_success_status: Option<String>,
    on_complete: Option<Uuid>,
    on_complete_status: Option<String>,
}
