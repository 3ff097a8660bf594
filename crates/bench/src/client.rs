//! The few api calls the benches make (the README's API section is the contract): upload a
//! workbook, enqueue a batch of JSON jobs, read one job with its history.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
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
        let response = self
            .http
            .post(self.url("/api/jobs/batch"))
            .json(&body)
            .send()
            .await
            .context("POST /api/jobs/batch")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "POST /api/jobs/batch answered {status}: {}",
            shorten(&text)
        );
        let jobs: Value = serde_json::from_str(&text).context("the batch answer")?;
        Ok(jobs["jobs"].as_array().map_or(0, Vec::len))
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

async fn accepted(response: reqwest::Response, what: &str) -> anyhow::Result<Job> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == StatusCode::ACCEPTED,
        "{what} answered {status}: {}",
        shorten(&text)
    );
    serde_json::from_str(&text).with_context(|| format!("the job in the answer to {what}"))
}

fn shorten(text: &str) -> &str {
    text.get(..300).unwrap_or(text)
}
