//! One column of an import profile: its type, and where it comes from in the sheet.

use super::names::normalize_header;

/// A column's type: what its cells must hold and how they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// Any text (numbers and booleans are written as they display).
    Text,
    /// A whole number in `i32` (`1234.0` and `"1234"` are accepted).
    Integer,
    /// A whole number in `i64`, exact up to 2^53 when Excel stored it as a number.
    Bigint,
    /// A decimal with at most `precision` digits, `scale` of them after the point. Number cells
    /// are rounded to `scale` when written; text is written as given and a `numeric(p,s)`
    /// column rounds it on input.
    Numeric {
        /// Total significant digits, 1–1000.
        precision: u32,
        /// Digits after the point, 0–`precision`.
        scale: u32,
    },
    /// `TRUE`/`FALSE`, `yes`/`no`, `y`/`n`, `1`/`0`, `on`/`off`, boolean cells.
    Boolean,
    /// A calendar date: date cells, Excel serial numbers, ISO 8601 text or the profile's
    /// `date_formats`.
    Date,
    /// A date and time, written as UTC: date cells (taken as UTC), serial numbers, RFC 3339 /
    /// ISO 8601 text, or the profile's `date_formats`.
    Timestamptz,
    /// A UUID in any of its text forms, written hyphenated.
    Uuid,
    /// An email address (a practical check, see `coerce.rs`).
    Email,
    /// An IPv4 or IPv6 address.
    Inet,
    /// One of the listed values, matched ignoring case and surrounding spaces; written as listed.
    OneOf(Vec<String>),
}

impl ColumnType {
    /// The type as written in a profile: `text`, `numeric(10,2)`, `one_of`, …
    pub fn name(&self) -> String {
        match self {
            ColumnType::Text => "text".to_owned(),
            ColumnType::Integer => "integer".to_owned(),
            ColumnType::Bigint => "bigint".to_owned(),
            ColumnType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            ColumnType::Boolean => "boolean".to_owned(),
            ColumnType::Date => "date".to_owned(),
            ColumnType::Timestamptz => "timestamptz".to_owned(),
            ColumnType::Uuid => "uuid".to_owned(),
            ColumnType::Email => "email".to_owned(),
            ColumnType::Inet => "inet".to_owned(),
            ColumnType::OneOf(_) => "one_of".to_owned(),
        }
    }

    /// Reads a profile's `type` (and `values` for `one_of`).
    pub(super) fn parse(name: &str, values: &[String]) -> Result<ColumnType, String> {
        let name = name.trim().to_ascii_lowercase();
        let simple = match name.as_str() {
            "text" | "string" => Some(ColumnType::Text),
            "integer" | "int" => Some(ColumnType::Integer),
            "bigint" => Some(ColumnType::Bigint),
            "boolean" | "bool" => Some(ColumnType::Boolean),
            "date" => Some(ColumnType::Date),
            "timestamptz" | "timestamp" => Some(ColumnType::Timestamptz),
            "uuid" => Some(ColumnType::Uuid),
            "email" => Some(ColumnType::Email),
            "inet" | "ip" => Some(ColumnType::Inet),
            "one_of" => {
                if values.is_empty() {
                    return Err("type one_of needs a non-empty `values` list".to_owned());
                }
                Some(ColumnType::OneOf(values.to_vec()))
            }
            _ => None,
        };
        if let Some(ty) = simple {
            return Ok(ty);
        }
        let numeric = name
            .strip_prefix("numeric(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|inner| inner.split_once(','))
            .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)));
        match numeric {
            Some((precision, scale)) if (1..=1000).contains(&precision) && scale <= precision => {
                Ok(ColumnType::Numeric { precision, scale })
            }
            _ => Err(format!(
                "unknown type {name:?} (text, integer, bigint, numeric(p,s), boolean, date, \
                 timestamptz, uuid, email, inet, one_of)"
            )),
        }
    }
}

/// One column of a profile: where it comes from in the sheet and what it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The target table's column.
    pub name: String,
    /// The header expected in the sheet (matched as [`normalize_header`] says).
    pub header: String,
    /// Other headers accepted for this column.
    pub aliases: Vec<String>,
    /// What the cells must hold.
    pub ty: ColumnType,
    /// Whether the header must be present and every row must have a value.
    pub required: bool,
    /// Written when the cell is empty or the header is absent (checked like a cell).
    pub default: Option<String>,
    /// Longest value, in characters; `None`: the import's `max_cell_chars` limit only.
    pub max_length: Option<usize>,
    /// Whether a value may appear only once in the file.
    pub unique: bool,
}

impl ColumnSpec {
    /// The header and the aliases, normalised: what a sheet's header cell is compared with.
    pub fn match_keys(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&self.header)
            .chain(&self.aliases)
            .map(|h| normalize_header(h))
    }
}
