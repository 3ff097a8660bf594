//! Finding a profile's columns in a sheet's header row, the way people write headers:
//! `first_name`, `FirstName`, `First Name` and `first-name` are the same header.

use calamine::DataRef;
use serde::Serialize;

use super::cell::{describe, shorten};
use super::error::{cell_reference, ImportError};
use super::names::normalize_header;
use super::profile::Profile;

/// Header cells named in a missing-column error, at most.
const FOUND_SHOWN: usize = 20;

/// Where each profile column sits in the sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    /// Spreadsheet row of the header (1-based).
    pub row: u32,
    /// `positions[i]`: the 0-based sheet column of `profile.columns[i]`, `None` when an
    /// optional column is absent.
    pub positions: Vec<Option<usize>>,
    /// The header cells no column uses, as written (for previews).
    pub ignored: Vec<String>,
    /// The header text of each mapped column, as written.
    pub found: Vec<Option<String>>,
    /// Every cell of the header row, as written (empty for an empty cell): the error report's
    /// header.
    pub cells: Vec<String>,
}

impl HeaderMap {
    /// The right-most sheet column any profile column uses; cells further right are skipped.
    pub fn last_position(&self) -> usize {
        self.positions.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// One column of a header mapping, for previews and the profiles listing.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MappedColumn {
    /// The profile's (and table's) column.
    pub column: String,
    /// The header cell that feeds it, as written; `null` when absent.
    pub header: Option<String>,
    /// Its A1 reference; `null` when absent.
    pub cell: Option<String>,
    /// Whether the column is required.
    pub required: bool,
}

impl HeaderMap {
    /// The mapping, column by column, for people to check.
    pub fn describe(&self, profile: &Profile) -> Vec<MappedColumn> {
        profile
            .columns
            .iter()
            .zip(self.positions.iter().zip(&self.found))
            .map(|(spec, (position, found))| MappedColumn {
                column: spec.name.clone(),
                header: found.clone(),
                cell: position.map(|p| cell_reference(self.row - 1, p as u32)),
                required: spec.required,
            })
            .collect()
    }
}

/// Maps `cells`, the sheet's row `row` (1-based), to `profile`'s columns.
///
/// # Errors
/// [`ImportError::MissingColumns`] naming every absent required column and the header cells
/// found, or [`ImportError::DuplicateColumn`] when two cells feed one column.
pub fn map_header(
    profile: &Profile,
    row: u32,
    cells: &[DataRef<'_>],
) -> Result<HeaderMap, ImportError> {
    let keys: Vec<Vec<String>> = profile
        .columns
        .iter()
        .map(|c| c.match_keys().collect())
        .collect();
    let mut positions = vec![None; profile.columns.len()];
    let mut found = vec![None; profile.columns.len()];
    let mut ignored = Vec::new();
    for (sheet_column, cell) in cells.iter().enumerate() {
        let written = header_text(cell);
        let normal = normalize_header(&written);
        if normal.is_empty() {
            continue;
        }
        let Some(column) = keys.iter().position(|k| k.contains(&normal)) else {
            ignored.push(written);
            continue;
        };
        if positions[column].is_some() {
            return Err(ImportError::DuplicateColumn {
                row,
                column: profile.columns[column].header.clone(),
            });
        }
        positions[column] = Some(sheet_column);
        found[column] = Some(written);
    }
    let missing: Vec<&str> = profile
        .columns
        .iter()
        .zip(&positions)
        .filter(|(spec, position)| spec.required && position.is_none())
        .map(|(spec, _)| spec.header.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns {
            row,
            missing: missing.join(", "),
            found: found_names(cells),
        });
    }
    Ok(HeaderMap {
        row,
        positions,
        ignored,
        found,
        cells: cells.iter().map(header_text).collect(),
    })
}

/// How many of `profile`'s required columns `cells` holds (to pick the likeliest header row
/// for an error message).
pub fn required_matches(profile: &Profile, cells: &[DataRef<'_>]) -> usize {
    let names: Vec<String> = cells
        .iter()
        .map(|c| normalize_header(&header_text(c)))
        .collect();
    profile
        .columns
        .iter()
        .filter(|spec| spec.required && spec.match_keys().any(|k| names.contains(&k)))
        .count()
}

/// The non-empty cells of a header row, shortened, at most [`FOUND_SHOWN`] of them: a hostile
/// header must not make a megabyte-long message.
fn found_names(cells: &[DataRef<'_>]) -> String {
    let non_empty: Vec<String> = cells
        .iter()
        .map(header_text)
        .filter(|n| !n.is_empty())
        .collect();
    let mut shown: Vec<String> = non_empty
        .iter()
        .take(FOUND_SHOWN)
        .map(|n| shorten(n))
        .collect();
    if non_empty.len() > FOUND_SHOWN {
        shown.push(format!("… ({} more)", non_empty.len() - FOUND_SHOWN));
    }
    if shown.is_empty() {
        "no names".to_owned()
    } else {
        shown.join(", ")
    }
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
    fn headers_match_ignoring_case_spaces_and_punctuation() {
        for header in [
            "first_name",
            "FirstName",
            "First Name",
            "first-name",
            " FIRST NAME: ",
        ] {
            assert_eq!(normalize_header(header), "firstname", "{header:?}");
        }
        assert_eq!(normalize_header("Prénom"), "prénom");
    }

    #[test]
    fn mockaroo_headers_map_to_the_people_profile() {
        let profile = Profile::people();
        let cells = row(&[
            "id",
            "first_name",
            "last_name",
            "email",
            "gender",
            "ip_address",
        ]);
        let map = map_header(&profile, 1, &cells).expect("maps");
        assert_eq!(
            map.positions,
            [Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
        assert!(map.ignored.is_empty());
    }

    #[test]
    fn aliases_order_and_extra_columns_are_free() {
        let profile = Profile::people();
        let cells = row(&["E-mail", "Notes", "ID", "fname", "Surname", "IP"]);
        let map = map_header(&profile, 3, &cells).expect("maps");
        assert_eq!(
            map.positions,
            [Some(2), Some(3), Some(4), Some(0), None, Some(5)]
        );
        assert_eq!(map.ignored, ["Notes"]);
        assert_eq!(map.last_position(), 5);
        let described = map.describe(&profile);
        assert_eq!(described[0].cell.as_deref(), Some("C3"));
        assert_eq!(described[4].header, None);
    }

    #[test]
    fn missing_required_columns_are_all_named() {
        let cells = row(&["Id", "FirstName", "LastName", "Gender"]);
        let err = map_header(&Profile::people(), 1, &cells)
            .expect_err("fails")
            .to_string();
        assert_eq!(
            err,
            "row 1: the header row is missing column Email, IpAddress; found Id, FirstName, LastName, Gender"
        );
    }

    #[test]
    fn two_cells_for_one_column_are_refused() {
        let cells = row(&["Id", "person_id", "Email", "IpAddress"]);
        assert!(matches!(
            map_header(&Profile::people(), 3, &cells),
            Err(ImportError::DuplicateColumn { row: 3, ref column }) if column == "Id"
        ));
    }
}
