//! Schemas that exist only for the OpenAPI document: bodies the handlers build with `json!`,
//! the multipart upload form, the event-stream events, the error body. The handlers' own
//! annotations and [`super::openapi`] both name them; they name neither.

use burrow_shared::engine::batches::BatchSummary;
use burrow_shared::import::OnError;
use burrow_shared::jobs::JobRow;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ApiError;

/// The JSON body of every error answer (4xx and 5xx): the schema of `ApiError`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: ApiError's IntoResponse writes the body"
)]
pub struct ErrorBody {
    /// A stable code: `bad_request` (400), `unauthorized` (401), `forbidden` (403),
    /// `not_found` (404), `conflict` (409), `payload_too_large` (413),
    /// `unsupported_media_type` (415), `unprocessable` (422), `too_many_requests` (429),
    /// `internal` (500), `broker_unavailable` (503).
    #[schema(example = "not_found")]
    error: String,
    /// The reason in words, for people (500s say only `internal error`).
    #[schema(example = "no job 01a1fca3-194d-70b7-906a-3004eabb129d")]
    message: String,
}

impl PartialSchema for ApiError {
    fn schema() -> RefOr<Schema> {
        ErrorBody::schema()
    }
}

impl ToSchema for ApiError {}

/// The multipart/form-data body of an upload (`POST /api/jobs`), which makes an `import_xlsx`
/// job. Other fields are refused (400).
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the upload handler reads the fields one by one"
)]
pub struct UploadForm {
    /// Exactly one spreadsheet — .xlsx, .xlsm, .xlsb, .xls, .ods or CSV (UTF-8, UTF-16 with a
    /// BOM or Windows-1252; delimiter sniffed), recognised by content, not by name — at most
    /// `UPLOAD_MAX_BYTES` bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The owner tag: at most 128 characters, none of them a control character; trimmed, and
    /// blank means none.
    #[schema(
        nullable = false,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    user_id: Option<String>,
    /// What to do with invalid rows (default `reject`).
    #[schema(nullable = false)]
    on_error: Option<OnError>,
    /// The import profile (default `people`; the others: `GET /api/import-profiles`); an
    /// unknown one is refused with 422.
    #[schema(nullable = false, pattern = r"^[a-z0-9_-]{1,64}$")]
    profile: Option<String>,
    /// The sheet: its name (any case) or its 0-based position; default: the profile's, else
    /// the first visible sheet whose first 20 rows hold the header. No such sheet: 422. Not
    /// blank: the pattern spells out Unicode's `White_Space` set (what the api trims), since
    /// `\s` means other sets in other regex dialects (ECMA's lacks U+0085, Python's has U+001C).
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = r"[^\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    sheet: Option<String>,
    /// The header's row, from 1; default: the first of the first 20 rows that holds the
    /// profile's required columns. A row that does not: 422.
    #[schema(nullable = false, minimum = 1, maximum = 1048576)]
    header_row: Option<u32>,
}

/// One event of `GET /api/jobs/{id}/events` (for an event stream, OpenAPI 3.1 tools read the
/// media type's `schema` as the schema of each event): `event: job`, and as `data` the job as
/// JSON ([`JobRow`]).
pub struct JobStreamEvent;

impl PartialSchema for JobStreamEvent {
    fn schema() -> RefOr<Schema> {
        stream_event("job", &JobRow::name())
    }
}

impl ToSchema for JobStreamEvent {}

/// One event of `GET /api/batches/{id}/events`: `event: batch`, and as `data` the batch as
/// JSON ([`BatchSummary`]).
pub struct BatchStreamEvent;

impl PartialSchema for BatchStreamEvent {
    fn schema() -> RefOr<Schema> {
        stream_event("batch", &BatchSummary::name())
    }
}

impl ToSchema for BatchStreamEvent {}

/// An SSE event named `event` whose `data` is the JSON of the schema `data_schema`.
fn stream_event(event: &str, data_schema: &str) -> RefOr<Schema> {
    let data = Ref::from_schema_name(data_schema.to_owned());
    // JSON Schema's `contentSchema` (2020-12): the schema of the decoded `data` text.
    // utoipa has no builder for it; extensions serialise as given.
    let decoded = Extensions::from_iter([(
        "contentSchema",
        serde_json::to_value(data).unwrap_or_default(),
    )]);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([event]))
                .description(Some(format!("Always `{event}`."))),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .extensions(Some(decoded))
                .description(Some(format!(
                    "The {event} as JSON (`{data_schema}`), as it is after the change."
                ))),
        )
        .required("event")
        .required("data")
        .into()
}

/// A file's bytes (`type: string, format: binary`), e.g. a job's result file.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// Jobs just accepted: `{"jobs": [...]}`, in request order.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the handlers build the body with json!"
)]
pub struct JobList {
    /// The accepted jobs.
    jobs: Vec<JobRow>,
}

/// The answer of `GET /healthz`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the handler builds the body with json!"
)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// The answer of `GET /readyz`: 200 with `ready` or `degraded` while Postgres answers, 503
/// with `unavailable` (and only `postgres` and `rabbitmq`) while it does not.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the handler builds the body with json!"
)]
pub struct Readiness {
    /// `ready`, `degraded` (see `reasons`) or `unavailable` (Postgres is down).
    #[schema(example = "ready")]
    status: String,
    /// `up` or `down`.
    postgres: String,
    /// `up` or `down`, as last seen by the outbox relay.
    rabbitmq: String,
    /// Accepted jobs whose message is not published yet, across replicas.
    outbox_pending: Option<i64>,
    /// Jobs queued and due.
    jobs_waiting: Option<u64>,
    /// Why the api is `degraded`; empty when `ready`.
    reasons: Option<Vec<String>>,
}
