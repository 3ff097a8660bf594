//! The harness of burrow's integration tests, one for the api's, the worker's and the chaos
//! suite's (feature `test-support`):
//!
//! - [`TestEnv`], [`fixture`], [`imported_people`] (from [`burrow_shared::testing`]): a private database and queue
//!   names per test, dropped at the end, with waits on a job's state.
//! - [`ApiClient`]: requests to an api at a base URL — one served in-process by [`TestApi`],
//!   or an api process the chaos suite started.
//! - [`TestApi`]: an api served on port 0 over a [`TestEnv`] until dropped. The worker's tests
//!   add in-process workers to it; the chaos suite runs the binaries instead and only needs
//!   the [`TestEnv`] and an [`ApiClient`].
//! - [`eventually`]: a poll with a deadline, the one way the tests wait.
//!
//! ```no_run
//! # async fn demo() {
//! use burrow_api::testing::TestApi;
//!
//! let api = TestApi::spawn().await;
//! let id = api.create_job().await;
//! api.wait_ready_in_work_queue(1).await;
//! # let _ = id;
//! # }
//! ```

use std::ops::Deref;
use std::time::Duration;

use burrow_shared::handler::JobHandler;
use burrow_shared::kinds::ImportXlsx;
pub use burrow_shared::testing::{eventually, fixture, imported_people, TestEnv, DEADLINE};
use burrow_shared::topology::Lane;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::publisher::Publisher;
use crate::state::AppState;
use crate::Application;

/// The upload limit of [`TestApi::spawn`], in bytes (10 MiB: every fixture fits).
pub const UPLOAD_MAX_BYTES: usize = 10 * 1024 * 1024;

/// An AMQP URL nothing listens on: a broker that is down.
pub const CLOSED_PORT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

/// The `content-type` header of `response`; empty when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Requests to the api at `base`. The helpers panic on a request that fails (the tests want
/// that); [`ApiClient::send_upload`] returns the error for callers that count failures.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// `http://127.0.0.1:{port}`.
    base: String,
    /// One client, so connections are reused.
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the api at `base` (`http://host:port`), each request bounded by `timeout`.
    ///
    /// # Panics
    /// If the TLS backend cannot start (it is not used: the tests speak plain HTTP).
    pub fn new(base: impl Into<String>, timeout: Duration) -> ApiClient {
        ApiClient {
            base: base.into(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
        }
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

    /// POSTs a multipart form to `path`: `file` (named `file_name`) first, then `fields` in
    /// order; the status and the JSON answer (`null` when not JSON).
    pub async fn post_form(
        &self,
        path: &str,
        file_name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, path)
            .multipart(form(file_name, bytes, fields))
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

    /// Uploads `bytes` as `file_name` to `POST /api/jobs`, with more form fields (`profile`,
    /// `sheet`, `on_error`, …).
    ///
    /// # Errors
    /// The request's error (the api down, the timeout passed).
    pub async fn send_upload(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        self.request(Method::POST, "/api/jobs")
            .multipart(form(file_name, bytes, fields))
            .send()
            .await
    }

    /// Uploads `bytes` as `file_name` with `fields`; the response.
    pub async fn upload(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send_upload(file_name, bytes, fields)
            .await
            .expect("request")
    }

    /// Uploads `bytes` as `file_name`, asserting 202; the new job's id.
    pub async fn enqueue_upload(&self, file_name: &str, bytes: Vec<u8>) -> Uuid {
        let response = self.upload(file_name, bytes, &[]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{file_name}");
        let job: Value = response.json().await.expect("json");
        job["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("job id")
    }
}

/// A multipart form: `file` (named `file_name`) first, then `fields` in order.
fn form(file_name: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    for (name, value) in fields {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    form
}

/// The status of `response` and its body as JSON (`null` when it is not JSON).
async fn status_and_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A test's api, served on port 0 until the value is dropped; requests through
/// [`ApiClient`] (it derefs to one).
pub struct TestApi {
    /// The test's own database and queue names; kept until the test ends, and the way in for
    /// tests that look at what the api stored or published.
    pub env: TestEnv,
    /// Requests to it.
    client: ApiClient,
    /// Stops the api (and its outbox relay) on drop.
    stop: CancellationToken,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Deref for TestApi {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.client
    }
}

impl TestApi {
    /// Serves the api over a fresh database and topology, with the state `AppState::new`
    /// gives for the shipped kinds and an upload limit of [`UPLOAD_MAX_BYTES`].
    pub async fn spawn() -> TestApi {
        TestApi::spawn_with(|state| state).await
    }

    /// Like [`TestApi::spawn`], with the state changed by `adjust` first (e.g. auth, a metrics
    /// handle, readiness rules, another upload limit or pool).
    ///
    /// # Panics
    /// If Postgres or RabbitMQ are unreachable, or no loopback port is free.
    pub async fn spawn_with(adjust: impl FnOnce(AppState) -> AppState) -> TestApi {
        let env = TestEnv::new().await.expect("test services");
        let state = adjust(AppState::new(
            env.db.clone(),
            Publisher::new(env.amqp.clone(), env.topology.clone()),
            UPLOAD_MAX_BYTES,
            burrow_shared::kinds::shipped(Default::default(), Default::default()),
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
            client: ApiClient::new(base, DEADLINE),
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

    /// Stops serving (and relaying): what a test does to see that something else publishes.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A token cancelled when the api stops: workers of a test stop with it.
    pub fn stopped(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Messages ready in the (normal-priority) work queues of every queue (the default one, and
    /// `imports` of the uploads). With no worker running this is every message of priority
    /// 0–4 published and not taken off by the test.
    pub async fn ready_in_work_queue(&self) -> u32 {
        let topology = &self.env.topology;
        let queues: Vec<String> = topology
            .queues()
            .map(|queue| topology.work_queue_in(queue, Lane::Normal).into_owned())
            .collect();
        let mut ready = 0;
        for queue in &queues {
            ready += self.env.ready_messages(queue).await.expect("queue depth");
        }
        ready
    }

    /// The work queue uploads (`import_xlsx`, of priority 0) wait in: the one of its queue.
    pub fn upload_queue(&self) -> String {
        let queue = <ImportXlsx as JobHandler>::QUEUE;
        self.env
            .topology
            .work_queue_in(queue, Lane::Normal)
            .into_owned()
    }

    /// Asserts that the request `what` left no trace: no job, no file, no outbox row, no
    /// message.
    pub async fn assert_nothing_stored_or_published(&self, what: &str) {
        assert_eq!(self.env.count("jobs").await, 0, "{what}: no job row");
        assert_eq!(self.env.count("job_files").await, 0, "{what}: no file row");
        assert_eq!(self.env.count("outbox").await, 0, "{what}: no outbox row");
        assert_eq!(self.ready_in_work_queue().await, 0, "{what}: no message");
    }

    /// Waits until the work queue holds exactly `n` ready messages.
    pub async fn wait_ready_in_work_queue(&self, n: u32) {
        eventually(&format!("{n} message(s) in the work queue"), || async {
            (self.ready_in_work_queue().await == n).then_some(())
        })
        .await;
    }
}
