//! `POST /api/jobs` with a multipart body: an uploaded spreadsheet becomes an `import_xlsx`
//! job (the form: see [`super::upload_form`]).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::response::Response;
use burrow_shared::enqueue::NewJob;
use burrow_shared::kinds::ImportPayload;
use burrow_shared::KIND_IMPORT_XLSX;

use super::job_request::{accepted, idempotency_key};
use super::upload_form::UploadForm;
use crate::auth::Caller;
use crate::enqueue::enqueue;
use crate::error::ApiError;
use crate::state::AppState;

/// Accepts the upload and answers `202 Accepted`, `Location: /api/jobs/{id}` and the job (an
/// `Idempotency-Key` seen before answers with the earlier job instead).
///
/// 400 for a bad form, 413 over `UPLOAD_MAX_BYTES` (counted while streaming, before anything
/// is stored), 415 if the body is not multipart or the file is no spreadsheet burrow reads (by
/// content), 422 for an unknown profile or a package beyond the configured import limits.
pub async fn create_upload_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let multipart = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("expected a multipart/form-data body: {e}"))
    })?;
    let form = UploadForm::read(&state, multipart).await?;
    let payload = ImportPayload {
        profile: form.profile.name.clone(),
        sheet: form.sheet,
        header_row: form.header_row,
        on_error: form.on_error,
    };
    let job = NewJob {
        user_id: caller.owner_tag(form.user_id),
        idempotency_key: idempotency_key(&headers)?,
        payload: serde_json::to_value(payload).unwrap_or_default(),
        queue: state.registry.queue_of(KIND_IMPORT_XLSX).to_owned(),
        ..NewJob::new(KIND_IMPORT_XLSX)
    }
    .file(form.file_name, form.bytes);
    let enqueued = enqueue(&state, job).await?;
    Ok(accepted(enqueued))
}
