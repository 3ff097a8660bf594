//! The worker's configuration, read once from environment variables (or flags).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/burrow` | Postgres |
//! | `DATABASE_MAX_CONNECTIONS` | 5 | pool size per worker process |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ |
//! | `BURROW_QUEUE_PREFIX` | `burrow` | prefix of exchange and queue names |
//! | `WORKER_CONCURRENCY` | 2 | jobs run at once by this process |
//! | `WORKER_PREFETCH` | 4 | unacked messages the broker may push (`basic.qos`) |
//! | `WORKER_ID` | `{hostname}:{pid}` | recorded on each job it runs; consumer tag |
//! | `WORKER_DRAIN_TIMEOUT_SECS` | 30 | on SIGTERM, how long in-flight jobs may finish |
//! | `IMPORT_ROW_DELAY_MS` | 0 | demo pacing: sleep per imported row (keep 0 in production) |

use std::time::Duration;

use clap::Parser;

/// The worker daemon's settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "burrow-worker",
    about = "burrow's worker: consumes jobs from RabbitMQ and runs them"
)]
pub struct WorkerConfig {
    /// Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/burrow"
    )]
    pub database_url: String,
    /// Postgres pool size per worker process.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 5)]
    pub database_max_connections: u32,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix of exchange and queue names.
    #[arg(long, env = "BURROW_QUEUE_PREFIX", default_value = burrow_shared::topology::DEFAULT_PREFIX)]
    pub queue_prefix: String,
    /// Jobs run at once by this process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Unacked messages the broker may push to this process (`basic.qos` prefetch count). At
    /// least `concurrency`, so a finished job's slot is refilled without a round trip.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 4)]
    pub prefetch: u16,
    /// Name recorded on each job this process runs; defaults to `{hostname}:{pid}`.
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// On SIGTERM/SIGINT, seconds in-flight jobs may take to finish before the channel closes
    /// and the broker requeues them.
    #[arg(long, env = "WORKER_DRAIN_TIMEOUT_SECS", default_value_t = 30)]
    pub drain_timeout_secs: u64,
    /// Demo pacing: milliseconds to sleep per imported row. Keep 0 in production.
    #[arg(long, env = "IMPORT_ROW_DELAY_MS", default_value_t = 0)]
    pub import_row_delay_ms: u64,
}

impl WorkerConfig {
    /// The worker id: `WORKER_ID`, else `{hostname}:{pid}`.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "worker".to_owned());
            format!("{host}:{}", std::process::id())
        })
    }

    /// The drain timeout as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}
