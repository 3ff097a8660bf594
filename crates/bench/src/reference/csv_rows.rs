//! The CSV side of the raw CSV reference (row 7): the `csv` crate (the one burrow's importer
//! uses) reading records that borrow the file's bytes, handed to a [`LineWriter`]. UTF-8 and
//! commas only: the bench's own file, no sniffing (burrow's importer sniffs; that is its work).

use anyhow::Context as _;
use calamine::DataRef;
use tokio::sync::mpsc;

use super::copy_lines::LineWriter;

/// Reads `bytes` as comma-separated UTF-8; the first record is the header; every later record
/// goes through `writer` to `out`.
///
/// # Errors
/// If a record is not valid CSV or UTF-8, or cannot be encoded or sent.
pub fn parse(
    bytes: &[u8],
    writer: &mut LineWriter,
    out: &mpsc::Sender<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    let mut row: u32 = 0;
    while reader
        .read_record(&mut record)
        .context("reading a record")?
    {
        // Cells borrow the record: no copy per field (SharedString is calamine's borrowed text).
        let cells: Vec<DataRef<'_>> = record
            .iter()
            .map(|field| {
                if field.is_empty() {
                    DataRef::Empty
                } else {
                    DataRef::SharedString(field)
                }
            })
            .collect();
        writer.row(row, &cells, out)?;
        row += 1;
    }
    writer.finish(out)
}
