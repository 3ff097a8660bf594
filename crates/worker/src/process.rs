//! Deciding what one job message comes to: lock and claim the job, run its kind's handler,
//! record the result in Postgres, and return an [`Outcome`] — without any broker I/O. The
//! consumer carries the outcome out ([`Outcome::apply`]), in one place.
//!
//! A handler's effect and the `succeeded` status commit in one transaction keyed by the job
//! id, and the message is acked only after that commit. So a redelivery after a crash re-runs
//! an uncommitted job, and a redelivery or duplicate of a finished job is acked without work:
//! at-least-once delivery, exactly-once effect. A per-job advisory lock
//! ([`burrow_shared::job_lock`]) keeps two deliveries of one job from running at the same time.
//! Claims, and the successes of runs that wrote nothing, are committed in batches with other
//! jobs' ([`crate::batcher`]). Every status change goes through
//! [`burrow_shared::state`].
//!
//! | the run (or the delivery) | job becomes | outcome |
//! |---|---|---|
//! | succeeded | succeeded | ack |
//! | [`JobError::Permanent`] | failed | ack |
//! | [`JobError::Retryable`], attempts left | retrying | retry: the next attempt's message to the delay queue of its backoff |
//! | [`JobError::RetryAfter`], attempts left | retrying | retry: parked until the hint |
//! | transient, no attempt left; unknown kind | dead | dead-letter with the reason |
//! | [`JobError::Snooze`] | queued (attempt given back) | park until then |
//! | [`JobError::Cancelled`] after a cancel request | cancelled | ack |
//! | [`JobError::Cancelled`] by the kind's timeout | as a transient error | retry or dead-letter |
//! | [`JobError::Cancelled`] by a hard stop | queued (attempt given back) | requeue at once |
//! | `run_at` ahead | — | park until due |
//! | another delivery of the job runs | — | park ([`DUPLICATE_PARK`]) |
//! | the kind's slots are full | — | park ([`HAND_BACK`]) |
//! | over the kind's rate limit | — (stays queued or retrying) | ack: the message waits in Postgres until its reserved slot ([`crate::rate_limits`]) |
//! | the kind is at its cluster-wide cap | — (stays queued or retrying) | ack: the message waits in Postgres ([`crate::cluster_caps`]) |
//! | the job ended already | — | ack |
//! | undecodable, no such job | — | dead-letter |
//! | the outcome could not be recorded | — | requeue after a pause |

use std::time::{Duration, Instant};

use burrow_shared::handler::{
    ErasedHandler, JobError, JobOutput, Registry, ResultFile, RunContext, RunTx,
};
use burrow_shared::job_batch::Claim;
use burrow_shared::jobs::JobRow;
use burrow_shared::progress::Progress;
use burrow_shared::rate_limits::Reservation;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::state::{self, Transition};
use burrow_shared::telemetry::{self, TraceContext};
use burrow_shared::JobMessage;
use chrono::Utc;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::batcher::Batcher;
use crate::cluster_caps::{CapClaim, ClusterCaps};
use crate::health::WorkerHealth;
use crate::kind_slots::{KindSlots, Slot};
use crate::metrics::{self, JobOutcome};
use crate::outcome::Outcome;
use crate::rate_limits::RateLimits;
use crate::watch::{watch_run, WatchStop};

/// How long a duplicate delivery waits before it looks again: by then the running copy has
/// usually ended (and the duplicate is acked without work) or its lock is free (and it runs).
pub const DUPLICATE_PARK: Duration = Duration::from_secs(5);
/// How long a delivery handed back for lack of a slot of its kind waits before any replica
/// may take it again.
pub const HAND_BACK: Duration = Duration::from_secs(1);

/// What every job run needs, shared by all in-flight jobs of a worker.
#[derive(Clone)]
pub struct JobContext {
    /// The job store.
    pub db: PgPool,
    /// Recorded on each job this worker claims.
    pub worker_id: String,
    /// The kinds this worker runs.
    pub registry: Registry,
    /// When to retry transient failures of kinds without a policy of their own.
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
    /// Cluster-wide caps per kind, as last read from the database (none until the
    /// [`crate::Worker`] reads them; in-process tests set them).
    pub caps: ClusterCaps,
    /// Cluster-wide rate limits per kind, as last read from the database (none until the
    /// [`crate::Worker`] reads them; in-process tests set them).
    pub rates: RateLimits,
    /// Cancelled when the worker stops hard: every running handler's token fires.
    pub hard_stop: CancellationToken,
}

impl JobContext {
    /// A context running `registry`'s kinds with the default retry policy and no failpoint.
    /// Starts the [`Batcher`]'s tasks, so call it inside a Tokio runtime.
    pub fn new(db: PgPool, worker_id: impl Into<String>, registry: Registry) -> Self {
        let worker_id = worker_id.into();
        JobContext {
            kind_slots: KindSlots::new(&registry),
            caps: ClusterCaps::default(),
            rates: RateLimits::default(),
            batcher: Batcher::start(db.clone(), worker_id.clone()),
            db,
            worker_id,
            registry,
            retry: RetryPolicy::default(),
            always_transient_file: None,
            health: WorkerHealth::new(),
            hard_stop: CancellationToken::new(),
        }
    }

    /// The retry policy of `kind`: its handler's, else the worker's.
    pub fn retry_policy(&self, kind: &str) -> RetryPolicy {
        self.registry
            .get(kind)
            .and_then(|handler| handler.retry_policy())
            .unwrap_or_else(|| self.retry.clone())
    }

    /// Every retry delay any kind of this worker may use, for declaring the delay queues.
    pub fn retry_delays(&self) -> Vec<Duration> {
        let mut delays = self.retry.delays();
        for kind in self.registry.kinds() {
            delays.extend(self.retry_policy(kind).delays());
        }
        delays.sort();
        delays.dedup();
        delays
    }
}

/// Runs the job a delivery body points at and returns what to tell the broker. Writes to
/// Postgres (the job's state), never to the broker.
///
/// The run's span continues `trace` (the delivery's `traceparent` header), else the trace
/// context in the body, and links to the job's previous run, if that was traced.
///
/// Never panics on input and never returns without a decision: every path ends the job
/// (succeeded, failed, cancelled or dead), schedules its retry, parks it, or dead-letters
/// the message.
pub async fn process_delivery(
    ctx: &JobContext,
    body: &[u8],
    trace: Option<TraceContext>,
) -> Outcome {
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
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        job.id = %message.job_id,
        job.kind = %message.kind,
        job.attempt = message.attempt,
        correlation_id = %message.correlation_id,
    );
    // A consumer's span in OpenTelemetry's messaging conventions
    // (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/).
    telemetry::context::describe(
        &span,
        || format!("process {}", message.kind),
        "consumer",
        &[
            ("messaging.system", "rabbitmq"),
            ("messaging.operation.type", "process"),
        ],
    );
    if let Some(parent) = trace.as_ref().or(message.trace.as_ref()) {
        parent.adopt_as_parent_of(&span);
    }
    decide(ctx, message).instrument(span).await
}

async fn decide(ctx: &JobContext, message: JobMessage) -> Outcome {
    if let Some(run_at) = message.run_at.filter(|at| *at > Utc::now()) {
        info!(%run_at, "not due yet; parking");
        return Outcome::park_until(message, run_at);
    }
    let _slot = match ctx.kind_slots.acquire(&message.kind).await {
        Slot::Full => {
            info!("every slot of this kind is busy; handing the delivery back");
            return Outcome::park_for(message, HAND_BACK);
        }
        slot => slot,
    };
    if ctx.rates.limit(&message.kind).is_some() {
        let body = message.encode();
        match ctx
            .rates
            .reserve(&ctx.db, &ctx.registry, message.job_id, &body)
            .await
        {
            Ok(Reservation::Run) => {}
            Ok(Reservation::Soon { at }) => {
                // Released a little ahead of its slot (or reserved a moment before it): the
                // rest is shorter than any park, and starting early would break the rate.
                let rest = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(rest).await;
            }
            Ok(Reservation::Wait { until, key }) => {
                info!(%until, key, "over the kind's rate limit; the job waits for its slot in Postgres");
                return Outcome::Ack;
            }
            // Nothing reserved: the delivery is tried again after a pause.
            Err(e) => return Outcome::requeue(e),
        }
    }
    let run_span = tracing::Span::current();
    let run_trace = TraceContext::of_span(&run_span);
    let claim = if ctx.caps.cap(&message.kind).is_some() {
        let body = message.encode();
        let (db, worker) = (&ctx.db, ctx.worker_id.as_str());
        match ClusterCaps::claim(
            &ctx.batcher,
            db,
            worker,
            message.job_id,
            run_trace.as_ref(),
            &body,
        )
        .await
        {
            Ok(CapClaim::Waiting { cap, busy }) => {
                info!(
                    cap,
                    busy, "the kind is at its cluster-wide cap; the job waits in Postgres"
                );
                return Outcome::Ack;
            }
            Ok(CapClaim::Claim(claim)) => Ok(claim),
            Err(e) => Err(e),
        }
    } else {
        ctx.batcher.claim(message.job_id, run_trace).await
    };
    let job = match claim {
        Ok(Claim::Claimed(claimed)) => {
            if let Some(previous) = &claimed.previous_run {
                previous.link_from(&run_span);
            }
            claimed.job
        }
        // Only a capped request answers `Full`, and ClusterCaps::claim resolves it; should one
        // come back anyway, its lock is let go and the delivery handed back.
        Ok(Claim::Full) => {
            ctx.batcher.release(message.job_id);
            info!("no slot of this kind was free; handing the delivery back");
            return Outcome::park_for(message, HAND_BACK);
        }
        Ok(Claim::Busy) => {
            info!("another delivery of this job is running; parking this one");
            return Outcome::park_for(message, DUPLICATE_PARK);
        }
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
            let failure = Failure {
                attempt: message.attempt,
                error,
                retry_after: None,
                ran: None,
            };
            return retry_or_bury(ctx, &message, failure).await;
        }
    };
    let outcome = run(ctx, &job, &message).await;
    ctx.batcher.release(job.id);
    outcome
}

/// A transient failure of attempt `attempt`.
struct Failure {
    attempt: u32,
    error: String,
    /// The handler's hint for the next attempt, instead of the backoff.
    retry_after: Option<Duration>,
    /// How long the handler ran, if it did.
    ran: Option<Duration>,
}

/// Why a run's token fired, told apart after the handler returned [`JobError::Cancelled`].
enum StopCause {
    Requested,
    TimedOut(Duration),
    HardStop,
}

/// Runs a claimed job to its outcome.
async fn run(ctx: &JobContext, job: &JobRow, message: &JobMessage) -> Outcome {
    let queue_wait_ms = (Utc::now() - message.enqueued_at).num_milliseconds();
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
        return record(ctx, job, attempt, Transition::StopRun, message, None, None).await;
    }
    let Some(handler) = ctx.registry.get(&job.kind) else {
        // Not this worker's to fail: a newer api may know kinds an older worker does not. The
        // message rests in the DLQ and can be re-driven once a worker that knows it runs.
        let reason = format!("unknown job kind {:?}", job.kind);
        warn!(outcome = "dead", "{reason}; dead-lettering");
        return bury(ctx, job.id, kind, attempt, reason, None).await;
    };
    if ctx.always_transient_file.is_some() && ctx.always_transient_file == job.file_name {
        let failure = Failure {
            attempt,
            error: "failpoint: simulated transient failure".to_owned(),
            retry_after: None,
            ran: None,
        };
        return retry_or_bury(ctx, message, failure).await;
    }

    let started = Instant::now();
    let (result, cause) = run_watched(ctx, job, handler.as_ref()).await;
    let ran = started.elapsed();
    let run_ms = ran.as_millis() as u64;
    let transient = |error: String, retry_after| Failure {
        attempt,
        error,
        retry_after,
        ran: Some(ran),
    };
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
            if let Some(rows) = output.rows {
                metrics::record_rows(kind, rows);
            }
            Outcome::Ack
        }
        Err(JobError::Permanent(reason)) => {
            info!(queue_wait_ms, run_ms, outcome = "failed", error = %reason, "job finished");
            let fail = Transition::Fail { message: &reason };
            record(ctx, job, attempt, fail, message, Some(ran), None).await
        }
        Err(JobError::PermanentWithResult { reason, result }) => {
            info!(queue_wait_ms, run_ms, outcome = "failed", error = %reason, "job finished");
            let fail = Transition::Fail { message: &reason };
            record(ctx, job, attempt, fail, message, Some(ran), Some(&result)).await
        }
        Err(JobError::Retryable(error)) => {
            retry_or_bury(ctx, message, transient(error, None)).await
        }
        Err(JobError::RetryAfter { reason, after }) => {
            retry_or_bury(ctx, message, transient(reason, Some(after))).await
        }
        Err(JobError::Snooze(after)) => {
            let until = Utc::now() + after;
            info!(
                after_ms = after.as_millis() as u64,
                "snoozed by the handler"
            );
            let snooze = Transition::Snooze { until };
            match state::apply(&ctx.db, job.id, snooze).await {
                Ok(_) => Outcome::park_until(message.clone(), until),
                Err(e) => Outcome::requeue(format!("recording the snooze: {e}")),
            }
        }
        Err(JobError::Cancelled) => match cause {
            Some(StopCause::TimedOut(limit)) => {
                let error = format!("timed out after {limit:?}");
                retry_or_bury(ctx, message, transient(error, None)).await
            }
            Some(StopCause::HardStop) => {
                warn!(
                    run_ms,
                    "run stopped by a hard stop; its message goes back to the queue"
                );
                match state::apply(&ctx.db, job.id, Transition::Interrupt).await {
                    Ok(_) => Outcome::Requeue {
                        reason: "the worker stopped hard".to_owned(),
                        pause: false,
                    },
                    Err(e) => Outcome::requeue(format!("recording the interruption: {e}")),
                }
            }
            Some(StopCause::Requested) | None => {
                record(
                    ctx,
                    job,
                    attempt,
                    Transition::StopRun,
                    message,
                    Some(ran),
                    None,
                )
                .await
            }
        },
    }
}

/// Runs the handler under its watcher (progress, cancel requests), its kind's timeout and the
/// worker's hard stop; returns its result and, if its token fired, why.
async fn run_watched(
    ctx: &JobContext,
    job: &JobRow,
    handler: &dyn ErasedHandler,
) -> (Result<JobOutput, JobError>, Option<StopCause>) {
    let (progress, requested, stop_watch) = (
        Progress::default(),
        CancellationToken::new(),
        WatchStop::default(),
    );
    let cancel = ctx.hard_stop.child_token();
    let watcher = tokio::spawn(watch_run(
        ctx.db.clone(),
        job.id,
        progress.clone(),
        requested.clone(),
        stop_watch.clone(),
    ));
    let timeout = handler.timeout();
    let limit = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    let mut cause = None;
    let result = {
        let running = run_handler(ctx, job, handler, progress, cancel.clone(), &stop_watch);
        tokio::pin!(running);
        loop {
            tokio::select! {
                result = &mut running => break result,
                () = requested.cancelled(), if cause.is_none() => {
                    cause = Some(StopCause::Requested);
                    cancel.cancel();
                }
                () = &mut limit, if cause.is_none() && timeout.is_some() => {
                    cause = timeout.map(StopCause::TimedOut);
                    cancel.cancel();
                }
                () = ctx.hard_stop.cancelled(), if cause.is_none() => {
                    cause = Some(StopCause::HardStop);
                }
            }
        }
    };
    stop_watch.cancel();
    let _ = watcher.await;
    // The handler may return before this loop saw why its token fired (the hard stop cancels
    // it directly, as its parent).
    if cause.is_none() && ctx.hard_stop.is_cancelled() {
        cause = Some(StopCause::HardStop);
    }
    (result, cause)
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
    watch: &WatchStop,
) -> Result<JobOutput, JobError> {
    let database = |e: sqlx::Error| JobError::Retryable(format!("database: {e}"));
    let mut slot: Option<Transaction<'static, Postgres>> = None;
    let run = RunContext {
        job,
        tx: RunTx::new(&ctx.db, &mut slot),
        cancel,
        progress,
    };
    let output = handler
        .run(run, job.payload.clone())
        .await?
        .within_limits()?;
    // No progress flush may land after the success below (it would outlive the run).
    let _quiet = watch.quiesce().await;
    let mut tx = match slot {
        Some(tx) => tx,
        // Capped runs too: their ends take their kinds' locks shared only, so a statement
        // ending runs of several capped kinds waits for no other end.
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
    // A span of its own: for an import, the commit is a phase as long as the COPY.
    async {
        state::succeed(&mut tx, job.id, &output).await?;
        tx.commit().await
    }
    .instrument(tracing::info_span!("commit"))
    .await
    .map_err(database)?;
    Ok(output)
}

/// Records a run's end (`failed` or `cancelled`, with the failed run's `result` file if it
/// left one) and acks; if the record fails, the attempt counts as a transient failure.
async fn record(
    ctx: &JobContext,
    job: &JobRow,
    attempt: u32,
    transition: Transition<'_>,
    message: &JobMessage,
    ran: Option<Duration>,
    result: Option<&ResultFile>,
) -> Outcome {
    let kind = metrics::kind_label(&ctx.registry, &job.kind);
    let counted = match transition {
        Transition::Fail { .. } => JobOutcome::Failed,
        _ => JobOutcome::Cancelled,
    };
    let recorded = match (transition, result) {
        (Transition::Fail { message }, Some(result)) => {
            state::fail_with_result(&ctx.db, job.id, message, result).await
        }
        _ => state::apply(&ctx.db, job.id, transition).await,
    };
    match recorded {
        Ok(_) => {
            if counted == JobOutcome::Cancelled {
                info!(
                    run_ms = ran.map(|r| r.as_millis() as u64),
                    outcome = "cancelled",
                    "job cancelled"
                );
            }
            metrics::record_outcome(kind, counted, ran);
            Outcome::Ack
        }
        Err(e) => {
            let failure = Failure {
                attempt,
                error: format!("recording the {}: {e}", transition.event()),
                retry_after: None,
                ran,
            };
            retry_or_bury(ctx, message, failure).await
        }
    }
}

/// After a transient failure: schedule the next attempt (`retrying`; the message goes to the
/// delay queue of its backoff, or is parked until the handler's hint), or, when none is left,
/// bury the job (`dead`, message to the DLQ).
async fn retry_or_bury(ctx: &JobContext, message: &JobMessage, failure: Failure) -> Outcome {
    let kind = metrics::kind_label(&ctx.registry, &message.kind);
    let policy = ctx.retry_policy(&message.kind);
    let Failure {
        attempt,
        error,
        retry_after,
        ran,
    } = failure;
    if !policy.allows_another(attempt) {
        let reason = format!(
            "attempt {attempt} of {} failed: {error}",
            policy.max_attempts
        );
        warn!(attempt, error = %error, outcome = "dead", "retries exhausted; dead-lettering");
        return bury(ctx, message.job_id, kind, attempt, reason, ran).await;
    }
    let next = message.for_attempt(attempt + 1);
    let (outcome, wait) = match retry_after {
        Some(after) => {
            let until = Utc::now() + after;
            (Outcome::park_until(next, until), after)
        }
        None => {
            let delay = policy.delay(attempt);
            let wait = policy.jittered(attempt, fastrand::f64());
            (
                Outcome::Retry {
                    message: next,
                    delay,
                    wait,
                },
                wait,
            )
        }
    };
    let retry = Transition::Retry {
        error: &error,
        next_attempt_at: Utc::now() + wait,
    };
    if let Err(e) = state::apply(&ctx.db, message.job_id, retry).await {
        // The job stays as it is; the redelivery tries again.
        warn!(error = %e, "could not record the retry; requeueing the delivery");
        return Outcome::requeue(error);
    }
    metrics::record_outcome(kind, JobOutcome::Retried, ran);
    warn!(attempt, wait_ms = wait.as_millis() as u64, error = %error, outcome = "retrying", "transient failure; retry scheduled");
    outcome
}

/// Ends the job `dead` and dead-letters its message. If the job cannot be marked (Postgres
/// down), the message still goes to the DLQ: the sweeper buries the job later.
async fn bury(
    ctx: &JobContext,
    id: uuid::Uuid,
    kind: &str,
    attempt: u32,
    reason: String,
    ran: Option<Duration>,
) -> Outcome {
    if let Err(e) = state::apply(&ctx.db, id, Transition::Bury { reason: &reason }).await {
        warn!(error = %e, "could not mark the job dead (the sweeper will)");
    }
    metrics::record_outcome(kind, JobOutcome::DeadLettered, ran);
    Outcome::DeadLetter {
        reason,
        attempts: attempt,
    }
}
