//! Streaming the people sheet out of an .xlsx with calamine's cell reader.
//!
//! The reader walks the worksheet XML cell by cell, so memory holds one row at a time (plus the
//! workbook's shared-strings table), never a whole-sheet `Range`, which for a 1,000,000-row file
//! is ~700 MB.

use std::collections::hash_map::{Entry, HashMap};
use std::io::Cursor;
use std::time::Duration;

use calamine::{DataRef, Reader, Xlsx};
use uuid::Uuid;

use super::columns::{map_header, HeaderMap};
use super::error::ImportError;
use super::limits::{check_package, ImportLimits};
use super::record::{encode_row, is_blank};
use super::rejections::{OnError, Rejection, FIRST_ERRORS, REPORT_CAP};
use super::{ImportOptions, ImportReport};

/// Bytes of COPY text gathered before a chunk is handed to the database writer.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Reads the people rows of `file` and hands them, as COPY text chunks of about
/// [`CHUNK_BYTES`], to `emit` together with the rows read so far and the sheet's declared row
/// count (its `<dimension>`, 0 if absent; an estimate for progress only). Returns the number of
/// data rows.
///
/// Reads the worksheet named `Data` (any case), else the first one. The first non-blank row is
/// the header; blank rows are skipped. Invalid rows (see [`super::record::encode_row`]) and
/// repeated Ids are rejected or skipped as `options.on_error` says. `options.row_delay` sleeps
/// after each row (demo pacing only).
/// `emit` returning `false` stops the read (the consumer went away) with
/// [`ImportError::ParserFailed`].
///
/// # Errors
/// Any [`ImportError`] except `Database`: the first invalid cell stops the read. A panic inside
/// the spreadsheet parser on malformed XML (calamine 0.38 overflows on absurd cell references,
/// found by `tests/fuzz_import.rs`) is caught and reported as [`ImportError::Unreadable`].
pub fn read_people(
    file: Vec<u8>,
    job_id: Uuid,
    options: &ImportOptions,
    emit: impl FnMut(Vec<u8>, u64, u64) -> bool,
) -> Result<ImportReport, ImportError> {
    // Nothing shared outlives a panic here: the workbook and buffers are local to the call.
    let guarded = std::panic::AssertUnwindSafe(|| read_unguarded(file, job_id, options, emit));
    std::panic::catch_unwind(guarded).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(ImportError::Unreadable(format!(
            "malformed sheet XML ({what})"
        )))
    })
}

fn read_unguarded(
    file: Vec<u8>,
    job_id: Uuid,
    options: &ImportOptions,
    mut emit: impl FnMut(Vec<u8>, u64, u64) -> bool,
) -> Result<ImportReport, ImportError> {
    let limits = &options.limits;
    // The worker does not trust the api: the package is checked again before parsing.
    check_package(&file, limits)?;
    let unreadable = |e: calamine::XlsxError| ImportError::Unreadable(e.to_string());
    let mut workbook = Xlsx::new(Cursor::new(file)).map_err(unreadable)?;
    let names = workbook.sheet_names();
    let sheet = names
        .iter()
        .find(|name| name.eq_ignore_ascii_case("Data"))
        .or_else(|| names.first())
        .cloned()
        .ok_or(ImportError::NoWorksheet)?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(unreadable)?;
    let dimensions = cells.dimensions();
    // Rows under the header, as the sheet declares them (an estimate, for progress only).
    let declared = u64::from(dimensions.end.0.saturating_sub(dimensions.start.0));
    if declared > limits.max_rows {
        return Err(ImportError::Limit(format!(
            "sheet {sheet:?} declares {declared} rows (limit {})",
            limits.max_rows
        )));
    }

    let mut rows = RowSink {
        job_id,
        header: None,
        buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
        count: 0,
        row_delay: options.row_delay,
        on_error: options.on_error,
        seen_ids: HashMap::new(),
        rejected: Vec::new(),
        rejected_total: 0,
    };
    let mut current_row: Option<u32> = None;
    let mut row_cells: Vec<DataRef<'_>> = Vec::new();
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (row, column) = cell.get_position();
        if current_row != Some(row) {
            if let Some(done) = current_row {
                rows.finish_row(done, &row_cells, limits)?;
                if rows.buffer.len() >= CHUNK_BYTES
                    && !emit(rows.take_chunk(), rows.count, declared)
                {
                    return Err(ImportError::ParserFailed(
                        "the database writer stopped".to_owned(),
                    ));
                }
            }
            current_row = Some(row);
            row_cells.clear();
        }
        if column >= limits.max_columns {
            return Err(ImportError::Limit(format!(
                "cell {} is beyond column {} (limit {} columns)",
                super::error::cell_reference(row, column),
                limits.max_columns,
                limits.max_columns
            )));
        }
        let column = column as usize;
        if rows
            .header
            .as_ref()
            .is_some_and(|h| column > h.last_position())
        {
            continue;
        }
        if row_cells.len() <= column {
            row_cells.resize(column + 1, DataRef::Empty);
        }
        row_cells[column] = cell.get_value().clone();
    }
    if let Some(done) = current_row {
        rows.finish_row(done, &row_cells, limits)?;
    }
    if rows.header.is_none() {
        return Err(ImportError::EmptySheet { sheet });
    }
    if rows.count + rows.rejected_total == 0 {
        return Err(ImportError::NoDataRows { sheet });
    }
    if rows.on_error == OnError::Reject && rows.rejected_total > 0 {
        return Err(rows.invalid_rows(true));
    }
    if !rows.buffer.is_empty() && !emit(rows.take_chunk(), rows.count, declared) {
        return Err(ImportError::ParserFailed(
            "the database writer stopped".to_owned(),
        ));
    }
    Ok(ImportReport {
        rows: rows.count,
        rejected_total: rows.rejected_total,
        rejected: rows.rejected,
    })
}

/// Turns finished rows into COPY text: the first non-blank row into the header map, the rest
/// into lines.
struct RowSink {
    job_id: Uuid,
    header: Option<HeaderMap>,
    buffer: Vec<u8>,
    count: u64,
    row_delay: Duration,
    on_error: OnError,
    /// Each Id seen, with the spreadsheet row it was first seen in (duplicates are invalid).
    seen_ids: HashMap<i64, u32>,
    rejected: Vec<Rejection>,
    rejected_total: u64,
}

impl RowSink {
    fn finish_row(
        &mut self,
        row: u32,
        cells: &[DataRef<'_>],
        limits: &ImportLimits,
    ) -> Result<(), ImportError> {
        if is_blank(cells) {
            return Ok(());
        }
        if self.count >= limits.max_rows {
            return Err(ImportError::Limit(format!(
                "more than {} data rows",
                limits.max_rows
            )));
        }
        match &self.header {
            None => self.header = Some(map_header(row + 1, cells)?),
            Some(header) => {
                let start = self.buffer.len();
                let encoded = encode_row(
                    &mut self.buffer,
                    &self.job_id,
                    row,
                    header,
                    cells,
                    limits.max_cell_chars,
                );
                match encoded {
                    Ok(id) => match self.seen_ids.entry(id) {
                        Entry::Occupied(first) => {
                            self.buffer.truncate(start);
                            let rejection = Rejection {
                                row: row + 1,
                                column: "Id",
                                cell: super::error::cell_reference(row, header.positions[0] as u32),
                                value: id.to_string(),
                                reason: format!(
                                    "Id {id} appears again (first in row {})",
                                    first.get()
                                ),
                            };
                            self.reject(rejection)?;
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(row + 1);
                            self.count += 1;
                        }
                    },
                    Err(ImportError::InvalidCell {
                        row,
                        column,
                        cell,
                        value,
                        reason,
                    }) => {
                        self.reject(Rejection {
                            row,
                            column,
                            cell,
                            value,
                            reason,
                        })?;
                    }
                    Err(other) => return Err(other),
                }
                if !self.row_delay.is_zero() {
                    std::thread::sleep(self.row_delay);
                }
            }
        }
        Ok(())
    }

    /// Records an invalid row. With `on_error=reject`, stops the read once [`FIRST_ERRORS`]
    /// are known (the file is rejected anyway; the message lists them).
    fn reject(&mut self, rejection: Rejection) -> Result<(), ImportError> {
        self.rejected_total += 1;
        if self.rejected.len() < REPORT_CAP {
            self.rejected.push(rejection);
        }
        if self.on_error == OnError::Reject && self.rejected.len() >= FIRST_ERRORS {
            return Err(self.invalid_rows(false));
        }
        Ok(())
    }

    fn invalid_rows(&mut self, complete: bool) -> ImportError {
        ImportError::InvalidRows {
            total: self.rejected_total,
            first: self.rejected.drain(..).take(FIRST_ERRORS).collect(),
            complete,
        }
    }

    fn take_chunk(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES + 4096))
    }
}
