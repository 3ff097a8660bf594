//! `POST /api/imports/preview`: what an import of this file would read — format, sheet, header
//! row, which header feeds which column, the first rows converted and the first errors — with
//! nothing stored and no job made.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::Json;
use burrow_shared::import::{preview, ImportOptions, ImportRequest, Preview};

use super::upload_form::UploadForm;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Previews an upload.
#[utoipa::path(
    post,
    path = "/api/imports/preview",
    tag = "jobs",
    request_body(content = super::schemas::UploadForm, content_type = "multipart/form-data",
        description = "The same form as an upload to `POST /api/jobs` (`on_error` and `user_id` are accepted and ignored)"),
    responses(
        (status = 200, description = "What an import would read: the first 20 rows converted, the errors among the first 1,000", body = Preview),
        (status = 400, description = "Malformed multipart body, no `file` field or an unknown one, a bad `sheet` or `header_row`", body = ApiError),
        (status = 413, description = "The file is larger than `UPLOAD_MAX_BYTES`", body = ApiError),
        (status = 415, description = "Not multipart, or the file is no spreadsheet burrow reads (by content)", body = ApiError),
        (status = 422, description = "Unknown profile, no such sheet, no header row with the profile's required columns, no data rows, or a limit", body = ApiError),
    )
)]
pub async fn preview_import(
    State(state): State<AppState>,
    _caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Preview>, ApiError> {
    let multipart = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("expected a multipart/form-data body: {e}"))
    })?;
    let form = UploadForm::read(&state, multipart).await?;
    let options = ImportOptions {
        limits: state.import_limits.clone(),
        ..ImportOptions::default()
    };
    // Parsing is CPU-bound: off the async threads, as the worker does.
    let previewed = tokio::task::spawn_blocking(move || {
        let request = ImportRequest {
            profile: &form.profile,
            sheet: form.sheet.as_ref(),
            header_row: form.header_row,
        };
        preview(form.bytes, request, &options)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the preview task failed: {e}")))?;
    previewed
        .map(Json)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))
}
