//! `burrow-fixtures`: writes the deterministic xlsx (and big CSV) fixtures.
//!
//! - `burrow-fixtures mock [--dir fixtures]`: the committed files,
//!   `MOCK_DATA_1..5.xlsx` and the five `bad_*.xlsx`.
//! - `burrow-fixtures big [--rows 1000000] [--out fixtures/big/people-1m.xlsx] [--seed N]`:
//!   one big people file, streamed in constant memory: CSV when `--out` ends in `.csv`
//!   (any case), else xlsx. The same seed and rows give the same people in both.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burrow_shared::fixtures::{
    mock_data, mock_file_name, people, people_xlsx, write_people_csv, write_people_xlsx,
    BadFixture, MOCK_FILES,
};
use clap::{Parser, Subcommand};

/// Writes burrow's deterministic xlsx fixtures.
#[derive(Debug, Parser)]
#[command(name = "burrow-fixtures", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write MOCK_DATA_1..5.xlsx and the bad_*.xlsx test files.
    Mock {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Stream a big people file (ids from 1) in constant memory.
    Big {
        /// Number of people rows (at most 1,048,575 in an xlsx).
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Output file (its directory is created if missing); `.csv` writes CSV, else xlsx.
        #[arg(long, default_value = "fixtures/big/people-1m.xlsx")]
        out: PathBuf,
        /// Seed of the people generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mock { dir } => write_mock(&dir),
        Command::Big { rows, out, seed } => write_big(rows, &out, seed),
    }
}

fn write_mock(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for n in 1..=MOCK_FILES {
        let name = mock_file_name(n);
        let bytes = people_xlsx(mock_data(n)).with_context(|| format!("building {name}"))?;
        write_file(&dir.join(name), &bytes)?;
    }
    for bad in BadFixture::ALL {
        let bytes = bad
            .try_bytes()
            .with_context(|| format!("building {}", bad.file_name()))?;
        write_file(&dir.join(bad.file_name()), &bytes)?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn write_big(rows: usize, out: &Path, seed: u64) -> anyhow::Result<()> {
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let csv = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        write_people_csv(out, people(seed, 1, rows))
            .with_context(|| format!("writing {}", out.display()))?;
    } else {
        write_people_xlsx(out, people(seed, 1, rows))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let bytes = fs::metadata(out)
        .with_context(|| format!("reading the size of {}", out.display()))?
        .len();
    println!("wrote {}: {rows} rows, {bytes} bytes", out.display());
    Ok(())
}
