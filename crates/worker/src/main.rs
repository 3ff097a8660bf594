//! `burrow-worker`: `run` (the default) consumes jobs until SIGTERM or SIGINT; `redrive` moves
//! dead-lettered job messages back to the work queue.

use std::time::Duration;

use burrow_shared::import::ImportOptions;
use burrow_shared::telemetry::{self, TelemetryConfig};
use burrow_worker::config::WorkerConfig;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "burrow-worker",
    about = "burrow's worker: consumes jobs from RabbitMQ and runs them"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: WorkerConfig,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume and run jobs (default).
    Run,
    /// Move job messages from the DLQ back to the work queue, then exit.
    Redrive {
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(TelemetryConfig::from_env("burrow-worker"))?;
    let result = run(cli).await;
    telemetry.shutdown().await;
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            // The engine knows no kinds: this binary runs the ones burrow ships.
            let import = ImportOptions {
                row_delay: Duration::from_millis(cli.config.import_row_delay_ms),
                limits: cli.config.import.limits(),
                profiles: cli.config.import.profiles()?,
                ..ImportOptions::default()
            };
            let registry = burrow_shared::kinds::shipped(import, cli.config.webhook.config());
            burrow_worker::run(cli.config, registry, shutdown).await
        }
        Command::Redrive { limit } => {
            let report = burrow_worker::redrive(&cli.config, limit).await?;
            println!(
                "re-driven: {}, left in the DLQ: {}",
                report.moved, report.left
            );
            Ok(())
        }
    }
}

/// Cancels `shutdown` on the first SIGTERM (container stop) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
