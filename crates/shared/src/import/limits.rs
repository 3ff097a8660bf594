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
    let unreadable = |e: zip::result::ZipError| ImportError::unreadable(e);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    let mut total: u64 = 0;
    let mut shared_strings = Vec::new();
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
        // calamine reads `{workbook dir}sharedStrings.xml`; any such entry is checked.
        if name.ends_with("sharedStrings.xml") {
            shared_strings.push(index);
        }
    }
    if total > limits.max_uncompressed_bytes {
        return Err(ImportError::Limit(format!(
            "the workbook inflates to {total} bytes (limit {})",
            limits.max_uncompressed_bytes
        )));
    }
    for index in shared_strings {
        let entry = archive.by_index(index).map_err(unreadable)?;
        check_shared_strings(entry, limits)?;
    }
    Ok(())
}

/// Bytes of a shared-strings table read to find its `uniqueCount`: the root element comes first.
const HEAD_BYTES: u64 = 64 * 1024;
/// The smallest shared string, `<si/>`, in bytes.
const MIN_STRING_BYTES: u64 = 5;

/// Inflates a shared-strings table once, counting, and stops one byte past the limit (declared
/// sizes can lie). Also checks its `uniqueCount`: calamine reserves that many strings up front,
/// so `uniqueCount="4294967295"` alone would ask for tens of GB (found by the import fuzzer).
fn check_shared_strings(entry: impl Read, limits: &ImportLimits) -> Result<(), ImportError> {
    let io = |e: std::io::Error| ImportError::unreadable(format!("{SHARED_STRINGS}: {e}"));
    let limit = limits.max_shared_strings_bytes;
    let mut reader = entry.take(limit + 1);
    let mut head = Vec::new();
    (&mut reader)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(io)?;
    let real = head.len() as u64 + std::io::copy(&mut reader, &mut std::io::sink()).map_err(io)?;
    if real > limit {
        return Err(ImportError::Limit(format!(
            "the shared-strings table is larger than {limit} bytes"
        )));
    }
    let declared = unique_count(&head);
    if declared.is_some_and(|n| n > real / MIN_STRING_BYTES + 1) {
        return Err(ImportError::Limit(format!(
            "the shared-strings table declares {} unique strings in {real} bytes",
            declared.unwrap_or_default()
        )));
    }
    Ok(())
}

/// The largest `uniqueCount="…"` value in `head` (saturating), if any.
fn unique_count(head: &[u8]) -> Option<u64> {
    const NAME: &[u8] = b"uniqueCount";
    let mut largest = None;
    let mut at = 0;
    while let Some(found) = head[at..].windows(NAME.len()).position(|w| w == NAME) {
        let mut rest = head[at + found + NAME.len()..]
            .iter()
            .skip_while(|b| b.is_ascii_whitespace());
        if rest.next() == Some(&b'=') {
            let digits = rest
                .skip_while(|b| b.is_ascii_whitespace() || **b == b'"' || **b == b'\'')
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
            largest = largest.max(Some(digits));
        }
        at += found + NAME.len();
    }
    largest
}

/// The package limits as settings (`IMPORT_*` environment variables or flags), for the api,
/// which checks an upload before storing it, and the worker, which checks it again: both must
/// read the same values, or a file the api accepts is refused by the worker.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct ImportLimitArgs {
    /// An upload's zip entries may inflate to this many bytes in all.
    #[arg(long, env = "IMPORT_MAX_UNCOMPRESSED_BYTES", default_value_t = ImportLimits::default().max_uncompressed_bytes)]
    pub import_max_uncompressed_bytes: u64,
    /// Largest inflated:compressed ratio of a zip entry over 1 MiB.
    #[arg(long, env = "IMPORT_MAX_COMPRESSION_RATIO", default_value_t = ImportLimits::default().max_compression_ratio)]
    pub import_max_compression_ratio: u64,
    /// Largest real inflated size of an upload's shared-strings table, in bytes.
    #[arg(long, env = "IMPORT_MAX_SHARED_STRINGS_BYTES", default_value_t = ImportLimits::default().max_shared_strings_bytes)]
    pub import_max_shared_strings_bytes: u64,
    /// A directory of import profiles, one `*.toml` file each (see `import/profile.rs`);
    /// `people` is built in. The api and the workers must be given the same directory.
    #[arg(long, env = "IMPORT_PROFILES_DIR")]
    pub import_profiles_dir: Option<std::path::PathBuf>,
}

#[cfg(feature = "cli")]
impl ImportLimitArgs {
    /// The limits: these settings, the defaults for the rest (rows, columns, cells).
    pub fn limits(&self) -> ImportLimits {
        ImportLimits {
            max_uncompressed_bytes: self.import_max_uncompressed_bytes,
            max_compression_ratio: self.import_max_compression_ratio,
            max_shared_strings_bytes: self.import_max_shared_strings_bytes,
            ..ImportLimits::default()
        }
    }

    /// The import profiles: `people`, plus those of `IMPORT_PROFILES_DIR` when set.
    ///
    /// # Errors
    /// [`super::ProfileError`] naming the file that is wrong; a process should not start.
    pub fn profiles(&self) -> Result<super::Profiles, super::ProfileError> {
        match &self.import_profiles_dir {
            Some(dir) => super::Profiles::load_dir(dir),
            None => Ok(super::Profiles::default()),
        }
    }
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
    fn an_absurd_unique_count_is_refused_before_calamine_reserves_it() {
        let sst = br#"<?xml version="1.0"?><sst xmlns="x" count="1" uniqueCount = '4294967295'><si><t>a</t></si></sst>"#;
        let err = check_package(&zip_with(SHARED_STRINGS, sst), &ImportLimits::default())
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("declares 4294967295 unique strings"),
            "{err}"
        );
        let honest = br#"<sst uniqueCount="1"><si><t>a</t></si></sst>"#;
        assert!(check_package(&zip_with(SHARED_STRINGS, honest), &ImportLimits::default()).is_ok());
        assert_eq!(
            unique_count(b"uniqueCount=\"99999999999999999999999\""),
            Some(u64::MAX)
        );
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
