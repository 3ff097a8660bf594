//! Accepting a request's jobs: [`burrow_shared::enqueue_many`] in one transaction (rows, files,
//! events and outbox messages, all or none), commit, wake this process's relay, count.
//!
//! A request does not wait for RabbitMQ and succeeds while it is down: publishing is the
//! relay's job ([`burrow_shared::relay`]).

use burrow_shared::engine::batches::{self, EnqueuedBatch, NewBatch};
use burrow_shared::enqueue::{enqueue_many, EnqueueError, Enqueued, NewJob};

use crate::error::ApiError;
use crate::failpoint::Failpoint;
use crate::state::AppState;

/// Stores every job (with its file and first message) in ONE transaction, commits, wakes the
/// relay and returns the jobs in request order. A job whose `(user_id, idempotency_key)`
/// exists already is not stored again: the earlier job is returned (`created: false`).
///
/// With the test-only failpoint [`Failpoint::ApiCrashAfterCommit`] armed, the process aborts
/// right after the commit, before the relay is woken.
///
/// # Errors
/// [`ApiError::Unprocessable`] for a job the engine refuses (routes validate first, so this is
/// a bug guard), [`ApiError::Internal`] for database errors; nothing is stored then.
pub async fn enqueue_all(state: &AppState, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, ApiError> {
    let mut tx = state.db.begin().await?;
    let stored = enqueue_many(&mut tx, jobs).await.map_err(refused)?;
    tx.commit().await?;
    accepted(state, &stored);
    Ok(stored)
}

/// Stores a batch (its row, members and callbacks) in ONE transaction, commits and wakes the
/// relay, as [`enqueue_all`] does for jobs.
///
/// # Errors
/// As [`enqueue_all`].
pub async fn enqueue_batch(state: &AppState, batch: NewBatch) -> Result<EnqueuedBatch, ApiError> {
    let mut tx = state.db.begin().await?;
    let stored = batches::enqueue_batch(&mut tx, batch)
        .await
        .map_err(refused)?;
    tx.commit().await?;
    let jobs: Vec<Enqueued> = stored
        .members
        .iter()
        .chain(&stored.on_success)
        .chain(&stored.on_complete)
        .cloned()
        .collect();
    accepted(state, &jobs);
    Ok(stored)
}

fn refused(error: EnqueueError) -> ApiError {
    match error {
        EnqueueError::Database(e) => ApiError::from(e),
        other => ApiError::Unprocessable(other.to_string()),
    }
}

/// After the commit: the failpoint, the relay's wake-up, logs and counters.
fn accepted(state: &AppState, stored: &[Enqueued]) {
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
}

/// [`enqueue_all`] for one job.
///
/// # Errors
/// As [`enqueue_all`].
pub async fn enqueue(state: &AppState, job: NewJob) -> Result<Enqueued, ApiError> {
    enqueue_all(state, vec![job])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("enqueue returned no job")))
}
