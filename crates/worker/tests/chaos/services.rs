//! Taking the shared RabbitMQ and Postgres down on purpose, with guards that always bring them
//! back: an outage guard restores its service when dropped unless the scenario already did
//! (a failed assertion, a panic, a scenario timeout), and [`ServicesGuard`] checks both once
//! more when the whole suite ends.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Longest wait for a `rabbitmqctl` command (`await_startup` included).
const RABBITMQCTL_DEADLINE: Duration = Duration::from_secs(90);
/// Longest wait for `pg_ctlcluster … restart`, and then for Postgres to accept connections.
const POSTGRES_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `program args…` to completion within `within`.
///
/// # Errors
/// Its stderr if it fails, or a timeout.
async fn run(program: &str, args: &[&str], within: Duration) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(within, output).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("`{program}` could not run: {e}")),
        Err(_) => Err(format!(
            "`{program} {}` took longer than {within:?}",
            args.join(" ")
        )),
    }
}

/// The same, blocking, for `Drop`: `timeout` bounds it.
fn run_blocking(program: &str, args: &[&str], within: Duration) -> bool {
    std::process::Command::new("timeout")
        .arg(within.as_secs().to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
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
        if let Err(e) = run("rabbitmqctl", &["-q", "stop_app"], RABBITMQCTL_DEADLINE).await {
            panic!("stopping RabbitMQ: {e}");
        }
        guard
    }

    /// Starts the application again and waits until it serves (`rabbitmqctl await_startup`).
    ///
    /// # Errors
    /// The failing command's error; the guard then tries again when dropped.
    pub async fn start(mut self) -> Result<(), String> {
        run("rabbitmqctl", &["-q", "start_app"], RABBITMQCTL_DEADLINE).await?;
        run(
            "rabbitmqctl",
            &["-q", "await_startup"],
            RABBITMQCTL_DEADLINE,
        )
        .await?;
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
        let version = postgres_version();
        let command = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "restart"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Never killed half-way: a restart cut short could leave Postgres stopped.
            .kill_on_drop(false)
            .spawn()
            .expect("running pg_ctlcluster");
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
            .map_err(|_| format!("pg_ctlcluster restart took longer than {POSTGRES_DEADLINE:?}"))?
            .map_err(|e| format!("pg_ctlcluster: {e}"))?;
        if !status.success() {
            return Err(format!("pg_ctlcluster restart failed ({status})"));
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
    run(
        "pg_isready",
        &["-q", "-h", "127.0.0.1", "-p", "5432"],
        Duration::from_secs(5),
    )
    .await
    .is_ok()
}

/// Blocking: waits for Postgres (a restart may still be under way), starts it if it stays down.
fn ensure_postgres_running() {
    let ready = || {
        run_blocking(
            "pg_isready",
            &["-q", "-h", "127.0.0.1"],
            Duration::from_secs(5),
        )
    };
    for _ in 0..100 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let version = postgres_version();
    run_blocking(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "start"],
        POSTGRES_DEADLINE,
    );
    if !ready() {
        eprintln!("chaos: Postgres is still down; run `just services`");
    }
}

/// Blocking: `start_app` (a no-op on a running node) and `await_startup`.
fn ensure_rabbitmq_running() {
    let started = run_blocking("rabbitmqctl", &["-q", "start_app"], RABBITMQCTL_DEADLINE)
        && run_blocking(
            "rabbitmqctl",
            &["-q", "await_startup"],
            RABBITMQCTL_DEADLINE,
        );
    if !started {
        eprintln!("chaos: RabbitMQ may still be down; run `just services`");
    }
}
