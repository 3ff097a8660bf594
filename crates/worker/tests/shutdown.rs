//! The worker's stop, end to end against the real services: the soft stop lets a run finish
//! within the drain timeout; after it, the hard stop cancels the runs' tokens and their jobs go
//! back to the queue with their attempt given back.

use std::sync::Arc;
use std::time::Duration;

use burrow_shared::handler::{JobError, JobHandler, JobOutput, RunContext};
use burrow_shared::testing::TestEnv;
use burrow_shared::{enqueue, jobs, JobStatus, NewJob};
use burrow_worker::Worker;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Mutex};
use tokio_util::sync::CancellationToken;

/// Tells the test it runs, then holds on until its token fires (or `finish` is told).
struct Stubborn {
    started: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    finish: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Nothing {}

impl JobHandler for Stubborn {
    const KIND: &'static str = "stubborn";
    type Payload = Nothing;

    async fn run(&self, ctx: RunContext<'_>, _: Nothing) -> Result<JobOutput, JobError> {
        if let Some(started) = self.started.lock().await.take() {
            let _ = started.send(());
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => Err(JobError::Cancelled),
            () = self.finish.notified() => Ok(JobOutput::default()),
        }
    }
}

/// A worker running [`Stubborn`] with `drain`, started on a stored job; returns when the run
/// has started.
async fn start(
    env: &TestEnv,
    drain: Duration,
) -> (
    uuid::Uuid,
    CancellationToken,
    Arc<tokio::sync::Notify>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (started, running) = oneshot::channel();
    let finish = Arc::new(tokio::sync::Notify::new());
    let handler = Stubborn {
        started: Arc::new(Mutex::new(Some(started))),
        finish: finish.clone(),
    };
    let mut tx = env.db.begin().await.expect("begin");
    let job = enqueue(
        &mut tx,
        NewJob::of::<Stubborn>(&Nothing {}).expect("payload"),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    let worker = Worker::builder(env.db.clone(), env.amqp_url.clone())
        .register(handler)
        .queue_prefix(env.topology.prefix())
        .drain_timeout(drain)
        .build()
        .await
        .expect("worker");
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(worker.run(shutdown.clone()));
    running.await.expect("the run started");
    (job.job.id, shutdown, finish, run)
}

/// Stops the worker (`shutdown` must be cancelled) and returns the job as it ended up.
async fn stopped(
    env: &TestEnv,
    id: uuid::Uuid,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> jobs::JobRow {
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stopped")
        .expect("task")
        .expect("run");
    jobs::find_job(&env.db, id).await.expect("db").expect("job")
}

async fn events(env: &TestEnv, id: uuid::Uuid) -> Vec<String> {
    jobs::list_events(&env.db, id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .collect()
}

#[tokio::test]
async fn after_the_drain_timeout_the_run_is_cancelled_and_its_job_goes_back_to_the_queue() {
    let env = TestEnv::new().await.expect("test services");
    let (id, shutdown, _finish, run) = start(&env, Duration::from_millis(200)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stopped")
        .expect("task")
        .expect("run");
    let job = jobs::find_job(&env.db, id).await.expect("db").expect("job");
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Queued, 0),
        "{job:?}"
    );
    assert_eq!(
        events(&env, id).await,
        ["queued", "processing", "interrupted"]
    );
    let ready = env
        .ready_messages(&env.topology.work_queue)
        .await
        .expect("queue");
    assert_eq!(ready, 1, "the message is back in the work queue");
}

#[tokio::test]
async fn a_run_that_finishes_within_the_drain_timeout_succeeds() {
    let env = TestEnv::new().await.expect("test services");
    let (id, shutdown, finish, run) = start(&env, Duration::from_secs(30)).await;
    shutdown.cancel();
    finish.notify_one();
    assert_eq!(stopped(&env, id, run).await.status, JobStatus::Succeeded);
}
