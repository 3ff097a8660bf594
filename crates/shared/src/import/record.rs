//! One data row: its cells checked against their columns and written as a line of
//! Postgres's COPY text format (<https://www.postgresql.org/docs/current/sql-copy.html>).

use std::fmt::Write as _;

use calamine::DataRef;
use uuid::Uuid;

use super::columns::{HeaderMap, COLUMNS, ID};
use super::error::{cell_reference, ImportError};

/// Appends the COPY text line for one data row to `out`:
/// `job_id \t row_number \t id \t first_name \t last_name \t email \t gender \t ip_address \n`.
///
/// `row` is 0-based (as calamine reports it); `cells` is the row's cells by sheet column.
///
/// Returns the row's `Id`.
///
/// The rules: `Id` is a whole number; `Email` is present and looks like `local@domain.tld`;
/// `IpAddress` is present and parses as IPv4 or IPv6; `Gender` is optional free text of at most
/// 64 characters (people describe themselves; the column is not an enumeration); `FirstName`
/// and `LastName` are optional. No text may hold an Excel error, a date, a NUL character, or
/// more than `max_cell_chars` characters.
///
/// # Errors
/// [`ImportError::InvalidCell`] naming the row, column, cell and value, and why.
pub fn encode_row(
    out: &mut Vec<u8>,
    job_id: &Uuid,
    row: u32,
    header: &HeaderMap,
    cells: &[DataRef<'_>],
    max_cell_chars: usize,
) -> Result<i64, ImportError> {
    let cell_at = |column: usize| {
        cells
            .get(header.positions[column])
            .unwrap_or(&DataRef::Empty)
    };
    let invalid = |column: usize, reason: String| ImportError::InvalidCell {
        row: row + 1,
        column: COLUMNS[column],
        cell: cell_reference(row, header.positions[column] as u32),
        value: describe(cell_at(column)),
        reason,
    };

    let id = whole_number(cell_at(ID)).map_err(|reason| invalid(ID, reason))?;
    let start = out.len();
    // Writing into a Vec cannot fail.
    let _ = write!(LineWriter(out), "{job_id}\t{}\t{id}", row + 1);
    for column in ID + 1..COLUMNS.len() {
        out.push(b'\t');
        match text(cell_at(column), max_cell_chars).and_then(|value| check_column(column, value)) {
            Ok(Some(value)) => escape_into(out, &value),
            Ok(None) => out.extend_from_slice(b"\\N"),
            Err(reason) => {
                out.truncate(start);
                return Err(invalid(column, reason));
            }
        }
    }
    out.push(b'\n');
    Ok(id)
}

/// Longest `Gender`, in characters.
pub const MAX_GENDER_CHARS: usize = 64;

/// The per-column rules beyond "is text".
fn check_column(column: usize, value: Option<String>) -> Result<Option<String>, String> {
    match (COLUMNS[column], value) {
        ("Email", None) => Err("the email is missing".to_owned()),
        ("Email", Some(email)) if !is_email(&email) => {
            Err(format!("{:?} is not an email address", shorten(&email)))
        }
        ("IpAddress", None) => Err("the IP address is missing".to_owned()),
        ("IpAddress", Some(ip)) if ip.trim().parse::<std::net::IpAddr>().is_err() => {
            Err(format!("{:?} is not an IPv4 or IPv6 address", shorten(&ip)))
        }
        ("Gender", Some(gender)) if gender.chars().count() > MAX_GENDER_CHARS => Err(format!(
            "the gender is longer than {MAX_GENDER_CHARS} characters"
        )),
        (_, value) => Ok(value),
    }
}

/// A practical email check (not RFC 5322's full grammar): one `@`, a non-empty local part, a
/// domain with a dot and no empty label, no spaces, at most 254 characters (RFC 5321).
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether every cell of a row is empty (such rows are skipped, as Excel users expect).
pub fn is_blank(cells: &[DataRef<'_>]) -> bool {
    cells.iter().all(|cell| match cell {
        DataRef::Empty => true,
        DataRef::String(s) => s.trim().is_empty(),
        DataRef::SharedString(s) => s.trim().is_empty(),
        _ => false,
    })
}

/// An `Id`: a number cell without fraction, or text of a whole number.
fn whole_number(cell: &DataRef<'_>) -> Result<i64, String> {
    // Excel stores every number as a double; ids up to 2^53 are exact.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match cell {
        DataRef::Int(i) => Ok(*i),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() <= EXACT => Ok(*f as i64),
        DataRef::Float(f) => Err(format!("expected a whole number, found {f}")),
        DataRef::String(s) => parse_whole(s),
        DataRef::SharedString(s) => parse_whole(s),
        DataRef::Empty => Err("the cell is empty; expected a whole number".to_owned()),
        other => Err(format!(
            "expected a whole number, found {}",
            describe(other)
        )),
    }
}

fn parse_whole(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| format!("expected a whole number, found {:?}", shorten(s)))
}

/// A short description of a cell's value, for error messages.
pub fn describe(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::Empty => "an empty cell".to_owned(),
        DataRef::String(s) => format!("{:?}", shorten(s)),
        DataRef::SharedString(s) => format!("{:?}", shorten(s)),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => f.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(_) | DataRef::DateTimeIso(_) => "a date".to_owned(),
        DataRef::DurationIso(_) => "a duration".to_owned(),
        DataRef::Error(e) => format!("the Excel error {e}"),
    }
}

/// A text column's value: `None` for an empty cell.
fn text(cell: &DataRef<'_>, max_chars: usize) -> Result<Option<String>, String> {
    let value = match cell {
        DataRef::Empty => return Ok(None),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => f.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::DateTime(_) => return Err("expected text, found a date".to_owned()),
        DataRef::Error(e) => return Err(format!("the cell holds the Excel error {e}")),
    };
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(format!("the text is longer than {max_chars} characters"));
    }
    if value.contains('\0') {
        return Err("the text contains a NUL character, which Postgres cannot store".to_owned());
    }
    Ok(Some(value))
}

/// Escapes COPY text's special characters: backslash, tab, newline, carriage return.
fn escape_into(out: &mut Vec<u8>, value: &str) {
    for byte in value.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

/// At most 40 characters of a value, for error messages.
fn shorten(s: &str) -> String {
    let mut short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    short
}

/// `fmt::Write` over a byte buffer.
struct LineWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> HeaderMap {
        HeaderMap {
            positions: [0, 1, 2, 3, 4, 5],
        }
    }

    fn encode(cells: &[DataRef<'_>]) -> Result<String, ImportError> {
        let mut out = Vec::new();
        encode_row(&mut out, &Uuid::nil(), 1, &header(), cells, 32_767)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    fn person<'a>(email: &'a str, gender: &'a str, ip: &'a str) -> Vec<DataRef<'a>> {
        vec![
            DataRef::Int(1),
            DataRef::SharedString("Ann"),
            DataRef::SharedString("Lee"),
            DataRef::SharedString(email),
            DataRef::SharedString(gender),
            DataRef::SharedString(ip),
        ]
    }

    #[test]
    fn emails_ips_and_genders_are_checked() {
        let long_gender = "g".repeat(65);
        assert!(encode(&person("ann@example.com", "Female", "10.0.0.1")).is_ok());
        assert!(encode(&person("ann@example.com", "Two-Spirit", "2001:db8::1")).is_ok());
        let cases = [
            (
                person("ann.example.com", "Female", "10.0.0.1"),
                "column Email (cell D2): \"ann.example.com\" is not an email address",
            ),
            (
                person("ann@localhost", "Female", "10.0.0.1"),
                "is not an email address",
            ),
            (
                person("a b@example.com", "Female", "10.0.0.1"),
                "is not an email address",
            ),
            (
                person("ann@example.com", "Female", "300.1.1.1"),
                "column IpAddress (cell F2): \"300.1.1.1\" is not an IPv4 or IPv6 address",
            ),
            (
                person("ann@example.com", &long_gender, "10.0.0.1"),
                "column Gender (cell E2): the gender is longer than 64",
            ),
        ];
        for (cells, expected) in cases {
            let err = encode(&cells).expect_err("invalid").to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_row_becomes_one_escaped_copy_line() {
        let line = encode(&[
            DataRef::Float(7.0),
            DataRef::SharedString("Ann"),
            DataRef::String("O\\Brien\tx\ny".to_owned()),
            DataRef::SharedString("o@x.io"),
            DataRef::Empty,
            DataRef::SharedString("::1"),
        ])
        .expect("encodes");
        assert_eq!(
            line,
            "00000000-0000-0000-0000-000000000000\t2\t7\tAnn\tO\\\\Brien\\tx\\ny\to@x.io\t\\N\t::1\n"
        );
    }

    #[test]
    fn a_non_numeric_id_names_row_column_and_cell() {
        let err = encode(&[DataRef::SharedString("abc")]).expect_err("fails");
        assert_eq!(
            err.to_string(),
            "row 2, column Id (cell A2): expected a whole number, found \"abc\""
        );
        assert!(encode(&[DataRef::Float(1.5)]).is_err());
        assert!(encode(&[DataRef::Empty]).is_err());
        let mut text_id = person("a@b.io", "", "1.1.1.1");
        text_id[0] = DataRef::SharedString(" 42 ");
        assert_eq!(
            encode(&text_id).ok().map(|l| l.contains("\t42\t")),
            Some(true)
        );
    }

    #[test]
    fn nul_characters_and_excel_errors_are_rejected_in_text_columns() {
        let err =
            encode(&[DataRef::Int(1), DataRef::String("a\0b".to_owned())]).expect_err("fails");
        assert!(err
            .to_string()
            .starts_with("row 2, column FirstName (cell B2)"));
        let err = encode(&[
            DataRef::Int(1),
            DataRef::Empty,
            DataRef::Empty,
            DataRef::Error(calamine::CellErrorType::NA),
        ])
        .expect_err("fails");
        assert!(err.to_string().starts_with("row 2, column Email (cell D2)"));
    }

    #[test]
    fn blank_rows_are_recognised() {
        assert!(is_blank(&[DataRef::Empty, DataRef::SharedString("  ")]));
        assert!(!is_blank(&[DataRef::Empty, DataRef::Int(0)]));
    }
}
