//! `POST /api/jobs` (a JSON job, or a multipart upload) and `POST /api/jobs/batch`.

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_shared::jobs::NewJob;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::upload::create_upload_job;
use crate::auth::Caller;
use crate::enqueue::{enqueue, enqueue_all, Enqueued, JobRequest};
use crate::error::ApiError;
use crate::state::AppState;

/// Most jobs in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Longest accepted `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Highest priority.
const MAX_PRIORITY: i16 = 9;
/// Header set on a response that returns an earlier job for a repeated `Idempotency-Key`.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A job as JSON: `{"kind": "sleep", "payload": {"ms": 50}, "priority": 5, "run_at": "…"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Which handler runs it, e.g. `sleep`; kinds made by an upload (`import_xlsx`) are refused.
    kind: String,
    /// The kind's parameters, checked by its handler (default `{}`).
    #[serde(default = "empty_object")]
    payload: Value,
    /// 0 (normal, the default) to 9 (most urgent).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9)]
    priority: i16,
    /// Not before this time (RFC 3339).
    run_at: Option<DateTime<Utc>>,
    /// The owner tag, at most 128 printable characters.
    user_id: Option<String>,
    /// Only in batches; a single job takes the `Idempotency-Key` header instead.
    idempotency_key: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

/// `POST /api/jobs`: a JSON job, or (multipart/form-data) an uploaded file to import.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 visible ASCII characters; a key seen before (per `user_id`) answers with the earlier job"),
    ),
    request_body(
        description = "A job as JSON, or (multipart/form-data) an .xlsx file to import",
        content(
            (JobSpec = "application/json"),
            (super::openapi::UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted, or the earlier job for a repeated `Idempotency-Key`",
            body = burrow_shared::jobs::JobRow,
            headers(
                ("Location" = String, description = "`/api/jobs/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when the job is an earlier one"),
            )),
        (status = 400, description = "Malformed `Idempotency-Key` or multipart body, no `file` field, bad `user_id` or `on_error`", body = ApiError),
        (status = 413, description = "The upload is larger than `UPLOAD_MAX_BYTES`", body = ApiError),
        (status = 415, description = "Neither JSON nor multipart, or the file is not an .xlsx by content", body = ApiError),
        (status = 422, description = "Unknown kind, invalid payload, priority or user_id, or a malformed workbook package", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let headers = request.headers().clone();
        let multipart = axum::extract::Multipart::from_request(request, &state).await;
        return create_upload_job(State(state), caller, headers, multipart).await;
    }
    if !content_type.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send application/json (a job) or multipart/form-data (a file to import)".to_owned(),
        ));
    }
    let headers = request.headers().clone();
    let Json(spec) = Json::<JobSpec>::from_request(request, &state)
        .await
        .map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    if spec.idempotency_key.is_some() {
        return Err(ApiError::Unprocessable(
            "use the Idempotency-Key header for a single job".to_owned(),
        ));
    }
    let mut job = validate(&state, spec)?;
    job.user_id = caller.owner_tag(job.user_id);
    job.idempotency_key = idempotency_key(&headers)?;
    let enqueued = enqueue(&state, JobRequest { job, file: None }).await?;
    Ok(accepted(enqueued))
}

/// A batch: `{"jobs": [JobSpec, …]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    jobs: Vec<JobSpec>,
}

/// `POST /api/jobs/batch`: up to [`MAX_BATCH`] JSON jobs, all stored or none (one
/// transaction); 422 names the first invalid job by index. Answers 202 `{"jobs": [...]}`.
#[utoipa::path(
    post,
    path = "/api/jobs/batch",
    tag = "jobs",
    request_body = BatchSpec,
    responses(
        (status = 202, description = "All jobs accepted, in request order", body = super::openapi::JobList),
        (status = 422, description = "Malformed body, not 1 to 1000 jobs, or an invalid job (`jobs[3]: …`); nothing is stored", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BatchSpec>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(batch) = body.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::Unprocessable(format!(
            "a batch holds 1 to {MAX_BATCH} jobs"
        )));
    }
    let mut requests = Vec::with_capacity(batch.jobs.len());
    for (index, spec) in batch.jobs.into_iter().enumerate() {
        let key = spec.idempotency_key.clone();
        check_idempotency_key(key.as_deref()).map_err(|e| at(index, e))?;
        let mut job = validate(&state, spec).map_err(|e| at(index, e))?;
        job.user_id = caller.owner_tag(job.user_id);
        requests.push(JobRequest {
            job: NewJob {
                idempotency_key: key,
                ..job
            },
            file: None,
        });
    }
    let jobs: Vec<_> = enqueue_all(&state, requests)
        .await?
        .into_iter()
        .map(|e| e.job)
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobs": jobs }))))
}

/// Checks kind, payload, priority and owner tag; the job to store.
fn validate(state: &AppState, spec: JobSpec) -> Result<NewJob, ApiError> {
    let handler = state.registry.get(&spec.kind).ok_or_else(|| {
        let known: Vec<&str> = state.registry.kinds().collect();
        ApiError::Unprocessable(format!(
            "unknown job kind {:?} (known: {})",
            spec.kind,
            known.join(", ")
        ))
    })?;
    if handler.needs_upload() {
        return Err(ApiError::Unprocessable(format!(
            "{} jobs are created by uploading a file (multipart/form-data, field `file`)",
            spec.kind
        )));
    }
    handler
        .validate(&spec.payload)
        .map_err(ApiError::Unprocessable)?;
    if !(0..=MAX_PRIORITY).contains(&spec.priority) {
        return Err(ApiError::Unprocessable(format!(
            "`priority` must be 0 to {MAX_PRIORITY}"
        )));
    }
    let user_id = spec
        .user_id
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    if user_id
        .as_ref()
        .is_some_and(|u| u.chars().count() > 128 || u.chars().any(char::is_control))
    {
        return Err(ApiError::Unprocessable(
            "`user_id` must be at most 128 printable characters".to_owned(),
        ));
    }
    Ok(NewJob {
        payload: spec.payload,
        priority: spec.priority,
        run_at: spec.run_at,
        user_id,
        ..NewJob::new(&spec.kind)
    })
}

fn at(index: usize, error: ApiError) -> ApiError {
    match error {
        ApiError::Unprocessable(message) => {
            ApiError::Unprocessable(format!("jobs[{index}]: {message}"))
        }
        other => other,
    }
}

/// The `Idempotency-Key` header, if present and well-formed.
///
/// # Errors
/// 400 when it is empty, longer than 255 bytes or not visible ASCII.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| bad_key())?.to_owned();
    check_idempotency_key(Some(&key)).map_err(|_| bad_key())?;
    Ok(Some(key))
}

fn check_idempotency_key(key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(k)
            if k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY
                || !k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(ApiError::Unprocessable(format!(
                "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )))
        }
        _ => Ok(()),
    }
}

fn bad_key() -> ApiError {
    ApiError::BadRequest(format!(
        "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
    ))
}

/// `202 Accepted`, `Location: /api/jobs/{id}` and the job; a replayed `Idempotency-Key` also
/// gets `Idempotent-Replayed: true`.
pub fn accepted(enqueued: Enqueued) -> Response {
    let location = format!("/api/jobs/{}", enqueued.job.id);
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(enqueued.job),
    )
        .into_response();
    if !enqueued.created {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
