//! Limits that keep a hostile workbook from exhausting a worker: checked on the zip package
//! before parsing (sizes, compression ratios, the shared-strings table) and while streaming
//! (rows, columns, cell length).
//!
//! Why these: the sheet itself is streamed, so its size costs time, not memory; the one part
//! calamine holds in memory whole is the shared-strings table (`xl/sharedStrings.xml`), so its
//! real inflated size is measured, not trusted. A zip bomb shows as an absurd compression ratio
//! or declared size; an XML entity bomb cannot expand (quick-xml does not expand DTD entities).

use std::io::{Cursor, Read};

use super::error::ImportError;

/// The limits of one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLimits {
    /// Sum of the package's declared uncompressed entry sizes, in bytes.
    pub max_uncompressed_bytes: u64,
    /// Largest uncompressed/compressed ratio of an entry over 1 MiB (real workbooks: 5–30).
    pub max_compression_ratio: u64,
    /// Largest real (inflated) size of the shared-strings table, in bytes: it is held in memory.
    pub max_shared_strings_bytes: u64,
    /// Most data rows.
    pub max_rows: u64,
    /// Most columns (the right-most cell's column number).
    pub max_columns: u32,
    /// Longest cell, in characters (Excel's own limit is 32,767).
    pub max_cell_chars: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_uncompressed_bytes: 2 * 1024 * 1024 * 1024,
            max_compression_ratio: 100,
            max_shared_strings_bytes: 128 * 1024 * 1024,
            max_rows: 1_048_575,
            max_columns: 256,
            max_cell_chars: 32_767,
        }
    }
}

/// Entries smaller than this are not ratio-checked (tiny XML parts compress very well).
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
/// The part calamine loads whole.
const SHARED_STRINGS: &str = "xl/sharedStrings.xml";

/// Checks the zip package of an .xlsx against `limits` without parsing it.
///
/// # Errors
/// [`ImportError::Limit`] naming the limit, or [`ImportError::Unreadable`] if the zip is damaged.
pub fn check_package(bytes: &[u8], limits: &ImportLimits) -> Result<(), ImportError> {
    let unreadable = |e: zip::result::ZipError| ImportError::Unreadable(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    let mut total: u64 = 0;
    let mut shared_strings = None;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(unreadable)?;
        let (size, compressed) = (entry.size(), entry.compressed_size());
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        total = total.saturating_add(size);
        if size > RATIO_FLOOR_BYTES && size / compressed.max(1) > limits.max_compression_ratio {
            return Err(ImportError::Limit(format!(
                "entry {name} inflates {size} bytes from {compressed} (more than {}:1): a zip bomb?",
                limits.max_compression_ratio
            )));
        }
        if name == SHARED_STRINGS {
            shared_strings = Some(index);
        }
    }
    if total > limits.max_uncompressed_bytes {
        return Err(ImportError::Limit(format!(
            "the workbook inflates to {total} bytes (limit {})",
            limits.max_uncompressed_bytes
        )));
    }
    if let Some(index) = shared_strings {
        // Inflate it once, counting, and stop one byte past the limit: declared sizes can lie.
        let entry = archive.by_index(index).map_err(unreadable)?;
        let limit = limits.max_shared_strings_bytes;
        let real = std::io::copy(&mut entry.take(limit + 1), &mut std::io::sink())
            .map_err(|e| ImportError::Unreadable(format!("{SHARED_STRINGS}: {e}")))?;
        if real > limit {
            return Err(ImportError::Limit(format!(
                "the shared-strings table is larger than {limit} bytes"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(name, options).expect("entry");
        writer.write_all(content).expect("content");
        writer.finish().expect("finish");
        out.into_inner()
    }

    #[test]
    fn a_zip_bomb_is_refused_by_its_ratio() {
        let bomb = zip_with("xl/worksheets/sheet1.xml", &vec![b' '; 50 * 1024 * 1024]);
        let err = check_package(&bomb, &ImportLimits::default()).expect_err("refused");
        assert!(err.to_string().contains("a zip bomb?"), "{err}");
        assert!(err.is_permanent());
    }

    #[test]
    fn a_shared_strings_table_over_the_limit_is_refused() {
        let strings: String = (0..200_000u64)
            .map(|i| {
                format!(
                    "<si><t>{}</t></si>",
                    i.wrapping_mul(2_654_435_761) % 1_000_003
                )
            })
            .collect();
        let big = zip_with(SHARED_STRINGS, strings.as_bytes());
        let limits = ImportLimits {
            max_shared_strings_bytes: 1024 * 1024,
            ..ImportLimits::default()
        };
        let err = check_package(&big, &limits).expect_err("refused");
        assert!(err.to_string().contains("shared-strings table"), "{err}");
        assert!(check_package(&big, &ImportLimits::default()).is_ok());
    }
}
