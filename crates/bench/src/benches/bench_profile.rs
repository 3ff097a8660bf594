//! An import profile of the bench's own (rows 8 and 9): a typed people table created in the
//! bench database, and its profile written as TOML into a temporary directory that the api and
//! the worker are given as `IMPORT_PROFILES_DIR`. The table is dropped and the directory removed
//! by [`BenchProfile::remove`] (the directory also when the value is dropped, e.g. after a
//! failure; the table then goes with the bench database).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::stack::Stack;

/// The Gender values the people generator writes (`burrow_shared::fixtures::GENDERS`, which a
/// test compares with): the typed profile's `one_of` column lists them.
const GENDERS: [&str; 8] = [
    "Male",
    "Female",
    "Non-binary",
    "Genderfluid",
    "Agender",
    "Polygender",
    "Bigender",
    "Genderqueer",
];

/// How the bench's profile meets the table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `mode = "append"` into a table without a key (one `COPY`, as the raw reference).
    Append,
    /// `mode = "upsert"`, `key = ["id"]`, into a table whose primary key is `id`.
    Upsert,
}

/// A profile directory and its table, alive until [`BenchProfile::remove`].
#[derive(Debug)]
pub struct BenchProfile {
    /// The profile's name (what the upload's `profile=` says).
    pub name: &'static str,
    /// The table it writes (a plain identifier in `public`).
    pub table: &'static str,
    dir: PathBuf,
}

impl BenchProfile {
    /// Creates the table (dropped first if an earlier run left it) and writes the profile.
    ///
    /// # Errors
    /// If the table or the file cannot be created.
    pub async fn create(
        stack: &Stack,
        name: &'static str,
        table: &'static str,
        mode: Mode,
    ) -> anyhow::Result<BenchProfile> {
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .execute(&stack.db)
            .await?;
        sqlx::query(&table_ddl(table, mode))
            .execute(&stack.db)
            .await
            .with_context(|| format!("creating {table}"))?;
        let dir = std::env::temp_dir().join(format!(
            "burrow-bench-profiles-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, profile_toml(name, table, mode))
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(BenchProfile { name, table, dir })
    }

    /// The environment that gives the api and the worker this profile.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("IMPORT_PROFILES_DIR", self.dir.display().to_string())]
    }

    /// Rows in the table now.
    ///
    /// # Errors
    /// The database error.
    pub async fn count(&self, stack: &Stack) -> anyhow::Result<u64> {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{}\"", self.table))
            .fetch_one(&stack.db)
            .await?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// Empties the table and forces a checkpoint (as before every import of `imported_rows`).
    ///
    /// # Errors
    /// The database error.
    pub async fn truncate(&self, stack: &Stack) -> anyhow::Result<()> {
        sqlx::query(&format!("TRUNCATE \"{}\"", self.table))
            .execute(&stack.db)
            .await?;
        sqlx::query("CHECKPOINT").execute(&stack.db).await?;
        Ok(())
    }

    /// Drops the table and removes the directory (when `self` goes).
    ///
    /// # Errors
    /// If the table cannot be dropped.
    pub async fn remove(self, stack: &Stack) -> anyhow::Result<()> {
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{}\"", self.table))
            .execute(&stack.db)
            .await?;
        Ok(())
    }
}

impl Drop for BenchProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The table: the six people columns typed as the profile writes them (`ip_address` is an
/// `inet`, so Postgres parses it on both sides), `id` the primary key in upsert mode.
fn table_ddl(table: &str, mode: Mode) -> String {
    let key = match mode {
        Mode::Append => "",
        Mode::Upsert => " PRIMARY KEY",
    };
    format!(
        "CREATE TABLE \"{table}\" (id bigint NOT NULL{key}, first_name text, last_name text, \
         email text NOT NULL, gender text, ip_address inet NOT NULL)"
    )
}

/// The profile's TOML: typed columns (bigint, text, email, one_of, inet) matched by their
/// names (`first_name` matches `FirstName`).
fn profile_toml(name: &str, table: &str, mode: Mode) -> String {
    let mode_lines = match mode {
        Mode::Append => "mode = \"append\"\n".to_owned(),
        Mode::Upsert => "mode = \"upsert\"\nkey = [\"id\"]\n".to_owned(),
    };
    let genders = GENDERS
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "name = \"{name}\"\n\
         description = \"burrow-bench: the people sheet into a typed table\"\n\
         table = \"{table}\"\n\
         {mode_lines}\n\
         [[columns]]\nname = \"id\"\ntype = \"bigint\"\nrequired = true\n\n\
         [[columns]]\nname = \"first_name\"\ntype = \"text\"\n\n\
         [[columns]]\nname = \"last_name\"\ntype = \"text\"\n\n\
         [[columns]]\nname = \"email\"\ntype = \"email\"\nrequired = true\n\n\
         [[columns]]\nname = \"gender\"\ntype = \"one_of\"\nvalues = [{genders}]\n\n\
         [[columns]]\nname = \"ip_address\"\ntype = \"inet\"\nrequired = true\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_shared::import::{ImportMode, Profile};

    #[test]
    fn both_profiles_are_accepted_by_burrow() {
        let append = Profile::from_toml("t", &profile_toml("bench-typed", "t_typed", Mode::Append))
            .expect("append profile");
        assert_eq!(append.mode, ImportMode::Append);
        assert_eq!(append.columns.len(), 6);
        let upsert = Profile::from_toml("t", &profile_toml("bench-upsert", "t_up", Mode::Upsert))
            .expect("upsert profile");
        assert_eq!(upsert.mode, ImportMode::Upsert);
        assert_eq!(upsert.key, vec!["id".to_owned()]);
    }

    #[test]
    fn the_one_of_values_are_the_generators() {
        assert_eq!(GENDERS, burrow_shared::fixtures::GENDERS);
    }

    #[test]
    fn only_the_upsert_table_has_a_key() {
        assert!(!table_ddl("t", Mode::Append).contains("PRIMARY KEY"));
        assert!(table_ddl("t", Mode::Upsert).contains("id bigint NOT NULL PRIMARY KEY"));
    }
}
