//! Invalid rows: what to do with them (`on_error`), how they are listed, and the downloadable
//! error report of an `on_error=skip` import.

use calamine::DataRef;
use rust_xlsxwriter::{Workbook, XlsxError};
use serde::{Deserialize, Serialize};

/// What an import does with invalid rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Reject the whole file (the default): nothing is written, the job fails with the first
    /// [`FIRST_ERRORS`] invalid rows in its message and all of them in its error report.
    #[default]
    Reject,
    /// Import the valid rows; the rejected ones go to an error report (the job's result file).
    Skip,
}

/// Invalid rows listed in a rejected file's message (its error report lists them all).
pub const FIRST_ERRORS: usize = 20;
/// Rejections kept for the error report (the count goes on beyond it).
pub const REPORT_CAP: usize = 100_000;

/// Bytes of original cell text kept for the error report (32 MiB): past it, rejected rows are
/// still counted and listed in the message, but the report says how many it leaves out. Keeps a
/// wide sheet full of bad rows within the worker's memory budget.
pub const REPORT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// A cell of a rejected row as the file held it, for the error report.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceCell {
    /// No value.
    Empty,
    /// Text, and what has no cell type of its own in the report (a date is written as its ISO
    /// 8601 text, an Excel error as `#DIV/0!` and the like).
    Text(String),
    /// A number.
    Number(f64),
    /// `TRUE` or `FALSE`.
    Bool(bool),
}

impl SourceCell {
    /// The report's copy of `cell`.
    pub fn of(cell: &DataRef<'_>) -> SourceCell {
        match cell {
            DataRef::Empty => SourceCell::Empty,
            DataRef::String(s) => SourceCell::Text(s.clone()),
            DataRef::SharedString(s) => SourceCell::Text((*s).to_owned()),
            DataRef::Int(i) => SourceCell::Number(*i as f64),
            DataRef::Float(f) => SourceCell::Number(*f),
            DataRef::Bool(b) => SourceCell::Bool(*b),
            DataRef::DateTime(date) => SourceCell::Text(match date.as_datetime() {
                Some(at) if at.time() == chrono::NaiveTime::MIN => at.date().to_string(),
                Some(at) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
                None => date.as_f64().to_string(),
            }),
            DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => {
                SourceCell::Text(text.clone())
            }
            DataRef::Error(e) => SourceCell::Text(e.to_string()),
        }
    }

    /// Bytes this copy holds (its text), for [`REPORT_MAX_BYTES`].
    pub fn size(&self) -> usize {
        match self {
            SourceCell::Text(text) => text.len(),
            _ => 8,
        }
    }
}

/// One invalid row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Spreadsheet row number (1-based).
    pub row: u32,
    /// The column's header name (the profile's; the key's columns for a repeated key).
    pub column: String,
    /// The A1-style cell reference.
    pub cell: String,
    /// The value found, described briefly.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
    /// The row's cells as the file held them, for the error report (empty once the report's
    /// [`REPORT_MAX_BYTES`] are used up).
    pub original: Vec<SourceCell>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cell.is_empty() {
            // A key of several columns has no one cell.
            return write!(
                f,
                "row {}, column {}: {}",
                self.row, self.column, self.reason
            );
        }
        write!(
            f,
            "row {}, column {} (cell {}): {}",
            self.row, self.column, self.cell, self.reason
        )
    }
}

/// Title of the report column that gives a rejected row's number in the uploaded file.
pub const SOURCE_ROW_TITLE: &str = "Source row";
/// Title of the report column that says why a row was rejected.
pub const REASON_TITLE: &str = "Rejected because";

/// The error report of an import that rejected rows: an .xlsx whose sheet "Rejected rows"
/// holds the uploaded header (`header`, the header row's cells as written) and under it each
/// rejected row with its original values, then two more columns: [`SOURCE_ROW_TITLE`] (its
/// row number in the upload) and [`REASON_TITLE`] (column, cell and why). Fixed and
/// re-uploaded, the file imports with the same profile (the two extra columns are ignored).
/// Rows whose values were not kept (past [`REPORT_CAP`] rows or [`REPORT_MAX_BYTES`]) are
/// counted on a last line, as are the rejections beyond `rejections` (`total` in all).
///
/// # Errors
/// rust_xlsxwriter's error.
///
/// ```
/// use burrow_shared::import::{rejection_report, Rejection, SourceCell};
///
/// let bad = Rejection {
///     row: 7,
///     column: "Id".to_owned(),
///     cell: "A7".to_owned(),
///     value: "\"abc\"".to_owned(),
///     reason: "expected a whole number, found \"abc\"".to_owned(),
///     original: vec![SourceCell::Text("abc".to_owned()), SourceCell::Text("Ada".to_owned())],
/// };
/// let xlsx = rejection_report(&["id".to_owned(), "first_name".to_owned()], &[bad], 1)?;
/// assert_eq!(&xlsx[..2], b"PK");
/// # Ok::<(), rust_xlsxwriter::XlsxError>(())
/// ```
pub fn rejection_report(
    header: &[String],
    rejections: &[Rejection],
    total: u64,
) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name("Rejected rows")?;
    let width = rejections
        .iter()
        .map(|r| r.original.len())
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    let width = u16::try_from(width).unwrap_or(u16::MAX - 2);
    for (column, title) in (0..width).zip(header) {
        sheet.write_string(0, column, title)?;
    }
    sheet.write_string(0, width, SOURCE_ROW_TITLE)?;
    sheet.write_string(0, width + 1, REASON_TITLE)?;
    let mut line = 1u32;
    for rejection in rejections {
        if rejection.original.is_empty() {
            continue;
        }
        for (column, cell) in (0..width).zip(&rejection.original) {
            match cell {
                SourceCell::Empty => {}
                SourceCell::Text(text) => {
                    sheet.write_string(line, column, text)?;
                }
                SourceCell::Number(number) => {
                    sheet.write_number(line, column, *number)?;
                }
                SourceCell::Bool(value) => {
                    sheet.write_boolean(line, column, *value)?;
                }
            }
        }
        sheet.write_number(line, width, f64::from(rejection.row))?;
        let mut reason = rejection.to_string();
        // "row 7, column Id (cell A7): …" → "column Id (cell A7): …": the row has its column.
        if let Some(rest) = reason.strip_prefix(&format!("row {}, ", rejection.row)) {
            reason = rest.to_owned();
        }
        sheet.write_string(line, width + 1, &reason)?;
        line += 1;
    }
    let left_out = total.saturating_sub(line as u64 - 1);
    if left_out > 0 {
        sheet.write_string(
            line,
            width + 1,
            format!("… and {left_out} more rejected rows, not listed here"),
        )?;
    }
    workbook.save_to_buffer()
}
