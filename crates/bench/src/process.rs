//! Child processes (the api and the workers) that are always stopped: [`Service::stop`] sends
//! SIGTERM and waits a grace period before SIGKILL, and a [`Service`] dropped without a stop
//! (a failed or interrupted bench) is killed by tokio's `kill_on_drop`. Their peak RSS and CPU
//! time come from `/proc/<pid>`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Variables passed through from the bench's own environment; everything else is cleared, so
/// a `WORKER_CONCURRENCY` in the caller's shell cannot change what "the default" measures.
const PASSED_THROUGH: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// A running child process whose output goes to a log file.
#[derive(Debug)]
pub struct Service {
    /// Short name, for messages and the log file's name.
    name: String,
    /// The process; `kill_on_drop`, so nothing outlives a bench that fails or is interrupted.
    child: Child,
    /// Its pid, kept because `Child::id` is `None` once the child was reaped.
    pid: u32,
    /// Where its stdout and stderr go.
    log: PathBuf,
}

impl Service {
    /// Starts `program args…` with a cleared environment plus `env`, stdout and stderr to
    /// `{log_dir}/{name}.log`.
    ///
    /// # Errors
    /// If the log file cannot be created or the program not started.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Service> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file")?;
        let mut command = Command::new(program);
        command.args(args).env_clear();
        for key in PASSED_THROUGH {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        let child = command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Service {
            name: name.to_owned(),
            child,
            pid,
            log,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Fails if the process has ended (it should be serving).
    ///
    /// # Errors
    /// Naming the exit status and the last lines of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exited() {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail(12)
            ),
        }
    }

    /// The peak resident set size so far (`VmHWM` of `/proc/<pid>/status`), in bytes.
    ///
    /// # Errors
    /// If the process is gone or the line is missing.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading /proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .context("no VmHWM line")
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops it: SIGTERM, up to `grace` to exit (a worker drains its in-flight jobs), then
    /// SIGKILL. Returns how it ended.
    ///
    /// # Errors
    /// If waiting for it fails.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        if let Ok(pid) = i32::try_from(self.pid) {
            // Fails only if the process is already gone, which the wait below sees.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                eprintln!("  {} did not stop within {grace:?}: SIGKILL", self.name);
                self.child.kill().await?;
                Ok(self.child.wait().await?)
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released: another process could take it first,
/// which only makes the service fail to start and the bench report it).
///
/// # Errors
/// If no port can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding port 0")?;
    Ok(listener.local_addr()?.port())
}
