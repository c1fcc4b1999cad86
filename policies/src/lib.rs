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
//! - [`logins`]: per-ACL-user connection caps and reject rates, at login.
//! - [`identity`]: who a request is charged to (IP, or ACL user at an IP).
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
pub mod identity;
pub mod logins;
pub mod metrics;
pub mod proxy_protocol;
pub mod resolved;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use proxy_protocol::ProxyProtocol;
use rampart_proto::acl::Limits;

pub use admission::{AdmissionControl, AdmissionLayer, CommandBatch};
pub use config::{available_cpus, ConfigError, PolicyConfig};
pub use connections::{ConnectionLimiter, Decision, MAX_CONNECTIONS_REPLY};
pub use identity::{ClientKey, Identity};
pub use resolved::Resolved;

/// Every policy of one proxy, reloadable as a whole.
#[derive(Debug)]
pub struct Policies {
    pub connections: Arc<ConnectionLimiter>,
    pub admission: Arc<AdmissionControl>,
    pub logins: logins::Logins,
    proxy_protocol: ArcSwap<Option<ProxyProtocol>>,
    users: ArcSwap<UserPolicy>,
}

/// The reloadable part of admission by identity.
#[derive(Debug, Default)]
struct UserPolicy {
    enabled: bool,
    configured: BTreeMap<String, Limits>,
    /// The per-IP reject rate, the default of a user's.
    reject_rate: u32,
}

impl UserPolicy {
    fn new(resolved: &Resolved) -> Self {
        UserPolicy {
            enabled: resolved.enabled,
            configured: resolved.users.clone(),
            reject_rate: resolved.connections.reject_rate_per_sec,
        }
    }
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
            logins: logins::Logins::new(),
            proxy_protocol: ArcSwap::from_pointee(resolved.proxy_protocol.clone()),
            users: ArcSwap::from_pointee(UserPolicy::new(&resolved)),
        })
    }

    /// The limits of ACL user `user`: its own `limit-...` rules (`acl`)
    /// over the configured `[policies.users.<user>]`; none at all while
    /// the policies are off.
    pub fn user_limits(&self, user: &str, acl: &Limits) -> Limits {
        let users = self.users.load();
        if !users.enabled {
            return Limits::default();
        }
        match users.configured.get(user) {
            Some(configured) => acl.over(configured),
            None => acl.clone(),
        }
    }

    /// A login as `user` (see [`logins::Logins::login`]).
    pub fn login(
        &self,
        user: &str,
        limits: &Limits,
    ) -> Result<Option<logins::UserGuard>, logins::LoginRefused> {
        let reject_rate = self.users.load().reject_rate;
        self.logins.login(user, limits, reject_rate)
    }

    /// Whether a command class of this name exists now (`limit-share`).
    pub fn has_class(&self, class: &str) -> bool {
        self.admission.has_class(class)
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
        self.users.store(Arc::new(UserPolicy::new(&resolved)));
        ::metrics::counter!(metrics::POLICY_RELOADS).increment(1);
        Ok(())
    }
}
