//! `burrow-bench`: reads its settings, runs the benches, prints the table, writes
//! `bench/results/latest.json`, and exits 0 when every target was met, 1 when one was missed,
//! 2 when the bench itself could not run.

use std::process::ExitCode;

use burrow_bench::config::BenchConfig;
use clap::Parser as _;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = BenchConfig::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let report = match burrow_bench::run::run(&cfg, shutdown).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("burrow-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!("\n{}", report.markdown());
    if let Err(e) = report.write_json(&cfg.out) {
        eprintln!("burrow-bench: {e:#}");
        return ExitCode::from(2);
    }
    println!("written to {}", cfg.out.display());
    let missed = report.missed();
    if missed.is_empty() {
        println!("every target met");
        ExitCode::SUCCESS
    } else {
        println!("MISSED:");
        for line in missed {
            println!("  - {line}");
        }
        ExitCode::FAILURE
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM, so the run stops its processes and
/// drops its database before exiting.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    shutdown.cancel();
}
