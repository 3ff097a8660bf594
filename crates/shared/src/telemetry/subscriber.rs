//! The subscriber of the api and worker processes: logs to stderr filtered by `RUST_LOG`
//! (default `info`), as text or, with `LOG_FORMAT=json`, as JSON lines that carry the span's
//! `traceId` and `spanId`; and, when an OTLP endpoint is configured, spans exported over
//! OTLP/HTTP with protobuf bodies (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>).
//!
//! The standard variables (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>):
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL of the collector (`…/v1/traces` is appended); unset: no export |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full traces URL, instead of the above |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` | as the specification says |
//! | `OTEL_SERVICE_NAME` | `service.name` (default `burrow-api` / `burrow-worker`) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes (`key=value,…`) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (default `parentbased_always_on`) |
//! | `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none` | no export, whatever the endpoint |
//!
//! Only the `http/protobuf` protocol is built in.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// What [`init`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name one.
    pub default_service_name: String,
    /// JSON log lines instead of text.
    pub json_logs: bool,
    /// Where spans go, if anywhere.
    pub export: SpanExport,
}

/// Whether and where spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanExport {
    /// Nowhere: no OpenTelemetry layer, so no trace context and no cost.
    Off,
    /// To the collector the standard `OTEL_EXPORTER_OTLP_*` variables name.
    FromEnv,
    /// To this full OTLP/HTTP traces URL (e.g. `http://127.0.0.1:4318/v1/traces`).
    Url(String),
}

impl TelemetryConfig {
    /// Reads `LOG_FORMAT` and the standard OpenTelemetry variables (see the module doc).
    pub fn from_env(default_service_name: &str) -> TelemetryConfig {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
        TelemetryConfig {
            default_service_name: default_service_name.to_owned(),
            json_logs: var("LOG_FORMAT").is_some_and(|f| f == "json"),
            export: if endpoint && !disabled {
                SpanExport::FromEnv
            } else {
                SpanExport::Off
            },
        }
    }
}

/// The installed subscriber's exporter: call [`Telemetry::shutdown`] before the process exits,
/// or the spans of its last seconds are lost.
#[must_use = "shut it down at exit, or the last spans are not exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's global subscriber.
///
/// # Errors
/// If a global subscriber is set already, or the OTLP exporter cannot be built (a malformed
/// endpoint URL).
///
/// # Example
/// ```no_run
/// use burrow_shared::telemetry::{init, TelemetryConfig};
///
/// # async fn example() -> anyhow::Result<()> {
/// let telemetry = init(TelemetryConfig::from_env("my-worker"))?;
/// tracing::info!("started");
/// // … run …
/// telemetry.shutdown().await;
/// # Ok(()) }
/// ```
pub fn init(config: TelemetryConfig) -> anyhow::Result<Telemetry> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = match &config.export {
        SpanExport::Off => None,
        SpanExport::FromEnv => Some(provider(
            SpanExporter::builder().with_http().build(),
            &config,
        )?),
        SpanExport::Url(url) => Some(provider(
            SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build(),
            &config,
        )?),
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("burrow"))
            .with_filter(filter())
    });
    let logs = if config.json_logs {
        json_subscriber::layer()
            .with_current_span(true)
            .with_span_list(true)
            .with_opentelemetry_ids(true)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed()
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(logs)
        .try_init()
        .context("installing the tracing subscriber")?;
    if provider.is_some() {
        super::context::set_exporting(true);
        tracing::info!("exporting spans over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

fn provider(
    exporter: Result<SpanExporter, opentelemetry_otlp::ExporterBuildError>,
    config: &TelemetryConfig,
) -> anyhow::Result<SdkTracerProvider> {
    let exporter = exporter.context("building the OTLP span exporter")?;
    let named_by_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = Resource::builder();
    if !named_by_env {
        resource = resource.with_service_name(config.default_service_name.clone());
    }
    // The default config reads OTEL_TRACES_SAMPLER(_ARG); the batch processor exports from a
    // thread of its own, so a slow collector never blocks a job.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now (tests call it before they look at the collector).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "exporting spans failed");
            }
        }
    }

    /// Exports what is left and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = stopped {
                tracing::warn!(%error, "stopping the span exporter failed");
            }
        }
    }
}
