//! Benchmark 11: what workflows cost per job, against plain noop jobs on the same api and
//! worker in the same run.
//!
//! - **11a**, fan-in: [`BATCH_MEMBERS`] noop jobs as one `POST /api/batches` with an
//!   `on_complete` callback (every member is the callback's parent, so each member's end runs
//!   the release trigger and counts down the callback's row), request → the callback's
//!   `completed_at`; against as many plain noop jobs through `POST /api/jobs/batch` (1,000 a
//!   request), first request → last `completed_at`, run before **and** after the batch, whose
//!   mean is the reference.
//! - **11b**, a chain: [`CHAIN_LINKS`] noop jobs, each depending on the one before, enqueued
//!   while no worker runs; then one worker starts, and the chain's time runs from the first
//!   link's `started_at` to the last one's `completed_at`. Every link is a full round trip (the
//!   end's transaction releases the next, whose message goes through the outbox relay and the
//!   broker to the worker), so the time per link is workflows' hand-off latency. Context only.
//!
//! One api and one worker with its defaults serve all four runs.

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::timed_jobs::{noop_jobs_timed, timed, wait_succeeded, Timed};
use crate::report::{Row, Verdict};
use crate::stack::{Stack, STOP_GRACE};
use crate::stats::{before_after, rate, thousands};

/// Target of 11a: the batch's jobs per second reach this share of plain noop jobs'.
pub const TARGET_RATIO: f64 = 0.7;
/// Members of 11a's batch (the largest batch there is), and plain jobs on each side of it.
pub const BATCH_MEMBERS: u64 = 10_000;
/// Links of 11b's chain.
pub const CHAIN_LINKS: u64 = 1_000;

/// What benchmark 11 measured.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowsBench {
    /// 11a: the batch with its `on_complete` callback.
    pub batch: Timed,
    /// 11a's reference: plain noop jobs before the batch.
    pub plain_before: Timed,
    /// And after it.
    pub plain_after: Timed,
    /// The mean jobs per second of the two plain runs.
    pub plain_per_sec: f64,
    /// `batch.jobs_per_sec / plain_per_sec`.
    pub ratio: f64,
    /// 11b: the chain.
    pub chain: Timed,
    /// 11b: milliseconds per link, `chain.secs × 1000 / CHAIN_LINKS`.
    pub ms_per_link: f64,
}

/// Runs benchmark 11.
///
/// # Errors
/// If a process does not start, a request fails, a job does not succeed, or a run passes
/// its deadline.
pub async fn run(stack: &Stack) -> anyhow::Result<WorkflowsBench> {
    let api = stack.start_api("workflows-api", &[]).await?;
    let client = &api.client;

    // 11b first: its links must all be stored before a worker consumes anything.
    println!(
        "  chain: {} noop jobs, each depending on the one before, then 1 worker (defaults)",
        thousands(CHAIN_LINKS)
    );
    let enqueue_started = Instant::now();
    let mut parent: Option<Uuid> = None;
    for _ in 0..CHAIN_LINKS {
        let mut body = json!({"kind": "noop", "user_id": "bench-wf-chain"});
        if let Some(parent) = parent {
            body["depends_on"] = json!([parent]);
        }
        parent = Some(client.enqueue(&body).await?.id);
    }
    let enqueue_secs = enqueue_started.elapsed().as_secs_f64();
    let mut worker = stack.start_worker("workflows-worker", &[]).await?;
    let (jobs, first_started, last_completed) =
        wait_succeeded(stack, "bench-wf-chain", CHAIN_LINKS, &mut worker).await?;
    let first_started = first_started.ok_or_else(|| anyhow::anyhow!("no link started"))?;
    let chain = timed(jobs, enqueue_secs, first_started, last_completed);
    let ms_per_link = chain.secs * 1000.0 / CHAIN_LINKS as f64;
    println!("    {:.1} s: {ms_per_link:.2} ms per link", chain.secs);

    let plain_before = noop_jobs_timed(
        stack,
        client,
        &mut worker,
        BATCH_MEMBERS,
        "bench-wf-plain-1",
    )
    .await?;
    println!(
        "  batch: {} noop members and an on_complete noop, one POST /api/batches",
        thousands(BATCH_MEMBERS)
    );
    let tag = "bench-wf-batch";
    let job = json!({"kind": "noop", "user_id": tag});
    let body = json!({
        "jobs": vec![job.clone(); BATCH_MEMBERS as usize],
        "on_complete": job,
        "user_id": tag,
    });
    let started_at = Utc::now();
    let started = Instant::now();
    client.create_batch(&body).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    let (jobs, _, last_completed) =
        wait_succeeded(stack, tag, BATCH_MEMBERS + 1, &mut worker).await?;
    let batch = timed(jobs, enqueue_secs, started_at, last_completed);
    println!(
        "    {:.1} s: {} jobs/s",
        batch.secs,
        rate(batch.jobs_per_sec)
    );
    let plain_after = noop_jobs_timed(
        stack,
        client,
        &mut worker,
        BATCH_MEMBERS,
        "bench-wf-plain-2",
    )
    .await?;

    worker.stop(STOP_GRACE).await?;
    api.stop().await?;
    let plain_per_sec = (plain_before.jobs_per_sec + plain_after.jobs_per_sec) / 2.0;
    Ok(WorkflowsBench {
        ratio: batch.jobs_per_sec / plain_per_sec,
        batch,
        plain_before,
        plain_after,
        plain_per_sec,
        chain,
        ms_per_link,
    })
}

impl WorkflowsBench {
    /// Rows 11a and 11b of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            Row {
                id: "11a",
                benchmark: format!(
                    "workflow batch: {} noop members + on_complete, 1 worker (defaults) → callback succeeded",
                    thousands(BATCH_MEMBERS)
                ),
                burrow: format!(
                    "{} jobs/s ({:.1} s)",
                    rate(self.batch.jobs_per_sec),
                    self.batch.secs
                ),
                reference: format!(
                    "{} plain noop jobs, same api and worker: {} jobs/s ({})",
                    thousands(BATCH_MEMBERS),
                    rate(self.plain_per_sec),
                    before_after(self.plain_before.secs, self.plain_after.secs)
                ),
                ratio: Some(self.ratio),
                target: format!("≥ {TARGET_RATIO:.2}× plain"),
                verdict: Verdict::from_bool(self.ratio >= TARGET_RATIO),
            },
            Row {
                id: "11b",
                benchmark: format!(
                    "chain of {} noop jobs, each depending on the one before: first start → last end",
                    thousands(CHAIN_LINKS)
                ),
                burrow: format!(
                    "{:.2} ms per link ({:.1} s)",
                    self.ms_per_link, self.chain.secs
                ),
                reference: "—".to_owned(),
                ratio: None,
                target: "reported".to_owned(),
                verdict: Verdict::Context,
            },
        ]
    }

    /// How long the enqueues took, and the batch's rate once it was stored.
    pub fn details(&self) -> Vec<String> {
        let after_commit = self.batch.secs - self.batch.enqueue_secs;
        vec![
            // The members wait for the one transaction that stores them all, while plain jobs
            // run as their requests come in: this separates that wait from the run itself.
            format!(
                "11a after the batch's commit: {} jobs in {after_commit:.1} s, {} jobs/s",
                thousands(self.batch.jobs),
                rate(self.batch.jobs as f64 / after_commit.max(1e-6))
            ),
            format!(
                "11 enqueue: the {}-link chain stored in {:.1} s ({} requests), the batch in {:.1} s (1 request), plain jobs in {:.1} s / {:.1} s",
                thousands(CHAIN_LINKS),
                self.chain.enqueue_secs,
                thousands(CHAIN_LINKS),
                self.batch.enqueue_secs,
                self.plain_before.enqueue_secs,
                self.plain_after.enqueue_secs,
            ),
        ]
    }
}
