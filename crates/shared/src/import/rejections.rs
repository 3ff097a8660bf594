//! Invalid rows: what to do with them (`on_error`), how they are listed, and the downloadable
//! error report of an `on_error=skip` import.

use rust_xlsxwriter::{Workbook, XlsxError};
use serde::{Deserialize, Serialize};

/// What an import does with invalid rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Reject the whole file, listing the first [`FIRST_ERRORS`] invalid rows (the default).
    #[default]
    Reject,
    /// Import the valid rows; the rejected ones go to an error report (the job's result file).
    Skip,
}

/// Invalid rows listed in a rejected file's message.
pub const FIRST_ERRORS: usize = 20;
/// Rejections kept for the error report (the count goes on beyond it).
pub const REPORT_CAP: usize = 100_000;

/// One invalid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Spreadsheet row number (1-based).
    pub row: u32,
    /// The column's header name.
    pub column: &'static str,
    /// The A1-style cell reference.
    pub cell: String,
    /// The value found, described briefly.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}, column {} (cell {}): {}",
            self.row, self.column, self.cell, self.reason
        )
    }
}

/// The rejected rows as an .xlsx: sheet "Errors" with Row, Column, Cell, Value, Reason, and a
/// last line saying how many were left out when more than [`REPORT_CAP`] were rejected.
///
/// # Errors
/// rust_xlsxwriter's error.
pub fn rejection_report(rejections: &[Rejection], total: u64) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name("Errors")?;
    for (column, title) in (0u16..).zip(["Row", "Column", "Cell", "Value", "Reason"]) {
        sheet.write_string(0, column, title)?;
    }
    let mut line = 1u32;
    for rejection in rejections {
        sheet.write_number(line, 0, f64::from(rejection.row))?;
        sheet.write_string(line, 1, rejection.column)?;
        sheet.write_string(line, 2, &rejection.cell)?;
        sheet.write_string(line, 3, &rejection.value)?;
        sheet.write_string(line, 4, &rejection.reason)?;
        line += 1;
    }
    let listed = rejections.len() as u64;
    if total > listed {
        sheet.write_string(
            line,
            4,
            format!("… and {} more invalid rows", total - listed),
        )?;
    }
    workbook.save_to_buffer()
}
