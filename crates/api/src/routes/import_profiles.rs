//! `GET /api/import-profiles`: the import profiles an upload may name, with their columns.

use axum::extract::State;
use axum::Json;
use burrow_shared::import::{ColumnType, ImportMode, Profile};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::state::AppState;

/// One import profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// What an upload names (`profile=`).
    pub name: String,
    /// For people choosing one.
    pub description: String,
    /// The target table, `schema.table`.
    pub table: String,
    /// How rows meet existing rows.
    pub mode: ImportMode,
    /// The conflict target of `upsert` and `insert_new`.
    pub key: Vec<String>,
    /// The columns, in order.
    pub columns: Vec<ColumnView>,
}

/// One column of a profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    /// The table's column.
    pub name: String,
    /// The header expected in the sheet.
    pub header: String,
    /// Other headers accepted.
    pub aliases: Vec<String>,
    /// `text`, `integer`, `bigint`, `numeric(p,s)`, `boolean`, `date`, `timestamptz`, `uuid`,
    /// `email`, `inet` or `one_of`.
    #[schema(rename = "type")]
    #[serde(rename = "type")]
    pub ty: String,
    /// For `one_of`: the values allowed.
    pub values: Vec<String>,
    /// Whether the header and a value in every row are required.
    pub required: bool,
    /// Written when the cell is empty.
    pub default: Option<String>,
    /// Longest value, in characters.
    pub max_length: Option<usize>,
    /// Whether a value may appear only once per file.
    pub unique: bool,
}

impl From<&Profile> for ProfileView {
    fn from(profile: &Profile) -> ProfileView {
        ProfileView {
            name: profile.name.clone(),
            description: profile.description.clone(),
            table: format!("{}.{}", profile.schema, profile.table),
            mode: profile.mode,
            key: profile.key.clone(),
            columns: profile
                .columns
                .iter()
                .map(|c| ColumnView {
                    name: c.name.clone(),
                    header: c.header.clone(),
                    aliases: c.aliases.clone(),
                    ty: c.ty.name(),
                    values: match &c.ty {
                        ColumnType::OneOf(values) => values.clone(),
                        _ => Vec::new(),
                    },
                    required: c.required,
                    default: c.default.clone(),
                    max_length: c.max_length,
                    unique: c.unique,
                })
                .collect(),
        }
    }
}

/// Lists the import profiles.
#[utoipa::path(
    get,
    path = "/api/import-profiles",
    tag = "jobs",
    responses(
        (status = 200, description = "Every profile, by name", body = Vec<ProfileView>),
    )
)]
pub async fn list_profiles(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<Vec<ProfileView>> {
    Json(state.profiles.iter().map(ProfileView::from).collect())
}
