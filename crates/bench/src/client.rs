//! The few api calls the benches make (the README's API section is the contract): upload a
//! workbook, enqueue a batch of JSON jobs, enqueue one JSON job, create a workflow batch, read
//! one job with its history.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// A job as `GET /api/jobs/{id}` shows it (the fields the benches read).
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: Uuid,
    /// `queued`, `processing`, `retrying`, `succeeded`, `failed`, `dead` or `cancelled`.
    pub status: String,
    /// Runs claimed so far.
    pub attempts: i32,
    /// Rows an import committed.
    pub rows_imported: Option<i64>,
    /// The outcome's message or error.
    pub message: Option<String>,
    /// When the api stored it.
    pub created_at: DateTime<Utc>,
    /// When a worker last claimed it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// While `retrying`: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Its history (only in `GET /api/jobs/{id}`).
    #[serde(default)]
    pub events: Vec<JobEvent>,
}

impl Job {
    /// Whether it reached a final state.
    pub fn ended(&self) -> bool {
        matches!(
            self.status.as_str(),
            "succeeded" | "failed" | "dead" | "cancelled"
        )
    }
}

/// One entry of a job's history.
#[derive(Debug, Clone, Deserialize)]
pub struct JobEvent {
    /// When (the database's `clock_timestamp()`).
    pub at: DateTime<Utc>,
    /// The new state (`processing`, `retrying`, …) or an action.
    pub event: String,
    /// The attempt it belongs to.
    pub attempt: Option<i32>,
}

/// Most jobs one `POST /api/jobs/batch` takes (the api's limit).
pub const MAX_PER_BATCH_REQUEST: u64 = 1000;

/// An HTTP client for one api process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// A client for the api at `base` (`http://127.0.0.1:port`).
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(ApiClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The underlying HTTP client (keep-alive pool included).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads `bytes` as the file `file_name` (multipart), owned by `user_id`: an import job
    /// with the api's default profile.
    ///
    /// # Errors
    /// Unless the api answers `202 Accepted` with the job.
    pub async fn upload(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        user_id: &str,
    ) -> anyhow::Result<Job> {
        self.upload_with_profile(file_name, bytes, user_id, None)
            .await
    }

    /// Uploads `bytes` as the file `file_name` (multipart; `text/csv` for a `.csv` name, else
    /// the xlsx type), owned by `user_id`, naming the import profile `profile` (`profile=`)
    /// when given.
    ///
    /// # Errors
    /// Unless the api answers `202 Accepted` with the job.
    pub async fn upload_with_profile(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        user_id: &str,
        profile: Option<&str>,
    ) -> anyhow::Result<Job> {
        let mime = if file_name.to_ascii_lowercase().ends_with(".csv") {
            "text/csv"
        } else {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        };
        let part = Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(mime)?;
        let mut form = Form::new().text("user_id", user_id.to_owned());
        if let Some(profile) = profile {
            form = form.text("profile", profile.to_owned());
        }
        let form = form.part("file", part);
        let response = self
            .http
            .post(self.url("/api/jobs"))
            .multipart(form)
            .send()
            .await
            .context("POST /api/jobs (upload)")?;
        accepted(response, "POST /api/jobs (upload)").await
    }

    /// Enqueues `count` jobs of `kind` with `payload`, owned by `user_id`, in one
    /// `POST /api/jobs/batch` (at most 1,000).
    ///
    /// # Errors
    /// Unless the api answers `202 Accepted`.
    pub async fn batch(
        &self,
        kind: &str,
        payload: &Value,
        count: usize,
        user_id: &str,
    ) -> anyhow::Result<usize> {
        let job = json!({"kind": kind, "payload": payload, "user_id": user_id});
        let body = json!({ "jobs": vec![job; count] });
        let jobs: Value = self.post_accepted("/api/jobs/batch", &body).await?;
        Ok(jobs["jobs"].as_array().map_or(0, Vec::len))
    }

    /// Enqueues `count` noop jobs owned by `user_id`, [`MAX_PER_BATCH_REQUEST`] per
    /// `POST /api/jobs/batch`, one request after another.
    ///
    /// # Errors
    /// As [`ApiClient::batch`], at the first request refused.
    pub async fn noop_jobs(&self, count: u64, user_id: &str) -> anyhow::Result<()> {
        let mut sent = 0;
        while sent < count {
            let chunk = MAX_PER_BATCH_REQUEST.min(count - sent);
            self.batch("noop", &json!({}), chunk as usize, user_id)
                .await?;
            sent += chunk;
        }
        Ok(())
    }

    /// Enqueues one job described by `body` (`POST /api/jobs` with JSON: `kind`, `payload`,
    /// `user_id`, `depends_on`, …).
    ///
    /// # Errors
    /// Unless the api answers `202 Accepted` with the job.
    pub async fn enqueue(&self, body: &Value) -> anyhow::Result<Job> {
        self.post_accepted("/api/jobs", body).await
    }

    /// Creates the workflow batch `body` (`POST /api/batches`: `jobs`, `on_success`,
    /// `on_complete`, …); the answer (`batch`, `job_ids`).
    ///
    /// # Errors
    /// Unless the api answers `202 Accepted`.
    pub async fn create_batch(&self, body: &Value) -> anyhow::Result<Value> {
        self.post_accepted("/api/batches", body).await
    }

    /// POSTs `body` as JSON to `path`; the JSON answer, which must come with `202 Accepted`.
    async fn post_accepted<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        let what = format!("POST {path}");
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| what.clone())?;
        accepted(response, &what).await
    }

    /// The job and its history.
    ///
    /// # Errors
    /// Unless the api answers `200 OK` with the job.
    pub async fn job(&self, id: Uuid) -> anyhow::Result<Job> {
        let response = self
            .http
            .get(self.url(&format!("/api/jobs/{id}")))
            .send()
            .await
            .context("GET /api/jobs/{id}")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET /api/jobs/{id} answered {status}: {}",
            shorten(&text)
        );
        serde_json::from_str(&text).context("the job")
    }
}

/// The JSON answer of a request that must be `202 Accepted`.
async fn accepted<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == StatusCode::ACCEPTED,
        "{what} answered {status}: {}",
        shorten(&text)
    );
    serde_json::from_str(&text).with_context(|| format!("the answer to {what}"))
}

fn shorten(text: &str) -> &str {
    text.get(..300).unwrap_or(text)
}
