//! A dry run: what an import of this file with this profile would read, before anyone commits
//! to it. Nothing is stored.

use serde::Serialize;
use uuid::Uuid;

use super::error::ImportError;
use super::format::SheetFormat;
use super::header::MappedColumn;
use super::rejections::FIRST_ERRORS;
use super::sheet::{read_sheet, Extent, ImportRequest};
use super::ImportOptions;

/// Data rows whose converted values a preview shows.
pub const PREVIEW_ROWS: usize = 20;
/// Data rows a preview reads to find the first errors (the rest of the file is not read).
pub const PREVIEW_SCAN_ROWS: u64 = 1_000;

/// What an import would read.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    /// The profile used.
    pub profile: String,
    /// The file's format, by content: `xlsx`, `xlsm`, `xlsb`, `xls`, `ods` or `csv`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub format: SheetFormat,
    /// The sheet that would be read (`csv` for a CSV file).
    pub sheet: String,
    /// The header's row, 1-based.
    pub header_row: u32,
    /// Which header feeds which column, in the profile's column order.
    pub columns: Vec<MappedColumn>,
    /// Optional columns the header lacks: they get their default, or stay empty. (A missing
    /// required column refuses the file.)
    pub missing: Vec<String>,
    /// Header cells no column uses.
    pub ignored: Vec<String>,
    /// The first [`PREVIEW_ROWS`] valid rows as they would be written, one value per column
    /// (`null`: empty).
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows read (valid and invalid), at most [`PREVIEW_SCAN_ROWS`].
    pub rows_scanned: u64,
    /// Invalid rows among those read, the first [`FIRST_ERRORS`] of them, each as
    /// `row N, column C (cell A1): reason`.
    pub errors: Vec<String>,
    /// Invalid rows among those read, in all.
    pub errors_total: u64,
}

/// Reads the first rows of `file` as an import with `request` would.
///
/// # Errors
/// What the import would fail with before its first row: an unsupported format, no such sheet,
/// no header row, no data rows, a limit.
pub fn preview(
    file: Vec<u8>,
    request: ImportRequest<'_>,
    options: &ImportOptions,
) -> Result<Preview, ImportError> {
    let extent = Extent::Preview {
        sample: PREVIEW_ROWS,
        rows: PREVIEW_SCAN_ROWS,
    };
    let read = read_sheet(file, Uuid::nil(), request, options, extent, |_, _, _| true)?;
    let profile = request.profile;
    Ok(Preview {
        profile: profile.name.clone(),
        format: read.format,
        sheet: read.sheet,
        header_row: read.header.row,
        columns: read.header.describe(profile),
        missing: profile
            .columns
            .iter()
            .zip(&read.header.positions)
            .filter(|(_, position)| position.is_none())
            .map(|(column, _)| column.header.clone())
            .collect(),
        ignored: read.header.ignored.clone(),
        rows: read.sample,
        rows_scanned: read.rows + read.rejected_total,
        errors: read
            .rejected
            .iter()
            .take(FIRST_ERRORS)
            .map(ToString::to_string)
            .collect(),
        errors_total: read.rejected_total,
    })
}
