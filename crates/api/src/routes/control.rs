//! `POST /api/jobs/{id}/cancel` and `POST /api/jobs/{id}/retry`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use burrow_shared::enqueue::{requeue, EnqueueError};
use burrow_shared::jobs::JobRow;
use burrow_shared::state::{self, Transition};
use burrow_shared::JobStatus;
use uuid::Uuid;

use super::jobs::{find, parse_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Cancels a job: `queued` or `retrying` → `cancelled` at once (200); `processing` → its
/// worker's run sees the cancellation at its next batch, rolls back and ends `cancelled` (202,
/// `cancel_requested: true`); an ended job → 409.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "A waiting job, cancelled at once", body = JobRow),
        (status = 202, description = "A running job, asked to stop (`cancel_requested: true`)", body = JobRow),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 409, description = "The job has ended", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobRow>), ApiError> {
    let id = parse_id(&id)?;
    super::jobs::find_visible(&state, &caller, id).await?;
    if state::apply(&state.db, id, Transition::CancelWaiting).await? {
        // Its message is still queued; the worker that gets it finds the job ended and acks.
        return Ok((StatusCode::OK, Json(find(&state, id).await?)));
    }
    if state::request_cancel(&state.db, id).await? {
        return Ok((StatusCode::ACCEPTED, Json(find(&state, id).await?)));
    }
    let job = find(&state, id).await?;
    Err(ApiError::Conflict(format!(
        "job {id} is {} and cannot be cancelled",
        job.status
    )))
}

/// Runs a `failed`, `dead` or `cancelled` job again: back to `queued` with a fresh attempt
/// budget (its history is kept in the job's events), its message through the outbox. 202; an
/// unfinished or succeeded job → 409.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/retry",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 202, description = "Queued again with a fresh attempt budget", body = JobRow),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 409, description = "The job is not failed, dead or cancelled", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn retry_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobRow>), ApiError> {
    let id = parse_id(&id)?;
    super::jobs::find_visible(&state, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, Json(retry(&state, id).await?)))
}

/// Puts a `failed`, `dead` or `cancelled` job back to `queued` and its message in the outbox
/// (one transaction), then wakes the relay; the job as it is now. Shared by
/// `POST /api/jobs/{id}/retry` and the bulk `POST /api/jobs/retry`.
///
/// # Errors
/// 404 for an unknown job, 409 for one that is unfinished or succeeded (or changed meanwhile),
/// 500 for a database error.
pub async fn retry(state: &AppState, id: Uuid) -> Result<JobRow, ApiError> {
    let job = find(state, id).await?;
    if !matches!(
        job.status,
        JobStatus::Failed | JobStatus::Dead | JobStatus::Cancelled
    ) {
        return Err(ApiError::Conflict(format!(
            "job {id} is {}; only failed, dead or cancelled jobs can be retried",
            job.status
        )));
    }
    let mut tx = state.db.begin().await?;
    let restart = Transition::Restart {
        why: "Retried on request",
    };
    let moved = requeue(&mut tx, id, restart, 1)
        .await
        .map_err(|e| match e {
            EnqueueError::Database(e) => ApiError::from(e),
            other => ApiError::Internal(other.into()),
        })?;
    if !moved {
        return Err(ApiError::Conflict(format!(
            "job {id} changed meanwhile; try again"
        )));
    }
    tx.commit().await?;
    state.publisher.wake_relay();
    find(state, id).await
}
