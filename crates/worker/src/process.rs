//! Running one job message: lock and claim the job, run its kind's handler, commit, decide
//! the ack.
//!
//! A handler's effect (for imports: the rows) and the `succeeded` status commit in one
//! transaction keyed by the job id, and the message is acked only after that commit. So a
//! redelivery after a crash re-runs an uncommitted job (an import replaces, never appends), and
//! a redelivery or duplicate of a finished job is acked without work: at-least-once delivery,
//! exactly-once effect. A per-job advisory lock ([`burrow_shared::job_lock`]) keeps two
//! deliveries of one job from running at the same time, so attempts are counted once per real
//! run. Claims, and the successes of runs that wrote nothing, are committed in batches with
//! other jobs' ([`crate::batcher`]).
//!
//! Errors are classified by the handler ([`JobError`]): a permanent one (a bad file) ends the
//! job `failed` and acks — the job row keeps the error and nothing goes to the DLQ, since
//! re-running cannot help. A retryable one (database unavailable) schedules the next attempt in
//! a delay queue (`retrying`) or, after the last attempt, dead-letters it (`dead`). Messages no
//! worker can run (undecodable, no such job, unknown kind) go to the DLQ at once.

use std::time::{Duration, Instant};

use burrow_shared::handler::{ErasedHandler, JobError, JobOutput, Registry, RunContext, RunTx};
use burrow_shared::import::ImportOptions;
use burrow_shared::job_batch::Claim;
use burrow_shared::jobs::{self, JobRow};
use burrow_shared::progress::Progress;
use burrow_shared::publish::publish_retry;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::{JobMessage, Topology};
use lapin::Channel;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::batcher::Batcher;
use crate::health::WorkerHealth;
use crate::kind_slots::{KindSlots, Slot};
use crate::metrics::{self, JobOutcome};
use crate::outcome::Outcome;
use crate::watch::watch_run;

/// What every job run needs, shared by all in-flight jobs of a worker.
#[derive(Clone)]
pub struct JobContext {
    /// The job store.
    pub db: PgPool,
    /// Recorded on each job this worker claims.
    pub worker_id: String,
    /// The kinds this worker runs.
    pub registry: Registry,
    /// When to retry transient failures.
    pub retry: RetryPolicy,
    /// Test-only failpoint: jobs whose file has this name fail transiently on every attempt
    /// (`BURROW_FAILPOINT=transient_import:NAME`), to exercise retries and the DLQ.
    pub always_transient_file: Option<String>,
    /// Where the consumer reports its connection and finished deliveries, for `/readyz`.
    pub health: WorkerHealth,
    /// Claims and successes, committed in batches.
    pub batcher: Batcher,
    /// Per-kind limits on jobs run at once.
    pub kind_slots: KindSlots,
}

impl JobContext {
    /// A context with the shipped kinds, the default retry policy and no failpoint. Starts the
    /// [`Batcher`]'s tasks, so call it inside a Tokio runtime.
    pub fn new(db: PgPool, worker_id: impl Into<String>, import: ImportOptions) -> Self {
        let worker_id = worker_id.into();
        let registry = burrow_shared::kinds::registry(import);
        JobContext {
            kind_slots: KindSlots::new(&registry),
            batcher: Batcher::start(db.clone(), worker_id.clone()),
            db,
            worker_id,
            registry,
            retry: RetryPolicy::default(),
            always_transient_file: None,
            health: WorkerHealth::new(),
        }
    }
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
/// (succeeded, failed, cancelled or dead), schedules its retry, parks it until its `run_at`, or
/// dead-letters the message.
pub async fn process_delivery(ctx: &JobContext, broker: &Broker, body: &[u8]) -> Outcome {
    let message = match JobMessage::decode(body) {
        Ok(message) => message,
        Err(e) => {
            warn!(error = %e, bytes = body.len(), "dead-lettering an undecodable message");
            metrics::record_outcome(metrics::UNKNOWN_KIND, JobOutcome::DeadLettered, None);
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
        if let Some(outcome) = park_until_due(ctx, broker, &message).await {
            return outcome;
        }
        let _slot = match ctx.kind_slots.acquire(&message.kind).await {
            Slot::Full => return hand_back(ctx, broker, &message).await,
            slot => slot,
        };
        let job = match ctx.batcher.claim(message.job_id).await {
            Ok(Claim::Claimed(job)) => job,
            Ok(Claim::Busy) => return park_duplicate(ctx, broker, &message).await,
            Ok(Claim::Ended(status)) => {
                info!(%status, "job already ended; acking the duplicate delivery");
                return Outcome::Ack;
            }
            Ok(Claim::Missing) => {
                warn!("no job row for this message; dead-lettering it");
                let kind = metrics::kind_label(&ctx.registry, &message.kind);
                metrics::record_outcome(kind, JobOutcome::DeadLettered, None);
                return Outcome::DeadLetter {
                    reason: format!("no job {}", message.job_id),
                    attempts: 0,
                };
            }
            Err(error) => {
                return retry_or_bury(ctx, broker, &message, message.attempt, error, None).await;
            }
        };
        let outcome = match run(ctx, &job, &message).await {
            Ok(outcome) => outcome,
            Err(Transient {
                attempt,
                error,
                ran,
            }) => retry_or_bury(ctx, broker, &message, attempt, error, ran).await,
        };
        ctx.batcher.release(job.id);
        outcome
    }
    .instrument(span)
    .await
}

/// A transient failure of attempt `attempt`; `ran`: how long the handler ran, if it did.
struct Transient {
    attempt: u32,
    error: String,
    ran: Option<Duration>,
}

impl Transient {
    fn new(attempt: u32, doing: &str, error: impl std::fmt::Display) -> Self {
        Transient {
            attempt,
            error: format!("{doing}: {error}"),
            ran: None,
        }
    }
}

/// Runs a claimed job to its outcome.
async fn run(ctx: &JobContext, job: &JobRow, message: &JobMessage) -> Result<Outcome, Transient> {
    let id = job.id;
    let queue_wait_ms = (chrono::Utc::now() - message.enqueued_at).num_milliseconds();
    // The database counts every run, redeliveries after a crash included; the message counts
    // retries scheduled while the database was unreachable. The larger is the truth.
    let attempt = u32::try_from(job.attempts)
        .unwrap_or(0)
        .max(message.attempt);
    tracing::Span::current().record("attempt", attempt);
    info!(queue_wait_ms, worker = %ctx.worker_id, "job started");
    let kind = metrics::kind_label(&ctx.registry, &job.kind);
    metrics::record_started(kind);

    if job.cancel_requested {
        return finish_cancelled(&ctx.db, job, attempt, kind, queue_wait_ms, None).await;
    }
    let Some(handler) = ctx.registry.get(&job.kind) else {
        // Not this worker's to fail: a newer api may know kinds an older worker does not. The
        // message rests in the DLQ and can be re-driven once a worker that knows it runs.
        let reason = format!("unknown job kind {:?}", job.kind);
        warn!(outcome = "dead", "{reason}; dead-lettering");
        return match jobs::mark_dead(&ctx.db, id, &reason).await {
            Ok(()) => {
                metrics::record_outcome(kind, JobOutcome::DeadLettered, None);
                Ok(Outcome::DeadLetter {
                    reason,
                    attempts: attempt,
                })
            }
            Err(e) => Err(Transient::new(attempt, "recording the failure", e)),
        };
    };
    if ctx.always_transient_file.is_some() && ctx.always_transient_file == job.file_name {
        return Err(Transient::new(
            attempt,
            "failpoint",
            "simulated transient failure",
        ));
    }

    let started = Instant::now();
    let (progress, cancel, stop_watch) = (
        Progress::default(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let watcher = tokio::spawn(watch_run(
        ctx.db.clone(),
        id,
        progress.clone(),
        cancel.clone(),
        stop_watch.clone(),
    ));
    let result = run_handler(ctx, job, handler.as_ref(), progress, cancel).await;
    stop_watch.cancel();
    let _ = watcher.await;
    let ran = started.elapsed();
    let run_ms = ran.as_millis() as u64;

    match result {
        Ok(output) => {
            info!(
                rows = output.rows,
                queue_wait_ms,
                run_ms,
                outcome = "succeeded",
                "job finished"
            );
            metrics::record_outcome(kind, JobOutcome::Succeeded, Some(ran));
            if job.kind == burrow_shared::KIND_IMPORT_XLSX {
                metrics::record_rows_imported(output.rows.unwrap_or(0));
            }
            Ok(Outcome::Ack)
        }
        Err(JobError::Permanent(reason)) => {
            info!(queue_wait_ms, run_ms, outcome = "failed", error = %reason, "job finished");
            match jobs::mark_failed(&ctx.db, id, &reason).await {
                Ok(()) => {
                    metrics::record_outcome(kind, JobOutcome::Failed, Some(ran));
                    Ok(Outcome::Ack)
                }
                Err(e) => Err(Transient {
                    ran: Some(ran),
                    ..Transient::new(attempt, "recording the failure", e)
                }),
            }
        }
        Err(JobError::Cancelled) => {
            finish_cancelled(&ctx.db, job, attempt, kind, queue_wait_ms, Some(ran)).await
        }
        Err(JobError::Retryable(reason)) => Err(Transient {
            attempt,
            error: reason,
            ran: Some(ran),
        }),
    }
}

/// Runs the handler and records its success. A run that wrote through its transaction
/// ([`RunTx`]) is marked succeeded in that transaction, so effect and status commit together;
/// on any error the transaction is dropped, which rolls back everything the handler wrote. A
/// run that wrote nothing is marked succeeded by the [`Batcher`], with other jobs' in one
/// commit.
async fn run_handler(
    ctx: &JobContext,
    job: &JobRow,
    handler: &dyn ErasedHandler,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<JobOutput, JobError> {
    let database = |e: sqlx::Error| JobError::Retryable(format!("database: {e}"));
    let mut slot: Option<Transaction<'static, Postgres>> = None;
    let run = RunContext {
        job,
        tx: RunTx::new(&ctx.db, &mut slot),
        cancel,
        progress,
    };
    let output = handler.run(run, job.payload.clone()).await?;
    let mut tx = match slot {
        Some(tx) => tx,
        None if output.result.is_none() => {
            return match ctx.batcher.succeeded(job.id, output.clone()).await {
                Ok(true) => Ok(output),
                Ok(false) => Err(JobError::Retryable(
                    "the job stopped being processing before its success was recorded".to_owned(),
                )),
                Err(e) => Err(JobError::Retryable(format!("database: {e}"))),
            };
        }
        // A result file to store: that needs a transaction after all.
        None => ctx.db.begin().await.map_err(database)?,
    };
    jobs::mark_succeeded(&mut tx, job.id, &output)
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)?;
    Ok(output)
}

/// Ends a job cancelled on request; `ran`: how long its handler ran (`None`: it never started).
async fn finish_cancelled(
    db: &PgPool,
    job: &JobRow,
    attempt: u32,
    kind: &str,
    queue_wait_ms: i64,
    ran: Option<Duration>,
) -> Result<Outcome, Transient> {
    let run_ms = ran.map(|ran| ran.as_millis() as u64);
    info!(
        queue_wait_ms,
        run_ms,
        outcome = "cancelled",
        "job cancelled"
    );
    match jobs::mark_cancelled(db, job.id).await {
        Ok(_) => {
            metrics::record_outcome(kind, JobOutcome::Cancelled, ran);
            Ok(Outcome::Ack)
        }
        Err(e) => Err(Transient {
            ran,
            ..Transient::new(attempt, "recording the cancellation", e)
        }),
    }
}

/// A message whose `run_at` lies ahead waits in a delay queue: the shortest one that covers
/// the remaining time (expiring exactly then), or the longest one, to come back and wait again.
/// `None` when the job is due (or no delay queue exists), so it runs now.
async fn park_until_due(
    ctx: &JobContext,
    broker: &Broker,
    message: &JobMessage,
) -> Option<Outcome> {
    let remaining = (message.run_at? - chrono::Utc::now()).to_std().ok()?;
    if remaining.is_zero() {
        return None;
    }
    let delays = ctx.retry.delays();
    let (delay, wait) = match delays.iter().find(|d| **d >= remaining) {
        Some(delay) => (*delay, remaining),
        None => {
            let longest = *delays.last()?;
            (longest, longest)
        }
    };
    match publish_retry(&broker.publisher, &broker.topology, message, delay, wait).await {
        Ok(()) => {
            info!(
                wait_ms = wait.as_millis() as u64,
                "not due yet; parked in a delay queue"
            );
            Some(Outcome::Ack)
        }
        Err(e) => Some(Outcome::Requeue {
            reason: format!("parking until run_at: {e}"),
        }),
    }
}

/// Another session holds the job's lock: a duplicate delivery while the job runs, or a
/// redelivery while a dead worker's database session still lingers. Acking it could lose the
/// job in the second case, so it waits in the longest delay queue and comes back: by then the
/// job has ended (and the copy is acked without work) or its lock is free (and it runs).
async fn park_duplicate(ctx: &JobContext, broker: &Broker, message: &JobMessage) -> Outcome {
    let Some(delay) = ctx.retry.delays().last().copied() else {
        info!("another delivery of this job is running; acking this duplicate");
        return Outcome::Ack;
    };
    park(
        broker,
        message,
        delay,
        "job locked by another delivery; parked",
    )
    .await
}

/// Every slot of the message's kind is busy and enough deliveries wait for one: the message
/// goes back through the shortest delay queue to the work queue, where any replica may take it.
async fn hand_back(ctx: &JobContext, broker: &Broker, message: &JobMessage) -> Outcome {
    let Some(delay) = ctx.retry.delays().first().copied() else {
        return Outcome::Requeue {
            reason: "no delay queue to hand a job back through".to_owned(),
        };
    };
    park(
        broker,
        message,
        delay,
        "every slot of this kind is busy; handed back",
    )
    .await
}

/// Puts the message unchanged in the delay queue of `delay` and acks this delivery; if the
/// broker does not confirm, the delivery is requeued instead.
async fn park(broker: &Broker, message: &JobMessage, delay: Duration, why: &str) -> Outcome {
    match publish_retry(&broker.publisher, &broker.topology, message, delay, delay).await {
        Ok(()) => {
            info!(wait_ms = delay.as_millis() as u64, "{why}");
            Outcome::Ack
        }
        Err(e) => Outcome::Requeue {
            reason: format!("{why}, but could not publish: {e}"),
        },
    }
}

/// After a transient failure of `attempt`: schedule the next attempt in the delay queue for its
/// backoff (`retrying`), or, when none is left, bury the job (`dead`, message to the DLQ).
/// `ran`: how long the failed attempt's handler ran, if it started.
async fn retry_or_bury(
    ctx: &JobContext,
    broker: &Broker,
    message: &JobMessage,
    attempt: u32,
    error: String,
    ran: Option<Duration>,
) -> Outcome {
    let id = message.job_id;
    let kind = metrics::kind_label(&ctx.registry, &message.kind);
    if !ctx.retry.allows_another(attempt) {
        let reason = format!(
            "attempt {attempt} of {} failed: {error}",
            ctx.retry.max_attempts
        );
        warn!(attempt, error = %error, outcome = "dead", "retries exhausted; dead-lettering");
        if let Err(e) = jobs::mark_dead(&ctx.db, id, &reason).await {
            warn!(error = %e, "could not mark the job dead (the sweeper will)");
        }
        metrics::record_outcome(kind, JobOutcome::DeadLettered, ran);
        return Outcome::DeadLetter {
            reason,
            attempts: attempt,
        };
    }
    let delay = ctx.retry.delay(attempt);
    let wait = ctx.retry.jittered(attempt, fastrand::f64());
    let next = message.for_attempt(attempt + 1);
    metrics::record_outcome(kind, JobOutcome::Retried, ran);
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
