//! A scenario's rig: its own [`TestEnv`] (database and queue names), its processes (and their
//! log directory), its uploads and what it expects of them, polling helpers, and
//! [`Rig::finish`], which stops everything and counts (see [`crate::tally`]).
//!
//! The rig owns every process it starts, so they are killed before the environment is dropped
//! (fields drop in order), on every path: a process outliving its database or queues would log
//! errors, or worse re-declare the queues the clean-up just deleted.

use std::path::PathBuf;
use std::time::Duration;

use burrow_api::testing::{fixture, ApiClient, TestEnv};
use burrow_shared::fixtures::{mock_data, mock_file_name, Person};
use burrow_shared::jobs::{self, JobFilter, JobRow};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::JobStatus;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use tokio::time::Instant;
use uuid::Uuid;

use crate::procs::{logs_root, start_api, worker_binary, Proc};
use crate::tally::{count, Expected, Row};

/// Longest an upload request may take (the api may wait for a restarting Postgres).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait for the load to be under way before a fault (jobs `processing`).
pub const SETTLE: Duration = Duration::from_secs(20);
/// Longest wait for every job to end after a fault.
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);

/// Settings of a worker process, as environment variables.
#[derive(Debug, Clone, Default)]
pub struct WorkerSpec {
    /// `WORKER_CONCURRENCY`; 2 when `None`.
    pub concurrency: Option<u32>,
    /// `IMPORT_ROW_DELAY_MS`: 5 makes a 200-row job take about a second (see [`paced`]).
    pub row_delay_ms: u64,
    /// The retry policy (`RETRY_BASE_MS`, `RETRY_MAX_ATTEMPTS`); the default when `None`.
    pub retry: Option<RetryPolicy>,
    /// Any other variables (`BURROW_FAILPOINT`, `WORKER_DRAIN_TIMEOUT_SECS`, …).
    pub extra: Vec<(&'static str, String)>,
}

/// Workers whose 200-row jobs take about a second each (5 ms per row), so faults land
/// mid-import.
pub fn paced() -> WorkerSpec {
    WorkerSpec {
        row_delay_ms: 5,
        ..WorkerSpec::default()
    }
}

/// A process of a rig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId(usize);

/// An api process of a rig.
#[derive(Debug, Clone)]
pub struct Api {
    /// Requests to it (each bounded by the upload timeout).
    pub client: ApiClient,
    /// Its process.
    pub proc: ProcId,
}

/// Everything one scenario owns; see the module docs.
pub struct Rig {
    /// Every process started, killed when the rig is finished or dropped. Declared before
    /// `env`, so it is dropped first.
    procs: Vec<Proc>,
    /// The scenario's own database and queue names, dropped at the end.
    pub env: TestEnv,
    /// The scenario's short name: log directory, file name prefix.
    name: &'static str,
    /// `target/chaos/{name}/`.
    logs: PathBuf,
    /// What the final count holds the jobs to.
    expected: Expected,
    /// When the fault was injected.
    fault_at: Option<DateTime<Utc>>,
    /// Uploads so far, for unique file names.
    uploads: u32,
    /// Checks that failed.
    failures: Vec<String>,
    /// Measurements for the report.
    notes: Vec<String>,
}

impl Rig {
    /// A fresh environment, and an empty `target/chaos/{name}/` for the logs (with `env.txt`
    /// naming the scenario's database and queue prefix).
    pub async fn new(name: &'static str) -> Rig {
        let logs = logs_root().join(name);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("the log directory");
        let env = TestEnv::new()
            .await
            .expect("Postgres and RabbitMQ on localhost");
        let names = format!(
            "DATABASE_URL={}\nBURROW_QUEUE_PREFIX={}\n",
            env.database_url,
            env.topology.prefix()
        );
        std::fs::write(logs.join("env.txt"), names).expect("env.txt");
        Rig {
            procs: Vec::new(),
            env,
            name,
            logs,
            expected: Expected::default(),
            fault_at: None,
            uploads: 0,
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Starts an api process (`BURROW_FAILPOINT` etc. in `vars`) and waits until it serves.
    pub async fn api(&mut self, name: &str, vars: &[(&str, String)]) -> Api {
        let (proc, base) = start_api(&self.env, &self.logs, name, vars).await;
        self.procs.push(proc);
        Api {
            client: ApiClient::new(base, UPLOAD_TIMEOUT),
            proc: ProcId(self.procs.len() - 1),
        }
    }

    /// Starts a worker process whose `WORKER_ID` is `name`.
    pub fn worker(&mut self, name: &str, spec: &WorkerSpec) -> ProcId {
        let mut vars = vec![
            ("WORKER_ID", name.to_owned()),
            (
                "WORKER_CONCURRENCY",
                spec.concurrency.unwrap_or(2).to_string(),
            ),
            ("IMPORT_ROW_DELAY_MS", spec.row_delay_ms.to_string()),
        ];
        if let Some(retry) = &spec.retry {
            // The delay queues it declares are deleted with the environment.
            self.env.track_delays(&retry.delays());
            vars.push(("RETRY_BASE_MS", retry.base.as_millis().to_string()));
            vars.push(("RETRY_MAX_ATTEMPTS", retry.max_attempts.to_string()));
        }
        vars.extend(spec.extra.iter().cloned());
        let proc = Proc::spawn(&worker_binary(), name, &self.env, &self.logs, &vars);
        self.procs.push(proc);
        ProcId(self.procs.len() - 1)
    }

    /// One of the rig's processes.
    pub fn proc(&mut self, id: ProcId) -> &mut Proc {
        &mut self.procs[id.0]
    }

    /// The process named `name` (a worker's `WORKER_ID`).
    pub fn proc_named(&self, name: &str) -> Option<ProcId> {
        self.procs.iter().position(|p| p.name == name).map(ProcId)
    }

    /// Uploads fixture `MOCK_DATA_{n}.xlsx` through `api` under the file name `name`; a 202
    /// makes it an accepted job.
    ///
    /// # Errors
    /// The status or request error of a refused upload (not counted as accepted).
    pub async fn upload_as(&mut self, api: &Api, name: &str, n: u32) -> Result<Uuid, String> {
        let bytes = fixture(&mock_file_name(n));
        self.expected.file(name, mock_data(n));
        let response = api
            .client
            .send_upload(name, bytes, &[])
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(format!("HTTP {}", response.status()));
        }
        let job: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        let id: Uuid = job["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("no job id in {job}"))?;
        self.expected.accept(id);
        Ok(id)
    }

    /// Uploads the next fixture (`MOCK_DATA_1..5`, in turn) under a name unique to this
    /// scenario, e.g. `c-rabbitmq-restart-07-MOCK_DATA_2.xlsx`.
    ///
    /// # Errors
    /// As [`Rig::upload_as`].
    pub async fn upload(&mut self, api: &Api) -> Result<Uuid, String> {
        self.uploads += 1;
        let n = (self.uploads - 1) % 5 + 1;
        let name = format!("{}-{:02}-{}", self.name, self.uploads, mock_file_name(n));
        self.upload_as(api, &name, n).await
    }

    /// Uploads `count` fixtures; each must be accepted.
    pub async fn upload_many(&mut self, api: &Api, count: usize) -> Vec<Uuid> {
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            match self.upload(api).await {
                Ok(id) => ids.push(id),
                Err(e) => self.check(false, format!("an upload was refused: {e}")),
            }
        }
        ids
    }

    /// Records that `file_name` holds `people` (for jobs stored without the api).
    pub fn register_file(&mut self, file_name: &str, people: Vec<Person>) {
        self.expected.file(file_name, people);
    }

    /// Counts `id` as accepted although the client got no 202 (committed before a crash).
    pub fn accept(&mut self, id: Uuid) {
        self.expected.accept(id);
    }

    /// Marks `id` as meant to end `dead`.
    pub fn doom(&mut self, id: Uuid) {
        self.expected.doom(id);
    }

    /// Marks now as the moment the fault was injected.
    pub fn fault(&mut self) {
        self.fault_at = Some(Utc::now());
    }

    /// Records a failed check unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// Records a measurement for the report.
    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// One job, or `None` if it does not exist or Postgres does not answer right now.
    pub async fn job(&self, id: Uuid) -> Option<JobRow> {
        jobs::find_job(&self.env.db, id).await.ok().flatten()
    }

    /// Every job of the scenario, or an error while Postgres is unavailable.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, sqlx::Error> {
        let filter = JobFilter {
            limit: 10_000,
            ..JobFilter::default()
        };
        jobs::list_jobs(&self.env.db, &filter).await
    }

    /// The first job for which `pick` holds, polling every 25 ms for up to `within`.
    pub async fn wait_for_job(
        &self,
        within: Duration,
        mut pick: impl FnMut(&JobRow) -> bool,
    ) -> Option<JobRow> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(jobs) = self.jobs().await {
                if let Some(job) = jobs.into_iter().find(&mut pick) {
                    return Some(job);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// Waits until `count` jobs are `processing`, polling for up to `within`.
    pub async fn wait_processing(&self, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(jobs) = self.jobs().await {
                let running = jobs
                    .iter()
                    .filter(|job| job.status == JobStatus::Processing)
                    .count();
                if running >= count {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// Waits until every job has ended (or `within` passes: what is left counts as lost).
    pub async fn wait_all_ended(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let open: Vec<String> = match self.jobs().await {
                Ok(jobs) => jobs
                    .iter()
                    .filter(|job| !job.status.is_terminal())
                    .map(|job| {
                        format!("{} {}", job.file_name.as_deref().unwrap_or("?"), job.status)
                    })
                    .collect(),
                Err(e) => vec![format!("(Postgres: {e})")],
            };
            if open.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                self.check(
                    false,
                    format!("not ended after {within:?}: {}", open.join(", ")),
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ready messages in `queue`, polling until it holds `expected` or `within` passes.
    pub async fn wait_ready(&self, queue: &str, expected: u32, within: Duration) -> Option<u32> {
        let deadline = Instant::now() + within;
        loop {
            let ready = self.env.ready_messages(queue).await.ok();
            if ready == Some(expected) || Instant::now() > deadline {
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the processes, then counts the outcome against what the scenario expected
    /// ([`crate::tally::count`]) and adds the scenario's own checks and notes.
    pub async fn finish(&mut self) -> Row {
        for proc in &mut self.procs {
            proc.kill9().await;
        }
        let count = count(&self.env.db, &self.expected).await;
        let recovery = match (self.fault_at, count.last_end) {
            (Some(fault), Some(end)) => (end - fault).to_std().ok(),
            _ => None,
        };
        let mut failures = std::mem::take(&mut self.failures);
        failures.extend(count.failures);
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(count.notes);
        Row {
            scenario: self.name.to_owned(),
            jobs: count.jobs,
            lost: count.lost,
            applied_twice: count.applied_twice,
            recovery,
            failures,
            notes,
        }
    }
}
