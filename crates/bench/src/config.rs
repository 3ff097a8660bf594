//! The bench's settings, read once from flags or environment variables. The defaults are the
//! sizes the issue asks for and fit in about twelve minutes on a 2-core machine. The import rows
//! (1, 2, 7–10) take their size from the fixtures: point `BENCH_FIXTURE` and `BENCH_CSV_FIXTURE`
//! at small files (`burrow-fixtures big --rows 20000 --out …`) for a quick run.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_ADMIN_DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/postgres` | where the bench database is created and dropped |
//! | `BENCH_DATABASE` | `burrow_bench` | the bench's own database (dropped before and after) |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ |
//! | `RABBITMQ_MANAGEMENT_URL` | `http://guest:guest@127.0.0.1:15672` | listing and deleting the bench's queues; RabbitMQ's uptime |
//! | `BENCH_QUEUE_PREFIX` | `burrow-bench` | the bench's `BURROW_QUEUE_PREFIX` |
//! | `BENCH_BIN_DIR` | `target/release` | where `burrow-api` and `burrow-worker` are |
//! | `BENCH_FIXTURE` | `fixtures/big/people-1000000.xlsx` | the big workbook (`just big-fixture`) |
//! | `BENCH_CSV_FIXTURE` | `fixtures/big/people-1000000.csv` | the same people as CSV (`burrow-fixtures big --out ….csv`) |
//! | `BENCH_SMALL_FIXTURE` | `fixtures/MOCK_DATA_1.xlsx` | the workbook the retry bench uploads |
//! | `BENCH_PEERS_PYTHON` | `target/bench-venv/bin/python` | the peers' interpreter (`just bench-peers`) |
//! | `BENCH_PEERS_DIR` | `bench/peers` | the peers' scripts |
//! | `BENCH_NOOP_JOBS` | 50000 | noop jobs of the per-job overhead bench (and raw messages) |
//! | `BENCH_RATE` | 500 | offered `POST /api/jobs` per second in the latency bench |
//! | `BENCH_RATE_SECS` | 20 | seconds measured at that rate (after 2 s of warm-up) |
//! | `BENCH_RETRY_JOBS` | 3 | failing jobs whose retry gaps are measured |
//! | `BENCH_SWEEP_JOBS` | 2000 | noop jobs per point of the prefetch sweep |
//! | `BENCH_ONLY` | all | comma-separated subset: `import,csv,typed,upsert,peers,overhead,retry,sweep,workflows,limits,fairness,latency` |
//! | `BENCH_TRIES` | 2 | runs of one bench when a service restarted under it or it failed |
//! | `BENCH_DEADLINE_SECS` | 1200 | benches not started by then are skipped (and count as missed) |
//! | `BENCH_OUT` | `bench/results/latest.json` | the report |
//! | `BENCH_LOG_DIR` | `target/bench` | logs of the api and worker processes |

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The benches, in the order they run. Latency runs last: it leaves jobs no worker consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchId {
    /// 1 and 2: the big import against calamine + COPY, and the worker's peak RSS.
    Import,
    /// 7: the same rows as CSV.
    Csv,
    /// 8: a typed profile in append mode against calamine + COPY into its table.
    Typed,
    /// 9: a profile in upsert mode onto the rows already in its table.
    Upsert,
    /// 10: polars and DuckDB on the same workbook, against burrow's import.
    Peers,
    /// 3: noop jobs through the whole system against a raw lapin loop.
    Overhead,
    /// 5: retry gaps against the configured backoff.
    Retry,
    /// 6: worker concurrency × prefetch.
    Sweep,
    /// 11: a workflow batch against plain noop jobs, and a chain's time per link.
    Workflows,
    /// 12: noop jobs under a cluster-wide cap that is never reached, against none.
    Limits,
    /// 13: one tenant's jobs behind another's burst, with fair sharing, against alone.
    Fairness,
    /// 4: `POST /api/jobs` latency under an open-loop offered rate.
    Latency,
}

impl BenchId {
    /// Every bench, in running order.
    pub const ALL: [BenchId; 12] = [
        BenchId::Import,
        BenchId::Csv,
        BenchId::Typed,
        BenchId::Upsert,
        BenchId::Peers,
        BenchId::Overhead,
        BenchId::Retry,
        BenchId::Sweep,
        BenchId::Workflows,
        BenchId::Limits,
        BenchId::Fairness,
        BenchId::Latency,
    ];
}

/// `burrow-bench`'s settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "burrow-bench",
    about = "burrow's benchmarks, each next to its reference from the same run"
)]
pub struct BenchConfig {
    /// Postgres URL of a database to connect to while creating and dropping the bench's own.
    #[arg(
        long,
        env = "BENCH_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_database_url: String,
    /// The bench's own database: dropped if present, created by `burrow-api migrate`, dropped
    /// at the end. Lowercase letters, digits and `_` only.
    #[arg(long, env = "BENCH_DATABASE", default_value = "burrow_bench")]
    pub database: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// RabbitMQ's management api, with credentials.
    #[arg(
        long,
        env = "RABBITMQ_MANAGEMENT_URL",
        default_value = "http://guest:guest@127.0.0.1:15672"
    )]
    pub management_url: String,
    /// The bench's `BURROW_QUEUE_PREFIX`; its queues and exchanges are deleted before and after.
    #[arg(long, env = "BENCH_QUEUE_PREFIX", default_value = "burrow-bench")]
    pub queue_prefix: String,
    /// Directory of the `burrow-api` and `burrow-worker` release binaries.
    #[arg(long, env = "BENCH_BIN_DIR", default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The big people workbook of the import bench.
    #[arg(
        long,
        env = "BENCH_FIXTURE",
        default_value = "fixtures/big/people-1000000.xlsx"
    )]
    pub fixture: PathBuf,
    /// The same people as [`BenchConfig::fixture`], as CSV (row 7).
    #[arg(
        long,
        env = "BENCH_CSV_FIXTURE",
        default_value = "fixtures/big/people-1000000.csv"
    )]
    pub csv_fixture: PathBuf,
    /// The Python interpreter of the peers' venv (row 10; `just bench-peers` makes it).
    #[arg(
        long,
        env = "BENCH_PEERS_PYTHON",
        default_value = "target/bench-venv/bin/python"
    )]
    pub peers_python: PathBuf,
    /// The directory of the peers' scripts (row 10).
    #[arg(long, env = "BENCH_PEERS_DIR", default_value = "bench/peers")]
    pub peers_dir: PathBuf,
    /// A small valid workbook, uploaded (as `flaky.xlsx`) by the retry bench.
    #[arg(
        long,
        env = "BENCH_SMALL_FIXTURE",
        default_value = "fixtures/MOCK_DATA_1.xlsx"
    )]
    pub small_fixture: PathBuf,
    /// Noop jobs through the whole system, and messages through the raw lapin loop.
    #[arg(long, env = "BENCH_NOOP_JOBS", default_value_t = 50_000)]
    pub noop_jobs: u64,
    /// Offered `POST /api/jobs` requests per second in the latency bench.
    #[arg(long, env = "BENCH_RATE", default_value_t = 500)]
    pub rate: u32,
    /// Seconds measured at that rate.
    #[arg(long, env = "BENCH_RATE_SECS", default_value_t = 20)]
    pub rate_secs: u64,
    /// Jobs that fail on every attempt, whose retry gaps are measured.
    #[arg(long, env = "BENCH_RETRY_JOBS", default_value_t = 3)]
    pub retry_jobs: usize,
    /// Noop jobs per point of the concurrency × prefetch sweep.
    #[arg(long, env = "BENCH_SWEEP_JOBS", default_value_t = 2000)]
    pub sweep_jobs: u64,
    /// Run only these benches (comma-separated).
    #[arg(long, env = "BENCH_ONLY", value_enum, value_delimiter = ',')]
    pub only: Vec<BenchId>,
    /// Runs of one bench when a service restarted under it or it failed.
    #[arg(long, env = "BENCH_TRIES", default_value_t = 2)]
    pub tries: u32,
    /// Benches not started this many seconds after the start are skipped.
    #[arg(long, env = "BENCH_DEADLINE_SECS", default_value_t = 1200)]
    pub deadline_secs: u64,
    /// Where the report goes (JSON).
    #[arg(long, env = "BENCH_OUT", default_value = "bench/results/latest.json")]
    pub out: PathBuf,
    /// Where the api and worker processes log.
    #[arg(long, env = "BENCH_LOG_DIR", default_value = "target/bench")]
    pub log_dir: PathBuf,
}

impl BenchConfig {
    /// The benches to run, in running order.
    pub fn selected(&self) -> Vec<BenchId> {
        BenchId::ALL
            .into_iter()
            .filter(|id| self.only.is_empty() || self.only.contains(id))
            .collect()
    }

    /// The overall deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }

    /// `postgres://…/{database}`: the admin URL with the bench database's name.
    ///
    /// # Errors
    /// If the admin URL is not a URL or the database name is not a plain identifier.
    pub fn database_url(&self) -> anyhow::Result<String> {
        anyhow::ensure!(
            !self.database.is_empty()
                && self
                    .database
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "BENCH_DATABASE must be lowercase letters, digits and _, not {:?}",
            self.database
        );
        let mut url = reqwest::Url::parse(&self.admin_database_url)
            .map_err(|e| anyhow::anyhow!("BENCH_ADMIN_DATABASE_URL: {e}"))?;
        url.set_path(&self.database);
        Ok(url.to_string())
    }
}
