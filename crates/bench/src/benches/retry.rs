//! Benchmark 5: retry timing. A worker with `BURROW_FAILPOINT=transient_import:flaky.xlsx`,
//! `RETRY_BASE_MS=500` and `RETRY_MAX_ATTEMPTS=4` fails every attempt of uploads named
//! `flaky.xlsx` transiently, so each such job runs four times and ends `dead`. The gaps between
//! the starts of consecutive attempts (the `processing` events of the job's history) are
//! compared with the configured backoff: 500, 1,000 and 2,000 ms.
//!
//! The worker takes up to 20 % off each delay at random (jitter) and publishes the retry with
//! that per-message expiration, so by design a gap lies in `[0.8·d, d]` plus delivery time.
//! The target widens that band by 10 % on each side: `0.9 × 0.8·d ≤ gap ≤ 1.1 × d`. The job's
//! `next_attempt_at` (the jittered due time, polled while it is `retrying`) also gives each
//! attempt's lateness against the wait the worker actually chose.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::report::{Row, Verdict};
use crate::stack::{Stack, STOP_GRACE};

/// The configured backoff: `RETRY_BASE_MS`.
const BASE_MS: u64 = 500;
/// Attempts per job (`RETRY_MAX_ATTEMPTS`): three gaps.
const ATTEMPTS: u32 = 4;
/// The jitter the worker takes off (burrow_shared::retry::DEFAULT_JITTER).
const JITTER: f64 = 0.2;
/// Target tolerance around the designed band.
pub const TOLERANCE: f64 = 0.1;
/// The file name the failpoint matches.
const FLAKY: &str = "flaky.xlsx";
/// How often each job is polled for its `next_attempt_at`.
const POLL: Duration = Duration::from_millis(20);
/// Longest the jobs may take to end (they need about 3.5 s).
const DEADLINE: Duration = Duration::from_secs(60);
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-retry";

/// One measured gap between attempt `attempt` and the next.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    /// The job.
    pub job: Uuid,
    /// Its number in this bench (1-based), for reading the report.
    pub job_index: usize,
    /// The failed attempt (1-based); the gap runs to the start of `attempt + 1`.
    pub attempt: u32,
    /// The configured delay `d = base · 2^(attempt-1)`, in ms.
    pub configured_ms: f64,
    /// Start of `attempt` to start of `attempt + 1`, in ms.
    pub gap_ms: f64,
    /// The jittered wait the worker chose (`next_attempt_at` less the `retrying` event), in ms.
    pub chosen_wait_ms: Option<f64>,
    /// Start of `attempt + 1` less its `next_attempt_at`, in ms: delivery lateness.
    pub late_ms: Option<f64>,
    /// Whether `0.9 × 0.8·d ≤ gap ≤ 1.1 × d`.
    pub within_target: bool,
}

/// What benchmark 5 measured.
#[derive(Debug, Clone, Serialize)]
pub struct RetryBench {
    /// Jobs that failed on every attempt.
    pub jobs: usize,
    /// Every gap, by job and attempt.
    pub gaps: Vec<Gap>,
}

/// Runs benchmark 5 with `jobs` failing jobs at once.
///
/// # Errors
/// If a process does not start, an upload fails, or a job does not end `dead` in time.
pub async fn run(stack: &Stack, jobs: usize) -> anyhow::Result<RetryBench> {
    let cfg = stack.config();
    let bytes = std::fs::read(&cfg.small_fixture)
        .with_context(|| format!("reading {}", cfg.small_fixture.display()))?;
    let api = stack.start_api("retry-api", &[]).await?;
    let mut worker = stack
        .start_worker(
            "retry-worker",
            &[
                ("BURROW_FAILPOINT", format!("transient_import:{FLAKY}")),
                ("RETRY_BASE_MS", BASE_MS.to_string()),
                ("RETRY_MAX_ATTEMPTS", ATTEMPTS.to_string()),
            ],
        )
        .await?;
    println!(
        "  {jobs} uploads of {FLAKY}, failing every attempt: RETRY_BASE_MS={BASE_MS}, RETRY_MAX_ATTEMPTS={ATTEMPTS}"
    );
    let mut ids = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        ids.push(api.client.upload(FLAKY, bytes.clone(), TAG).await?.id);
    }

    // The due time of each (job, failed attempt), seen while the job is `retrying`.
    let mut due: BTreeMap<(Uuid, i32), DateTime<Utc>> = BTreeMap::new();
    let started = Instant::now();
    let mut finished = Vec::new();
    while finished.len() < ids.len() {
        for id in &ids {
            if finished.iter().any(|(f, _)| f == id) {
                continue;
            }
            let job = api.client.job(*id).await?;
            if let (Some(next), "retrying") = (job.next_attempt_at, job.status.as_str()) {
                due.entry((job.id, job.attempts)).or_insert(next);
            }
            if job.ended() {
                finished.push((*id, job));
            }
        }
        worker.ensure_running()?;
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "the failing jobs did not end within {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    worker.stop(STOP_GRACE).await?;
    api.stop().await?;

    let mut gaps = Vec::new();
    for (index, (id, job)) in finished.iter().enumerate() {
        anyhow::ensure!(
            job.status == "dead" && job.attempts == ATTEMPTS as i32,
            "job {id} ended {} after {} attempts (expected dead after {ATTEMPTS})",
            job.status,
            job.attempts
        );
        let at = |event: &str, attempt: u32| {
            job.events
                .iter()
                .find(|e| e.event == event && e.attempt == Some(attempt as i32))
                .map(|e| e.at)
        };
        for attempt in 1..ATTEMPTS {
            let (Some(start), Some(next_start)) =
                (at("processing", attempt), at("processing", attempt + 1))
            else {
                anyhow::bail!(
                    "job {id} has no start events for attempts {attempt} and {}",
                    attempt + 1
                );
            };
            let configured_ms = (BASE_MS << (attempt - 1)) as f64;
            let gap_ms = millis(next_start - start);
            let next_due = due.get(&(*id, attempt as i32)).copied();
            let chosen_wait_ms = next_due
                .zip(at("retrying", attempt))
                .map(|(next, retrying)| millis(next - retrying));
            let late_ms = next_due.map(|next| millis(next_start - next));
            let low = (1.0 - TOLERANCE) * (1.0 - JITTER) * configured_ms;
            let high = (1.0 + TOLERANCE) * configured_ms;
            gaps.push(Gap {
                job: *id,
                job_index: index + 1,
                attempt,
                configured_ms,
                gap_ms,
                chosen_wait_ms,
                late_ms,
                within_target: (low..=high).contains(&gap_ms),
            });
        }
    }
    for attempt in 1..ATTEMPTS {
        let of: Vec<String> = gaps
            .iter()
            .filter(|g| g.attempt == attempt)
            .map(|g| format!("{:.0}", g.gap_ms))
            .collect();
        println!(
            "    gap after attempt {attempt} (configured {} ms): {} ms",
            BASE_MS << (attempt - 1),
            of.join(", ")
        );
    }
    Ok(RetryBench { jobs, gaps })
}

fn millis(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(0) as f64 / 1000.0
}

impl RetryBench {
    /// Whether every gap met the target.
    pub fn met(&self) -> bool {
        !self.gaps.is_empty() && self.gaps.iter().all(|g| g.within_target)
    }

    /// Row 5 of the table.
    pub fn rows(&self) -> Vec<Row> {
        let per_attempt: Vec<String> = (1..ATTEMPTS)
            .map(|attempt| {
                let of: Vec<f64> = self
                    .gaps
                    .iter()
                    .filter(|g| g.attempt == attempt)
                    .map(|g| g.gap_ms)
                    .collect();
                let lo = of.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = of.iter().copied().fold(0.0, f64::max);
                format!("{lo:.0}–{hi:.0}")
            })
            .collect();
        let configured: Vec<String> = (1..ATTEMPTS)
            .map(|attempt| (BASE_MS << (attempt - 1)).to_string())
            .collect();
        let worst = self
            .gaps
            .iter()
            .map(|g| {
                let low = (1.0 - JITTER) * g.configured_ms;
                if g.gap_ms < low {
                    g.gap_ms / low - 1.0
                } else if g.gap_ms > g.configured_ms {
                    g.gap_ms / g.configured_ms - 1.0
                } else {
                    0.0
                }
            })
            .fold(0.0_f64, |a, b| if b.abs() > a.abs() { b } else { a });
        vec![Row {
            id: "5",
            benchmark: format!(
                "retry gaps, {} jobs × {} retries (start → next start)",
                self.jobs,
                ATTEMPTS - 1
            ),
            burrow: format!("{} ms", per_attempt.join(" / ")),
            reference: format!(
                "configured {} ms, jitter −≤20 %: band [0.8·d, d]",
                configured.join(" / ")
            ),
            ratio: None,
            target: format!(
                "band ± {:.0} %; worst outside: {:+.1} %",
                TOLERANCE * 100.0,
                worst * 100.0
            ),
            verdict: Verdict::from_bool(self.met()),
        }]
    }

    /// Each gap against the wait the worker chose.
    pub fn details(&self) -> Vec<String> {
        let lateness: Vec<f64> = self.gaps.iter().filter_map(|g| g.late_ms).collect();
        let mut lines = vec![format!(
            "5 lateness of each retry against its jittered due time (`next_attempt_at`): min {:.0} ms, max {:.0} ms over {} retries",
            lateness.iter().copied().fold(f64::INFINITY, f64::min),
            lateness.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            lateness.len()
        )];
        for gap in &self.gaps {
            lines.push(format!(
                "5 job #{} attempt {}→{}: gap {:.0} ms, configured {:.0} ms, chosen wait {}, late {}{}",
                gap.job_index,
                gap.attempt,
                gap.attempt + 1,
                gap.gap_ms,
                gap.configured_ms,
                gap.chosen_wait_ms.map_or("—".to_owned(), |w| format!("{w:.0} ms")),
                gap.late_ms.map_or("—".to_owned(), |l| format!("{l:+.0} ms")),
                if gap.within_target { "" } else { " — OUTSIDE the target band" }
            ));
        }
        lines
    }
}
