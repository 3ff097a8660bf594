//! Recognising a spreadsheet's format by its content, never by its file name.
//!
//! Three containers cover what the import can read:
//! - a zip package (magic `PK\x03\x04`): OOXML (.xlsx, .xlsm, .xlsb; ECMA-376 Part 2) or
//!   OpenDocument (.ods; ODF 1.2 Part 3). Only the central directory is read, plus at most
//!   [`PROBE_BYTES`] of the tiny parts that tell the variants apart (`[Content_Types].xml`,
//!   `mimetype`, `META-INF/manifest.xml`): an upload may be a zip bomb, so no other entry is
//!   inflated.
//! - an OLE2 compound file (magic `D0 CF 11 E0 A1 B1 1A E1`; MS-CFB): a legacy .xls holds a
//!   `Workbook` (BIFF8) or `Book` (BIFF5) stream. Password-protected OOXML workbooks are OLE2
//!   too (an `EncryptedPackage` stream, MS-OFFCRYPTO), which is why an encrypted ".xlsx" is not a
//!   zip. Only the container's directory is read.
//! - anything else is CSV if its first [`PROBE_BYTES`] are text (see [`super::csv_text`]).

use std::io::{Cursor, Read};

use super::csv_text::decode_text;

/// Bytes of a file examined as text, and the most read of any one zip or OLE2 part.
pub const PROBE_BYTES: usize = 64 * 1024;

/// Magic bytes of a zip local file header.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// Magic bytes of a zip end-of-central-directory record: an empty archive starts with it.
const EMPTY_ZIP_MAGIC: &[u8] = b"PK\x05\x06";
/// Magic bytes of an OLE2 compound file (MS-CFB 2.2).
const OLE2_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Content type of a macro-enabled workbook's main part (and of its template).
const XLSM_MAIN: [&str; 2] = [
    "application/vnd.ms-excel.sheet.macroenabled.main+xml",
    "application/vnd.ms-excel.template.macroenabled.main+xml",
];
/// Content type of a binary workbook's main part.
const XLSB_MAIN: &str = "application/vnd.ms-excel.sheet.binary.macroenabled.main";
/// Content type of a workbook's main part (and of its template).
const XLSX_MAIN: [&str; 2] = [
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
];
/// The `mimetype` of an OpenDocument spreadsheet.
const ODS_MIMETYPE: &str = "application/vnd.oasis.opendocument.spreadsheet";

/// BIFF record type of `FILEPASS`: the workbook stream is encrypted from the next record on.
const BIFF_FILEPASS: u16 = 0x002F;

/// A spreadsheet format the import can be handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SheetFormat {
    /// Office Open XML workbook.
    Xlsx,
    /// Office Open XML workbook with macros (the macros are never run).
    Xlsm,
    /// Excel binary workbook (BIFF12 records in an OOXML package).
    Xlsb,
    /// Legacy Excel 97–2003 workbook (BIFF5/BIFF8 in an OLE2 compound file).
    Xls,
    /// OpenDocument spreadsheet (LibreOffice, Google Sheets export).
    Ods,
    /// Delimited text: [`super::decode_text`], [`super::sniff_delimiter`], [`super::read_rows`].
    Csv,
}

impl SheetFormat {
    /// The usual file extension, without the dot: `"xlsx"`, `"xlsm"`, `"xlsb"`, `"xls"`,
    /// `"ods"` or `"csv"`.
    pub fn extension(self) -> &'static str {
        match self {
            SheetFormat::Xlsx => "xlsx",
            SheetFormat::Xlsm => "xlsm",
            SheetFormat::Xlsb => "xlsb",
            SheetFormat::Xls => "xls",
            SheetFormat::Ods => "ods",
            SheetFormat::Csv => "csv",
        }
    }
}

/// Why a file is not a spreadsheet the import can read. Display texts are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedFormat {
    /// Zero bytes, or only whitespace.
    #[error("the file is empty")]
    Empty,
    /// A zip whose central directory or small parts cannot be read.
    #[error(
        "the file is a damaged zip archive ({0}); if it is a workbook, open it and save it again"
    )]
    DamagedZip(String),
    /// A readable zip without the parts of a workbook (a .docx, a plain archive…).
    #[error("{}", zip_not_workbook_message(*.looks_like))]
    ZipNotWorkbook {
        /// What the zip seems to be instead, e.g. `a Word document (.docx)`, if recognised.
        looks_like: Option<&'static str>,
    },
    /// Starts like an OLE2 compound file but its header or directory cannot be read.
    #[error(
        "the file is a damaged OLE2 compound file, the container of legacy .xls workbooks ({0})"
    )]
    DamagedOle2(String),
    /// A readable OLE2 file without a `Workbook` or `Book` stream (a .doc, a .ppt, an .msg…).
    #[error("{}", ole2_not_workbook_message(*.looks_like))]
    Ole2NotWorkbook {
        /// What the file seems to be instead, e.g. `a Word 97–2003 document (.doc)`.
        looks_like: Option<&'static str>,
    },
    /// A password-protected workbook: an OOXML package encrypted into an OLE2 file, an .xls
    /// with a `FILEPASS` record, or an .ods whose manifest declares encryption.
    #[error("the workbook is password-protected; remove the password (save a copy without one) and upload that")]
    Encrypted,
    /// Neither a known container nor text: NUL bytes or control characters in the first
    /// [`PROBE_BYTES`].
    #[error("the file is binary data, not a spreadsheet or CSV text (CSV must be UTF-8, Windows-1252, or UTF-16 with a byte-order mark)")]
    NotText,
    /// A recognised kind of file that is not a spreadsheet the import reads.
    #[error("the file is {0}, not a spreadsheet the import can read; save it as .xlsx or .csv")]
    NotSpreadsheet(&'static str),
}

fn zip_not_workbook_message(looks_like: Option<&str>) -> String {
    let kind = looks_like.map_or_else(String::new, |kind| format!(" (it looks like {kind})"));
    format!(
        "the file is a zip archive{kind} but not a spreadsheet: it has no xl/workbook.xml, \
         no xl/workbook.bin and no OpenDocument spreadsheet mimetype"
    )
}

fn ole2_not_workbook_message(looks_like: Option<&str>) -> String {
    let kind = looks_like.map_or_else(String::new, |kind| format!(" (it looks like {kind})"));
    format!(
        "the file is an OLE2 compound file{kind} but not an Excel workbook: it has no \
         Workbook or Book stream"
    )
}

/// The format of `bytes`, recognised by content only.
///
/// Zip packages: `xl/workbook.xml` → [`SheetFormat::Xlsx`], or [`SheetFormat::Xlsm`] when
/// `[Content_Types].xml` declares a macro-enabled main part or `xl/vbaProject.bin` exists;
/// `xl/workbook.bin` → [`SheetFormat::Xlsb`]; a workbook main part declared in
/// `[Content_Types].xml` at another path (some writers put it at the root) counts too; a
/// `mimetype` of `application/vnd.oasis.opendocument.spreadsheet`, or `content.xml` with that
/// media type in `META-INF/manifest.xml` → [`SheetFormat::Ods`]. Part names match as
/// calamine looks them up: any ASCII case, `\` read as `/`.
/// OLE2 files: a `Workbook` or `Book` stream → [`SheetFormat::Xls`].
/// Anything else: [`SheetFormat::Csv`] when its first [`PROBE_BYTES`] decode as text with no
/// NUL byte or control character other than tab, line breaks, form feed and `^Z`.
///
/// Reads at most the zip's central directory and [`PROBE_BYTES`] of each of up to three small
/// parts, or the OLE2 directory and the first few bytes of the workbook stream.
///
/// # Errors
/// [`UnsupportedFormat`] saying what the file is or what it lacks.
pub fn detect_format(bytes: &[u8]) -> Result<SheetFormat, UnsupportedFormat> {
    if bytes.is_empty() {
        Err(UnsupportedFormat::Empty)
    } else if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(EMPTY_ZIP_MAGIC) {
        detect_zip(bytes)
    } else if bytes.starts_with(OLE2_MAGIC) {
        detect_ole2(bytes)
    } else {
        detect_text(bytes)
    }
}

/// Indexes of the zip entries that tell formats apart.
#[derive(Debug, Default)]
struct Parts {
    content_types: Option<usize>,
    workbook_xml: Option<usize>,
    workbook_bin: Option<usize>,
    vba_project: Option<usize>,
    mimetype: Option<usize>,
    content_xml: Option<usize>,
    manifest: Option<usize>,
    word: Option<usize>,
    powerpoint: Option<usize>,
}

impl Parts {
    fn find<R: Read + std::io::Seek>(archive: &zip::ZipArchive<R>) -> Parts {
        let mut parts = Parts::default();
        let mut slots = [
            ("[Content_Types].xml", &mut parts.content_types),
            ("xl/workbook.xml", &mut parts.workbook_xml),
            ("xl/workbook.bin", &mut parts.workbook_bin),
            ("xl/vbaProject.bin", &mut parts.vba_project),
            ("mimetype", &mut parts.mimetype),
            ("content.xml", &mut parts.content_xml),
            ("META-INF/manifest.xml", &mut parts.manifest),
            ("word/document.xml", &mut parts.word),
            ("ppt/presentation.xml", &mut parts.powerpoint),
        ];
        for (index, name) in archive.file_names_raw().enumerate() {
            if let Some((_, slot)) = slots.iter_mut().find(|(part, _)| is_part(name, part)) {
                slot.get_or_insert(index);
            }
        }
        parts
    }
}

/// Whether the raw zip entry name `name` is the part `part`: OPC part names are
/// case-insensitive, and some writers use `\` as separator or a leading `/` (calamine accepts
/// both, so detection must too).
fn is_part(name: &[u8], part: &str) -> bool {
    let name = name
        .strip_prefix(b"/")
        .or_else(|| name.strip_prefix(b"\\"))
        .unwrap_or(name);
    name.len() == part.len()
        && name.iter().zip(part.bytes()).all(|(&a, b)| {
            let a = if a == b'\\' { b'/' } else { a };
            a.eq_ignore_ascii_case(&b)
        })
}

fn detect_zip(bytes: &[u8]) -> Result<SheetFormat, UnsupportedFormat> {
    let damaged = |e: zip::result::ZipError| UnsupportedFormat::DamagedZip(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    let parts = Parts::find(&archive);
    let mut read = |index: Option<usize>| -> Result<Option<String>, UnsupportedFormat> {
        index
            .map(|index| read_part(&mut archive, index).map_err(damaged))
            .transpose()
    };

    if parts.workbook_bin.is_some() {
        return Ok(SheetFormat::Xlsb);
    }
    if parts.workbook_xml.is_some() {
        if parts.vba_project.is_some() {
            return Ok(SheetFormat::Xlsm);
        }
        let types = read(parts.content_types)?.unwrap_or_default();
        return Ok(if declares_any(&types, &XLSM_MAIN) {
            SheetFormat::Xlsm
        } else {
            SheetFormat::Xlsx
        });
    }

    let mimetype = read(parts.mimetype)?;
    let mimetype = mimetype.as_deref().map(str::trim);
    let manifest = read(parts.manifest)?;
    let ods_manifest = || {
        manifest.as_deref().is_some_and(|m| {
            m.contains(&format!("\"{ODS_MIMETYPE}\"")) || m.contains(&format!("'{ODS_MIMETYPE}'"))
        })
    };
    if mimetype == Some(ODS_MIMETYPE) || (parts.content_xml.is_some() && ods_manifest()) {
        // ODF encrypts each part and says so in the manifest (ODF 1.2 Part 3, 3.8).
        if manifest
            .as_deref()
            .is_some_and(|m| m.contains("encryption-data"))
        {
            return Err(UnsupportedFormat::Encrypted);
        }
        return Ok(SheetFormat::Ods);
    }

    // A workbook main part at a non-standard path (e.g. `/workbook.xml`): the content types
    // name it wherever it is, and calamine finds it through `_rels/.rels`.
    let types = read(parts.content_types)?.unwrap_or_default();
    if declares_any(&types, &[XLSB_MAIN]) {
        return Ok(SheetFormat::Xlsb);
    }
    if declares_any(&types, &XLSM_MAIN) {
        return Ok(SheetFormat::Xlsm);
    }
    if declares_any(&types, &XLSX_MAIN) {
        return Ok(SheetFormat::Xlsx);
    }

    let declared = |kind: &str| override_types(&types).any(|t| t.contains(kind));
    let looks_like = if parts.word.is_some() || declared("wordprocessingml") {
        Some("a Word document (.docx)")
    } else if parts.powerpoint.is_some() || declared("presentationml") {
        Some("a PowerPoint presentation (.pptx)")
    } else if let Some(mimetype) = mimetype {
        odf_kind(mimetype)
    } else if archive.is_empty() {
        Some("an empty archive")
    } else {
        None
    };
    Err(UnsupportedFormat::ZipNotWorkbook { looks_like })
}

/// Up to [`PROBE_BYTES`] of entry `index`, decoded and ASCII-lowercased for matching (content
/// types and media types are case-insensitive).
fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    index: usize,
) -> Result<String, zip::result::ZipError> {
    let entry = archive.by_index(index)?;
    let mut head = Vec::new();
    // `take` bounds what a deflate bomb can inflate into memory.
    entry.take(PROBE_BYTES as u64).read_to_end(&mut head)?;
    Ok(xml_text(&head).to_ascii_lowercase())
}

/// XML parts may be UTF-16 (with or without a byte-order mark, XML 1.0 Appendix F);
/// everything else is read as UTF-8.
fn xml_text(bytes: &[u8]) -> String {
    let utf16 = match bytes {
        [0xFF, 0xFE, ..] | [b'<', 0, ..] => Some(encoding_rs::UTF_16LE),
        [0xFE, 0xFF, ..] | [0, b'<', ..] => Some(encoding_rs::UTF_16BE),
        _ => None,
    };
    match utf16 {
        Some(encoding) => encoding.decode_with_bom_removal(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether a lowercased `[Content_Types].xml` gives a part one of `content_types`.
fn declares_any(types: &str, content_types: &[&str]) -> bool {
    override_types(types).any(|found| content_types.contains(&found))
}

/// The `ContentType`s of the `<Override>` elements of a lowercased `[Content_Types].xml`.
/// `<Default>` elements are skipped: they type parts by extension whether or not any part has
/// it (SheetJS declares `.bin` a binary workbook in every package it writes).
fn override_types(types: &str) -> impl Iterator<Item = &str> {
    types.split('<').filter_map(|tag| {
        let tag = tag.split('>').next()?;
        let name = tag.split(|c: char| c.is_ascii_whitespace()).next()?;
        if name != "override" && !name.ends_with(":override") {
            return None;
        }
        let at = tag.find("contenttype")?;
        let value = tag[at + "contenttype".len()..]
            .trim_start()
            .strip_prefix('=')?
            .trim_start();
        let quote = value.chars().next().filter(|&c| c == '"' || c == '\'')?;
        let value = &value[1..];
        Some(value[..value.find(quote)?].trim())
    })
}

/// A user-facing name for an OpenDocument `mimetype` other than a spreadsheet's.
fn odf_kind(mimetype: &str) -> Option<&'static str> {
    match mimetype {
        "application/vnd.oasis.opendocument.text" => Some("an OpenDocument text document (.odt)"),
        "application/vnd.oasis.opendocument.presentation" => {
            Some("an OpenDocument presentation (.odp)")
        }
        "application/vnd.oasis.opendocument.spreadsheet-template" => {
            Some("an OpenDocument spreadsheet template (.ots)")
        }
        "application/epub+zip" => Some("an e-book (.epub)"),
        _ if mimetype.starts_with("application/vnd.oasis.opendocument.") => {
            Some("an OpenDocument file")
        }
        _ => None,
    }
}

fn detect_ole2(bytes: &[u8]) -> Result<SheetFormat, UnsupportedFormat> {
    // `cfb` checks every sector index and chain against the file's length and refuses loops,
    // so a hostile header costs at most a pass over the FAT and directory.
    let mut file = cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|e| UnsupportedFormat::DamagedOle2(e.to_string()))?;
    if file.is_stream("/EncryptedPackage") {
        return Err(UnsupportedFormat::Encrypted);
    }
    if let Some(name) = ["/Workbook", "/Book"]
        .into_iter()
        .find(|name| file.is_stream(name))
    {
        let mut head = Vec::new();
        file.open_stream(name)
            .and_then(|stream| stream.take(PROBE_BYTES as u64).read_to_end(&mut head))
            .map_err(|e| UnsupportedFormat::DamagedOle2(e.to_string()))?;
        if biff_is_encrypted(&head) {
            return Err(UnsupportedFormat::Encrypted);
        }
        return Ok(SheetFormat::Xls);
    }
    let looks_like = if file.is_stream("/WordDocument") {
        Some("a Word 97–2003 document (.doc)")
    } else if file.is_stream("/PowerPoint Document") {
        Some("a PowerPoint 97–2003 presentation (.ppt)")
    } else if file.is_stream("/__properties_version1.0") {
        Some("an Outlook message (.msg)")
    } else {
        None
    };
    Err(UnsupportedFormat::Ole2NotWorkbook { looks_like })
}

/// Whether a BIFF workbook stream starting with `head` is encrypted: a `FILEPASS` record right
/// after the first `BOF` ([MS-XLS] 2.4.117: it must follow the globals' BOF).
fn biff_is_encrypted(head: &[u8]) -> bool {
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let Some(bof_len) = u16_at(2) else {
        return false;
    };
    u16_at(4 + usize::from(bof_len)) == Some(BIFF_FILEPASS)
}

fn detect_text(bytes: &[u8]) -> Result<SheetFormat, UnsupportedFormat> {
    if let Some(kind) = known_binary(bytes) {
        return Err(UnsupportedFormat::NotSpreadsheet(kind));
    }
    let head = decode_text(&bytes[..bytes.len().min(PROBE_BYTES)]);
    // Tab, LF, VT (FileMaker's in-cell line break), FF, CR and ^Z (DOS end of file) occur in
    // real text; other C0 controls, NUL first, mean binary data. C1 controls are allowed: they
    // are what undefined Windows-1252 bytes decode to in text from other code pages.
    let binary = |c: char| c < ' ' && !matches!(c, '\t' | '\n' | '\x0B' | '\x0C' | '\r' | '\x1A');
    if head.chars().any(binary) {
        return Err(UnsupportedFormat::NotText);
    }
    let content = head.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
    if content.is_empty() && bytes.len() <= PROBE_BYTES {
        return Err(UnsupportedFormat::Empty);
    }
    if let Some(kind) = markup_kind(content) {
        return Err(UnsupportedFormat::NotSpreadsheet(kind));
    }
    Ok(SheetFormat::Csv)
}

/// Common non-spreadsheet files whose magic is decisive, named for the user.
fn known_binary(bytes: &[u8]) -> Option<&'static str> {
    const KNOWN: [(&[u8], &str); 8] = [
        (b"%PDF-", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"7z\xBC\xAF\x27\x1C", "a 7-Zip archive"),
        (b"Rar!\x1A\x07", "a RAR archive"),
        (b"{\\rtf", "an RTF document"),
    ];
    KNOWN
        .into_iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, kind)| kind)
}

/// Text that is markup, not delimited values: Excel 2003 XML, flat ODS (.fods), or an HTML
/// table that some programs save with an .xls name.
fn markup_kind(content: &str) -> Option<&'static str> {
    let start: String = content
        .chars()
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    if start.starts_with("<?xml") {
        Some("an XML document (such as an Excel 2003 XML spreadsheet or a flat OpenDocument .fods)")
    } else if ["<!doctype html", "<html", "<table"]
        .iter()
        .any(|tag| start.starts_with(tag))
    {
        Some("a web page (HTML; some programs save HTML tables with an .xls name)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        for (name, content) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            writer.start_file(*name, options).expect("entry");
            writer.write_all(content).expect("content");
        }
        writer.finish().expect("finish");
        out.into_inner()
    }

    fn ole2_with(streams: &[(&str, &[u8])]) -> Vec<u8> {
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create");
        for (name, content) in streams {
            file.create_stream(name)
                .and_then(|mut s| s.write_all(content))
                .expect("stream");
        }
        file.flush().expect("flush");
        file.into_inner().into_inner()
    }

    /// A BIFF8 BOF record (type 0x0809, 16 bytes of body), as a workbook stream starts.
    const BIFF8_BOF: &[u8] = &[
        0x09, 0x08, 0x10, 0x00, 0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    fn tiny_xlsx() -> Vec<u8> {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        workbook
            .add_worksheet()
            .write_string(0, 0, "Id")
            .expect("cell");
        workbook.save_to_buffer().expect("xlsx")
    }

    #[test]
    fn extensions_and_serde_names_are_lowercase() {
        assert_eq!(SheetFormat::Xlsb.extension(), "xlsb");
        assert_eq!(SheetFormat::Csv.extension(), "csv");
        assert_eq!(
            serde_json::to_string(&SheetFormat::Xlsm).expect("json"),
            "\"xlsm\""
        );
    }

    #[test]
    fn an_xlsx_written_by_rust_xlsxwriter_is_xlsx() {
        assert_eq!(detect_format(&tiny_xlsx()), Ok(SheetFormat::Xlsx));
    }

    #[test]
    fn macro_and_binary_workbooks_are_told_apart() {
        let macro_types = br#"<Types><Override PartName="/xl/workbook.xml" ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>"#;
        let xlsm = zip_with(&[
            ("[Content_Types].xml", macro_types),
            ("xl/workbook.xml", b"<workbook/>"),
        ]);
        assert_eq!(detect_format(&xlsm), Ok(SheetFormat::Xlsm));
        let with_vba = zip_with(&[
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/vbaProject.bin", b"\0"),
        ]);
        assert_eq!(detect_format(&with_vba), Ok(SheetFormat::Xlsm));
        let xlsb = zip_with(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.bin", b"\0"),
        ]);
        assert_eq!(detect_format(&xlsb), Ok(SheetFormat::Xlsb));
    }

    #[test]
    fn a_workbook_part_at_another_path_is_found_through_content_types() {
        let types = br#"<Types><Override PartName="/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;
        let zip = zip_with(&[("[Content_Types].xml", types), ("workbook.xml", b"<w/>")]);
        assert_eq!(detect_format(&zip), Ok(SheetFormat::Xlsx));
        // Backslash separators and another case, as some Windows zippers write them.
        let zip = zip_with(&[("XL\\Workbook.XML", b"<w/>")]);
        assert_eq!(detect_format(&zip), Ok(SheetFormat::Xlsx));
    }

    #[test]
    fn an_ods_is_recognised_by_its_mimetype_or_manifest() {
        let manifest = br#"<manifest:manifest><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>"#;
        let ods = zip_with(&[
            ("mimetype", ODS_MIMETYPE.as_bytes()),
            ("content.xml", b"<office:document-content/>"),
            ("META-INF/manifest.xml", manifest),
        ]);
        assert_eq!(detect_format(&ods), Ok(SheetFormat::Ods));
        let without_mimetype = zip_with(&[
            ("content.xml", b"<office:document-content/>"),
            ("META-INF/manifest.xml", manifest),
        ]);
        assert_eq!(detect_format(&without_mimetype), Ok(SheetFormat::Ods));
        let encrypted = zip_with(&[
            ("mimetype", ODS_MIMETYPE.as_bytes()),
            ("content.xml", b"\x8f\x01"),
            (
                "META-INF/manifest.xml",
                b"<manifest:file-entry manifest:full-path=\"content.xml\"><manifest:encryption-data/></manifest:file-entry>",
            ),
        ]);
        assert_eq!(detect_format(&encrypted), Err(UnsupportedFormat::Encrypted));
    }

    #[test]
    fn a_zip_without_workbook_parts_names_what_is_missing() {
        let docx = zip_with(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", b"<w:document/>"),
        ]);
        let err = detect_format(&docx).expect_err("not a workbook");
        assert_eq!(
            err,
            UnsupportedFormat::ZipNotWorkbook {
                looks_like: Some("a Word document (.docx)")
            }
        );
        let message = err.to_string();
        assert!(message.contains("Word document"), "{message}");
        assert!(message.contains("no xl/workbook.xml"), "{message}");

        let plain = zip_with(&[("notes.txt", b"hello")]);
        assert_eq!(
            detect_format(&plain),
            Err(UnsupportedFormat::ZipNotWorkbook { looks_like: None })
        );
        let odt = zip_with(&[("mimetype", b"application/vnd.oasis.opendocument.text")]);
        assert_eq!(
            detect_format(&odt),
            Err(UnsupportedFormat::ZipNotWorkbook {
                looks_like: Some("an OpenDocument text document (.odt)")
            })
        );
        let empty = zip_with(&[]);
        assert!(empty.starts_with(EMPTY_ZIP_MAGIC));
        assert_eq!(
            detect_format(&empty),
            Err(UnsupportedFormat::ZipNotWorkbook {
                looks_like: Some("an empty archive")
            })
        );
    }

    #[test]
    fn a_damaged_zip_is_an_error() {
        assert!(matches!(
            detect_format(b"PK\x03\x04garbage"),
            Err(UnsupportedFormat::DamagedZip(_))
        ));
        // The tail (central directory) cut off a real workbook.
        let xlsx = tiny_xlsx();
        assert!(matches!(
            detect_format(&xlsx[..xlsx.len() / 2]),
            Err(UnsupportedFormat::DamagedZip(_))
        ));
    }

    #[test]
    fn a_deflate_bomb_in_content_types_is_read_no_further_than_the_probe() {
        let mut types = b"<Types>".to_vec();
        types.resize(16 * 1024 * 1024, b' ');
        let bomb = zip_with(&[
            ("[Content_Types].xml", &types),
            ("xl/workbook.xml", b"<w/>"),
        ]);
        assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
        assert_eq!(detect_format(&bomb), Ok(SheetFormat::Xlsx));
    }

    #[test]
    fn ole2_files_are_xls_only_with_a_workbook_stream() {
        let xls = ole2_with(&[("/Workbook", BIFF8_BOF)]);
        assert_eq!(detect_format(&xls), Ok(SheetFormat::Xls));
        let biff5 = ole2_with(&[("/Book", BIFF8_BOF)]);
        assert_eq!(detect_format(&biff5), Ok(SheetFormat::Xls));

        let doc = ole2_with(&[("/WordDocument", b"\0\0")]);
        let err = detect_format(&doc).expect_err("a .doc");
        assert_eq!(
            err,
            UnsupportedFormat::Ole2NotWorkbook {
                looks_like: Some("a Word 97–2003 document (.doc)")
            }
        );
        assert!(
            err.to_string().contains("no Workbook or Book stream"),
            "{err}"
        );
    }

    #[test]
    fn encrypted_workbooks_say_they_are_password_protected() {
        let ooxml = ole2_with(&[("/EncryptionInfo", b"\x04\0"), ("/EncryptedPackage", b"\0")]);
        let err = detect_format(&ooxml).expect_err("encrypted");
        assert_eq!(err, UnsupportedFormat::Encrypted);
        assert!(err.to_string().contains("password-protected"), "{err}");

        let mut stream = BIFF8_BOF.to_vec();
        stream.extend_from_slice(&[0x2F, 0x00, 0x02, 0x00, 0x00, 0x00]);
        let xls = ole2_with(&[("/Workbook", &stream)]);
        assert_eq!(detect_format(&xls), Err(UnsupportedFormat::Encrypted));
    }

    #[test]
    fn an_ole2_header_with_nothing_after_it_is_an_error_not_a_panic() {
        assert!(matches!(
            detect_format(OLE2_MAGIC),
            Err(UnsupportedFormat::DamagedOle2(_))
        ));
        let mut header = OLE2_MAGIC.to_vec();
        header.resize(512, 0xFF);
        assert!(matches!(
            detect_format(&header),
            Err(UnsupportedFormat::DamagedOle2(_))
        ));
        // A valid container cut short.
        let xls = ole2_with(&[("/Workbook", &[0u8; 8192])]);
        for cut in [512, 1024, xls.len() / 2, xls.len() - 1] {
            assert!(detect_format(&xls[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn text_is_csv_whatever_its_encoding() {
        assert_eq!(
            detect_format(b"Id,FirstName\n1,Ann\n"),
            Ok(SheetFormat::Csv)
        );
        assert_eq!(
            detect_format(b"\xEF\xBB\xBFId;Name\r\n1;Zo\xC3\xAB\r\n"),
            Ok(SheetFormat::Csv)
        );
        assert_eq!(
            detect_format(b"Id\tName\n1\tRen\xE9\n"),
            Ok(SheetFormat::Csv)
        );
        assert_eq!(
            detect_format(b"\xFF\xFEI\0d\0,\0N\0\n\0"),
            Ok(SheetFormat::Csv)
        );
        // A cut through a multi-byte character at the probe's end is still text.
        let mut long = "é,".repeat(PROBE_BYTES / 3).into_bytes();
        long.truncate(PROBE_BYTES + 1);
        assert_eq!(detect_format(&long), Ok(SheetFormat::Csv));
    }

    #[test]
    fn binary_and_empty_input_are_errors() {
        assert_eq!(detect_format(b""), Err(UnsupportedFormat::Empty));
        assert_eq!(detect_format(b" \r\n\t"), Err(UnsupportedFormat::Empty));
        assert_eq!(
            detect_format(b"\xEF\xBB\xBF\n"),
            Err(UnsupportedFormat::Empty)
        );
        assert_eq!(
            detect_format(b"Id,Name\n1\0,Ann\n"),
            Err(UnsupportedFormat::NotText)
        );
        // UTF-16 without a byte-order mark is not guessed.
        assert_eq!(
            detect_format(b"I\0d\0,\0N\0"),
            Err(UnsupportedFormat::NotText)
        );
        // Pseudo-random bytes (no NUL in the first few hundred, by construction).
        let garbage: Vec<u8> = (1..=400u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 1)
            .collect();
        assert_eq!(detect_format(&garbage), Err(UnsupportedFormat::NotText));
    }

    #[test]
    fn known_non_spreadsheets_are_named() {
        assert_eq!(
            detect_format(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"),
            Err(UnsupportedFormat::NotSpreadsheet("a PDF document"))
        );
        let html = b"\n<!DOCTYPE html><html><table><tr><td>Id</td></tr></table></html>";
        let err = detect_format(html).expect_err("html");
        assert!(err.to_string().contains("web page"), "{err}");
        let spreadsheet_ml = b"<?xml version=\"1.0\"?><Workbook xmlns=\"urn:schemas-microsoft-com:office:spreadsheet\"/>";
        let err = detect_format(spreadsheet_ml).expect_err("xml");
        assert!(err.to_string().contains("Excel 2003 XML"), "{err}");
    }

    #[test]
    fn mutated_containers_are_errors_or_formats_never_panics() {
        let ods = zip_with(&[
            ("mimetype", ODS_MIMETYPE.as_bytes()),
            ("META-INF/manifest.xml", b"<manifest:manifest/>"),
        ]);
        let seeds = [
            tiny_xlsx(),
            ods,
            ole2_with(&[
                ("/Workbook", BIFF8_BOF),
                ("/SummaryInformation", &[7; 5000]),
            ]),
        ];
        // xorshift64: deterministic, so a failure reproduces.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        for seed in &seeds {
            for _ in 0..400 {
                let mut bytes = seed.clone();
                for _ in 0..=next(8) {
                    // The directories live in the first and last 512 bytes (OLE2 header, zip
                    // central directory); mutate there half of the time.
                    let at = match next(4) {
                        0 => next(512.min(bytes.len())),
                        1 => bytes.len() - 1 - next(512.min(bytes.len())),
                        _ => next(bytes.len()),
                    };
                    bytes[at] = next(256) as u8;
                }
                bytes.truncate(bytes.len() - next(4) * next(bytes.len() / 4));
                let _ = detect_format(&bytes);
            }
        }
    }

    /// Every file of the shared corpus of real spreadsheets (`shared/corpus/MANIFEST.tsv`),
    /// where it is checked out beside the repository; skipped elsewhere.
    #[test]
    fn real_files_of_the_corpus_are_recognised() {
        let corpus = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpus"
        ));
        let Ok(manifest) = std::fs::read_to_string(corpus.join("MANIFEST.tsv")) else {
            eprintln!("no corpus at {}: skipped", corpus.display());
            return;
        };
        // Files that are not workbooks at all; those whose zip MANIFEST.tsv notes as broken must
        // be DamagedZip (the zip crate refuses a central directory whose offsets are off by
        // 14 missing bytes, as Python's zipfile does).
        let expected_errors = [
            ("calamine/pass_protected.xlsx", UnsupportedFormat::Encrypted),
            ("excelize/encryptAES.xlsx", UnsupportedFormat::Encrypted),
            ("DDTwithEXCEL/~$MOCK_DATA.xlsx", UnsupportedFormat::NotText),
            (
                "poi/openxml4j_invalid.xlsx",
                UnsupportedFormat::ZipNotWorkbook {
                    looks_like: Some("an empty archive"),
                },
            ),
        ];
        let mut checked = 0;
        let mut wrong = Vec::new();
        for line in manifest.lines().skip(1) {
            let path = line.split('\t').next().unwrap_or_default();
            let Ok(bytes) = std::fs::read(corpus.join(path)) else {
                continue;
            };
            checked += 1;
            let found = detect_format(&bytes);
            let right = if let Some((_, error)) = expected_errors.iter().find(|(p, _)| *p == path) {
                found == Err(error.clone())
            } else if path.ends_with(".xlsm") {
                found == Ok(SheetFormat::Xlsm)
            } else if line.contains("broken zip")
                || line.contains("NOT-A-ZIP: BadZipFile")
                || line.contains("offsets inconsistent")
            {
                matches!(found, Err(UnsupportedFormat::DamagedZip(_)))
            } else {
                found == Ok(SheetFormat::Xlsx)
            };
            if !right {
                wrong.push(format!("{path}: {found:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        eprintln!("{checked} corpus files recognised");
    }
}
