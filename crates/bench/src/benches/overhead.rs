//! Benchmark 3: per-job overhead. N `noop` jobs through the whole system — enqueued with
//! `POST /api/jobs/batch` (1,000 a request), published by the api's outbox relay, consumed by
//! one worker with the default settings — from the first request until the last job's
//! `completed_at`, against a raw lapin loop moving as many messages through the same broker
//! ([`crate::reference::amqp`]), run before and after burrow's run; the reference is the mean
//! of the two, so a change in the machine's other load weighs on both sides.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cpu::{CpuBreakdown, CpuMeter};
use crate::reference::amqp::{self as raw, RawAmqp};
use crate::report::{Row, Verdict};
use crate::stack::{worker_settings, Stack, STOP_GRACE};
use crate::stats::{before_after, rate, thousands};

/// Target: burrow's jobs per second reach this share of the raw loop's messages per second.
pub const TARGET_RATIO: f64 = 0.5;
/// The raw loop's prefetch.
const RAW_PREFETCH: u16 = 100;
/// Longest either side may take; burrow's figure is then the rate of what finished.
const DEADLINE: Duration = Duration::from_secs(240);
/// How often the job counts are read.
const POLL: Duration = Duration::from_millis(250);
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-overhead";

/// What benchmark 3 measured.
#[derive(Debug, Clone, Serialize)]
pub struct OverheadBench {
    /// Jobs enqueued (and messages through the raw loop).
    pub jobs: u64,
    /// burrow's side.
    pub system: SystemOverhead,
    /// The raw loop, before and after burrow's run.
    pub raw: Vec<RawAmqp>,
    /// The mean messages per second of the two raw runs: the reference.
    pub raw_per_sec: f64,
    /// `system.jobs_per_sec / raw_per_sec`.
    pub ratio: f64,
}

/// burrow's side of benchmark 3.
#[derive(Debug, Clone, Serialize)]
pub struct SystemOverhead {
    /// The worker's `(WORKER_CONCURRENCY, WORKER_PREFETCH)`: its defaults, as it logged them.
    pub worker_settings: Option<(usize, u16)>,
    /// Jobs that succeeded before the deadline.
    pub succeeded: u64,
    /// Whether every job succeeded before the deadline.
    pub complete: bool,
    /// First batch request until the last `completed_at` (or the deadline).
    pub secs: f64,
    /// Succeeded jobs per second over `secs`.
    pub jobs_per_sec: f64,
    /// Until the last batch request was answered (all jobs stored).
    pub enqueue_secs: f64,
    /// Until the outbox was empty (all messages confirmed by the broker).
    pub published_secs: Option<f64>,
    /// Postgres transactions committed per job (api, relay and worker; read-only ones and
    /// the bench's own polls included).
    pub transactions_per_job: f64,
    /// CPU per component.
    pub cpu: CpuBreakdown,
}

/// Runs benchmark 3 with `jobs` jobs.
///
/// # Errors
/// If a process does not start, a request fails, or a job fails.
pub async fn run(stack: &Stack, jobs: u64) -> anyhow::Result<OverheadBench> {
    let before = raw_once(stack, jobs, "before").await?;
    let system = system_once(stack, jobs).await?;
    let after = raw_once(stack, jobs, "after").await?;
    let raw_per_sec = (before.per_sec + after.per_sec) / 2.0;
    Ok(OverheadBench {
        jobs,
        ratio: system.jobs_per_sec / raw_per_sec,
        system,
        raw_per_sec,
        raw: vec![before, after],
    })
}

async fn raw_once(stack: &Stack, jobs: u64, when: &str) -> anyhow::Result<RawAmqp> {
    println!(
        "  raw lapin loop ({when}): {} persistent messages, confirms, manual acks, prefetch {RAW_PREFETCH}",
        thousands(jobs)
    );
    let raw = raw::run(
        &stack.config().amqp_url,
        &stack.raw_queue(),
        jobs,
        RAW_PREFETCH,
        DEADLINE,
    )
    .await?;
    println!("    {:.1} s: {} msg/s", raw.secs, rate(raw.per_sec));
    Ok(raw)
}

async fn system_once(stack: &Stack, jobs: u64) -> anyhow::Result<SystemOverhead> {
    let transactions_before = stack.transactions().await?;
    let api = stack.start_api("overhead-api", &[]).await?;
    let mut worker = stack.start_worker("overhead-worker", &[]).await?;
    println!(
        "  burrow: {} noop jobs via /api/jobs/batch → 1 worker (defaults) → succeeded",
        thousands(jobs)
    );
    let meter = CpuMeter::start(Some(worker.pid()), Some(api.service.pid()));
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let client = api.client.clone();
    let mut enqueue = tokio::spawn(async move {
        client.noop_jobs(jobs, TAG).await?;
        Ok::<_, anyhow::Error>(started.elapsed())
    });
    let mut enqueue_secs = None;
    let mut published_secs = None;
    let tally = loop {
        tokio::time::sleep(POLL).await;
        if enqueue_secs.is_none() && enqueue.is_finished() {
            enqueue_secs = Some((&mut enqueue).await??.as_secs_f64());
        }
        if enqueue_secs.is_some() && published_secs.is_none() && stack.outbox_pending().await? == 0
        {
            published_secs = Some(started.elapsed().as_secs_f64());
        }
        let tally = stack.tally(TAG).await?;
        anyhow::ensure!(
            tally.ended_badly == 0,
            "{} noop jobs failed",
            tally.ended_badly
        );
        if tally.succeeded >= jobs || started.elapsed() > DEADLINE {
            break tally;
        }
        worker.ensure_running()?;
    };
    let cpu = meter.finish();
    enqueue.abort();
    let worker_settings = worker_settings(&worker);
    worker.stop(STOP_GRACE).await?;
    api.stop().await?;
    // The stopped processes' backends have reported their transactions on exit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let transactions = stack.transactions().await? - transactions_before;

    let complete = tally.succeeded >= jobs;
    let secs = match tally.last_completed {
        Some(last) if complete => (last - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => started.elapsed().as_secs_f64(),
    };
    let system = SystemOverhead {
        worker_settings,
        succeeded: tally.succeeded,
        complete,
        secs,
        jobs_per_sec: tally.succeeded as f64 / secs,
        enqueue_secs: enqueue_secs.unwrap_or(secs),
        published_secs,
        transactions_per_job: transactions as f64 / tally.succeeded.max(1) as f64,
        cpu,
    };
    println!(
        "    {} jobs in {:.1} s: {} jobs/s{}",
        thousands(system.succeeded),
        system.secs,
        rate(system.jobs_per_sec),
        if complete { "" } else { " (deadline: partial)" }
    );
    if !complete {
        stack.purge_work_queue().await?;
    }
    stack.reset_jobs().await?;
    Ok(system)
}

impl OverheadBench {
    /// Row 3 of the table.
    pub fn rows(&self) -> Vec<Row> {
        let partial = if self.system.complete {
            String::new()
        } else {
            format!(
                ", only {} done by the {}-s deadline",
                thousands(self.system.succeeded),
                DEADLINE.as_secs()
            )
        };
        vec![Row {
            id: "3",
            benchmark: format!(
                "{} noop jobs: batch enqueue → 1 worker ({}) → succeeded",
                thousands(self.jobs),
                self.system
                    .worker_settings
                    .map_or("defaults".to_owned(), |(c, p)| format!(
                        "defaults c={c} p={p}"
                    ))
            ),
            burrow: format!(
                "{} jobs/s ({:.1} s{partial})",
                rate(self.system.jobs_per_sec),
                self.system.secs
            ),
            reference: format!(
                "raw lapin, confirms + acks, prefetch {RAW_PREFETCH}: {} msg/s ({})",
                rate(self.raw_per_sec),
                before_after(
                    self.raw.first().map_or(0.0, |r| r.secs),
                    self.raw.last().map_or(0.0, |r| r.secs)
                )
            ),
            ratio: Some(self.ratio),
            target: format!("≥ {TARGET_RATIO:.2}× raw"),
            verdict: Verdict::from_bool(self.ratio >= TARGET_RATIO && self.system.complete),
        }]
    }

    /// The stages and CPU of both sides.
    pub fn details(&self) -> Vec<String> {
        let s = &self.system;
        let mut lines = vec![
            format!(
                "3 burrow stages: all {} jobs stored after {:.1} s ({} jobs/s into the api), outbox empty after {}, last job done after {:.1} s; {:.1} Postgres transactions per job; {}",
                thousands(self.jobs),
                s.enqueue_secs,
                rate(self.jobs as f64 / s.enqueue_secs.max(1e-9)),
                s.published_secs.map_or("—".to_owned(), |p| format!("{p:.1} s")),
                s.secs,
                s.transactions_per_job,
                s.cpu.summary()
            ),
        ];
        for (raw, when) in self.raw.iter().zip(["before", "after"]) {
            lines.push(format!(
                "3 raw loop ({when}): {} msg/s, all published and confirmed after {:.1} s, body {} bytes; {}",
                rate(raw.per_sec),
                raw.publish_secs,
                raw.body_bytes,
                raw.cpu.summary()
            ));
        }
        lines
    }
}
