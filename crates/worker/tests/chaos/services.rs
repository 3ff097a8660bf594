//! Taking the shared RabbitMQ and Postgres down on purpose, with guards that always bring them
//! back: an outage guard restores its service when dropped unless the scenario already did
//! (a failed assertion, a panic, a scenario timeout), and [`ServicesGuard`] checks both once
//! more when the whole suite ends.
//!
//! The services are this machine's unless the environment names other commands (words split on
//! white space), as `deploy/containers/matrix.sh` does for RabbitMQ and Postgres in containers:
//! `BURROW_CHAOS_RABBITMQCTL` stands for `rabbitmqctl` (e.g. `podman exec NAME rabbitmqctl`),
//! `BURROW_CHAOS_POSTGRES_RESTART` and `BURROW_CHAOS_POSTGRES_START` for `pg_ctlcluster …
//! restart|start` (e.g. `podman restart NAME`), and Postgres' readiness is asked at
//! `BURROW_TEST_DATABASE_URL` (default: 127.0.0.1:5432).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Longest wait for a `rabbitmqctl` command (`await_startup` included).
const RABBITMQCTL_DEADLINE: Duration = Duration::from_secs(90);
/// Longest wait for `pg_ctlcluster … restart`, and then for Postgres to accept connections.
const POSTGRES_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the command line `argv` to completion within `within`.
///
/// # Errors
/// Its stderr if it fails, or a timeout.
async fn run(argv: &[String], within: Duration) -> Result<(), String> {
    let line = argv.join(" ");
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(within, output).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => Err(format!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("`{line}` could not run: {e}")),
        Err(_) => Err(format!("`{line}` took longer than {within:?}")),
    }
}

/// The same, blocking, for `Drop`: `timeout` bounds it.
fn run_blocking(argv: &[String], within: Duration) -> bool {
    std::process::Command::new("timeout")
        .arg(within.as_secs().to_string())
        .args(argv)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The words of the environment variable `var`, if it is set and not blank.
fn command_from_env(var: &str) -> Option<Vec<String>> {
    let words: Vec<String> = std::env::var(var)
        .ok()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// `rabbitmqctl args…`, or `$BURROW_CHAOS_RABBITMQCTL args…`.
fn rabbitmqctl(args: &[&str]) -> Vec<String> {
    let mut argv = command_from_env("BURROW_CHAOS_RABBITMQCTL")
        .unwrap_or_else(|| vec!["rabbitmqctl".to_owned()]);
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    argv
}

/// `pg_ctlcluster … ACTION` on the newest local cluster, or the command `var` names.
fn postgres_command(var: &str, action: &str) -> Vec<String> {
    command_from_env(var).unwrap_or_else(|| {
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            &postgres_version(),
            "main",
            action,
        ]
        .map(str::to_owned)
        .to_vec()
    })
}

/// `pg_isready` against the test's Postgres server.
fn pg_isready() -> Vec<String> {
    let url = std::env::var("BURROW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    ["pg_isready", "-q", "-d", &url].map(str::to_owned).to_vec()
}

/// RabbitMQ with its application stopped (`rabbitmqctl stop_app`); started again by
/// [`RabbitDown::start`], or when dropped.
pub struct RabbitDown {
    restored: bool,
}

impl RabbitDown {
    /// Stops the RabbitMQ application (the Erlang node keeps running; clients are cut off).
    ///
    /// # Panics
    /// If `rabbitmqctl stop_app` fails (the guard still starts it again).
    pub async fn stop() -> RabbitDown {
        // The guard exists before the command runs: even a half-done stop is undone.
        let guard = RabbitDown { restored: false };
        if let Err(e) = run(&rabbitmqctl(&["-q", "stop_app"]), RABBITMQCTL_DEADLINE).await {
            panic!("stopping RabbitMQ: {e}");
        }
        guard
    }

    /// Starts the application again and waits until it serves (`rabbitmqctl await_startup`).
    ///
    /// # Errors
    /// The failing command's error; the guard then tries again when dropped.
    pub async fn start(mut self) -> Result<(), String> {
        run(&rabbitmqctl(&["-q", "start_app"]), RABBITMQCTL_DEADLINE).await?;
        run(&rabbitmqctl(&["-q", "await_startup"]), RABBITMQCTL_DEADLINE).await?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for RabbitDown {
    fn drop(&mut self) {
        if !self.restored {
            eprintln!("chaos: starting RabbitMQ again after an interrupted scenario");
            ensure_rabbitmq_running();
        }
    }
}

/// Waits until nothing accepts TCP connections at the broker's address (RabbitMQ closed its
/// listener and is cutting its clients off); whether that happened within `within`.
pub async fn broker_refuses(amqp_url: &str, within: Duration) -> bool {
    let uri: lapin::uri::AMQPUri = amqp_url.parse().expect("a valid AMQP URL");
    let addr = format!("{}:{}", uri.authority.host, uri.authority.port);
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let probe = tokio::net::TcpStream::connect(&addr);
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(500), probe).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A `pg_ctlcluster … restart` in progress (fast shutdown: sessions are terminated).
pub struct PostgresRestart {
    command: Child,
    finished: bool,
}

impl PostgresRestart {
    /// Starts restarting the newest local cluster; returns at once, while it restarts.
    pub fn begin() -> PostgresRestart {
        let argv = postgres_command("BURROW_CHAOS_POSTGRES_RESTART", "restart");
        let command = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Never killed half-way: a restart cut short could leave Postgres stopped.
            .kill_on_drop(false)
            .spawn()
            .expect("running the Postgres restart command");
        PostgresRestart {
            command,
            finished: false,
        }
    }

    /// Whether the restart command is still running.
    pub fn in_progress(&mut self) -> bool {
        matches!(self.command.try_wait(), Ok(None))
    }

    /// Waits for the restart command, then until Postgres accepts connections.
    ///
    /// # Errors
    /// The command's failure, or Postgres not answering in time; the guard then starts it
    /// when dropped.
    pub async fn finish(mut self) -> Result<(), String> {
        let status = tokio::time::timeout(POSTGRES_DEADLINE, self.command.wait())
            .await
            .map_err(|_| format!("the restart took longer than {POSTGRES_DEADLINE:?}"))?
            .map_err(|e| format!("the restart command: {e}"))?;
        if !status.success() {
            return Err(format!("the restart failed ({status})"));
        }
        let deadline = tokio::time::Instant::now() + POSTGRES_DEADLINE;
        while !postgres_ready().await {
            if tokio::time::Instant::now() > deadline {
                return Err("Postgres did not accept connections after its restart".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for PostgresRestart {
    fn drop(&mut self) {
        if !self.finished {
            eprintln!("chaos: making sure Postgres runs after an interrupted scenario");
            ensure_postgres_running();
        }
    }
}

/// Checks both services when the suite ends, however it ends, and starts what is down.
pub struct ServicesGuard;

impl Drop for ServicesGuard {
    fn drop(&mut self) {
        ensure_postgres_running();
        ensure_rabbitmq_running();
    }
}

/// The newest cluster version under `/etc/postgresql` (as `deploy/local/services.sh` picks).
fn postgres_version() -> String {
    let mut versions: Vec<(u32, String)> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql (a Debian PostgreSQL install)")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((name.parse().ok()?, name)))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, name)| name)
        .expect("a cluster version under /etc/postgresql")
}

async fn postgres_ready() -> bool {
    run(&pg_isready(), Duration::from_secs(5)).await.is_ok()
}

/// Blocking: waits for Postgres (a restart may still be under way), starts it if it stays down.
fn ensure_postgres_running() {
    let ready = || run_blocking(&pg_isready(), Duration::from_secs(5));
    for _ in 0..100 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run_blocking(
        &postgres_command("BURROW_CHAOS_POSTGRES_START", "start"),
        POSTGRES_DEADLINE,
    );
    if !ready() {
        eprintln!("chaos: Postgres is still down; run `just services`");
    }
}

/// Blocking: `start_app` (a no-op on a running node) and `await_startup`.
fn ensure_rabbitmq_running() {
    let started = run_blocking(&rabbitmqctl(&["-q", "start_app"]), RABBITMQCTL_DEADLINE)
        && run_blocking(&rabbitmqctl(&["-q", "await_startup"]), RABBITMQCTL_DEADLINE);
    if !started {
        eprintln!("chaos: RabbitMQ may still be down; run `just services`");
    }
}
