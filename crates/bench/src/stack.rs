//! The bench's private burrow installation: its own database (created and migrated by
//! `burrow-api migrate`, dropped before and after), its own queue prefix (its queues and
//! exchanges deleted before and after), and the api and worker processes each bench starts
//! over them and stops again.
//!
//! Other test suites share the machine's Postgres and RabbitMQ, and one of them restarts the
//! services now and then: [`Stack::wait_for_services`] waits them out, and [`Epochs`] tells
//! whether a service restarted under a measurement, so that it can be repeated.
//!
//! [`jobs`] reads and resets the job tables directly; [`broker`] handles the queues.

use std::time::{Duration, Instant};

mod broker;
mod jobs;

use anyhow::Context as _;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::client::ApiClient;
use crate::config::BenchConfig;
use crate::process::{free_port, Service};

pub use jobs::Tally;

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

    /// `DATABASE_URL` of the bench database (the api's, the workers' and the peers').
    pub fn database_url(&self) -> &str {
        &self.database_url
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
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
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
}
