//! `GET /api/jobs/{id}/result`: downloads a finished job's result file.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use burrow_shared::jobs;

use super::jobs::{find, parse_id};
use crate::error::ApiError;
use crate::state::AppState;

/// The result file as an attachment: 409 while the job has not ended, 404 if it has none.
pub async fn job_result(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let job = find(&state, id).await?;
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
