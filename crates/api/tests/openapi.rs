//! The OpenAPI document (`GET /api/openapi.json`) against the router.
//!
//! axum's `Router` cannot list its routes, so `routes::ROUTES` lists them next to the router.
//! These tests hold three things together:
//! - the document and `ROUTES`: the same (method, path) pairs under `/api`, `/healthz`,
//!   `/readyz` and `/metrics` (the dashboard is not api);
//! - `ROUTES` and the router: every listed route answers something other than 404 or 405 on a
//!   real api, every other method on a listed path answers 405, and every path mounted in
//!   `routes/mod.rs` is listed;
//! - the document and the answers: each probe's status is documented for its operation and
//!   its JSON body fits the documented schema.
//!
//! The probes run against the real Postgres and RabbitMQ, like `tests/api.rs`.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use burrow_api::routes::{document, ROUTES};
use burrow_shared::handler::Registry;
use burrow_shared::import::ImportOptions;
use burrow_shared::kinds::{Noop, Sleep};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{content_type, TestApi};

/// The methods probed on every listed path. HEAD and OPTIONS are left out: axum answers HEAD
/// wherever it answers GET.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Routes that need no API key.
const PUBLIC: [(&str, &str); 4] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
];

/// Whether the document covers `path`: the api, health, readiness and metrics, not the
/// dashboard (`/`, `/dashboard/{file}`).
fn documented(path: &str) -> bool {
    path.starts_with("/api/") || ["/healthz", "/readyz", "/metrics"].contains(&path)
}

/// The document as the api serves it with the shipped kinds (`AppState::new`'s registry).
fn spec() -> Value {
    document(&burrow_shared::kinds::shipped(
        ImportOptions::default(),
        Default::default(),
    ))
}

/// Every operation of the document: (METHOD, path) → operation.
fn operations(spec: &Value) -> BTreeMap<(String, String), &Value> {
    let mut operations = BTreeMap::new();
    let paths = spec["paths"].as_object().expect("`paths` is an object");
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (method, operation) in item {
            let known = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            if known.contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()), operation);
            }
        }
    }
    operations
}

/// `ROUTES` as (METHOD, path) pairs, only those the document covers.
fn listed_api_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .filter(|(_, path)| documented(path))
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect()
}

/// What `#/components/schemas/Name` points at.
fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
    let name = reference.strip_prefix("#/components/schemas/")?;
    spec["components"]["schemas"].get(name)
}

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference.clone());
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[test]
fn the_document_has_exactly_the_api_routes_the_router_lists() {
    let spec = spec();
    let in_spec: BTreeSet<_> = operations(&spec).into_keys().collect();
    let listed = listed_api_routes();
    let undocumented: Vec<_> = listed.difference(&in_spec).collect();
    let not_served: Vec<_> = in_spec.difference(&listed).collect();
    assert!(
        undocumented.is_empty(),
        "routes the router serves but the document lacks (add #[utoipa::path] and list the \
         handler in ApiDoc): {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "operations in the document that routes::ROUTES does not list: {not_served:?}"
    );
    let unique: BTreeSet<_> = ROUTES.iter().collect();
    assert_eq!(unique.len(), ROUTES.len(), "ROUTES lists a route twice");
}

#[test]
fn the_document_is_openapi_3_json_with_responses_for_every_operation() {
    let spec = spec();
    let version = spec["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "OpenAPI 3.x, not {version}");
    assert!(spec["info"]["title"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(spec["info"]["version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));

    let mut operation_ids = BTreeSet::new();
    for ((method, path), operation) in operations(&spec) {
        let at = format!("{method} {path}");
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(!responses.is_empty(), "{at}: no responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{at}: no 2xx response"
        );
        for (status, response) in responses {
            assert!(
                response["description"].is_string(),
                "{at} {status}: a response needs a description"
            );
        }
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(
            operation_ids.insert(id.to_owned()),
            "{at}: duplicate operationId {id}"
        );
        // Every `{name}` in the path is a required path parameter.
        for name in path.split('{').skip(1).filter_map(|s| s.split_once('}')) {
            let declared = operation["parameters"].as_array().is_some_and(|params| {
                params
                    .iter()
                    .any(|p| p["name"] == name.0 && p["in"] == "path" && p["required"] == true)
            });
            assert!(declared, "{at}: path parameter {} is not declared", name.0);
        }
    }

    let mut found = Vec::new();
    references(&spec, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        assert!(
            resolve(&spec, &reference).is_some(),
            "dangling reference {reference}"
        );
    }
}

#[test]
fn errors_share_the_api_error_schema_and_a_key_is_required_except_on_public_routes() {
    let spec = spec();
    let error = &spec["components"]["schemas"]["ApiError"];
    assert_eq!(error["properties"]["error"]["type"], "string");
    assert_eq!(error["properties"]["message"]["type"], "string");
    assert_eq!(error["required"], json!(["error", "message"]));

    let bearer = &spec["components"]["securitySchemes"]["api_key"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    let global = spec["security"].as_array().expect("global security");
    assert!(global.contains(&json!({ "api_key": [] })));

    for ((method, path), operation) in operations(&spec) {
        let at = format!("{method} {path}");
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        if public {
            assert_eq!(operation["security"], json!([]), "{at}: needs no key");
        } else {
            assert!(
                operation.get("security").is_none(),
                "{at}: takes the global security"
            );
            assert!(operation["responses"].get("401").is_some(), "{at}: no 401");
        }
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            if path == "/readyz" && status == "503" {
                // Not an error body: the readiness report, with `status: unavailable`.
                continue;
            }
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ApiError",
                "{at} {status}: errors answer with ApiError"
            );
        }
    }
}

#[test]
fn every_path_mounted_in_routes_mod_rs_is_listed() {
    let source = include_str!("../src/routes/mod.rs");
    let router = source
        .split_once("pub fn router(")
        .map(|(_, body)| body)
        .expect("routes/mod.rs defines router()");
    for other in [".nest(", ".nest_service(", ".merge(", ".route_service("] {
        assert!(
            !router.contains(other),
            "router() uses {other}: extend this test to read its paths"
        );
    }
    let mounted: BTreeSet<&str> = router
        .split(".route(")
        .skip(1)
        .map(|call| {
            let call = call.trim_start();
            let path = call
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(path, _)| path);
            path.expect("a .route( call starts with a path literal")
        })
        .collect();
    let listed: BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    assert_eq!(mounted, listed, "the paths of router() and of ROUTES");
}

// Helpers of this binary only: a request for each listed route.
/// A request for a listed route, with its path parameters filled in (`{id}`: `job`,
/// `{file}`: a dashboard asset) and a small body or query where the route reads one.
/// What fills `{id}`: a job's id, or a batch's under `/api/batches/`.
struct Ids {
    job: String,
    batch: String,
}

fn probe(api: &TestApi, method: &str, path: &str, ids: &Ids) -> reqwest::RequestBuilder {
    let id = if path.starts_with("/api/batches/") {
        &ids.batch
    } else {
        &ids.job
    };
    let concrete = path.replace("{id}", id).replace("{file}", "app.js");
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let request = api.request(method, &concrete);
    match path {
        // A broker round trip, but an empty DLQ: moves nothing.
        "/api/dead-letters/redrive" => request.query(&[("limit", "1")]),
        // Well-formed JSON these routes refuse (422) before storing anything.
        "/api/jobs" | "/api/jobs/batch" | "/api/jobs/retry" | "/api/batches" => {
            request.json(&json!({}))
        }
        _ => request,
    }
}

/// Where `value` does not fit `schema` (a subset of JSON Schema: `$ref`, `allOf`, `oneOf`,
/// `type`, `enum`, object `properties` / `required` / `additionalProperties`, array `items`).
/// Objects may hold no property the schema does not document.
fn misfits(spec: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = resolve(spec, reference).expect("references resolve");
        return misfits(spec, target, value, at, out);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let fits = choices.iter().any(|choice| {
            let mut inner = Vec::new();
            misfits(spec, choice, value, at, &mut inner);
            inner.is_empty()
        });
        if !fits {
            out.push(format!("{at}: fits none of oneOf: {value}"));
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        });
        if !fits {
            out.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !value.is_null() && !allowed.contains(value) {
            out.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            misfits(spec, items, item, &format!("{at}[{i}]"), out);
        }
    }
    let Some(object) = value.as_object() else {
        return;
    };
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    collect_shape(spec, schema, &mut properties, &mut required);
    for name in required {
        if !object.contains_key(&name) {
            out.push(format!("{at}: required `{name}` is missing"));
        }
    }
    let additional = schema.get("additionalProperties");
    for (name, field) in object {
        match (properties.get(name), additional) {
            (Some(property), _) => misfits(spec, property, field, &format!("{at}.{name}"), out),
            (None, Some(extra)) if extra.is_object() => {
                misfits(spec, extra, field, &format!("{at}.{name}"), out);
            }
            (None, _) if properties.is_empty() && additional.is_none() => {}
            (None, _) => out.push(format!("{at}: `{name}` is not documented")),
        }
    }
}

/// The properties and required names of an object schema, through `$ref` and `allOf`.
fn collect_shape(
    spec: &Value,
    schema: &Value,
    properties: &mut serde_json::Map<String, Value>,
    required: &mut Vec<String>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = resolve(spec, reference).expect("references resolve");
        return collect_shape(spec, target, properties, required);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect_shape(spec, part, properties, required);
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.clone());
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        required.extend(name.as_str().map(str::to_owned));
    }
}

/// Checks one answer against the document: its status is documented for the operation, and a
/// JSON body fits the documented schema. Returns what does not.
async fn check_answer(
    spec: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> Vec<String> {
    let at = format!("{method} {path}");
    let status = response.status();
    let operations = operations(spec);
    let Some(operation) = operations.get(&(method.to_owned(), path.to_owned())) else {
        return vec![format!("{at}: not in the document")];
    };
    let Some(documented) = operation["responses"].get(status.as_str()) else {
        return vec![format!("{at}: answered {status}, which is not documented")];
    };
    let content_type = content_type(&response);
    let content = documented["content"].as_object();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let declared = content.is_some_and(|c| {
        c.keys()
            .any(|k| k.split(';').next().unwrap_or_default().trim() == media)
    });
    if content.is_some() && !declared && media != "application/octet-stream" {
        return vec![format!(
            "{at} {status}: content type {content_type} is not documented"
        )];
    }
    if media != "application/json" {
        // The event stream never ends while the job waits: do not read it.
        return Vec::new();
    }
    let body: Value = response.json().await.expect("a JSON body");
    let schema = &documented["content"]["application/json"]["schema"];
    let mut out = Vec::new();
    misfits(spec, schema, &body, &format!("{at} {status}"), &mut out);
    out
}

#[tokio::test]
async fn every_listed_route_answers_as_documented_and_no_other_method() {
    let api = TestApi::spawn().await;
    let spec = spec();

    // The served document is the generated one, with the api's kinds.
    let served = api.get_response("/api/openapi.json").await;
    assert_eq!(served.status(), StatusCode::OK);
    let served: Value = served.json().await.expect("JSON");
    assert_eq!(
        served, spec,
        "GET /api/openapi.json serves document(registry)"
    );

    // Jobs to show, and one whose id fills `{id}`.
    let (status, seeded) = api.post("/api/simulate").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = seeded["jobs"][0]["id"]
        .as_str()
        .expect("a job id")
        .to_owned();
    let (status, batch) = api
        .post_json("/api/batches", &json!({"jobs": [{"kind": "noop"}]}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    let batch = batch["batch"]["id"]
        .as_str()
        .expect("a batch id")
        .to_owned();
    let ids = Ids { job, batch };

    let mut problems = Vec::new();
    for (method, path) in ROUTES {
        let response = probe(&api, method, path, &ids)
            .send()
            .await
            .expect("request");
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            problems.push(format!("{method} {path}: the router answered {status}"));
            continue;
        }
        if documented(path) {
            problems.extend(check_answer(&spec, method, path, response).await);
        }
    }

    let paths: BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    for path in paths {
        for method in METHODS {
            if ROUTES.contains(&(method, path)) {
                continue;
            }
            let status = probe(&api, method, path, &ids)
                .send()
                .await
                .expect("request")
                .status();
            if status != StatusCode::METHOD_NOT_ALLOWED {
                problems.push(format!(
                    "{method} {path}: answered {status}, not 405; list it in ROUTES?"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The schema `name` of the document.
fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let found = &spec["components"]["schemas"][name];
    assert!(found.is_object(), "no schema {name}");
    found
}

/// The query parameter `name` of `GET path`.
fn query_parameter<'a>(spec: &'a Value, path: &str, name: &str) -> &'a Value {
    spec["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("GET {path} has no parameter {name}"))
}

/// A sheet the form refuses as blank is what the document's pattern refuses, for every
/// character: the api trims `char::is_whitespace` (Unicode's `White_Space`), and `\\s` differs
/// between regex dialects (schemathesis once sent U+0085 as a valid, non-blank name).
#[test]
fn the_sheet_pattern_refuses_exactly_what_the_form_calls_blank() {
    let spec = spec();
    let pattern = schema(&spec, "UploadForm")["properties"]["sheet"]["pattern"]
        .as_str()
        .expect("the sheet has a pattern");
    assert!(
        !pattern.contains(r"\s") && !pattern.contains(r"\S"),
        "{pattern}: a shorthand whose meaning depends on the dialect"
    );
    let non_blank = regex::Regex::new(pattern).expect("the pattern compiles");
    let disagree: Vec<String> = (0..=0x10FFFF_u32)
        .filter_map(char::from_u32)
        .filter(|c| non_blank.is_match(&c.to_string()) == c.is_whitespace())
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(
        disagree.is_empty(),
        "pattern and trim disagree on {disagree:?}"
    );
}

#[test]
fn the_document_states_the_sizes_and_formats_the_handlers_enforce() {
    let spec = spec();
    let jobs = &schema(&spec, "BatchSpec")["properties"]["jobs"];
    assert_eq!(
        (&jobs["minItems"], &jobs["maxItems"]),
        (&json!(1), &json!(1000))
    );
    let ids = &schema(&spec, "RetryMany")["properties"]["ids"];
    assert_eq!(
        (&ids["minItems"], &ids["maxItems"]),
        (&json!(1), &json!(1000))
    );
    for body in ["BatchSpec", "RetryMany"] {
        assert_eq!(schema(&spec, body)["additionalProperties"], false, "{body}");
    }
    assert_eq!(schema(&spec, "UploadForm")["additionalProperties"], false);

    let cursor = &query_parameter(&spec, "/api/jobs", "cursor")["schema"];
    assert_eq!(cursor["pattern"], "^[0-9]{1,16}_[0-9a-f]{32}$");
    let limit = &query_parameter(&spec, "/api/jobs", "limit")["schema"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(200))
    );

    // One variant per kind a JSON job may name; uploads make `import_xlsx`.
    for (name, key) in [
        ("JobSpec", json!({"type": "null"})),
        ("BatchJobSpec", json!(255)),
    ] {
        let variants = schema(&spec, name)["oneOf"].as_array().expect("oneOf");
        let kinds: Vec<&Value> = variants
            .iter()
            .map(|v| &v["properties"]["kind"]["const"])
            .collect();
        assert_eq!(
            kinds,
            [
                &json!("export_xlsx"),
                &json!("noop"),
                &json!("sleep"),
                &json!("webhook")
            ],
            "{name}"
        );
        for variant in variants {
            assert_eq!(variant["additionalProperties"], false, "{name}");
            let user_id = &variant["properties"]["user_id"];
            assert_eq!(user_id["maxLength"], 128, "{name}");
            let idempotency_key = &variant["properties"]["idempotency_key"];
            if key.is_object() {
                assert_eq!(idempotency_key["type"], key["type"], "{name}");
            } else {
                assert_eq!(idempotency_key["maxLength"], key, "{name}");
                assert_eq!(idempotency_key["minLength"], 1, "{name}");
            }
        }
        let sleep = &variants[2];
        assert_eq!(
            sleep["properties"]["payload"]["properties"]["ms"]["maximum"],
            3_600_000
        );
        assert!(sleep["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("payload"))));
        let webhook = &variants[3]["properties"]["payload"];
        assert_eq!(webhook["required"], json!(["url"]));
        assert_eq!(webhook["additionalProperties"], false);
    }
    assert_eq!(
        schema(&spec, "BatchSpec")["properties"]["jobs"]["items"]["$ref"],
        "#/components/schemas/BatchJobSpec"
    );
}

#[test]
fn the_event_streams_are_documented_event_by_event_with_the_job_or_batch_as_data() {
    let spec = spec();
    for (path, name, data_schema) in [
        ("/api/jobs/{id}/events", "job", "JobRow"),
        ("/api/batches/{id}/events", "batch", "BatchSummary"),
    ] {
        let ok = &spec["paths"][path]["get"]["responses"]["200"];
        let event = &ok["content"]["text/event-stream"]["schema"];
        let event = match event["$ref"].as_str() {
            Some(reference) => resolve(&spec, reference).expect("resolves"),
            None => event,
        };
        assert_eq!(
            event["properties"]["event"]["enum"],
            json!([name]),
            "{path}"
        );
        let data = &event["properties"]["data"];
        assert_eq!(data["type"], "string");
        assert_eq!(data["contentMediaType"], "application/json");
        assert_eq!(
            data["contentSchema"]["$ref"],
            format!("#/components/schemas/{data_schema}")
        );
        assert_eq!(event["required"], json!(["event", "data"]));
    }
}

#[test]
fn the_kinds_of_the_document_are_the_registry_s() {
    let only_noop = document(&Registry::default().register(Noop));
    let kinds = |spec: &Value| -> Vec<Value> {
        schema(spec, "JobSpec")["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|v| v["properties"]["kind"]["const"].clone())
            .collect()
    };
    assert_eq!(kinds(&only_noop), [json!("noop")]);
    let two = document(&Registry::default().register(Sleep).register(Noop));
    assert_eq!(kinds(&two), [json!("noop"), json!("sleep")]);
    // No kind a JSON job may name: the schema accepts nothing (`oneOf` may not be empty).
    let none = document(&Registry::default());
    assert_eq!(schema(&none, "JobSpec")["not"], json!({}));
}
