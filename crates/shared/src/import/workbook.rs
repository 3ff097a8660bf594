//! Reading an uploaded file as rows of cells, whatever its format: .xlsx, .xlsm and .xlsb are
//! streamed cell by cell (calamine's cells readers: memory holds one row, plus the shared
//! strings), .xls and .ods are read a sheet at a time (their formats bound their size), CSV
//! record by record.

use std::io::Cursor;

use calamine::{Data, DataRef, Ods, Reader, SheetType, SheetVisible, Xls, Xlsb, Xlsx};

use super::csv_text;
use super::error::{cell_reference, ImportError};
use super::format::SheetFormat;
use super::limits::ImportLimits;

/// The name a CSV file's one sheet is reported under.
pub const CSV_SHEET: &str = "csv";

/// An opened upload.
pub enum Workbook {
    /// .xlsx or .xlsm.
    Xlsx(Xlsx<Cursor<Vec<u8>>>),
    /// .xlsb.
    Xlsb(Xlsb<Cursor<Vec<u8>>>),
    /// .xls (BIFF8).
    Xls(Xls<Cursor<Vec<u8>>>),
    /// .ods.
    Ods(Ods<Cursor<Vec<u8>>>),
    /// CSV, decoded to UTF-8, with its delimiter.
    Csv(String, u8),
}

/// Receives rows: the 0-based row index (as calamine numbers rows; a CSV record's index) and the
/// row's cells by 0-based column. Returns whether to go on.
pub type Visit<'v> = dyn FnMut(u32, &[DataRef<'_>]) -> Result<bool, ImportError> + 'v;

/// Receives rows of a streamed sheet as owned cells: the 0-based row index and the row's cells,
/// which the receiver may move out (the vector is cleared before the next row). Returns whether
/// to go on. Cells borrow from the workbook (`'w`: shared strings), so they may outlive the call.
pub type Take<'w, 'v> = dyn FnMut(u32, &mut Vec<DataRef<'w>>) -> Result<bool, ImportError> + 'v;

impl Workbook {
    /// Opens `file`, already recognised as `format`.
    ///
    /// # Errors
    /// [`ImportError::Unreadable`] when the parser refuses the file.
    pub fn open(file: Vec<u8>, format: SheetFormat) -> Result<Workbook, ImportError> {
        let cursor = Cursor::new(file);
        Ok(match format {
            SheetFormat::Xlsx | SheetFormat::Xlsm => {
                Workbook::Xlsx(Xlsx::new(cursor).map_err(ImportError::unreadable)?)
            }
            SheetFormat::Xlsb => {
                Workbook::Xlsb(Xlsb::new(cursor).map_err(ImportError::unreadable)?)
            }
            SheetFormat::Xls => Workbook::Xls(Xls::new(cursor).map_err(ImportError::unreadable)?),
            SheetFormat::Ods => Workbook::Ods(Ods::new(cursor).map_err(ImportError::unreadable)?),
            SheetFormat::Csv => {
                let bytes = cursor.into_inner();
                let text = csv_text::decode_text(&bytes).into_owned();
                let delimiter = csv_text::sniff_delimiter(&text);
                Workbook::Csv(text, delimiter)
            }
        })
    }

    /// The worksheets in workbook order, with whether each is visible (charts and macro sheets
    /// left out). A CSV file has one, [`CSV_SHEET`].
    pub fn sheets(&self) -> Vec<(String, bool)> {
        let metadata = match self {
            Workbook::Xlsx(book) => book.sheets_metadata(),
            Workbook::Xlsb(book) => book.sheets_metadata(),
            Workbook::Xls(book) => book.sheets_metadata(),
            Workbook::Ods(book) => book.sheets_metadata(),
            Workbook::Csv(..) => return vec![(CSV_SHEET.to_owned(), true)],
        };
        metadata
            .iter()
            .filter(|sheet| sheet.typ == SheetType::WorkSheet)
            .map(|sheet| (sheet.name.clone(), sheet.visible == SheetVisible::Visible))
            .collect()
    }

    /// Whether [`Workbook::stream_rows`] reads this format (.xlsx, .xlsm, .xlsb): the others
    /// are read whole (.xls, .ods) or cost too little to read to be worth a second thread (CSV).
    pub fn streams(&self) -> bool {
        matches!(self, Workbook::Xlsx(_) | Workbook::Xlsb(_))
    }

    /// [`Workbook::read_rows`] for a format that [`Workbook::streams`], handing each row's cells
    /// over owned (`take`), so they can be batched and read on another thread.
    ///
    /// # Errors
    /// As [`Workbook::read_rows`]; [`ImportError::Unsupported`] for a format that does not
    /// stream (a caller's mistake).
    pub fn stream_rows<'w>(
        &'w mut self,
        sheet: &str,
        limits: &ImportLimits,
        on_declared: &mut dyn FnMut(u64) -> Result<(), ImportError>,
        take: &mut Take<'w, '_>,
    ) -> Result<(), ImportError> {
        match self {
            Workbook::Xlsx(book) => {
                let mut cells = book
                    .worksheet_cells_reader(sheet)
                    .map_err(ImportError::unreadable)?;
                on_declared(declared_rows(cells.dimensions()))?;
                let next = || {
                    cells
                        .next_cell()
                        .map_err(ImportError::unreadable)
                        .map(|c| c.map(split_cell))
                };
                stream_cells(next, limits, take)
            }
            Workbook::Xlsb(book) => {
                let mut cells = book
                    .worksheet_cells_reader(sheet)
                    .map_err(ImportError::unreadable)?;
                on_declared(declared_rows(cells.dimensions()))?;
                let next = || {
                    cells
                        .next_cell()
                        .map_err(ImportError::unreadable)
                        .map(|c| c.map(split_cell))
                };
                stream_cells(next, limits, take)
            }
            _ => Err(ImportError::Unsupported(
                "this format is not streamed".to_owned(),
            )),
        }
    }

    /// Calls `visit` for each non-empty row of `sheet`, in order, until it returns `false`;
    /// returns the sheet's declared row count (from its dimensions; 0 when unknown), an
    /// estimate for progress only, known before the first row.
    ///
    /// `on_declared` hears the declared count before the first row, so a limit on it can stop
    /// the read before any work is spent.
    ///
    /// # Errors
    /// [`ImportError::Unreadable`] from the parser, [`ImportError::Limit`] for a cell beyond
    /// `limits.max_columns`, or what `visit` returns.
    pub fn read_rows(
        &mut self,
        sheet: &str,
        limits: &ImportLimits,
        on_declared: &mut dyn FnMut(u64) -> Result<(), ImportError>,
        visit: &mut Visit<'_>,
    ) -> Result<(), ImportError> {
        match self {
            // Streamed: the rows are lent to `visit` instead of handed over.
            Workbook::Xlsx(_) | Workbook::Xlsb(_) => {
                self.stream_rows(sheet, limits, on_declared, &mut |row, cells| {
                    visit(row, cells)
                })
            }
            Workbook::Xls(book) => {
                let range = book
                    .worksheet_range(sheet)
                    .map_err(ImportError::unreadable)?;
                visit_range(&range, limits, on_declared, visit)
            }
            Workbook::Ods(book) => {
                let range = book
                    .worksheet_range(sheet)
                    .map_err(ImportError::unreadable)?;
                visit_range(&range, limits, on_declared, visit)
            }
            Workbook::Csv(text, delimiter) => {
                on_declared(0)?;
                csv_text::read_rows(text, *delimiter, limits, |row, cells| visit(row, cells))
            }
        }
    }
}

/// Rows under the first, as a sheet's `<dimension>` declares them (0 when absent).
fn declared_rows(dimensions: calamine::Dimensions) -> u64 {
    u64::from(dimensions.end.0.saturating_sub(dimensions.start.0))
}

/// A cell's position and value.
fn split_cell<'a>(cell: calamine::Cell<DataRef<'a>>) -> (u32, u32, DataRef<'a>) {
    let (row, column) = cell.get_position();
    (row, column, cell.get_value().clone())
}

/// Gathers a cell stream (row-major, as the sheet XML stores it) into rows.
fn stream_cells<'a>(
    mut next: impl FnMut() -> Result<Option<(u32, u32, DataRef<'a>)>, ImportError>,
    limits: &ImportLimits,
    visit: &mut Take<'a, '_>,
) -> Result<(), ImportError> {
    let mut current: Option<u32> = None;
    let mut row_cells: Vec<DataRef<'a>> = Vec::new();
    while let Some((row, column, value)) = next()? {
        if current != Some(row) {
            if let Some(done) = current {
                if !visit(done, &mut row_cells)? {
                    return Ok(());
                }
            }
            current = Some(row);
            row_cells.clear();
        }
        check_column(row, column, limits)?;
        if matches!(value, DataRef::Empty) {
            continue;
        }
        let column = column as usize;
        if row_cells.len() <= column {
            row_cells.resize(column + 1, DataRef::Empty);
        }
        row_cells[column] = value;
    }
    if let Some(done) = current {
        visit(done, &mut row_cells)?;
    }
    Ok(())
}

/// Visits the rows of a whole-sheet range (.xls, .ods).
fn visit_range(
    range: &calamine::Range<Data>,
    limits: &ImportLimits,
    on_declared: &mut dyn FnMut(u64) -> Result<(), ImportError>,
    visit: &mut Visit<'_>,
) -> Result<(), ImportError> {
    let Some((first_row, first_column)) = range.start() else {
        on_declared(0)?;
        return Ok(());
    };
    on_declared(range.height().saturating_sub(1) as u64)?;
    let (_, width) = range.get_size();
    check_column(
        first_row,
        first_column + width.saturating_sub(1) as u32,
        limits,
    )?;
    let mut row_cells: Vec<DataRef<'_>> = Vec::with_capacity(first_column as usize + width);
    for (offset, row) in range.rows().enumerate() {
        row_cells.clear();
        row_cells.resize(first_column as usize, DataRef::Empty);
        row_cells.extend(row.iter().map(data_ref));
        if !visit(first_row + offset as u32, &row_cells)? {
            break;
        }
    }
    Ok(())
}

fn data_ref(data: &Data) -> DataRef<'_> {
    match data {
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::String(s) => DataRef::SharedString(s),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(dt) => DataRef::DateTime(*dt),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
        Data::Empty => DataRef::Empty,
    }
}

fn check_column(row: u32, column: u32, limits: &ImportLimits) -> Result<(), ImportError> {
    if column >= limits.max_columns {
        return Err(ImportError::Limit(format!(
            "cell {} is beyond column {} (limit {} columns)",
            cell_reference(row, column),
            limits.max_columns,
            limits.max_columns
        )));
    }
    Ok(())
}
