//! Why an import failed, and whether trying again could help.

/// An import that did not commit. Display texts are shown to users as the job's message, so
/// they name the row, the column and the cell the way Excel does.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not a zip, a damaged zip entry, or malformed sheet XML.
    #[error("the file is not a readable .xlsx workbook: {0}")]
    Unreadable(String),
    /// The workbook has no worksheet to read.
    #[error("the workbook has no worksheet")]
    NoWorksheet,
    /// The sheet has no cells at all.
    #[error("sheet {sheet:?} is empty: expected a header row (Id, FirstName, LastName, Email, Gender, IpAddress)")]
    EmptySheet {
        /// The sheet read.
        sheet: String,
    },
    /// The sheet has a header and nothing under it.
    #[error("sheet {sheet:?} has a header row but no data rows")]
    NoDataRows {
        /// The sheet read.
        sheet: String,
    },
    /// Required columns are absent from the header row.
    #[error("row {row}: the header row is missing column {missing}; found {found}")]
    MissingColumns {
        /// Spreadsheet row number of the header (1-based).
        row: u32,
        /// The missing column names, comma-separated.
        missing: String,
        /// The header cells found, comma-separated.
        found: String,
    },
    /// A required column appears twice in the header row.
    #[error("row {row}: column {column} appears twice in the header row")]
    DuplicateColumn {
        /// Spreadsheet row number of the header (1-based).
        row: u32,
        /// The repeated column.
        column: &'static str,
    },
    /// A cell's value does not fit its column.
    #[error("row {row}, column {column} (cell {cell}): {reason}")]
    InvalidCell {
        /// Spreadsheet row number (1-based; the header is row 1).
        row: u32,
        /// The column's header name, e.g. `Id`.
        column: &'static str,
        /// The A1-style cell reference, e.g. `A7`.
        cell: String,
        /// The value found, described briefly (for error reports).
        value: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// Rows are invalid and `on_error` is `reject`: the first ones are listed.
    #[error("{}", invalid_rows_message(.total, .first, .complete))]
    InvalidRows {
        /// Invalid rows found (a lower bound when `complete` is false).
        total: u64,
        /// The first [`super::FIRST_ERRORS`] of them.
        first: Vec<super::Rejection>,
        /// Whether the whole file was scanned.
        complete: bool,
    },
    /// The file exceeds one of the [`super::ImportLimits`].
    #[error("the file exceeds a limit: {0}")]
    Limit(String),
    /// The spreadsheet parser panicked on this file; the worker survives and fails the job.
    #[error("the spreadsheet parser failed on this file: {0}")]
    ParserFailed(String),
    /// The job was cancelled; nothing was committed.
    #[error("the import was cancelled")]
    Cancelled,
    /// Postgres failed while writing; the file itself may be fine.
    #[error("database error during import: {0}")]
    Database(#[from] sqlx::Error),
}

impl ImportError {
    /// Whether the same file can never import: retrying is pointless and the job must fail.
    /// Only database errors are transient (and a cancellation is neither).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ImportError::Database(_) | ImportError::Cancelled)
    }
}

/// One invalid row reads as its own error (`row 7, column Id (cell A7): …`); more are counted
/// and listed.
fn invalid_rows_message(total: &u64, first: &[super::Rejection], complete: &bool) -> String {
    if let ([only], true) = (first, *complete) {
        return only.to_string();
    }
    let at_least = if *complete { "" } else { "at least " };
    let listed: Vec<String> = first.iter().map(ToString::to_string).collect();
    format!(
        "{at_least}{total} rows are invalid; the first {}: {}",
        first.len(),
        listed.join("; ")
    )
}

/// The A1-style reference of a 0-based `(row, column)` position, e.g. `(6, 0)` → `A7`.
pub fn cell_reference(row: u32, column: u32) -> String {
    let mut letters = Vec::new();
    let mut n = column + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("{}{}", String::from_utf8_lossy(&letters), row + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references_follow_excel_letters() {
        assert_eq!(cell_reference(0, 0), "A1");
        assert_eq!(cell_reference(6, 0), "A7");
        assert_eq!(cell_reference(9, 25), "Z10");
        assert_eq!(cell_reference(0, 26), "AA1");
        assert_eq!(cell_reference(0, 16_383), "XFD1");
    }
}
