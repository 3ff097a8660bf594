//! Where the CPU time of a run went, from `/proc`: the machine as a whole (`/proc/stat`), the
//! api and worker processes (`/proc/<pid>/stat`), every Postgres process and RabbitMQ's
//! `beam.smp` (by name; backends that exited count through the postmaster's `cutime`), and
//! the bench process itself. A coarse profile that needs no tools and no privileges.
//!
//! Postgres and RabbitMQ are shared with whatever else runs on the machine, so their figures
//! include other users' load; `machine_busy` says how busy the cores were in all.

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100.0, |t| t as f64)
}

/// Busy and total jiffies of all cores (`/proc/stat`'s `cpu` line).
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `(comm, utime + stime, cutime + cstime)` of one `/proc/<pid>/stat`, in ticks.
fn process_ticks(pid: &str) -> Option<(String, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // Fields after the comm start at field 3 (state); utime is field 14.
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((comm, field(14)? + field(15)?, field(16)? + field(17)?))
}

/// Ticks used by every process whose name is one of `names`, their reaped children included.
fn named_ticks(names: &[&str]) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (comm, own, children) = process_ticks(&pid)?;
            names.contains(&comm.as_str()).then_some(own + children)
        })
        .sum()
}

/// Ticks used by one process (its own threads; 0 if it is gone).
fn pid_ticks(pid: Option<u32>) -> u64 {
    pid.and_then(|pid| process_ticks(&pid.to_string()))
        .map_or(0, |(_, own, _)| own)
}

/// CPU seconds of this process's children that have exited and were waited for
/// (`cutime + cstime` of `/proc/self/stat`): read before and after a subprocess to get its
/// CPU time once it is gone.
pub fn reaped_children_secs() -> f64 {
    process_ticks(&std::process::id().to_string())
        .map_or(0.0, |(_, _, children)| children as f64 / ticks_per_second())
}

/// CPU seconds per component over one measured interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuBreakdown {
    /// Wall-clock seconds of the interval.
    pub wall_secs: f64,
    /// Share of all cores that were busy (0–1), whoever used them.
    pub machine_busy: f64,
    /// CPU seconds of the worker process.
    pub worker_secs: f64,
    /// CPU seconds of the api process.
    pub api_secs: f64,
    /// CPU seconds of all Postgres processes (other users' queries included).
    pub postgres_secs: f64,
    /// CPU seconds of RabbitMQ (`beam.smp`; other users' traffic included).
    pub rabbitmq_secs: f64,
    /// CPU seconds of this bench process (load generator, raw references).
    pub bench_secs: f64,
}

impl CpuBreakdown {
    /// `worker 3.1 s, api 0.4 s, postgres 5.0 s, rabbitmq 0.2 s, bench 0.1 s; cores 93 % busy`.
    pub fn summary(&self) -> String {
        format!(
            "CPU s: worker {:.1}, api {:.1}, postgres {:.1}, rabbitmq {:.1}, bench {:.1}; \
             cores {:.0} % busy over {:.1} s",
            self.worker_secs,
            self.api_secs,
            self.postgres_secs,
            self.rabbitmq_secs,
            self.bench_secs,
            self.machine_busy * 100.0,
            self.wall_secs
        )
    }
}

/// A started CPU measurement; [`CpuMeter::finish`] gives the [`CpuBreakdown`].
#[derive(Debug)]
pub struct CpuMeter {
    started: Instant,
    worker: Option<u32>,
    api: Option<u32>,
    machine: Option<(u64, u64)>,
    worker_ticks: u64,
    api_ticks: u64,
    postgres_ticks: u64,
    rabbitmq_ticks: u64,
    bench_ticks: u64,
}

/// Names of Postgres's and RabbitMQ's processes.
const POSTGRES: [&str; 1] = ["postgres"];
const RABBITMQ: [&str; 1] = ["beam.smp"];

impl CpuMeter {
    /// Starts measuring; `worker` and `api` are the pids of the processes under test, if any.
    pub fn start(worker: Option<u32>, api: Option<u32>) -> Self {
        CpuMeter {
            started: Instant::now(),
            worker,
            api,
            machine: machine_jiffies(),
            worker_ticks: pid_ticks(worker),
            api_ticks: pid_ticks(api),
            postgres_ticks: named_ticks(&POSTGRES),
            rabbitmq_ticks: named_ticks(&RABBITMQ),
            bench_ticks: pid_ticks(Some(std::process::id())),
        }
    }

    /// The CPU time used since [`CpuMeter::start`]. Call it before the measured processes stop.
    pub fn finish(&self) -> CpuBreakdown {
        let tick = ticks_per_second();
        let secs = |now: u64, then: u64| now.saturating_sub(then) as f64 / tick;
        let machine_busy = match (self.machine, machine_jiffies()) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                (busy1 - busy0) as f64 / (total1 - total0) as f64
            }
            _ => 0.0,
        };
        CpuBreakdown {
            wall_secs: self.started.elapsed().as_secs_f64(),
            machine_busy,
            worker_secs: secs(pid_ticks(self.worker), self.worker_ticks),
            api_secs: secs(pid_ticks(self.api), self.api_ticks),
            postgres_secs: secs(named_ticks(&POSTGRES), self.postgres_ticks),
            rabbitmq_secs: secs(named_ticks(&RABBITMQ), self.rabbitmq_ticks),
            bench_secs: secs(pid_ticks(Some(std::process::id())), self.bench_ticks),
        }
    }
}
