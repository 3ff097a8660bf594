//! Accepting a job: store it, its file and its message in one transaction, then answer.
//!
//! This is the write half of the transactional outbox
//! (<https://microservices.io/patterns/data/transactional-outbox.html>): the job row, the file
//! and the outbox row commit together or not at all, so a job is never stored without the
//! message that runs it, whatever happens to the process or the broker afterwards. Publishing
//! is the relay's job ([`crate::relay`]); a request does not wait for RabbitMQ and succeeds
//! while it is down.

use burrow_shared::jobs::{self, JobRow, NewJob};
use burrow_shared::{outbox, JobMessage, KIND_IMPORT_XLSX};
use uuid::Uuid;

use crate::error::ApiError;
use crate::failpoint::Failpoint;
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

/// Stores the job, its file and its first-attempt message (in the outbox) in one transaction,
/// commits, wakes the relay and returns the `queued` job. The message is published later, with
/// a publisher confirm, by the relay of this api or of another replica.
///
/// With the test-only failpoint [`Failpoint::ApiCrashAfterCommit`] armed, the process aborts
/// right after the commit, before the relay is woken.
///
/// # Errors
/// [`ApiError::Internal`] for database errors; nothing is stored then.
pub async fn enqueue_import(state: &AppState, upload: Upload) -> Result<JobRow, ApiError> {
    let job = NewJob {
        id: Uuid::now_v7(),
        kind: KIND_IMPORT_XLSX.to_owned(),
        user_id: upload.user_id,
        file_name: Some(upload.file_name),
        correlation_id: Uuid::new_v4(),
    };
    let message = JobMessage::new(job.id, &job.kind, job.correlation_id);
    let mut tx = state.db.begin().await?;
    let row = jobs::insert_job_with_file(&mut tx, &job, &upload.bytes).await?;
    outbox::add(&mut tx, &message).await?;
    tx.commit().await?;

    if state.publisher.failpoint() == Some(Failpoint::ApiCrashAfterCommit) {
        tracing::error!(job.id = %job.id, "failpoint api_crash_after_commit: aborting");
        std::process::abort();
    }
    state.publisher.wake_relay();
    tracing::info!(
        job.id = %job.id,
        correlation_id = %job.correlation_id,
        bytes = upload.bytes.len(),
        "job accepted"
    );
    Ok(row)
}
