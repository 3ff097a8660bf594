//! `POST /api/jobs/retry`: retries many jobs at once (a failure group on the dashboard), with
//! the same rule as `POST /api/jobs/{id}/retry` for each.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use burrow_shared::JobStatus;
use serde::{Deserialize, Serialize};

use super::control::retry;
use super::jobs::parse_id;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Most ids in one request.
pub const MAX_IDS: usize = 1000;

/// `{"ids": ["…", …]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryMany {
    /// 1 to 1000 job ids; each is answered on its own, so one that is not a UUID is a
    /// `bad_request` result, not a refused request.
    #[schema(min_items = 1, max_items = 1000)]
    ids: Vec<String>,
}

/// What happened to one id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryResult {
    /// The id as sent.
    pub id: String,
    /// Whether the job is queued again.
    pub retried: bool,
    /// The job's status now, when it was retried (`queued`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Why not: `bad_request` (not a UUID), `not_found`, `conflict` (not failed, dead or
    /// cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The reason in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer: one result per id, in request order, and how many were retried.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryManyResponse {
    /// Jobs queued again.
    pub retried: usize,
    /// One entry per id sent.
    pub results: Vec<RetryResult>,
}

/// Retries each `failed`, `dead` or `cancelled` job among `ids` (1 to [`MAX_IDS`]); each one
/// commits on its own, so one that cannot be retried does not hold back the others. Always 200
/// with per-id results; 422 for a malformed body; a database error stops the request with 500
/// (jobs retried before it stay retried, and retrying them again is a harmless `conflict`).
#[utoipa::path(
    post,
    path = "/api/jobs/retry",
    tag = "jobs",
    request_body = RetryMany,
    responses(
        (status = 200, description = "One result per id, in request order", body = RetryManyResponse),
        (status = 403, description = "The key is not an admin key", body = ApiError),
        (status = 413, description = "The body is larger than 2 MiB", body = ApiError),
        (status = 422, description = "Malformed body, or not 1 to 1000 ids", body = ApiError),
        (status = 500, description = "Database error (jobs retried before it stay retried)", body = ApiError),
    )
)]
pub async fn retry_jobs(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<RetryMany>, JsonRejection>,
) -> Result<Json<RetryManyResponse>, ApiError> {
    caller.require_admin()?;
    let Json(body) = body.map_err(|e| ApiError::from_json_rejection(e, super::JSON_BODY_LIMIT))?;
    if body.ids.is_empty() || body.ids.len() > MAX_IDS {
        return Err(ApiError::Unprocessable(format!(
            "`ids` holds 1 to {MAX_IDS} job ids"
        )));
    }
    let mut results = Vec::with_capacity(body.ids.len());
    for id in body.ids {
        let outcome = match parse_id(&id) {
            Ok(uuid) => retry(&state, uuid).await,
            Err(e) => Err(e),
        };
        results.push(match outcome {
            Ok(job) => RetryResult {
                id,
                retried: true,
                status: Some(job.status),
                error: None,
                message: None,
            },
            Err(e) => {
                let code = match &e {
                    ApiError::BadRequest(_) => "bad_request",
                    ApiError::NotFound(_) => "not_found",
                    ApiError::Conflict(_) => "conflict",
                    _ => return Err(e),
                };
                RetryResult {
                    id,
                    retried: false,
                    status: None,
                    error: Some(code),
                    message: Some(e.to_string()),
                }
            }
        });
    }
    let retried = results.iter().filter(|r| r.retried).count();
    tracing::info!(retried, asked = results.len(), "bulk retry");
    Ok(Json(RetryManyResponse { retried, results }))
}
