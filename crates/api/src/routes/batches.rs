//! `POST /api/batches` (member jobs with optional callbacks) and `GET /api/batches/{id}`; its
//! event stream is in `batch_events.rs`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_shared::engine::batches::{find_batch, BatchSummary, NewBatch, MAX_MEMBERS};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::create::{check_parents, validate, JobSpec};
use super::job_request::owner_tag;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest batch description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// A batch: `{"jobs": [JobSpec, …], "on_complete": JobSpec, "on_success": JobSpec}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 10,000 member jobs (no `idempotency_key`).
    #[schema(min_items = 1, max_items = 10000)]
    jobs: Vec<JobSpec>,
    /// Runs once every member succeeded; cancelled as soon as one fails, dies or is cancelled.
    on_success: Option<JobSpec>,
    /// Runs once every member has ended, whatever the outcome.
    on_complete: Option<JobSpec>,
    /// Shown with the batch (at most 500 characters).
    #[schema(max_length = 500)]
    description: Option<String>,
    /// The batch's owner tag (the rules of a job's `user_id`).
    #[schema(max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    user_id: Option<String>,
}

/// What `POST /api/batches` answers: the batch and the ids of its jobs, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchCreated {
    /// The batch, as `GET /api/batches/{id}` shows it.
    pub batch: BatchSummary,
    /// The member jobs' ids, in request order.
    pub job_ids: Vec<Uuid>,
}

/// `POST /api/batches`: the members and callbacks, all stored or none (one transaction); 422
/// names the first invalid job (`jobs[3]: …`, `on_success: …`).
#[utoipa::path(
    post,
    path = "/api/batches",
    tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 202, description = "The batch is accepted", body = BatchCreated,
            headers(("Location" = String, description = "`/api/batches/{id}`"))),
        (status = 413, description = "The body is larger than 2 MiB", body = ApiError),
        (status = 422, description = "Malformed body, not 1 to 10,000 jobs, an invalid job or callback, a member with an `idempotency_key`, or an unknown parent in `depends_on`; nothing is stored", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn create_workflow_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) =
        body.map_err(|e| ApiError::from_json_rejection(e, super::JSON_BODY_LIMIT))?;
    if request.jobs.is_empty() || request.jobs.len() > MAX_MEMBERS {
        return Err(ApiError::Unprocessable(format!(
            "a batch holds 1 to {MAX_MEMBERS} jobs"
        )));
    }
    let description = request.description.map(|d| d.trim().to_owned());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains('\0'))
    {
        return Err(ApiError::Unprocessable(format!(
            "`description` is at most {MAX_DESCRIPTION_CHARS} characters, without U+0000"
        )));
    }
    let user_id =
        caller.owner_tag(owner_tag(request.user_id.as_deref()).map_err(ApiError::Unprocessable)?);
    let mut members = Vec::with_capacity(request.jobs.len());
    for (index, spec) in request.jobs.into_iter().enumerate() {
        members.push(
            job(&state, &caller, spec)
                .await
                .map_err(|e| named(&format!("jobs[{index}]"), e))?,
        );
    }
    let mut batch = NewBatch {
        user_id,
        description: description.filter(|d| !d.is_empty()),
        ..NewBatch::of(members)
    };
    if let Some(spec) = request.on_success {
        batch.on_success = Some(
            job(&state, &caller, spec)
                .await
                .map_err(|e| named("on_success", e))?,
        );
    }
    if let Some(spec) = request.on_complete {
        batch.on_complete = Some(
            job(&state, &caller, spec)
                .await
                .map_err(|e| named("on_complete", e))?,
        );
    }
    let stored = crate::enqueue::enqueue_batch(&state, batch).await?;
    let summary = find_batch(&state.db, stored.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the batch just stored is gone")))?;
    let location = format!("/api/batches/{}", stored.id);
    let created = BatchCreated {
        batch: summary,
        job_ids: stored.members.iter().map(|m| m.job.id).collect(),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// One member or callback: checked as a single job is, without an idempotency key.
async fn job(
    state: &AppState,
    caller: &Caller,
    spec: JobSpec,
) -> Result<burrow_shared::NewJob, ApiError> {
    if spec.idempotency_key().is_some() {
        return Err(ApiError::Unprocessable(
            "batch jobs take no `idempotency_key`".to_owned(),
        ));
    }
    let mut job = validate(state, spec)?;
    job.user_id = caller.owner_tag(job.user_id);
    check_parents(state, caller, &job.depends_on).await?;
    Ok(job)
}

fn named(what: &str, error: ApiError) -> ApiError {
    match error {
        ApiError::Unprocessable(message) => ApiError::Unprocessable(format!("{what}: {message}")),
        other => other,
    }
}

/// `GET /api/batches/{id}`: the batch's aggregate status, its members per status and its
/// callbacks. 404 for an unknown batch or another owner's.
#[utoipa::path(
    get,
    path = "/api/batches/{id}",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch", body = BatchSummary),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such batch", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn get_workflow_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BatchSummary>, ApiError> {
    let id = super::jobs::parse_id(&id)?;
    Ok(Json(find_visible_batch(&state, &caller, id).await?))
}

/// The batch if `caller` may see it (an admin, or its owner); 404 otherwise, as for an
/// unknown batch.
pub(super) async fn find_visible_batch(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<BatchSummary, ApiError> {
    let not_found = || ApiError::NotFound(format!("no batch {id}"));
    let batch = find_batch(&state.db, id).await?.ok_or_else(not_found)?;
    if !caller.can_see_owned_by(batch.user_id.as_deref()) {
        return Err(not_found());
    }
    Ok(batch)
}
