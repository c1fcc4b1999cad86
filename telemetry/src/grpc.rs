//! W3C trace context over gRPC: the client puts its span's context into the
//! request metadata ([`inject`]); the node's server layer
//! ([`ServerTraceLayer`]) reads it back and opens the server span as its
//! child, so one trace spans proxy and node.
//!
//! Everything here does nothing when traces are off ([`crate::enabled`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::http;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes propagation fields into tonic request metadata. Fields whose name
/// or value is not valid ASCII metadata are skipped.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = MetadataValue::try_from(value) else {
            return;
        };
        self.0.insert(key, value);
    }
}

/// Reads propagation fields from HTTP/2 request headers. Values that are not
/// visible ASCII are treated as absent.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Puts `span`'s trace context (`traceparent`, `tracestate`) into the
/// metadata of an outgoing request. Nothing is written when traces are off
/// or the span is not recorded.
pub fn inject(span: &tracing::Span, metadata: &mut MetadataMap) {
    if !crate::enabled() || span.is_disabled() {
        return;
    }
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(metadata));
}

/// The remote parent carried by request headers (an empty context when
/// there is none or it is malformed: the server span then starts a trace).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// `(service, method)` of a gRPC path `/package.Service/Method` (for span
/// names here and metric labels in the node).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

/// A tower layer for a tonic server: each call to one of the listed
/// services runs inside a `grpc.server` span (OpenTelemetry kind server,
/// named `package.Service/Method`) whose parent is the caller's span from
/// the request's `traceparent`. Other services (Raft heartbeats, admin
/// health checks) are not traced.
#[derive(Debug, Clone)]
pub struct ServerTraceLayer {
    services: Arc<[&'static str]>,
}

impl ServerTraceLayer {
    /// Traces calls to `services` (full names, e.g. `rampart.v1.Kv`).
    pub fn for_services(services: &[&'static str]) -> Self {
        ServerTraceLayer {
            services: services.into(),
        }
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTrace<S>;

    fn layer(&self, inner: S) -> ServerTrace<S> {
        ServerTrace {
            inner,
            services: self.services.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerTrace<S> {
    inner: S,
    services: Arc<[&'static str]>,
}

impl<S> ServerTrace<S> {
    /// The span for a request, if its service is traced.
    fn span_for<B>(&self, req: &http::Request<B>) -> Option<tracing::Span> {
        let (service, method) = split_path(req.uri().path())?;
        if !self.services.contains(&service) {
            return None;
        }
        let name = format!("{service}/{method}");
        let span = tracing::debug_span!(
            "grpc.server",
            otel.name = name.as_str(),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
        );
        span.set_parent(extract(req.headers()));
        Some(span)
    }
}

/// gRPC status `0` (OK) when the response headers carry none: a unary call
/// that succeeded sends its status in the trailers.
fn header_status<B>(resp: &http::Response<B>) -> (i64, Option<String>) {
    let headers = resp.headers();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (code, message)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ServerTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let span = if crate::enabled() {
            self.span_for(&req)
        } else {
            None
        };
        let Some(span) = span else {
            return Box::pin(self.inner.call(req));
        };
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let recorded = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(resp) => {
                        let (code, message) = header_status(resp);
                        recorded.record("rpc.grpc.status_code", code);
                        if code != 0 {
                            crate::record_error(
                                &recorded,
                                message.unwrap_or_else(|| format!("grpc status {code}")),
                            );
                        }
                    }
                    Err(e) => crate::record_error(&recorded, e.to_string()),
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/rampart.v1.Kv/Execute"),
            Some(("rampart.v1.Kv", "Execute"))
        );
        assert_eq!(split_path("/x"), None);
        assert_eq!(split_path("/a/b/c"), None);
        assert_eq!(split_path("//b"), None);
    }

    #[test]
    fn trace_context_round_trips_through_metadata() {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(remote.clone());
        let mut metadata = MetadataMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut MetadataInjector(&mut metadata));
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let headers = metadata.into_headers();
        let back = extract(&headers);
        let span = back.span();
        let got = span.span_context();
        assert_eq!(got.trace_id(), remote.trace_id());
        assert_eq!(got.span_id(), remote.span_id());
        assert!(got.is_sampled());
    }

    #[test]
    fn garbage_trace_headers_give_no_parent() {
        use opentelemetry::trace::TraceContextExt;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("zz-not-a-trace"),
        );
        let cx = extract(&headers);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn inject_writes_nothing_when_traces_are_off() {
        let mut metadata = MetadataMap::new();
        inject(&tracing::Span::none(), &mut metadata);
        assert!(metadata.is_empty());
    }
}
