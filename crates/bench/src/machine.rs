//! What the run ran on: cores (as `nproc` counts them), the CPU model from `/proc/cpuinfo`,
//! memory, kernel, the service versions and the load average before and after (other users'
//! work on a shared machine shows there).

use serde::Serialize;

use crate::stack::Stack;

/// The machine and its services.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores this process may run on (what `nproc` prints).
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` of `/proc/meminfo`, in GiB.
    pub memory_gib: f64,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// PostgreSQL's `server_version`.
    pub postgres: Option<String>,
    /// RabbitMQ's version (management api).
    pub rabbitmq: Option<String>,
    /// `/proc/loadavg`'s 1, 5 and 15-minute averages when the run started.
    pub load_before: String,
    /// The same when it ended.
    pub load_after: Option<String>,
}

impl Machine {
    /// Describes this machine and `stack`'s services.
    pub async fn describe(stack: &Stack) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(
                || "unknown CPU".to_owned(),
                |(_, model)| model.trim().to_owned(),
            );
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        let postgres = sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&stack.db)
            .await
            .ok();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            postgres,
            rabbitmq: stack.rabbitmq_version().await,
            load_before: load_average(),
            load_after: None,
        }
    }
}

/// `1.23 0.98 0.75`: the first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
