//! Running one job message: claim the job, import its file, commit, decide the ack.
//!
//! The whole effect of an import (its rows and the `succeeded` status) commits in one
//! transaction keyed by the job id, and the message is acked only after that commit. So a
//! redelivery after a crash re-runs an uncommitted import (replacing, never appending), and a
//! redelivery or duplicate of a finished job is acked without work: at-least-once delivery,
//! exactly-once effect.

use std::time::Instant;

use burrow_shared::import::{import_people, ImportError, ImportOptions};
use burrow_shared::jobs::{self, Claim};
use burrow_shared::{JobMessage, KIND_IMPORT_XLSX};
use sqlx::PgPool;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::outcome::Outcome;

/// What every job run needs, shared by all in-flight jobs of a worker.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job store.
    pub db: PgPool,
    /// Recorded on each job this worker claims.
    pub worker_id: String,
    /// Import settings.
    pub import: ImportOptions,
}

/// Runs the job a delivery body points at and returns what to tell the broker.
///
/// Never panics on input and never returns early without a decision: every path ends the job
/// (succeeded or failed), leaves it for a retry, or rejects the message to the DLQ.
pub async fn process_delivery(ctx: &JobContext, body: &[u8]) -> Outcome {
    let message = match JobMessage::decode(body) {
        Ok(message) => message,
        Err(e) => {
            warn!(error = %e, bytes = body.len(), "rejecting undecodable message to the DLQ");
            return Outcome::Reject {
                reason: e.to_string(),
            };
        }
    };
    let span = tracing::info_span!(
        "job",
        job.id = %message.job_id,
        job.kind = %message.kind,
        attempt = tracing::field::Empty,
        correlation_id = %message.correlation_id,
    );
    run(ctx, &message).instrument(span).await
}

async fn run(ctx: &JobContext, message: &JobMessage) -> Outcome {
    let id = message.job_id;
    let queue_wait_ms = (chrono::Utc::now() - message.enqueued_at).num_milliseconds();
    let claim = match ctx.db.acquire().await {
        Ok(mut conn) => jobs::claim_job(&mut conn, id, &ctx.worker_id).await,
        Err(e) => Err(e),
    };
    let job = match claim {
        Ok(Claim::Claimed(job)) => job,
        Ok(Claim::AlreadyFinished(status)) => {
            info!(%status, "job already ended; acking the duplicate delivery");
            return Outcome::Ack;
        }
        Ok(Claim::Missing) => {
            warn!("no job row for this message; rejecting it to the DLQ");
            return Outcome::Reject {
                reason: format!("no job {id}"),
            };
        }
        Err(e) => return transient("claiming the job", e),
    };
    tracing::Span::current().record("attempt", job.attempts);
    info!(queue_wait_ms, worker = %ctx.worker_id, "job started");

    if message.kind != KIND_IMPORT_XLSX {
        return fail(ctx, id, &format!("unknown job kind {:?}", message.kind)).await;
    }
    let file = match jobs::load_file(&ctx.db, id).await {
        Ok(Some(file)) => file,
        Ok(None) => return fail(ctx, id, "the job has no uploaded file").await,
        Err(e) => return transient("loading the file", e),
    };
    let started = Instant::now();
    match import_in_transaction(ctx, id, file).await {
        Ok(Some(rows)) => {
            info!(
                rows,
                run_ms = started.elapsed().as_millis() as u64,
                outcome = "succeeded",
                "job finished"
            );
            Outcome::Ack
        }
        Ok(None) => {
            info!("another delivery of this job finished it first; acking");
            Outcome::Ack
        }
        Err(e) if e.is_permanent() => {
            info!(run_ms = started.elapsed().as_millis() as u64, outcome = "failed", error = %e, "job finished");
            fail(ctx, id, &e.to_string()).await
        }
        Err(e) => transient("importing", e),
    }
}

/// Imports and marks the job succeeded in one transaction. `Ok(None)` when the job was no
/// longer `processing` (another delivery ended it while this one waited for the row lock).
async fn import_in_transaction(
    ctx: &JobContext,
    id: Uuid,
    file: Vec<u8>,
) -> Result<Option<u64>, ImportError> {
    let mut tx = ctx.db.begin().await?;
    if !jobs::lock_processing_job(&mut tx, id).await? {
        return Ok(None);
    }
    // On error, dropping `tx` rolls back: no row of a failed import is ever committed.
    let rows = import_people(&mut tx, id, file, &ctx.import).await?;
    jobs::mark_succeeded(&mut tx, id, rows).await?;
    tx.commit().await?;
    Ok(Some(rows))
}

/// Ends the job `failed` with `reason`; the message is acked (retrying cannot help).
async fn fail(ctx: &JobContext, id: Uuid, reason: &str) -> Outcome {
    match jobs::mark_failed(&ctx.db, id, reason).await {
        Ok(()) => Outcome::Ack,
        Err(e) => transient("recording the failure", e),
    }
}

fn transient(doing: &str, error: impl std::fmt::Display) -> Outcome {
    warn!(error = %error, "transient failure while {doing}; requeueing");
    Outcome::Requeue {
        reason: format!("{doing}: {error}"),
    }
}
