//! The W3C trace context of a job (<https://www.w3.org/TR/trace-context/>): taken from the span
//! that enqueues it, stored with the job row and in its message (so in its outbox row), sent as
//! the AMQP headers `traceparent` and `tracestate`, and continued by the worker's span of each
//! run.
//!
//! Only a process whose subscriber has an OpenTelemetry layer (see `telemetry::init`, feature
//! `telemetry`) gives its spans a trace context. Without one — tracing off, the default —
//! [`TraceContext::of_span`] returns `None`, so nothing is stored or sent and the cost is one
//! look-up in the span's extensions.

use std::sync::atomic::{AtomicBool, Ordering};

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (HTTP and AMQP) that carries the parent span: `00-{trace id}-{span id}-{flags}`.
pub const TRACEPARENT: &str = "traceparent";
/// The header that carries vendors' trace state (`key=value,…`).
pub const TRACESTATE: &str = "tracestate";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans: `telemetry::init` sets it when it installs an exporter
/// (an app that installs an OpenTelemetry layer of its own calls [`set_exporting`]). burrow's
/// spans then get the names, kinds and attributes of OpenTelemetry's conventions; without it
/// they skip that work, and log lines stay as they were.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Tells burrow that spans are exported (see [`exporting`]).
pub fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}

/// Gives `span` the name, kind (`server`, `consumer`, …) and attributes OpenTelemetry's
/// semantic conventions ask for, when spans are exported ([`exporting`]); otherwise does
/// nothing, so neither the work nor the extra log fields are paid for. `span` must declare
/// `otel.name` and `otel.kind` (as `tracing::field::Empty`) and not be entered yet.
pub fn describe(
    span: &tracing::Span,
    name: impl FnOnce() -> String,
    kind: &'static str,
    attributes: &[(&'static str, &'static str)],
) {
    if !exporting() {
        return;
    }
    span.record("otel.name", name());
    span.record("otel.kind", kind);
    for (key, value) in attributes {
        span.set_attribute(*key, *value);
    }
}

/// One span's W3C trace context, as its two header values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `00-{trace id: 32 hex digits}-{span id: 16 hex digits}-{flags: 2 hex digits}`.
    pub traceparent: String,
    /// Vendors' entries (`key=value,…`); `None` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The context of the current span, if it has one (see the module doc).
    pub fn current() -> Option<TraceContext> {
        TraceContext::of_span(&tracing::Span::current())
    }

    /// The context of `span`, if it has one. Starts the OpenTelemetry span (its parent cannot
    /// change afterwards), so set a parent before asking.
    pub fn of_span(span: &tracing::Span) -> Option<TraceContext> {
        let context = span.context();
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut headers = Headers::default();
        TraceContextPropagator::new().inject_context(&context, &mut headers);
        TraceContext::from_headers(
            headers.traceparent.as_deref(),
            headers.tracestate.as_deref(),
        )
    }

    /// A context from header values; `None` when `traceparent` is absent or malformed (a bad
    /// header starts a new trace instead of failing the request or the job).
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let context = TraceContext {
            traceparent: traceparent?.trim().to_owned(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|state| !state.is_empty())
                .map(str::to_owned),
        };
        context.span_context().is_valid().then_some(context)
    }

    /// The context carried by AMQP message headers, if any.
    pub fn from_amqp(headers: Option<&FieldTable>) -> Option<TraceContext> {
        let table = headers?;
        let text = |name: &str| match table.inner().get(name) {
            Some(AMQPValue::LongString(value)) => Some(value.to_string()),
            Some(AMQPValue::ShortString(value)) => Some(value.as_str().to_owned()),
            _ => None,
        };
        TraceContext::from_headers(text(TRACEPARENT).as_deref(), text(TRACESTATE).as_deref())
    }

    /// Adds `traceparent` (and `tracestate`) to AMQP message headers.
    pub fn add_to_amqp(&self, headers: &mut FieldTable) {
        headers.insert(
            ShortString::from(TRACEPARENT),
            AMQPValue::LongString(LongString::from(self.traceparent.as_str())),
        );
        if let Some(state) = &self.tracestate {
            headers.insert(
                ShortString::from(TRACESTATE),
                AMQPValue::LongString(LongString::from(state.as_str())),
            );
        }
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.span_context().trace_id().to_string()
    }

    /// Makes `span` a child of this context (a span in another process). Call before the span
    /// is first entered; without an OpenTelemetry layer it does nothing.
    pub fn adopt_as_parent_of(&self, span: &tracing::Span) {
        let parent = opentelemetry::Context::new().with_remote_span_context(self.span_context());
        // Errors only when tracing is off or the span started already: then there is nothing
        // to continue, and the span keeps its own trace.
        let _ = span.set_parent(parent);
    }

    /// Adds a link from `span` to this context: "follows from", e.g. a retry to its earlier
    /// attempt.
    pub fn link_from(&self, span: &tracing::Span) {
        span.add_link(self.span_context());
    }

    fn span_context(&self) -> SpanContext {
        let headers = Headers {
            traceparent: Some(self.traceparent.clone()),
            tracestate: self.tracestate.clone(),
        };
        let context = TraceContextPropagator::new().extract(&headers);
        context.span().span_context().clone()
    }
}

/// The two header values, as the propagator reads and writes them.
#[derive(Default)]
struct Headers {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_is_kept_and_a_malformed_one_is_dropped() {
        let context = TraceContext::from_headers(Some(PARENT), Some("vendor=1")).expect("valid");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.tracestate.as_deref(), Some("vendor=1"));
        assert_eq!(TraceContext::from_headers(Some("00-nonsense"), None), None);
        assert_eq!(TraceContext::from_headers(None, Some("vendor=1")), None);
        // An all-zero trace id is invalid by the specification.
        let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(TraceContext::from_headers(Some(zero), None), None);
    }

    #[test]
    fn amqp_headers_round_trip() {
        let context = TraceContext::from_headers(Some(PARENT), Some("vendor=1")).expect("valid");
        let mut headers = FieldTable::default();
        context.add_to_amqp(&mut headers);
        assert_eq!(TraceContext::from_amqp(Some(&headers)), Some(context));
        assert_eq!(TraceContext::from_amqp(Some(&FieldTable::default())), None);
        assert_eq!(TraceContext::from_amqp(None), None);
    }

    #[test]
    fn without_an_opentelemetry_layer_spans_have_no_context() {
        let span = tracing::info_span!("no layer here");
        assert_eq!(TraceContext::of_span(&span), None);
    }
}
