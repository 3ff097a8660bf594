//! Writing COPY text into a profile's table, by its mode.
//!
//! - `append`: one `COPY "schema"."table" (columns) FROM STDIN`.
//! - `replace`: `DELETE … WHERE job_column = $job`, then the COPY.
//! - `upsert` / `insert_new`: COPY into a temporary table shaped like the target (dropped at
//!   commit), then one `INSERT … SELECT … ON CONFLICT (key) DO UPDATE SET …` (or
//!   `DO NOTHING`). A key twice in one file is refused before (Postgres would refuse the
//!   statement: "ON CONFLICT DO UPDATE command cannot affect row a second time").
//!
//! A profile with a job column first locks its job's row `FOR KEY SHARE`: the rows name the
//! job, and the lock (the one a foreign-key check takes) makes a concurrent `DELETE` of the job
//! wait for this transaction, so rows never outlive their job. `imported_rows` has no foreign
//! key for that reason: checked once per row it cost more than the COPY (see its migration).
//!
//! Every statement runs in the caller's transaction; identifiers come from the checked
//! profile (see `profile.rs`) and are quoted.

use sqlx::postgres::PgCopyIn;
use sqlx::PgConnection;
use uuid::Uuid;

use super::profile::{ImportMode, Profile};

/// The temporary table of upserts; one per transaction (dropped on commit).
const STAGE: &str = "burrow_import_stage";

/// Opens the COPY that the rows stream into (after the mode's preparation).
///
/// # Errors
/// Postgres's: no such table or column, no permission; [`sqlx::Error::RowNotFound`] when the
/// profile has a job column and the job is gone.
pub async fn begin<'c>(
    conn: &'c mut PgConnection,
    profile: &Profile,
    job_id: Uuid,
) -> Result<PgCopyIn<&'c mut PgConnection>, sqlx::Error> {
    if profile.job_column.is_some() {
        sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR KEY SHARE")
            .bind(job_id)
            .fetch_one(&mut *conn)
            .await?;
    }
    let columns = quoted_list(&profile.copy_columns());
    let target = match profile.mode {
        ImportMode::Append => profile.qualified_table(),
        ImportMode::Replace => {
            let job_column = profile
                .job_column
                .as_deref()
                .expect("checked: replace has a job column");
            sqlx::query(&format!(
                "DELETE FROM {} WHERE \"{job_column}\" = $1",
                profile.qualified_table()
            ))
            .bind(job_id)
            .execute(&mut *conn)
            .await?;
            profile.qualified_table()
        }
        ImportMode::Upsert | ImportMode::InsertNew => {
            // Dropped at commit, gone at rollback: each run's transaction makes a fresh one.
            sqlx::query(&format!(
                "CREATE TEMPORARY TABLE {STAGE} ON COMMIT DROP AS \
                 SELECT {columns} FROM {} WITH NO DATA",
                profile.qualified_table()
            ))
            .execute(&mut *conn)
            .await?;
            STAGE.to_owned()
        }
    };
    conn.copy_in_raw(&format!("COPY {target} ({columns}) FROM STDIN"))
        .await
}

/// Applies the staged rows of an upsert or insert_new; nothing to do for the other modes.
/// Returns the rows written: `copied` for append and replace; inserted plus updated for upsert;
/// inserted for insert_new.
///
/// # Errors
/// Postgres's: e.g. no unique index on the key ("there is no unique or exclusion constraint
/// matching the ON CONFLICT specification").
pub async fn finish(
    conn: &mut PgConnection,
    profile: &Profile,
    copied: u64,
) -> Result<u64, sqlx::Error> {
    let action = match profile.mode {
        ImportMode::Append | ImportMode::Replace => return Ok(copied),
        ImportMode::InsertNew => "DO NOTHING".to_owned(),
        ImportMode::Upsert => {
            let updates: Vec<String> = profile
                .copy_columns()
                .into_iter()
                .filter(|c| !profile.key.iter().any(|k| k == c))
                .map(|c| format!("\"{c}\" = EXCLUDED.\"{c}\""))
                .collect();
            if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            }
        }
    };
    let columns = quoted_list(&profile.copy_columns());
    let key = quoted_list(&profile.key.iter().map(String::as_str).collect::<Vec<_>>());
    let done = sqlx::query(&format!(
        "INSERT INTO {} ({columns}) SELECT {columns} FROM {STAGE} ON CONFLICT ({key}) {action}",
        profile.qualified_table()
    ))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
