//! The worker's integration tests run on the harness all of burrow's tests share
//! ([`burrow_api::testing`]: an api on port 0 over a private database and queue names, and a
//! client for it). What only the worker's tests need is here: [`Stack`], that api plus
//! in-process workers, and two broker helpers.
#![allow(dead_code, unused_imports)]

use std::ops::Deref;
use std::time::Duration;

pub use burrow_api::state::AppState;
pub use burrow_api::testing::*;
use burrow_shared::import::ImportOptions;
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::retry::RetryPolicy;
use burrow_worker::consumer::{consume, ConsumerSettings};
use burrow_worker::process::JobContext;
use tokio_util::sync::CancellationToken;

pub mod worker_process;

/// A test's api and in-process workers; stops them when dropped. Requests and the test's
/// environment come through the api ([`TestApi`], which it derefs to).
pub struct Stack {
    api: TestApi,
    /// Stops the in-process workers only (a child of the api's token).
    worker_stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Deref for Stack {
    type Target = TestApi;

    fn deref(&self) -> &TestApi {
        &self.api
    }
}

impl Stack {
    /// An api over a fresh environment, no worker yet.
    pub async fn new() -> Stack {
        Stack::new_with(|state| state).await
    }

    /// Like [`Stack::new`], with the api's state changed by `adjust` first (e.g. its registry).
    pub async fn new_with(adjust: impl FnOnce(AppState) -> AppState) -> Stack {
        let api = TestApi::spawn_with(adjust).await;
        Stack {
            worker_stop: api.stopped(),
            api,
            workers: Vec::new(),
        }
    }

    /// Stops the in-process workers, waiting for them to drain (afterwards every delivery has
    /// been acked, rejected, or returned to its queue), and lets new ones be started.
    pub async fn stop_workers(&mut self) {
        self.worker_stop.cancel();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
        self.worker_stop = self.api.stopped();
    }

    /// Stops the api and the in-process workers, waiting for the workers to drain.
    pub async fn stop(&mut self) {
        self.api.stop();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
    }

    /// Starts an in-process worker named `worker_id` running `concurrency` jobs at once, with
    /// the shipped kinds and imports paced by `row_delay` per row.
    pub fn start_worker(&mut self, worker_id: &str, concurrency: usize, row_delay: Duration) {
        self.start_worker_with(
            JobContext {
                retry: RetryPolicy::default(),
                always_transient_file: None,
                ..JobContext::new(
                    self.env.db.clone(),
                    worker_id.to_owned(),
                    burrow_shared::kinds::shipped(
                        ImportOptions {
                            row_delay,
                            ..ImportOptions::default()
                        },
                        Default::default(),
                    ),
                )
            },
            concurrency,
        );
    }

    /// Starts an in-process worker with this context.
    /// It consumes what a worker consumes by default: the default queue and its kinds' queues.
    pub fn start_worker_with(&mut self, ctx: JobContext, concurrency: usize) {
        let mut queues = ctx.registry.queues();
        queues.push(burrow_shared::topology::DEFAULT_QUEUE);
        queues.sort_unstable();
        queues.dedup();
        self.start_worker_on(ctx, concurrency, &queues);
    }

    /// Starts an in-process worker with this context consuming `queues` (`WORKER_QUEUES`).
    pub fn start_worker_on(&mut self, ctx: JobContext, concurrency: usize, queues: &[&str]) {
        self.env.track_delays(&ctx.retry.delays());
        let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
        self.env.track_queues(&queues);
        let settings = ConsumerSettings {
            concurrency,
            prefetch: (concurrency * 2) as u16,
            drain_timeout: Duration::from_secs(5),
            hard_stop_grace: burrow_worker::consumer::HARD_STOP_GRACE,
            queues,
        };
        let (amqp, topology, stop) = (
            self.env.amqp.clone(),
            self.env.topology.clone(),
            self.worker_stop.clone(),
        );
        self.workers.push(tokio::spawn(async move {
            if let Err(e) = consume(&amqp, &topology, ctx, &settings, stop).await {
                eprintln!("worker stopped: {e:#}");
            }
        }));
    }

    /// A channel in confirm mode, for publishing test messages directly.
    pub async fn confirm_channel(&self) -> lapin::Channel {
        let connection = self.env.amqp.get().await.expect("broker connection");
        open_confirm_channel(&connection).await.expect("channel")
    }

    /// Ready messages in `queue`, polled until it holds `expected` or [`DEADLINE`] passes;
    /// the last count (the caller asserts on it).
    pub async fn wait_for_ready(&self, queue: &str, expected: u32) -> u32 {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let ready = self.env.ready_messages(queue).await.expect("queue");
            if ready == expected || tokio::time::Instant::now() >= deadline {
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (at most 60 s) until every job of `ids` has succeeded; panics with their statuses
/// otherwise.
pub async fn all_succeeded(stack: &Stack, ids: &[uuid::Uuid]) {
    let deadline = Duration::from_secs(60);
    let ended = tokio::time::timeout(deadline, async {
        loop {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'",
            )
            .bind(ids)
            .fetch_one(&stack.env.db)
            .await
            .expect("count");
            if done == ids.len() as i64 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM jobs WHERE id = ANY($1) GROUP BY status")
            .bind(ids)
            .fetch_all(&stack.env.db)
            .await
            .expect("statuses");
    assert!(ended.is_ok(), "not every job succeeded: {statuses:?}");
}
