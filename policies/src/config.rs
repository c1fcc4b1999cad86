//! The policy configuration: the `[policies]` section of the proxy's TOML
//! file, with every default documented in `docs/policies.md`.
//!
//! [`PolicyConfig`] is what the file says (every field optional), and
//! [`ConfigError`] what can be wrong with it. Checking it and filling the
//! defaults is [`crate::resolved`]'s job. This module depends on no other
//! module of the crate, so every other one may use it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

/// Default per-peer-IP connection cap (SPEC §2, Layer 3). Not the SPEC's 8:
/// one application host's connection pool (redis-benchmark's `-c 50`, a
/// web server's pool) is ordinary load, and the incident's host with its
/// 37 connections is contained by its share and time budget of each class
/// (Layer 1), which count requests however many connections carry them
/// (docs/policies.md, "Ordinary load is paced, never refused"). Twice a
/// pool of 50, plus room: a pool that reconnects all at once
/// (redis-benchmark between two tests, an application restart) briefly
/// has its closing connections still counted next to the new ones.
pub const DEFAULT_PER_IP_MAX: u32 = 128;
/// Default number of rejected connects per second per IP before rejects
/// become TCP resets.
pub const DEFAULT_REJECT_RATE_PER_SEC: u32 = 20;
/// How many per-IP connection gauges are exported (the top talkers).
pub const DEFAULT_TOP_IPS: usize = 10;
/// How long a command may wait for its class (its client's share and a
/// slot) before `-BUSY`: long enough for a pool's burst to drain through
/// its share, short next to client timeouts (Jedis 2 s, go-redis 3 s).
pub const DEFAULT_CLASS_WAIT_MS: u64 = 1000;
/// Requests of one client that may wait for one class at once: one per
/// connection of a pool of 50, and some.
pub const DEFAULT_QUEUE_MAX: u32 = 64;
/// Retry hints are clamped to this range.
pub const DEFAULT_MIN_RETRY_MS: u64 = 10;
pub const DEFAULT_MAX_RETRY_MS: u64 = 5000;

/// Errors in a policy configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("class {class:?}: {reason}")]
    Class { class: String, reason: String },
    #[error("command {command:?}: {reason}")]
    Command { command: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// `[policies]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Master switch: `false` turns every policy off (benchmarks, debugging).
    pub enabled: bool,
    pub connections: ConnectionsConfig,
    pub inflight: InflightConfig,
    pub admission: AdmissionConfig,
    pub proxy_protocol: ProxyProtocolConfig,
    /// Per-class settings: built-in classes can be re-tuned, new classes added.
    pub classes: BTreeMap<String, ClassConfig>,
    /// Command name -> class name, applied over the compiled-in table.
    pub commands: BTreeMap<String, String>,
    /// Per-ACL-user limits (`[policies.users.<name>]`); a user's own
    /// `limit-...` ACL rules win over these, field by field.
    pub users: BTreeMap<String, UserConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            enabled: true,
            connections: ConnectionsConfig::default(),
            inflight: InflightConfig::default(),
            admission: AdmissionConfig::default(),
            proxy_protocol: ProxyProtocolConfig::default(),
            classes: BTreeMap::new(),
            commands: BTreeMap::new(),
            users: BTreeMap::new(),
        }
    }
}

/// `[policies.connections]`: Layer 3 at accept time.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Open connections allowed per peer IP; 0 = unlimited.
    pub per_ip_max: u32,
    /// Rejected connects per second per IP (sustained) before further
    /// rejects are TCP resets; 0 = always write the error text.
    pub reject_rate_per_sec: u32,
    /// Burst of rejects allowed above the rate; defaults to the rate.
    pub reject_burst: Option<u32>,
    /// How many per-IP connection gauges to export.
    pub top_ips: usize,
    /// Per-CIDR overrides; the most specific (longest prefix) match wins.
    pub cidr: Vec<CidrRule>,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            per_ip_max: DEFAULT_PER_IP_MAX,
            reject_rate_per_sec: DEFAULT_REJECT_RATE_PER_SEC,
            reject_burst: None,
            top_ips: DEFAULT_TOP_IPS,
            cidr: Vec::new(),
        }
    }
}

/// `[[policies.connections.cidr]]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CidrRule {
    /// e.g. `"10.1.0.0/16"` or `"2001:db8::/32"`; a bare address is a /32 (/128).
    pub cidr: String,
    /// Per-IP cap for addresses in this range (each address counts on its own).
    pub max: Option<u32>,
    /// `true`: no cap at all for this range (admin hosts, health checkers).
    #[serde(default)]
    pub allow: bool,
}

/// `[policies.users.<name>]`: admission by identity for one ACL user
/// (docs/policies.md, "Users"). Every field is per proxy.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// Open connections logged in as the user; 0 or absent = no cap (the
    /// connection then stays counted against its IP).
    pub connections: Option<u32>,
    /// Refused logins per second before further refusals close the
    /// connection without a reply; absent = the per-IP reject rate.
    pub reject_rate_per_sec: Option<u32>,
    /// Class name -> the user's requests running at once in that class,
    /// over all its connections.
    pub shares: BTreeMap<String, u32>,
}

/// `[policies.inflight]`: the global in-flight request cap.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InflightConfig {
    /// Commands executing at once across all connections; 0 = unlimited.
    /// Default: [`default_inflight_max`].
    pub max: Option<u64>,
}

/// `[policies.admission]`: Layer 1 behaviour common to all classes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// How long a command may wait for a slot of its class before BUSY;
    /// 0 = refuse at once.
    pub wait_ms: u64,
    /// Requests of one client (IP, or ACL user) that may wait for one class
    /// at once, in arrival order; beyond, refused at once. 0 = no waiting.
    pub queue_max: u32,
    /// Bounds of the `retry after <ms>ms` hint.
    pub min_retry_ms: u64,
    pub max_retry_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            wait_ms: DEFAULT_CLASS_WAIT_MS,
            queue_max: DEFAULT_QUEUE_MAX,
            min_retry_ms: DEFAULT_MIN_RETRY_MS,
            max_retry_ms: DEFAULT_MAX_RETRY_MS,
        }
    }
}

/// `[policies.proxy_protocol]`: PROXY protocol v1/v2 on the listener.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocolConfig {
    pub enabled: bool,
    /// Peers (load balancers, addresses or CIDR ranges) that must send a
    /// header. Everybody else is served with its TCP address and a header
    /// it sends is not read. Empty by default: trusting every peer would
    /// let any client claim any address and escape the per-IP caps, so
    /// turning the protocol on requires naming the balancers.
    pub trusted: Vec<String>,
    pub header_timeout_ms: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig {
            enabled: false,
            trusted: Vec::new(),
            header_timeout_ms: 3000,
        }
    }
}

/// `[policies.classes.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// Concurrent commands of this class; 0 = unbounded.
    pub max: Option<u32>,
    /// Makes this class a sub-pool of a top-level class: it shares the
    /// parent's `max` with the parent's other sub-pools.
    pub within: Option<String>,
    /// Slots of the parent reserved for this sub-pool: the others can never
    /// take them, so this sub-pool cannot be starved.
    pub reserve: Option<u32>,
    /// Requests (pipeline segments) of one client IP that may run in this
    /// class at once; 0 = no limit.
    pub per_client: Option<u32>,
    /// Slot milliseconds one client IP may use per second, on average
    /// (the time its commands of this class hold their slots); 0 = no limit.
    pub per_client_ms_per_sec: Option<u32>,
    /// Slot milliseconds an idle client IP may use at once before
    /// `per_client_ms_per_sec` applies.
    pub per_client_burst_ms: Option<u32>,
}

/// IPv4-mapped IPv6 peers (dual-stack listeners) count as their IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// CPUs available to this process. `available_parallelism` reads the cgroup
/// CPU quota (v1 and v2) and the affinity mask on Linux, so a container
/// limited to 2 CPUs on a 64-core host gets 2.
pub fn available_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Default global in-flight cap: 4096 commands per available CPU, at least
/// 8192 (so one connection's maximal pipeline segment of 4096 commands always
/// fits next to others).
pub fn default_inflight_max() -> u64 {
    (4096 * u64::from(available_cpus())).max(8192)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<PolicyConfig>("[connections]\nper_ip = 3\n").is_err());
        assert!(toml::from_str::<PolicyConfig>("[classes.x]\nmax = 1\nshare = 2\n").is_err());
        assert_eq!(
            toml::from_str::<PolicyConfig>("").unwrap(),
            PolicyConfig::default()
        );
    }
}
