//! The Prometheus exporter every Rampart process installs the same way
//! (metric names in `docs/metrics.md`).
//!
//! It is only installed when a process is given a metrics address; without
//! it the `metrics` facade has no recorder and every update is a no-op.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Histogram buckets (seconds) for every `*_seconds` metric: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The exporter could not start (its address cannot be bound...).
#[derive(Debug, thiserror::Error)]
#[error("metrics exporter on {addr}: {reason}")]
pub struct ExporterError {
    pub addr: SocketAddr,
    pub reason: String,
}

/// Installs the process-wide Prometheus recorder and serves
/// `http://ADDR/metrics` on the current tokio runtime.
///
/// Returns `Ok(false)` (after logging a warning) when a recorder is already
/// installed in this process, e.g. several proxies or nodes started by one
/// test; an address that cannot be bound is an error.
pub fn install(addr: SocketAddr) -> Result<bool, ExporterError> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        tracing::warn!(%addr, "a metrics exporter already runs in this process; not starting another");
        return Ok(false);
    }
    let result = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install);
    match result {
        Ok(()) => {
            tracing::info!("metrics http://{addr}/metrics");
            Ok(true)
        }
        Err(BuildError::FailedToSetGlobalRecorder(e)) => {
            tracing::warn!(%addr, error = %e, "another metrics recorder is installed; not exporting");
            Ok(false)
        }
        Err(e) => {
            INSTALLED.store(false, Ordering::SeqCst);
            Err(ExporterError {
                addr,
                reason: e.to_string(),
            })
        }
    }
}
