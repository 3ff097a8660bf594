//! Benchmark 12: what a cluster-wide cap costs when it is configured but never reached
//! (issue 14's target: within 20 % of the same jobs without one).
//!
//! The same api and the same noop jobs, first with a worker without caps, then with a worker
//! started with `KIND_CAPS=noop=<far above its concurrency>` (the cap removed after it), then
//! without again: the mean of
//! the two uncapped runs is the reference, so drift of the machine during the run shows as the
//! spread between them. A capped kind's claim takes a slot row (`SKIP LOCKED`) in the group
//! commit and its end frees the slot under its kind's shared advisory lock
//! (`burrow_shared::engine::kind_caps`), which is what this row prices.

use serde::Serialize;

use super::timed_jobs::{noop_jobs_timed, Timed};
use crate::report::{Row, Verdict};
use crate::stack::{Stack, STOP_GRACE};
use crate::stats::{before_after, rate, thousands};

/// Target: capped jobs per second reach this share of uncapped ones'.
pub const TARGET_RATIO: f64 = 0.8;
/// Noop jobs per run.
pub const JOBS: u64 = 10_000;
/// The cap configured: far above what one worker runs at once, so it is never reached.
const UNREACHED_CAP: u32 = 10_000;

/// What benchmark 12 measured.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsBench {
    /// Without caps, before the capped run.
    pub uncapped_before: Timed,
    /// With `KIND_CAPS=noop=UNREACHED_CAP`.
    pub capped: Timed,
    /// Without caps, after it.
    pub uncapped_after: Timed,
    /// The mean jobs per second of the two uncapped runs.
    pub uncapped_per_sec: f64,
    /// `capped.jobs_per_sec / uncapped_per_sec`.
    pub ratio: f64,
}

/// Runs benchmark 12.
///
/// # Errors
/// If a process does not start, a request fails, a job does not succeed, or a run passes
/// its deadline.
pub async fn run(stack: &Stack) -> anyhow::Result<LimitsBench> {
    let api = stack.start_api("limits-api", &[]).await?;
    let client = &api.client;
    let caps = format!("noop={UNREACHED_CAP}");
    let mut runs = Vec::new();
    for (name, tag, env) in [
        ("limits-worker-1", "bench-limits-none-1", Vec::new()),
        (
            "limits-worker-capped",
            "bench-limits-capped",
            vec![("KIND_CAPS", caps.clone())],
        ),
        ("limits-worker-2", "bench-limits-none-2", Vec::new()),
    ] {
        println!(
            "  worker {name}{}",
            if env.is_empty() {
                ", no cap".to_owned()
            } else {
                format!(", KIND_CAPS={caps}")
            }
        );
        let mut worker = stack.start_worker(name, &env).await?;
        runs.push(noop_jobs_timed(stack, client, &mut worker, JOBS, tag).await?);
        worker.stop(STOP_GRACE).await?;
        // The cap outlives the worker that declared it (it is the cluster's, in `kind_caps`).
        stack.remove_kind_cap("noop").await?;
    }
    api.stop().await?;
    let [uncapped_before, capped, uncapped_after]: [Timed; 3] =
        runs.try_into().map_err(|_| anyhow::anyhow!("three runs"))?;
    let uncapped_per_sec = (uncapped_before.jobs_per_sec + uncapped_after.jobs_per_sec) / 2.0;
    Ok(LimitsBench {
        ratio: capped.jobs_per_sec / uncapped_per_sec,
        uncapped_before,
        capped,
        uncapped_after,
        uncapped_per_sec,
    })
}

impl LimitsBench {
    /// Row 12 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "12",
            benchmark: format!(
                "cost of a cap not reached: {} noop jobs, 1 worker (defaults) with KIND_CAPS=noop={}",
                thousands(JOBS),
                thousands(u64::from(UNREACHED_CAP))
            ),
            burrow: format!(
                "{} jobs/s ({:.1} s)",
                rate(self.capped.jobs_per_sec),
                self.capped.secs
            ),
            reference: format!(
                "the same without a cap, before and after: {} jobs/s ({})",
                rate(self.uncapped_per_sec),
                before_after(self.uncapped_before.secs, self.uncapped_after.secs)
            ),
            ratio: Some(self.ratio),
            target: format!("≥ {TARGET_RATIO:.2}× uncapped"),
            verdict: Verdict::from_bool(self.ratio >= TARGET_RATIO),
        }]
    }
}
