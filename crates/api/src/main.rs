//! `burrow-api`: `serve` (the default) runs the HTTP api; `migrate` creates the database if
//! missing and applies the migrations.

use anyhow::Context as _;
use burrow_api::config::ApiConfig;
use burrow_api::Application;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "burrow-api", about = "burrow's HTTP api")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ApiConfig,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP api (default).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate(&cli.config.database_url).await,
        Command::Serve => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            Application::build(&cli.config)
                .await?
                .run_until_stopped(shutdown)
                .await
        }
    }
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    burrow_shared::db::ensure_database(database_url)
        .await
        .context("creating the database")?;
    let db = burrow_shared::db::connect(database_url, 1)
        .await
        .context("connecting to DATABASE_URL")?;
    burrow_shared::db::migrate(&db).await.context("migrating")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); `LOG_FORMAT=json` for JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
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
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
