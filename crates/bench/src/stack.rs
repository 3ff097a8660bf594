//! The bench's private burrow installation: its own database (created and migrated by
//! `burrow-api migrate`, dropped before and after), its own queue prefix (its queues and
//! exchanges deleted before and after), and the api and worker processes each bench starts
//! over them and stops again.
//!
//! Other test suites share the machine's Postgres and RabbitMQ, and one of them restarts the
//! services now and then: [`Stack::wait_for_services`] waits them out, and [`Epochs`] tells
//! whether a service restarted under a measurement, so that it can be repeated.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use crate::client::ApiClient;
use crate::config::BenchConfig;
use crate::process::{free_port, Service};

/// How long a service (or Postgres and RabbitMQ) may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a stopped api or worker may take to exit before SIGKILL (workers drain first).
pub const STOP_GRACE: Duration = Duration::from_secs(20);
/// A worker's drain timeout in the bench: nothing it runs takes longer.
const WORKER_DRAIN_SECS: &str = "5";
/// The api's upload limit in the bench: the 1,000,000-row workbook is about 42 MiB.
pub const UPLOAD_MAX_BYTES: u64 = 200 * 1024 * 1024;

/// The database, the queue names and the binaries of one bench run.
#[derive(Debug)]
pub struct Stack {
    cfg: BenchConfig,
    /// `DATABASE_URL` of the api and workers.
    database_url: String,
    /// A small pool on the bench database, for reading job rows directly.
    pub db: PgPool,
    /// For readiness probes and RabbitMQ's management api.
    http: reqwest::Client,
}

/// A running api and a client for it.
#[derive(Debug)]
pub struct Api {
    /// The process.
    pub service: Service,
    /// A client for its HTTP address.
    pub client: ApiClient,
}

impl Api {
    /// Stops the process (SIGTERM, then SIGKILL after [`STOP_GRACE`]).
    ///
    /// # Errors
    /// If waiting for it fails.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.service.stop(STOP_GRACE).await.map(drop)
    }
}

/// When Postgres and RabbitMQ last started (Unix seconds), to notice a restart.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Epochs {
    /// `pg_postmaster_start_time()`.
    pub postgres: Option<f64>,
    /// Now less the node's uptime (management api).
    pub rabbitmq: Option<f64>,
}

impl Epochs {
    /// What restarted between `self` and `later` (more than 5 s apart: RabbitMQ's uptime is
    /// read against this clock and drifts a little).
    pub fn restarts_until(&self, later: &Epochs) -> Vec<&'static str> {
        let moved = |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(a), Some(b)) if (b - a).abs() > 5.0);
        let mut restarted = Vec::new();
        if moved(self.postgres, later.postgres) {
            restarted.push("postgres restarted");
        }
        if moved(self.rabbitmq, later.rabbitmq) {
            restarted.push("rabbitmq restarted");
        }
        restarted
    }
}

impl Stack {
    /// Waits for Postgres and RabbitMQ, removes what an earlier run may have left (database,
    /// queues, exchanges), then creates and migrates the database with `burrow-api migrate`.
    ///
    /// # Errors
    /// If a service stays unreachable or the migration fails three times.
    pub async fn create(cfg: &BenchConfig) -> anyhow::Result<Stack> {
        for binary in ["burrow-api", "burrow-worker"] {
            let path = cfg.bin_dir.join(binary);
            anyhow::ensure!(
                path.is_file(),
                "{} is missing: run `cargo build --release --bins` first",
                path.display()
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let database_url = cfg.database_url()?;
        let stack = Stack {
            cfg: cfg.clone(),
            db: PgPoolOptions::new()
                .max_connections(4)
                .connect_lazy(&database_url)?,
            database_url,
            http,
        };
        stack.wait_for_services().await?;
        stack.drop_database().await?;
        stack.delete_broker_objects().await;
        let mut tries = 0;
        loop {
            tries += 1;
            match stack.migrate().await {
                Ok(()) => break,
                Err(e) if tries < 3 => {
                    eprintln!("  migrate failed ({e:#}); waiting for the services and retrying");
                    stack.wait_for_services().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(stack)
    }

    /// Drops the database and deletes the bench's queues and exchanges.
    ///
    /// # Errors
    /// If the database cannot be dropped.
    pub async fn destroy(self) -> anyhow::Result<()> {
        self.db.close().await;
        self.delete_broker_objects().await;
        self.drop_database().await
    }

    /// The settings of this run.
    pub fn config(&self) -> &BenchConfig {
        &self.cfg
    }

    /// The queue prefix.
    pub fn prefix(&self) -> &str {
        &self.cfg.queue_prefix
    }

    /// Waits (up to 90 s) until Postgres and RabbitMQ accept connections.
    ///
    /// # Errors
    /// If one of them is still unreachable then.
    pub async fn wait_for_services(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let postgres = PgConnection::connect(&self.cfg.admin_database_url).await;
            let rabbitmq =
                Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await;
            match (postgres, rabbitmq) {
                (Ok(pg), Ok(amqp)) => {
                    let _ = pg.close().await;
                    let _ = amqp.close(200, "probe".into()).await;
                    return Ok(());
                }
                (pg, amqp) => {
                    if started.elapsed() > READY_TIMEOUT {
                        anyhow::bail!(
                            "services unreachable for {READY_TIMEOUT:?}: postgres {}, rabbitmq {}",
                            pg.err().map_or("up".to_owned(), |e| e.to_string()),
                            amqp.err().map_or("up".to_owned(), |e| e.to_string()),
                        );
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// When Postgres and RabbitMQ last started (each `None` when it cannot be asked).
    pub async fn epochs(&self) -> Epochs {
        let postgres = sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM pg_postmaster_start_time())::float8",
        )
        .fetch_one(&self.db)
        .await
        .ok();
        let rabbitmq = self.management("/api/nodes").await.and_then(|nodes| {
            let uptime_ms = nodes.as_array()?.first()?["uptime"].as_f64()?;
            let now = chrono::Utc::now().timestamp_millis() as f64;
            Some((now - uptime_ms) / 1000.0)
        });
        Epochs { postgres, rabbitmq }
    }

    /// RabbitMQ's version, from the management api.
    pub async fn rabbitmq_version(&self) -> Option<String> {
        let overview = self.management("/api/overview").await?;
        overview["rabbitmq_version"].as_str().map(str::to_owned)
    }

    /// Starts an api (`name` names its log) with `extra` environment and waits until it is
    /// ready and its relay reaches RabbitMQ.
    ///
    /// # Errors
    /// If it does not start or become ready within 90 s.
    pub async fn start_api(&self, name: &str, extra: &[(&str, String)]) -> anyhow::Result<Api> {
        let port = free_port()?;
        let mut env = self.common_env();
        env.push(("BIND_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("AUTH_MODE".into(), "off".into()));
        env.push(("UPLOAD_MAX_BYTES".into(), UPLOAD_MAX_BYTES.to_string()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut service = Service::spawn(
            name,
            &self.cfg.bin_dir.join("burrow-api"),
            &["serve"],
            &env,
            &self.cfg.log_dir,
        )?;
        let url = format!("http://127.0.0.1:{port}");
        self.wait_ready(&mut service, &format!("{url}/readyz"), true)
            .await?;
        Ok(Api {
            service,
            client: ApiClient::new(&url)?,
        })
    }

    /// Starts a worker (`name` is its `WORKER_ID` and names its log) with `extra` environment
    /// (e.g. `WORKER_CONCURRENCY`) and waits until its consumer is connected.
    ///
    /// # Errors
    /// If it does not start or become ready within 90 s.
    pub async fn start_worker(
        &self,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let port = free_port()?;
        let mut env = self.common_env();
        env.push(("WORKER_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("WORKER_ID".into(), name.to_owned()));
        env.push(("WORKER_DRAIN_TIMEOUT_SECS".into(), WORKER_DRAIN_SECS.into()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut service = Service::spawn(
            name,
            &self.cfg.bin_dir.join("burrow-worker"),
            &["run"],
            &env,
            &self.cfg.log_dir,
        )?;
        self.wait_ready(
            &mut service,
            &format!("http://127.0.0.1:{port}/readyz"),
            false,
        )
        .await?;
        Ok(service)
    }

    fn common_env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.database_url.clone()),
            ("AMQP_URL".into(), self.cfg.amqp_url.clone()),
            ("BURROW_QUEUE_PREFIX".into(), self.cfg.queue_prefix.clone()),
            ("RUST_LOG".into(), "info".into()),
        ]
    }

    /// Polls `url` until it answers 200 (for the api: with RabbitMQ `up`).
    async fn wait_ready(
        &self,
        service: &mut Service,
        url: &str,
        need_broker: bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            service.ensure_running()?;
            if let Ok(response) = self.http.get(url).send().await {
                if response.status().is_success() {
                    let body: Value = response.json().await.unwrap_or_default();
                    if !need_broker || body["rabbitmq"].as_str().is_none_or(|r| r == "up") {
                        return Ok(());
                    }
                }
            }
            anyhow::ensure!(
                started.elapsed() < READY_TIMEOUT,
                "{} not ready at {url} within {READY_TIMEOUT:?}; its log ends with:\n{}",
                service.name(),
                service.log_tail(12)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `burrow-api migrate` on the bench database (which it creates).
    async fn migrate(&self) -> anyhow::Result<()> {
        let mut migrate = Service::spawn(
            "migrate",
            &self.cfg.bin_dir.join("burrow-api"),
            &["migrate"],
            &self.common_env(),
            &self.cfg.log_dir,
        )?;
        let started = Instant::now();
        loop {
            if let Some(status) = migrate.exited() {
                anyhow::ensure!(
                    status.success(),
                    "burrow-api migrate failed ({status}):\n{}",
                    migrate.log_tail(12)
                );
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < READY_TIMEOUT,
                "burrow-api migrate did not finish within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn drop_database(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.cfg.admin_database_url)
            .await
            .context("connecting to BENCH_ADMIN_DATABASE_URL")?;
        // The name is checked to be a plain identifier (BenchConfig::database_url).
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.cfg.database
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping the database {}", self.cfg.database))?;
        let _ = admin.close().await;
        Ok(())
    }

    /// Deletes every queue and exchange named `{prefix}.…`: through the management api, else
    /// (plugin off) the names burrow and the raw reference use. Best effort: logs failures.
    async fn delete_broker_objects(&self) {
        let prefix = format!("{}.", self.cfg.queue_prefix);
        let mut listed = false;
        for kind in ["queues", "exchanges"] {
            let Some(items) = self.management(&format!("/api/{kind}/%2f")).await else {
                continue;
            };
            listed = true;
            for item in items.as_array().into_iter().flatten() {
                let Some(name) = item["name"].as_str().filter(|n| n.starts_with(&prefix)) else {
                    continue;
                };
                let path = format!("/api/{kind}/%2f/{}", encode_path_segment(name));
                if let Err(e) = self.management_delete(&path).await {
                    eprintln!("  could not delete {kind} {name}: {e:#}");
                }
            }
        }
        if !listed {
            if let Err(e) = self.delete_known_queues().await {
                eprintln!("  could not delete the bench's queues: {e:#}");
            }
        }
    }

    /// The queues burrow declares under the prefix for the retry policies the benches use.
    async fn delete_known_queues(&self) -> anyhow::Result<()> {
        let topology = burrow_shared::Topology::with_prefix(&self.cfg.queue_prefix);
        let mut queues = vec![
            topology.work_queue.clone(),
            topology.dead_letter_queue.clone(),
            self.raw_queue(),
        ];
        for ms in [500, 1000, 2000, 4000, 8000] {
            queues.push(topology.delay_queue(Duration::from_millis(ms)));
        }
        let connection =
            Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        let _ = connection.close(200, "cleaned up".into()).await;
        Ok(())
    }

    /// The queue of the raw lapin reference: `{prefix}.raw`.
    pub fn raw_queue(&self) -> String {
        format!("{}.raw", self.cfg.queue_prefix)
    }

    /// Ready messages in the work queue.
    ///
    /// # Errors
    /// If RabbitMQ cannot be asked.
    pub async fn work_queue_depth(&self) -> anyhow::Result<u32> {
        let topology = burrow_shared::Topology::with_prefix(&self.cfg.queue_prefix);
        let connection =
            Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let queue = channel
            .queue_declare(
                topology.work_queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = connection.close(200, "asked".into()).await;
        Ok(queue.message_count())
    }

    /// Removes the ready messages of the work queue (jobs no worker should run any more).
    ///
    /// # Errors
    /// If RabbitMQ cannot be asked.
    pub async fn purge_work_queue(&self) -> anyhow::Result<u32> {
        let topology = burrow_shared::Topology::with_prefix(&self.cfg.queue_prefix);
        let connection =
            Connection::connect(&self.cfg.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let purged = channel
            .queue_purge(
                topology.work_queue.as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        let _ = connection.close(200, "purged".into()).await;
        Ok(purged)
    }

    /// Transactions committed in the bench database so far (`pg_stat_database.xact_commit`,
    /// read-only ones included). Backends report theirs when they exit or at most every
    /// second while busy, so read it after stopping the processes whose work it should count.
    ///
    /// # Errors
    /// The database error.
    pub async fn transactions(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&self.db)
        .await?)
    }

    /// Outbox rows not yet published (all tags).
    ///
    /// # Errors
    /// The database error.
    pub async fn outbox_pending(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Waits until the relay published every outbox row (up to `timeout`).
    ///
    /// # Errors
    /// If rows are still pending then.
    pub async fn wait_outbox_drained(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let pending = self.outbox_pending().await?;
            if pending == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{pending} outbox rows still unpublished after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The jobs owned by `tag`, counted by outcome.
    ///
    /// # Errors
    /// The database error.
    pub async fn tally(&self, tag: &str) -> anyhow::Result<Tally> {
        let (succeeded, ended_badly, total, first_started, last_completed) = sqlx::query_as::<
            _,
            (
                i64,
                i64,
                i64,
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
            ),
        >(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
                        count(*) FILTER (WHERE status IN ('failed', 'dead', 'cancelled')), \
                        count(*), min(started_at), max(completed_at) \
                 FROM jobs WHERE user_id = $1",
        )
        .bind(tag)
        .fetch_one(&self.db)
        .await?;
        Ok(Tally {
            succeeded: u64::try_from(succeeded).unwrap_or(0),
            ended_badly: u64::try_from(ended_badly).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
            first_started,
            last_completed,
        })
    }

    /// Empties the job tables (`TRUNCATE jobs CASCADE`: files, rows, results, history, outbox),
    /// so each bench starts on empty tables. Call it while no worker runs.
    ///
    /// (Not `DELETE FROM jobs`: its cascade to `outbox` scans the whole outbox once per job,
    /// as `outbox.job_id` has no index; 50,000 jobs take minutes.)
    ///
    /// # Errors
    /// The database error.
    pub async fn reset_jobs(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE jobs CASCADE")
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Empties `imported_rows` and forces a checkpoint, so each import starts on an empty table
    /// with no checkpoint of the previous one's WAL pending.
    ///
    /// # Errors
    /// The database error.
    pub async fn reset_imported_rows(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE imported_rows")
            .execute(&self.db)
            .await?;
        sqlx::query("CHECKPOINT").execute(&self.db).await?;
        Ok(())
    }

    /// Inserts a `processing` import job row for the raw reference's rows to belong to
    /// (`imported_rows.job_id` references `jobs`).
    ///
    /// # Errors
    /// The database error.
    pub async fn insert_placeholder_job(&self, tag: &str) -> anyhow::Result<Uuid> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, kind, user_id, status, correlation_id) \
             VALUES ($1, 'import_xlsx', $2, 'processing', $3)",
        )
        .bind(id)
        .bind(tag)
        .bind(Uuid::new_v4())
        .execute(&self.db)
        .await?;
        Ok(id)
    }

    async fn management(&self, path: &str) -> Option<Value> {
        let (base, user, password) = self.management_base()?;
        let response = self
            .http
            .get(format!("{base}{path}"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn management_delete(&self, path: &str) -> anyhow::Result<()> {
        let (base, user, password) = self
            .management_base()
            .context("RABBITMQ_MANAGEMENT_URL is not a URL")?;
        let response = self
            .http
            .delete(format!("{base}{path}"))
            .basic_auth(user, Some(password))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND,
            "DELETE {path} answered {}",
            response.status()
        );
        Ok(())
    }

    /// `(scheme://host:port, user, password)` of the management api.
    fn management_base(&self) -> Option<(String, String, String)> {
        let url = reqwest::Url::parse(&self.cfg.management_url).ok()?;
        let user = match url.username() {
            "" => "guest".to_owned(),
            user => user.to_owned(),
        };
        let password = url.password().unwrap_or("guest").to_owned();
        let base = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str()?,
            url.port_or_known_default()?
        );
        Some((base, user, password))
    }
}

/// `(WORKER_CONCURRENCY, WORKER_PREFETCH)` as a running worker reports them in its log line
/// `consuming … concurrency=2 prefetch=4` (so the bench names the real defaults).
pub fn worker_settings(worker: &Service) -> Option<(usize, u16)> {
    settings_from_log(&worker.log_text())
}

fn settings_from_log(log: &str) -> Option<(usize, u16)> {
    let line = log.lines().find(|l| l.contains("consuming"))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .and_then(|v| {
                v.trim_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((
        usize::try_from(field("concurrency=")?).ok()?,
        u16::try_from(field("prefetch=")?).ok()?,
    ))
}

/// Counts of a tag's jobs, and the first start and last completion among them.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Jobs that ended `succeeded`.
    pub succeeded: u64,
    /// Jobs that ended `failed`, `dead` or `cancelled`.
    pub ended_badly: u64,
    /// All the tag's jobs.
    pub total: u64,
    /// The earliest `started_at`.
    pub first_started: Option<chrono::DateTime<chrono::Utc>>,
    /// The latest `completed_at`.
    pub last_completed: Option<chrono::DateTime<chrono::Utc>>,
}

/// Percent-encodes a queue or exchange name for a management api path.
fn encode_path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_settings_come_from_its_consuming_line() {
        let log = "2026-11-21T06:00:00Z  INFO burrow_worker::consumer: consuming \
                   queue=burrow-bench.jobs.work concurrency=2 prefetch=4 worker=w";
        assert_eq!(settings_from_log(log), Some((2, 4)));
        assert_eq!(settings_from_log("nothing here"), None);
    }

    #[test]
    fn queue_names_are_percent_encoded_for_the_management_api() {
        assert_eq!(
            encode_path_segment("burrow-bench.jobs.delay.1s"),
            "burrow-bench.jobs.delay.1s"
        );
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
    }
}
