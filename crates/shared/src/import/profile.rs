//! Import profiles: which table an upload goes into, and how its columns are found, checked and
//! converted.
//!
//! A profile is written by an operator, in TOML, one file per profile in the directory named by
//! `IMPORT_PROFILES_DIR` (see [`super::Profiles`]); `people` is built in. Nothing of a profile
//! comes from an upload: the upload only names one. Identifiers are checked against
//! [`is_identifier`] when the profile is loaded and always quoted in SQL.
//!
//! ```toml
//! name = "products"
//! description = "The product catalogue, upserted on its SKU"
//! schema = "public"                # optional, default "public"
//! table = "products"
//! mode = "upsert"                  # append | replace | upsert | insert_new
//! key = ["sku"]                    # upsert / insert_new: the conflict target (a unique index)
//! date_formats = ["%d/%m/%Y"]      # optional: text dates, besides ISO 8601
//!
//! [[columns]]
//! name = "sku"                     # the table's column
//! header = "SKU"                   # optional, default: name
//! aliases = ["article", "item no"]
//! type = "text"
//! required = true
//! max_length = 32
//!
//! [[columns]]
//! name = "price"
//! type = "numeric(10,2)"
//!
//! [[columns]]
//! name = "status"
//! type = "one_of"
//! values = ["active", "retired"]
//! default = "active"
//! ```

use serde::{Deserialize, Serialize};

use super::column::{ColumnSpec, ColumnType};

/// How the rows of an upload meet the rows already in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Insert every row (one `COPY`).
    #[default]
    Append,
    /// Delete the rows an earlier run of the same job wrote, then insert (the profile needs a
    /// `job_column`): a retried import replaces instead of appending.
    Replace,
    /// Insert, or update the row with the same `key` (`COPY` into a temporary table, then one
    /// `INSERT … ON CONFLICT (key) DO UPDATE`).
    Upsert,
    /// Insert rows whose `key` is new; rows whose key exists are left as they are
    /// (`ON CONFLICT (key) DO NOTHING`).
    InsertNew,
}

/// A parsed and checked profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// What uploads name (`profile=`): `[a-z0-9_-]`, 1–64 characters.
    pub name: String,
    /// A sentence for people choosing a profile.
    pub description: String,
    /// The target table's schema.
    pub schema: String,
    /// The target table.
    pub table: String,
    /// How rows meet existing rows.
    pub mode: ImportMode,
    /// The conflict target of `upsert` and `insert_new`: target columns with a unique index.
    pub key: Vec<String>,
    /// A column that receives the job's id (required by `replace`).
    pub job_column: Option<String>,
    /// A column that receives the spreadsheet row number (1-based, the header's numbering).
    pub row_column: Option<String>,
    /// The sheet to read, by name (any case) or 0-based index; default: the first visible
    /// sheet whose first 20 rows hold the header.
    pub sheet: Option<SheetChoice>,
    /// The header's row (1-based); default: found in the first [`HEADER_SEARCH_ROWS`] rows.
    pub header_row: Option<u32>,
    /// `chrono` formats (`%d/%m/%Y`) tried on text dates after ISO 8601.
    pub date_formats: Vec<String>,
    /// The columns, in the order they are written.
    pub columns: Vec<ColumnSpec>,
}

/// Rows searched for the header row when it is not given.
pub const HEADER_SEARCH_ROWS: u32 = 20;

/// Which sheet of a workbook to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SheetChoice {
    /// 0-based position among all sheets.
    Index(usize),
    /// The sheet's name, matched ignoring case.
    Name(String),
}

impl SheetChoice {
    /// Reads a form field: digits are an index, anything else a name.
    pub fn parse(text: &str) -> SheetChoice {
        match text.trim().parse() {
            Ok(index) => SheetChoice::Index(index),
            Err(_) => SheetChoice::Name(text.trim().to_owned()),
        }
    }
}

/// Why a profile file was refused.
#[derive(Debug, thiserror::Error)]
#[error("import profile {source_name}: {reason}")]
pub struct ProfileError {
    /// The file (or `built-in`).
    pub source_name: String,
    /// What is wrong.
    pub reason: String,
}

/// The TOML form of a profile (see the module doc).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "public")]
    schema: String,
    table: String,
    #[serde(default)]
    mode: ImportMode,
    #[serde(default)]
    key: Vec<String>,
    job_column: Option<String>,
    row_column: Option<String>,
    sheet: Option<SheetChoice>,
    header_row: Option<u32>,
    #[serde(default)]
    date_formats: Vec<String>,
    columns: Vec<ColumnFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    header: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(rename = "type", default = "text")]
    ty: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    required: bool,
    default: Option<String>,
    max_length: Option<usize>,
    #[serde(default)]
    unique: bool,
}

fn public() -> String {
    "public".to_owned()
}

fn text() -> String {
    "text".to_owned()
}

/// Whether `name` is a plain SQL identifier: `[a-z_][a-z0-9_]*`, at most 63 bytes (Postgres's
/// `NAMEDATALEN - 1`). Profiles accept nothing else, so quoting never has to escape.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

impl Profile {
    /// Parses and checks a profile written in TOML; `source_name` names it in errors.
    ///
    /// # Errors
    /// [`ProfileError`]: bad TOML, an unknown field or type, an identifier that is not
    /// [`is_identifier`], a mode without what it needs, a key or header used twice, a default
    /// that does not fit its column.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Profile, ProfileError> {
        let refuse = |reason: String| ProfileError {
            source_name: source_name.to_owned(),
            reason,
        };
        let file: ProfileFile = toml::from_str(text).map_err(|e| refuse(e.to_string()))?;
        let mut columns = Vec::with_capacity(file.columns.len());
        for column in file.columns {
            let ty = ColumnType::parse(&column.ty, &column.values)
                .map_err(|e| refuse(format!("column {}: {e}", column.name)))?;
            columns.push(ColumnSpec {
                header: column.header.unwrap_or_else(|| column.name.clone()),
                name: column.name,
                aliases: column.aliases,
                ty,
                required: column.required,
                default: column.default,
                max_length: column.max_length,
                unique: column.unique,
            });
        }
        let profile = Profile {
            name: file.name,
            description: file.description,
            schema: file.schema,
            table: file.table,
            mode: file.mode,
            key: file.key,
            job_column: file.job_column,
            row_column: file.row_column,
            sheet: file.sheet,
            header_row: file.header_row,
            date_formats: file.date_formats,
            columns,
        };
        profile.check().map_err(refuse)?;
        Ok(profile)
    }

    /// The built-in `people` profile: the reference articles' sheet (`Id, FirstName, LastName,
    /// Email, Gender, IpAddress`, or Mockaroo's `id, first_name, …`) into `imported_rows`,
    /// replacing the rows of an earlier run of the same job.
    pub fn people() -> Profile {
        let column = |name: &str, header: &str, aliases: &[&str], ty, required| ColumnSpec {
            name: name.to_owned(),
            header: header.to_owned(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            ty,
            required,
            default: None,
            max_length: None,
            unique: false,
        };
        let mut columns = vec![
            column(
                "id",
                "Id",
                &["person id", "person_id"],
                ColumnType::Bigint,
                true,
            ),
            column(
                "first_name",
                "FirstName",
                &["fname", "first", "given name", "forename"],
                ColumnType::Text,
                false,
            ),
            column(
                "last_name",
                "LastName",
                &["lname", "last", "surname", "family name"],
                ColumnType::Text,
                false,
            ),
            column(
                "email",
                "Email",
                &["email address", "e-mail", "mail"],
                ColumnType::Email,
                true,
            ),
            column("gender", "Gender", &["sex"], ColumnType::Text, false),
            column(
                "ip_address",
                "IpAddress",
                &["ip", "ip addr"],
                ColumnType::Inet,
                true,
            ),
        ];
        columns[0].unique = true;
        // People describe themselves; the column is not an enumeration, only bounded.
        columns[4].max_length = Some(64);
        Profile {
            name: PEOPLE.to_owned(),
            description: "People (Id, FirstName, LastName, Email, Gender, IpAddress) into \
                          imported_rows; a re-run replaces the job's rows"
                .to_owned(),
            schema: "public".to_owned(),
            table: "imported_rows".to_owned(),
            mode: ImportMode::Replace,
            key: Vec::new(),
            job_column: Some("job_id".to_owned()),
            row_column: Some("row_number".to_owned()),
            sheet: None,
            header_row: None,
            date_formats: Vec::new(),
            columns,
        }
    }

    /// The columns `COPY` writes, in order: job column, row column, then the profile's.
    pub fn copy_columns(&self) -> Vec<&str> {
        self.job_column
            .iter()
            .chain(&self.row_column)
            .map(String::as_str)
            .chain(self.columns.iter().map(|c| c.name.as_str()))
            .collect()
    }

    /// `"schema"."table"`.
    pub fn qualified_table(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.table)
    }

    /// The positions in [`Profile::columns`] of the key columns.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'));
        if !valid_name {
            return Err(format!(
                "name {:?} must be 1-64 characters of a-z, 0-9, _ and -",
                self.name
            ));
        }
        let identifiers = [&self.schema, &self.table]
            .into_iter()
            .chain(self.job_column.iter())
            .chain(self.row_column.iter())
            .chain(self.columns.iter().map(|c| &c.name));
        for name in identifiers {
            if !is_identifier(name) {
                return Err(format!(
                    "{name:?} is not a plain SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
                ));
            }
        }
        if self.columns.is_empty() {
            return Err("no columns".to_owned());
        }
        let copy_columns = self.copy_columns();
        for (i, name) in copy_columns.iter().enumerate() {
            if copy_columns[..i].contains(name) {
                return Err(format!("column {name} is written twice"));
            }
        }
        let mut seen_keys: Vec<(String, &str)> = Vec::new();
        for column in &self.columns {
            for key in column.match_keys() {
                if key.is_empty() {
                    return Err(format!(
                        "column {}: a header or alias has no letters or digits",
                        column.name
                    ));
                }
                if let Some((_, other)) = seen_keys.iter().find(|(k, _)| *k == key) {
                    if *other != column.name {
                        return Err(format!(
                            "header {key:?} would match both {other} and {}",
                            column.name
                        ));
                    }
                }
                seen_keys.push((key, &column.name));
            }
            if let Some(default) = &column.default {
                let mut sink = Vec::new();
                super::coerce::write_text_value(&mut sink, default, column, &self.date_formats)
                    .map_err(|e| format!("column {}: default {default:?}: {e}", column.name))?;
            }
        }
        match self.mode {
            ImportMode::Replace if self.job_column.is_none() => {
                return Err("mode replace needs a job_column".to_owned())
            }
            ImportMode::Upsert | ImportMode::InsertNew => {
                if self.key.is_empty() {
                    let mode = if self.mode == ImportMode::Upsert {
                        "upsert"
                    } else {
                        "insert_new"
                    };
                    return Err(format!("mode {mode} needs a key"));
                }
                for key in &self.key {
                    let Some(column) = self.columns.iter().find(|c| &c.name == key) else {
                        return Err(format!("key {key:?} is not one of the columns"));
                    };
                    if !column.required {
                        return Err(format!("key column {key} must be required"));
                    }
                }
            }
            _ => {}
        }
        if self.header_row == Some(0) {
            return Err("header_row counts from 1".to_owned());
        }
        Ok(())
    }
}

/// The built-in profile's name, and the default of an upload.
pub const PEOPLE: &str = "people";

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTS: &str = r#"
        name = "products"
        table = "products"
        mode = "upsert"
        key = ["sku"]
        [[columns]]
        name = "sku"
        header = "SKU"
        aliases = ["article"]
        required = true
        [[columns]]
        name = "price"
        type = "numeric(10,2)"
        [[columns]]
        name = "status"
        type = "one_of"
        values = ["active", "retired"]
        default = "active"
    "#;

    #[test]
    fn a_profile_file_is_parsed_with_its_defaults() {
        let profile = Profile::from_toml("products.toml", PRODUCTS).expect("valid");
        assert_eq!(profile.schema, "public");
        assert_eq!(profile.mode, ImportMode::Upsert);
        assert_eq!(
            profile.columns[1].ty,
            ColumnType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(profile.columns[0].header, "SKU");
        assert_eq!(profile.columns[1].header, "price");
        assert_eq!(profile.copy_columns(), ["sku", "price", "status"]);
        assert_eq!(profile.qualified_table(), "\"public\".\"products\"");
    }

    #[test]
    fn the_built_in_people_profile_passes_its_own_checks() {
        Profile::people().check().expect("valid");
    }

    #[test]
    fn unsafe_identifiers_and_incomplete_modes_are_refused() {
        let cases = [
            (
                PRODUCTS.replace(
                    "\"products\"\n        mode",
                    "\"products; drop\"\n        mode",
                ),
                "not a plain SQL identifier",
            ),
            (PRODUCTS.replace("key = [\"sku\"]", ""), "needs a key"),
            (
                PRODUCTS.replace("key = [\"sku\"]", "key = [\"price\"]"),
                "must be required",
            ),
            (PRODUCTS.replace("numeric(10,2)", "money"), "unknown type"),
            (
                PRODUCTS.replace("default = \"active\"", "default = \"gone\""),
                "default \"gone\"",
            ),
            (
                PRODUCTS.replace("aliases = [\"article\"]", "aliases = [\"Price\"]"),
                "would match both",
            ),
            (
                PRODUCTS.replace("mode = \"upsert\"", "mode = \"replace\""),
                "needs a job_column",
            ),
            (format!("{PRODUCTS}\nsurprise = 1"), "unknown field"),
        ];
        for (text, expected) in cases {
            let err = Profile::from_toml("p.toml", &text)
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
            assert!(err.starts_with("import profile p.toml: "), "{err}");
        }
    }

    #[test]
    fn identifiers_are_plain_lowercase_names() {
        assert!(is_identifier("imported_rows"));
        assert!(is_identifier("_t2"));
        for bad in ["", "2t", "Rows", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}
