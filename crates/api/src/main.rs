//! `burrow-api`: `serve` (the default) runs the HTTP api; `migrate` creates the database if
//! missing and applies the migrations.

use anyhow::Context as _;
use burrow_api::config::ApiConfig;
use burrow_api::Application;
use burrow_shared::telemetry::{self, TelemetryConfig};
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
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// The owner tag of the key's jobs.
        #[arg(long)]
        user: String,
        /// A name to tell the key apart in listings.
        #[arg(long, default_value = "")]
        name: String,
        /// An admin key sees and controls every job.
        #[arg(long)]
        admin: bool,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke the key(s) starting with this prefix (as listed).
    Revoke {
        /// The key's first characters, e.g. `bk_1a2b3c4d`.
        prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(TelemetryConfig::from_env("burrow-api"))?;
    let result = run(cli).await;
    telemetry.shutdown().await;
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => migrate(&cli.config.database_url).await,
        Command::Keys(command) => keys(&cli.config.database_url, command).await,
        Command::Serve => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            // The engine knows no kinds: this binary accepts the ones burrow ships.
            let registry = burrow_shared::kinds::shipped(Default::default(), cli.config.webhook());
            Application::build(&cli.config, registry)
                .await?
                .run_until_stopped(shutdown)
                .await
        }
    }
}

async fn keys(database_url: &str, command: KeysCommand) -> anyhow::Result<()> {
    use burrow_shared::api_keys;
    let db = burrow_shared::db::connect(database_url, 1)
        .await
        .context("connecting to DATABASE_URL")?;
    match command {
        KeysCommand::Create { user, name, admin } => {
            let name = if name.is_empty() { user.clone() } else { name };
            println!("{}", api_keys::create_key(&db, &name, &user, admin).await?);
        }
        KeysCommand::List => {
            for key in api_keys::list_keys(&db).await? {
                let revoked = key
                    .revoked_at
                    .map(|at| format!(" revoked {at}"))
                    .unwrap_or_default();
                let role = if key.is_admin { "admin" } else { "user" };
                println!(
                    "{}…  {}  {} ({role}){revoked}",
                    key.prefix, key.name, key.user_id
                );
            }
        }
        KeysCommand::Revoke { prefix } => {
            let revoked = api_keys::revoke_keys(&db, &prefix).await?;
            anyhow::ensure!(revoked > 0, "no active key starts with {prefix:?}");
            println!("revoked {revoked} key(s)");
        }
    }
    Ok(())
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
