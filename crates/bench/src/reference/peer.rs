//! Another tool's import, for row 10: a small Python script of `bench/peers/` (polars + ADBC,
//! DuckDB) run as a subprocess of the venv's interpreter, timed from its start to its exit, its
//! rows counted in Postgres afterwards. Its CPU time is read from this process's reaped
//! children once it has exited (nothing else of the bench's exits meanwhile).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::PgPool;

use crate::cpu::{reaped_children_secs, CpuBreakdown, CpuMeter};
use crate::process::Service;

/// How often the subprocess is polled for its exit (the end time is known to within this).
const POLL: Duration = Duration::from_millis(10);
/// How long a check that the peer's packages import may take.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// One of the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// `bench/peers/polars_adbc.py`: polars `read_excel` (calamine engine, fastexcel) +
    /// `write_database` (ADBC, `adbc-driver-postgresql`).
    Polars,
    /// `bench/peers/duckdb_postgres.py`: DuckDB `read_xlsx` + `INSERT` through its postgres
    /// extension.
    Duckdb,
}

impl Peer {
    /// Both, in running order.
    pub const ALL: [Peer; 2] = [Peer::Polars, Peer::Duckdb];

    /// The script's file name in the peers' directory.
    pub fn script(self) -> &'static str {
        match self {
            Peer::Polars => "polars_adbc.py",
            Peer::Duckdb => "duckdb_postgres.py",
        }
    }

    /// Its short name: `polars`, `DuckDB`.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Polars => "polars",
            Peer::Duckdb => "DuckDB",
        }
    }

    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Peer::Polars => "polars read_excel (calamine) + write_database (ADBC)",
            Peer::Duckdb => "DuckDB read_xlsx + postgres extension",
        }
    }

    /// A statement that fails unless the peer's packages import (and, for DuckDB, its two
    /// extension files are installed).
    fn probe(self) -> &'static str {
        match self {
            Peer::Polars => {
                "import polars, fastexcel, pyarrow, adbc_driver_postgresql.dbapi; \
                 print('polars', polars.__version__)"
            }
            Peer::Duckdb => {
                "import duckdb, importlib.metadata as m; \
                 [next(f for f in (m.files(p) or []) if f.name.endswith('.duckdb_extension')) \
                  for p in ('duckdb-ext-excel', 'duckdb-ext-postgres')]; \
                 print('duckdb', duckdb.__version__)"
            }
        }
    }
}

/// One timed run of a peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    /// Rows in the table after it exited.
    pub rows: u64,
    /// Process start to exit, in seconds.
    pub secs: f64,
    /// Rows per second over `secs`.
    pub rows_per_sec: f64,
    /// CPU seconds of the Python process (all its threads).
    pub process_cpu_secs: f64,
    /// The last line the script printed (its version and counts).
    pub said: String,
    /// CPU per component over `secs` (the peer's own CPU is in `process_cpu_secs`).
    pub cpu: CpuBreakdown,
}

/// Where and how the peers run.
#[derive(Debug, Clone, Copy)]
pub struct PeerSetup<'a> {
    /// The venv's interpreter (`target/bench-venv/bin/python`).
    pub python: &'a Path,
    /// The scripts' directory (`bench/peers`).
    pub dir: &'a Path,
    /// Where the subprocesses log.
    pub log_dir: &'a Path,
    /// The bench database's URL (the scripts connect with it).
    pub database_url: &'a str,
}

/// Checks that `peer` can run: the interpreter exists and its packages import. The version
/// line it prints, or why it cannot run.
///
/// # Errors
/// Why the peer cannot run (a missing interpreter, script or package).
pub async fn probe(setup: &PeerSetup<'_>, peer: Peer) -> anyhow::Result<String> {
    anyhow::ensure!(
        setup.python.is_file(),
        "{} is missing (`just bench-peers` installs it)",
        setup.python.display()
    );
    let script = setup.dir.join(peer.script());
    anyhow::ensure!(script.is_file(), "{} is missing", script.display());
    let name = format!("peer-probe-{peer:?}").to_lowercase();
    let finished = wait(
        Service::spawn(
            &name,
            setup.python,
            &["-c", peer.probe()],
            &[],
            setup.log_dir,
        )?,
        PROBE_DEADLINE,
    )
    .await?;
    Ok(finished.said)
}

/// Runs `peer` on `file` into `table` (which exists and is empty) with a deadline, then counts
/// the table's rows.
///
/// # Errors
/// If the script fails or misses the deadline, or the count fails.
pub async fn run(
    db: &PgPool,
    setup: &PeerSetup<'_>,
    peer: Peer,
    file: &Path,
    table: &str,
    deadline: Duration,
) -> anyhow::Result<PeerRun> {
    let script = setup.dir.join(peer.script());
    let script = script.to_str().context("the script's path is not UTF-8")?;
    let file = file.to_str().context("the file's path is not UTF-8")?;
    let name = format!("peer-{peer:?}").to_lowercase();
    let children_before = reaped_children_secs();
    let meter = CpuMeter::start(None, None);
    let started = Instant::now();
    let service = Service::spawn(
        &name,
        setup.python,
        &[script, file, setup.database_url, table],
        &[],
        setup.log_dir,
    )?;
    let finished = wait(service, deadline).await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = meter.finish();
    let process_cpu_secs = reaped_children_secs() - children_before;
    // The name is the bench's own constant (a plain identifier).
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
        .fetch_one(db)
        .await
        .with_context(|| format!("counting the rows of {table}"))?;
    let rows = u64::try_from(rows).unwrap_or(0);
    anyhow::ensure!(
        rows > 0,
        "{name} exited 0 but wrote no rows: {}",
        finished.said
    );
    Ok(PeerRun {
        rows,
        secs,
        rows_per_sec: rows as f64 / secs,
        process_cpu_secs,
        said: finished.said,
        cpu,
    })
}

struct Finished {
    said: String,
}

/// Waits for `service` to exit 0 within `deadline` (else stops it: SIGTERM, SIGKILL after 5 s).
async fn wait(mut service: Service, deadline: Duration) -> anyhow::Result<Finished> {
    let started = Instant::now();
    loop {
        if let Some(status) = service.exited() {
            // The last line first (a Python traceback ends with the error), so that a one-line
            // reason in the table says what went wrong.
            anyhow::ensure!(
                status.success(),
                "{} failed ({status}): {}\nits log ends with:\n{}",
                service.name(),
                service.log_tail(1),
                service.log_tail(6)
            );
            let said = service.log_tail(1);
            return Ok(Finished { said });
        }
        if started.elapsed() > deadline {
            let name = service.name().to_owned();
            let _ = service.stop(Duration::from_secs(5)).await;
            anyhow::bail!("{name} did not finish within {deadline:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
