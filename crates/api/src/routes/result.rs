//! `GET /api/jobs/{id}/result`: downloads a finished job's result file.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use burrow_shared::jobs;

use super::jobs::{find_visible, parse_id};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The result file as an attachment: 409 while the job has not ended, 404 if it has none.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/result",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The result file as an attachment, with its own content type (an export or an error report is an .xlsx)",
            content_type = "application/octet-stream", body = inline(super::schemas::Binary),
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"…\"`"))),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such job, or it has no result file", body = ApiError),
        (status = 409, description = "The job has not ended yet", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn job_result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let job = find_visible(&state, &caller, id).await?;
    if !job.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "job {id} is {}; its result is not ready",
            job.status
        )));
    }
    let (file_name, content_type, bytes) = jobs::load_result(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {id} has no result file")))?;
    // The name is ours (e.g. export-<uuid>.xlsx), but quote it defensively anyway.
    let safe_name: String = file_name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"')
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe_name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
