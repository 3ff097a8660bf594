//! A whole sheet's rows read on two threads: a reader thread runs calamine (inflating and
//! parsing the sheet XML, gathering cells into rows) and hands batches of rows to the calling
//! thread, which converts them ([`super::rows`]) while the next batch is read.
//!
//! Why: on one thread the XML reading (about three quarters of the parser's CPU time) and the
//! conversion add up; split, the parser takes as long as the slower of the two. The channel is
//! bounded ([`BATCHES_IN_FLIGHT`]) and batches are small and recycled, so memory stays flat
//! and the reader allocates no batch once the first few have come back.
//!
//! The result is the one a single thread would give: rows reach `visit` in order, a reader
//! error comes after the rows read before it, and what the reader read ahead of a `visit` that
//! stopped or failed is dropped unseen.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use calamine::DataRef;

use super::error::ImportError;
use super::limits::ImportLimits;
use super::workbook::{Visit, Workbook};

/// Batches read ahead of the converting thread, at most (besides the one each thread holds).
pub const BATCHES_IN_FLIGHT: usize = 4;
/// Rows in a batch, at most: enough that hand-overs (a few microseconds each) are rare. On the
/// 1M-row people workbook, 2,048 parsed about 3 % faster than 512 (2.71 s against 2.79 s).
pub const BATCH_ROWS: usize = 2048;
/// Cells in a batch, at most (wide rows fill a batch before [`BATCH_ROWS`]).
pub const BATCH_CELLS: usize = 32 * 1024;
/// Bytes of owned text (inline strings) in a batch, at most, plus one row: a hostile sheet
/// of huge cells must not multiply the memory of one row by the rows in flight.
pub const BATCH_TEXT_BYTES: usize = 256 * 1024;

/// Rows read, in order: their cells back to back.
#[derive(Default)]
struct Batch<'w> {
    cells: Vec<DataRef<'w>>,
    /// Per row: its 0-based row index and the end of its cells in `cells`.
    rows: Vec<(u32, usize)>,
    /// Bytes of owned text in `cells`.
    text_bytes: usize,
}

impl<'w> Batch<'w> {
    fn push(&mut self, row: u32, cells: &mut Vec<DataRef<'w>>) {
        self.text_bytes += cells.iter().map(owned_text_bytes).sum::<usize>();
        self.cells.append(cells);
        self.rows.push((row, self.cells.len()));
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
            || self.cells.len() >= BATCH_CELLS
            || self.text_bytes >= BATCH_TEXT_BYTES
    }

    fn clear(&mut self) {
        self.cells.clear();
        self.rows.clear();
        self.text_bytes = 0;
    }
}

fn owned_text_bytes(cell: &DataRef<'_>) -> usize {
    match cell {
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.len(),
        _ => 0,
    }
}

/// What the reader hands on.
enum Message<'w> {
    /// The sheet's declared row count, before any row.
    Declared(u64),
    /// The next rows.
    Rows(Batch<'w>),
}

/// How the converting side ended.
enum Ended {
    /// The reader had no more rows: its result is the read's.
    Drained,
    /// `visit` asked to stop: what the reader did past that row does not count.
    Stopped,
}

/// Reads `sheet` as [`Workbook::read_rows`] does, with the same calls to `on_declared` and
/// `visit` on the calling thread, but with the reading on a thread of its own when `split` is
/// set and the format streams ([`Workbook::streams`]); otherwise on the calling thread.
///
/// A panic on the reader thread is raised again on the calling thread, as if it had happened
/// there (the caller catches it: see `sheet::read_sheet`).
///
/// # Errors
/// As [`Workbook::read_rows`]; [`ImportError::ParserFailed`] when the reader thread cannot
/// be started.
pub fn read_rows(
    workbook: &mut Workbook,
    split: bool,
    sheet: &str,
    limits: &ImportLimits,
    on_declared: &mut dyn FnMut(u64) -> Result<(), ImportError>,
    visit: &mut Visit<'_>,
) -> Result<(), ImportError> {
    if !split || !workbook.streams() {
        return workbook.read_rows(sheet, limits, on_declared, visit);
    }
    let (full_tx, full_rx) = sync_channel(BATCHES_IN_FLIGHT);
    let (spare_tx, spare_rx) = channel();
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("import-reader".to_owned())
            .spawn_scoped(scope, move || {
                read_side(workbook, sheet, limits, full_tx, spare_rx)
            })
            .map_err(|e| {
                ImportError::ParserFailed(format!("cannot start the reader thread: {e}"))
            })?;
        // `convert_side` drops the receiver when it returns (or unwinds), which wakes a reader
        // blocked on a full channel: the join below cannot hang.
        let converted = convert_side(full_rx, spare_tx, on_declared, visit);
        let read = reader.join();
        match (converted, read) {
            (Err(e), _) => Err(e),
            (Ok(Ended::Stopped), _) => Ok(()),
            (Ok(Ended::Drained), Ok(result)) => result,
            (Ok(Ended::Drained), Err(panic)) => std::panic::resume_unwind(panic),
        }
    })
}

/// The reader thread: rows into batches, batches into `full`, spare batches from `spare`.
fn read_side<'w>(
    workbook: &'w mut Workbook,
    sheet: &str,
    limits: &ImportLimits,
    full: SyncSender<Message<'w>>,
    spare: Receiver<Batch<'w>>,
) -> Result<(), ImportError> {
    let mut batch = Batch::default();
    let mut hung_up = false;
    let read = workbook.stream_rows(
        sheet,
        limits,
        &mut |declared| {
            // A converting side that has gone (it failed) ends the read at the first batch.
            let _ = full.send(Message::Declared(declared));
            Ok(())
        },
        &mut |row, cells| {
            batch.push(row, cells);
            if !batch.is_full() {
                return Ok(true);
            }
            // Spares come back uncleared: their owned strings are freed here, on the thread
            // that allocated them, where the allocator's thread cache takes them back cheaply.
            let mut next = spare.try_recv().unwrap_or_default();
            next.clear();
            if full
                .send(Message::Rows(std::mem::replace(&mut batch, next)))
                .is_err()
            {
                hung_up = true;
                return Ok(false);
            }
            Ok(true)
        },
    );
    // The rows read before an error come first, as on one thread.
    if !hung_up && !batch.rows.is_empty() {
        let _ = full.send(Message::Rows(batch));
    }
    read
}

/// The calling thread: each batch's rows to `visit`, the batch back to the reader.
fn convert_side<'w>(
    full: Receiver<Message<'w>>,
    spare: Sender<Batch<'w>>,
    on_declared: &mut dyn FnMut(u64) -> Result<(), ImportError>,
    visit: &mut Visit<'_>,
) -> Result<Ended, ImportError> {
    for message in full {
        match message {
            Message::Declared(declared) => on_declared(declared)?,
            Message::Rows(batch) => {
                let mut start = 0;
                for &(row, end) in &batch.rows {
                    if !visit(row, &batch.cells[start..end])? {
                        return Ok(Ended::Stopped);
                    }
                    start = end;
                }
                // The reader may have finished: then the batch is dropped here.
                let _ = spare.send(batch);
            }
        }
    }
    Ok(Ended::Drained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{parse_file, ImportOptions, ImportRequest, OnError, Profile, SheetFormat};
    use crate::people_sheet::{write_people_sheet, Person};

    /// Rows well past one batch ([`BATCH_ROWS`]).
    const ROWS: u32 = 5 * BATCH_ROWS as u32 + 7;

    fn person(id: i64) -> Person {
        Person {
            id,
            first_name: format!("Ann{id}"),
            last_name: "Lee".to_owned(),
            email: format!("ann{id}@example.com"),
            gender: "Female".to_owned(),
            ip_address: "10.0.0.1".to_owned(),
        }
    }

    /// A people workbook (inline strings: constant-memory mode) of `rows` data rows.
    fn people_workbook(rows: u32, edit: impl Fn(&mut Person)) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let people = (1..=i64::from(rows)).map(|id| {
            let mut p = person(id);
            edit(&mut p);
            p
        });
        write_people_sheet(&mut book, people).expect("sheet");
        book.save_to_buffer().expect("workbook")
    }

    fn open(bytes: Vec<u8>) -> Workbook {
        Workbook::open(bytes, SheetFormat::Xlsx).expect("open")
    }

    /// The rows visited (index, cells as text), the declared counts heard, the read's result.
    type Visited = (Vec<(u32, Vec<String>)>, Vec<u64>, Result<(), ImportError>);

    /// Every row visited, as text, and the read's result.
    fn visit_all(bytes: Vec<u8>, split: bool, limits: &ImportLimits, stop_after: usize) -> Visited {
        let mut book = open(bytes);
        let sheet = book.sheets()[0].0.clone();
        let mut seen = Vec::new();
        let mut declared = Vec::new();
        let result = read_rows(
            &mut book,
            split,
            &sheet,
            limits,
            &mut |rows| {
                declared.push(rows);
                Ok(())
            },
            &mut |row, cells| {
                seen.push((row, cells.iter().map(|c| format!("{c:?}")).collect()));
                Ok(seen.len() < stop_after)
            },
        );
        (seen, declared, result)
    }

    #[test]
    fn split_reads_see_what_one_thread_sees() {
        let bytes = people_workbook(ROWS, |_| {});
        let limits = ImportLimits::default();
        let (one, declared_one, read_one) = visit_all(bytes.clone(), false, &limits, usize::MAX);
        let (two, declared_two, read_two) = visit_all(bytes, true, &limits, usize::MAX);
        read_one.expect("one thread");
        read_two.expect("two threads");
        assert_eq!(one.len(), ROWS as usize + 1);
        assert_eq!(one, two);
        assert_eq!(declared_one, declared_two);
    }

    #[test]
    fn a_consumer_that_stops_early_ends_both_threads() {
        let bytes = people_workbook(ROWS, |_| {});
        // Returning at all shows the reader thread ended: the scope joins it.
        let (seen, _, result) = visit_all(bytes, true, &ImportLimits::default(), 10);
        result.expect("a stop is not an error");
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[9].0, 9);
    }

    #[test]
    fn a_reader_error_comes_after_the_rows_before_it() {
        // Two columns a row, but one row, batches after the first, has a cell in column D: past
        // a three-column limit, the reader fails there.
        let far = 2 * BATCH_ROWS as u32 + 99;
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for row in 0..ROWS {
            sheet.write_number(row, 0, f64::from(row)).expect("cell");
            sheet.write_string(row, 1, "x").expect("cell");
        }
        sheet.write_string(far, 3, "too far").expect("cell");
        let bytes = book.save_to_buffer().expect("workbook");
        let limits = ImportLimits {
            max_columns: 3,
            ..ImportLimits::default()
        };
        let (seen_one, _, read_one) = visit_all(bytes.clone(), false, &limits, usize::MAX);
        let (seen_two, _, read_two) = visit_all(bytes, true, &limits, usize::MAX);
        let (error_one, error_two) = (read_one.expect_err("limit"), read_two.expect_err("limit"));
        assert!(matches!(error_two, ImportError::Limit(_)), "{error_two}");
        let cell = format!("cell D{} ", far + 1);
        assert!(error_two.to_string().contains(&cell), "{error_two}");
        assert_eq!(error_one.to_string(), error_two.to_string());
        assert_eq!(seen_two.len(), far as usize);
        assert_eq!(seen_one, seen_two);
    }

    #[test]
    fn a_consumer_error_wins_over_what_the_reader_read_ahead() {
        let bytes = people_workbook(ROWS, |_| {});
        let mut book = open(bytes);
        let sheet = book.sheets()[0].0.clone();
        let mut seen = 0;
        let result = read_rows(
            &mut book,
            true,
            &sheet,
            &ImportLimits::default(),
            &mut |_| Ok(()),
            &mut |_, _| {
                seen += 1;
                if seen == BATCH_ROWS + 3 {
                    return Err(ImportError::NoWorksheet);
                }
                Ok(true)
            },
        );
        assert!(matches!(result, Err(ImportError::NoWorksheet)));
        assert_eq!(seen, BATCH_ROWS + 3);
    }

    #[test]
    fn rejections_keep_their_row_numbers_across_batches() {
        let batch = BATCH_ROWS as i64;
        let bad = [2_i64, batch - 1, batch, 3 * batch + 17, i64::from(ROWS)];
        let bytes = people_workbook(ROWS, |p| {
            if bad.contains(&p.id) {
                p.email = "not an address".to_owned();
            }
        });
        let people = Profile::people();
        let options = ImportOptions {
            on_error: OnError::Skip,
            ..ImportOptions::default()
        };
        let report = parse_file(bytes, ImportRequest::of(&people), &options).expect("parsed");
        assert_eq!(report.rows, u64::from(ROWS) - bad.len() as u64);
        assert_eq!(report.rejected_total, bad.len() as u64);
        // Data row `id` is spreadsheet row `id + 1` (the header is row 1).
        let rows: Vec<u32> = report.rejected.iter().map(|r| r.row).collect();
        let cells: Vec<String> = report.rejected.iter().map(|r| r.cell.clone()).collect();
        assert_eq!(rows, bad.map(|id| id as u32 + 1));
        assert_eq!(cells, bad.map(|id| format!("D{}", id + 1)));
    }
}
