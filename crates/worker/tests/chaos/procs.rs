//! Real `burrow-api` and `burrow-worker` processes for the chaos suite: where the binaries are,
//! how a scenario spawns them (its own database and queue names, logs under `target/chaos/`),
//! and how it signals them. Every child is spawned with `kill_on_drop(true)`, so whatever way a
//! scenario ends, its processes end with it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use burrow_shared::testing::TestEnv;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Longest wait for a new api process to answer `GET /healthz`.
const API_START_DEADLINE: Duration = Duration::from_secs(20);

/// `target/debug`, the directory of the binaries (the test runs from `target/debug/deps/`).
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .to_owned()
}

/// `target/chaos`: every scenario writes its processes' logs in a subdirectory of it.
pub fn logs_root() -> PathBuf {
    binaries_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_owned)
        .join("chaos")
}

/// The `burrow-api` binary, built next to the test by `cargo build --bins` (it belongs to
/// another package, so cargo does not build it for this test).
///
/// # Panics
/// If it is missing, with how to build it.
pub fn api_binary() -> PathBuf {
    let api = binaries_dir().join("burrow-api");
    assert!(
        api.is_file(),
        "{} is missing: run `cargo build --bins` first (`just chaos` does)",
        api.display()
    );
    api
}

/// The `burrow-worker` binary (built by cargo for this package's integration tests).
pub fn worker_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_burrow-worker"))
}

/// A port nobody listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

/// One child process of a scenario; killed (SIGKILL) when dropped.
pub struct Proc {
    /// Its name: the `WORKER_ID` of a worker, the log file's name.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Spawns `binary` with the scenario's service settings and `vars` (later ones win), its
    /// output appended to `{logs}/{name}.log`.
    pub fn spawn(
        binary: &Path,
        name: &str,
        env: &TestEnv,
        logs: &Path,
        vars: &[(&str, String)],
    ) -> Proc {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the log file");
        let stderr = file.try_clone().expect("the log file, twice");
        let mut command = Command::new(binary);
        command
            .env_remove("BURROW_FAILPOINT")
            .env("DATABASE_URL", &env.database_url)
            .env("AMQP_URL", &env.amqp_url)
            .env("BURROW_QUEUE_PREFIX", env.topology.prefix())
            .env("RUST_LOG", "warn")
            .envs(vars.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} as {name}: {e}", binary.display()));
        Proc {
            name: name.to_owned(),
            log,
            child,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends SIGKILL (unless it has exited already) and reaps it.
    pub async fn kill9(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.start_kill();
            let _ = self.exit_within(Duration::from_secs(10)).await;
        }
    }

    /// Sends SIGTERM (a graceful stop request).
    pub fn sigterm(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {} failed", self.name);
    }

    /// Its exit status, if it exits within `within`.
    pub async fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Its exit status if it has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Starts a `burrow-api serve` process on a free port and waits until it answers `/healthz`;
/// returns it with its base URL, `http://127.0.0.1:{port}`.
///
/// # Panics
/// If it exits or does not answer in time (with its log's tail).
pub async fn start_api(
    env: &TestEnv,
    logs: &Path,
    name: &str,
    vars: &[(&str, String)],
) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec![("BIND_ADDR", addr.clone())];
    all.extend_from_slice(vars);
    let mut proc = Proc::spawn(&api_binary(), name, env, logs, &all);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + API_START_DEADLINE;
    loop {
        let health = http.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return (proc, base);
        }
        if let Some(status) = proc.exited() {
            panic!("{name} exited at start ({status}):\n{}", proc.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not answer /healthz within {API_START_DEADLINE:?}:\n{}",
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An exit status for a message: `exit status: 0`, `signal: 6 (SIGABRT)`, or still running.
pub fn describe(exit: Option<ExitStatus>) -> String {
    exit.map_or_else(|| "still running".to_owned(), |status| status.to_string())
}
