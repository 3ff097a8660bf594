//! The worker's configuration, read once from environment variables (or flags).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/burrow` | Postgres |
//! | `DATABASE_MAX_CONNECTIONS` | 8 | pool size per worker process (plus 2 connections of its own: the lock session and the completer) |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ: one URL, or a cluster's nodes separated by commas (`burrow_shared::amqp`) |
//! | `BURROW_QUEUE_PREFIX` | `burrow` | prefix of exchange and queue names |
//! | `WORKER_CONCURRENCY` | 64 | jobs run at once by this process; kinds with a `MAX_CONCURRENCY` (imports, exports: 2) are capped further |
//! | `WORKER_QUEUES` | the default queue and every queue a registered kind declares | queues this process consumes, separated by commas (`default`, `imports`): run import workers apart from small-job workers (`burrow_shared::topology`, "Queues per kind") |
//! | `WORKER_PREFETCH` | 128 | unacked messages the broker may push (`basic.qos`), per work queue (normal and high priority) |
//! | `WORKER_ID` | `{hostname}:{pid}` | recorded on each job it runs; consumer tag |
//! | `WORKER_DRAIN_TIMEOUT_SECS` | 30 | on SIGTERM, how long in-flight jobs may finish |
//! | `IMPORT_ROW_DELAY_MS` | 0 | demo pacing: sleep per imported row (keep 0 in production) |
//! | `RETRY_BASE_MS` | 1000 | delay after the first transient failure (doubles each attempt) |
//! | `RETRY_MAX_DELAY_MS` | 300000 | longest retry delay (5 min) |
//! | `RETRY_MAX_ATTEMPTS` | 5 | attempts per job, the first included; then the job is dead |
//! | `JOB_LEASE_SECS` | 600 | a `processing` job whose worker is gone this long is re-enqueued |
//! | `SWEEP_INTERVAL_SECS` | 30 | how often one replica looks for such stuck jobs |
//! | `RETENTION_DAYS` | 30 | finished jobs (and their files, rows, results, history) are deleted after this many days; 0 keeps them |
//! | `FAIR_SHARE_WINDOW` | 0 | fair sharing between tenants in this process's outbox relay: at most this many messages ready in the work queues, the rest released in turn order (`burrow_shared::engine::fair_share`); 0: off; give every api and worker the same |
//! | `FAIR_SHARE_WEIGHTS` | unset | weights per tenant for fair sharing, `tenant=weight` separated by commas (`acme=3,globex=0.5`): while tenants have backlogs, each is released messages in proportion to its weight (from 0.000001 to 1000000); tenants not named weigh 1; a bad entry stops the process at start-up; written to the database at start-up, the last replica to start wins (`burrow_shared::engine::fair_share_weights`); set it as on the api |
//! | `KIND_CAPS` | unset | cluster-wide caps, `kind=cap` separated by commas (`export_xlsx=2,webhook=5`): at most `cap` jobs of the kind run at once across all workers; written to the database at start-up, the last replica to start wins (`burrow_shared::engine::kind_caps`) |
//! | `KIND_RATE_LIMITS` | unset | cluster-wide rate limits, `kind=RATE/UNIT[:BURST]` separated by commas, `UNIT` one of `s`, `m`, `h` (`webhook=10/s,export_xlsx=100/m:20`): at most `RATE` jobs of the kind start per unit for each key the kind extracts (a webhook's host), after a burst of `BURST` (default 1); jobs over it wait; written to the database at start-up, the last replica to start wins (`burrow_shared::engine::rate_limits`) |
//! | `RECURRING_JOBS` | unset | JSON array of `{"name","cron","kind","payload"}`: jobs enqueued on cron schedules (UTC, with seconds) |
//! | `WORKER_HTTP_ADDR` | `127.0.0.1:9090` | `/healthz`, `/readyz`, `/metrics` (`0.0.0.0:9090` in a container; a taken port is a warning, not an error) |
//! | `READY_BACKLOG_THRESHOLD` | 10000 | `/readyz` says `degraded` above this many ready messages in the work queues (both priorities) |
//! | `READY_STALL_MINUTES` | 10 | `/readyz` says `degraded` when messages waited this long and this worker finished nothing |
//! | `IMPORT_MAX_UNCOMPRESSED_BYTES`, `IMPORT_MAX_COMPRESSION_RATIO`, `IMPORT_MAX_SHARED_STRINGS_BYTES` | as the api's | an upload's package limits, checked again before parsing: set them as on the api |
//! | `WEBHOOK_ALLOWED_HOSTS` | empty | hosts `webhook` jobs may POST to: comma-separated `host` (any port) or `host:port`, exact match; empty: webhook jobs fail |
//! | `WEBHOOK_SECRET` | unset | signing secret of webhook requests, `whsec_<base64 of 24 to 64 bytes>` (Standard Webhooks); unset: webhook jobs fail, nothing is sent unsigned |
//! | `WEBHOOK_TIMEOUT_SECS` | 10 | longest one webhook request may take (then retried) |
//! | `BURROW_FAILPOINT` | unset | test-only fault injection (`transient_import:NAME`) |

use std::collections::BTreeMap;

use anyhow::Context as _;
use std::net::SocketAddr;
use std::time::Duration;

use burrow_shared::engine::fair_share_weights::parse_weights;
use burrow_shared::engine::rate_limits::RateLimit;
use burrow_shared::import::ImportLimitArgs;
use burrow_shared::kinds::webhook::WebhookArgs;
use burrow_shared::readiness::{self, ReadinessRules};
use burrow_shared::retry::{self, RetryPolicy};

/// The worker daemon's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/burrow"
    )]
    pub database_url: String,
    /// Postgres pool size per worker process.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
    /// RabbitMQ URL, or the URLs of a cluster's nodes separated by commas.
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
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Queues to consume, separated by commas (e.g. `imports`); unset: the default queue and
    /// every queue of the registered kinds.
    #[arg(long, env = "WORKER_QUEUES")]
    pub queues: Option<String>,
    /// Unacked messages the broker may push to this process (`basic.qos` prefetch count) from
    /// each work queue: a worker consumes both priorities, so it may hold twice this. At least
    /// `concurrency`, so a finished job's slot is refilled without a round trip.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 128)]
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
    /// Milliseconds to wait after the first transient failure; doubles each attempt.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = retry::DEFAULT_BASE.as_millis() as u64)]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "RETRY_MAX_DELAY_MS", default_value_t = retry::DEFAULT_CAP.as_millis() as u64)]
    pub retry_max_delay_ms: u64,
    /// Attempts per job, the first included; after the last the job is dead (DLQ).
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = retry::DEFAULT_MAX_ATTEMPTS)]
    pub retry_max_attempts: u32,
    /// Seconds a `processing` job may go without a live worker before the sweeper re-enqueues it.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 600)]
    pub job_lease_secs: u64,
    /// Seconds between sweeps for stuck jobs (one replica sweeps at a time).
    #[arg(long, env = "SWEEP_INTERVAL_SECS", default_value_t = 30)]
    pub sweep_interval_secs: u64,
    /// Days after which finished jobs are deleted (0: never).
    #[arg(long, env = "RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Cluster-wide caps: `kind=cap` separated by commas, e.g. `export_xlsx=2,webhook=5`.
    #[arg(long, env = "KIND_CAPS")]
    pub kind_caps: Option<String>,
    /// Cluster-wide rate limits: `kind=RATE/UNIT[:BURST]` separated by commas, e.g.
    /// `webhook=10/s,export_xlsx=100/m:20`.
    #[arg(long, env = "KIND_RATE_LIMITS")]
    pub kind_rate_limits: Option<String>,
    /// Fair sharing between tenants in this process's outbox relay: at most this many messages
    /// ready in the work queues, the rest waiting in the outbox in turn order; 0: off.
    #[arg(long, env = "FAIR_SHARE_WINDOW", default_value_t = 0)]
    pub fair_share_window: u32,
    /// Weights per tenant for fair sharing: `tenant=weight` separated by commas, e.g.
    /// `acme=3,globex=0.5` (tenants not named weigh 1). Set it as on the api.
    #[arg(long, env = "FAIR_SHARE_WEIGHTS", default_value = "", value_parser = parse_weights)]
    pub fair_share_weights: BTreeMap<String, f64>,
    /// Recurring jobs: a JSON array of `{"name", "cron", "kind", "payload"}`; cron with seconds, UTC.
    #[arg(long, env = "RECURRING_JOBS")]
    pub recurring_jobs: Option<String>,
    /// Address of the worker's HTTP server: `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "WORKER_HTTP_ADDR", default_value = "127.0.0.1:9090")]
    pub http_addr: SocketAddr,
    /// `/readyz` says `degraded` when more messages than this are ready in the work queues
    /// (normal and high priority together).
    #[arg(long, env = "READY_BACKLOG_THRESHOLD", default_value_t = readiness::DEFAULT_BACKLOG_THRESHOLD)]
    pub ready_backlog_threshold: u64,
    /// `/readyz` says `degraded` when messages have waited this many minutes and this worker
    /// finished nothing meanwhile.
    #[arg(long, env = "READY_STALL_MINUTES", default_value_t = readiness::DEFAULT_STALL_MINUTES)]
    pub ready_stall_minutes: u64,
    /// The `IMPORT_*` package limits, as the api's: a file the api accepted is not refused here.
    #[command(flatten)]
    pub import: ImportLimitArgs,
    /// The `webhook` kind: allowed hosts, signing secret, timeout (`WEBHOOK_*`).
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// Test-only fault injection, e.g. `transient_import:NAME` (jobs of that file name always
    /// fail transiently). Never set in production.
    #[arg(long, env = "BURROW_FAILPOINT", hide = true)]
    pub failpoint: Option<String>,
}

impl WorkerConfig {
    /// The worker id: `WORKER_ID`, else `{hostname}:{pid}`.
    pub fn worker_id(&self) -> String {
        self.worker_id
            .clone()
            .unwrap_or_else(crate::builder::default_worker_id)
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(self.retry_base_ms),
            cap: Duration::from_millis(self.retry_max_delay_ms),
            max_attempts: self.retry_max_attempts.max(1),
            ..RetryPolicy::default()
        }
    }

    /// The file name of the test-only failpoint `BURROW_FAILPOINT=transient_import:NAME`.
    pub fn failpoint_transient_file(&self) -> Option<String> {
        self.failpoint
            .as_deref()?
            .strip_prefix("transient_import:")
            .map(str::to_owned)
    }

    /// The queues of `WORKER_QUEUES` ([`parse_worker_queues`]); `None` when unset.
    ///
    /// # Errors
    /// As [`parse_worker_queues`].
    pub fn worker_queues(&self) -> anyhow::Result<Option<Vec<String>>> {
        self.queues.as_deref().map(parse_worker_queues).transpose()
    }

    /// The caps of `KIND_CAPS`, kind → cap ([`parse_kind_caps`]).
    ///
    /// # Errors
    /// As [`parse_kind_caps`].
    pub fn kind_caps(&self) -> anyhow::Result<BTreeMap<String, u32>> {
        parse_kind_caps(self.kind_caps.as_deref().unwrap_or(""))
    }

    /// The limits of `KIND_RATE_LIMITS`, kind → limit ([`parse_kind_rate_limits`]).
    ///
    /// # Errors
    /// As [`parse_kind_rate_limits`].
    pub fn kind_rate_limits(&self) -> anyhow::Result<BTreeMap<String, RateLimit>> {
        parse_kind_rate_limits(self.kind_rate_limits.as_deref().unwrap_or(""))
    }

    /// When `/readyz` says `degraded`.
    pub fn readiness_rules(&self) -> ReadinessRules {
        ReadinessRules::new(self.ready_backlog_threshold, self.ready_stall_minutes)
    }

    /// The drain timeout as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// Parses `WORKER_QUEUES`: queue names separated by commas (blanks around them ignored).
///
/// # Errors
/// No name at all, or an invalid one ([`burrow_shared::topology::check_queue_name`]).
///
/// # Example
/// ```
/// use burrow_worker::config::parse_worker_queues;
/// assert_eq!(parse_worker_queues("default, imports").unwrap(), ["default", "imports"]);
/// assert!(parse_worker_queues(" , ").is_err());
/// assert!(parse_worker_queues("Imports").is_err());
/// ```
pub fn parse_worker_queues(text: &str) -> anyhow::Result<Vec<String>> {
    let queues: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|queue| !queue.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!queues.is_empty(), "WORKER_QUEUES names no queue");
    for queue in &queues {
        burrow_shared::topology::check_queue_name(queue).context("WORKER_QUEUES")?;
    }
    Ok(queues)
}

/// Parses `KIND_CAPS`: `kind=cap` entries separated by commas (blanks around them ignored;
/// an empty string is no cap).
///
/// # Errors
/// An entry without `=`, an empty kind, or a cap that is not a whole number from 1.
///
/// # Example
/// ```
/// use burrow_worker::config::parse_kind_caps;
/// let caps = parse_kind_caps("export_xlsx=2,webhook=5").unwrap();
/// assert_eq!(caps.get("export_xlsx"), Some(&2));
/// assert!(parse_kind_caps("").unwrap().is_empty());
/// assert!(parse_kind_caps("sleep").is_err());
/// ```
pub fn parse_kind_caps(text: &str) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut caps = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kind, cap) = entry
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("KIND_CAPS entry {entry:?} is not kind=cap"))?;
        let kind = kind.trim();
        anyhow::ensure!(!kind.is_empty(), "KIND_CAPS entry {entry:?} names no kind");
        let cap: u32 = cap
            .trim()
            .parse()
            .ok()
            .filter(|cap| *cap >= 1)
            .ok_or_else(|| {
                anyhow::anyhow!("KIND_CAPS entry {entry:?}: the cap must be a whole number from 1")
            })?;
        caps.insert(kind.to_owned(), cap);
    }
    Ok(caps)
}

/// Parses `KIND_RATE_LIMITS`: `kind=RATE/UNIT[:BURST]` entries separated by commas, `UNIT`
/// one of `s`, `m`, `h` (blanks around entries ignored; an empty string is no limit). `10/s`
/// is ten jobs per second per key; `100/m:20` a hundred per minute after a burst of twenty.
///
/// # Errors
/// An entry without `=`, an empty kind, or a limit that does not parse
/// ([`RateLimit`]'s `FromStr`: rate and burst whole numbers from 1).
///
/// # Example
/// ```
/// use burrow_shared::engine::rate_limits::RateLimit;
/// use burrow_worker::config::parse_kind_rate_limits;
/// let limits = parse_kind_rate_limits("webhook=10/s, export_xlsx=100/m:20").unwrap();
/// assert_eq!(limits.get("webhook"), Some(&RateLimit::per_second(10)));
/// assert_eq!(limits.get("export_xlsx"), Some(&RateLimit::per_minute(100).with_burst(20)));
/// assert!(parse_kind_rate_limits("").unwrap().is_empty());
/// assert!(parse_kind_rate_limits("webhook=10").is_err());
/// ```
pub fn parse_kind_rate_limits(text: &str) -> anyhow::Result<BTreeMap<String, RateLimit>> {
    let mut limits = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kind, limit) = entry.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("KIND_RATE_LIMITS entry {entry:?} is not kind=RATE/UNIT")
        })?;
        let kind = kind.trim();
        anyhow::ensure!(
            !kind.is_empty(),
            "KIND_RATE_LIMITS entry {entry:?} names no kind"
        );
        let limit: RateLimit = limit
            .parse()
            .map_err(|e| anyhow::anyhow!("KIND_RATE_LIMITS entry {entry:?}: {e}"))?;
        limits.insert(kind.to_owned(), limit);
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: WorkerConfig,
    }

    #[test]
    fn fair_share_weights_are_parsed_at_start_up_and_bad_ones_refused() {
        let parse = |weights: &str| {
            Cli::try_parse_from(["burrow-worker", &format!("--fair-share-weights={weights}")])
                .map(|cli| cli.config)
        };
        let config = parse("acme=3,globex=0.5").expect("valid weights");
        assert_eq!(
            config.fair_share_weights,
            BTreeMap::from([("acme".to_owned(), 3.0), ("globex".to_owned(), 0.5)])
        );
        let refused = parse("acme=-1").expect_err("a negative weight").to_string();
        assert!(refused.contains("FAIR_SHARE_WEIGHTS"), "{refused}");
        assert!(parse("=2").is_err());
    }
}
