//! The xlsx import processor: streams the people sheet of an uploaded workbook into
//! `imported_rows` with one `COPY … FROM STDIN`, never one INSERT per row.
//!
//! Parsing is CPU-bound and synchronous (calamine), so it runs on a blocking thread and hands
//! COPY text chunks through a small bounded channel to the async side, which streams them to
//! Postgres. The two overlap on two cores, and the bound keeps memory flat: at most
//! [`PIPELINE_CHUNKS`] chunks of [`sheet::CHUNK_BYTES`] are in flight.

mod columns;
mod error;
mod limits;
mod record;
mod rejections;
mod sheet;
mod sniff;

use std::time::Duration;

use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::progress::Progress;

pub use columns::COLUMNS;
pub use error::{cell_reference, ImportError};
pub use limits::{check_package, ImportLimits};
pub use rejections::{rejection_report, OnError, Rejection, FIRST_ERRORS, REPORT_CAP};
pub use sniff::{sniff_xlsx, NotXlsx};

/// COPY text chunks buffered between the parser thread and the database writer.
pub const PIPELINE_CHUNKS: usize = 4;

const COPY_ROWS: &str = "COPY imported_rows \
    (job_id, row_number, id, first_name, last_name, email, gender, ip_address) FROM STDIN";

/// Knobs of one import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Sleep after each row. Zero in production; the demo sets a few milliseconds so a person
    /// can watch jobs overlap.
    pub row_delay: Duration,
    /// Limits against hostile files.
    pub limits: ImportLimits,
    /// What to do with invalid rows.
    pub on_error: OnError,
}

/// What an import wrote and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows written.
    pub rows: u64,
    /// Invalid rows skipped (`on_error=skip`; 0 otherwise).
    pub rejected_total: u64,
    /// The skipped rows, up to [`REPORT_CAP`].
    pub rejected: Vec<Rejection>,
}

/// Parses `file` exactly as [`import_people`] does (package limits, header, every row) but
/// writes nothing: the COPY text is dropped. Needs no database, so tests and the fuzz targets
/// (`crates/shared/tests/fuzz_import.rs`) can run the whole parser on untrusted bytes.
///
/// # Errors
/// The same [`ImportError`]s as [`import_people`], except `Database` and `Cancelled`.
pub fn parse_people(file: Vec<u8>, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    sheet::read_people(file, Uuid::nil(), options, |_chunk, _done, _total| true)
}

/// Imports `file` as the rows of job `job_id` and returns how many rows were written (and,
/// with `on_error=skip`, which were skipped).
///
/// First deletes any rows the job already has, so a re-run replaces instead of appending. Run
/// it inside the transaction that also marks the job succeeded: on any error nothing of it may
/// be committed (the caller rolls back).
///
/// Reports rows done of the sheet's declared rows to `progress` per chunk, and stops with
/// [`ImportError::Cancelled`] at the next chunk once `cancel` is cancelled.
///
/// # Errors
/// [`ImportError`]: the file's faults are permanent ([`ImportError::is_permanent`]); a
/// [`ImportError::Database`] is transient.
pub async fn import_people(
    conn: &mut PgConnection,
    job_id: Uuid,
    file: Vec<u8>,
    options: &ImportOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ImportReport, ImportError> {
    sqlx::query("DELETE FROM imported_rows WHERE job_id = $1")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;

    let (chunks_tx, mut chunks) = mpsc::channel::<(Vec<u8>, u64, u64)>(PIPELINE_CHUNKS);
    let settings = options.clone();
    let parser = tokio::task::spawn_blocking(move || {
        sheet::read_people(file, job_id, &settings, |chunk, done, total| {
            chunks_tx.blocking_send((chunk, done, total)).is_ok()
        })
    });

    let mut copy = conn.copy_in_raw(COPY_ROWS).await?;
    let mut write_error = None;
    let mut cancelled = false;
    while let Some((chunk, done, total)) = chunks.recv().await {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        if let Err(e) = copy.send(chunk).await {
            write_error = Some(e);
            break;
        }
        progress.set(done, total.max(done));
    }
    // Dropping the receiver unblocks a parser still sending after a write error.
    drop(chunks);
    let parsed = parser
        .await
        .map_err(|e| ImportError::ParserFailed(e.to_string()))
        .and_then(|result| result);

    if let Some(e) = write_error {
        let _ = copy.abort("write failed").await;
        return Err(e.into());
    }
    if cancelled {
        let _ = copy.abort("cancelled").await;
        return Err(ImportError::Cancelled);
    }
    match parsed {
        Ok(report) => {
            progress.set(report.rows, report.rows);
            let copied = copy.finish().await?;
            debug_assert_eq!(copied, report.rows, "COPY row count matches the parser's");
            Ok(report)
        }
        Err(e) => {
            // The transaction is rolled back by the caller; abort ends the COPY cleanly first.
            let _ = copy.abort(e.to_string()).await;
            Err(e)
        }
    }
}
