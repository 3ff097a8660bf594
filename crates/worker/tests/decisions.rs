//! What a delivery comes to, decided without the broker: `process_delivery` driven directly
//! with handlers defined here, against the real Postgres. Each test checks the [`Outcome`]
//! value and the job's state and history; where a run must be "inside" its handler, a
//! oneshot tells the test so (no sleeps).

use std::sync::Arc;
use std::time::Duration;

use burrow_shared::handler::{JobError, JobHandler, JobOutput, Registry, RunContext};
use burrow_shared::job_lock::JobLock;
use burrow_shared::jobs::{self, JobRow};
use burrow_shared::park::PARK_STEPS;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::testing::TestEnv;
use burrow_shared::{JobMessage, JobStatus, NewJob};
use burrow_worker::outcome::Outcome;
use burrow_worker::process::{process_delivery, JobContext, DUPLICATE_PARK};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Mutex};
use uuid::Uuid;

/// What the test handler does, chosen per job by its payload.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Act {
    Succeed,
    WriteAndSucceed,
    Transient,
    Permanent,
    Snooze,
    RetryAfter,
    /// Tell the test it runs, then wait for the token and return `Cancelled`.
    WaitForCancel,
}

#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    act: Act,
}

/// The test kind. `running` is told when a `WaitForCancel` run has started.
#[derive(Default)]
struct Scripted {
    running: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    timeout: Option<Duration>,
    policy: Option<RetryPolicy>,
}

impl JobHandler for Scripted {
    const KIND: &'static str = "scripted";
    type Payload = Plan;

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        self.policy.clone()
    }

    async fn run(&self, mut ctx: RunContext<'_>, plan: Plan) -> Result<JobOutput, JobError> {
        match plan.act {
            Act::Succeed => Ok(JobOutput::default()),
            Act::WriteAndSucceed => {
                let conn = ctx.tx.conn().await?;
                sqlx::query("CREATE TABLE IF NOT EXISTS written (job uuid PRIMARY KEY)")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| JobError::Retryable(e.to_string()))?;
                sqlx::query("INSERT INTO written VALUES ($1)")
                    .bind(ctx.job.id)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| JobError::Retryable(e.to_string()))?;
                Ok(JobOutput {
                    message: "wrote".to_owned(),
                    ..JobOutput::default()
                })
            }
            Act::Transient => Err(JobError::Retryable("upstream down".to_owned())),
            Act::Permanent => Err(JobError::Permanent("bad input".to_owned())),
            Act::Snooze => Err(JobError::Snooze(Duration::from_secs(30))),
            Act::RetryAfter => Err(JobError::RetryAfter {
                reason: "rate limited".to_owned(),
                after: Duration::from_secs(7),
            }),
            Act::WaitForCancel => {
                if let Some(running) = self.running.lock().await.take() {
                    let _ = running.send(());
                }
                ctx.cancel.cancelled().await;
                Err(JobError::Cancelled)
            }
        }
    }
}

struct Harness {
    env: TestEnv,
    ctx: JobContext,
}

impl Harness {
    async fn new(handler: Scripted, retry: RetryPolicy) -> Harness {
        let env = TestEnv::new().await.expect("test services");
        let registry = Registry::default().register(handler);
        let ctx = JobContext {
            retry,
            ..JobContext::new(env.db.clone(), "test-worker", registry)
        };
        Harness { env, ctx }
    }

    /// A stored `scripted` job doing `act`, and its first message.
    async fn job(&self, act: Act) -> (Uuid, JobMessage) {
        let job = NewJob::of::<Scripted>(&Plan { act }).expect("payload");
        let message = job.first_message();
        let stored = self.env.insert_job(job).await.expect("insert");
        (stored.id, message)
    }

    async fn deliver(&self, message: &JobMessage) -> Outcome {
        process_delivery(&self.ctx, &message.encode(), None).await
    }

    async fn row(&self, id: Uuid) -> JobRow {
        jobs::find_job(&self.env.db, id)
            .await
            .expect("db")
            .expect("job")
    }

    async fn events(&self, id: Uuid) -> Vec<String> {
        jobs::list_events(&self.env.db, id)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event)
            .collect()
    }
}

/// A `WaitForCancel` job delivered on a task; returns once its run is inside the handler.
async fn start_waiting_run() -> (Harness, Uuid, tokio::task::JoinHandle<Outcome>) {
    let (running, started) = oneshot::channel();
    let handler = Scripted {
        running: Arc::new(Mutex::new(Some(running))),
        ..Scripted::default()
    };
    let h = Harness::new(handler, RetryPolicy::default()).await;
    let (id, message) = h.job(Act::WaitForCancel).await;
    let ctx = h.ctx.clone();
    let body = message.encode();
    let delivery = tokio::spawn(async move { process_delivery(&ctx, &body, None).await });
    started.await.expect("the run started");
    (h, id, delivery)
}

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn a_success_is_acked_and_what_the_run_wrote_commits_with_it() {
    let h = Harness::new(Scripted::default(), RetryPolicy::default()).await;
    let (plain, message) = h.job(Act::Succeed).await;
    assert_eq!(h.deliver(&message).await, Outcome::Ack);
    let (writer, message) = h.job(Act::WriteAndSucceed).await;
    assert_eq!(h.deliver(&message).await, Outcome::Ack);
    for id in [plain, writer] {
        assert_eq!(h.row(id).await.status, JobStatus::Succeeded);
        assert_eq!(h.events(id).await, ["queued", "processing", "succeeded"]);
    }
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM written WHERE job = $1")
        .bind(writer)
        .fetch_one(&h.env.db)
        .await
        .expect("count");
    assert_eq!(written, 1);
    // A redelivery of an ended job is acked without running it again.
    assert_eq!(h.deliver(&message).await, Outcome::Ack);
    assert_eq!(h.row(writer).await.attempts, 1);
}

#[tokio::test]
async fn a_transient_error_schedules_the_next_attempt_in_its_backoff_queue() {
    let h = Harness::new(Scripted::default(), RetryPolicy::default()).await;
    let (id, message) = h.job(Act::Transient).await;
    match h.deliver(&message).await {
        Outcome::Retry {
            message: next,
            delay,
            wait,
        } => {
            assert_eq!(next.attempt, 2);
            assert_eq!(delay, RetryPolicy::default().delay(1));
            assert!(wait <= delay);
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    let row = h.row(id).await;
    assert_eq!(row.status, JobStatus::Retrying);
    assert_eq!(row.last_error.as_deref(), Some("upstream down"));
    assert_eq!(h.events(id).await, ["queued", "processing", "retrying"]);
}

#[tokio::test]
async fn a_kinds_own_retry_policy_wins_over_the_workers() {
    let kind_policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let handler = Scripted {
        policy: Some(kind_policy),
        ..Scripted::default()
    };
    let h = Harness::new(handler, RetryPolicy::default()).await;
    let (id, message) = h.job(Act::Transient).await;
    match h.deliver(&message).await {
        Outcome::DeadLetter { reason, attempts } => {
            assert_eq!(attempts, 1);
            assert!(reason.contains("attempt 1 of 1"), "{reason}");
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    assert_eq!(h.row(id).await.status, JobStatus::Dead);
    assert_eq!(h.events(id).await, ["queued", "processing", "dead"]);
}

#[tokio::test]
async fn a_permanent_error_fails_the_job_and_acks() {
    let h = Harness::new(Scripted::default(), RetryPolicy::default()).await;
    let (id, message) = h.job(Act::Permanent).await;
    assert_eq!(h.deliver(&message).await, Outcome::Ack);
    let row = h.row(id).await;
    assert_eq!(row.status, JobStatus::Failed);
    assert_eq!(row.message.as_deref(), Some("bad input"));
}

#[tokio::test]
async fn a_snooze_parks_the_job_and_gives_its_attempt_back() {
    let h = Harness::new(Scripted::default(), one_attempt()).await;
    let (id, message) = h.job(Act::Snooze).await;
    let before = chrono::Utc::now();
    match h.deliver(&message).await {
        Outcome::Park {
            message: parked,
            delay,
            wait,
        } => {
            assert_eq!(parked.attempt, 1, "the same attempt");
            let run_at = parked.run_at.expect("run_at");
            assert!(run_at >= before + chrono::Duration::seconds(30));
            assert_eq!(delay, Duration::from_secs(30), "one hop");
            assert!(wait <= delay && wait > Duration::from_secs(29));
        }
        other => panic!("expected a park, got {other:?}"),
    }
    let row = h.row(id).await;
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.attempts, 0, "a snooze costs no attempt");
    assert_eq!(h.events(id).await, ["queued", "processing", "snoozed"]);
    // Snoozing again and again never runs out of attempts (the policy allows one).
    for _ in 0..3 {
        let again = JobMessage {
            run_at: None,
            ..message.clone()
        };
        assert!(matches!(h.deliver(&again).await, Outcome::Park { .. }));
    }
    assert_eq!(h.row(id).await.status, JobStatus::Queued);
}

#[tokio::test]
async fn a_retry_after_hint_replaces_the_backoff() {
    let h = Harness::new(Scripted::default(), RetryPolicy::default()).await;
    let (id, message) = h.job(Act::RetryAfter).await;
    match h.deliver(&message).await {
        Outcome::Park {
            message: next,
            delay,
            ..
        } => {
            assert_eq!(next.attempt, 2, "the attempt counts");
            assert!(next.run_at.is_some());
            assert_eq!(
                delay,
                Duration::from_secs(5),
                "the longest park step within 7 s"
            );
        }
        other => panic!("expected a park, got {other:?}"),
    }
    assert_eq!(h.row(id).await.status, JobStatus::Retrying);
}

#[tokio::test]
async fn run_at_parks_the_message_even_without_retry_delays() {
    // RETRY_MAX_ATTEMPTS=1: the retry policy has no delay queue at all.
    assert!(one_attempt().delays().is_empty());
    let h = Harness::new(Scripted::default(), one_attempt()).await;
    let (id, message) = h.job(Act::Succeed).await;
    let later = JobMessage {
        run_at: Some(chrono::Utc::now() + chrono::Duration::seconds(5)),
        ..message
    };
    match h.deliver(&later).await {
        Outcome::Park { delay, wait, .. } => {
            assert!(PARK_STEPS.contains(&delay));
            assert!(wait <= Duration::from_secs(5));
        }
        other => panic!("a job due in 5 s must not run now: {other:?}"),
    }
    let row = h.row(id).await;
    assert_eq!(
        (row.status, row.attempts),
        (JobStatus::Queued, 0),
        "not claimed"
    );
}

#[tokio::test]
async fn a_duplicate_of_a_running_job_is_parked_even_without_retry_delays() {
    let h = Harness::new(Scripted::default(), one_attempt()).await;
    let (id, message) = h.job(Act::Succeed).await;
    let held = JobLock::try_acquire(&h.env.db, id)
        .await
        .expect("db")
        .expect("lock");
    match h.deliver(&message).await {
        Outcome::Park {
            message: parked,
            delay,
            ..
        } => {
            assert_eq!(parked, message, "parked unchanged");
            assert_eq!(delay, DUPLICATE_PARK);
        }
        other => panic!("a copy of a running job must wait, not be acked: {other:?}"),
    }
    held.release().await;
    assert_eq!(
        h.deliver(&message).await,
        Outcome::Ack,
        "runs once the lock is free"
    );
    assert_eq!(h.row(id).await.status, JobStatus::Succeeded);
}

#[tokio::test]
async fn a_kinds_timeout_cancels_the_run_and_counts_as_a_transient_failure() {
    let handler = Scripted {
        timeout: Some(Duration::from_millis(50)),
        ..Scripted::default()
    };
    let h = Harness::new(handler, RetryPolicy::default()).await;
    let (id, message) = h.job(Act::WaitForCancel).await;
    assert!(matches!(h.deliver(&message).await, Outcome::Retry { .. }));
    let row = h.row(id).await;
    assert_eq!(row.status, JobStatus::Retrying);
    assert_eq!(row.last_error.as_deref(), Some("timed out after 50ms"));
}

#[tokio::test]
async fn a_hard_stop_requeues_the_run_and_gives_its_attempt_back() {
    let (h, id, delivery) = start_waiting_run().await;
    h.ctx.hard_stop.cancel();
    let outcome = delivery.await.expect("task");
    assert!(
        matches!(outcome, Outcome::Requeue { pause: false, .. }),
        "{outcome:?}"
    );
    let row = h.row(id).await;
    assert_eq!((row.status, row.attempts), (JobStatus::Queued, 0));
    assert_eq!(h.events(id).await, ["queued", "processing", "interrupted"]);
}

#[tokio::test]
async fn a_cancel_request_stops_the_run_and_ends_the_job_cancelled() {
    let (h, id, delivery) = start_waiting_run().await;
    assert!(burrow_shared::state::request_cancel(&h.env.db, id)
        .await
        .expect("db"));
    assert_eq!(delivery.await.expect("task"), Outcome::Ack);
    assert_eq!(h.row(id).await.status, JobStatus::Cancelled);
    assert_eq!(
        h.events(id).await,
        ["queued", "processing", "cancel_requested", "cancelled"]
    );
}

#[tokio::test]
async fn garbage_and_unknown_jobs_are_dead_lettered() {
    let h = Harness::new(Scripted::default(), RetryPolicy::default()).await;
    assert!(matches!(
        process_delivery(&h.ctx, b"not json", None).await,
        Outcome::DeadLetter { attempts: 0, .. }
    ));
    let ghost = JobMessage::new(Uuid::now_v7(), "scripted", Uuid::new_v4());
    assert!(matches!(
        h.deliver(&ghost).await,
        Outcome::DeadLetter { attempts: 0, .. }
    ));
    let stranger = h
        .env
        .insert_job(NewJob::new("nobody_runs_this"))
        .await
        .expect("insert");
    let message = JobMessage::new(stranger.id, "nobody_runs_this", stranger.correlation_id);
    assert!(matches!(
        h.deliver(&message).await,
        Outcome::DeadLetter { .. }
    ));
    assert_eq!(h.row(stranger.id).await.status, JobStatus::Dead);
}
