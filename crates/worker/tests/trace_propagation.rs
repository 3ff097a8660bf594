//! One trace from the HTTP request through the outbox and RabbitMQ to every run of the job,
//! checked against a real OTLP/HTTP receiver: a small server in this test that decodes the
//! protobuf bodies with the official definitions (`opentelemetry-proto`).
//!
//! The api runs in this process with the OTLP subscriber installed (as `burrow-api` installs
//! it); the worker is the real `burrow-worker` binary, configured only by the standard
//! `OTEL_*` variables.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use burrow_shared::telemetry::{self, SpanExport, TelemetryConfig};
use burrow_shared::JobStatus;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::worker_process::spawn_worker;
use support::{eventually, fixture, Stack};
use uuid::Uuid;

/// A client's span: the api must continue its trace.
const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// One span as the receiver got it, ids in lowercase hex ("" for no parent).
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    attributes: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// `POST /v1/traces`: decodes an `ExportTraceServiceRequest`, keeps its spans, answers with an
/// empty `ExportTraceServiceResponse` (full success).
async fn receive(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = spans.lock().expect("spans");
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let service = attributes(&resource.attributes)
            .remove("service.name")
            .unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            received.push(Received {
                service: service.clone(),
                name: span.name,
                kind: span.kind,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                links: span
                    .links
                    .iter()
                    .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                    .collect(),
                attributes: attributes(&span.attributes),
            });
        }
    }
    StatusCode::OK
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attributes as text (strings as they are, numbers in decimal).
fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .filter_map(|pair| {
            let value = match pair.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(text) => text.clone(),
                AnyValue::IntValue(number) => number.to_string(),
                AnyValue::BoolValue(flag) => flag.to_string(),
                AnyValue::DoubleValue(number) => number.to_string(),
                _ => return None,
            };
            Some((pair.key.clone(), value))
        })
        .collect()
}

/// Serves the receiver on a loopback port; its base URL and what it got.
async fn start_receiver() -> (String, Spans) {
    let spans = Spans::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, spans)
}

/// The spans received so far that match `pick`.
fn spans_where(spans: &Spans, pick: impl Fn(&Received) -> bool) -> Vec<Received> {
    let received = spans.lock().expect("spans");
    received.iter().filter(|span| pick(span)).cloned().collect()
}

/// Uploads `file_name` (a committed fixture) as a client whose own span is [`CLIENT_SPAN`].
async fn upload_as_traced_client(stack: &Stack, file_name: &str) -> Uuid {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(fixture("MOCK_DATA_1.xlsx"))
            .file_name(file_name.to_owned()),
    );
    let response = stack
        .request(Method::POST, "/api/jobs")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.expect("json");
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id")
}

#[tokio::test]
async fn a_job_is_one_trace_from_the_request_to_every_run() {
    let (receiver, spans) = start_receiver().await;
    let telemetry = telemetry::init(TelemetryConfig {
        default_service_name: "burrow-api".to_owned(),
        json_logs: false,
        export: SpanExport::Url(format!("{receiver}/v1/traces")),
    })
    .expect("the subscriber");
    let stack = Stack::new().await;
    let retry_delay = Duration::from_millis(200);
    stack.env.track_delays(&[retry_delay]);
    let worker = spawn_worker(
        &stack,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("BURROW_FAILPOINT", "transient_import:flaky.xlsx"),
            ("RETRY_BASE_MS", "200"),
            ("RETRY_MAX_ATTEMPTS", "2"),
            (
                "RECURRING_JOBS",
                r#"[{"name": "heartbeat", "cron": "* * * * * *", "kind": "noop"}]"#,
            ),
        ],
    )
    .await;

    let imported = upload_as_traced_client(&stack, "people.xlsx").await;
    let flaky = upload_as_traced_client(&stack, "flaky.xlsx").await;
    assert_eq!(
        stack.env.wait_until_ended(imported).await.status,
        JobStatus::Succeeded
    );
    assert_eq!(
        stack.env.wait_until_ended(flaky).await.status,
        JobStatus::Dead
    );
    telemetry.flush().await;

    // The api's request spans continue the client's trace.
    let requests = spans_where(&spans, |s| s.name == "POST /api/jobs");
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.service, "burrow-api");
        assert_eq!(request.kind, SpanKind::Server as i32);
        assert_eq!(
            (request.trace_id.as_str(), request.parent_span_id.as_str()),
            (CLIENT_TRACE, CLIENT_SPAN)
        );
        assert_eq!(request.attributes["http.response.status_code"], "202");
    }

    // The import's run is the request's child, in the same trace, with its phases as children.
    let job_span = |id: Uuid, attempt: u32| {
        let id = id.to_string();
        move |s: &Received| {
            s.attributes.get("job.id") == Some(&id)
                && s.attributes.get("job.attempt") == Some(&attempt.to_string())
        }
    };
    let run = eventually("the import's run span", || async {
        spans_where(&spans, job_span(imported, 1)).pop()
    })
    .await;
    assert_eq!(run.service, "burrow-worker");
    assert_eq!(run.name, "process import_xlsx");
    assert_eq!(run.kind, SpanKind::Consumer as i32);
    assert_eq!(run.attributes["job.kind"], "import_xlsx");
    assert_eq!(run.attributes["messaging.system"], "rabbitmq");
    assert_eq!(run.trace_id, CLIENT_TRACE);
    assert!(
        requests.iter().any(|r| r.span_id == run.parent_span_id),
        "the run's parent is a request span: {run:#?}"
    );
    assert!(run.links.is_empty(), "a first run links nowhere: {run:#?}");
    for phase in ["import read", "import parse and copy", "commit"] {
        let children = eventually(phase, || async {
            let found = spans_where(&spans, |s| {
                s.name == phase && s.parent_span_id == run.span_id
            });
            (!found.is_empty()).then_some(found)
        })
        .await;
        assert_eq!(children[0].trace_id, CLIENT_TRACE);
    }
    let (_, job) = stack.get(&format!("/api/jobs/{imported}")).await;
    assert_eq!(job["trace_id"], CLIENT_TRACE, "the job shows its trace id");

    // A retry is a new span of the same trace, linked to the attempt before it.
    let first = eventually("the flaky job's first run", || async {
        spans_where(&spans, job_span(flaky, 1)).pop()
    })
    .await;
    let second = eventually("the flaky job's second run", || async {
        spans_where(&spans, job_span(flaky, 2)).pop()
    })
    .await;
    assert_eq!(
        (first.trace_id.as_str(), second.trace_id.as_str()),
        (CLIENT_TRACE, CLIENT_TRACE)
    );
    assert_eq!(
        first.parent_span_id, second.parent_span_id,
        "both continue the request"
    );
    assert_ne!(first.span_id, second.span_id);
    assert!(first.links.is_empty(), "{first:#?}");
    assert_eq!(
        second.links,
        vec![(first.trace_id.clone(), first.span_id.clone())],
        "the retry links to the first attempt"
    );

    // A recurring job's runs continue the trace its schedule's tick started.
    let recurring_run = eventually("a recurring job's run", || async {
        spans_where(&spans, |s| {
            s.name == "process noop" && s.service == "burrow-worker"
        })
        .pop()
    })
    .await;
    let tick = eventually("the tick that enqueued it", || async {
        spans_where(&spans, |s| s.span_id == recurring_run.parent_span_id).pop()
    })
    .await;
    assert_eq!(tick.name, "recurring heartbeat");
    assert_eq!(tick.service, "burrow-worker");
    assert_eq!(tick.parent_span_id, "", "a tick starts its own trace");
    assert_eq!(tick.trace_id, recurring_run.trace_id);
    assert_ne!(tick.trace_id, CLIENT_TRACE);

    // The worker's JSON log lines inside the run carry its trace and span ids.
    let line = eventually("a log line of the import's run", || async {
        worker.log().into_iter().find(|line| {
            line["span"]["name"] == "job" && line["span"]["job.id"] == imported.to_string()
        })
    })
    .await;
    assert_eq!(line["openTelemetry"]["traceId"], CLIENT_TRACE, "{line}");
    assert_eq!(
        line["openTelemetry"]["spanId"],
        run.span_id.as_str(),
        "{line}"
    );
    telemetry.shutdown().await;
}
