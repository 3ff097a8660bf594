//! Test harness shared by the api's integration tests: an api served on port 0 over a private
//! database and queue names ([`TestEnv`]), a client for it, and a poll with a deadline.
//!
//! Each test binary declares `mod support;` and builds its api with [`TestApi::spawn`], or with
//! [`TestApi::spawn_with`] when it needs other state (an upload limit, auth, metrics, readiness
//! rules, a database that is down) or [`TestApi::spawn_without_broker`] for a broker that is down.
//! Helpers only one binary needs stay in that binary, in its own `impl TestApi` block.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use burrow_api::publisher::Publisher;
use burrow_api::state::AppState;
use burrow_api::Application;
use burrow_shared::testing::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// How long a test waits for an asynchronous effect (the outbox relay, the broker) before
/// failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The upload limit of [`TestApi::spawn`], in bytes.
pub const UPLOAD_MAX_BYTES: usize = 1024 * 1024;

/// An AMQP URL nothing listens on: a broker that is down.
pub const CLOSED_PORT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

/// Polls `probe` every 50 ms until it returns `Some`, failing after [`DEADLINE`] with `what`.
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

/// The `content-type` header of `response`; empty when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A test's api, served on port 0 until the value is dropped.
pub struct TestApi {
    /// The test's own database and queue names; kept until the test ends, and the way in for
    /// tests that look at what the api stored or published.
    pub env: TestEnv,
    /// `http://127.0.0.1:{port}`, the port the OS chose.
    base: String,
    /// One client for the test's requests, so connections are reused.
    http: reqwest::Client,
    /// Stops the api (and its outbox relay) on drop.
    stop: CancellationToken,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApi {
    /// Serves the api over a fresh database and topology, with the state `AppState::new`
    /// gives and an upload limit of [`UPLOAD_MAX_BYTES`].
    pub async fn spawn() -> TestApi {
        TestApi::spawn_with(|state| state).await
    }

    /// Like [`TestApi::spawn`], with the state changed by `adjust` first (e.g. auth, a metrics
    /// handle, readiness rules, another upload limit or pool).
    pub async fn spawn_with(adjust: impl FnOnce(AppState) -> AppState) -> TestApi {
        let env = TestEnv::new().await.expect("test services");
        let state = adjust(AppState::new(
            env.db.clone(),
            Publisher::new(env.amqp.clone(), env.topology.clone()),
            UPLOAD_MAX_BYTES,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = Application::from_parts(listener, state);
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));
        TestApi {
            env,
            base,
            http: reqwest::Client::new(),
            stop,
        }
    }

    /// An api whose broker is down: it publishes through a pool that points at
    /// [`CLOSED_PORT_AMQP_URL`]. The test's own broker pool (`env.amqp`) still works.
    pub async fn spawn_without_broker() -> TestApi {
        let unreachable =
            burrow_shared::amqp::amqp_pool(CLOSED_PORT_AMQP_URL, 1).expect("a pool (lazy)");
        TestApi::spawn_with(|state| AppState {
            publisher: Publisher::new(unreachable, state.publisher.topology().clone()),
            ..state
        })
        .await
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, for the tests that set headers, a body or a key themselves.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// GETs `path`; the response, for tests that read headers or a body that is not JSON.
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request")
    }

    /// GETs `path`; the status and the JSON answer (`null` when the body is not JSON).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        status_and_json(self.get_response(path).await).await
    }

    /// POSTs to `path` with no body; the status and the JSON answer (`null` when not JSON).
    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, path)
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// POSTs `body` as JSON to `path`; the status and the JSON answer (`null` when not JSON).
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request");
        status_and_json(response).await
    }

    /// Creates a `noop` job through `POST /api/jobs`, asserting 202; its id.
    pub async fn create_job(&self) -> String {
        let (status, job) = self.post_json("/api/jobs", &json!({"kind": "noop"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job["id"].as_str().expect("id").to_owned()
    }

    /// Messages ready in the work queue. No worker runs in these tests, so this is every
    /// message published and not taken off by the test.
    pub async fn ready_in_work_queue(&self) -> u32 {
        self.env
            .ready_messages(&self.env.topology.work_queue)
            .await
            .expect("queue depth")
    }

    /// Waits until the work queue holds exactly `n` ready messages.
    pub async fn wait_ready_in_work_queue(&self, n: u32) {
        eventually(&format!("{n} message(s) in the work queue"), || async {
            (self.ready_in_work_queue().await == n).then_some(())
        })
        .await;
    }
}

/// The status of `response` and its body as JSON (`null` when it is not JSON).
async fn status_and_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}
