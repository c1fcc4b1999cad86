//! A tower layer on the node's gRPC servers that times every call into
//! `rampart_grpc_server_seconds{service, method}`.
//!
//! The time is from the request reaching the service until the response
//! headers are ready; for the unary RPCs the node serves that is the whole
//! handler. Labels come from the request path (`/rampart.v1.Kv/Execute` →
//! `service="rampart.v1.Kv"`, `method="Execute"`) and are only used when
//! the server knew the method: calls answered `Unimplemented` (any path a
//! peer makes up) are counted under `service="unknown", method="unknown"`,
//! so the label set stays bounded by the services the node implements.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::{Layer, Service};

use rampart_telemetry::grpc::split_path;

use crate::metrics::GRPC_SERVER_SECONDS;

/// gRPC status code "Unimplemented".
const UNIMPLEMENTED: &str = "12";

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let known = match &result {
                Ok(resp) => {
                    resp.headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        != Some(UNIMPLEMENTED)
                }
                Err(_) => false,
            };
            let (service, method) = match split_path(&path) {
                Some((s, m)) if known => (s.to_string(), m.to_string()),
                _ => ("unknown".to_string(), "unknown".to_string()),
            };
            metrics::histogram!(GRPC_SERVER_SECONDS, "service" => service, "method" => method)
                .record(started.elapsed());
            result
        })
    }
}
