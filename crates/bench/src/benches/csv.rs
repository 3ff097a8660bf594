//! Benchmark 7: the same people rows as row 1, as a `.csv` file (`BENCH_CSV_FIXTURE`,
//! `burrow-fixtures big --out ….csv`), uploaded with `profile=people` and imported end to end
//! by one worker with its defaults. The target is absolute (rows per second); the raw floor —
//! the `csv` crate + one `COPY imported_rows` in this process, before and after — is there for
//! context, as row 1's is.

use anyhow::Context as _;
use serde::Serialize;

use crate::benches::import::raw_imported_rows;
use crate::benches::upload::{self, SystemImport, Upload};
use crate::reference::import::{self as raw, RawImport};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{rate, thousands};

/// Target: rows per second of the CSV import, upload start → succeeded.
pub const TARGET_ROWS_PER_SEC: f64 = 300_000.0;
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-csv";

/// What benchmark 7 measured.
#[derive(Debug, Clone, Serialize)]
pub struct CsvBench {
    /// The CSV file.
    pub file: String,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Rows imported (the same on both sides).
    pub rows: u64,
    /// burrow, end to end.
    pub system: SystemImport,
    /// The raw floor, before and after burrow's import.
    pub raw: Vec<RawImport>,
    /// Their mean rows per second.
    pub raw_rows_per_sec: f64,
}

/// Runs benchmark 7: the raw floor, burrow, the raw floor again.
///
/// # Errors
/// If the file is missing, a process does not start, the import fails, or a deadline passes.
pub async fn run(stack: &Stack) -> anyhow::Result<CsvBench> {
    let file = stack.config().csv_fixture.clone();
    let file_bytes = std::fs::metadata(&file)
        .with_context(|| {
            format!(
                "{} is missing: `burrow-fixtures big --rows 1000000 --out {}` writes it",
                file.display(),
                file.display()
            )
        })?
        .len();
    let before = raw_imported_rows(stack, &file, "before").await?;
    stack.reset_imported_rows().await?;
    let burrow = upload::run(
        stack,
        Upload {
            name: "csv",
            file: &file,
            profile: Some("people"),
            tag: TAG,
            env: &[],
        },
    )
    .await?;
    let after = raw_imported_rows(stack, &file, "after").await?;
    stack.reset_imported_rows().await?;
    let (raw, raw_rows_per_sec) = raw::bracket(burrow.rows, before, after)?;
    Ok(CsvBench {
        file: file.display().to_string(),
        file_bytes,
        rows: burrow.rows,
        system: burrow.system,
        raw_rows_per_sec,
        raw,
    })
}

impl CsvBench {
    /// Row 7 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "7",
            benchmark: format!(
                "import {} rows as .csv (profile people): upload → succeeded, 1 worker",
                thousands(self.rows)
            ),
            burrow: format!(
                "{} rows/s ({:.1} s)",
                rate(self.system.rows_per_sec),
                self.system.secs
            ),
            reference: format!(
                "csv crate + 1 COPY: {} rows/s (context, not the target)",
                rate(self.raw_rows_per_sec)
            ),
            ratio: Some(self.system.rows_per_sec / self.raw_rows_per_sec),
            target: format!("≥ {} rows/s", rate(TARGET_ROWS_PER_SEC)),
            verdict: Verdict::from_bool(self.system.rows_per_sec >= TARGET_ROWS_PER_SEC),
        }]
    }

    /// The stages and CPU of both sides.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!("7 burrow stages: {}", self.system.stages())];
        lines.extend(raw::detail_lines("7", &self.raw));
        lines
    }
}
