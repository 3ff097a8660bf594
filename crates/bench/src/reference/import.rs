//! The raw floor of an import: the workbook read with calamine's cell reader and its rows
//! written with one `COPY imported_rows … FROM STDIN`, in this one process: no api, no broker,
//! no job bookkeeping, no validation beyond what COPY needs.
//!
//! It is deliberately the best this machine can do with the same two libraries: parsing runs on
//! a blocking thread and hands COPY text chunks of 256 KiB through a channel of four to the
//! async side, which streams them to Postgres, so parsing and the database overlap on the two
//! cores (the shape burrow's worker also has). It writes into the same table, with the same
//! primary key and foreign key, as burrow's import.

use std::io::Cursor;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calamine::{DataRef, Reader as _, Xlsx};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cpu::{CpuBreakdown, CpuMeter};

/// COPY text gathered before a chunk goes to the database writer (as burrow's importer).
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks in flight between the parser and the writer.
const CHUNKS_IN_FLIGHT: usize = 4;

const COPY: &str = "COPY imported_rows \
    (job_id, row_number, id, first_name, last_name, email, gender, ip_address) FROM STDIN";

/// The header names, in the order of the COPY columns after `id`.
const TEXT_COLUMNS: [&str; 5] = ["firstname", "lastname", "email", "gender", "ipaddress"];

/// What the raw import took.
#[derive(Debug, Clone, Serialize)]
pub struct RawImport {
    /// Rows COPY wrote.
    pub rows: u64,
    /// From reading the file to COPY's end (committed).
    pub secs: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
    /// Seconds the parser thread worked (its whole life less the time it waited on a full
    /// channel): calamine plus COPY text encoding.
    pub parse_secs: f64,
    /// Seconds the parser waited because the database writer was behind.
    pub parser_waited_secs: f64,
    /// CPU per component over the run.
    pub cpu: CpuBreakdown,
}

/// Imports `file` into `imported_rows` as the rows of job `job_id` (a row that exists).
///
/// # Errors
/// If the file cannot be read or parsed, or COPY fails.
pub async fn run(db: &PgPool, file: &Path, job_id: Uuid) -> anyhow::Result<RawImport> {
    let mut conn = db.acquire().await?;
    let meter = CpuMeter::start(None, None);
    let started = Instant::now();
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (chunks_tx, mut chunks) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let parser = tokio::task::spawn_blocking(move || parse(bytes, job_id, &chunks_tx));

    let mut copy = conn.copy_in_raw(COPY).await?;
    let mut write_error = None;
    while let Some(chunk) = chunks.recv().await {
        if let Err(e) = copy.send(chunk).await {
            write_error = Some(e);
            break;
        }
    }
    drop(chunks);
    let parsed = parser.await.context("the parser thread panicked")?;
    if let Some(e) = write_error {
        let _ = copy.abort("write failed").await;
        return Err(e).context("COPY");
    }
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = copy.abort("parse failed").await;
            return Err(e);
        }
    };
    let rows = copy.finish().await.context("finishing COPY")?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        rows == parsed.rows,
        "COPY wrote {rows} rows, the parser sent {}",
        parsed.rows
    );
    Ok(RawImport {
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        parse_secs: (parsed.lifetime - parsed.waited).as_secs_f64(),
        parser_waited_secs: parsed.waited.as_secs_f64(),
        cpu: meter.finish(),
    })
}

/// What the parser thread did.
struct Parsed {
    rows: u64,
    lifetime: Duration,
    waited: Duration,
}

/// Reads the sheet `Data` (any case) or the first one; the first row is the header; every
/// later row becomes a COPY text line.
fn parse(bytes: Vec<u8>, job_id: Uuid, out: &mpsc::Sender<Vec<u8>>) -> anyhow::Result<Parsed> {
    let started = Instant::now();
    let mut waited = Duration::ZERO;
    let mut workbook = Xlsx::new(Cursor::new(bytes)).context("opening the workbook")?;
    let names = workbook.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.eq_ignore_ascii_case("data"))
        .or_else(|| names.first())
        .cloned()
        .context("the workbook has no sheet")?;
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .context("opening the sheet")?;

    let mut writer = LineWriter {
        job_id: job_id.to_string(),
        positions: None,
        buffer: Vec::with_capacity(CHUNK_BYTES + 4096),
        rows: 0,
    };
    let mut current: Option<u32> = None;
    let mut row: Vec<DataRef<'_>> = Vec::new();
    while let Some(cell) = cells.next_cell().context("reading a cell")? {
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(done) = current {
                writer.row(done, &row)?;
                if writer.buffer.len() >= CHUNK_BYTES {
                    let chunk = std::mem::replace(
                        &mut writer.buffer,
                        Vec::with_capacity(CHUNK_BYTES + 4096),
                    );
                    let before = Instant::now();
                    out.blocking_send(chunk)
                        .map_err(|_| anyhow::anyhow!("the COPY writer stopped"))?;
                    waited += before.elapsed();
                }
            }
            current = Some(r);
            row.clear();
        }
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, DataRef::Empty);
        }
        row[c] = cell.get_value().clone();
    }
    if let Some(done) = current {
        writer.row(done, &row)?;
    }
    if !writer.buffer.is_empty() {
        out.blocking_send(std::mem::take(&mut writer.buffer))
            .map_err(|_| anyhow::anyhow!("the COPY writer stopped"))?;
    }
    Ok(Parsed {
        rows: writer.rows,
        lifetime: started.elapsed(),
        waited,
    })
}

/// Turns rows into COPY text lines.
struct LineWriter {
    job_id: String,
    /// Sheet columns of `Id` and the five text columns, once the header was read.
    positions: Option<[usize; 6]>,
    buffer: Vec<u8>,
    rows: u64,
}

impl LineWriter {
    fn row(&mut self, row: u32, cells: &[DataRef<'_>]) -> anyhow::Result<()> {
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
        let _ = write!(self.buffer, "{}\t{}\t{id}", self.job_id, row + 1);
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

    #[test]
    fn rows_after_the_header_become_copy_lines() {
        let header_row = [
            DataRef::String("ID".into()),
            DataRef::String("firstName".into()),
            DataRef::String("LastName".into()),
            DataRef::String("Email".into()),
            DataRef::String("Gender".into()),
            DataRef::String("IpAddress".into()),
        ];
        let data = [
            DataRef::Float(7.0),
            DataRef::String("Ann".into()),
            DataRef::Empty,
            DataRef::SharedString("a@b.c"),
            DataRef::String("F".into()),
            DataRef::String("10.0.0.1".into()),
        ];
        let mut writer = LineWriter {
            job_id: "j".into(),
            positions: None,
            buffer: Vec::new(),
            rows: 0,
        };
        writer.row(0, &header_row).expect("header");
        writer.row(1, &data).expect("row");
        assert_eq!(writer.buffer, b"j\t2\t7\tAnn\t\\N\ta@b.c\tF\t10.0.0.1\n");
        assert_eq!(writer.rows, 1);
    }
}
