//! Queues per kind end to end: a kind declared on the queue `imports` travels through that
//! queue's work queues only, is run only by the worker consuming `imports` (`WORKER_QUEUES`),
//! and its retry comes back to `imports` through `imports`' own delay queue. Two in-process
//! workers register the same kinds, so only the routing decides who runs what.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_shared::enqueue::{enqueue, NewJob};
use burrow_shared::handler::{JobError, JobHandler, JobOutput, Registry, RunContext};
use burrow_shared::kinds::{Noop, NoopPayload};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::topology::{Lane, DEFAULT_QUEUE};
use burrow_shared::JobStatus;
use burrow_worker::process::JobContext;
use serde::Deserialize;
use support::{all_succeeded, Stack};
use uuid::Uuid;

/// Jobs of each kind.
const JOBS: usize = 6;
/// The one retry delay of the workers' policy: short, and its own delay queue.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Who ran which attempt of which job: `(job, attempt, worker)`.
type Runs = Arc<Mutex<Vec<(Uuid, i32, String)>>>;

#[derive(Deserialize)]
struct Payload {
    /// Fail the first attempt (retryable), succeed the second.
    #[serde(default)]
    fail_first: bool,
}

/// A kind on the queue `imports`, recording who ran each attempt.
struct OnImports {
    runs: Runs,
}

impl JobHandler for OnImports {
    const KIND: &'static str = "on_imports";
    const QUEUE: &'static str = "imports";
    type Payload = Payload;

    async fn run(&self, ctx: RunContext<'_>, payload: Payload) -> Result<JobOutput, JobError> {
        let job = ctx.job;
        let worker = job.worker.clone().unwrap_or_default();
        self.runs
            .lock()
            .expect("runs")
            .push((job.id, job.attempts, worker));
        if payload.fail_first && job.attempts == 1 {
            return Err(JobError::Retryable("first attempt fails".to_owned()));
        }
        Ok(JobOutput::default())
    }
}

/// A worker context named `worker_id` running `OnImports` (recording into `runs`) and `Noop`,
/// retrying once after [`RETRY_DELAY`].
fn context(stack: &Stack, worker_id: &str, runs: &Runs) -> JobContext {
    let registry = Registry::default()
        .register(OnImports { runs: runs.clone() })
        .register(Noop);
    JobContext {
        retry: RetryPolicy {
            base: RETRY_DELAY,
            cap: RETRY_DELAY,
            max_attempts: 2,
            ..RetryPolicy::default()
        },
        ..JobContext::new(stack.env.db.clone(), worker_id, registry)
    }
}

/// Enqueues `n` jobs of each kind in one transaction; `(on_imports ids, noop ids)`.
async fn enqueue_both(stack: &Stack, n: usize, fail_first: bool) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut tx = stack.env.db.begin().await.expect("tx");
    let (mut imports, mut noops) = (Vec::new(), Vec::new());
    for i in 0..n {
        let on_imports = NewJob {
            payload: serde_json::json!({ "fail_first": fail_first }),
            queue: OnImports::QUEUE.to_owned(),
            ..NewJob::new(OnImports::KIND)
        }
        // Both lanes of the queue.
        .priority(if i % 2 == 0 { 0 } else { 7 });
        imports.push(enqueue(&mut tx, on_imports).await.expect("enqueue").job.id);
        let noop = NewJob::of::<Noop>(&NoopPayload {}).expect("noop");
        noops.push(enqueue(&mut tx, noop).await.expect("enqueue").job.id);
    }
    tx.commit().await.expect("commit");
    (imports, noops)
}

/// A stack (the test environment declares the shipped kinds' queues, `imports` among them, so
/// the relay can publish at once; the workers declare their delay queues) with `JOBS` jobs of
/// each kind enqueued; `(stack, runs, on_imports ids, noop ids)`.
async fn prepare(fail_first: bool) -> (Stack, Runs, Vec<Uuid>, Vec<Uuid>) {
    let stack = Stack::new().await;
    let (imports, noops) = enqueue_both(&stack, JOBS, fail_first).await;
    (stack, Runs::default(), imports, noops)
}

/// Starts `worker-default` consuming the default queue and `worker-imports` consuming
/// `imports`, both registering both kinds.
fn start_workers(stack: &mut Stack, runs: &Runs) {
    let small = context(stack, "worker-default", runs);
    stack.start_worker_on(small, 4, &[DEFAULT_QUEUE]);
    let big = context(stack, "worker-imports", runs);
    stack.start_worker_on(big, 4, &["imports"]);
}

/// The most messages seen ready in `queues` at once, polled every 20 ms until every
/// `on_imports` job has succeeded (or 60 s passed).
async fn most_waiting(stack: &Stack, queues: &[String]) -> u32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while tokio::time::Instant::now() < deadline {
        let mut waiting = 0;
        for queue in queues {
            // Missing until the worker consuming `imports` has declared it: none waiting.
            waiting += stack.env.ready_messages(queue).await.unwrap_or(0);
        }
        most = most.max(waiting);
        let succeeded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = $1 AND status = 'succeeded'",
        )
        .bind(OnImports::KIND)
        .fetch_one(&stack.env.db)
        .await
        .expect("count");
        if succeeded == JOBS as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    most
}

/// The workers of every run of `ids`.
fn workers_of(runs: &Runs, ids: &[Uuid]) -> Vec<String> {
    let runs = runs.lock().expect("runs");
    runs.iter()
        .filter(|(id, _, _)| ids.contains(id))
        .map(|(_, _, worker)| worker.clone())
        .collect()
}

#[tokio::test]
async fn a_kind_on_its_own_queue_runs_only_on_the_worker_consuming_that_queue() {
    let (mut stack, runs, imports, noops) = prepare(false).await;
    // The messages wait in the queue of their kind: none in the other's.
    let imports_queues = [Lane::Normal, Lane::High].map(|lane| {
        stack
            .env
            .topology
            .work_queue_in("imports", lane)
            .into_owned()
    });
    for queue in &imports_queues {
        assert_eq!(
            stack.wait_for_ready(queue, JOBS as u32 / 2).await,
            JOBS as u32 / 2,
            "{queue}"
        );
    }
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.work_queue, JOBS as u32)
            .await,
        JOBS as u32,
        "the default queue holds the noop jobs only"
    );

    start_workers(&mut stack, &runs);
    all_succeeded(&stack, &imports).await;
    all_succeeded(&stack, &noops).await;

    let ran_imports = workers_of(&runs, &imports);
    assert_eq!(ran_imports.len(), JOBS, "each ran once: {ran_imports:?}");
    assert!(
        ran_imports.iter().all(|w| w == "worker-imports"),
        "{ran_imports:?}"
    );
    let noop_workers: Vec<Option<String>> =
        sqlx::query_scalar("SELECT worker FROM jobs WHERE id = ANY($1)")
            .bind(&noops)
            .fetch_all(&stack.env.db)
            .await
            .expect("workers");
    assert!(
        noop_workers
            .iter()
            .all(|w| w.as_deref() == Some("worker-default")),
        "{noop_workers:?}"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT queue FROM jobs WHERE id = ANY($1)")
        .bind(&imports)
        .fetch_all(&stack.env.db)
        .await
        .expect("queues");
    assert!(stored.iter().all(|q| q == "imports"), "{stored:?}");
    stack.stop().await;
}

#[tokio::test]
async fn a_retry_comes_back_to_its_queue_through_that_queues_delay_queue() {
    let (mut stack, runs, imports, noops) = prepare(true).await;
    // Watches the delay queues of `imports`: the most retries seen waiting in them.
    let imports_delay = Lane::ALL.map(|lane| {
        stack
            .env
            .topology
            .delay_queue_in("imports", lane, RETRY_DELAY)
    });
    // Both workers register the kind: a retry sent to the default queue's delay queue would
    // come back to the default queue and run on `worker-default`.
    start_workers(&mut stack, &runs);
    let (seen, ()) = tokio::join!(
        most_waiting(&stack, &imports_delay),
        all_succeeded(&stack, &imports)
    );
    all_succeeded(&stack, &noops).await;

    let ran = workers_of(&runs, &imports);
    assert_eq!(ran.len(), 2 * JOBS, "two attempts each: {ran:?}");
    assert!(ran.iter().all(|w| w == "worker-imports"), "{ran:?}");
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND attempts = 2 AND status = $2",
    )
    .bind(&imports)
    .bind(JobStatus::Succeeded.as_str())
    .fetch_one(&stack.env.db)
    .await
    .expect("count");
    assert_eq!(retried, JOBS as i64);
    assert!(
        seen > 0,
        "the retries waited in {imports_delay:?}, the delay queues of `imports`"
    );
    stack.stop().await;
}
