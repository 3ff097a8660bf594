//! Benchmark 6: worker concurrency × prefetch. For each point, N `noop` jobs are enqueued and
//! published first (the outbox drained, the messages waiting in the work queue), then one
//! worker with that `WORKER_CONCURRENCY` and `WORKER_PREFETCH` starts and runs until all N
//! succeeded or [`WINDOW`] passed, whichever comes first (slow points are time-bounded, so the
//! sweep is). Throughput is the succeeded jobs over the span from the first job's `started_at`
//! to the last one's `completed_at`, so neither the enqueue nor the worker's start-up counts.
//! Grid: concurrency {1, 4, 16, 64} × prefetch {1, 10, 100, 300}, one run each.
//!
//! One run per point is noisy on a shared machine (and the grid's maximum is biased upwards by
//! that noise), so the verdict comes from a confirmation round after the grid: the worker's
//! defaults and the grid's best point, alternated twice (default, best, default, best); the
//! defaults' share is the mean of their two runs over the mean of the best's two.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::report::{Row, Verdict};
use crate::stack::{worker_settings, Stack, STOP_GRACE};
use crate::stats::rate;

/// Target: the defaults reach this share of the best point's jobs per second.
pub const TARGET_SHARE: f64 = 0.9;
/// The grid's concurrency values.
const CONCURRENCY: [usize; 4] = [1, 4, 16, 64];
/// The grid's prefetch values.
const PREFETCH: [u16; 4] = [1, 10, 100, 300];
/// Longest one point's worker runs; a point that has not finished its jobs by then is
/// measured on the jobs it finished.
pub const WINDOW: Duration = Duration::from_secs(12);
/// Longest the relay may take to publish a point's jobs.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);
/// Jobs per batch request.
const BATCH: u64 = 1000;

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// `WORKER_CONCURRENCY`; `None`: the worker's default.
    pub concurrency: Option<usize>,
    /// `WORKER_PREFETCH`; `None`: the worker's default.
    pub prefetch: Option<u16>,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Whether [`WINDOW`] ended the point before all its jobs succeeded.
    pub time_bounded: bool,
    /// First start to last completion.
    pub secs: f64,
    /// Jobs per second.
    pub jobs_per_sec: f64,
}

impl Point {
    fn label(&self, defaults: (usize, u16)) -> String {
        format!(
            "c={} p={}",
            self.concurrency.unwrap_or(defaults.0),
            self.prefetch.unwrap_or(defaults.1)
        )
    }
}

/// What benchmark 6 measured.
#[derive(Debug, Clone, Serialize)]
pub struct SweepBench {
    /// Jobs per point.
    pub jobs: u64,
    /// The worker's defaults as it reported them (`consuming … concurrency=2 prefetch=4`).
    pub defaults: (usize, u16),
    /// The grid, concurrency-major.
    pub grid: Vec<Point>,
    /// The confirmation round's runs of the defaults.
    pub default_runs: Vec<Point>,
    /// The confirmation round's runs of the grid's best point.
    pub best_runs: Vec<Point>,
}

/// Runs benchmark 6 with `jobs` jobs per point.
///
/// # Errors
/// If a process does not start or a point misses its deadline.
pub async fn run(stack: &Stack, jobs: u64) -> anyhow::Result<SweepBench> {
    let api = stack.start_api("sweep-api", &[]).await?;
    println!(
        "  {} grid points + 4 confirmation runs × {jobs} noop jobs, queued before the worker starts",
        CONCURRENCY.len() * PREFETCH.len()
    );
    let mut defaults = None;
    let mut n = 0;
    let mut grid = Vec::new();
    for concurrency in CONCURRENCY {
        for prefetch in PREFETCH {
            n += 1;
            let settings = (Some(concurrency), Some(prefetch));
            grid.push(point(stack, &api.client, jobs, settings, &mut defaults, n).await?);
        }
    }
    let best = grid
        .iter()
        .max_by(|a, b| a.jobs_per_sec.total_cmp(&b.jobs_per_sec))
        .map(|b| (b.concurrency, b.prefetch))
        .ok_or_else(|| anyhow::anyhow!("the grid is empty"))?;
    println!("  confirmation: the defaults and the best point, alternated");
    let (mut default_runs, mut best_runs) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        n += 1;
        default_runs.push(point(stack, &api.client, jobs, (None, None), &mut defaults, n).await?);
        n += 1;
        best_runs.push(point(stack, &api.client, jobs, best, &mut defaults, n).await?);
    }
    api.stop().await?;
    let defaults =
        defaults.ok_or_else(|| anyhow::anyhow!("the worker did not log its settings"))?;
    Ok(SweepBench {
        jobs,
        defaults,
        grid,
        default_runs,
        best_runs,
    })
}

/// Measures one point; learns the defaults from the worker's log when it runs with them.
async fn point(
    stack: &Stack,
    client: &crate::client::ApiClient,
    jobs: u64,
    (concurrency, prefetch): (Option<usize>, Option<u16>),
    defaults: &mut Option<(usize, u16)>,
    n: usize,
) -> anyhow::Result<Point> {
    let tag = format!("bench-sweep-{n}");
    let mut sent = 0;
    while sent < jobs {
        let count = BATCH.min(jobs - sent);
        client
            .batch("noop", &json!({}), count as usize, &tag)
            .await?;
        sent += count;
    }
    stack.wait_outbox_drained(PUBLISH_DEADLINE).await?;

    let mut env = Vec::new();
    if let Some(c) = concurrency {
        env.push(("WORKER_CONCURRENCY", c.to_string()));
    }
    if let Some(p) = prefetch {
        env.push(("WORKER_PREFETCH", p.to_string()));
    }
    let mut worker = stack
        .start_worker(&format!("sweep-worker-{n}"), &env)
        .await?;
    let started = Instant::now();
    let tally = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let tally = stack.tally(&tag).await?;
        anyhow::ensure!(
            tally.ended_badly == 0,
            "{} noop jobs failed",
            tally.ended_badly
        );
        if tally.succeeded >= jobs || started.elapsed() > WINDOW {
            break tally;
        }
        worker.ensure_running()?;
    };
    if concurrency.is_none() && defaults.is_none() {
        *defaults = worker_settings(&worker);
    }
    worker.stop(STOP_GRACE).await?;
    let time_bounded = tally.succeeded < jobs;
    if time_bounded {
        stack.purge_work_queue().await?;
    }
    let tally = stack.tally(&tag).await?;
    stack.reset_jobs().await?;
    let secs = match (tally.first_started, tally.last_completed) {
        (Some(first), Some(last)) => (last - first).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => anyhow::bail!("point {n}: jobs without start or completion times"),
    };
    let point = Point {
        concurrency,
        prefetch,
        succeeded: tally.succeeded,
        time_bounded,
        secs,
        jobs_per_sec: tally.succeeded as f64 / secs.max(1e-6),
    };
    println!(
        "    {:<12} {:>6} jobs/s{}",
        point.label(defaults.unwrap_or((0, 0))),
        rate(point.jobs_per_sec),
        if time_bounded {
            format!(
                " ({} jobs in the {}-s window)",
                point.succeeded,
                WINDOW.as_secs()
            )
        } else {
            String::new()
        }
    );
    Ok(point)
}

impl SweepBench {
    /// The grid's best point.
    pub fn best(&self) -> Option<&Point> {
        self.grid
            .iter()
            .max_by(|a, b| a.jobs_per_sec.total_cmp(&b.jobs_per_sec))
    }

    /// The defaults' mean jobs per second in the confirmation round.
    pub fn default_rate(&self) -> f64 {
        mean(&self.default_runs)
    }

    /// The best point's mean jobs per second in the confirmation round.
    pub fn best_rate(&self) -> f64 {
        mean(&self.best_runs)
    }

    /// The defaults' share of the best, from the confirmation round (above 1 when the
    /// defaults won it).
    pub fn share(&self) -> f64 {
        let best = self.best_rate();
        if best > 0.0 {
            self.default_rate() / best
        } else {
            0.0
        }
    }

    /// Row 6 of the table.
    pub fn rows(&self) -> Vec<Row> {
        let runs = |points: &[Point]| {
            points
                .iter()
                .map(|p| rate(p.jobs_per_sec))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![Row {
            id: "6",
            benchmark: format!(
                "concurrency × prefetch sweep, {} noop jobs a point; verdict from default/best alternated twice",
                self.jobs
            ),
            burrow: format!(
                "default c={} p={}: {} jobs/s ({})",
                self.defaults.0,
                self.defaults.1,
                rate(self.default_rate()),
                runs(&self.default_runs)
            ),
            reference: self.best_runs.first().map_or("—".to_owned(), |b| {
                format!(
                    "best of grid {}: {} jobs/s ({}; {} in the grid)",
                    b.label(self.defaults),
                    rate(self.best_rate()),
                    runs(&self.best_runs),
                    self.best().map_or("—".to_owned(), |g| rate(g.jobs_per_sec))
                )
            }),
            ratio: Some(self.share()),
            target: format!("≥ {TARGET_SHARE:.2}× best"),
            verdict: Verdict::from_bool(self.share() >= TARGET_SHARE),
        }]
    }

    /// The grid as a markdown table (jobs/s), concurrency down, prefetch across.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "6 jobs/s by WORKER_CONCURRENCY (rows) × WORKER_PREFETCH (columns); default c={} p={}:",
            self.defaults.0, self.defaults.1
        )];
        lines.push(String::new());
        let header: Vec<String> = PREFETCH.iter().map(|p| format!("p={p}")).collect();
        lines.push(format!("| | {} |", header.join(" | ")));
        lines.push(format!("|---|{}", "---:|".repeat(PREFETCH.len())));
        for concurrency in CONCURRENCY {
            let cells: Vec<String> = PREFETCH
                .iter()
                .map(|prefetch| {
                    self.grid
                        .iter()
                        .find(|p| {
                            p.concurrency == Some(concurrency) && p.prefetch == Some(*prefetch)
                        })
                        .map_or("—".to_owned(), |p| {
                            format!(
                                "{}{}",
                                rate(p.jobs_per_sec),
                                if p.time_bounded { "*" } else { "" }
                            )
                        })
                })
                .collect();
            lines.push(format!("| c={concurrency} | {} |", cells.join(" | ")));
        }
        lines.push(String::new());
        if self.grid.iter().any(|p| p.time_bounded) {
            lines.push(format!(
                "6 * time-bounded: fewer than {} jobs finished in the {}-s window; the rate is over those that did",
                self.jobs,
                WINDOW.as_secs()
            ));
        }
        lines
    }
}

fn mean(points: &[Point]) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    points.iter().map(|p| p.jobs_per_sec).sum::<f64>() / points.len() as f64
}
