//! Accepting jobs: store them, their files and their messages in one transaction, then answer.
//!
//! This is the write half of the transactional outbox
//! (<https://microservices.io/patterns/data/transactional-outbox.html>): the job rows, files
//! and outbox rows commit together or not at all, so a job is never stored without the message
//! that runs it, whatever happens to the process or the broker afterwards. Publishing is the
//! relay's job ([`crate::relay`]); a request does not wait for RabbitMQ and succeeds while it
//! is down.

use std::collections::HashMap;

use burrow_shared::jobs::{self, JobRow, NewJob};
use burrow_shared::{outbox, JobMessage};
use uuid::Uuid;

use crate::error::ApiError;
use crate::failpoint::Failpoint;
use crate::state::AppState;

/// One job to create: its row and, for uploads, its file (already checked to be an .xlsx).
#[derive(Debug)]
pub struct JobRequest {
    /// The job (kind and payload already validated).
    pub job: NewJob,
    /// The uploaded bytes, for kinds created by upload.
    pub file: Option<Vec<u8>>,
}

/// A stored job, and whether this request created it (`false`: an earlier request with the
/// same `Idempotency-Key` did).
#[derive(Debug)]
pub struct Enqueued {
    /// The job as stored.
    pub job: JobRow,
    /// Whether it is new.
    pub created: bool,
}

/// The first-attempt message of a new job.
pub fn first_message(job: &NewJob) -> JobMessage {
    JobMessage {
        run_at: job.run_at,
        priority: u8::try_from(job.priority.clamp(0, 9)).unwrap_or(0),
        ..JobMessage::new(job.id, &job.kind, job.correlation_id)
    }
}

/// Stores every job, its file and its first-attempt message (in the outbox) in ONE transaction
/// (all or none), commits, wakes the relay and returns the jobs in request order. A job whose
/// `(user_id, idempotency_key)` exists already is not stored again: the earlier job is returned.
///
/// With the test-only failpoint [`Failpoint::ApiCrashAfterCommit`] armed, the process aborts
/// right after the commit, before the relay is woken.
///
/// # Errors
/// [`ApiError::Internal`] for database errors; nothing is stored then.
pub async fn enqueue_all(
    state: &AppState,
    requests: Vec<JobRequest>,
) -> Result<Vec<Enqueued>, ApiError> {
    let mut tx = state.db.begin().await?;
    // Three statements for the whole request, however many jobs: rows and events, files,
    // outbox messages.
    let new_jobs: Vec<&NewJob> = requests.iter().map(|r| &r.job).collect();
    let mut created: HashMap<Uuid, JobRow> = jobs::insert_jobs(&mut tx, &new_jobs)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let mut messages = Vec::with_capacity(created.len());
    for request in &requests {
        if !created.contains_key(&request.job.id) {
            continue;
        }
        if let Some(file) = &request.file {
            jobs::insert_file(&mut tx, request.job.id, file).await?;
        }
        messages.push(first_message(&request.job));
    }
    outbox::add_all(&mut tx, &messages).await?;

    let mut stored = Vec::with_capacity(requests.len());
    for request in &requests {
        let job = &request.job;
        if let Some(row) = created.remove(&job.id) {
            stored.push(Enqueued {
                job: row,
                created: true,
            });
            continue;
        }
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        let earlier = jobs::find_by_idempotency_key(&mut *tx, job.user_id.as_deref(), key)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("idempotency conflict without a job"))
            })?;
        stored.push(Enqueued {
            job: earlier,
            created: false,
        });
    }
    tx.commit().await?;

    if state.publisher.failpoint() == Some(Failpoint::ApiCrashAfterCommit) {
        tracing::error!("failpoint api_crash_after_commit: aborting");
        std::process::abort();
    }
    state.publisher.wake_relay();
    for enqueued in stored.iter().filter(|e| e.created) {
        let job = &enqueued.job;
        tracing::info!(job.id = %job.id, job.kind = %job.kind, correlation_id = %job.correlation_id, "job accepted");
        crate::metrics::record_enqueued(&job.kind);
    }
    Ok(stored)
}

/// [`enqueue_all`] for one job.
///
/// # Errors
/// As [`enqueue_all`].
pub async fn enqueue(state: &AppState, request: JobRequest) -> Result<Enqueued, ApiError> {
    enqueue_all(state, vec![request])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("enqueue returned no job")))
}
