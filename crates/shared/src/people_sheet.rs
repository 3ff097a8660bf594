//! The people sheet written as .xlsx: its row type, its header, and the writer shared by the
//! fixtures and the `export_xlsx` job kind (rust_xlsxwriter, constant-memory mode).

use rust_xlsxwriter::{Workbook, Worksheet, XlsxError};

/// One row of the people sheet. Columns in this order: Id, FirstName,
/// LastName, Email, Gender, IpAddress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Column `Id`, written as a number cell.
    pub id: i64,
    /// Column `FirstName`.
    pub first_name: String,
    /// Column `LastName`.
    pub last_name: String,
    /// Column `Email`, lower-case, like `first.last42@example.com`.
    pub email: String,
    /// Column `Gender`, one of Mockaroo's gender values.
    pub gender: String,
    /// Column `IpAddress`, a dotted IPv4 quad.
    pub ip_address: String,
}

/// The header row, exactly as written.
pub const HEADER: [&str; 6] = [
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Gender",
    "IpAddress",
];

/// Name of the worksheet (the one the importer reads first).
pub const SHEET_NAME: &str = "Data";

/// Adds the people sheet to `workbook`: the [`HEADER`] row, then one row per person. Rows go
/// straight to rust_xlsxwriter's constant-memory spill file, so memory stays flat.
///
/// # Errors
/// rust_xlsxwriter's error, e.g. more than 1,048,575 people.
pub fn write_people_sheet(
    workbook: &mut Workbook,
    people: impl IntoIterator<Item = Person>,
) -> Result<(), XlsxError> {
    let sheet = add_data_sheet(workbook)?;
    write_strings(sheet, 0, 0, &HEADER)?;
    for (row, person) in (1..).zip(people) {
        write_person(sheet, row, &person)?;
    }
    Ok(())
}

/// Adds the constant-memory worksheet named [`SHEET_NAME`]. Rows must then be
/// written in increasing order.
pub(crate) fn add_data_sheet(workbook: &mut Workbook) -> Result<&mut Worksheet, XlsxError> {
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    sheet.set_name(SHEET_NAME)?;
    Ok(sheet)
}

/// Writes one person: the id as a number cell, the rest as string cells.
pub(crate) fn write_person(
    sheet: &mut Worksheet,
    row: u32,
    person: &Person,
) -> Result<(), XlsxError> {
    sheet.write_number(row, 0, person.id as f64)?;
    write_strings(sheet, row, 1, &person_strings(person))
}

/// The string columns of a person, FirstName to IpAddress.
pub(crate) fn person_strings(person: &Person) -> [&str; 5] {
    [
        &person.first_name,
        &person.last_name,
        &person.email,
        &person.gender,
        &person.ip_address,
    ]
}

/// Writes string cells side by side, starting at `(row, first_col)`.
pub(crate) fn write_strings(
    sheet: &mut Worksheet,
    row: u32,
    first_col: u16,
    values: &[&str],
) -> Result<(), XlsxError> {
    for (col, value) in (first_col..).zip(values) {
        sheet.write_string(row, col, *value)?;
    }
    Ok(())
}
