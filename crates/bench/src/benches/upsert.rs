//! Benchmark 9: a profile in upsert mode keyed on `id` ([`super::bench_profile`]), into a table
//! whose primary key is `id`. The table is first loaded with row 1's workbook by calamine + one
//! `COPY` in this process (that load's rate is shown for context) and vacuumed and analysed, as a
//! table that has held its rows a while would be; then the same workbook is uploaded with
//! `profile=bench-upsert` and imported end to end by one worker onto those existing rows: every
//! row meets its key. The target is absolute (rows per second); the table must still hold one
//! row per id afterwards.

use serde::Serialize;

use crate::benches::bench_profile::{BenchProfile, Mode};
use crate::benches::upload::{self, SystemImport, Upload};
use crate::reference::import::{self as raw, RawImport, Target};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{rate, thousands};

/// Target: rows per second of the upsert, upload start → succeeded.
pub const TARGET_ROWS_PER_SEC: f64 = 100_000.0;
/// The profile's name and table.
const PROFILE: &str = "bench-upsert";
const TABLE: &str = "bench_upsert_people";
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-upsert";

/// What benchmark 9 measured.
#[derive(Debug, Clone, Serialize)]
pub struct UpsertBench {
    /// The workbook.
    pub file: String,
    /// Rows in the table before the upsert (the first load).
    pub existing_rows: u64,
    /// Rows the upsert imported.
    pub rows: u64,
    /// burrow's upsert, end to end.
    pub system: SystemImport,
    /// The first load: calamine + one COPY into the empty table, in this process.
    pub first_load: RawImport,
    /// Seconds of the `VACUUM ANALYZE` after the first load.
    pub vacuum_secs: f64,
}

/// Runs benchmark 9: the first load, then burrow's upsert; the table goes afterwards.
///
/// # Errors
/// If a process does not start, an import fails, the table ends with duplicates, or a deadline
/// passes.
pub async fn run(stack: &Stack) -> anyhow::Result<UpsertBench> {
    let profile = BenchProfile::create(stack, PROFILE, TABLE, Mode::Upsert).await?;
    let measured = measure(stack, &profile).await;
    profile.remove(stack).await?;
    measured
}

async fn measure(stack: &Stack, profile: &BenchProfile) -> anyhow::Result<UpsertBench> {
    let file = stack.config().fixture.clone();
    println!(
        "  first load: calamine cell reader + one COPY into {}, in this process",
        profile.table
    );
    let first_load = raw::run(&stack.db, &file, &Target::Table(profile.table.to_owned())).await?;
    let vacuum = std::time::Instant::now();
    sqlx::query(&format!("VACUUM ANALYZE \"{}\"", profile.table))
        .execute(&stack.db)
        .await?;
    sqlx::query("CHECKPOINT").execute(&stack.db).await?;
    let vacuum_secs = vacuum.elapsed().as_secs_f64();
    println!(
        "    {} rows in {:.1} s: {} rows/s; VACUUM ANALYZE + CHECKPOINT {vacuum_secs:.1} s",
        thousands(first_load.rows),
        first_load.secs,
        rate(first_load.rows_per_sec)
    );
    let burrow = upload::run(
        stack,
        Upload {
            name: "upsert",
            file: &file,
            profile: Some(profile.name),
            tag: TAG,
            env: &profile.env(),
        },
    )
    .await?;
    anyhow::ensure!(
        burrow.rows == first_load.rows,
        "the upsert imported {} rows, the first load {}",
        burrow.rows,
        first_load.rows
    );
    let in_table = profile.count(stack).await?;
    anyhow::ensure!(
        in_table == first_load.rows,
        "{} holds {in_table} rows after the upsert, {} before",
        profile.table,
        first_load.rows
    );
    Ok(UpsertBench {
        file: file.display().to_string(),
        existing_rows: first_load.rows,
        rows: burrow.rows,
        system: burrow.system,
        first_load,
        vacuum_secs,
    })
}

impl UpsertBench {
    /// Row 9 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "9",
            benchmark: format!(
                "upsert {} rows onto {} existing (profile upsert, key id): upload → succeeded, 1 worker",
                thousands(self.rows),
                thousands(self.existing_rows)
            ),
            burrow: format!(
                "{} rows/s ({:.1} s)",
                rate(self.system.rows_per_sec),
                self.system.secs
            ),
            reference: format!(
                "first load, calamine + 1 COPY into the empty table: {} rows/s (context)",
                rate(self.first_load.rows_per_sec)
            ),
            ratio: None,
            target: format!("≥ {} rows/s", rate(TARGET_ROWS_PER_SEC)),
            verdict: Verdict::from_bool(self.system.rows_per_sec >= TARGET_ROWS_PER_SEC),
        }]
    }

    /// The stages and CPU of both loads.
    pub fn details(&self) -> Vec<String> {
        vec![
            format!("9 burrow upsert stages: {}", self.system.stages()),
            format!(
                "9 first load: {} rows/s in {:.1} s, then VACUUM ANALYZE + CHECKPOINT {:.1} s; {}",
                rate(self.first_load.rows_per_sec),
                self.first_load.secs,
                self.vacuum_secs,
                self.first_load.cpu.summary()
            ),
        ]
    }
}
