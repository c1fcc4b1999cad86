//! The proxy's Prometheus exporter (metric names in `docs/metrics.md`; the
//! proxy's own metrics are recorded by `rampart_policies::metrics`).
//!
//! The exporter is only installed when `--metrics-addr` is set; without it
//! the `metrics` facade has no recorder and every update is a no-op.

use std::net::SocketAddr;

use crate::error::ProxyError;

/// Installs the Prometheus exporter on `addr` (see
/// [`rampart_telemetry::prometheus::install`]).
pub fn install(addr: SocketAddr) -> Result<bool, ProxyError> {
    rampart_telemetry::prometheus::install(addr).map_err(|e| ProxyError::Config(e.to_string()))
}
