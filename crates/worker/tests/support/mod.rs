//! Test harness shared by the worker's integration tests: an api on port 0 over a private
//! database and queue names, in-process workers, and polling helpers.
#![allow(dead_code)]

use std::time::Duration;

use burrow_api::publisher::Publisher;
use burrow_api::state::AppState;
use burrow_api::Application;
use burrow_shared::fixtures::Person;
use burrow_shared::import::ImportOptions;
use burrow_shared::jobs::{self, JobRow};
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::testing::TestEnv;
use burrow_worker::consumer::{consume, ConsumerSettings};
use burrow_worker::process::JobContext;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest a test waits for a job to end.
pub const JOB_DEADLINE: Duration = Duration::from_secs(20);

/// A test's api and in-process workers; stops them when dropped.
pub struct Stack {
    pub env: TestEnv,
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    /// Stops the in-process workers only (a child of `stop`).
    worker_stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Stack {
    pub async fn new() -> Stack {
        let env = TestEnv::new().await.expect("test services");
        let state = AppState::new(
            env.db.clone(),
            Publisher::new(env.amqp.clone(), env.topology.clone()),
            10 * 1024 * 1024,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = Application::from_parts(listener, state);
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        Stack {
            env,
            base,
            http: reqwest::Client::new(),
            worker_stop: stop.child_token(),
            stop,
            workers: Vec::new(),
        }
    }

    /// Stops the api and the in-process workers, waiting for the workers to drain: afterwards
    /// every delivery has been acked, rejected, or returned to its queue.
    /// Stops the in-process workers (draining them) and lets new ones be started.
    pub async fn stop_workers(&mut self) {
        self.worker_stop.cancel();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
        self.worker_stop = self.stop.child_token();
    }

    pub async fn stop(&mut self) {
        self.stop.cancel();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker task");
        }
    }

    /// Starts an in-process worker named `worker_id` running `concurrency` jobs at once.
    pub fn start_worker(&mut self, worker_id: &str, concurrency: usize, row_delay: Duration) {
        self.start_worker_with(
            JobContext {
                retry: RetryPolicy::default(),
                always_transient_file: None,
                ..JobContext::new(
                    self.env.db.clone(),
                    worker_id.to_owned(),
                    ImportOptions {
                        row_delay,
                        ..ImportOptions::default()
                    },
                )
            },
            concurrency,
        );
    }

    pub fn start_worker_with(&mut self, ctx: JobContext, concurrency: usize) {
        self.env.track_delays(&ctx.retry.delays());
        let settings = ConsumerSettings {
            concurrency,
            prefetch: (concurrency * 2) as u16,
            drain_timeout: Duration::from_secs(5),
        };
        let (amqp, topology, stop) = (
            self.env.amqp.clone(),
            self.env.topology.clone(),
            self.worker_stop.clone(),
        );
        self.workers.push(tokio::spawn(async move {
            if let Err(e) = consume(&amqp, &topology, ctx, &settings, stop).await {
                eprintln!("worker stopped: {e:#}");
            }
        }));
    }

    pub async fn upload(&self, file_name: &str, bytes: Vec<u8>) -> reqwest::Response {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
        self.http
            .post(format!("{}/api/jobs", self.base))
            .multipart(form)
            .send()
            .await
            .expect("request")
    }

    /// POSTs `body` as JSON to `path`; the status, the JSON answer and the headers.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, response.json().await.unwrap_or_default(), headers)
    }

    /// POSTs to `path` with no body; the status and JSON answer.
    pub async fn post(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or_default())
    }

    /// GETs `path`; the response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    /// Jobs stored.
    pub async fn job_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&self.env.db)
            .await
            .expect("count")
    }

    /// Polls until `probe` holds for the job, or panics after the deadline.
    pub async fn wait_for_job(
        &self,
        id: Uuid,
        what: &str,
        probe: impl Fn(&JobRow) -> bool,
    ) -> JobRow {
        let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
        loop {
            let job = jobs::find_job(&self.env.db, id)
                .await
                .expect("query")
                .expect("job exists");
            if probe(&job) {
                return job;
            }
            if tokio::time::Instant::now() >= deadline {
                let events = jobs::list_events(&self.env.db, id)
                    .await
                    .unwrap_or_default();
                panic!(
                    "job {id}: waited for {what}, still {}; history {events:?}",
                    job.status
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Uploads and returns the new job's id.
    pub async fn enqueue(&self, file_name: &str, bytes: Vec<u8>) -> Uuid {
        let response = self.upload(file_name, bytes).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{file_name}");
        let job: Value = response.json().await.expect("json");
        job["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("job id")
    }

    /// Polls the api until the job has ended.
    pub async fn wait_until_ended(&self, id: Uuid) -> JobRow {
        let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
        loop {
            let job = jobs::find_job(&self.env.db, id)
                .await
                .expect("query")
                .expect("job exists");
            if job.status.is_terminal() {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} still {}",
                job.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn imported(&self, id: Uuid) -> Vec<(i32, Person)> {
        let rows: Vec<(i32, i64, String, String, String, String, String)> = sqlx::query_as(
            "SELECT row_number, id, first_name, last_name, email, gender, ip_address \
             FROM imported_rows WHERE job_id = $1 ORDER BY row_number",
        )
        .bind(id)
        .fetch_all(&self.env.db)
        .await
        .expect("rows");
        rows.into_iter()
            .map(
                |(row, id, first_name, last_name, email, gender, ip_address)| {
                    (
                        row,
                        Person {
                            id,
                            first_name,
                            last_name,
                            email,
                            gender,
                            ip_address,
                        },
                    )
                },
            )
            .collect()
    }

    pub async fn total_imported(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM imported_rows")
            .fetch_one(&self.env.db)
            .await
            .expect("count")
    }

    /// A channel in confirm mode, for publishing test messages directly.
    pub async fn confirm_channel(&self) -> lapin::Channel {
        let connection = self.env.amqp.get().await.expect("broker connection");
        open_confirm_channel(&connection).await.expect("channel")
    }

    /// Waits until `queue` holds `expected` ready messages (or the deadline passes).
    pub async fn wait_for_ready(&self, queue: &str, expected: u32) -> u32 {
        let mut ready = 0;
        for _ in 0..100 {
            ready = self.env.ready_messages(queue).await.expect("queue");
            if ready == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ready
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}
