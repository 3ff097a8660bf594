//! The people rows of the raw references as `COPY … FROM STDIN` text, gathered into chunks for
//! the COPY writer: the part of a raw import that neither depends on the file's format
//! ([`super::xlsx_rows`], [`super::csv_rows`]) nor on the target table ([`super::import`]).

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calamine::DataRef;
use tokio::sync::mpsc;

/// COPY text gathered before a chunk goes to the database writer (as burrow's importer).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The header names, in the order of the COPY columns after `id`.
const TEXT_COLUMNS: [&str; 5] = ["firstname", "lastname", "email", "gender", "ipaddress"];

/// Turns sheet rows into COPY text lines and hands full chunks to the writer.
pub struct LineWriter {
    /// `Some(job id)`: every line starts with the job id and the 1-based row number (the
    /// `imported_rows` layout); `None`: the line is the six people columns alone.
    job_id: Option<String>,
    /// Sheet columns of `Id` and the five text columns, once the header was read.
    positions: Option<[usize; 6]>,
    buffer: Vec<u8>,
    /// Data rows written.
    pub rows: u64,
    /// Time spent waiting for the writer to take a chunk (it was behind).
    pub waited: Duration,
}

impl LineWriter {
    /// A writer of lines for `imported_rows` (with `job_id`) or for a plain people table.
    pub fn new(job_id: Option<String>) -> Self {
        LineWriter {
            job_id,
            positions: None,
            buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
            rows: 0,
            waited: Duration::ZERO,
        }
    }

    /// Takes one sheet row (`row` 0-based): the first is the header, every later one a line.
    /// Sends the buffer to `out` once it holds a chunk.
    ///
    /// # Errors
    /// A header without the people columns, an `Id` that is no integer, an unexpected cell, or
    /// a writer that stopped.
    pub fn row(
        &mut self,
        row: u32,
        cells: &[DataRef<'_>],
        out: &mpsc::Sender<Vec<u8>>,
    ) -> anyhow::Result<()> {
        self.encode(row, cells)?;
        if self.buffer.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES + 4096));
            let before = Instant::now();
            out.blocking_send(chunk)
                .map_err(|_| anyhow::anyhow!("the COPY writer stopped"))?;
            self.waited += before.elapsed();
        }
        Ok(())
    }

    /// Sends what is left.
    ///
    /// # Errors
    /// If the writer stopped.
    pub fn finish(&mut self, out: &mpsc::Sender<Vec<u8>>) -> anyhow::Result<()> {
        if !self.buffer.is_empty() {
            out.blocking_send(std::mem::take(&mut self.buffer))
                .map_err(|_| anyhow::anyhow!("the COPY writer stopped"))?;
        }
        Ok(())
    }

    fn encode(&mut self, row: u32, cells: &[DataRef<'_>]) -> anyhow::Result<()> {
        let Some(positions) = self.positions else {
            self.positions = Some(header(cells)?);
            return Ok(());
        };
        let cell = |i: usize| cells.get(positions[i]).unwrap_or(&DataRef::Empty);
        let id = match cell(0) {
            DataRef::Int(i) => *i,
            DataRef::Float(f) if f.fract() == 0.0 => *f as i64,
            DataRef::String(s) => s.trim().parse().context("Id")?,
            DataRef::SharedString(s) => s.trim().parse().context("Id")?,
            other => anyhow::bail!("row {}: Id is {other:?}", row + 1),
        };
        // Writing into a Vec cannot fail.
        let _ = match &self.job_id {
            Some(job_id) => write!(self.buffer, "{job_id}\t{}\t{id}", row + 1),
            None => write!(self.buffer, "{id}"),
        };
        for i in 1..positions.len() {
            self.buffer.push(b'\t');
            match cell(i) {
                DataRef::Empty => self.buffer.extend_from_slice(b"\\N"),
                DataRef::String(s) => escape(&mut self.buffer, s),
                DataRef::SharedString(s) => escape(&mut self.buffer, s),
                DataRef::Int(n) => {
                    let _ = write!(self.buffer, "{n}");
                }
                DataRef::Float(f) => {
                    let _ = write!(self.buffer, "{f}");
                }
                other => anyhow::bail!("row {}: unexpected cell {other:?}", row + 1),
            }
        }
        self.buffer.push(b'\n');
        self.rows += 1;
        Ok(())
    }
}

/// Sheet columns of `Id, FirstName, LastName, Email, Gender, IpAddress` (any case).
fn header(cells: &[DataRef<'_>]) -> anyhow::Result<[usize; 6]> {
    let position = |name: &str| {
        cells.iter().position(|cell| match cell {
            DataRef::String(s) => s.trim().eq_ignore_ascii_case(name),
            DataRef::SharedString(s) => s.trim().eq_ignore_ascii_case(name),
            _ => false,
        })
    };
    let mut positions = [0; 6];
    positions[0] = position("id").context("no Id column")?;
    for (i, name) in TEXT_COLUMNS.iter().enumerate() {
        positions[i + 1] = position(name).with_context(|| format!("no {name} column"))?;
    }
    Ok(positions)
}

/// Appends `text` in COPY text format: backslash, tab, newline and carriage return escaped.
fn escape(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_plain_text_alone_and_escapes_copy_specials() {
        let mut out = Vec::new();
        escape(&mut out, "plain");
        escape(&mut out, "a\tb\\c\nd");
        assert_eq!(out, b"plaina\\tb\\\\c\\nd");
    }

    fn header_row() -> [DataRef<'static>; 6] {
        [
            DataRef::String("ID".into()),
            DataRef::String("firstName".into()),
            DataRef::String("LastName".into()),
            DataRef::String("Email".into()),
            DataRef::String("Gender".into()),
            DataRef::String("IpAddress".into()),
        ]
    }

    fn data_row() -> [DataRef<'static>; 6] {
        [
            DataRef::Float(7.0),
            DataRef::String("Ann".into()),
            DataRef::Empty,
            DataRef::SharedString("a@b.c"),
            DataRef::String("F".into()),
            DataRef::String("10.0.0.1".into()),
        ]
    }

    #[test]
    fn rows_after_the_header_become_imported_rows_lines() {
        let mut writer = LineWriter::new(Some("j".into()));
        writer.encode(0, &header_row()).expect("header");
        writer.encode(1, &data_row()).expect("row");
        assert_eq!(writer.buffer, b"j\t2\t7\tAnn\t\\N\ta@b.c\tF\t10.0.0.1\n");
        assert_eq!(writer.rows, 1);
    }

    #[test]
    fn a_plain_table_gets_the_people_columns_alone() {
        let mut writer = LineWriter::new(None);
        writer.encode(0, &header_row()).expect("header");
        writer.encode(1, &data_row()).expect("row");
        assert_eq!(writer.buffer, b"7\tAnn\t\\N\ta@b.c\tF\t10.0.0.1\n");
    }
}
