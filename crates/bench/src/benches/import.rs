//! Benchmarks 1 and 2: the big people workbook imported end to end — uploaded through the api,
//! imported by one worker with the default settings, from the upload's first byte until the
//! job is seen `succeeded` — against the raw floor ([`crate::reference::import`]) on the same
//! file, database and table; and the worker's peak RSS (`VmHWM`) during that import.
//!
//! The raw floor runs before and after burrow's import and the reference is their mean, so a
//! change in the machine's other load during the bench weighs on both sides. Every import
//! starts on an empty `imported_rows` right after a `CHECKPOINT`. Row 1 has two targets, both to
//! be met: a share of the raw floor, and an absolute rate (issue 13 point 8).

use anyhow::Context as _;
use serde::Serialize;
use uuid::Uuid;

use crate::benches::upload::{self, SystemImport, Upload};
use crate::reference::import::{self as raw, RawImport, Target};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{mib, rate, thousands};

/// Target: the end-to-end import reaches this share of the raw floor's rows per second.
pub const TARGET_RATIO: f64 = 0.8;
/// Target (also row 1): the end-to-end import's rows per second, whatever the raw floor.
pub const TARGET_ROWS_PER_SEC: f64 = 150_000.0;
/// Target: the worker's peak RSS during the import, in bytes.
pub const TARGET_PEAK_RSS: u64 = 256 * 1024 * 1024;
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

    let before = raw_imported_rows(stack, &file, "before").await?;
    stack.reset_imported_rows().await?;
    let burrow = upload::run(
        stack,
        Upload {
            name: "import",
            file: &file,
            profile: None,
            tag: TAG,
            env: &[],
        },
    )
    .await?;
    let after = raw_imported_rows(stack, &file, "after").await?;
    let (raw, raw_rows_per_sec) = raw::bracket(burrow.rows, before, after)?;
    Ok(ImportBench {
        file: file.display().to_string(),
        file_bytes,
        rows: burrow.rows,
        ratio: burrow.system.rows_per_sec / raw_rows_per_sec,
        system: burrow.system,
        raw_rows_per_sec,
        raw,
        worker_peak_rss_bytes: burrow.worker_peak_rss_bytes,
        api_peak_rss_bytes: burrow.api_peak_rss_bytes,
    })
}

/// One raw import of `file` into `imported_rows`, on empty tables after a checkpoint; the job
/// tables are emptied again after. Rows 1 (xlsx) and 7 (CSV).
pub(crate) async fn raw_imported_rows(
    stack: &Stack,
    file: &std::path::Path,
    when: &str,
) -> anyhow::Result<RawImport> {
    println!(
        "  raw floor ({when}): the file's parser + one COPY into imported_rows, in this process"
    );
    stack.reset_imported_rows().await?;
    // A job id no row of `jobs` has: `imported_rows` has no foreign key, and the rows are
    // truncated before the next import.
    let raw = raw::run(&stack.db, file, &Target::ImportedRows(Uuid::now_v7())).await?;
    println!("{}", raw.progress_line());
    Ok(raw)
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
                    raw::before_after(&self.raw)
                ),
                ratio: Some(self.ratio),
                target: format!(
                    "≥ {TARGET_RATIO:.2}× raw and ≥ {} rows/s",
                    rate(TARGET_ROWS_PER_SEC)
                ),
                verdict: Verdict::from_bool(
                    self.ratio >= TARGET_RATIO && self.system.rows_per_sec >= TARGET_ROWS_PER_SEC,
                ),
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
        let mut lines = vec![format!("1 burrow stages: {}", self.system.stages())];
        lines.extend(raw::detail_lines("1", &self.raw));
        lines.push(format!(
            "2 api peak RSS during the upload: {} (not a target)",
            mib(self.api_peak_rss_bytes)
        ));
        lines
    }
}
