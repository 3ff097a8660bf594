//! CSV uploads as rows of cells, in the shape calamine gives a worksheet's, so the same row
//! checks can read both.
//!
//! Excel writes CSV as UTF-8 (with a byte-order mark: "CSV UTF-8"), as the Windows ANSI code
//! page ("CSV", Windows-1252 in western locales), or as UTF-16 with a byte-order mark
//! ("Unicode text", tab-separated); its list separator follows the locale (`;` where the
//! decimal separator is `,`). Hence the decoding and the delimiter sniffing here.

use std::borrow::Cow;

use calamine::DataRef;
use encoding_rs::{UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use super::error::{cell_reference, ImportError};
use super::limits::ImportLimits;

/// The delimiters [`sniff_delimiter`] chooses from, in the order ties are broken: the rarer a
/// character is inside values, the likelier a consistent split by it is the structure.
const DELIMITERS: [u8; 4] = [b'\t', b';', b'|', b','];
/// Non-empty records [`sniff_delimiter`] looks at.
const SNIFF_RECORDS: usize = 20;
/// Bytes of text [`sniff_delimiter`] looks at: an unclosed quote must not make it read a whole
/// large file four times.
const SNIFF_BYTES: usize = 64 * 1024;

/// The text of a CSV file.
///
/// UTF-8 (a leading byte-order mark stripped) is borrowed as is; UTF-16 LE or BE with a
/// byte-order mark (Excel's "Unicode text") is decoded; anything else that is not valid UTF-8
/// is decoded as Windows-1252, which maps every byte to a character. Malformed sequences after
/// a UTF-8 or UTF-16 byte-order mark become U+FFFD. Never fails.
pub fn decode_text(bytes: &[u8]) -> Cow<'_, str> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return UTF_8.decode_without_bom_handling(rest).0;
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return UTF_16LE.decode_without_bom_handling(rest).0;
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return UTF_16BE.decode_without_bom_handling(rest).0;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => WINDOWS_1252.decode_without_bom_handling(bytes).0,
    }
}

/// The delimiter of `text`, one of `,` `;` `\t` `|`.
///
/// Each candidate splits the first 20 non-empty records (quotes respected, within the first
/// 64 KiB); its score is how many of them have its most common
/// field count above 1. The highest score wins, ties going to the rarer character (tab, `;`,
/// `|`, then `,`). `,` when no candidate splits any record.
pub fn sniff_delimiter(text: &str) -> u8 {
    let head = sniff_head(text);
    let mut best = (b',', 0);
    for delimiter in DELIMITERS {
        let score = consistency(head, delimiter);
        if score > best.1 {
            best = (delimiter, score);
        }
    }
    best.0
}

/// The start of `text` that [`sniff_delimiter`] reads: at most [`SNIFF_BYTES`], ending at a
/// line break when cut, so the last record is not a fragment.
fn sniff_head(text: &str) -> &str {
    if text.len() <= SNIFF_BYTES {
        return text;
    }
    let mut end = SNIFF_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    head.rfind('\n').map_or(head, |at| &head[..at])
}

/// How many of the first non-empty records of `head` split by `delimiter` into the most common
/// field count above 1.
fn consistency(head: &str, delimiter: u8) -> usize {
    let mut reader = reader(head, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut counts = Vec::with_capacity(SNIFF_RECORDS);
    while counts.len() < SNIFF_RECORDS {
        match reader.read_byte_record(&mut record) {
            Ok(true) if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) => {}
            Ok(true) => counts.push(record.len()),
            Ok(false) | Err(_) => break,
        }
    }
    counts
        .iter()
        .filter(|&&n| n > 1)
        .map(|&n| counts.iter().filter(|&&m| m == n).count())
        .max()
        .unwrap_or(0)
}

fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes())
}

/// Reads the records of `text`, split by `delimiter` (RFC 4180 quoting: `"` quotes, `""`
/// escapes; CRLF, LF or CR end a record), and calls `visit(row, cells)` for each in order.
///
/// `row` is the 0-based record number, like calamine's cell positions: the first record is row
/// 0. Row numbers count records, not lines: a quoted value spanning lines is one row, and
/// blank lines are skipped by the csv reader without a number. `cells` are
/// [`DataRef::SharedString`] borrowed from the record, with empty fields as
/// [`DataRef::Empty`]; records may have different lengths. Values are not trimmed, and a value
/// longer than `limits.max_cell_chars` is passed on: its column decides whether it is too
/// long. Stops early, with `Ok`, when `visit` returns `Ok(false)`.
///
/// Runs without allocating per row: one record buffer and one cell vector are reused.
///
/// # Errors
/// - [`ImportError::Limit`] when a record has more than `limits.max_columns` fields, naming
///   the first cell past the limit.
/// - [`ImportError::Unreadable`] when the csv reader fails, with the line it failed on.
/// - Whatever `visit` returns.
pub fn read_rows(
    text: &str,
    delimiter: u8,
    limits: &ImportLimits,
    mut visit: impl FnMut(u32, &[DataRef<'_>]) -> Result<bool, ImportError>,
) -> Result<(), ImportError> {
    let mut reader = reader(text, delimiter);
    let mut record = csv::StringRecord::new();
    let mut spare: Vec<DataRef<'static>> = Vec::new();
    let max_columns = limits.max_columns as usize;
    let mut next_row = Some(0u32);
    while reader.read_record(&mut record).map_err(unreadable)? {
        let row = next_row.ok_or_else(|| {
            ImportError::Limit(format!("more than {} records", u64::from(u32::MAX) + 1))
        })?;
        if record.len() > max_columns {
            return Err(ImportError::Limit(format!(
                "cell {} is beyond column {} (limit {} columns)",
                cell_reference(row, limits.max_columns),
                limits.max_columns,
                limits.max_columns
            )));
        }
        let mut cells = recycle(spare);
        cells.extend(record.iter().map(|field| match field {
            "" => DataRef::Empty,
            value => DataRef::SharedString(value),
        }));
        let more = visit(row, &cells)?;
        spare = recycle(cells);
        if !more {
            return Ok(());
        }
        next_row = row.checked_add(1);
    }
    Ok(())
}

/// `cells`, emptied, with its allocation kept for cells of another lifetime: the borrow of
/// the previous record ends here, so the next one can be read into the same buffer. (`collect`
/// from a `Vec`'s own `into_iter` of a same-sized type reuses its allocation.)
fn recycle<'b>(mut cells: Vec<DataRef<'_>>) -> Vec<DataRef<'b>> {
    cells.clear();
    cells.into_iter().map(|_| DataRef::Empty).collect()
}

fn unreadable(error: csv::Error) -> ImportError {
    let line = error
        .position()
        .map_or_else(String::new, |p| format!(" on line {}", p.line()));
    ImportError::unreadable(format!("malformed CSV{line}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `text` as owned strings (`""` for an empty cell).
    fn rows(text: &str, delimiter: u8) -> Vec<(u32, Vec<String>)> {
        let mut out = Vec::new();
        read_rows(text, delimiter, &ImportLimits::default(), |row, cells| {
            let cells = cells
                .iter()
                .map(|cell| match cell {
                    DataRef::SharedString(s) => (*s).to_owned(),
                    DataRef::Empty => String::new(),
                    other => panic!("unexpected cell {other:?}"),
                })
                .collect();
            out.push((row, cells));
            Ok(true)
        })
        .expect("rows");
        out
    }

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn utf8_is_borrowed_with_or_without_a_bom() {
        let plain = "Id,Name\n1,Zoë\n";
        assert!(matches!(decode_text(plain.as_bytes()), Cow::Borrowed(s) if s == plain));
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(plain.as_bytes());
        assert!(matches!(decode_text(&with_bom), Cow::Borrowed(s) if s == plain));
    }

    #[test]
    fn other_bytes_are_windows_1252() {
        assert_eq!(decode_text(b"Ren\xE9,\x80 5\n"), "René,€ 5\n");
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let text = "Id\tName\r\n1\tZoë\r\n";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(&le), text);
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode_text(&be), text);
        assert_eq!(sniff_delimiter(&decode_text(&le)), b'\t');
    }

    #[test]
    fn delimiters_are_sniffed() {
        assert_eq!(
            sniff_delimiter("Id,Name,Email\n1,Ann,a@x\n2,Bob,b@x\n"),
            b','
        );
        assert_eq!(sniff_delimiter("Id;Name;Email\r\n1;Ann;a@x\r\n"), b';');
        assert_eq!(sniff_delimiter("Id\tName\tEmail\n1\tAnn\ta@x\n"), b'\t');
        assert_eq!(sniff_delimiter("Id|Name\n1|Ann\n"), b'|');
        // Decimal commas in a semicolon file split unevenly; the semicolons split every line.
        assert_eq!(
            sniff_delimiter("Id;Name;Amount\n1;Ann;3,50\n2;Bob;4\n3;Cy;5,25\n"),
            b';'
        );
        // Commas inside quoted values do not count.
        assert_eq!(
            sniff_delimiter("Id;Name\n1;\"Smith, Ann\"\n2;\"Doe, Bob\"\n"),
            b';'
        );
        // Nothing splits: a single column, or nothing at all.
        assert_eq!(sniff_delimiter("Id\n1\n2\n"), b',');
        assert_eq!(sniff_delimiter(""), b',');
    }

    #[test]
    fn semicolon_and_tab_files_are_read() {
        assert_eq!(
            rows("Id;Name\r\n1;Ann\r\n", b';'),
            [(0, strings(&["Id", "Name"])), (1, strings(&["1", "Ann"]))]
        );
        assert_eq!(
            rows("Id\tName\n1\tAnn, Jr\n", b'\t'),
            [
                (0, strings(&["Id", "Name"])),
                (1, strings(&["1", "Ann, Jr"]))
            ]
        );
    }

    #[test]
    fn quoted_delimiters_and_newlines_stay_in_their_cell() {
        let text =
            "Id,Note,Name\n1,\"a, b\",Ann\n2,\"line 1\nline 2\",Bob\n3,\"say \"\"hi\"\"\",Cy\n";
        assert_eq!(
            rows(text, b','),
            [
                (0, strings(&["Id", "Note", "Name"])),
                (1, strings(&["1", "a, b", "Ann"])),
                // One record over two lines is one row.
                (2, strings(&["2", "line 1\nline 2", "Bob"])),
                (3, strings(&["3", "say \"hi\"", "Cy"])),
            ]
        );
    }

    #[test]
    fn ragged_rows_and_empty_cells_are_kept() {
        let mut seen = Vec::new();
        read_rows(
            "a,,c\n\n1\n1,2,3,4\n",
            b',',
            &ImportLimits::default(),
            |row, cells| {
                seen.push((row, cells.len()));
                assert_eq!(cells.get(1).is_some_and(|c| *c == DataRef::Empty), row == 0);
                Ok(true)
            },
        )
        .expect("rows");
        // The blank line is skipped and takes no row number.
        assert_eq!(seen, [(0, 3), (1, 1), (2, 4)]);
    }

    #[test]
    fn visit_can_stop_early_and_its_errors_pass_through() {
        let mut visited = 0;
        read_rows("1\n2\n3\n", b',', &ImportLimits::default(), |row, _| {
            visited += 1;
            Ok(row < 1)
        })
        .expect("stopped");
        assert_eq!(visited, 2);
        let err = read_rows("1\n2\n", b',', &ImportLimits::default(), |_, _| {
            Err(ImportError::NoWorksheet)
        })
        .expect_err("visit's error");
        assert!(matches!(err, ImportError::NoWorksheet));
    }

    #[test]
    fn too_many_columns_is_a_limit_naming_the_cell() {
        let limits = ImportLimits {
            max_columns: 3,
            ..ImportLimits::default()
        };
        let err =
            read_rows("a,b,c\n1,2,3,4\n", b',', &limits, |_, _| Ok(true)).expect_err("too wide");
        assert!(matches!(err, ImportError::Limit(_)), "{err}");
        assert!(
            err.to_string().contains("cell D2 is beyond column 3"),
            "{err}"
        );
    }

    #[test]
    fn long_cells_are_not_refused_here() {
        let limits = ImportLimits {
            max_cell_chars: 4,
            ..ImportLimits::default()
        };
        let mut longest = 0;
        read_rows("Id,Name\n1,Bartholomew\n", b',', &limits, |_, cells| {
            for cell in cells {
                if let DataRef::SharedString(value) = cell {
                    longest = longest.max(value.chars().count());
                }
            }
            Ok(true)
        })
        .expect("read");
        assert_eq!(longest, 11);
    }

    #[test]
    fn empty_input_has_no_rows() {
        assert!(rows("", b',').is_empty());
        assert!(rows("\n\r\n", b',').is_empty());
    }

    #[test]
    fn the_cell_buffer_is_reused_across_rows() {
        let cells = vec![DataRef::SharedString("x"); 6];
        let (pointer, capacity) = (cells.as_ptr() as usize, cells.capacity());
        let recycled: Vec<DataRef<'static>> = recycle(cells);
        assert!(recycled.is_empty());
        assert_eq!(
            (recycled.as_ptr() as usize, recycled.capacity()),
            (pointer, capacity)
        );
    }
}
