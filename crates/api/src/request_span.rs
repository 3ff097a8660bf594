//! The span of each HTTP request: an OpenTelemetry server span named `{method} {route}`
//! (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>) that continues the
//! caller's trace when the request carries a W3C `traceparent` header. A job enqueued while
//! the request is handled keeps this span's trace context, so its runs join the same trace.

use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use burrow_shared::telemetry::context::{self, TraceContext, TRACEPARENT, TRACESTATE};
use tracing::Span;

/// The span for `request` (tower-http's `MakeSpan`).
pub fn request_span(request: &Request<Body>) -> Span {
    let method = request.method();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    context::describe(
        &span,
        || format!("{method} {}", route.unwrap_or("(no route)")),
        "server",
        &[],
    );
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    if let Some(parent) = TraceContext::from_headers(header(TRACEPARENT), header(TRACESTATE)) {
        parent.adopt_as_parent_of(&span);
    }
    span
}

/// Records the response's status on the request's span (tower-http's `OnResponse`); a 5xx
/// marks the span as an error, as the HTTP conventions ask of a server span.
pub fn record_status(response: &Response<Body>, _latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}
