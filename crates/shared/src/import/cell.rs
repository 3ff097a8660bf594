//! Describing a cell's value briefly, for error messages ("found \"abc\"", "an empty cell").

use calamine::DataRef;

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

/// At most 40 characters of a value, for error messages.
pub(super) fn shorten(s: &str) -> String {
    let mut short: String = s.chars().take(40).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    short
}
