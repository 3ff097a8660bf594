//! One burrow import end to end, shared by the import rows (1, 7, 8, 9, 10): an api and one
//! worker with their defaults (plus the bench's extra environment, e.g. `IMPORT_PROFILES_DIR`)
//! are started, the file is uploaded (`POST /api/jobs`, multipart, with `profile=` when given),
//! and the job is polled until it ends; the time runs from the upload's first byte until the
//! job is seen `succeeded`. Both processes are stopped and the job tables emptied afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::cpu::{CpuBreakdown, CpuMeter};
use crate::stack::Stack;
use crate::stats::{mib, rate, thousands};

/// How often the job is polled (the end time is known to within this).
const POLL: Duration = Duration::from_millis(50);
/// Longest one end-to-end import may take.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// burrow's side of an import row, with its stages.
#[derive(Debug, Clone, Serialize)]
pub struct SystemImport {
    /// Upload start until the job was seen `succeeded`, in seconds.
    pub secs: f64,
    /// Rows per second over `secs`.
    pub rows_per_sec: f64,
    /// The upload request: body sent, file stored with the job in one transaction, `202`.
    pub upload_secs: f64,
    /// The `202` until the job's `started_at`: relay publish, delivery, job lock and claim.
    /// (The job's own `created_at` is its transaction's start, before the file was stored.)
    pub to_start_secs: f64,
    /// `started_at` to `completed_at`: load the file, parse, COPY (the commit comes after).
    pub run_secs: f64,
    /// `completed_at` until the poll saw `succeeded`: the commit and up to one poll interval.
    pub commit_and_poll_secs: f64,
    /// CPU per component over `secs`.
    pub cpu: CpuBreakdown,
}

impl SystemImport {
    /// `upload → 202 0.31 s, 202 → started 0.05 s, run 4.1 s, commit + poll 0.2 s; CPU s: …`.
    pub fn stages(&self) -> String {
        format!(
            "upload → 202 {:.2} s, 202 → started {:.2} s, run {:.2} s, commit + poll {:.2} s; {}",
            self.upload_secs,
            self.to_start_secs,
            self.run_secs,
            self.commit_and_poll_secs,
            self.cpu.summary()
        )
    }
}

/// What one end-to-end import gave.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Its stages and CPU.
    pub system: SystemImport,
    /// Rows the job says it imported.
    pub rows: u64,
    /// The worker's `VmHWM` after the import, in bytes.
    pub worker_peak_rss_bytes: u64,
    /// The api's `VmHWM` after the upload, in bytes.
    pub api_peak_rss_bytes: u64,
}

/// What to upload, and how.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// Names the api's and the worker's logs (`{name}-api`, `{name}-worker`).
    pub name: &'a str,
    /// The file.
    pub file: &'a Path,
    /// `profile=`; `None` sends none (the api's default, `people`).
    pub profile: Option<&'a str>,
    /// The jobs' owner tag.
    pub tag: &'a str,
    /// Environment of both processes besides the stack's.
    pub env: &'a [(&'a str, String)],
}

/// Runs one import end to end (see the module doc).
///
/// # Errors
/// If a process does not start, the job does not succeed, or [`DEADLINE`] passes.
pub async fn run(stack: &Stack, upload: Upload<'_>) -> anyhow::Result<Uploaded> {
    let api = stack
        .start_api(&format!("{}-api", upload.name), upload.env)
        .await?;
    let mut worker = stack
        .start_worker(&format!("{}-worker", upload.name), upload.env)
        .await?;
    let bytes =
        std::fs::read(upload.file).with_context(|| format!("reading {}", upload.file.display()))?;
    let file_name = upload
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("people.xlsx")
        .to_owned();
    println!(
        "  burrow: upload {file_name} ({}, profile {}) → one worker → succeeded",
        mib(bytes.len() as u64),
        upload.profile.unwrap_or("default")
    );

    let meter = CpuMeter::start(Some(worker.pid()), Some(api.service.pid()));
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let job = api
        .client
        .upload_with_profile(&file_name, bytes, upload.tag, upload.profile)
        .await?;
    let uploaded = started.elapsed();
    let done = loop {
        tokio::time::sleep(POLL).await;
        let job = api.client.job(job.id).await?;
        if job.ended() {
            break job;
        }
        worker.ensure_running()?;
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "the import did not end within {DEADLINE:?} (status {})",
            job.status
        );
    };
    let secs = started.elapsed().as_secs_f64();
    let cpu = meter.finish();
    let worker_peak_rss_bytes = worker.peak_rss_bytes()?;
    let api_peak_rss_bytes = api.service.peak_rss_bytes()?;
    worker.stop(crate::stack::STOP_GRACE).await?;
    api.stop().await?;
    stack.reset_jobs().await?;

    anyhow::ensure!(
        done.status == "succeeded",
        "the import ended {}: {}",
        done.status,
        done.message.unwrap_or_default()
    );
    let rows = u64::try_from(done.rows_imported.unwrap_or(0)).unwrap_or(0);
    let (started_run, completed) = done
        .started_at
        .zip(done.completed_at)
        .context("the job has no start or completion time")?;
    let system = SystemImport {
        secs,
        rows_per_sec: rows as f64 / secs,
        upload_secs: uploaded.as_secs_f64(),
        to_start_secs: seconds(started_run - started_at) - uploaded.as_secs_f64(),
        run_secs: seconds(completed - started_run),
        commit_and_poll_secs: secs - seconds(completed - started_at),
        cpu,
    };
    println!(
        "    {} rows in {:.1} s: {} rows/s; worker peak RSS {}",
        thousands(rows),
        system.secs,
        rate(system.rows_per_sec),
        mib(worker_peak_rss_bytes)
    );
    Ok(Uploaded {
        system,
        rows,
        worker_peak_rss_bytes,
        api_peak_rss_bytes,
    })
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(0) as f64 / 1e6
}
