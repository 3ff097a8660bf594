//! Isolation for integration tests against the real Postgres and RabbitMQ on localhost.
//!
//! Each [`TestEnv`] gets its own database (migrated) and its own exchange and queue names
//! (a unique prefix), and drops both when it goes out of scope, also when the test panics.
//! Tests wait with [`eventually`] or [`TestEnv::wait_for_job`]: a poll with a deadline, never a
//! sleep taken as proof. `burrow_api::testing` builds an api and a client on top of this.
//!
//! Servers come from `BURROW_TEST_DATABASE_URL` (a URL of the server's maintenance database,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and `BURROW_TEST_AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use uuid::Uuid;

use crate::jobs::{self, JobRow};
use crate::people_sheet::Person;
use crate::retry::RetryPolicy;
use crate::topology::{Lane, Topology, DEFAULT_QUEUE};

pub mod batch_checks;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long a test waits for an asynchronous effect (a relay, a worker, the broker) before
/// failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `probe` every 50 ms until it returns `Some`, panicking after [`DEADLINE`] with `what`.
///
/// # Panics
/// When the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The committed bytes of `fixtures/{name}` at the workspace's root.
///
/// # Panics
/// If the file cannot be read.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A job's rows in `imported_rows` in spreadsheet order (the header is row 1), as people;
/// a NULL column reads as empty.
///
/// # Panics
/// If the query fails.
pub async fn imported_people(db: &PgPool, id: Uuid) -> Vec<(i32, Person)> {
    type Columns = (
        i32,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Columns> = sqlx::query_as(
        "SELECT row_number, id, first_name, last_name, email, gender, ip_address \
         FROM imported_rows WHERE job_id = $1 ORDER BY row_number",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .expect("imported rows");
    rows.into_iter()
        .map(|(row, id, first, last, email, gender, ip)| {
            let person = Person {
                id,
                first_name: first.unwrap_or_default(),
                last_name: last.unwrap_or_default(),
                email: email.unwrap_or_default(),
                gender: gender.unwrap_or_default(),
                ip_address: ip.unwrap_or_default(),
            };
            (row, person)
        })
        .collect()
}

/// One test's private database and broker names.
pub struct TestEnv {
    /// URL of the test's own database.
    pub database_url: String,
    /// A pool on it (migrated).
    pub db: PgPool,
    /// The broker URL.
    pub amqp_url: String,
    /// A pool of broker connections.
    pub amqp: crate::amqp::AmqpPool,
    /// The test's own exchange and queue names, declared.
    pub topology: Topology,
    admin: PgConnectOptions,
    db_name: String,
    /// Delay queues to delete at the end (those of the default retry policy, and any tracked).
    delays: Mutex<Vec<Duration>>,
    /// Named queues ("Queues per kind") whose work and delay queues are deleted at the end.
    queues: Mutex<Vec<String>>,
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

        // The shipped kinds' queues (imports) too, as the api declares them.
        let shipped = crate::kinds::shipped(Default::default(), Default::default());
        let topology =
            Topology::with_prefix(&format!("test-{id}")).with_queues(shipped.queues())?;
        let amqp = crate::amqp::amqp_pool(&amqp_url, 4)?;
        let env = TestEnv {
            database_url,
            db,
            amqp_url,
            amqp,
            topology,
            admin,
            db_name,
            delays: Mutex::new(
                RetryPolicy::default()
                    .delays()
                    .into_iter()
                    .chain(crate::park::PARK_STEPS)
                    .collect(),
            ),
            queues: Mutex::new(shipped.queues().into_iter().map(str::to_owned).collect()),
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

    /// Deletes the work and delay queues of these named queues at the end too (for workers
    /// consuming other queues than the default one).
    pub fn track_queues(&self, queues: &[String]) {
        if let Ok(mut tracked) = self.queues.lock() {
            tracked.extend_from_slice(queues);
        }
    }

    /// Messages ready in `queue` (a passive `queue.declare`).
    ///
    /// # Errors
    /// If the queue does not exist or the broker is unreachable.
    pub async fn ready_messages(&self, queue: &str) -> anyhow::Result<u32> {
        let channel = self.channel().await?;
        Ok(crate::engine::queue_counts::queue_counts(&channel, queue)
            .await?
            .ready)
    }
}

impl TestEnv {
    /// Waits until exactly `n` sessions of the test's database wait for a lock (a row lock, an
    /// advisory lock), polling `pg_stat_activity` every 5 ms: the barrier of a staged race,
    /// which proves the contender reached the lock before the test lets it go.
    ///
    /// # Panics
    /// After [`DEADLINE`], naming how many sessions wait; or if the database fails.
    pub async fn until_sessions_wait_for_locks(&self, n: i64) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&self.db)
            .await
            .expect("pg_stat_activity");
            if blocked == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{blocked} sessions wait for a lock, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls (every 20 ms) until `probe` holds for job `id`, and returns the job.
    ///
    /// # Panics
    /// After [`DEADLINE`], naming `what`, the job's status and its history; or if the job
    /// does not exist.
    pub async fn wait_for_job(
        &self,
        id: Uuid,
        what: &str,
        probe: impl Fn(&JobRow) -> bool,
    ) -> JobRow {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let job = jobs::find_job(&self.db, id)
                .await
                .expect("query")
                .expect("job exists");
            if probe(&job) {
                return job;
            }
            if tokio::time::Instant::now() >= deadline {
                let events = jobs::list_events(&self.db, id).await.unwrap_or_default();
                panic!(
                    "job {id}: waited for {what}, still {}; history {events:?}",
                    job.status
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until job `id` has ended (a terminal status), as [`TestEnv::wait_for_job`].
    pub async fn wait_until_ended(&self, id: Uuid) -> JobRow {
        self.wait_for_job(id, "the job to end", |job| job.status.is_terminal())
            .await
    }

    /// Rows in `table` (a name the test chose, never input).
    ///
    /// # Panics
    /// If the query fails.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// Stores `job` (row, event, file) without its message, for tests that publish a message
    /// by hand (e.g. to show the worker does not trust what the api checked): the outbox row
    /// [`crate::enqueue`] writes is removed in the same transaction, so no relay publishes it.
    ///
    /// # Errors
    /// The database error.
    pub async fn insert_job(&self, job: crate::NewJob) -> anyhow::Result<crate::jobs::JobRow> {
        let mut tx = self.db.begin().await?;
        let stored = crate::enqueue(&mut tx, job).await?;
        sqlx::query("DELETE FROM outbox WHERE job_id = $1")
            .bind(stored.job.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored.job)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let db_name = self.db_name.clone();
        let amqp_url = self.amqp_url.clone();
        let topology = self.topology.clone();
        let mut names = vec![DEFAULT_QUEUE.to_owned()];
        if let Ok(tracked) = self.queues.lock() {
            names.extend(tracked.iter().cloned());
        }
        let mut queues = vec![topology.dead_letter_queue.clone()];
        let delays = self.delays.lock().map(|d| d.clone()).unwrap_or_default();
        for (name, lane) in names.iter().flat_map(|n| Lane::ALL.map(|lane| (n, lane))) {
            queues.push(topology.work_queue_in(name, lane).into_owned());
            queues.extend(
                delays
                    .iter()
                    .map(|d| topology.delay_queue_in(name, lane, *d)),
            );
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
