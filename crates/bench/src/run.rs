//! Running the selected benches in order. Each runs again (up to `BENCH_TRIES` times) when it
//! failed or when Postgres or RabbitMQ restarted under it — other suites on this machine do
//! that — and whatever happens, the bench's database and queues are removed at the end.

use std::time::Instant;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::benches::{
    csv, fairness, import, latency, limits, overhead, peers, retry, sweep, typed, upsert, workflows,
};
use crate::config::{BenchConfig, BenchId};
use crate::machine::{load_average, Machine};
use crate::report::{BenchRun, Measurement, Report};
use crate::stack::Stack;

/// Runs the benches `cfg` selects and returns the finished report. Stops early, still
/// cleaning up, when `shutdown` is cancelled.
///
/// # Errors
/// Only if the bench's installation cannot be created; a failing bench is reported in the
/// report instead.
pub async fn run(cfg: &BenchConfig, shutdown: CancellationToken) -> anyhow::Result<Report> {
    let started_at = Utc::now();
    let started = Instant::now();
    println!(
        "burrow-bench: database {}, queue prefix {}, binaries in {}",
        cfg.database,
        cfg.queue_prefix,
        cfg.bin_dir.display()
    );
    let stack = Stack::create(cfg).await?;
    let machine = Machine::describe(&stack).await;
    println!(
        "machine: nproc {}, {}, {:.1} GiB; PostgreSQL {}, RabbitMQ {}; load {}",
        machine.nproc,
        machine.cpu_model,
        machine.memory_gib,
        machine.postgres.as_deref().unwrap_or("?"),
        machine.rabbitmq.as_deref().unwrap_or("?"),
        machine.load_before
    );
    let mut report = Report::new(cfg, machine, started_at);
    let interrupted = tokio::select! {
        () = run_benches(&stack, cfg, started, &mut report.benches) => None,
        () = shutdown.cancelled() => Some("SIGINT or SIGTERM".to_owned()),
    };
    if let Some(why) = &interrupted {
        println!("\ninterrupted ({why}): stopping the processes and cleaning up");
    }
    report.interrupted = interrupted;
    report.machine.load_after = Some(load_average());
    if let Err(e) = stack.destroy().await {
        eprintln!("burrow-bench: cleaning up: {e:#}");
    }
    report.finish();
    Ok(report)
}

async fn run_benches(stack: &Stack, cfg: &BenchConfig, started: Instant, runs: &mut Vec<BenchRun>) {
    for bench in cfg.selected() {
        if started.elapsed() > cfg.deadline() {
            runs.push(BenchRun {
                bench,
                tries: 0,
                notes: Vec::new(),
                result: Err(format!(
                    "skipped: the run's deadline ({} s) had passed",
                    cfg.deadline_secs
                )),
            });
            continue;
        }
        println!(
            "\n== {bench:?} ({:.0} s into the run)",
            started.elapsed().as_secs_f64()
        );
        runs.push(measure(stack, cfg, bench).await);
    }
}

/// One bench, repeated after a failure or a service restart while tries are left.
async fn measure(stack: &Stack, cfg: &BenchConfig, bench: BenchId) -> BenchRun {
    let mut notes = Vec::new();
    let mut tries = 0;
    loop {
        tries += 1;
        // Start on empty job tables and an empty work queue: what an earlier bench or failed
        // try left behind would be counted or consumed by this one.
        let _ = stack.purge_work_queue().await;
        if let Err(e) = stack.reset_jobs().await {
            notes.push(format!("emptying the job tables failed: {e:#}"));
        }
        let before = stack.epochs().await;
        let result = once(stack, cfg, bench).await;
        let restarts = before.restarts_until(&stack.epochs().await);
        let last = tries >= cfg.tries.max(1);
        let disturbed = if restarts.is_empty() {
            String::new()
        } else {
            format!(" ({} meanwhile)", restarts.join(", "))
        };
        match result {
            Ok(measurement) if restarts.is_empty() || last => {
                if !restarts.is_empty() {
                    notes.push(format!(
                        "try {tries}{disturbed}: kept, no tries left; the figures may be low"
                    ));
                }
                return BenchRun {
                    bench,
                    tries,
                    notes,
                    result: Ok(measurement),
                };
            }
            Ok(_) => notes.push(format!("try {tries} discarded{disturbed}")),
            Err(e) if last => {
                notes.push(format!("try {tries} failed{disturbed}"));
                return BenchRun {
                    bench,
                    tries,
                    notes,
                    result: Err(format!("{e:#}")),
                };
            }
            Err(e) => notes.push(format!("try {tries} failed{disturbed}: {e:#}")),
        }
        println!("  repeating: {}", notes.last().map_or("", String::as_str));
        if let Err(e) = stack.wait_for_services().await {
            return BenchRun {
                bench,
                tries,
                notes,
                result: Err(format!("{e:#}")),
            };
        }
    }
}

async fn once(stack: &Stack, cfg: &BenchConfig, bench: BenchId) -> anyhow::Result<Measurement> {
    Ok(match bench {
        BenchId::Import => Measurement::Import(import::run(stack).await?),
        BenchId::Csv => Measurement::Csv(csv::run(stack).await?),
        BenchId::Typed => Measurement::Typed(typed::run(stack).await?),
        BenchId::Upsert => Measurement::Upsert(upsert::run(stack).await?),
        BenchId::Peers => Measurement::Peers(peers::run(stack).await?),
        BenchId::Overhead => Measurement::Overhead(overhead::run(stack, cfg.noop_jobs).await?),
        BenchId::Retry => Measurement::Retry(retry::run(stack, cfg.retry_jobs).await?),
        BenchId::Sweep => Measurement::Sweep(sweep::run(stack, cfg.sweep_jobs).await?),
        BenchId::Workflows => Measurement::Workflows(workflows::run(stack).await?),
        BenchId::Limits => Measurement::Limits(limits::run(stack).await?),
        BenchId::Fairness => Measurement::Fairness(fairness::run(stack).await?),
        BenchId::Latency => {
            Measurement::Latency(latency::run(stack, cfg.rate, cfg.rate_secs).await?)
        }
    })
}
