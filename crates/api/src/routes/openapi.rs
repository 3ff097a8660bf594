//! `GET /api/openapi.json`: the api's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the types they take and return.
//!
//! [`ApiDoc`] lists the documented operations; [`super::ROUTES`] lists what [`super::router`]
//! serves, and `tests/openapi.rs` holds the document, that list and the running router together.
//! The dashboard (`/`, `/dashboard/{file}`) is a page for people, not api, and is left out.
//!
//! Most schemas come from the types themselves (`JobRow`, `JobDetail`, …). A few answers are
//! built with `serde_json::json!`; their shapes are written down here as schema-only types
//! ([`schemas`](super::schemas): `JobList`, `Health`, `Readiness`), and so are the multipart form of an upload
//! (`UploadForm`), one event of a job's event stream (`JobStreamEvent`) and the body of
//! every error (`ApiError`'s schema, `ErrorBody`).
//!
//! [`ApiDoc`] is what every build shares; the api serves [`document`]: that, with the job kinds
//! of its registry (see [`super::openapi_kinds`]), so a custom registry is what the document
//! shows. `just contract` (schemathesis) checks that the api accepts what the document allows
//! and refuses what it does not.

use axum::extract::State;
use axum::Json;
use burrow_shared::handler::Registry;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ApiError;
use crate::state::AppState;

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
        super::batches::create_workflow_batch,
        super::batches::get_workflow_batch,
        super::batch_events::batch_events,
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
        super::import_preview::preview_import,
        super::import_profiles::list_profiles,
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

/// The document this api serves: [`ApiDoc`] with the kinds of `registry` (their names, and the
/// payload of each, see [`super::openapi_kinds`]) in the job schemas.
pub fn document(registry: &Registry) -> Value {
    // Serialising a document utoipa built cannot fail: every value in it is JSON already.
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // utoipa says this for types with serde's `deny_unknown_fields`; the form is no serde type.
    document["components"]["schemas"]["UploadForm"]["additionalProperties"] = Value::Bool(false);
    super::openapi_kinds::specialise(&mut document, registry);
    document
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
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.registry))
}
