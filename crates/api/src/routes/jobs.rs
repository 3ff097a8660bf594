//! `GET /api/jobs/{id}` and `GET /api/jobs?status=&user_id=&batch_id=&limit=&cursor=`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use burrow_shared::engine::dependencies::{self, Relative};
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
    /// The jobs it waits (or waited) for (`depends_on`), with their status and output.
    pub parents: Vec<Relative>,
    /// The jobs that wait (or waited) for it: the first [`SHOWN_CHILDREN`].
    pub children: Vec<Relative>,
}

/// Most children a job's page lists (a batch's callbacks have one parent per member, but a
/// fan-out job may have thousands of children).
pub const SHOWN_CHILDREN: i64 = 100;

/// Parses a job id from the path: 400 when it is not a UUID in its hyphenated form (the
/// document's `format: uuid`; the simple, braced and URN forms are refused too).
pub fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    let not_an_id = || ApiError::BadRequest(format!("{id:?} is not a job id (a UUID)"));
    if id.len() != HYPHENATED_UUID_LEN {
        return Err(not_an_id());
    }
    Uuid::parse_str(id).map_err(|_| not_an_id())
}

/// Characters of a hyphenated UUID (`8-4-4-4-12` hex digits).
const HYPHENATED_UUID_LEN: usize = 36;

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
    let parents = dependencies::parents(&state.db, id).await?;
    let children = dependencies::children(&state.db, id, SHOWN_CHILDREN).await?;
    Ok(Json(JobDetail {
        job,
        events,
        parents,
        children,
    }))
}

/// Query of the job list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only jobs with this owner tag (the rules of an upload's `user_id`: at most 128
    /// characters, no control character; trimmed, blank means any).
    #[param(max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    user_id: Option<String>,
    /// Only the members of this batch (`POST /api/batches`); a hyphenated UUID.
    #[param(value_type = Option<Uuid>)]
    batch_id: Option<String>,
    /// Jobs per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page, as it was given.
    #[param(pattern = "^[0-9]{1,16}_[0-9a-f]{32}$")]
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
        (status = 400, description = "Unknown status, `batch_id` not a UUID, `limit` out of range, invalid cursor, or a `user_id` with a control character or over 128 characters", body = ApiError),
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
    let batch_id = query
        .batch_id
        .as_deref()
        .map(|id| {
            parse_id(id)
                .map_err(|_| ApiError::BadRequest(format!("`batch_id` {id:?} is not a UUID")))
        })
        .transpose()?;
    // A NUL would reach Postgres, which refuses it in text (a 500): checked like an upload's.
    let wanted_owner = super::job_request::owner_tag(query.user_id.as_deref())
        .map_err(|e| ApiError::BadRequest(format!("`user_id`: {e}")))?;
    let filter = JobFilter {
        status,
        // A non-admin lists its own jobs only, whatever `user_id` it asks for.
        user_id: if caller.admin {
            wanted_owner
        } else {
            caller.user_id.clone()
        },
        batch_id,
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

/// Reads a cursor [`encode_cursor`] made, and only such: 1 to 16 digits (until the year 2286),
/// `_`, 32 lower-case hex digits, the document's `pattern`.
fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::BadRequest(format!("invalid cursor {cursor:?}"));
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let micros_ok = (1..=16).contains(&micros.len()) && micros.bytes().all(|b| b.is_ascii_digit());
    let id_ok = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !micros_ok || !id_ok {
        return Err(invalid());
    }
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
        assert!(decode_cursor("").is_err());
        assert!(decode_cursor("12_notauuid").is_err());
        // Only the form encode_cursor makes: no sign, no other UUID form.
        let simple = id.simple().to_string();
        assert!(decode_cursor(&format!("+12_{simple}")).is_err());
        assert!(decode_cursor(&format!("12_{}", simple.to_uppercase())).is_err());
        assert!(decode_cursor(&format!("12_{}", id.hyphenated())).is_err());
        assert!(decode_cursor(&format!("12345678901234567_{simple}")).is_err());
    }

    #[test]
    fn job_ids_are_hyphenated_uuids_only() {
        let id = Uuid::now_v7();
        assert_eq!(parse_id(&id.hyphenated().to_string()).ok(), Some(id));
        assert!(parse_id(&id.simple().to_string()).is_err());
        assert!(parse_id(&id.braced().to_string()).is_err());
        assert!(parse_id(&id.urn().to_string()).is_err());
    }
}
