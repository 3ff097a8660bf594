//! Isolation for integration tests against the real Postgres and RabbitMQ on localhost.
//!
//! Each [`TestEnv`] gets its own database (migrated) and its own exchange and queue names
//! (a unique prefix), and drops both when it goes out of scope, also when the test panics.
//!
//! Servers come from `BURROW_TEST_DATABASE_URL` (a URL of the server's maintenance database,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and `BURROW_TEST_AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use uuid::Uuid;

use crate::retry::RetryPolicy;
use crate::topology::{Lane, Topology};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// One test's private database and broker names.
pub struct TestEnv {
    /// URL of the test's own database.
    pub database_url: String,
    /// A pool on it (migrated).
    pub db: PgPool,
    /// The broker URL.
    pub amqp_url: String,
    /// A pool of broker connections.
    pub amqp: deadpool_lapin::Pool,
    /// The test's own exchange and queue names, declared.
    pub topology: Topology,
    admin: PgConnectOptions,
    db_name: String,
    /// Delay queues to delete at the end (those of the default retry policy, and any tracked).
    delays: Mutex<Vec<Duration>>,
}

impl TestEnv {
    /// Creates and migrates a fresh database and declares a fresh topology.
    ///
    /// # Errors
    /// If Postgres or RabbitMQ are unreachable.
    pub async fn new() -> anyhow::Result<TestEnv> {
        let admin_url = std::env::var("BURROW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let amqp_url =
            std::env::var("BURROW_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("burrow_test_{id}");

        let admin: PgConnectOptions = admin_url.parse().context("BURROW_TEST_DATABASE_URL")?;
        let mut conn = admin.connect().await.context("connecting to Postgres")?;
        sqlx::query(&format!("CREATE DATABASE \"{db_name}\""))
            .execute(&mut conn)
            .await?;
        let options = admin.clone().database(&db_name);
        let database_url = options.to_url_lossy().to_string();
        let db = crate::db::connect(&database_url, 10).await?;
        crate::db::migrate(&db).await?;

        let topology = Topology::with_prefix(&format!("test-{id}"));
        let amqp = crate::amqp::amqp_pool(&amqp_url, 4)?;
        let env = TestEnv {
            database_url,
            db,
            amqp_url,
            amqp,
            topology,
            admin,
            db_name,
            delays: Mutex::new(RetryPolicy::default().delays()),
        };
        let channel = env.channel().await?;
        env.topology
            .declare(&channel)
            .await
            .context("declaring the test topology")?;
        Ok(env)
    }

    /// A fresh channel on a pooled connection.
    ///
    /// # Errors
    /// If the broker is unreachable.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let connection = self.amqp.get().await.context("connecting to RabbitMQ")?;
        Ok(connection.create_channel().await?)
    }

    /// Deletes these delay queues at the end too (for workers with a custom retry policy).
    pub fn track_delays(&self, delays: &[Duration]) {
        if let Ok(mut tracked) = self.delays.lock() {
            tracked.extend_from_slice(delays);
        }
    }

    /// Messages ready in `queue` (a passive `queue.declare`).
    ///
    /// # Errors
    /// If the queue does not exist or the broker is unreachable.
    pub async fn ready_messages(&self, queue: &str) -> anyhow::Result<u32> {
        let channel = self.channel().await?;
        let queue = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(queue.message_count())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let db_name = self.db_name.clone();
        let amqp_url = self.amqp_url.clone();
        let topology = self.topology.clone();
        let mut queues = vec![
            topology.work_queue.clone(),
            topology.high_queue.clone(),
            topology.dead_letter_queue.clone(),
        ];
        if let Ok(delays) = self.delays.lock() {
            for lane in Lane::ALL {
                queues.extend(delays.iter().map(|d| topology.delay_queue_for(lane, *d)));
            }
        }
        queues.sort();
        queues.dedup();
        // Async clean-up cannot run in Drop; a short-lived runtime on its own thread can, even
        // while the test's runtime is unwinding from a panic.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut conn = admin.connect().await?;
                sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
                ))
                .execute(&mut conn)
                .await?;
                let broker =
                    Connection::connect(&amqp_url, ConnectionProperties::default()).await?;
                let channel = broker.create_channel().await?;
                for queue in &queues {
                    channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await?;
                }
                let exchanges = [
                    &topology.exchange,
                    &topology.dead_letter_exchange,
                    &topology.retry_exchange,
                ];
                for exchange in exchanges {
                    channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await?;
                }
                broker.close(200, "test done".into()).await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("test clean-up failed: {e:#}");
        }
    }
}
