//! `GET /api/openapi.json`: the api's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the types they take and return.
//!
//! [`ApiDoc`] lists the documented operations; [`super::ROUTES`] lists what [`super::router`]
//! serves, and `tests/openapi.rs` holds the document, that list and the running router together.
//! The dashboard (`/`, `/dashboard/{file}`) is a page for people, not api, and is left out.
//!
//! Most schemas come from the types themselves (`JobRow`, `JobDetail`, …). A few answers are
//! built with `serde_json::json!`; their shapes are written down here as schema-only types
//! ([`JobList`], [`Health`], [`Readiness`]), and so are the multipart form of an upload
//! ([`UploadForm`]) and the body of every error ([`ApiError`]'s schema, [`ErrorBody`]).

use axum::Json;
use burrow_shared::import::OnError;
use burrow_shared::jobs::JobRow;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::ApiError;

/// The security scheme of an API key sent as `Authorization: Bearer <key>` (the `security` of
/// [`ApiDoc`] names it too).
pub const BEARER_SCHEME: &str = "api_key";
/// The same key sent as `X-Api-Key: <key>` instead.
pub const HEADER_SCHEME: &str = "x_api_key";

/// The OpenAPI document: every api route of [`super::router`] (see [`super::ROUTES`]), the
/// schemas they use, and the API key schemes, required globally; the routes that need no key
/// (health, readiness, metrics, this document) say `security: []`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "burrow",
        description = "A background job system: submit jobs (JSON, or an .xlsx upload to \
            import), follow them, cancel and retry them, and watch the queues.\n\n\
            Every error answers with the JSON body `ApiError`: `{\"error\": code, \
            \"message\": text}`."
    ),
    paths(
        super::create::create_job,
        super::create::create_batch,
        super::jobs::list_jobs,
        super::jobs::get_job,
        super::events::job_events,
        super::result::job_result,
        super::control::cancel_job,
        super::control::retry_job,
        super::bulk_retry::retry_jobs,
        super::failures::failures,
        super::stats::stats,
        super::simulate::simulate,
        super::dead_letters::redrive_dead_letters,
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        openapi_json,
    ),
    components(schemas(ApiError)),
    modifiers(&ApiKeys),
    security(("api_key" = []), ("x_api_key" = [])),
    tags(
        (name = "jobs", description = "Submitting, reading and controlling jobs"),
        (name = "operations", description = "Queues, failures and dead letters, for the dashboard and operators"),
        (name = "health", description = "Liveness, readiness and metrics; no authentication"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the API key schemes ([`BEARER_SCHEME`], [`HEADER_SCHEME`]), and to every operation that
/// needs a key (its `security` is the global one) the answers of a refused key: 401 and 429.
struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .description(Some("An API key, sent as `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            HEADER_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "The same API key, sent as `X-Api-Key: <key>`.",
            ))),
        );
        let error = || {
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name(
                    ApiError::name().into_owned(),
                ))))
                .build()
        };
        let unauthorized = ResponseBuilder::new()
            .description("No API key, or not a valid one (`WWW-Authenticate: Bearer`)")
            .content("application/json", error())
            .build();
        let too_many = ResponseBuilder::new()
            .description("The key sent too many requests; try again after `Retry-After` seconds")
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait"))
                    .build(),
            )
            .content("application/json", error())
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.is_some() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| unauthorized.clone().into());
                responses
                    .entry("429".to_owned())
                    .or_insert_with(|| too_many.clone().into());
            }
        }
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(),
    responses(
        (status = 200, description = "The OpenAPI document of this api", body = Object)
    )
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

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
/// job. Other fields are ignored.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the upload handler reads the fields one by one"
)]
pub struct UploadForm {
    /// Exactly one `.xlsx` workbook (checked by content, not by name), at most
    /// `UPLOAD_MAX_BYTES` bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The owner tag, at most 128 printable characters.
    user_id: Option<String>,
    /// What to do with invalid rows (default `reject`).
    on_error: Option<OnError>,
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
