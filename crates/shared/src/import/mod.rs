//! The import processor: streams the rows of an uploaded spreadsheet (.xlsx, .xlsm, .xlsb,
//! .xls, .ods or CSV, recognised by content) into the table an import profile names, with
//! `COPY … FROM STDIN`, never one INSERT per row.
//!
//! Parsing is CPU-bound and synchronous (calamine, csv), so it runs on a blocking thread (two
//! for .xlsx and .xlsb: see `pipeline`) and hands COPY text chunks through a small bounded
//! channel to the async side, which streams them to Postgres. The two overlap on two cores, and
//! the bound keeps memory flat: at most [`PIPELINE_CHUNKS`] chunks of [`CHUNK_BYTES`] are in
//! flight.
//!
//! Layout: `format` (what the bytes are), `workbook` and `csv_text` (rows of cells), `profile`
//! and `profiles` (what to import where), `header` (finding the columns), `coerce` (one
//! cell), `rows` (one row, uniqueness, rejections), `pipeline` (a whole read's XML reading on a
//! thread of its own, its rows handed to the converting thread in batches), `sheet` (one read,
//! start to end), `load` (the SQL of each mode), `preview` (a dry run).

mod cell;
mod coerce;
mod column;
mod csv_text;
mod error;
mod format;
mod header;
mod limits;
mod load;
mod names;
mod pipeline;
mod preview;
mod profile;
mod profiles;
mod rejections;
mod rows;
mod sheet;
mod workbook;

use std::time::Duration;

use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::progress::Progress;

pub use coerce::is_email;
pub use column::{ColumnSpec, ColumnType};
pub use error::{cell_reference, ImportError};
pub use format::{detect_format, SheetFormat, UnsupportedFormat, PROBE_BYTES};
pub use header::{HeaderMap, MappedColumn};
#[cfg(feature = "cli")]
pub use limits::ImportLimitArgs;
pub use limits::{check_package, ImportLimits};
pub use names::normalize_header;
pub use preview::{preview, Preview, PREVIEW_ROWS, PREVIEW_SCAN_ROWS};
pub use profile::{
    is_identifier, ImportMode, Profile, ProfileError, SheetChoice, HEADER_SEARCH_ROWS, PEOPLE,
};
pub use profiles::Profiles;
pub use rejections::{
    rejection_report, OnError, Rejection, SourceCell, FIRST_ERRORS, REASON_TITLE, REPORT_CAP,
    REPORT_MAX_BYTES, SOURCE_ROW_TITLE,
};
pub use rows::CHUNK_BYTES;
pub use sheet::{ImportRequest, SheetReport};

/// COPY text chunks buffered between the parser thread and the database writer.
pub const PIPELINE_CHUNKS: usize = 4;

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
    /// The import profiles this process knows (`people` only by default).
    pub profiles: Profiles,
}

/// What an import wrote and what it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Valid rows read (and COPYed).
    pub rows: u64,
    /// Rows the final statement wrote: `rows` for append and replace; for upsert, inserted plus
    /// updated; for insert_new, inserted (the rest had existing keys).
    pub written: u64,
    /// Invalid rows skipped (`on_error=skip`; 0 otherwise).
    pub rejected_total: u64,
    /// The skipped rows, up to [`REPORT_CAP`].
    pub rejected: Vec<Rejection>,
    /// The header row's cells as written (the error report's header).
    pub header: Vec<String>,
    /// The sheet read.
    pub sheet: String,
}

/// Parses `file` exactly as [`import_file`] does (format, package limits, sheet, header, every
/// row) but writes nothing: the COPY text is dropped. Needs no database, so tests and the fuzz
/// targets (`crates/shared/tests/fuzz_import.rs`) can run the whole parser on untrusted bytes.
///
/// # Errors
/// The same [`ImportError`]s as [`import_file`], except `Database` and `Cancelled`.
pub fn parse_file(
    file: Vec<u8>,
    request: ImportRequest<'_>,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let read = sheet::read_sheet(
        file,
        Uuid::nil(),
        request,
        options,
        sheet::Extent::Whole,
        |_chunk, _done, _total| true,
    )?;
    Ok(ImportReport {
        rows: read.rows,
        written: read.rows,
        rejected_total: read.rejected_total,
        rejected: read.rejected,
        header: read.header.cells,
        sheet: read.sheet,
    })
}

/// [`parse_file`] with the built-in `people` profile.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_people(file: Vec<u8>, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let people = Profile::people();
    parse_file(file, ImportRequest::of(&people), options)
}

/// Imports `file` as the rows of job `job_id`, into the table of `request.profile`, in the
/// profile's mode (see `load.rs`); returns what was written and, with `on_error=skip`, what was
/// skipped.
///
/// Run it inside the transaction that also marks the job succeeded: on any error nothing of
/// it may be committed (the caller rolls back). Spreadsheet date-times are naive: the
/// transaction's time zone is set to UTC so they are stored as UTC.
///
/// Reports rows done of the sheet's declared rows to `progress` per chunk, and stops with
/// [`ImportError::Cancelled`] at the next chunk once `cancel` is cancelled.
///
/// # Errors
/// [`ImportError`]: the file's faults are permanent ([`ImportError::is_permanent`]), and so
/// are rows the table refuses (a check constraint, a type the profile did not catch); other
/// [`ImportError::Database`] errors are transient.
pub async fn import_file(
    conn: &mut PgConnection,
    job_id: Uuid,
    file: Vec<u8>,
    request: ImportRequest<'_>,
    options: &ImportOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ImportReport, ImportError> {
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    let profile = request.profile;
    let (chunks_tx, mut chunks) = mpsc::channel::<(Vec<u8>, u64, u64)>(PIPELINE_CHUNKS);
    let settings = options.clone();
    let (sheet_choice, header_row) = (request.sheet.cloned(), request.header_row);
    let parser = {
        // The parser thread outlives this borrow: it gets its own copy.
        let profile = profile.clone();
        tokio::task::spawn_blocking(move || {
            let request = ImportRequest {
                profile: &profile,
                sheet: sheet_choice.as_ref(),
                header_row,
            };
            sheet::read_sheet(
                file,
                job_id,
                request,
                &settings,
                sheet::Extent::Whole,
                |chunk, done, total| chunks_tx.blocking_send((chunk, done, total)).is_ok(),
            )
        })
    };

    let mut copy = load::begin(&mut *conn, profile, job_id).await?;
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
        .map_err(|e| ImportError::ParserFailed(error::clip(e.to_string())))
        .and_then(|result| result);

    if let Some(e) = write_error {
        let _ = copy.abort("write failed").await;
        return Err(ImportError::from_copy(e));
    }
    if cancelled {
        let _ = copy.abort("cancelled").await;
        return Err(ImportError::Cancelled);
    }
    let read = match parsed {
        Ok(read) => read,
        Err(e) => {
            // The transaction is rolled back by the caller; abort ends the COPY cleanly first.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    };
    progress.set(read.rows, read.rows);
    let copied = copy.finish().await.map_err(ImportError::from_copy)?;
    debug_assert_eq!(copied, read.rows, "COPY row count matches the parser's");
    let written = load::finish(&mut *conn, profile, copied)
        .await
        .map_err(ImportError::from_copy)?;
    Ok(ImportReport {
        rows: read.rows,
        written,
        rejected_total: read.rejected_total,
        rejected: read.rejected,
        header: read.header.cells,
        sheet: read.sheet,
    })
}

/// [`import_file`] with the built-in `people` profile and its defaults.
///
/// # Errors
/// As [`import_file`].
pub async fn import_people(
    conn: &mut PgConnection,
    job_id: Uuid,
    file: Vec<u8>,
    options: &ImportOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ImportReport, ImportError> {
    let people = Profile::people();
    let request = ImportRequest::of(&people);
    import_file(conn, job_id, file, request, options, progress, cancel).await
}
