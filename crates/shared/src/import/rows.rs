//! From a sheet's rows to COPY text: the header row found and mapped, each data row's cells
//! converted for their columns, invalid and repeated rows rejected (or skipped), the text
//! handed on in chunks.

use std::collections::HashMap;
use std::time::Duration;

use calamine::DataRef;
use uuid::Uuid;

use super::cell::describe;
use super::coerce::{coerce, Coerced, Rules};
use super::error::{cell_reference, ImportError};
use super::header::{map_header, required_matches, HeaderMap};
use super::limits::ImportLimits;
use super::profile::{ImportMode, Profile, HEADER_SEARCH_ROWS};
use super::rejections::{OnError, Rejection, SourceCell, REPORT_CAP, REPORT_MAX_BYTES};

/// Bytes of COPY text gathered before a chunk is handed to the database writer.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Finds the header row among a sheet's first rows.
pub struct HeaderFinder<'p> {
    profile: &'p Profile,
    /// The header's row when given (1-based).
    given: Option<u32>,
    /// Required columns of the profile.
    required: usize,
    /// The likeliest row so far (most required columns) and its error, for when none is found.
    best: Option<(usize, ImportError)>,
    /// Whether any non-blank row was seen.
    pub saw_cells: bool,
}

impl<'p> HeaderFinder<'p> {
    /// A search for `profile`'s header, at row `given` (1-based) or in the first
    /// [`HEADER_SEARCH_ROWS`] rows.
    pub fn new(profile: &'p Profile, given: Option<u32>) -> HeaderFinder<'p> {
        HeaderFinder {
            profile,
            given,
            required: profile.columns.iter().filter(|c| c.required).count(),
            best: None,
            saw_cells: false,
        }
    }

    /// Looks at row `row` (0-based): the header once found, `None` while it may still come.
    ///
    /// # Errors
    /// When the search is over without a header (the given row is not one, or the first
    /// [`HEADER_SEARCH_ROWS`] rows hold none): the likeliest row's error.
    pub fn offer(
        &mut self,
        row: u32,
        cells: &[DataRef<'_>],
    ) -> Result<Option<HeaderMap>, ImportError> {
        let number = row + 1;
        if let Some(given) = self.given {
            if number < given {
                return Ok(None);
            }
            self.saw_cells = true;
            // Rows after the given one: the given row was blank, so it holds no header.
            let cells = if number == given { cells } else { &[] };
            return map_header(self.profile, given, cells).map(Some);
        }
        if number > HEADER_SEARCH_ROWS {
            return Err(self.give_up());
        }
        if is_blank(cells) {
            return Ok(None);
        }
        self.saw_cells = true;
        let matches = required_matches(self.profile, cells);
        match map_header(self.profile, number, cells) {
            Ok(map) => return Ok(Some(map)),
            // Two cells for one column of an otherwise complete header: this is the header,
            // and it is wrong.
            Err(e @ ImportError::DuplicateColumn { .. }) if matches == self.required => {
                return Err(e)
            }
            Err(e) => {
                if self.best.as_ref().is_none_or(|(most, _)| matches > *most) {
                    self.best = Some((matches, e));
                }
            }
        }
        Ok(None)
    }

    /// The error when the rows ran out (or the search window passed) without a header.
    pub fn give_up(&mut self) -> ImportError {
        match self.best.take() {
            Some((_, error)) => error,
            None => ImportError::MissingColumns {
                row: 1,
                missing: self
                    .profile
                    .columns
                    .iter()
                    .filter(|c| c.required)
                    .map(|c| c.header.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                found: "no names".to_owned(),
            },
        }
    }
}

/// Values already seen in a unique column (or the key), with the row they were first seen in.
enum Seen {
    Ints(HashMap<i64, u32>),
    Texts(HashMap<Box<str>, u32>),
}

impl Seen {
    /// The row `value` was first seen in, or `None` (and remembers it for `row`).
    fn first(&mut self, value: &Coerced<'_>, row: u32) -> Option<u32> {
        match (self, value) {
            (_, Coerced::Empty) => None,
            (Seen::Ints(seen), Coerced::Int(i)) => match seen.entry(*i) {
                std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(row);
                    None
                }
            },
            (seen, value) => {
                let text = value.display().unwrap_or_default();
                let texts = match seen {
                    Seen::Texts(texts) => texts,
                    Seen::Ints(_) => unreachable!("integer columns coerce to Int"),
                };
                if let Some(first) = texts.get(text.as_str()) {
                    return Some(*first);
                }
                texts.insert(text.into_boxed_str(), row);
                None
            }
        }
    }
}

/// The key columns' positions in the profile, and each key seen (its parts joined by U+001F)
/// with the row it was first seen in.
type KeySeen = (Vec<usize>, HashMap<Box<str>, u32>);

/// Turns data rows into COPY text.
pub struct RowEncoder<'p> {
    profile: &'p Profile,
    header: HeaderMap,
    /// The job column's COPY text with its tab (`<uuid>\t`), formatted once, not per row.
    job_prefix: Vec<u8>,
    limits: ImportLimits,
    on_error: OnError,
    row_delay: Duration,
    /// COPY text of each column's default (`None`: no default).
    defaults: Vec<Option<Vec<u8>>>,
    /// Per profile column: its seen values when it is unique.
    unique: Vec<Option<Seen>>,
    /// The key's seen values (upsert and insert_new: a key twice in one file cannot be applied).
    key: Option<KeySeen>,
    /// COPY text not yet handed on.
    pub buffer: Vec<u8>,
    /// Rows encoded.
    pub count: u64,
    /// Invalid rows, up to [`REPORT_CAP`].
    pub rejected: Vec<Rejection>,
    /// Invalid rows in all.
    pub rejected_total: u64,
    /// Bytes of original values kept in `rejected` (bounded by [`REPORT_MAX_BYTES`]).
    kept_bytes: usize,
    /// Values per row, kept for previews (`Some` to keep up to that many rows).
    pub sample: Option<(usize, Vec<Vec<Option<String>>>)>,
}

impl<'p> RowEncoder<'p> {
    /// An encoder for the rows under `header`.
    pub fn new(
        profile: &'p Profile,
        header: HeaderMap,
        job_id: Uuid,
        limits: &ImportLimits,
        on_error: OnError,
        row_delay: Duration,
    ) -> RowEncoder<'p> {
        let defaults = profile
            .columns
            .iter()
            .map(|column| {
                column.default.as_ref().map(|text| {
                    let mut out = Vec::new();
                    // Checked when the profile was loaded.
                    let _ = super::coerce::write_text_value(
                        &mut out,
                        text,
                        column,
                        &profile.date_formats,
                    );
                    out
                })
            })
            .collect();
        let unique = profile
            .columns
            .iter()
            .map(|column| {
                column.unique.then(|| match column.ty {
                    super::column::ColumnType::Integer | super::column::ColumnType::Bigint => {
                        Seen::Ints(HashMap::new())
                    }
                    _ => Seen::Texts(HashMap::new()),
                })
            })
            .collect();
        let key = matches!(profile.mode, ImportMode::Upsert | ImportMode::InsertNew)
            .then(|| (profile.key_positions(), HashMap::new()));
        RowEncoder {
            profile,
            header,
            job_prefix: format!("{job_id}\t").into_bytes(),
            limits: limits.clone(),
            on_error,
            row_delay,
            defaults,
            unique,
            key,
            buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
            count: 0,
            rejected: Vec::new(),
            rejected_total: 0,
            kept_bytes: 0,
            sample: None,
        }
    }

    /// The header the rows are read under.
    pub fn header(&self) -> &HeaderMap {
        &self.header
    }

    /// Encodes data row `row` (0-based), or records why it is invalid (with its cells, for the
    /// error report). Blank rows are skipped.
    ///
    /// # Errors
    /// [`ImportError::Limit`] past `max_rows`.
    pub fn push(&mut self, row: u32, cells: &[DataRef<'_>]) -> Result<(), ImportError> {
        if is_blank(cells) {
            return Ok(());
        }
        if self.count >= self.limits.max_rows {
            return Err(ImportError::Limit(format!(
                "more than {} data rows",
                self.limits.max_rows
            )));
        }
        let start = self.buffer.len();
        match self.encode(row, cells) {
            Ok(()) => self.count += 1,
            Err(rejection) => {
                self.buffer.truncate(start);
                self.reject(*rejection, cells);
            }
        }
        if !self.row_delay.is_zero() {
            std::thread::sleep(self.row_delay);
        }
        Ok(())
    }

    fn encode(&mut self, row: u32, cells: &[DataRef<'_>]) -> Result<(), Box<Rejection>> {
        let profile = self.profile;
        let number = row + 1;
        let rules = Rules {
            date_formats: &profile.date_formats,
            max_cell_chars: self.limits.max_cell_chars,
        };
        let mut sample = self
            .sample
            .as_ref()
            .is_some_and(|(cap, rows)| rows.len() < *cap)
            .then(Vec::new);
        if profile.job_column.is_some() {
            self.buffer.extend_from_slice(&self.job_prefix);
        }
        if profile.row_column.is_some() {
            let _ = std::fmt::Write::write_fmt(
                &mut super::coerce::ByteWriter(&mut self.buffer),
                format_args!("{number}\t"),
            );
        }
        // Unique values are remembered only once the whole row is valid.
        let mut pending_unique: Vec<(usize, Coerced<'_>)> = Vec::new();
        let mut key_parts: Vec<String> = Vec::new();
        for (i, column) in profile.columns.iter().enumerate() {
            if i > 0 {
                self.buffer.push(b'\t');
            }
            let position = self.header.positions[i];
            let cell = position
                .and_then(|p| cells.get(p))
                .unwrap_or(&DataRef::Empty);
            let invalid = |reason: String| {
                Box::new(Rejection {
                    row: number,
                    column: column.header.clone(),
                    cell: position
                        .map(|p| cell_reference(row, p as u32))
                        .unwrap_or_default(),
                    value: describe(cell),
                    reason,
                    original: Vec::new(),
                })
            };
            let value = coerce(cell, column, rules).map_err(invalid)?;
            match (&value, &self.defaults[i]) {
                (Coerced::Empty, Some(default)) => self.buffer.extend_from_slice(default),
                (Coerced::Empty, None) if column.required => {
                    return Err(invalid(format!(
                        "{} is required; the cell is empty",
                        column.header
                    )));
                }
                (value, _) => value.write_copy(&mut self.buffer),
            }
            if let Some(sample) = sample.as_mut() {
                sample.push(match (&value, &column.default) {
                    (Coerced::Empty, Some(default)) => Some(default.clone()),
                    (value, _) => value.display(),
                });
            }
            if let Some((positions, _)) = &self.key {
                if positions.contains(&i) {
                    key_parts.push(value.display().unwrap_or_default());
                }
            }
            if self.unique[i].is_some() {
                pending_unique.push((i, value));
            }
        }
        self.buffer.push(b'\n');
        for (i, value) in &pending_unique {
            let seen = self.unique[*i].as_mut().expect("unique column");
            if let Some(first) = seen.first(value, number) {
                let column = &profile.columns[*i];
                let position = self.header.positions[*i];
                return Err(Box::new(Rejection {
                    row: number,
                    column: column.header.clone(),
                    cell: position
                        .map(|p| cell_reference(row, p as u32))
                        .unwrap_or_default(),
                    value: value.display().unwrap_or_default(),
                    reason: format!(
                        "{} {} appears again (first in row {first})",
                        column.header,
                        value.display().unwrap_or_default()
                    ),
                    original: Vec::new(),
                }));
            }
        }
        if let Some((positions, seen)) = &mut self.key {
            let key = key_parts.join("\u{1f}");
            if let Some(first) = seen.get(key.as_str()) {
                let cell = match positions.as_slice() {
                    [only] => self.header.positions[*only]
                        .map(|p| cell_reference(row, p as u32))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                return Err(Box::new(Rejection {
                    row: number,
                    column: profile.key.join(", "),
                    cell,
                    value: key_parts.join(", "),
                    reason: format!(
                        "the key ({}) appears again (first in row {first})",
                        key_parts.join(", ")
                    ),
                    original: Vec::new(),
                }));
            }
            seen.insert(key.into_boxed_str(), number);
        }
        if let (Some(values), Some((_, rows))) = (sample, self.sample.as_mut()) {
            rows.push(values);
        }
        Ok(())
    }

    /// Records an invalid row, with a copy of its cells while the report's budget lasts
    /// ([`REPORT_CAP`] rows, [`REPORT_MAX_BYTES`]). The read goes on in both `on_error` modes,
    /// so the error report lists every rejected row and the count is exact.
    fn reject(&mut self, mut rejection: Rejection, cells: &[DataRef<'_>]) {
        self.rejected_total += 1;
        if self.rejected.len() >= REPORT_CAP {
            return;
        }
        if self.kept_bytes < REPORT_MAX_BYTES {
            rejection.original = cells.iter().map(SourceCell::of).collect();
            self.kept_bytes += rejection
                .original
                .iter()
                .map(SourceCell::size)
                .sum::<usize>();
        }
        self.rejected.push(rejection);
    }

    /// Whether the file is rejected whatever comes next (`on_error=reject` and a row was
    /// invalid): the rows after it are still checked, but not written.
    pub fn doomed(&self) -> bool {
        self.on_error == OnError::Reject && self.rejected_total > 0
    }

    /// The error of a rejected file: its invalid rows, and how many there were.
    pub fn invalid_rows(&mut self) -> ImportError {
        ImportError::InvalidRows {
            total: self.rejected_total,
            rejected: std::mem::take(&mut self.rejected),
            header: self.header.cells.clone(),
        }
    }

    /// The COPY text gathered so far, leaving an empty buffer.
    pub fn take_chunk(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES + 4096))
    }
}

/// Whether every cell of a row is empty (such rows are skipped, as Excel users expect).
pub fn is_blank(cells: &[DataRef<'_>]) -> bool {
    cells.iter().all(|cell| match cell {
        DataRef::Empty => true,
        DataRef::String(s) => s.trim().is_empty(),
        DataRef::SharedString(s) => s.trim().is_empty(),
        _ => false,
    })
}
