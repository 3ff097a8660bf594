//! Postgres set-up shared by the binaries: create the database if missing, run migrations.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// The embedded migrations from the workspace's `migrations/` folder.
///
/// An app may keep its own tables, and its own migrations, in the same database: sqlx records
/// both in `_sqlx_migrations`, so each migrator must ignore the other's versions
/// (`ignore_missing`, as [`migrate`] sets) and the versions must not collide (burrow's are
/// `2026112100xxxx`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool of at most `max_connections` connections to `database_url`.
///
/// # Errors
/// If the URL is invalid or the first connection fails.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(database_url)
        .await
}

/// Creates the database named in `database_url` if it does not exist, connecting to the
/// server's `postgres` maintenance database to do so.
///
/// # Errors
/// If the server is unreachable or the role may not create databases.
pub async fn ensure_database(database_url: &str) -> Result<(), sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote it the way Postgres does.
        let quoted = name.replace('"', "\"\"");
        sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut admin)
            .await?;
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Applies pending migrations (idempotent; concurrent callers serialise on sqlx's lock).
/// Versions applied by an app's own migrator in the same database are ignored.
///
/// # Errors
/// If a migration fails or an applied one was changed.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("../../migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
