//! Recognising an .xlsx by its content, before any work is spent on it.
//!
//! An .xlsx is an OOXML package: a zip (local header magic `PK\x03\x04`) whose central directory
//! lists `[Content_Types].xml` and `xl/workbook.xml` (ECMA-376 Part 2, Open Packaging
//! Conventions). Reading the central directory is cheap: no entry is decompressed.

use std::io::Cursor;

/// Magic bytes of a zip local file header.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Parts every workbook package has.
const REQUIRED_PARTS: [&str; 2] = ["[Content_Types].xml", "xl/workbook.xml"];

/// Why bytes are not an .xlsx workbook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotXlsx {
    /// Not a zip file at all (an .xls, a CSV, an image…).
    #[error("the file is not an .xlsx workbook (it is not a zip package)")]
    NotZip,
    /// Starts like a zip but its central directory cannot be read.
    #[error("the file is not an .xlsx workbook (damaged zip: {0})")]
    DamagedZip(String),
    /// A zip without the workbook parts (a .docx, a plain archive…).
    #[error("the file is not an .xlsx workbook (the zip has no {0})")]
    MissingPart(&'static str),
}

/// Checks that `bytes` look like an .xlsx workbook, by content only.
///
/// # Errors
/// [`NotXlsx`] saying what is wrong.
pub fn sniff_xlsx(bytes: &[u8]) -> Result<(), NotXlsx> {
    if !bytes.starts_with(ZIP_MAGIC) {
        return Err(NotXlsx::NotZip);
    }
    let archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| NotXlsx::DamagedZip(e.to_string()))?;
    for part in REQUIRED_PARTS {
        if archive.index_for_name(part).is_none() {
            return Err(NotXlsx::MissingPart(part));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_zip_content_is_rejected_whatever_its_name() {
        assert_eq!(sniff_xlsx(b"Id,FirstName\n1,Ann\n"), Err(NotXlsx::NotZip));
        assert_eq!(sniff_xlsx(b""), Err(NotXlsx::NotZip));
        // An OLE2 header, as in a legacy .xls.
        assert_eq!(
            sniff_xlsx(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            Err(NotXlsx::NotZip)
        );
    }

    #[test]
    fn a_zip_magic_without_a_directory_is_damaged() {
        assert!(matches!(
            sniff_xlsx(b"PK\x03\x04garbage"),
            Err(NotXlsx::DamagedZip(_))
        ));
    }
}
