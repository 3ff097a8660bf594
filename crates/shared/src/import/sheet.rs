//! Reading an upload through a profile: format recognised, sheet chosen, header found, rows
//! converted to COPY text and handed on in chunks.

use calamine::DataRef;
use uuid::Uuid;

use super::error::ImportError;
use super::format::{detect_format, SheetFormat};
use super::header::HeaderMap;
use super::limits::check_package;
use super::pipeline;
use super::profile::{Profile, SheetChoice};
use super::rejections::{OnError, Rejection};
use super::rows::{HeaderFinder, RowEncoder, CHUNK_BYTES};
use super::workbook::Workbook;
use super::ImportOptions;

/// What to read: the profile, and the upload's choices that override the profile's.
#[derive(Debug, Clone, Copy)]
pub struct ImportRequest<'p> {
    /// The profile.
    pub profile: &'p Profile,
    /// The sheet; default: the profile's, else the first visible sheet with the header.
    pub sheet: Option<&'p SheetChoice>,
    /// The header's row (1-based); default: the profile's, else found.
    pub header_row: Option<u32>,
}

impl<'p> ImportRequest<'p> {
    /// The profile's own choices.
    pub fn of(profile: &'p Profile) -> ImportRequest<'p> {
        ImportRequest {
            profile,
            sheet: None,
            header_row: None,
        }
    }
}

/// What a read found and produced.
#[derive(Debug, Clone)]
pub struct SheetReport {
    /// The file's format, by content.
    pub format: SheetFormat,
    /// The sheet read.
    pub sheet: String,
    /// Where the columns were found.
    pub header: HeaderMap,
    /// Valid data rows.
    pub rows: u64,
    /// Invalid rows in all.
    pub rejected_total: u64,
    /// Invalid rows, up to the report cap.
    pub rejected: Vec<Rejection>,
    /// The first rows' converted values (previews only).
    pub sample: Vec<Vec<Option<String>>>,
}

/// How much of the sheet a read goes through.
#[derive(Debug, Clone, Copy)]
pub enum Extent {
    /// Every row: an import.
    Whole,
    /// A preview: keep the first `sample` rows' values, stop after `rows` data rows, never fail
    /// on invalid rows (they are listed).
    Preview {
        /// Rows whose converted values are kept.
        sample: usize,
        /// Data rows read at most.
        rows: u64,
    },
}

/// Reads `file` as `request` says, handing COPY text chunks of about [`CHUNK_BYTES`] to
/// `emit` together with the rows read so far and the sheet's declared row count (an estimate,
/// 0 when unknown). `emit` returning `false` stops the read with [`ImportError::ParserFailed`].
///
/// # Errors
/// Any [`ImportError`] except `Database` and `Cancelled`. A panic inside the spreadsheet parser
/// on malformed input (calamine 0.38 overflows on absurd cell references, found by
/// `tests/fuzz_import.rs`) is caught and reported as [`ImportError::Unreadable`].
pub fn read_sheet(
    file: Vec<u8>,
    job_id: Uuid,
    request: ImportRequest<'_>,
    options: &ImportOptions,
    extent: Extent,
    emit: impl FnMut(Vec<u8>, u64, u64) -> bool,
) -> Result<SheetReport, ImportError> {
    // Nothing shared outlives a panic here: the workbook and buffers are local to the call.
    let guarded = std::panic::AssertUnwindSafe(|| {
        read_unguarded(file, job_id, request, options, extent, emit)
    });
    std::panic::catch_unwind(guarded).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(ImportError::unreadable(format!("malformed sheet ({what})")))
    })
}

fn read_unguarded(
    file: Vec<u8>,
    job_id: Uuid,
    request: ImportRequest<'_>,
    options: &ImportOptions,
    extent: Extent,
    mut emit: impl FnMut(Vec<u8>, u64, u64) -> bool,
) -> Result<SheetReport, ImportError> {
    let limits = &options.limits;
    let profile = request.profile;
    let format = detect_format(&file).map_err(|e| ImportError::Unsupported(e.to_string()))?;
    if matches!(
        format,
        SheetFormat::Xlsx | SheetFormat::Xlsm | SheetFormat::Xlsb | SheetFormat::Ods
    ) {
        // The worker does not trust the api: the package is checked again before parsing.
        check_package(&file, limits)?;
    }
    let mut workbook = Workbook::open(file, format)?;
    let header_row = request.header_row.or(profile.header_row);
    let sheet = choose_sheet(&mut workbook, request, header_row, options)?;

    let declared = std::cell::Cell::new(0);
    let mut finder = HeaderFinder::new(profile, header_row);
    let mut encoder: Option<RowEncoder<'_>> = None;
    let on_error = match extent {
        Extent::Whole => options.on_error,
        Extent::Preview { .. } => OnError::Skip,
    };
    let mut stopped = false;
    // A preview reads a few rows: not worth a second thread.
    let split = matches!(extent, Extent::Whole);
    pipeline::read_rows(
        &mut workbook,
        split,
        &sheet,
        limits,
        &mut |rows| {
            if rows > limits.max_rows {
                return Err(ImportError::Limit(format!(
                    "sheet {sheet:?} declares {rows} rows (limit {})",
                    limits.max_rows
                )));
            }
            declared.set(rows);
            Ok(())
        },
        &mut |row, cells: &[DataRef<'_>]| {
            let Some(rows) = encoder.as_mut() else {
                if let Some(header) = finder.offer(row, cells)? {
                    let mut fresh = RowEncoder::new(
                        profile,
                        header,
                        job_id,
                        limits,
                        on_error,
                        options.row_delay,
                    );
                    if let Extent::Preview { sample, .. } = extent {
                        fresh.sample = Some((sample, Vec::new()));
                    }
                    encoder = Some(fresh);
                }
                return Ok(true);
            };
            rows.push(row, cells)?;
            if let Extent::Preview { rows: most, .. } = extent {
                return Ok(rows.count + rows.rejected_total < most);
            }
            if rows.doomed() {
                // The file is rejected; its later rows are checked for the report only.
                rows.buffer.clear();
                return Ok(true);
            }
            if rows.buffer.len() >= CHUNK_BYTES
                && !emit(rows.take_chunk(), rows.count, declared.get())
            {
                stopped = true;
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    if stopped {
        return Err(ImportError::ParserFailed(
            "the database writer stopped".to_owned(),
        ));
    }
    let Some(mut rows) = encoder else {
        if !finder.saw_cells {
            return Err(ImportError::EmptySheet { sheet });
        }
        return Err(finder.give_up());
    };
    if rows.count + rows.rejected_total == 0 {
        return Err(ImportError::NoDataRows { sheet });
    }
    if rows.doomed() {
        return Err(rows.invalid_rows());
    }
    if !rows.buffer.is_empty() && !emit(rows.take_chunk(), rows.count, declared.get()) {
        return Err(ImportError::ParserFailed(
            "the database writer stopped".to_owned(),
        ));
    }
    Ok(SheetReport {
        format,
        sheet,
        header: rows.header().clone(),
        rows: rows.count,
        rejected_total: rows.rejected_total,
        rejected: std::mem::take(&mut rows.rejected),
        sample: rows.sample.take().map(|(_, s)| s).unwrap_or_default(),
    })
}

/// The sheet to read: the one asked for, else the first visible sheet whose first rows hold the
/// header (each probed by reading at most [`super::profile::HEADER_SEARCH_ROWS`] rows).
fn choose_sheet(
    workbook: &mut Workbook,
    request: ImportRequest<'_>,
    header_row: Option<u32>,
    options: &ImportOptions,
) -> Result<String, ImportError> {
    let sheets = workbook.sheets();
    if sheets.is_empty() {
        return Err(ImportError::NoWorksheet);
    }
    let names = || {
        sheets
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match request.sheet.or(request.profile.sheet.as_ref()) {
        Some(SheetChoice::Index(index)) => {
            return sheets
                .get(*index)
                .map(|(name, _)| name.clone())
                .ok_or_else(|| ImportError::NoSuchSheet {
                    wanted: format!("number {index} (counting from 0)"),
                    sheets: names(),
                });
        }
        Some(SheetChoice::Name(wanted)) => {
            return sheets
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted.trim()))
                .map(|(name, _)| name.clone())
                .ok_or_else(|| ImportError::NoSuchSheet {
                    wanted: format!("{wanted:?}"),
                    sheets: names(),
                });
        }
        None => {}
    }
    let visible: Vec<&String> = sheets
        .iter()
        .filter(|(_, visible)| *visible)
        .map(|(name, _)| name)
        .collect();
    if visible.len() == 1 {
        return Ok(visible[0].clone());
    }
    let mut first_error = None;
    for name in visible
        .iter()
        .copied()
        .chain(sheets.iter().map(|(n, _)| n).filter(|_| visible.is_empty()))
    {
        let mut finder = HeaderFinder::new(request.profile, header_row);
        let mut found = false;
        let probed =
            workbook.read_rows(name, &options.limits, &mut |_| Ok(()), &mut |row, cells| {
                found = finder.offer(row, cells)?.is_some();
                Ok(!found)
            });
        match probed {
            Ok(()) if found => return Ok(name.clone()),
            Ok(()) => {
                if first_error.is_none() && finder.saw_cells {
                    first_error = Some(finder.give_up());
                }
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    Err(first_error.unwrap_or(ImportError::EmptySheet {
        sheet: visible
            .first()
            .map_or_else(|| sheets[0].0.clone(), |s| (*s).clone()),
    }))
}
