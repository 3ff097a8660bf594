//! The workbook side of the raw xlsx reference: calamine's cell reader (streaming, as burrow's
//! importer), rows assembled cell by cell and handed to a [`LineWriter`].

use std::io::Cursor;

use anyhow::Context as _;
use calamine::{DataRef, Reader as _, Xlsx};
use tokio::sync::mpsc;

use super::copy_lines::LineWriter;

/// Reads the sheet `Data` (any case) or the first one; the first row is the header; every later
/// row goes through `writer` to `out`.
///
/// # Errors
/// If the workbook cannot be read, or a row cannot be encoded or sent.
pub fn parse(
    bytes: Vec<u8>,
    writer: &mut LineWriter,
    out: &mpsc::Sender<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut workbook = Xlsx::new(Cursor::new(bytes)).context("opening the workbook")?;
    let names = workbook.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case("data"))
        .or_else(|| names.first())
        .cloned()
        .context("the workbook has no sheet")?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .context("opening the sheet")?;
    let mut current: Option<u32> = None;
    let mut row: Vec<DataRef<'_>> = Vec::new();
    while let Some(cell) = cells.next_cell().context("reading a cell")? {
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(done) = current {
                writer.row(done, &row, out)?;
            }
            current = Some(r);
            row.clear();
        }
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, DataRef::Empty);
        }
        row[c] = cell.get_value().clone();
    }
    if let Some(done) = current {
        writer.row(done, &row, out)?;
    }
    writer.finish(out)
}
