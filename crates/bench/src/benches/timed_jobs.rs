//! Timing a run of jobs by their rows: from a start to the last `completed_at`, polled from
//! Postgres, so the figure is what the jobs' users see (rows 11 and 12).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::client::ApiClient;
use crate::process::Service;
use crate::stack::Stack;
use crate::stats::{rate, thousands};

/// Longest one run may take until its last job has ended.
const DEADLINE: Duration = Duration::from_secs(180);
/// How often the job counts are read.
const POLL: Duration = Duration::from_millis(100);

/// One timed run: its jobs (all `succeeded`), its span and rate.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// Jobs that ran (a batch's callback included).
    pub jobs: u64,
    /// Seconds until every job was stored (the requests answered).
    pub enqueue_secs: f64,
    /// Seconds from the start (the first request, unless the bench says otherwise) to the
    /// last `completed_at`.
    pub secs: f64,
    /// `jobs / secs`.
    pub jobs_per_sec: f64,
}

/// `count` plain noop jobs owned by `tag` through `POST /api/jobs/batch`, first request →
/// last `completed_at`.
///
/// # Errors
/// A failed request, a job that did not succeed, the worker exiting, or the deadline.
pub async fn noop_jobs_timed(
    stack: &Stack,
    client: &ApiClient,
    worker: &mut Service,
    count: u64,
    tag: &str,
) -> anyhow::Result<Timed> {
    println!(
        "  plain ({tag}): {} noop jobs via /api/jobs/batch",
        thousands(count)
    );
    let started_at = Utc::now();
    let started = Instant::now();
    client.noop_jobs(count, tag).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    let (jobs, _, last_completed) = wait_succeeded(stack, tag, count, worker).await?;
    let plain = timed(jobs, enqueue_secs, started_at, last_completed);
    println!(
        "    {:.1} s: {} jobs/s",
        plain.secs,
        rate(plain.jobs_per_sec)
    );
    Ok(plain)
}

/// Polls `tag`'s jobs until `jobs` of them succeeded; their count, first `started_at` and
/// last `completed_at`.
///
/// # Errors
/// A job that did not succeed, the worker exiting, or the deadline.
pub async fn wait_succeeded(
    stack: &Stack,
    tag: &str,
    jobs: u64,
    worker: &mut Service,
) -> anyhow::Result<(u64, Option<DateTime<Utc>>, DateTime<Utc>)> {
    let started = Instant::now();
    loop {
        let tally = stack.tally(tag).await?;
        anyhow::ensure!(
            tally.ended_badly == 0,
            "{tag}: {} jobs did not succeed",
            tally.ended_badly
        );
        if tally.succeeded >= jobs {
            let last = tally
                .last_completed
                .ok_or_else(|| anyhow::anyhow!("{tag}: no completed_at"))?;
            return Ok((tally.succeeded, tally.first_started, last));
        }
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "{tag}: only {} of {jobs} jobs succeeded after {DEADLINE:?}",
            tally.succeeded
        );
        worker.ensure_running()?;
        tokio::time::sleep(POLL).await;
    }
}

/// A run of `jobs` from `from` to `to`.
pub fn timed(jobs: u64, enqueue_secs: f64, from: DateTime<Utc>, to: DateTime<Utc>) -> Timed {
    let secs = ((to - from).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-6);
    Timed {
        jobs,
        enqueue_secs,
        secs,
        jobs_per_sec: jobs as f64 / secs,
    }
}
