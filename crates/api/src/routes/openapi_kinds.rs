//! The job kinds in the served OpenAPI document: `JobSpec` (`POST /api/jobs`) and
//! `BatchJobSpec` (each job of `POST /api/jobs/batch`) become one variant per kind of the api's
//! registry (`oneOf`), each naming its kind (`const`) and its payload's schema.
//!
//! Kinds made by an upload (`import_xlsx`) are left out: their JSON jobs are refused. The
//! payload schemas of the shipped kinds are written down here ([`payload_schema`]); a kind this
//! module does not know (a custom registry's) gets `Payload`, what the api itself checks before
//! the kind's handler does: a JSON object with no U+0000 in any string or name (Postgres's
//! `jsonb` cannot store it). The fields every kind shares (`priority`, `run_at`, `user_id`,
//! `idempotency_key`) come from `JobSpec`'s own attributes.

use burrow_shared::handler::{JobHandler, Registry};
use burrow_shared::kinds::{ExportXlsx, Noop, Sleep, Webhook};
use serde_json::{json, Value};

/// A string without U+0000.
const NO_NUL: &str = "^[^\\u0000]*$";

/// Longest `sleep`, in milliseconds (the `sleep` kind's `MAX_SLEEP_MS`: one hour).
const MAX_SLEEP_MS: u64 = 3_600_000;

/// A kind's payload as the document states it.
struct PayloadSchema {
    /// The JSON Schema of the payload.
    schema: Value,
    /// Whether the job must carry it (the default `{}` is not a valid payload of the kind).
    required: bool,
}

/// The payload schema of a shipped kind; `None` for others.
fn payload_schema(kind: &str) -> Option<PayloadSchema> {
    if kind == Noop::KIND {
        return Some(PayloadSchema {
            schema: json!({
                "allOf": [{ "$ref": "#/components/schemas/Payload" }],
                "description": "Any object; its fields are ignored.",
            }),
            required: false,
        });
    }
    if kind == Sleep::KIND {
        return Some(PayloadSchema {
            schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["ms"],
                "properties": {
                    "ms": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_SLEEP_MS,
                        "description": "Milliseconds to sleep, at most one hour.",
                    },
                },
            }),
            required: true,
        });
    }
    if kind == ExportXlsx::KIND {
        return Some(PayloadSchema {
            schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "source_job_id": {
                        "type": ["string", "null"],
                        "format": "uuid",
                        "description": "The `import_xlsx` job whose rows to export; default: the job's `import_xlsx` parent (`depends_on`).",
                    },
                    "gender": {
                        "type": ["string", "null"],
                        "pattern": NO_NUL,
                        "description": "Only rows with this gender (case-insensitive).",
                    },
                    "email_domain": {
                        "type": ["string", "null"],
                        "pattern": NO_NUL,
                        "description": "Only rows whose email is at this domain (case-insensitive).",
                    },
                },
            }),
            // Every field is optional: without a source the job exports its import parent.
            required: false,
        });
    }
    if kind == Webhook::KIND {
        return Some(PayloadSchema {
            schema: json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["url"],
                "properties": {
                    "url": {
                        "type": "string",
                        "format": "uri",
                        "pattern": NO_NUL,
                        "description": "Where to POST: an http or https URL whose host is in WEBHOOK_ALLOWED_HOSTS.",
                    },
                    "body": {
                        "description": "The JSON to send (signed, Standard Webhooks); absent or null: `{}`.",
                        "anyOf": [
                            { "type": "null" },
                            { "$ref": "#/components/schemas/PayloadValue" },
                        ],
                    },
                },
            }),
            required: true,
        });
    }
    None
}

/// Turns the generated `JobSpec` (the fields every kind shares) of `document` into one variant
/// per JSON-creatable kind of `registry`, as `BatchJobSpec` (with `idempotency_key`) and
/// `JobSpec` (without: a single job takes the `Idempotency-Key` header), and points
/// `BatchSpec.jobs` at `BatchJobSpec`.
pub fn specialise(document: &mut Value, registry: &Registry) {
    let schemas = &mut document["components"]["schemas"];
    schemas["Payload"] = json!({
        "type": "object",
        "description": "A JSON object with no U+0000 in any string or name (Postgres's `jsonb` cannot store it).",
        "propertyNames": { "pattern": NO_NUL },
        "additionalProperties": { "$ref": "#/components/schemas/PayloadValue" },
    });
    schemas["PayloadValue"] = json!({
        "description": "A JSON value with no U+0000 in any string or name.",
        "anyOf": [
            { "type": ["null", "boolean", "number"] },
            { "type": "string", "pattern": NO_NUL },
            { "type": "array", "items": { "$ref": "#/components/schemas/PayloadValue" } },
            { "$ref": "#/components/schemas/Payload" },
        ],
    });
    let mut shared = schemas["JobSpec"].clone();
    shared["properties"]["payload"] = json!({
        "allOf": [{ "$ref": "#/components/schemas/Payload" }],
        "description": "The kind's parameters, checked by its handler (default `{}`).",
    });
    let batch: Vec<Value> = registry
        .kinds()
        .filter(|kind| registry.get(kind).is_some_and(|h| !h.needs_upload()))
        .map(|kind| variant(&shared, kind))
        .collect();
    let single: Vec<Value> = batch
        .iter()
        .map(|variant| {
            let mut variant = variant.clone();
            variant["properties"]["idempotency_key"] = json!({
                "type": "null",
                "description": "Not here: a single job takes the `Idempotency-Key` header.",
            });
            variant
        })
        .collect();
    schemas["BatchJobSpec"] = one_of(
        batch,
        "A job of a batch: one variant per kind, each with its own optional `idempotency_key`.",
    );
    schemas["JobSpec"] = one_of(
        single,
        "A job as JSON: one variant per kind (kinds made by an upload are not among them).",
    );
    schemas["BatchSpec"]["properties"]["jobs"]["items"] =
        json!({ "$ref": "#/components/schemas/BatchJobSpec" });
}

/// `shared` for `kind`: its name as a constant, and its payload's schema when known.
fn variant(shared: &Value, kind: &str) -> Value {
    let mut variant = shared.clone();
    variant["title"] = json!(kind);
    variant["description"] = json!(format!("A `{kind}` job."));
    variant["properties"]["kind"] = json!({ "type": "string", "const": kind });
    if let Some(payload) = payload_schema(kind) {
        variant["properties"]["payload"] = payload.schema;
        if payload.required {
            if let Some(required) = variant["required"].as_array_mut() {
                required.push(json!("payload"));
            }
        }
    }
    variant
}

/// `oneOf` the variants; a registry without JSON kinds accepts no job (`not: {}`), as `oneOf`
/// may not be empty.
fn one_of(variants: Vec<Value>, description: &str) -> Value {
    if variants.is_empty() {
        return json!({ "description": description, "not": {} });
    }
    json!({ "description": description, "oneOf": variants })
}
