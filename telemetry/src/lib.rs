//! Logging and OpenTelemetry traces for every Rampart process, in one place.
//!
//! [`init`] installs the `tracing` subscriber: the usual log lines on stderr
//! (filtered by `RUST_LOG`) and, only when an OTLP endpoint is configured by
//! the standard environment variables, a `tracing-opentelemetry` layer that
//! sends Rampart's spans to it over OTLP/gRPC. Without an endpoint there is
//! no exporter, no OpenTelemetry layer and no background task; the request
//! path's spans are DEBUG-level and disabled at their callsites, and the
//! trace hooks in the proxy and the node check [`enabled`] (one relaxed
//! atomic load) before doing anything.
//!
//! Environment (the OpenTelemetry SDK's standard variables):
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`:
//!   `http://host:port` of an OTLP/gRPC receiver. Unset or empty: traces off.
//! - `OTEL_SERVICE_NAME`: `service.name` (default `rampart-proxy` /
//!   `rampart-node`); `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes.
//! - `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: `always_on`,
//!   `always_off`, `traceidratio`, `parentbased_always_on` (the default),
//!   `parentbased_always_off`, `parentbased_traceidratio`.
//! - `OTEL_BSP_*` (batch export delay, queue size ...),
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: traces off.
//!
//! [`prometheus`] installs the Prometheus metrics exporter.
//!
//! The [`grpc`] module carries W3C trace context (`traceparent`,
//! `tracestate`) from the proxy's gRPC client to the node's gRPC server.

pub mod grpc;
pub mod prometheus;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::WithTonicConfig;
use opentelemetry_sdk::trace::TracerProvider;
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Longest [`Telemetry::shutdown`] waits for the last export.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Set once the OpenTelemetry layer is installed; never cleared.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (an OTLP endpoint was configured and the
/// exporter was built). Trace hooks do nothing when this is false.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How a process sets up its telemetry.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor
    /// `OTEL_RESOURCE_ATTRIBUTES` names the service.
    pub service_name: &'static str,
    /// Log filter when `RUST_LOG` is unset or invalid.
    pub default_log_filter: &'static str,
    /// Whether this process exports traces at all (the launcher's `dev` and
    /// `admin` do not: they serve no requests).
    pub traces: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry::trace::TraceError),
}

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans not
/// exported yet.
#[must_use = "call shutdown() at exit, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<TracerProvider>,
}

impl Telemetry {
    /// Whether traces are being exported.
    pub fn traces_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the buffered spans and stops the exporter, waiting at most
    /// [`SHUTDOWN_WAIT`] (an unreachable collector must not hold up a
    /// graceful stop). Call it from outside the runtime's async context
    /// (e.g. after `block_on` returned) while the runtime is still alive:
    /// the batch exporter task runs on it.
    pub fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let (done, wait) = std::sync::mpsc::channel();
        let flushing = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                let _ = done.send(provider.shutdown());
            });
        if flushing.is_err() {
            return;
        }
        match wait.recv_timeout(SHUTDOWN_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing traces at exit failed"),
            Err(_) => tracing::warn!("flushing traces at exit timed out; spans dropped"),
        }
    }
}

/// Installs the global `tracing` subscriber (logs, plus the OpenTelemetry
/// layer when an endpoint is configured). Must be called inside a tokio
/// runtime context when traces may be on (the batch exporter and the gRPC
/// channel are spawned on it). A second call in the same process leaves the
/// first subscriber in place.
///
/// A bad exporter configuration does not stop the process: it is logged and
/// the process runs without traces.
/// The standalone binaries' `main`: runs `serve` on a new multi-threaded
/// tokio runtime with telemetry set up inside it (the OTLP exporter needs
/// the runtime), and flushes traces once `serve` returns.
pub fn run_on_runtime<F: std::future::Future>(
    options: &Options,
    serve: F,
) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let telemetry = {
        let _runtime = runtime.enter();
        init(options)
    };
    let output = runtime.block_on(serve);
    telemetry.shutdown();
    Ok(output)
}

pub fn init(options: &Options) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(options.default_log_filter));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let (provider, failure) = match traces_endpoint().filter(|_| options.traces) {
        None => (None, None),
        Some(endpoint) => match build_provider(&endpoint, options.service_name) {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        },
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rampart"))
            .with_filter(filter_fn(exported))
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        ENABLED.store(true, Ordering::Relaxed);
    }
    if let Some(e) = failure {
        tracing::warn!(error = %e, "OpenTelemetry traces are off");
    }
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}

/// Spans and events the OpenTelemetry layer sees: Rampart's own, DEBUG and
/// above. Dependencies (tonic, h2, openraft, the exporter itself) stay out,
/// so exporting never produces spans of its own.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    exported_at(meta.target(), *meta.level())
}

fn exported_at(target: &str, level: tracing::Level) -> bool {
    target.starts_with("rampart") && level <= LevelFilter::DEBUG
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The OTLP endpoint for traces, if traces are configured on.
fn traces_endpoint() -> Option<String> {
    if env_nonempty("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    if env_nonempty("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")) {
        return None;
    }
    env_nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Export timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds; 10 s by default.
fn export_timeout() -> Duration {
    env_nonempty("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10))
}

fn build_provider(endpoint: &str, service_name: &str) -> Result<TracerProvider, TelemetryError> {
    let bad = |reason: &str| TelemetryError::Endpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    if endpoint.starts_with("https://") {
        return Err(bad("https needs TLS, which this build does not include"));
    }
    if !endpoint.starts_with("http://") {
        return Err(bad("expected http://HOST:PORT"));
    }
    // Our own channel, so the endpoint resolution above (empty variables
    // count as unset) is the one used.
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| bad(&e.to_string()))?
        .timeout(export_timeout())
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_channel(channel)
        .build()?;
    // Sampler, span limits and batch settings come from the OTEL_* variables
    // (the SDK reads them when the builder is created).
    Ok(TracerProvider::builder()
        .with_batch_exporter(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_resource(resource(service_name))
        .build())
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, SDK
/// attributes) with `service.name` defaulting to the process's role rather
/// than `unknown_service`.
fn resource(default_name: &str) -> Resource {
    let detected = Resource::default();
    let unnamed = detected
        .get(Key::from_static_str("service.name"))
        .is_none_or(|name| name.as_str().starts_with("unknown_service"));
    // `merge` prefers the argument's values: the detected ones win over our
    // defaults, except the placeholder service name.
    let defaults = Resource::new([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))]);
    let resource = defaults.merge(&detected);
    if unnamed {
        resource.merge(&Resource::new([KeyValue::new(
            "service.name",
            default_name.to_string(),
        )]))
    } else {
        resource
    }
}

/// Marks `span` as failed with `message` (OpenTelemetry status Error).
/// Nothing happens when traces are off.
pub fn record_error(span: &tracing::Span, message: impl Into<Cow<'static, str>>) {
    if enabled() {
        span.set_status(Status::error(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_check(target: &'static str, level: tracing::Level) -> bool {
        exported_at(target, level)
    }

    #[test]
    fn only_rampart_spans_at_debug_and_above_are_exported() {
        assert!(meta_check("rampart_proxy::service", tracing::Level::DEBUG));
        assert!(meta_check("rampart_node::server::kv", tracing::Level::INFO));
        assert!(!meta_check(
            "rampart_node::server::kv",
            tracing::Level::TRACE
        ));
        assert!(!meta_check("h2::proto", tracing::Level::DEBUG));
        assert!(!meta_check("opentelemetry_sdk", tracing::Level::ERROR));
    }

    #[test]
    fn bad_endpoints_are_rejected_before_anything_starts() {
        assert!(matches!(
            build_provider("localhost:4317", "x"),
            Err(TelemetryError::Endpoint { .. })
        ));
        assert!(matches!(
            build_provider("https://collector:4317", "x"),
            Err(TelemetryError::Endpoint { .. })
        ));
    }

    #[test]
    fn record_error_is_a_no_op_when_traces_are_off() {
        let span = tracing::debug_span!("x");
        record_error(&span, "boom");
        assert!(!enabled());
    }
}
