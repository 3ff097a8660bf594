//! Benchmarks 1 and 2: the big people workbook imported end to end — uploaded through the api,
//! imported by one worker with the default settings, from the upload's first byte until the
//! job is seen `succeeded` — against the raw floor ([`crate::reference::import`]) on the same
//! file, database and table; and the worker's peak RSS (`VmHWM`) during that import.
//!
//! The raw floor runs before and after burrow's import and the reference is their mean, so a
//! change in the machine's other load during the bench weighs on both sides. Every import
//! starts on an empty `imported_rows` right after a `CHECKPOINT`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::cpu::{CpuBreakdown, CpuMeter};
use crate::reference::import::{self as raw, RawImport};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{mib, rate, thousands};

/// Target: the end-to-end import reaches this share of the raw floor's rows per second.
pub const TARGET_RATIO: f64 = 0.8;
/// Target: the worker's peak RSS during the import, in bytes.
pub const TARGET_PEAK_RSS: u64 = 256 * 1024 * 1024;
/// How often the job is polled (the end time is known to within this).
const POLL: Duration = Duration::from_millis(50);
/// Longest the end-to-end import may take.
const DEADLINE: Duration = Duration::from_secs(300);
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-import";

/// What benchmarks 1 and 2 measured.
#[derive(Debug, Clone, Serialize)]
pub struct ImportBench {
    /// The workbook.
    pub file: String,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Rows imported (the same on both sides).
    pub rows: u64,
    /// burrow, end to end.
    pub system: SystemImport,
    /// The raw floor, run before and after burrow's import.
    pub raw: Vec<RawImport>,
    /// The mean rows per second of the two raw runs: the reference.
    pub raw_rows_per_sec: f64,
    /// `system.rows_per_sec / raw_rows_per_sec`.
    pub ratio: f64,
    /// The worker's `VmHWM` after the import, in bytes.
    pub worker_peak_rss_bytes: u64,
    /// The api's `VmHWM` after the upload, in bytes (not a target; for context).
    pub api_peak_rss_bytes: u64,
}

/// burrow's side of benchmark 1, with its stages.
#[derive(Debug, Clone, Serialize)]
pub struct SystemImport {
    /// Upload start until the job was seen `succeeded`.
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

/// Runs benchmarks 1 and 2: the raw floor, burrow, the raw floor again.
///
/// # Errors
/// If a process does not start, the import fails, or a deadline passes.
pub async fn run(stack: &Stack) -> anyhow::Result<ImportBench> {
    let cfg = stack.config();
    let file = cfg.fixture.clone();
    let file_bytes = std::fs::metadata(&file)
        .with_context(|| {
            format!(
                "{} is missing: `just big-fixture 1000000` writes it",
                file.display()
            )
        })?
        .len();

    let before = raw_once(stack, "before").await?;
    let (system, rows, worker_peak_rss_bytes, api_peak_rss_bytes) = system_once(stack).await?;
    let after = raw_once(stack, "after").await?;
    for raw in [&before, &after] {
        anyhow::ensure!(
            rows == raw.rows,
            "burrow imported {rows} rows, the raw floor {}",
            raw.rows
        );
    }
    let raw_rows_per_sec = (before.rows_per_sec + after.rows_per_sec) / 2.0;
    Ok(ImportBench {
        file: file.display().to_string(),
        file_bytes,
        rows,
        ratio: system.rows_per_sec / raw_rows_per_sec,
        system,
        raw_rows_per_sec,
        raw: vec![before, after],
        worker_peak_rss_bytes,
        api_peak_rss_bytes,
    })
}

/// One raw import on empty tables, after a checkpoint; the tables are emptied again after.
async fn raw_once(stack: &Stack, when: &str) -> anyhow::Result<RawImport> {
    println!("  raw floor ({when}): calamine cell reader + one COPY, in this process");
    stack.reset_imported_rows().await?;
    let placeholder = stack.insert_placeholder_job(TAG).await?;
    let raw = raw::run(&stack.db, &stack.config().fixture, placeholder).await;
    // The placeholder goes before a worker could see it (the sweeper re-enqueues old
    // `processing` jobs).
    stack.reset_jobs().await?;
    let raw = raw?;
    println!(
        "    {} rows in {:.1} s: {} rows/s",
        thousands(raw.rows),
        raw.secs,
        rate(raw.rows_per_sec)
    );
    Ok(raw)
}

/// burrow's import: `(stages, rows, worker peak RSS, api peak RSS)`.
async fn system_once(stack: &Stack) -> anyhow::Result<(SystemImport, u64, u64, u64)> {
    let file = &stack.config().fixture;
    stack.reset_imported_rows().await?;
    let api = stack.start_api("import-api", &[]).await?;
    let mut worker = stack.start_worker("import-worker", &[]).await?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("people.xlsx")
        .to_owned();
    println!(
        "  burrow: upload {name} ({}) → one worker → succeeded",
        mib(bytes.len() as u64)
    );

    let meter = CpuMeter::start(Some(worker.pid()), Some(api.service.pid()));
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let job = api.client.upload(&name, bytes, TAG).await?;
    let upload = started.elapsed();
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
    let worker_peak = worker.peak_rss_bytes()?;
    let api_peak = api.service.peak_rss_bytes()?;
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
        upload_secs: upload.as_secs_f64(),
        to_start_secs: seconds(started_run - started_at) - upload.as_secs_f64(),
        run_secs: seconds(completed - started_run),
        commit_and_poll_secs: secs - seconds(completed - started_at),
        cpu,
    };
    println!(
        "    {} rows in {:.1} s: {} rows/s; worker peak RSS {}",
        thousands(rows),
        system.secs,
        rate(system.rows_per_sec),
        mib(worker_peak)
    );
    Ok((system, rows, worker_peak, api_peak))
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(0) as f64 / 1e6
}

impl ImportBench {
    /// Rows 1 and 2 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            Row {
                id: "1",
                benchmark: format!(
                    "import {} rows: upload → succeeded, 1 worker",
                    thousands(self.rows)
                ),
                burrow: format!(
                    "{} rows/s ({:.1} s)",
                    rate(self.system.rows_per_sec),
                    self.system.secs
                ),
                reference: format!(
                    "calamine + 1 COPY: {} rows/s ({})",
                    rate(self.raw_rows_per_sec),
                    self.raw
                        .iter()
                        .map(|r| format!("{:.1} s", r.secs))
                        .collect::<Vec<_>>()
                        .join(" before, ")
                        + " after"
                ),
                ratio: Some(self.ratio),
                target: format!("≥ {TARGET_RATIO:.2}× raw"),
                verdict: Verdict::from_bool(self.ratio >= TARGET_RATIO),
            },
            Row {
                id: "2",
                benchmark: "worker peak RSS during 1".to_owned(),
                burrow: mib(self.worker_peak_rss_bytes),
                reference: format!("file {}", mib(self.file_bytes)),
                ratio: None,
                target: format!("≤ {}", mib(TARGET_PEAK_RSS)),
                verdict: Verdict::from_bool(self.worker_peak_rss_bytes <= TARGET_PEAK_RSS),
            },
        ]
    }

    /// The stages and CPU of both sides.
    pub fn details(&self) -> Vec<String> {
        let s = &self.system;
        let mut lines = vec![format!(
            "1 burrow stages: upload → 202 {:.2} s, 202 → started {:.2} s, run {:.2} s, commit + poll {:.2} s; {}",
            s.upload_secs,
            s.to_start_secs,
            s.run_secs,
            s.commit_and_poll_secs,
            s.cpu.summary()
        )];
        for (raw, when) in self.raw.iter().zip(["before", "after"]) {
            lines.push(format!(
                "1 raw floor ({when}): {} rows/s; parser busy {:.2} s, waiting on COPY {:.2} s; {}",
                rate(raw.rows_per_sec),
                raw.parse_secs,
                raw.parser_waited_secs,
                raw.cpu.summary()
            ));
        }
        lines.push(format!(
            "2 api peak RSS during the upload: {} (not a target)",
            mib(self.api_peak_rss_bytes)
        ));
        lines
    }
}
