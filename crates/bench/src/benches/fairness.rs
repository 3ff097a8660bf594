//! Benchmark 13: fair sharing between tenants (issue 14's target: with tenant A's 10,000 jobs
//! queued first, tenant B's 100 wait at p95 at most twice as long as when B is alone, while A
//! keeps the workers busy).
//!
//! One api and one worker, both with `FAIR_SHARE_WINDOW` ([`WINDOW`]), the worker running
//! [`CONCURRENCY`] `sleep` jobs of [`SLEEP_MS`] at once with a prefetch of the same (see
//! `burrow_shared::engine::fair_share` for why). Three runs:
//! 1. B alone: [`B_JOBS`] jobs; the reference.
//! 2. A's [`A_JOBS`] jobs, then B's: B's p95 wait against run 1's is the row's ratio. The
//!    workers' throughput while B's jobs are in (all tenants), against run 3's, shows A using
//!    the capacity B leaves.
//! 3. The same without fair sharing (a new api and worker with the window 0), for context: B
//!    waits behind all of A.
//!
//! A job's wait is `started_at − created_at`, from its row. Between runs the job tables are
//! emptied and the work queue purged.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::timed_jobs::wait_succeeded;
use crate::client::ApiClient;
use crate::process::Service;
use crate::report::{Row, Verdict};
use crate::stack::{Stack, STOP_GRACE};
use crate::stats::{rate, thousands};

/// Target: B's p95 wait behind A at most this many times B's alone.
pub const TARGET_RATIO: f64 = 2.0;
/// Tenant A's burst.
pub const A_JOBS: u64 = 10_000;
/// Tenant B's jobs.
pub const B_JOBS: u64 = 100;
/// Each job sleeps this long (milliseconds).
pub const SLEEP_MS: u64 = 20;
/// Jobs the worker runs at once (and its prefetch).
pub const CONCURRENCY: u32 = 16;
/// `FAIR_SHARE_WINDOW`: messages ready in the work queues at most. Three times the
/// concurrency: the relay refills the window every 10 ms or so, and a smaller one (16 was
/// tried) left the worker idle between refills (344 jobs/s against 559 without fair sharing).
pub const WINDOW: u32 = 48;
/// Tenant A's jobs per `POST /api/jobs/batch`.
const PER_REQUEST: u64 = 1_000;

/// One run's figures for tenant B (and everyone's throughput meanwhile).
#[derive(Debug, Clone, Serialize)]
pub struct TenantRun {
    /// B's median wait, milliseconds.
    pub p50_wait_ms: f64,
    /// B's 95th-percentile wait, milliseconds.
    pub p95_wait_ms: f64,
    /// Jobs of any tenant completed per second from B's first enqueue to B's last completion.
    pub busy_jobs_per_sec: f64,
}

/// What benchmark 13 measured.
#[derive(Debug, Clone, Serialize)]
pub struct FairnessBench {
    /// B alone, fair sharing on.
    pub b_alone: TenantRun,
    /// B after A's burst, fair sharing on.
    pub b_behind_a: TenantRun,
    /// B after A's burst, fair sharing off.
    pub b_behind_a_unfair: TenantRun,
    /// `b_behind_a.p95_wait_ms / b_alone.p95_wait_ms`.
    pub ratio: f64,
    /// What the worker can run: `CONCURRENCY × 1000 / SLEEP_MS` jobs/s.
    pub capacity_per_sec: f64,
}

/// Runs benchmark 13.
///
/// # Errors
/// If a process does not start, a request fails, a job does not succeed, or a run passes
/// its deadline.
pub async fn run(stack: &Stack) -> anyhow::Result<FairnessBench> {
    let fair = WINDOW.to_string();
    println!("  fair sharing on: FAIR_SHARE_WINDOW={fair}, {CONCURRENCY} × sleep {SLEEP_MS} ms");
    let (b_alone, b_behind_a) = {
        let (api, mut worker) = start(stack, &fair).await?;
        let alone = tenant_b(stack, &api.client, &mut worker, "bench-fair-b-alone").await?;
        flood(&api.client, "bench-fair-a").await?;
        let behind = tenant_b(stack, &api.client, &mut worker, "bench-fair-b").await?;
        worker.stop(STOP_GRACE).await?;
        api.stop().await?;
        reset(stack).await?;
        (alone, behind)
    };
    println!("  fair sharing off");
    let b_behind_a_unfair = {
        let (api, mut worker) = start(stack, "0").await?;
        flood(&api.client, "bench-unfair-a").await?;
        let behind = tenant_b(stack, &api.client, &mut worker, "bench-unfair-b").await?;
        worker.stop(STOP_GRACE).await?;
        api.stop().await?;
        reset(stack).await?;
        behind
    };
    Ok(FairnessBench {
        ratio: b_behind_a.p95_wait_ms / b_alone.p95_wait_ms.max(1e-3),
        b_alone,
        b_behind_a,
        b_behind_a_unfair,
        capacity_per_sec: f64::from(CONCURRENCY) * 1000.0 / SLEEP_MS as f64,
    })
}

/// An api and a worker with `FAIR_SHARE_WINDOW=window`.
async fn start(stack: &Stack, window: &str) -> anyhow::Result<(crate::stack::Api, Service)> {
    let api = stack
        .start_api("fair-api", &[("FAIR_SHARE_WINDOW", window.to_owned())])
        .await?;
    let worker = stack
        .start_worker(
            "fair-worker",
            &[
                ("FAIR_SHARE_WINDOW", window.to_owned()),
                ("WORKER_CONCURRENCY", CONCURRENCY.to_string()),
                ("WORKER_PREFETCH", CONCURRENCY.to_string()),
            ],
        )
        .await?;
    Ok((api, worker))
}

/// Tenant A's burst: [`A_JOBS`] sleep jobs owned by `tag`.
async fn flood(client: &ApiClient, tag: &str) -> anyhow::Result<()> {
    println!("    A ({tag}): {} jobs", thousands(A_JOBS));
    let mut sent = 0;
    while sent < A_JOBS {
        let chunk = PER_REQUEST.min(A_JOBS - sent);
        client
            .batch("sleep", &json!({ "ms": SLEEP_MS }), chunk as usize, tag)
            .await?;
        sent += chunk;
    }
    Ok(())
}

/// Tenant B's [`B_JOBS`] sleep jobs owned by `tag`, until all succeeded; their waits.
async fn tenant_b(
    stack: &Stack,
    client: &ApiClient,
    worker: &mut Service,
    tag: &str,
) -> anyhow::Result<TenantRun> {
    let from = Utc::now();
    client
        .batch("sleep", &json!({ "ms": SLEEP_MS }), B_JOBS as usize, tag)
        .await?;
    let (_, _, last_completed) = wait_succeeded(stack, tag, B_JOBS, worker).await?;
    let (p50, p95) = stack.wait_percentiles_ms(tag).await?;
    let run = TenantRun {
        p50_wait_ms: p50,
        p95_wait_ms: p95,
        busy_jobs_per_sec: busy_rate(stack, from, last_completed).await?,
    };
    println!(
        "    B ({tag}): wait p50 {:.0} ms, p95 {:.0} ms; {} jobs/s of all tenants meanwhile",
        run.p50_wait_ms,
        run.p95_wait_ms,
        rate(run.busy_jobs_per_sec)
    );
    Ok(run)
}

async fn busy_rate(stack: &Stack, from: DateTime<Utc>, to: DateTime<Utc>) -> anyhow::Result<f64> {
    let completed = stack.completed_between(from, to).await?;
    let secs = ((to - from).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6);
    Ok(completed as f64 / secs)
}

/// Empties the job tables and the work queue (A's jobs left over).
async fn reset(stack: &Stack) -> anyhow::Result<()> {
    stack.reset_jobs().await?;
    stack.reset_fair_share().await?;
    stack.purge_work_queue().await?;
    Ok(())
}

impl FairnessBench {
    /// Row 13 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "13",
            benchmark: format!(
                "fair sharing: tenant B's {B_JOBS} jobs after tenant A's {}, sleep {SLEEP_MS} ms, \
                 1 worker × {CONCURRENCY}, FAIR_SHARE_WINDOW={WINDOW}",
                thousands(A_JOBS)
            ),
            burrow: format!(
                "B's p95 wait {:.0} ms (p50 {:.0}); all tenants {} jobs/s meanwhile",
                self.b_behind_a.p95_wait_ms,
                self.b_behind_a.p50_wait_ms,
                rate(self.b_behind_a.busy_jobs_per_sec),
            ),
            reference: format!(
                "B alone: p95 {:.0} ms (p50 {:.0}); without fair sharing, behind A: p95 {:.0} ms, \
                 all tenants {} jobs/s (worker's ceiling {})",
                self.b_alone.p95_wait_ms,
                self.b_alone.p50_wait_ms,
                self.b_behind_a_unfair.p95_wait_ms,
                rate(self.b_behind_a_unfair.busy_jobs_per_sec),
                rate(self.capacity_per_sec)
            ),
            ratio: Some(self.ratio),
            target: format!("≤ {TARGET_RATIO:.2}× alone"),
            verdict: Verdict::from_bool(self.ratio <= TARGET_RATIO),
        }]
    }
}
