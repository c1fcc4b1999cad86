//! rampart-policies: who may connect (Layer 3) and what may run now
//! (Layer 1). SPEC §2; configuration and reply texts in `docs/policies.md`.
//!
//! - [`connections`]: accept-time filter: per-IP cap, CIDR overrides,
//!   reject-rate limiting (error text, then TCP resets).
//! - [`admission`]: tower layer: each command through the gates, `-BUSY
//!   ... retry after <ms>ms` from the first that refuses.
//! - [`gates`]: one admission concern each: class slot (sub-pools and
//!   reservations), client share, client time budget, in-flight cap.
//! - [`classes`]: the command-class table as data.
//! - [`budget`]: the time budget's rule (GCRA over slot time).
//! - [`config`]: the `[policies]` TOML section and its defaults.
//! - [`resolved`]: the configuration checked, defaults filled in.
//! - [`metrics`]: metric names.
//! - [`proxy_protocol`]: PROXY protocol v1/v2 header reading.

pub mod admission;
pub mod budget;
pub mod classes;
pub mod config;
pub mod connections;
pub mod gates;
pub mod metrics;
pub mod proxy_protocol;
pub mod resolved;

use std::sync::Arc;

use arc_swap::ArcSwap;
use proxy_protocol::ProxyProtocol;

pub use admission::{AdmissionControl, AdmissionLayer, CommandBatch};
pub use config::{available_cpus, ConfigError, PolicyConfig};
pub use connections::{ConnectionLimiter, Decision, MAX_CONNECTIONS_REPLY};
pub use resolved::Resolved;

/// Every policy of one proxy, reloadable as a whole.
#[derive(Debug)]
pub struct Policies {
    pub connections: Arc<ConnectionLimiter>,
    pub admission: Arc<AdmissionControl>,
    proxy_protocol: ArcSwap<Option<ProxyProtocol>>,
}

impl Policies {
    pub fn new(config: &PolicyConfig) -> Result<Policies, ConfigError> {
        let resolved = config.resolve()?;
        Ok(Policies {
            connections: Arc::new(ConnectionLimiter::new(
                resolved.connections.clone(),
                resolved.enabled,
            )),
            admission: AdmissionControl::new(&resolved),
            proxy_protocol: ArcSwap::from_pointee(resolved.proxy_protocol.clone()),
        })
    }

    /// The PROXY protocol settings now (`None`: off).
    pub fn proxy_protocol(&self) -> Arc<Option<ProxyProtocol>> {
        self.proxy_protocol.load_full()
    }

    /// Applies a new configuration; on error nothing changes.
    pub fn reload(&self, config: &PolicyConfig) -> Result<(), ConfigError> {
        let resolved = config.resolve()?;
        self.connections
            .reload(resolved.connections.clone(), resolved.enabled);
        self.admission.reload(&resolved);
        self.proxy_protocol
            .store(Arc::new(resolved.proxy_protocol.clone()));
        ::metrics::counter!(metrics::POLICY_RELOADS).increment(1);
        Ok(())
    }
}
