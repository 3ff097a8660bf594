//! The raw floor of an import: the file read with the parser burrow's importer uses (calamine's
//! cell reader for .xlsx, the `csv` crate for .csv) and its rows written with one
//! `COPY … FROM STDIN`, in this one process: no api, no broker, no job bookkeeping, no
//! validation beyond what COPY needs.
//!
//! It is deliberately the best this machine can do with the same libraries: parsing runs on a
//! blocking thread and hands COPY text chunks of 256 KiB through a channel of four to the async
//! side, which streams them to Postgres, so parsing and the database overlap on the two cores
//! (the shape burrow's worker also has). It writes into the same table as the burrow import it
//! is compared with: `imported_rows` (with a job id and row numbers) for the `people` profile,
//! or a bench-created people table ([`Target::Table`]) for a profile of the bench's own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::copy_lines::LineWriter;
use super::{csv_rows, xlsx_rows};
use crate::cpu::{CpuBreakdown, CpuMeter};
use crate::stats::rate;

/// Chunks in flight between the parser and the writer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The people columns of every target, in COPY order.
const PEOPLE_COLUMNS: &str = "id, first_name, last_name, email, gender, ip_address";

/// Where the raw import writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// `imported_rows`, as the rows of this job (a row of `jobs` that exists), numbered as the
    /// sheet's rows.
    ImportedRows(Uuid),
    /// A table of the bench database with the six people columns (a plain identifier).
    Table(String),
}

impl Target {
    fn copy_statement(&self) -> String {
        match self {
            Target::ImportedRows(_) => {
                format!("COPY imported_rows (job_id, row_number, {PEOPLE_COLUMNS}) FROM STDIN")
            }
            Target::Table(table) => format!("COPY \"{table}\" ({PEOPLE_COLUMNS}) FROM STDIN"),
        }
    }

    fn line_writer(&self) -> LineWriter {
        match self {
            Target::ImportedRows(job_id) => LineWriter::new(Some(job_id.to_string())),
            Target::Table(_) => LineWriter::new(None),
        }
    }
}

/// What the raw import took.
#[derive(Debug, Clone, Serialize)]
pub struct RawImport {
    /// Rows COPY wrote.
    pub rows: u64,
    /// From reading the file to COPY's end (committed), in seconds.
    pub secs: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
    /// Seconds the parser thread worked (its whole life less the time it waited on a full
    /// channel): the parser plus COPY text encoding.
    pub parse_secs: f64,
    /// Seconds the parser waited because the database writer was behind.
    pub parser_waited_secs: f64,
    /// CPU per component over the run.
    pub cpu: CpuBreakdown,
}

impl RawImport {
    /// `1,000,000 rows in 4.3 s: 231,000 rows/s`, printed as the run ends.
    pub fn progress_line(&self) -> String {
        format!(
            "    {} rows in {:.1} s: {} rows/s",
            crate::stats::thousands(self.rows),
            self.secs,
            rate(self.rows_per_sec)
        )
    }

    /// `231,000 rows/s in 4.3 s; parser busy 3.1 s, waiting on COPY 0.2 s; CPU s: …`.
    pub fn summary(&self) -> String {
        format!(
            "{} rows/s in {:.1} s; parser busy {:.2} s, waiting on COPY {:.2} s; {}",
            rate(self.rows_per_sec),
            self.secs,
            self.parse_secs,
            self.parser_waited_secs,
            self.cpu.summary()
        )
    }
}

/// The raw floor's runs before and after burrow's import of the same file, checked to have
/// written burrow's `rows`: the runs and their mean rows per second (the reference).
///
/// # Errors
/// If a run's row count differs from burrow's.
pub fn bracket(
    rows: u64,
    before: RawImport,
    after: RawImport,
) -> anyhow::Result<(Vec<RawImport>, f64)> {
    for raw in [&before, &after] {
        anyhow::ensure!(
            rows == raw.rows,
            "burrow imported {rows} rows, the raw floor {}",
            raw.rows
        );
    }
    let mean = (before.rows_per_sec + after.rows_per_sec) / 2.0;
    Ok((vec![before, after], mean))
}

/// `{row} raw floor (before): …` and `(after)`: the detail lines of a [`bracket`]'s runs.
pub fn detail_lines(row: &str, raws: &[RawImport]) -> Vec<String> {
    raws.iter()
        .zip(["before", "after"])
        .map(|(raw, when)| format!("{row} raw floor ({when}): {}", raw.summary()))
        .collect()
}

/// `4.3 s before, 4.4 s after`: the times of a reference run before and after burrow's.
pub fn before_after(raws: &[RawImport]) -> String {
    raws.iter()
        .zip(["before", "after"])
        .map(|(r, when)| format!("{:.1} s {when}", r.secs))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Imports `file` (`.csv` by its name, else .xlsx) into `target`.
///
/// # Errors
/// If the file cannot be read or parsed, or COPY fails.
pub async fn run(db: &PgPool, file: &Path, target: &Target) -> anyhow::Result<RawImport> {
    let csv = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut conn = db.acquire().await?;
    let meter = CpuMeter::start(None, None);
    let started = Instant::now();
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (chunks_tx, mut chunks) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let mut writer = target.line_writer();
    let parser = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let parsed = if csv {
            csv_rows::parse(&bytes, &mut writer, &chunks_tx)
        } else {
            xlsx_rows::parse(bytes, &mut writer, &chunks_tx)
        };
        parsed.map(|()| Parsed {
            rows: writer.rows,
            lifetime: started.elapsed(),
            waited: writer.waited,
        })
    });

    let mut copy = conn.copy_in_raw(&target.copy_statement()).await?;
    let mut write_error = None;
    while let Some(chunk) = chunks.recv().await {
        if let Err(e) = copy.send(chunk).await {
            write_error = Some(e);
            break;
        }
    }
    drop(chunks);
    let parsed = parser.await.context("the parser thread panicked")?;
    if let Some(e) = write_error {
        let _ = copy.abort("write failed").await;
        return Err(e).context("COPY");
    }
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = copy.abort("parse failed").await;
            return Err(e);
        }
    };
    let rows = copy.finish().await.context("finishing COPY")?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        rows == parsed.rows,
        "COPY wrote {rows} rows, the parser sent {}",
        parsed.rows
    );
    Ok(RawImport {
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        parse_secs: (parsed.lifetime - parsed.waited).as_secs_f64(),
        parser_waited_secs: parsed.waited.as_secs_f64(),
        cpu: meter.finish(),
    })
}

/// What the parser thread did.
struct Parsed {
    rows: u64,
    lifetime: Duration,
    waited: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_copies_the_people_columns() {
        let job = Uuid::nil();
        assert_eq!(
            Target::ImportedRows(job).copy_statement(),
            "COPY imported_rows (job_id, row_number, id, first_name, last_name, email, gender, \
             ip_address) FROM STDIN"
        );
        assert_eq!(
            Target::Table("bench_typed_people".into()).copy_statement(),
            "COPY \"bench_typed_people\" (id, first_name, last_name, email, gender, ip_address) \
             FROM STDIN"
        );
    }
}
