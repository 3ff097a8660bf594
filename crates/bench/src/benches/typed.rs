//! Benchmark 8: a typed profile in append mode. The bench writes a profile (bigint id, text
//! names, email, one_of gender, inet ip_address; [`super::bench_profile`]) and creates its
//! table; row 1's workbook is uploaded with `profile=bench-typed` and imported end to end by one
//! worker. The reference is calamine + one `COPY` into the same table in this process, before
//! and after, their mean: what burrow adds is the typed checks and the job around them.

use serde::Serialize;

use crate::benches::bench_profile::{BenchProfile, Mode};
use crate::benches::upload::{self, SystemImport, Upload};
use crate::reference::import::{self as raw, RawImport, Target};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{rate, thousands};

/// Target: the end-to-end import reaches this share of the raw floor's rows per second.
pub const TARGET_RATIO: f64 = 0.85;
/// The profile's name and table.
const PROFILE: &str = "bench-typed";
const TABLE: &str = "bench_typed_people";
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-typed";

/// What benchmark 8 measured.
#[derive(Debug, Clone, Serialize)]
pub struct TypedBench {
    /// The workbook.
    pub file: String,
    /// Rows imported (the same on both sides).
    pub rows: u64,
    /// burrow, end to end.
    pub system: SystemImport,
    /// The raw floor into the same table, before and after.
    pub raw: Vec<RawImport>,
    /// Their mean rows per second: the reference.
    pub raw_rows_per_sec: f64,
    /// `system.rows_per_sec / raw_rows_per_sec`.
    pub ratio: f64,
}

/// Runs benchmark 8: the raw floor, burrow, the raw floor again; the table goes afterwards.
///
/// # Errors
/// If a process does not start, an import fails, or a deadline passes.
pub async fn run(stack: &Stack) -> anyhow::Result<TypedBench> {
    let profile = BenchProfile::create(stack, PROFILE, TABLE, Mode::Append).await?;
    let measured = measure(stack, &profile).await;
    profile.remove(stack).await?;
    measured
}

async fn measure(stack: &Stack, profile: &BenchProfile) -> anyhow::Result<TypedBench> {
    let file = stack.config().fixture.clone();
    let before = raw_into(stack, profile, "before").await?;
    profile.truncate(stack).await?;
    let burrow = upload::run(
        stack,
        Upload {
            name: "typed",
            file: &file,
            profile: Some(profile.name),
            tag: TAG,
            env: &profile.env(),
        },
    )
    .await?;
    let in_table = profile.count(stack).await?;
    anyhow::ensure!(
        in_table == burrow.rows,
        "the job says {} rows, {} holds {in_table}",
        burrow.rows,
        profile.table
    );
    let after = raw_into(stack, profile, "after").await?;
    let (raw, raw_rows_per_sec) = raw::bracket(burrow.rows, before, after)?;
    Ok(TypedBench {
        file: file.display().to_string(),
        rows: burrow.rows,
        ratio: burrow.system.rows_per_sec / raw_rows_per_sec,
        system: burrow.system,
        raw,
        raw_rows_per_sec,
    })
}

/// One raw import into the profile's table, emptied first (after a checkpoint).
async fn raw_into(stack: &Stack, profile: &BenchProfile, when: &str) -> anyhow::Result<RawImport> {
    println!(
        "  raw floor ({when}): calamine cell reader + one COPY into {}, in this process",
        profile.table
    );
    profile.truncate(stack).await?;
    let raw = raw::run(
        &stack.db,
        &stack.config().fixture,
        &Target::Table(profile.table.to_owned()),
    )
    .await?;
    println!("{}", raw.progress_line());
    Ok(raw)
}

impl TypedBench {
    /// Row 8 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "8",
            benchmark: format!(
                "import {} rows, typed profile (append): upload → succeeded, 1 worker",
                thousands(self.rows)
            ),
            burrow: format!(
                "{} rows/s ({:.1} s)",
                rate(self.system.rows_per_sec),
                self.system.secs
            ),
            reference: format!(
                "calamine + 1 COPY into the same table: {} rows/s ({})",
                rate(self.raw_rows_per_sec),
                raw::before_after(&self.raw)
            ),
            ratio: Some(self.ratio),
            target: format!("≥ {TARGET_RATIO:.2}× raw"),
            verdict: Verdict::from_bool(self.ratio >= TARGET_RATIO),
        }]
    }

    /// The stages and CPU of both sides.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!("8 burrow stages: {}", self.system.stages())];
        lines.extend(raw::detail_lines("8", &self.raw));
        lines
    }
}
