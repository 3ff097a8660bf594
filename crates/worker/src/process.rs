//! Running one job message: lock and claim the job, import its file, commit, decide the ack.
//!
//! The whole effect of an import (its rows and the `succeeded` status) commits in one
//! transaction keyed by the job id, and the message is acked only after that commit. So a
//! redelivery after a crash re-runs an uncommitted import (replacing, never appending), and a
//! redelivery or duplicate of a finished job is acked without work: at-least-once delivery,
//! exactly-once effect. A per-job advisory lock ([`JobLock`]) keeps two deliveries of one job
//! from running at the same time, so attempts are counted once per real run.

use std::time::Instant;

use burrow_shared::import::{import_people, ImportError, ImportOptions};
use burrow_shared::job_lock::JobLock;
use burrow_shared::jobs::{self, Claim};
use burrow_shared::{JobMessage, KIND_IMPORT_XLSX};
use sqlx::{Connection as _, PgConnection, PgPool};
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
/// Never panics on input and never returns without a decision: every path ends the job
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
    async {
        let mut lock = match JobLock::try_acquire(&ctx.db, message.job_id).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                info!("another delivery of this job is running; acking this duplicate");
                return Outcome::Ack;
            }
            Err(e) => return transient("locking the job", e),
        };
        let outcome = run(ctx, lock.conn(), &message).await;
        lock.release().await;
        outcome
    }
    .instrument(span)
    .await
}

async fn run(ctx: &JobContext, conn: &mut PgConnection, message: &JobMessage) -> Outcome {
    let id = message.job_id;
    let queue_wait_ms = (chrono::Utc::now() - message.enqueued_at).num_milliseconds();
    let job = match jobs::claim_job(conn, id, &ctx.worker_id).await {
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
        return fail(conn, id, &format!("unknown job kind {:?}", message.kind)).await;
    }
    let file = match jobs::load_file(&mut *conn, id).await {
        Ok(Some(file)) => file,
        Ok(None) => return fail(conn, id, "the job has no uploaded file").await,
        Err(e) => return transient("loading the file", e),
    };
    let started = Instant::now();
    match import_in_transaction(ctx, conn, id, file).await {
        Ok(rows) => {
            let run_ms = started.elapsed().as_millis() as u64;
            info!(rows, run_ms, outcome = "succeeded", "job finished");
            Outcome::Ack
        }
        Err(e) if e.is_permanent() => {
            let run_ms = started.elapsed().as_millis() as u64;
            info!(run_ms, outcome = "failed", error = %e, "job finished");
            fail(conn, id, &e.to_string()).await
        }
        Err(e) => transient("importing", e),
    }
}

/// Imports and marks the job succeeded in one transaction.
async fn import_in_transaction(
    ctx: &JobContext,
    conn: &mut PgConnection,
    id: Uuid,
    file: Vec<u8>,
) -> Result<u64, ImportError> {
    let mut tx = conn.begin().await?;
    // On error, dropping `tx` rolls back: no row of a failed import is ever committed.
    let rows = import_people(&mut tx, id, file, &ctx.import).await?;
    jobs::mark_succeeded(&mut tx, id, rows).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Ends the job `failed` with `reason`; the message is acked (retrying cannot help).
async fn fail(conn: &mut PgConnection, id: Uuid, reason: &str) -> Outcome {
    match jobs::mark_failed(conn, id, reason).await {
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
