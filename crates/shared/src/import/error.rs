//! Why an import failed, and whether trying again could help.

/// The most characters of a text from another library (the spreadsheet parser, the zip
/// reader, Postgres) that a message keeps: such texts can quote the file — a part name, a
/// value — at any length, and the message is stored with the job and shown to users.
pub const MAX_DETAIL_CHARS: usize = 500;

/// An import that did not commit. Display texts are shown to users as the job's message, so
/// they name the row, the column and the cell the way Excel does.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not a zip, a damaged zip entry, or malformed sheet XML.
    #[error("the file cannot be read as a spreadsheet: {0}")]
    Unreadable(String),
    /// Not a format burrow reads (recognised by content; see `format.rs`).
    #[error("{0}")]
    Unsupported(String),
    /// The sheet asked for is not in the workbook.
    #[error("the workbook has no sheet {wanted}; its sheets: {sheets}")]
    NoSuchSheet {
        /// The sheet asked for, as asked.
        wanted: String,
        /// The workbook's sheet names.
        sheets: String,
    },
    /// The workbook has no worksheet to read.
    #[error("the workbook has no worksheet")]
    NoWorksheet,
    /// The sheet has no cells at all.
    #[error("sheet {sheet:?} is empty: expected a header row and data rows under it")]
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
        /// The repeated column's header.
        column: String,
    },
    /// Rows are invalid and `on_error` is `reject`: the message lists the first
    /// [`super::FIRST_ERRORS`]; all of them (up to [`super::REPORT_CAP`]) are kept for the
    /// error report ([`super::rejection_report`]).
    #[error("{}", invalid_rows_message(.total, .rejected))]
    InvalidRows {
        /// Invalid rows in the file (the whole file is read).
        total: u64,
        /// The invalid rows, up to [`super::REPORT_CAP`], with their cells.
        rejected: Vec<super::Rejection>,
        /// The header row's cells as written (the report's header).
        header: Vec<String>,
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
    /// The table refused the rows or the profile's statement: a value its column cannot take
    /// (SQLSTATE class 22), a constraint (class 23), or a table or column the profile names
    /// that does not exist (class 42). Trying again cannot help.
    #[error("the table refused the import: {0}")]
    TableRefused(String),
    /// Postgres failed while writing; the file itself may be fine.
    #[error("database error during import: {0}")]
    Database(#[from] sqlx::Error),
}

impl ImportError {
    /// [`ImportError::Unreadable`] with `error`'s text, cut to [`MAX_DETAIL_CHARS`].
    pub fn unreadable(error: impl std::fmt::Display) -> ImportError {
        ImportError::Unreadable(clip(error.to_string()))
    }

    /// Sorts an error of the COPY or the final statement: the table's refusals
    /// ([`ImportError::TableRefused`]) from failures worth a retry.
    pub fn from_copy(error: sqlx::Error) -> ImportError {
        let refused = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| {
                ["22", "23", "42"]
                    .iter()
                    .any(|class| code.starts_with(class))
            });
        if refused {
            // The message of a data error names the value and the COPY line; \0 never occurs
            // (COPY text cannot carry it), so it can be stored as the job's message.
            let message = error
                .as_database_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            ImportError::TableRefused(clip(message))
        } else {
            ImportError::Database(error)
        }
    }

    /// Whether the same file can never import: retrying is pointless and the job must fail.
    /// Only database errors are transient (and a cancellation is neither).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ImportError::Database(_) | ImportError::Cancelled)
    }
}

/// One invalid row reads as its own error (`row 7, column Id (cell A7): …`); more are counted
/// and the first [`super::FIRST_ERRORS`] listed.
fn invalid_rows_message(total: &u64, rejected: &[super::Rejection]) -> String {
    if let ([only], 1) = (rejected, *total) {
        return only.to_string();
    }
    let first = &rejected[..rejected.len().min(super::FIRST_ERRORS)];
    let listed: Vec<String> = first.iter().map(ToString::to_string).collect();
    format!(
        "{total} rows are invalid; the first {}: {}",
        first.len(),
        listed.join("; ")
    )
}

/// `text`, cut to [`MAX_DETAIL_CHARS`] characters (with "…") when it is longer.
pub(crate) fn clip(text: String) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
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
    fn foreign_error_texts_are_cut_to_a_readable_length() {
        let quoted = format!("File not found '{}'", "<v>1e308</v>".repeat(5_455));
        let message = ImportError::unreadable(&quoted).to_string();
        assert!(
            message.chars().count() < MAX_DETAIL_CHARS + 60,
            "{}",
            message.len()
        );
        assert!(message.ends_with('…'));
        // Short texts are kept whole, and a cut never splits a character.
        assert_eq!(clip("short".to_owned()), "short");
        let wide = "é".repeat(MAX_DETAIL_CHARS + 1);
        assert_eq!(clip(wide).chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn cell_references_follow_excel_letters() {
        assert_eq!(cell_reference(0, 0), "A1");
        assert_eq!(cell_reference(6, 0), "A7");
        assert_eq!(cell_reference(9, 25), "Z10");
        assert_eq!(cell_reference(0, 26), "AA1");
        assert_eq!(cell_reference(0, 16_383), "XFD1");
    }
}
