//! `GET /api/jobs/{id}` and `GET /api/jobs?status=&user_id=&limit=&cursor=`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use burrow_shared::jobs::{self, JobEvent, JobFilter, JobRow};
use burrow_shared::JobStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest page.
pub const MAX_PAGE: i64 = 200;

/// A job with its history (`events`, oldest first).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: JobRow,
    /// Every state change: what, when, attempt, worker, error.
    pub events: Vec<JobEvent>,
}

/// Parses a job id from the path: 400 when it is not a UUID.
pub fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a job id (a UUID)")))
}

/// The job, or 404.
pub async fn find(state: &AppState, id: Uuid) -> Result<JobRow, ApiError> {
    jobs::find_job(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// The job if `caller` may see it; 404 otherwise (someone else's job looks like no job).
pub async fn find_visible(state: &AppState, caller: &Caller, id: Uuid) -> Result<JobRow, ApiError> {
    let job = find(state, id).await?;
    if caller.can_see(&job) {
        Ok(job)
    } else {
        Err(ApiError::NotFound(format!("no job {id}")))
    }
}

/// One job and its history. 400 for a malformed id, 404 for an unknown one.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job and its history", body = JobDetail),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_id(&id)?;
    let job = find_visible(&state, &caller, id).await?;
    let events = jobs::list_events(&state.db, id).await?;
    Ok(Json(JobDetail { job, events }))
}

/// Query of the job list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only jobs with this owner tag.
    user_id: Option<String>,
    /// Jobs per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of jobs, newest first. `next_cursor` is absent on the last page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    /// The jobs of this page.
    pub jobs: Vec<JobRow>,
    /// Pass as `cursor` to get the next (older) page.
    pub next_cursor: Option<String>,
}

/// Lists jobs newest first, paginated with an opaque keyset cursor.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = JobPage),
        (status = 400, description = "Unknown status, `limit` out of range or invalid cursor", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = JobFilter {
        status,
        // A non-admin lists its own jobs only, whatever `user_id` it asks for.
        user_id: if caller.admin {
            query.user_id
        } else {
            caller.user_id.clone()
        },
        before,
        limit: limit + 1,
    };
    let mut jobs = jobs::list_jobs(&state.db, &filter).await?;
    let next_cursor = if jobs.len() as i64 > limit {
        jobs.truncate(limit as usize);
        jobs.last()
            .map(|last| encode_cursor(last.created_at, last.id))
    } else {
        None
    };
    Ok(Json(JobPage { jobs, next_cursor }))
}

/// `{created_at in µs since the epoch}_{id}`: the keyset position of the last job shown.
fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id.simple())
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::BadRequest(format!("invalid cursor {cursor:?}"));
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let at = DateTime::from_timestamp_micros(1_763_700_000_123_456).expect("valid");
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).ok(), Some((at, id)));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor("12_notauuid").is_err());
    }
}
