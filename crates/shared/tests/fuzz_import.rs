//! Fuzz target: the import on untrusted files — `detect_format` (the api's content check),
//! `check_package` (the limits) and `parse_people` (the whole streaming parser, no database).
//!
//! For every input each must return `Ok` or an error and never panic, each case must finish
//! within `fuzz_support::CASE_TIMEOUT` and grow peak memory by less than
//! `fuzz_support::MEMORY_LIMIT_BYTES`, and what comes back must be coherent (an error is
//! permanent and its text bounded; a report counts rows within the limits). Properties:
//! 1. arbitrary bytes, bare or shaped like a zip;
//! 2. the seed workbooks with bytes flipped, set, inserted, deleted, duplicated, truncated, and
//!    zip header fields overwritten (lying sizes, offsets, counts);
//! 3. the seed workbooks unzipped, one part edited as XML (mostly the sheet: tokens, numbers,
//!    repeated elements, raw bytes), entries dropped, renamed or added, and zipped again.
//!
//! The seeds: `fixtures/MOCK_DATA_1.xlsx`, a generated people workbook, every `BadFixture` and
//! every `HostileFixture`. Runs and budgets: see `fuzz_support`.

mod fuzz_support;

use std::io::{Cursor, Read, Write};
use std::time::Duration;

use burrow_shared::fixtures::{people, people_xlsx, BadFixture, HostileFixture};
use burrow_shared::import::{
    check_package, detect_format, parse_people, ImportError, ImportLimits, ImportOptions, OnError,
    SheetFormat, REPORT_CAP,
};
use fuzz_support::{Probe, Property, Target};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

const TARGET: Target = Target {
    name: "fuzz_import",
    regressions: "tests/fuzz-regressions/fuzz_import.txt",
    properties: 3,
    keep_last_case: true,
};

/// Longest error text accepted: it becomes the job's message (a column in Postgres, a line in
/// the dashboard), so a hostile file must not make it megabytes long.
const MAX_ERROR_TEXT: usize = 64 * 1024;

/// Seeds inflating to more than this are left out of the unzip–edit–rezip property (the zip bomb,
/// the 10 MB cell): re-deflating them on every case would spend the budget on compression.
const REZIP_MAX_BYTES: usize = 4 * 1024 * 1024;

/// One seed workbook.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    /// Its zip entries, inflated, when it unzips whole and is small enough to rezip per case.
    entries: Option<Vec<(String, Vec<u8>)>>,
    /// Slow to generate and to parse: in long runs only, and picked less often.
    heavy: bool,
    /// Offsets of its zip records, for [`Edit::ZipField`] (found once: scanning a 6 MB seed on
    /// every case would cost more than the case).
    zip_records: Vec<usize>,
}

/// The seed workbooks. The zip bomb and the 10 MB cell (`heavy`) take ~10 s to generate in a
/// debug build: callers ask for them in long runs only (`FUZZ_SECONDS` set). They come last.
fn corpus(heavy_too: bool) -> Vec<Seed> {
    let mut seeds = vec![
        (
            "MOCK_DATA_1",
            include_bytes!("../../../fixtures/MOCK_DATA_1.xlsx").to_vec(),
        ),
        (
            "people_30",
            people_xlsx(people(0x5eed, 1, 30)).expect("people workbook"),
        ),
    ];
    seeds.extend(BadFixture::ALL.map(|f| (f.file_name(), f.bytes())));
    let heavy = [HostileFixture::ZipBomb, HostileFixture::HugeCell];
    let hostile = HostileFixture::ALL
        .into_iter()
        .filter(|f| !heavy.contains(f))
        .chain(heavy.into_iter().filter(|_| heavy_too));
    seeds.extend(hostile.map(|f| (f.file_name(), f.bytes().expect("hostile fixture"))));
    seeds
        .into_iter()
        .map(|(name, bytes)| Seed {
            name,
            entries: unzip(&bytes),
            heavy: heavy.iter().any(|f| f.file_name() == name),
            zip_records: zip_records(&bytes),
            bytes,
        })
        .collect()
}

/// A seed index, a heavy seed (they come last) one time in eleven.
fn seed_choice(seeds: &[Seed]) -> BoxedStrategy<usize> {
    let light = seeds.iter().filter(|s| !s.heavy).count();
    if seeds.len() > light {
        prop_oneof![10 => 0..light, 1 => light..seeds.len()].boxed()
    } else {
        (0..seeds.len()).boxed()
    }
}

/// The entries of `zip`, inflated, or `None` if any fails or they are too big to rezip per case.
fn unzip(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).ok()?;
    let mut entries = Vec::new();
    let mut total = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).ok()?;
        let name = entry.name().ok()?.into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).ok()?;
        total += data.len();
        if total > REZIP_MAX_BYTES {
            return None;
        }
        entries.push((name, data));
    }
    Some(entries)
}

/// Runs the three entry points on `file` under the watchdog and checks what they return.
fn check_file(file: Vec<u8>, options: &ImportOptions, probe: &Probe) -> Result<(), TestCaseError> {
    let settings = options.clone();
    let (sniffed, package, parsed) = probe.guarded(move || {
        let sniffed = detect_format(&file);
        let package = check_package(&file, &settings.limits);
        let parsed = parse_people(file, &settings);
        (sniffed, package, parsed)
    })?;

    // The package limits guard the zip formats; other bytes (CSV text, .xls) never meet them.
    let zipped = matches!(
        sniffed,
        Ok(SheetFormat::Xlsx | SheetFormat::Xlsm | SheetFormat::Xlsb | SheetFormat::Ods)
    );
    if let Err(e) = &package {
        prop_assert!(
            matches!(e, ImportError::Unreadable(_) | ImportError::Limit(_)),
            "check_package returned {e:?}"
        );
        prop_assert!(
            !zipped || parsed.is_err(),
            "parsed a package check_package refuses: {e}"
        );
    }
    if sniffed.is_err() {
        prop_assert!(parsed.is_err(), "parsed a file detect_format refuses");
    }
    match &parsed {
        Ok(report) => {
            prop_assert!(
                report.rows + report.rejected_total > 0,
                "empty report {report:?}"
            );
            prop_assert!(report.rows <= options.limits.max_rows, "{report:?}");
            prop_assert!(report.rejected.len() as u64 <= report.rejected_total);
            prop_assert!(report.rejected.len() <= REPORT_CAP);
            if options.on_error == OnError::Reject {
                prop_assert_eq!(
                    report.rejected_total,
                    0,
                    "rejected rows under on_error=reject"
                );
            }
        }
        Err(e) => {
            prop_assert!(
                !matches!(
                    e,
                    ImportError::Database(_)
                        | ImportError::Cancelled
                        | ImportError::ParserFailed(_)
                ),
                "parse_people returned {e:?}"
            );
            prop_assert!(e.is_permanent());
        }
    }
    for text in [
        package.as_ref().err().map(ToString::to_string),
        parsed.as_ref().err().map(ToString::to_string),
    ]
    .into_iter()
    .flatten()
    {
        prop_assert!(
            text.len() <= MAX_ERROR_TEXT,
            "an error text of {} bytes: {}…",
            text.len(),
            text.chars().take(300).collect::<String>()
        );
    }

    let sniff = match sniffed {
        Ok(format) => format.extension(),
        Err(_) => "unsupported",
    };
    let parse = match &parsed {
        Ok(_) => "Ok",
        Err(e) => error_name(e),
    };
    probe.outcome(format!("{sniff}/{parse}"));
    Ok(())
}

fn error_name(e: &ImportError) -> &'static str {
    match e {
        ImportError::Unreadable(_) => "Unreadable",
        ImportError::NoWorksheet => "NoWorksheet",
        ImportError::EmptySheet { .. } => "EmptySheet",
        ImportError::NoDataRows { .. } => "NoDataRows",
        ImportError::MissingColumns { .. } => "MissingColumns",
        ImportError::DuplicateColumn { .. } => "DuplicateColumn",
        ImportError::Unsupported(_) => "Unsupported",
        ImportError::NoSuchSheet { .. } => "NoSuchSheet",
        ImportError::InvalidRows { .. } => "InvalidRows",
        ImportError::Limit(_) => "Limit",
        _ => "other",
    }
}

/// Default limits mostly; sometimes tight ones, so that every limit's path is reached.
fn options() -> impl Strategy<Value = ImportOptions> {
    let tight = (
        0..4_000_000u64,
        1..120u64,
        0..200_000u64,
        0..40u64,
        0..12u32,
        0..64usize,
    )
        .prop_map(
            |(bytes, ratio, strings, rows, columns, chars)| ImportLimits {
                max_uncompressed_bytes: bytes,
                max_compression_ratio: ratio,
                max_shared_strings_bytes: strings,
                max_rows: rows,
                max_columns: columns,
                max_cell_chars: chars,
            },
        );
    let limits = prop_oneof![3 => Just(ImportLimits::default()), 1 => tight];
    let on_error = prop_oneof![Just(OnError::Reject), Just(OnError::Skip)];
    (limits, on_error).prop_map(|(limits, on_error)| ImportOptions {
        row_delay: Duration::ZERO,
        limits,
        on_error,
        ..ImportOptions::default()
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Arbitrary bytes.

/// Random bytes; random bytes behind the zip magic; and a zip-shaped shell (local header
/// magic, random body, an end-of-central-directory record with random fields).
fn arbitrary_files() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..4096),
        vec(any::<u8>(), 0..4096).prop_map(|body| [&b"PK\x03\x04"[..], &body].concat()),
        (vec(any::<u8>(), 0..2048), vec(any::<u8>(), 18)).prop_map(|(body, eocd)| {
            [&b"PK\x03\x04"[..], &body, b"PK\x05\x06", &eocd].concat()
        }),
    ]
}

#[test]
fn arbitrary_bytes_are_refused_without_panicking() {
    let property = Property {
        target: &TARGET,
        name: "arbitrary_bytes_are_refused_without_panicking",
        default_cases: 300,
        extension: "bin",
        materialize: &|(file, _): &(Vec<u8>, ImportOptions)| file.clone(),
    };
    fuzz_support::run(
        &property,
        (arbitrary_files(), options()),
        |(file, options), probe| check_file(file, &options, probe),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Byte-level mutations of whole workbooks.

/// One change to a byte string. Positions are `Index`es, so they scale with its length.
#[derive(Debug, Clone)]
enum Edit {
    Flip {
        at: Index,
        bit: u8,
    },
    Set {
        at: Index,
        byte: u8,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Delete {
        at: Index,
        len: usize,
    },
    Duplicate {
        from: Index,
        len: usize,
        to: Index,
    },
    Truncate {
        at: Index,
    },
    /// Overwrites bytes `offset..` of one of the seed's zip records (local header, central
    /// directory entry, end of directory…): lying sizes, offsets, counts, methods and name
    /// lengths. Earlier edits may have shifted the record: a near miss is a mutation too.
    ZipField {
        header: Index,
        offset: usize,
        value: Vec<u8>,
    },
}

/// Byte values that matter in binary headers: zero, all ones, sign bits, small counts.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    let values = vec![
        0u32,
        1,
        2,
        8,
        0x7F,
        0xFF,
        0x7FFF,
        0xFFFF,
        0x1_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
    ];
    prop_oneof![
        (select(values), 1..=4usize).prop_map(|(v, width)| v.to_le_bytes()[..width].to_vec()),
        vec(any::<u8>(), 1..8),
    ]
}

fn byte_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        2 => (any::<Index>(), vec(any::<u8>(), 1..32)).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        2 => (any::<Index>(), 1..256usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (any::<Index>(), 1..512usize, any::<Index>())
            .prop_map(|(from, len, to)| Edit::Duplicate { from, len, to }),
        1 => any::<Index>().prop_map(|at| Edit::Truncate { at }),
    ]
}

fn file_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => byte_edit(),
        2 => (any::<Index>(), 0..46usize, interesting_bytes())
            .prop_map(|(header, offset, value)| Edit::ZipField { header, offset, value }),
    ]
}

/// Zip record signatures (APPNOTE.TXT 4.3): local file, central directory, end of central
/// directory, zip64 end and locator, data descriptor.
const ZIP_SIGNATURES: [&[u8; 4]; 6] = [
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"PK\x06\x06",
    b"PK\x06\x07",
    b"PK\x07\x08",
];

/// Where the records of a zip start.
fn zip_records(zip: &[u8]) -> Vec<usize> {
    zip.windows(4)
        .enumerate()
        .filter(|(_, w)| ZIP_SIGNATURES.iter().any(|s| &s[..] == *w))
        .map(|(i, _)| i)
        .collect()
}

/// Applies `edit` to `buf`; `records` are the seed's zip records, for [`Edit::ZipField`].
fn apply(edit: &Edit, buf: &mut Vec<u8>, records: &[usize]) {
    let len = buf.len();
    match edit {
        Edit::Flip { at, bit } if len > 0 => buf[at.index(len)] ^= 1 << bit,
        Edit::Set { at, byte } if len > 0 => buf[at.index(len)] = *byte,
        Edit::Insert { at, bytes } => {
            let i = at.index(len + 1);
            buf.splice(i..i, bytes.iter().copied());
        }
        Edit::Delete { at, len: n } if len > 0 => {
            let i = at.index(len);
            buf.drain(i..(i + n).min(len));
        }
        Edit::Duplicate { from, len: n, to } if len > 0 => {
            let i = from.index(len);
            let chunk = buf[i..(i + n).min(len)].to_vec();
            let j = to.index(len + 1);
            buf.splice(j..j, chunk);
        }
        Edit::Truncate { at } => buf.truncate(at.index(len + 1)),
        Edit::ZipField {
            header,
            offset,
            value,
        } => {
            if let Some(&start) = (!records.is_empty()).then(|| header.get(records)) {
                for (k, byte) in value.iter().enumerate() {
                    if let Some(slot) = buf.get_mut(start + offset + k) {
                        *slot = *byte;
                    }
                }
            }
        }
        _ => {}
    }
}

/// A seed and the byte edits made to it.
#[derive(Debug, Clone)]
struct FileMutation {
    seed: usize,
    edits: Vec<Edit>,
}

fn file_mutations(seeds: &[Seed]) -> impl Strategy<Value = FileMutation> {
    (seed_choice(seeds), vec(file_edit(), 1..8))
        .prop_map(|(seed, edits)| FileMutation { seed, edits })
}

fn mutate_file(seeds: &[Seed], case: &FileMutation) -> Vec<u8> {
    let seed = &seeds[case.seed];
    let mut bytes = seed.bytes.clone();
    for edit in &case.edits {
        apply(edit, &mut bytes, &seed.zip_records);
    }
    bytes
}

#[test]
fn mutated_workbooks_are_handled_without_panicking() {
    let seeds = corpus(fuzz_support::budget(&TARGET).is_some());
    let build = |(case, _): &(FileMutation, ImportOptions)| mutate_file(&seeds, case);
    let property = Property {
        target: &TARGET,
        name: "mutated_workbooks_are_handled_without_panicking",
        default_cases: 300,
        extension: "xlsx",
        materialize: &build,
    };
    fuzz_support::run(
        &property,
        (file_mutations(&seeds), options()),
        |case, probe| {
            let file = build(&case);
            check_file(file, &case.1, probe)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Edits inside the zip: the parts as XML, then zipped again.

/// XML a worksheet, shared-strings table or workbook part might (not) contain.
const TOKENS: [&str; 62] = [
    "<row>",
    "<row r=\"0\">",
    "<row r=\"2\">",
    "<row r=\"1048576\">",
    "<row r=\"1048577\">",
    "<row r=\"4294967295\">",
    "<row r=\"-1\">",
    "</row>",
    "<c>",
    "<c r=\"A1\">",
    "<c r=\"B2\">",
    "<c r=\"XFD1048576\">",
    "<c r=\"XFE1\">",
    "<c r=\"ZZZZZZ1\">",
    "<c r=\"ZZZZZZZZ1\">",
    "<c r=\"A99999999999\">",
    "<c r=\"A0\">",
    "<c r=\"1A\">",
    "<c r=\"\">",
    "</c>",
    "<c r=\"A2\" t=\"s\"><v>0</v></c>",
    "<c r=\"A2\" t=\"s\"><v>999999999</v></c>",
    "<c t=\"s\"><v>-1</v></c>",
    "<c t=\"b\"><v>2</v></c>",
    "<c t=\"e\"><v>#DIV/0!</v></c>",
    "<c t=\"d\"><v>not a date</v></c>",
    "<c t=\"str\"><f>1/0</f><v></v></c>",
    "<c s=\"99999\"><v>1</v></c>",
    "<c t=\"inlineStr\"><is><t>",
    "</t></is></c>",
    "<c t=\"inlineStr\"><is><r><t>rich</t></r><rPh><t>ph</t></rPh></is></c>",
    "<v>",
    "</v>",
    "<v>1e308</v>",
    "<v>-0</v>",
    "<v>NaN</v>",
    "<v>9223372036854775808</v>",
    "<v>0x10</v>",
    "<f>SUM(A1:A2)</f>",
    "<dimension ref=\"A1:XFD1048576\"/>",
    "<dimension ref=\"Z9:A1\"/>",
    "<dimension ref=\"\"/>",
    "<sheetData>",
    "</sheetData>",
    "<sheetData/>",
    "<si><t>x</t></si>",
    "</si>",
    "<t xml:space=\"preserve\">  </t>",
    "<sheet name=\"Data\" sheetId=\"1\" r:id=\"rId1\"/>",
    "<sheet name=\"\" sheetId=\"9\" r:id=\"rId99\"/>",
    "<Relationship Id=\"rId1\" Type=\"x\" Target=\"../../../etc/passwd\"/>",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x10FFFF;",
    "&#xD800;",
    "&undefined;",
    "<![CDATA[<c>]]>",
    "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]>",
    "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
    "<!-- -->",
    "\u{feff}\u{0}\u{ffff}é\u{1f600}\"'<>/=",
];

/// Numbers that stress conversions: row and column bounds, integer edges, floats, non-numbers.
const NUMBERS: [&str; 18] = [
    "0",
    "-1",
    "1",
    "65535",
    "1048576",
    "1048577",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "0.5",
    "NaN",
    "inf",
    "",
    "00000000000000000001",
];

/// Part names of a workbook package, for renamed and added entries.
const PARTS: [&str; 10] = [
    "[Content_Types].xml",
    "_rels/.rels",
    "xl/workbook.xml",
    "xl/_rels/workbook.xml.rels",
    "xl/worksheets/sheet1.xml",
    "xl/worksheets/sheet2.xml",
    "xl/sharedStrings.xml",
    "xl/styles.xml",
    "docProps/app.xml",
    "../evil.xml",
];

#[derive(Debug, Clone)]
enum XmlEdit {
    Bytes(Edit),
    /// Inserts `token`, at a tag boundary (the next `<`) when `snap`.
    Token {
        at: Index,
        snap: bool,
        token: &'static str,
    },
    /// Inserts `token` many times over (scaling: rows, cells, nesting).
    Repeat {
        at: Index,
        token: &'static str,
        times: usize,
    },
    /// Replaces the run of digits at or after `at`.
    Number {
        at: Index,
        number: &'static str,
    },
    /// Copies the element (`<row`, `<c`, `<si`) starting at or after `at` right after itself.
    CopyElement {
        at: Index,
        times: usize,
    },
    /// Removes the element starting at or after `at`.
    DropElement {
        at: Index,
    },
}

fn xml_edit() -> impl Strategy<Value = XmlEdit> {
    prop_oneof![
        3 => byte_edit().prop_map(XmlEdit::Bytes),
        4 => (any::<Index>(), any::<bool>(), select(TOKENS.to_vec()))
            .prop_map(|(at, snap, token)| XmlEdit::Token { at, snap, token }),
        1 => (any::<Index>(), select(TOKENS.to_vec()), 2..20_000usize)
            .prop_map(|(at, token, times)| XmlEdit::Repeat { at, token, times }),
        3 => (any::<Index>(), select(NUMBERS.to_vec()))
            .prop_map(|(at, number)| XmlEdit::Number { at, number }),
        2 => (any::<Index>(), 1..4usize).prop_map(|(at, times)| XmlEdit::CopyElement { at, times }),
        2 => any::<Index>().prop_map(|at| XmlEdit::DropElement { at }),
    ]
}

/// The element starting at or after `from` (wrapping round): its byte range.
fn element_at(xml: &[u8], from: usize) -> Option<std::ops::Range<usize>> {
    let starts: Vec<usize> = [&b"<row"[..], b"<c ", b"<c>", b"<si>"]
        .iter()
        .flat_map(|open| find_all(xml, open))
        .collect();
    let start = starts
        .iter()
        .copied()
        .filter(|&s| s >= from)
        .min()
        .or_else(|| starts.iter().copied().min())?;
    let close: &[u8] = match &xml[start..start + 3] {
        b"<ro" => b"</row>",
        b"<si" => b"</si>",
        _ => b"</c>",
    };
    let end = find_all(&xml[start..], close)
        .first()
        .map(|e| start + e + close.len())?;
    Some(start..end)
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn apply_xml(edit: &XmlEdit, xml: &mut Vec<u8>) {
    let len = xml.len();
    match edit {
        XmlEdit::Bytes(edit) => apply(edit, xml, &[]),
        XmlEdit::Token { at, snap, token } => {
            let mut i = at.index(len + 1);
            if *snap {
                i = xml[i..]
                    .iter()
                    .position(|&b| b == b'<')
                    .map_or(len, |p| i + p);
            }
            xml.splice(i..i, token.bytes());
        }
        XmlEdit::Repeat { at, token, times } => {
            let i = at.index(len + 1);
            xml.splice(i..i, token.repeat(*times).into_bytes());
        }
        XmlEdit::Number { at, number } => {
            let i = at.index(len + 1);
            if let Some(start) = xml[i..].iter().position(u8::is_ascii_digit).map(|p| i + p) {
                let end = xml[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| start + p);
                xml.splice(start..end, number.bytes());
            }
        }
        XmlEdit::CopyElement { at, times } if len > 0 => {
            if let Some(range) = element_at(xml, at.index(len)) {
                let copy = xml[range.clone()].repeat(*times);
                xml.splice(range.end..range.end, copy);
            }
        }
        XmlEdit::DropElement { at } if len > 0 => {
            if let Some(range) = element_at(xml, at.index(len)) {
                xml.drain(range);
            }
        }
        _ => {}
    }
}

/// Which part gets the XML edits.
#[derive(Debug, Clone)]
enum Part {
    /// The (first) worksheet.
    Sheet,
    /// Any entry.
    Any(Index),
}

/// A change to the package's list of entries.
#[derive(Debug, Clone)]
enum Structural {
    Drop(Index),
    Rename(Index, &'static str),
    Add(&'static str, Vec<&'static str>),
}

/// A seed taken apart, one part edited, perhaps the entry list changed, zipped again.
#[derive(Debug, Clone)]
struct ZipMutation {
    seed: Index,
    part: Part,
    edits: Vec<XmlEdit>,
    structural: Option<Structural>,
    stored: bool,
}

fn zip_mutations() -> impl Strategy<Value = ZipMutation> {
    let part = prop_oneof![3 => Just(Part::Sheet), 1 => any::<Index>().prop_map(Part::Any)];
    let structural = prop_oneof![
        6 => Just(None),
        1 => any::<Index>().prop_map(|i| Some(Structural::Drop(i))),
        1 => (any::<Index>(), select(PARTS.to_vec())).prop_map(|(i, n)| Some(Structural::Rename(i, n))),
        1 => (select(PARTS.to_vec()), vec(select(TOKENS.to_vec()), 0..20))
            .prop_map(|(n, t)| Some(Structural::Add(n, t))),
    ];
    (
        any::<Index>(),
        part,
        vec(xml_edit(), 1..6),
        structural,
        any::<bool>(),
    )
        .prop_map(|(seed, part, edits, structural, stored)| ZipMutation {
            seed,
            part,
            edits,
            structural,
            stored,
        })
}

fn mutate_zip(seeds: &[&Seed], case: &ZipMutation) -> Vec<u8> {
    let mut entries = case
        .seed
        .get(seeds)
        .entries
        .clone()
        .expect("rezippable seeds only");
    if !entries.is_empty() {
        let part = match &case.part {
            Part::Sheet => entries
                .iter()
                .position(|(name, _)| name.starts_with("xl/worksheets/"))
                .unwrap_or(0),
            Part::Any(i) => i.index(entries.len()),
        };
        for edit in &case.edits {
            apply_xml(edit, &mut entries[part].1);
        }
    }
    match &case.structural {
        Some(Structural::Drop(i)) if !entries.is_empty() => {
            entries.remove(i.index(entries.len()));
        }
        Some(Structural::Rename(i, name)) if !entries.is_empty() => {
            let i = i.index(entries.len());
            entries[i].0 = (*name).to_owned();
        }
        Some(Structural::Add(name, tokens)) => {
            entries.push(((*name).to_owned(), tokens.concat().into_bytes()));
        }
        _ => {}
    }
    rezip(&entries, case.stored)
}

/// A zip of `entries` (a repeated name keeps its first entry: the writer refuses duplicates).
fn rezip(entries: &[(String, Vec<u8>)], stored: bool) -> Vec<u8> {
    let method = if stored {
        zip::CompressionMethod::Stored
    } else {
        zip::CompressionMethod::Deflated
    };
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(zip::DateTime::default());
    let mut out = Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let mut written = std::collections::HashSet::new();
    for (name, data) in entries {
        if written.insert(name.as_str()) && writer.start_file(name.as_str(), options).is_ok() {
            writer.write_all(data).expect("writing to memory");
        }
    }
    writer.finish().expect("finishing a zip in memory");
    out.into_inner()
}

#[test]
fn edited_parts_inside_the_zip_are_handled_without_panicking() {
    // The heavy seeds are too big to rezip per case (`REZIP_MAX_BYTES`).
    let all = corpus(false);
    let seeds: Vec<&Seed> = all.iter().filter(|s| s.entries.is_some()).collect();
    let build = |(case, _): &(ZipMutation, ImportOptions)| mutate_zip(&seeds, case);
    let property = Property {
        target: &TARGET,
        name: "edited_parts_inside_the_zip_are_handled_without_panicking",
        default_cases: 100,
        extension: "xlsx",
        materialize: &build,
    };
    fuzz_support::run(&property, (zip_mutations(), options()), |case, probe| {
        let file = build(&case);
        check_file(file, &case.1, probe)
    });
}

// ---------------------------------------------------------------------------------------------
// Saved failures and the seeds themselves.

/// Every input an earlier failure saved in `tests/fuzz-regressions/` passes the checks now
/// (the saved file stays a test after the strategies that found it have changed).
#[test]
fn inputs_saved_by_earlier_failures_are_handled() {
    let probe = Probe::default();
    let mut failures = Vec::new();
    for (name, file) in fuzz_support::saved_inputs(&TARGET, &["xlsx", "bin"]) {
        for on_error in [OnError::Reject, OnError::Skip] {
            let options = ImportOptions {
                on_error,
                ..ImportOptions::default()
            };
            if let Err(e) = check_file(file.clone(), &options, &probe) {
                failures.push(format!("{name} (on_error={on_error:?}): {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "saved inputs in tests/fuzz-regressions/ still fail:\n{}",
        failures.join("\n")
    );
}

/// The corpus reaches the parser: the good seeds import whole, the others fail as designed.
/// (If this breaks, the properties above may be exercising only the zip reader.)
#[test]
fn the_seed_corpus_reaches_the_parser() {
    let seeds = corpus(false);
    let names: Vec<&str> = seeds.iter().map(|s| s.name).collect();
    assert_eq!(seeds.len(), 10, "{names:?}");
    for seed in &seeds {
        let parsed = parse_people(seed.bytes.clone(), &ImportOptions::default());
        let outcome = match &parsed {
            Ok(report) => format!("{} rows", report.rows),
            Err(e) => error_name(e).to_owned(),
        };
        let expected = match seed.name {
            "MOCK_DATA_1" => "200 rows",
            "people_30" => "30 rows",
            "bad_corrupt_zip.xlsx" => "Unreadable",
            // Its zip directory is gone: refused by content before any parser runs.
            "bad_truncated.xlsx" => "Unsupported",
            "bad_missing_column.xlsx" => "MissingColumns",
            "bad_non_numeric_id.xlsx" => "InvalidRows",
            "bad_empty_sheet.xlsx" => "EmptySheet",
            "hostile_zip_bomb.xlsx" | "hostile_huge_dimension.xlsx" => "Limit",
            _ => continue,
        };
        assert_eq!(outcome, expected, "{}: {parsed:?}", seed.name);
    }
    let rezippable = seeds.iter().filter(|s| s.entries.is_some()).count();
    assert!(
        rezippable >= 8,
        "only {rezippable} seeds can be edited inside the zip"
    );
}
