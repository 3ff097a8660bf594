//! Running one job message: lock and claim the job, import its file, commit, decide the ack.
//!
//! The whole effect of an import (its rows and the `succeeded` status) commits in one
//! transaction keyed by the job id, and the message is acked only after that commit. So a
//! redelivery after a crash re-runs an uncommitted import (replacing, never appending), and a
//! redelivery or duplicate of a finished job is acked without work: at-least-once delivery,
//! exactly-once effect. A per-job advisory lock ([`JobLock`]) keeps two deliveries of one job
//! from running at the same time, so attempts are counted once per real run.
//!
//! Errors are classified by type: a permanent one (a bad file) ends the job `failed` and acks —
//! the job row keeps the error and nothing goes to the DLQ, since re-running the same file
//! cannot help. A transient one (database unavailable) schedules the next attempt in a delay
//! queue (`retrying`) or, after the last attempt, dead-letters it (`dead`). Messages no worker
//! can run (undecodable, no such job, unknown kind) go to the DLQ at once.

use std::time::Instant;

use burrow_shared::import::{import_people, ImportError, ImportOptions};
use burrow_shared::job_lock::JobLock;
use burrow_shared::jobs::{self, Claim};
use burrow_shared::publish::publish_retry;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::{JobMessage, Topology, KIND_IMPORT_XLSX};
use lapin::Channel;
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
    /// When to retry transient failures.
    pub retry: RetryPolicy,
    /// Test-only failpoint: jobs whose file has this name fail transiently on every attempt
    /// (`BURROW_FAILPOINT=transient_import:NAME`), to exercise retries and the DLQ.
    pub always_transient_file: Option<String>,
}

/// The broker side of one consumer session: where retries and dead letters are published.
#[derive(Debug, Clone)]
pub struct Broker {
    /// A channel in confirm mode, on the consumer's connection.
    pub publisher: Channel,
    /// The names to publish to.
    pub topology: Topology,
}

/// Runs the job a delivery body points at and returns what to tell the broker.
///
/// Never panics on input and never returns without a decision: every path ends the job
/// (succeeded, failed or dead), schedules its retry, or dead-letters the message.
pub async fn process_delivery(ctx: &JobContext, broker: &Broker, body: &[u8]) -> Outcome {
    let message = match JobMessage::decode(body) {
        Ok(message) => message,
        Err(e) => {
            warn!(error = %e, bytes = body.len(), "dead-lettering an undecodable message");
            return Outcome::DeadLetter {
                reason: e.to_string(),
                attempts: 0,
            };
        }
    };
    let span = tracing::info_span!(
        "job",
        job.id = %message.job_id,
        job.kind = %message.kind,
        attempt = message.attempt,
        correlation_id = %message.correlation_id,
    );
    async {
        let mut lock = match JobLock::try_acquire(&ctx.db, message.job_id).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                info!("another delivery of this job is running; acking this duplicate");
                return Outcome::Ack;
            }
            Err(e) => {
                let error = format!("locking the job: {e}");
                return retry_or_bury(ctx, broker, &message, message.attempt, error).await;
            }
        };
        let outcome = match run(ctx, lock.conn(), &message).await {
            Ok(outcome) => outcome,
            Err(Transient { attempt, error }) => {
                retry_or_bury(ctx, broker, &message, attempt, error).await
            }
        };
        lock.release().await;
        outcome
    }
    .instrument(span)
    .await
}

/// A transient failure of attempt `attempt`.
struct Transient {
    attempt: u32,
    error: String,
}

async fn run(
    ctx: &JobContext,
    conn: &mut PgConnection,
    message: &JobMessage,
) -> Result<Outcome, Transient> {
    let id = message.job_id;
    let transient = |attempt: u32, doing: &str, e: &dyn std::fmt::Display| Transient {
        attempt,
        error: format!("{doing}: {e}"),
    };
    let queue_wait_ms = (chrono::Utc::now() - message.enqueued_at).num_milliseconds();
    let job = match jobs::claim_job(conn, id, &ctx.worker_id).await {
        Ok(Claim::Claimed(job)) => job,
        Ok(Claim::AlreadyFinished(status)) => {
            info!(%status, "job already ended; acking the duplicate delivery");
            return Ok(Outcome::Ack);
        }
        Ok(Claim::Missing) => {
            warn!("no job row for this message; dead-lettering it");
            return Ok(Outcome::DeadLetter {
                reason: format!("no job {id}"),
                attempts: 0,
            });
        }
        Err(e) => return Err(transient(message.attempt, "claiming the job", &e)),
    };
    // The database counts every run, redeliveries after a crash included; the message counts
    // retries scheduled while the database was unreachable. The larger is the truth.
    let attempt = u32::try_from(job.attempts)
        .unwrap_or(0)
        .max(message.attempt);
    tracing::Span::current().record("attempt", attempt);
    info!(queue_wait_ms, worker = %ctx.worker_id, "job started");

    if message.kind != KIND_IMPORT_XLSX {
        // Not this worker's to fail: a newer api may know kinds an older worker does not. The
        // message rests in the DLQ and can be re-driven once a worker that knows it runs.
        let reason = format!("unknown job kind {:?}", message.kind);
        warn!(outcome = "dead", "{reason}; dead-lettering");
        return match jobs::mark_dead(&mut *conn, id, &reason).await {
            Ok(()) => Ok(Outcome::DeadLetter {
                reason,
                attempts: attempt,
            }),
            Err(e) => Err(transient(attempt, "recording the failure", &e)),
        };
    }
    if ctx.always_transient_file.is_some() && ctx.always_transient_file == job.file_name {
        return Err(transient(
            attempt,
            "failpoint",
            &"simulated transient failure",
        ));
    }
    let file = match jobs::load_file(&mut *conn, id).await {
        Ok(Some(file)) => file,
        Ok(None) => {
            return fail(conn, id, "the job has no uploaded file")
                .await
                .map_err(|e| transient(attempt, "recording the failure", &e))
        }
        Err(e) => return Err(transient(attempt, "loading the file", &e)),
    };
    let started = Instant::now();
    match import_in_transaction(ctx, conn, id, file).await {
        Ok(rows) => {
            let run_ms = started.elapsed().as_millis() as u64;
            info!(rows, run_ms, outcome = "succeeded", "job finished");
            Ok(Outcome::Ack)
        }
        Err(e) if e.is_permanent() => {
            let run_ms = started.elapsed().as_millis() as u64;
            info!(run_ms, outcome = "failed", error = %e, "job finished");
            fail(conn, id, &e.to_string())
                .await
                .map_err(|e| transient(attempt, "recording the failure", &e))
        }
        Err(e) => Err(transient(attempt, "importing", &e)),
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
async fn fail(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<Outcome, sqlx::Error> {
    jobs::mark_failed(conn, id, reason).await?;
    Ok(Outcome::Ack)
}

/// After a transient failure of `attempt`: schedule the next attempt in the delay queue for its
/// backoff (`retrying`), or, when none is left, bury the job (`dead`, message to the DLQ).
async fn retry_or_bury(
    ctx: &JobContext,
    broker: &Broker,
    message: &JobMessage,
    attempt: u32,
    error: String,
) -> Outcome {
    let id = message.job_id;
    if !ctx.retry.allows_another(attempt) {
        let reason = format!(
            "attempt {attempt} of {} failed: {error}",
            ctx.retry.max_attempts
        );
        warn!(attempt, error = %error, outcome = "dead", "retries exhausted; dead-lettering");
        if let Err(e) = jobs::mark_dead(&ctx.db, id, &reason).await {
            warn!(error = %e, "could not mark the job dead (the sweeper will)");
        }
        return Outcome::DeadLetter {
            reason,
            attempts: attempt,
        };
    }
    let delay = ctx.retry.delay(attempt);
    let wait = ctx.retry.jittered(attempt, fastrand::f64());
    let next = message.for_attempt(attempt + 1);
    if let Err(e) = publish_retry(&broker.publisher, &broker.topology, &next, delay, wait).await {
        warn!(error = %e, "could not schedule the retry; requeueing the delivery");
        return Outcome::Requeue { reason: error };
    }
    let wait_ms = wait.as_millis() as u64;
    warn!(attempt, wait_ms, error = %error, outcome = "retrying", "transient failure; retry scheduled");
    let next_at = chrono::Utc::now() + wait;
    if let Err(e) = jobs::mark_retrying(&ctx.db, id, &error, next_at).await {
        warn!(error = %e, "could not record the retry on the job");
    }
    Outcome::Ack
}
