//! The people sheet's columns and the header row that locates them.

use calamine::DataRef;

use super::error::ImportError;
use super::record::describe;

/// The required columns, in the order they are stored. Header matching ignores case and
/// surrounding spaces; extra columns are ignored; order in the sheet is free.
pub const COLUMNS: [&str; 6] = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Gender",
    "IpAddress",
];

/// Header cells named in a missing-column error, at most.
const FOUND_SHOWN: usize = 20;

/// Index of the `Id` column in [`COLUMNS`].
pub const ID: usize = 0;

/// Where each of [`COLUMNS`] sits in the sheet: `positions[i]` is the 0-based sheet column of
/// `COLUMNS[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    /// Sheet column per required column.
    pub positions: [usize; COLUMNS.len()],
}

impl HeaderMap {
    /// The right-most sheet column any required column uses; cells further right are skipped.
    pub fn last_position(&self) -> usize {
        self.positions.iter().copied().max().unwrap_or(0)
    }
}

/// Locates the required columns in header row `row` (1-based).
///
/// # Errors
/// [`ImportError::MissingColumns`] naming every absent column and what was found, or
/// [`ImportError::DuplicateColumn`].
pub fn map_header(row: u32, cells: &[DataRef<'_>]) -> Result<HeaderMap, ImportError> {
    let names: Vec<String> = cells.iter().map(header_text).collect();
    let mut positions = [usize::MAX; COLUMNS.len()];
    for (sheet_column, name) in names.iter().enumerate() {
        let Some(required) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) else {
            continue;
        };
        if positions[required] != usize::MAX {
            return Err(ImportError::DuplicateColumn {
                row,
                column: COLUMNS[required],
            });
        }
        positions[required] = sheet_column;
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(positions)
        .filter(|(_, position)| *position == usize::MAX)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        // Named briefly: a hostile header must not make a megabyte-long message.
        let non_empty: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .collect();
        let mut found: Vec<String> = non_empty
            .iter()
            .take(FOUND_SHOWN)
            .map(|n| {
                if n.chars().count() > 40 {
                    format!("{}…", n.chars().take(40).collect::<String>())
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        if non_empty.len() > FOUND_SHOWN {
            found.push(format!("… ({} more)", non_empty.len() - FOUND_SHOWN));
        }
        return Err(ImportError::MissingColumns {
            row,
            missing: missing.join(", "),
            found: if found.is_empty() {
                "no names".to_owned()
            } else {
                found.join(", ")
            },
        });
    }
    Ok(HeaderMap { positions })
}

fn header_text(cell: &DataRef<'_>) -> String {
    match cell {
        DataRef::String(s) => s.trim().to_owned(),
        DataRef::SharedString(s) => s.trim().to_owned(),
        DataRef::Empty => String::new(),
        other => describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(names: &[&'static str]) -> Vec<DataRef<'static>> {
        names.iter().map(|n| DataRef::SharedString(n)).collect()
    }

    #[test]
    fn header_is_matched_ignoring_case_order_and_extra_columns() {
        let cells = row(&[
            "email",
            "Notes",
            "ID",
            " firstname ",
            "LASTNAME",
            "Gender",
            "ipaddress",
        ]);
        let map = map_header(1, &cells).expect("maps");
        assert_eq!(map.positions, [2, 3, 4, 0, 5, 6]);
        assert_eq!(map.last_position(), 6);
    }

    #[test]
    fn missing_columns_are_all_named() {
        let cells = row(&["Id", "FirstName", "LastName", "Gender"]);
        let err = map_header(1, &cells).expect_err("fails").to_string();
        assert_eq!(
            err,
            "row 1: the header row is missing column Email, IpAddress; found Id, FirstName, LastName, Gender"
        );
    }

    #[test]
    fn a_repeated_column_is_rejected() {
        let cells = row(&[
            "Id",
            "id",
            "FirstName",
            "LastName",
            "Email",
            "Gender",
            "IpAddress",
        ]);
        assert!(matches!(
            map_header(3, &cells),
            Err(ImportError::DuplicateColumn {
                row: 3,
                column: "Id"
            })
        ));
    }
}
