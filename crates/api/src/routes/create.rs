//! `POST /api/jobs` (a JSON job, or a multipart upload) and `POST /api/jobs/batch`.

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use burrow_shared::enqueue::NewJob;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::job_request::{accepted, check_idempotency_key, idempotency_key, owner_tag};
use super::upload::create_upload_job;
use crate::auth::Caller;
use crate::enqueue::{enqueue, enqueue_all};
use crate::error::ApiError;
use crate::state::AppState;

/// Most jobs in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Highest priority.
const MAX_PRIORITY: i16 = 9;
/// A job as JSON: `{"kind": "sleep", "payload": {"ms": 50}, "priority": 5, "run_at": "…"}`.
//
// Its schema has what every kind shares: the served document (`openapi::document`) makes it one
// variant per kind of the registry, each with its kind's payload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Which handler runs it, e.g. `sleep`; kinds made by an upload (`import_xlsx`) are refused.
    #[schema(min_length = 1)]
    kind: String,
    /// The kind's parameters: a JSON object, checked by its handler (default `{}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    payload: Value,
    /// 0 (normal, the default) to 9 (most urgent).
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 0, maximum = 9)]
    priority: i16,
    /// Not before this time (RFC 3339).
    run_at: Option<DateTime<Utc>>,
    /// The owner tag: at most 128 characters, none of them a control character; trimmed, and
    /// blank means none.
    #[schema(max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    user_id: Option<String>,
    /// Only in batches (1 to 255 visible ASCII characters); a single job takes the
    /// `Idempotency-Key` header instead.
    #[schema(min_length = 1, max_length = 255, pattern = "^[!-~]+$")]
    idempotency_key: Option<String>,
    /// Jobs that must end before this one runs (at most 100, each a job the caller can see):
    /// it waits `awaiting` until the last one ends, and is cancelled if one ends failed, dead or
    /// cancelled (unless `run_on_failure`).
    #[serde(default)]
    #[schema(max_items = 100)]
    depends_on: Vec<uuid::Uuid>,
    /// With `depends_on`: run once every parent has ended, whatever their outcome.
    #[serde(default)]
    run_on_failure: bool,
}

impl JobSpec {
    /// The idempotency key a batch job carries.
    pub(super) fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

fn empty_object() -> Value {
    json!({})
}

/// An `i16` written as `9` or `9.0`: JSON Schema's `integer` (what the document says) is any
/// number without a fractional part, and serde's integers take only the first form.
fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i16, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    as_integer(&number)
        .and_then(|n| i16::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("{number} is not an integer of -32768 to 32767")))
}

/// `number` as an integer, if it has no fractional part and fits an `i64`.
fn as_integer(number: &serde_json::Number) -> Option<i64> {
    // Beyond 2^53 a float is not exact; such numbers are no priority or duration anyway.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    })
}

/// Whether a string or a field name anywhere in `value` holds U+0000, which Postgres's `jsonb`
/// refuses.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(name, field)| name.contains('\0') || holds_nul(field)),
        _ => false,
    }
}

/// Whether every number of `value` reads back after Postgres stores it. `jsonb` keeps a number
/// as an exact decimal and prints it without an exponent (`1.7976931348623157e308` comes back
/// as 309 digits), and serde_json refuses some of those as out of range: such a job could be
/// stored but never read again.
fn numbers_survive_jsonb(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.as_f64().is_none_or(|f| {
            let plain = plain_decimal(f);
            serde_json::from_str::<Value>(&plain).is_ok()
        }),
        Value::Array(items) => items.iter().all(numbers_survive_jsonb),
        Value::Object(fields) => fields.values().all(numbers_survive_jsonb),
        _ => true,
    }
}

/// `f` written as Postgres's `numeric` prints it: every digit, no exponent.
fn plain_decimal(f: f64) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // The point sits after the first digit, then moves `exponent` places.
    let point = 1 + exponent;
    if point <= 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        )
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    }
}

/// Rewrites every number of `value` that has no fractional part (`50.0`) as an integer (`50`),
/// so a kind's handler, whose integer fields serde reads, takes what the document's `integer`
/// allows. The stored payload is the rewritten one: the same numbers.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            if let Some(integer) = as_integer(number) {
                *value = Value::from(integer);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// `POST /api/jobs`: a JSON job, or (multipart/form-data) an uploaded file to import.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
            description = "1 to 255 visible ASCII characters; a key seen before (per `user_id`) answers with the earlier job"),
    ),
    request_body(
        description = "A job as JSON, or (multipart/form-data) an .xlsx file to import",
        content(
            (JobSpec = "application/json"),
            (super::schemas::UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted, or the earlier job for a repeated `Idempotency-Key`",
            body = burrow_shared::jobs::JobRow,
            headers(
                ("Location" = String, description = "`/api/jobs/{id}`"),
                ("Idempotent-Replayed" = String, description = "`true` when the job is an earlier one"),
            )),
        (status = 400, description = "Malformed `Idempotency-Key` or multipart body, no `file` field or an unknown one, bad `user_id` or `on_error`", body = ApiError),
        (status = 413, description = "The upload (or the JSON body) is larger than `UPLOAD_MAX_BYTES`", body = ApiError),
        (status = 415, description = "Neither JSON nor multipart, or the file is not an .xlsx by content", body = ApiError),
        (status = 422, description = "Unknown kind, invalid payload, priority or user_id, an unknown parent in `depends_on`, or a malformed workbook package", body = ApiError),
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
        .map_err(|e| ApiError::from_json_rejection(e, state.upload_max_bytes))?;
    if spec.idempotency_key.is_some() {
        return Err(ApiError::Unprocessable(
            "use the Idempotency-Key header for a single job".to_owned(),
        ));
    }
    let mut job = validate(&state, spec)?;
    job.user_id = caller.owner_tag(job.user_id);
    job.idempotency_key = idempotency_key(&headers)?;
    check_parents(&state, &caller, &job.depends_on).await?;
    let enqueued = enqueue(&state, job).await?;
    Ok(accepted(enqueued))
}

/// A batch: `{"jobs": [JobSpec, …]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// 1 to 1000 jobs, each with its own optional `idempotency_key`.
    #[schema(min_items = 1, max_items = 1000)]
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
        (status = 202, description = "All jobs accepted, in request order", body = super::schemas::JobList),
        (status = 413, description = "The body is larger than 2 MiB", body = ApiError),
        (status = 422, description = "Malformed body, not 1 to 1000 jobs, or an invalid job (`jobs[3]: …`, an unknown parent in `depends_on`); nothing is stored", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BatchSpec>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(batch) = body.map_err(|e| ApiError::from_json_rejection(e, super::JSON_BODY_LIMIT))?;
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
        check_parents(&state, &caller, &job.depends_on)
            .await
            .map_err(|e| at(index, e))?;
        requests.push(NewJob {
            idempotency_key: key,
            ..job
        });
    }
    let jobs: Vec<_> = enqueue_all(&state, requests)
        .await?
        .into_iter()
        .map(|e| e.job)
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobs": jobs }))))
}

/// Most parents of one job created through the api.
const MAX_PARENTS: usize = 100;

/// Checks kind, payload, priority, owner tag and the shape of `depends_on`; the job to store.
pub(super) fn validate(state: &AppState, mut spec: JobSpec) -> Result<NewJob, ApiError> {
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
    if !spec.payload.is_object() {
        // serde would read a struct from an array too (`[50]` as `{"ms": 50}`): refuse it here.
        return Err(ApiError::Unprocessable(
            "`payload` must be a JSON object".to_owned(),
        ));
    }
    if holds_nul(&spec.payload) {
        return Err(ApiError::Unprocessable(
            "`payload` may hold no U+0000 character (Postgres cannot store it)".to_owned(),
        ));
    }
    if !numbers_survive_jsonb(&spec.payload) {
        return Err(ApiError::Unprocessable(
            "`payload` holds a number too close to the limits of a double to be stored and read \
             back (e.g. 1.7976931348623157e308)"
                .to_owned(),
        ));
    }
    integral_numbers_as_integers(&mut spec.payload);
    handler
        .validate(&spec.payload)
        .map_err(ApiError::Unprocessable)?;
    if !(0..=MAX_PRIORITY).contains(&spec.priority) {
        return Err(ApiError::Unprocessable(format!(
            "`priority` must be 0 to {MAX_PRIORITY}"
        )));
    }
    let user_id = owner_tag(spec.user_id.as_deref()).map_err(ApiError::Unprocessable)?;
    if spec.depends_on.len() > MAX_PARENTS {
        return Err(ApiError::Unprocessable(format!(
            "`depends_on` names at most {MAX_PARENTS} jobs (a batch waits for more)"
        )));
    }
    if spec.run_on_failure && spec.depends_on.is_empty() {
        return Err(ApiError::Unprocessable(
            "`run_on_failure` needs `depends_on`".to_owned(),
        ));
    }
    Ok(NewJob {
        payload: spec.payload,
        priority: spec.priority,
        run_at: spec.run_at,
        user_id,
        depends_on: spec.depends_on,
        run_on_failure: spec.run_on_failure,
        queue: handler.queue().to_owned(),
        ..NewJob::new(&spec.kind)
    })
}

/// 422 unless every parent is a job the caller can see (an unknown and a hidden one read
/// alike, so ids of other owners are not revealed).
pub(super) async fn check_parents(
    state: &AppState,
    caller: &Caller,
    parents: &[uuid::Uuid],
) -> Result<(), ApiError> {
    if parents.is_empty() {
        return Ok(());
    }
    let owners = burrow_shared::jobs::owners_of(&state.db, parents).await?;
    // Someone else's job looks like no job, as on `GET /api/jobs/{id}`.
    let unseen = parents.iter().find(|parent| {
        !owners
            .get(parent)
            .is_some_and(|owner| caller.can_see_owned_by(owner.as_deref()))
    });
    match unseen {
        Some(parent) => Err(ApiError::Unprocessable(format!(
            "`depends_on`: no job {parent}"
        ))),
        None => Ok(()),
    }
}

fn at(index: usize, error: ApiError) -> ApiError {
    match error {
        ApiError::Unprocessable(message) => {
            ApiError::Unprocessable(format!("jobs[{index}]: {message}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod jsonb_numbers {
    use super::*;

    #[test]
    fn numbers_are_written_as_postgres_prints_them() {
        assert_eq!(plain_decimal(1.5e3), "1500");
        assert_eq!(plain_decimal(-12.25), "-12.25");
        assert_eq!(plain_decimal(1e-3), "0.001");
        assert_eq!(plain_decimal(0.0), "0");
    }

    #[test]
    fn a_number_jsonb_would_print_unreadably_is_refused() {
        let max = serde_json::json!({"a": f64::MAX});
        assert!(!numbers_survive_jsonb(&max));
        let fine = serde_json::json!({"a": [1e308, 5e-324, -2.5, 7]});
        assert!(numbers_survive_jsonb(&fine));
    }
}
