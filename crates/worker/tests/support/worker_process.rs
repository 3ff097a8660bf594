//! A real `burrow-worker` process for tests that need the binary itself (its own metrics
//! recorder, HTTP port, logs and telemetry set-up), against a [`Stack`]'s database and queues.

use std::path::PathBuf;
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use super::{eventually, Stack};

/// How long a worker may take to stop after SIGTERM.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A real worker process with its HTTP port; killed when dropped.
pub struct WorkerProcess {
    child: tokio::process::Child,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// Its stderr (the log).
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Starts `burrow-worker` against the stack's database and queues, with JSON info logs, and
/// waits until its `/healthz` answers.
pub async fn spawn_worker(stack: &Stack, vars: &[(&str, &str)]) -> WorkerProcess {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("burrow-worker-{}.log", Uuid::new_v4()));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_burrow-worker"))
        .env_remove("BURROW_FAILPOINT")
        .env("DATABASE_URL", &stack.env.database_url)
        .env("AMQP_URL", &stack.env.amqp_url)
        .env("BURROW_QUEUE_PREFIX", stack.env.topology.prefix())
        .env("WORKER_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKER_ID", "observed")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("the log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn burrow-worker");
    let worker = WorkerProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        http: reqwest::Client::new(),
    };
    eventually("the worker's /healthz", || async {
        worker
            .get("/healthz")
            .await
            .filter(|(status, _)| *status == StatusCode::OK)
    })
    .await;
    worker
}

impl WorkerProcess {
    /// GETs `path` from the worker: the status and body, or `None` if nothing answers.
    pub async fn get(&self, path: &str) -> Option<(StatusCode, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()?;
        let status = response.status();
        Some((status, response.text().await.ok()?))
    }

    /// GETs `path` and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.get(path).await.expect("the worker answers");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(&mut self) {
        let pid = self.child.id().expect("the worker runs");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success());
        let status = tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .expect("the worker stops in time")
            .expect("exit status");
        assert!(status.success(), "{status}");
    }

    /// Sends SIGKILL (a crash: nothing is drained or acked) and waits for the process to go.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    /// The JSON log lines with this `message`.
    pub fn log_lines(&self, message: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }

    /// How many deliveries it parked in, or handed back through, a delay queue (by its log):
    /// what caps and rate limits must not do while a job waits.
    pub fn delay_queue_parks(&self) -> usize {
        self.log()
            .iter()
            .filter(|line| {
                let message = line["fields"]["message"].as_str().unwrap_or("");
                message.contains("parking") || message.contains("handing the delivery back")
            })
            .count()
    }

    /// Every JSON line of its log so far.
    pub fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }
}
