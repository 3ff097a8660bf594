//! Tracing across processes: the W3C trace context a job carries from the request that
//! enqueued it to every run of it ([`context`]), and the subscriber the binaries install
//! (`subscriber`, feature `telemetry`: logs, and spans exported over OTLP when configured).

pub mod context;
#[cfg(feature = "telemetry")]
pub mod subscriber;

pub use context::TraceContext;
#[cfg(feature = "telemetry")]
pub use subscriber::{init, SpanExport, Telemetry, TelemetryConfig};
