//! Spreadsheet-aware conversion of one cell to its column's type, written as Postgres COPY text
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, text format).
//!
//! Spreadsheets hold numbers stored as text and text stored as numbers (an id of `1234.0`),
//! dates as date cells (in the workbook's 1900 or 1904 system), as bare serial numbers (read in
//! the 1900 system) or as text, booleans as `TRUE`, `yes` or `1`, and stray spaces everywhere. Formulas arrive as their cached values.
//! Each [`ColumnType`] accepts what a person would mean and refuses the rest with a reason.

use std::borrow::Cow;
use std::fmt::Write as _;

use calamine::{DataRef, ExcelDateTime, ExcelDateTimeType};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

use super::cell::{describe, shorten};
use super::column::{ColumnSpec, ColumnType};

/// Excel stores every number as a double: whole numbers up to 2^53 are exact.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A cell's value, converted: nothing, a whole number, or text to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coerced<'a> {
    /// An empty cell (or only spaces).
    Empty,
    /// A whole number (integer and bigint columns): kept as a number so uniqueness checks hash
    /// eight bytes, not a string.
    Int(i64),
    /// Anything else, as it is written to the table.
    Text(Cow<'a, str>),
}

impl Coerced<'_> {
    /// Appends the value as COPY text (`\N` for empty).
    pub fn write_copy(&self, out: &mut Vec<u8>) {
        match self {
            Coerced::Empty => out.extend_from_slice(b"\\N"),
            Coerced::Int(i) => {
                let _ = write!(ByteWriter(out), "{i}");
            }
            Coerced::Text(text) => escape_copy(out, text),
        }
    }

    /// The value for people: in previews and error reports.
    pub fn display(&self) -> Option<String> {
        match self {
            Coerced::Empty => None,
            Coerced::Int(i) => Some(i.to_string()),
            Coerced::Text(text) => Some(text.to_string()),
        }
    }
}

/// What a conversion needs besides the cell.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The profile's text date formats (`chrono` syntax), tried after ISO 8601.
    pub date_formats: &'a [String],
    /// The import's longest text, in characters (a hostile-input limit).
    pub max_cell_chars: usize,
}

/// Converts `cell` for `column`.
///
/// # Errors
/// Why the cell does not fit, for people: `"expected a whole number, found \"abc\""`.
pub fn coerce<'c>(
    cell: &'c DataRef<'_>,
    column: &ColumnSpec,
    rules: Rules<'_>,
) -> Result<Coerced<'c>, String> {
    let value = match cell {
        DataRef::Empty => return Ok(Coerced::Empty),
        DataRef::Error(e) => return Err(format!("the cell holds the Excel error {e}")),
        DataRef::String(s) => Raw::Text(s.as_str()),
        DataRef::SharedString(s) => Raw::Text(s),
        DataRef::DateTimeIso(s) => Raw::Text(s.as_str()),
        DataRef::DurationIso(s) => Raw::Text(s.as_str()),
        DataRef::Int(i) => Raw::Number(*i as f64, Some(*i)),
        DataRef::Float(f) => Raw::Number(*f, None),
        DataRef::Bool(b) => Raw::Bool(*b),
        DataRef::DateTime(dt) => Raw::Date(*dt),
    };
    if let Raw::Text(text) = value {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Coerced::Empty);
        }
        if text.len() > rules.max_cell_chars && text.chars().count() > rules.max_cell_chars {
            return Err(format!(
                "the text is longer than {} characters",
                rules.max_cell_chars
            ));
        }
        // Bytes, not chars: this runs for every text cell (UTF-8 never has 0 inside a char).
        if text.as_bytes().contains(&0) {
            return Err(
                "the text contains a NUL character, which Postgres cannot store".to_owned(),
            );
        }
        return from_text(text, cell, column, rules);
    }
    let coerced = from_typed(value, cell, column)?;
    check_length(&coerced, column)?;
    Ok(coerced)
}

/// Checks a text value (a profile's `default`) for `column`, appending its COPY text to `out`.
///
/// # Errors
/// Why it does not fit, as [`coerce`] says.
pub fn write_text_value(
    out: &mut Vec<u8>,
    text: &str,
    column: &ColumnSpec,
    date_formats: &[String],
) -> Result<(), String> {
    let cell = DataRef::SharedString(text);
    let rules = Rules {
        date_formats,
        max_cell_chars: usize::MAX,
    };
    coerce(&cell, column, rules)?.write_copy(out);
    Ok(())
}

/// A cell's content before conversion.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Text(&'a str),
    /// The value, and the exact integer when the cell held one.
    Number(f64, Option<i64>),
    Bool(bool),
    Date(ExcelDateTime),
}

fn from_text<'c>(
    text: &'c str,
    cell: &DataRef<'_>,
    column: &ColumnSpec,
    rules: Rules<'_>,
) -> Result<Coerced<'c>, String> {
    let found = || describe(cell);
    let coerced = match &column.ty {
        ColumnType::Text => Coerced::Text(Cow::Borrowed(text)),
        ColumnType::Integer | ColumnType::Bigint => {
            let whole = text.parse::<i64>().ok().or_else(|| {
                // "1234.0": a number that went through a float somewhere.
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT_INTEGER)
                    .map(|f| f as i64)
            });
            match whole {
                Some(value) => whole_in_range(value, &column.ty)?,
                None => return Err(format!("expected a whole number, found {}", found())),
            }
        }
        ColumnType::Numeric { precision, scale } => {
            let normal = text.replace('_', "");
            match normal.parse::<f64>() {
                Ok(f) if f.is_finite() && is_decimal_text(&normal) => {
                    check_numeric_digits(&normal, *precision, *scale)?;
                    // Postgres rounds to the column's scale; the text is written as given.
                    Coerced::Text(Cow::Owned(normal))
                }
                _ => return Err(format!("expected a number, found {}", found())),
            }
        }
        ColumnType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "on" => Coerced::Text(Cow::Borrowed("t")),
            "false" | "f" | "no" | "n" | "0" | "off" => Coerced::Text(Cow::Borrowed("f")),
            _ => {
                return Err(format!(
                    "expected TRUE/FALSE, yes/no or 1/0, found {}",
                    found()
                ))
            }
        },
        ColumnType::Date => match parse_date_text(text, rules.date_formats) {
            Some(date) => Coerced::Text(Cow::Owned(date.format("%Y-%m-%d").to_string())),
            None => return Err(format!("expected a date, found {}", found())),
        },
        ColumnType::Timestamptz => match parse_timestamp_text(text, rules.date_formats) {
            Some(at) => Coerced::Text(Cow::Owned(utc_text(at))),
            None => return Err(format!("expected a date and time, found {}", found())),
        },
        ColumnType::Uuid => match uuid::Uuid::parse_str(text) {
            Ok(id) => Coerced::Text(Cow::Owned(id.hyphenated().to_string())),
            Err(_) => return Err(format!("expected a UUID, found {}", found())),
        },
        ColumnType::Email if is_email(text) => Coerced::Text(Cow::Borrowed(text)),
        ColumnType::Email => {
            return Err(format!("{:?} is not an email address", shorten(text)));
        }
        ColumnType::Inet if text.parse::<std::net::IpAddr>().is_ok() => {
            Coerced::Text(Cow::Borrowed(text))
        }
        ColumnType::Inet => {
            return Err(format!(
                "{:?} is not an IPv4 or IPv6 address",
                shorten(text)
            ));
        }
        ColumnType::OneOf(values) => one_of(text, values)?,
    };
    check_length(&coerced, column)?;
    Ok(coerced)
}

fn from_typed<'c>(
    value: Raw<'_>,
    cell: &DataRef<'_>,
    column: &ColumnSpec,
) -> Result<Coerced<'c>, String> {
    let found = || describe(cell);
    let wrong = |expected: &str| Err(format!("expected {expected}, found {}", found()));
    match (&column.ty, value) {
        (_, Raw::Text(_)) => unreachable!("text is converted by from_text"),
        (ColumnType::Text, Raw::Number(f, exact)) => {
            Ok(Coerced::Text(Cow::Owned(number_text(f, exact))))
        }
        (ColumnType::Text, Raw::Bool(b)) => Ok(Coerced::Text(Cow::Borrowed(if b {
            "TRUE"
        } else {
            "FALSE"
        }))),
        (ColumnType::Text, Raw::Date(dt)) => match dt.as_datetime() {
            Some(at) if at.time() == NaiveTime::MIN => Ok(Coerced::Text(Cow::Owned(
                at.date().format("%Y-%m-%d").to_string(),
            ))),
            Some(at) => Ok(Coerced::Text(Cow::Owned(
                at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ))),
            None => wrong("text"),
        },
        (ColumnType::Integer | ColumnType::Bigint, Raw::Number(f, exact)) => {
            match exact
                .or_else(|| (f.fract() == 0.0 && f.abs() <= EXACT_INTEGER).then_some(f as i64))
            {
                Some(value) => whole_in_range(value, &column.ty),
                None => wrong("a whole number"),
            }
        }
        (ColumnType::Numeric { precision, scale }, Raw::Number(f, exact)) => {
            let text = match exact {
                Some(i) => i.to_string(),
                None => format!("{:.*}", *scale as usize, f),
            };
            check_numeric_digits(&text, *precision, *scale)?;
            Ok(Coerced::Text(Cow::Owned(text)))
        }
        (ColumnType::Boolean, Raw::Bool(b)) => {
            Ok(Coerced::Text(Cow::Borrowed(if b { "t" } else { "f" })))
        }
        (ColumnType::Boolean, Raw::Number(f, _)) if f == 1.0 || f == 0.0 => {
            Ok(Coerced::Text(Cow::Borrowed(if f == 1.0 {
                "t"
            } else {
                "f"
            })))
        }
        (ColumnType::Date, Raw::Date(dt)) => match dt.as_datetime() {
            Some(at) => Ok(Coerced::Text(Cow::Owned(
                at.date().format("%Y-%m-%d").to_string(),
            ))),
            None => wrong("a date"),
        },
        (ColumnType::Date, Raw::Number(f, _)) => match serial_date(f) {
            Some(at) => Ok(Coerced::Text(Cow::Owned(
                at.date().format("%Y-%m-%d").to_string(),
            ))),
            None => wrong("a date"),
        },
        (ColumnType::Timestamptz, Raw::Date(dt)) => match dt.as_datetime() {
            Some(at) => Ok(Coerced::Text(Cow::Owned(utc_text(at)))),
            None => wrong("a date and time"),
        },
        (ColumnType::Timestamptz, Raw::Number(f, _)) => match serial_date(f) {
            Some(at) => Ok(Coerced::Text(Cow::Owned(utc_text(at)))),
            None => wrong("a date and time"),
        },
        (ColumnType::OneOf(values), Raw::Number(f, exact)) => {
            one_of(&number_text(f, exact), values)
        }
        (ColumnType::Integer | ColumnType::Bigint, _) => wrong("a whole number"),
        (ColumnType::Numeric { .. }, _) => wrong("a number"),
        (ColumnType::Boolean, _) => wrong("TRUE/FALSE, yes/no or 1/0"),
        (ColumnType::Date, _) => wrong("a date"),
        (ColumnType::Timestamptz, _) => wrong("a date and time"),
        (ColumnType::Uuid, _) => wrong("a UUID"),
        (ColumnType::Email, _) => wrong("an email address"),
        (ColumnType::Inet, _) => wrong("an IPv4 or IPv6 address"),
        (ColumnType::OneOf(values), _) => Err(format!(
            "expected one of {}, found {}",
            values.join(", "),
            found()
        )),
    }
}

fn whole_in_range<'c>(value: i64, ty: &ColumnType) -> Result<Coerced<'c>, String> {
    if *ty == ColumnType::Integer && i32::try_from(value).is_err() {
        return Err(format!("{value} is out of range for an integer column"));
    }
    Ok(Coerced::Int(value))
}

fn one_of<'c>(text: &str, values: &[String]) -> Result<Coerced<'c>, String> {
    let text = text.trim();
    values
        .iter()
        .find(|v| v.trim().to_lowercase() == text.to_lowercase())
        .map(|v| Coerced::Text(Cow::Owned(v.clone())))
        .ok_or_else(|| {
            format!(
                "expected one of {}, found {:?}",
                values.join(", "),
                shorten(text)
            )
        })
}

fn check_length(value: &Coerced<'_>, column: &ColumnSpec) -> Result<(), String> {
    if let (Some(max), Coerced::Text(text)) = (column.max_length, value) {
        // A text of at most `max` bytes has at most `max` chars: count only longer ones.
        if text.len() > max && text.chars().count() > max {
            return Err(format!(
                "the {} is longer than {max} characters",
                column.header.to_lowercase()
            ));
        }
    }
    Ok(())
}

/// A number cell as text, the way a spreadsheet displays it: `1234`, not `1234.0`.
fn number_text(f: f64, exact: Option<i64>) -> String {
    match exact {
        Some(i) => i.to_string(),
        None if f.fract() == 0.0 && f.abs() <= EXACT_INTEGER => (f as i64).to_string(),
        None => f.to_string(),
    }
}

/// Plain decimal notation, optionally with an exponent: digits, at most one point.
fn is_decimal_text(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let mantissa = body.split(['e', 'E']).next().unwrap_or_default();
    !mantissa.is_empty()
        && mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.')
        && mantissa.matches('.').count() <= 1
}

/// Digits before the point must fit `precision - scale` (Postgres's numeric overflow rule).
fn check_numeric_digits(text: &str, precision: u32, scale: u32) -> Result<(), String> {
    let value: f64 = text.parse().unwrap_or(0.0);
    let integer_digits = if value.abs() < 1.0 {
        0
    } else {
        value.abs().log10().floor() as u32 + 1
    };
    if integer_digits > precision - scale {
        return Err(format!(
            "{text} does not fit numeric({precision},{scale}) (at most {} digits before the point)",
            precision - scale
        ));
    }
    Ok(())
}

/// An Excel serial date in the 1900 system (a number cell in a date column: the workbook did
/// not mark it as a date, so its date system is unknown; 1900 is Excel's default).
fn serial_date(serial: f64) -> Option<NaiveDateTime> {
    // 1 = 1900-01-01; 2958465 = 9999-12-31.
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    ExcelDateTime::new(serial, ExcelDateTimeType::DateTime, false).as_datetime()
}

fn parse_date_text(text: &str, formats: &[String]) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            formats
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
        })
}

fn parse_timestamp_text(text: &str, formats: &[String]) -> Option<NaiveDateTime> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.naive_utc());
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    NAIVE
        .iter()
        .copied()
        .chain(formats.iter().map(String::as_str))
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| parse_date_text(text, formats).map(|d| d.and_time(NaiveTime::MIN)))
}

/// A naive date-time taken as UTC, in a form Postgres reads for `timestamptz`.
fn utc_text(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.f+00").to_string()
}

/// A practical email check (not RFC 5322's full grammar): one `@`, a non-empty local part, a
/// domain with a dot and no empty label, no spaces, at most 254 characters (RFC 5321).
pub fn is_email(email: &str) -> bool {
    // On bytes: '@' and '.' are ASCII, so they never occur inside a multi-byte char; this runs
    // once per row of an import.
    let bytes = email.as_bytes();
    let Some(at) = bytes.iter().position(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    let spaced = if email.is_ascii() {
        // For ASCII, char::is_whitespace is ASCII whitespace or the vertical tab (a control).
        bytes
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    } else {
        email.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains(&b'@')
        && domain.contains(&b'.')
        && domain.split(|&b| b == b'.').all(|label| !label.is_empty())
        && !spaced
}

/// Escapes COPY text's special characters: backslash, tab, newline, carriage return.
pub fn escape_copy(out: &mut Vec<u8>, value: &str) {
    let special = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r');
    // Most cells have nothing to escape: one copy instead of a push per byte.
    if !value.as_bytes().iter().any(special) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
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

/// `fmt::Write` over a byte buffer.
pub struct ByteWriter<'a>(pub &'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(ty: ColumnType) -> ColumnSpec {
        ColumnSpec {
            name: "c".to_owned(),
            header: "C".to_owned(),
            aliases: Vec::new(),
            ty,
            required: false,
            default: None,
            max_length: None,
            unique: false,
        }
    }

    fn written(cell: DataRef<'_>, ty: ColumnType) -> Result<String, String> {
        let formats = ["%d/%m/%Y".to_owned()];
        let rules = Rules {
            date_formats: &formats,
            max_cell_chars: 100,
        };
        let mut out = Vec::new();
        coerce(&cell, &column(ty), rules)?.write_copy(&mut out);
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    fn s(text: &str) -> DataRef<'_> {
        DataRef::SharedString(text)
    }

    #[test]
    fn whole_numbers_come_from_numbers_and_text() {
        for cell in [
            DataRef::Int(1234),
            DataRef::Float(1234.0),
            s(" 1234 "),
            s("1234.0"),
        ] {
            assert_eq!(written(cell, ColumnType::Bigint).as_deref(), Ok("1234"));
        }
        assert!(written(DataRef::Float(1.5), ColumnType::Bigint).is_err());
        assert!(written(s("12a"), ColumnType::Bigint)
            .expect_err("refused")
            .contains("expected a whole number, found \"12a\""));
        assert!(written(DataRef::Int(1 << 40), ColumnType::Integer)
            .expect_err("refused")
            .contains("out of range"));
    }

    #[test]
    fn text_columns_show_numbers_as_a_spreadsheet_does() {
        assert_eq!(
            written(DataRef::Float(7.0), ColumnType::Text).as_deref(),
            Ok("7")
        );
        assert_eq!(
            written(DataRef::Float(7.25), ColumnType::Text).as_deref(),
            Ok("7.25")
        );
        assert_eq!(
            written(DataRef::Bool(true), ColumnType::Text).as_deref(),
            Ok("TRUE")
        );
        assert_eq!(
            written(s("  O\\Brien\tx "), ColumnType::Text).as_deref(),
            Ok("O\\\\Brien\\tx")
        );
        assert_eq!(written(s("   "), ColumnType::Text).as_deref(), Ok("\\N"));
        assert!(written(s("a\0b"), ColumnType::Text)
            .expect_err("refused")
            .contains("NUL"));
        assert!(written(s(&"x".repeat(101)), ColumnType::Text)
            .expect_err("refused")
            .contains("longer than 100"));
    }

    #[test]
    fn booleans_in_their_spreadsheet_spellings() {
        for (cell, expected) in [
            (s("TRUE"), "t"),
            (s("yes"), "t"),
            (s("0"), "f"),
            (s("Off"), "f"),
            (DataRef::Bool(false), "f"),
            (DataRef::Float(1.0), "t"),
        ] {
            assert_eq!(written(cell, ColumnType::Boolean).as_deref(), Ok(expected));
        }
        assert!(written(s("maybe"), ColumnType::Boolean).is_err());
    }

    #[test]
    fn dates_from_cells_serials_and_text() {
        let date_cell = DataRef::DateTime(ExcelDateTime::new(
            45_292.0,
            ExcelDateTimeType::DateTime,
            false,
        ));
        let date_1904 = DataRef::DateTime(ExcelDateTime::new(
            43_830.0,
            ExcelDateTimeType::DateTime,
            true,
        ));
        for cell in [
            date_cell,
            date_1904,
            DataRef::Float(45_292.0),
            s("2024-01-01"),
            s("01/01/2024"),
        ] {
            assert_eq!(written(cell, ColumnType::Date).as_deref(), Ok("2024-01-01"));
        }
        assert!(written(s("2024-13-01"), ColumnType::Date).is_err());
        assert!(written(DataRef::Float(-3.0), ColumnType::Date).is_err());
        assert_eq!(
            written(s("2024-01-01T10:30:00+02:00"), ColumnType::Timestamptz).as_deref(),
            Ok("2024-01-01 08:30:00+00")
        );
        assert_eq!(
            written(DataRef::Float(45_292.5), ColumnType::Timestamptz).as_deref(),
            Ok("2024-01-01 12:00:00+00")
        );
    }

    #[test]
    fn numerics_uuids_emails_inets_and_one_of() {
        let money = ColumnType::Numeric {
            precision: 6,
            scale: 2,
        };
        assert_eq!(
            written(DataRef::Float(12.345), money.clone()).as_deref(),
            Ok("12.35")
        );
        assert_eq!(written(s("1e3"), money.clone()).as_deref(), Ok("1e3"));
        assert!(written(s("123456"), money.clone())
            .expect_err("refused")
            .contains("numeric(6,2)"));
        assert!(written(s("1.2.3"), money).is_err());
        assert_eq!(
            written(
                s("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"),
                ColumnType::Uuid
            )
            .as_deref(),
            Ok("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert!(written(s("ann.example.com"), ColumnType::Email)
            .expect_err("refused")
            .contains("is not an email address"));
        assert!(written(s("300.1.1.1"), ColumnType::Inet).is_err());
        assert_eq!(written(s("::1"), ColumnType::Inet).as_deref(), Ok("::1"));
        let status = ColumnType::OneOf(vec!["Active".to_owned(), "Retired".to_owned()]);
        assert_eq!(
            written(s(" active "), status.clone()).as_deref(),
            Ok("Active")
        );
        assert!(written(s("gone"), status)
            .expect_err("refused")
            .contains("one of Active, Retired"));
    }

    #[test]
    fn emails_are_checked_on_bytes_and_unicode_alike() {
        for good in [
            "ann@example.com",
            "a.b+c@mail.example.org",
            "zoë@exämple.de",
        ] {
            assert!(is_email(good), "{good}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        for bad in [
            "ann.example.com",
            "@example.com",
            "ann@example",
            "ann@example..com",
            "ann@@example.com",
            "ann@exa@mple.com",
            "an n@example.com",
            "ann@example.com\u{b}",
            "ann\u{7f}@example.com",
            "zoë\u{a0}@exämple.de",
            "zoë@exämple.de\u{85}",
            long_local.as_str(),
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn copy_text_escapes_only_its_special_characters() {
        let mut out = Vec::new();
        escape_copy(&mut out, "plain ünïcode");
        out.push(b'|');
        escape_copy(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, "plain ünïcode|a\\\\b\\tc\\nd\\re".as_bytes());
    }

    #[test]
    fn excel_errors_are_refused_everywhere() {
        let cell = DataRef::Error(calamine::CellErrorType::Div0);
        assert!(written(cell, ColumnType::Text)
            .expect_err("refused")
            .contains("Excel error"));
    }
}
