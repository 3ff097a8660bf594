//! Accepting a job: store it, publish it, and only then answer.

use burrow_shared::jobs::{self, JobRow, NewJob};
use burrow_shared::{JobMessage, KIND_IMPORT_XLSX};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// An uploaded workbook to import.
#[derive(Debug)]
pub struct Upload {
    /// Display name of the file.
    pub file_name: String,
    /// The client's owner tag.
    pub user_id: Option<String>,
    /// The file's bytes (already checked to be an .xlsx).
    pub bytes: Vec<u8>,
}

/// Stores the job and its file in one transaction, then publishes its message with a publisher
/// confirm. Returns the `queued` job.
///
/// If the publish is not confirmed the job is deleted again and the caller gets
/// [`ApiError::QueueUnavailable`]: the request fails as a whole and nothing is left behind.
/// (A crash between commit and publish can still leave a `queued` job without a message; the
/// transactional outbox is the planned fix.)
///
/// # Errors
/// [`ApiError::QueueUnavailable`] or [`ApiError::Internal`] for database errors.
pub async fn enqueue_import(state: &AppState, upload: Upload) -> Result<JobRow, ApiError> {
    let job = NewJob {
        id: Uuid::now_v7(),
        kind: KIND_IMPORT_XLSX.to_owned(),
        user_id: upload.user_id,
        file_name: Some(upload.file_name),
        correlation_id: Uuid::new_v4(),
    };
    let mut tx = state.db.begin().await?;
    let row = jobs::insert_job_with_file(&mut tx, &job, &upload.bytes).await?;
    tx.commit().await?;

    let message = JobMessage::new(job.id, &job.kind, job.correlation_id);
    if let Err(e) = state.publisher.publish(&message).await {
        tracing::error!(job.id = %job.id, error = %e, "publish not confirmed; removing the job");
        if let Err(e) = jobs::delete_job(&state.db, job.id).await {
            tracing::error!(job.id = %job.id, error = %e, "could not remove the unpublished job");
        }
        return Err(ApiError::QueueUnavailable);
    }
    tracing::info!(job.id = %job.id, bytes = upload.bytes.len(), "job accepted");
    Ok(row)
}
