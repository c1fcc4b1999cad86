//! The policy configuration: the `[policies]` section of the proxy's TOML
//! file, with every default documented in `docs/policies.md`.
//!
//! [`PolicyConfig`] is what the file says (every field optional);
//! [`PolicyConfig::resolve`] checks it and fills the defaults, producing a
//! [`Resolved`] that the policies are built from. A file that fails to resolve
//! is rejected as a whole, so a reload never half-applies.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::classes::{self, ClassTable};
use crate::proxy_protocol::ProxyProtocol;

/// Default per-peer-IP connection cap (SPEC §2, Layer 3).
pub const DEFAULT_PER_IP_MAX: u32 = 8;
/// Default number of rejected connects per second per IP before rejects
/// become TCP resets.
pub const DEFAULT_REJECT_RATE_PER_SEC: u32 = 20;
/// How many per-IP connection gauges are exported (the top talkers).
pub const DEFAULT_TOP_IPS: usize = 10;
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
    /// How long a command may wait for a slot of its class before BUSY.
    pub wait_ms: u64,
    /// Bounds of the `retry after <ms>ms` hint.
    pub min_retry_ms: u64,
    pub max_retry_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            wait_ms: 0,
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
    /// Peers (load balancers) that must send a header; others are served
    /// with their TCP address. Default: everybody.
    pub trusted: Vec<String>,
    pub header_timeout_ms: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig {
            enabled: false,
            trusted: vec!["0.0.0.0/0".into(), "::/0".into()],
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

/// Connection policy with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPolicy {
    pub per_ip_max: u32,
    pub reject_rate_per_sec: u32,
    pub reject_burst: u32,
    pub top_ips: usize,
    /// Sorted longest prefix first.
    pub cidr: Vec<ResolvedCidr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCidr {
    pub net: IpNet,
    /// `None`: unlimited (allowlist).
    pub max: Option<u32>,
}

impl ConnectionPolicy {
    /// The cap for `ip` (`None` = unlimited).
    pub fn cap_for(&self, ip: IpAddr) -> Option<u32> {
        let ip = canonical_ip(ip);
        for rule in &self.cidr {
            if rule.net.contains(&ip) {
                return rule.max.filter(|&m| m > 0);
            }
        }
        Some(self.per_ip_max).filter(|&m| m > 0)
    }
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

/// Everything the policies are built from, defaults filled in.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub enabled: bool,
    pub connections: ConnectionPolicy,
    /// 0 = unlimited.
    pub inflight_max: u64,
    pub wait: Duration,
    pub min_retry: Duration,
    pub max_retry: Duration,
    pub classes: ClassTable,
    /// `None`: PROXY protocol off.
    pub proxy_protocol: Option<ProxyProtocol>,
}

fn parse_net(text: &str) -> Option<IpNet> {
    match text.parse::<IpNet>() {
        Ok(net) => Some(net.trunc()),
        Err(_) => text
            .parse::<IpAddr>()
            .ok()
            .map(|ip| IpNet::from(canonical_ip(ip))),
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

impl PolicyConfig {
    /// Checks the configuration and fills in the defaults.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let c = &self.connections;
        let mut cidr = Vec::with_capacity(c.cidr.len());
        for rule in &c.cidr {
            let Some(net) = parse_net(&rule.cidr) else {
                return Err(ConfigError::Invalid(format!(
                    "connections.cidr: {:?} is not a CIDR range or IP address",
                    rule.cidr
                )));
            };
            let max = match (rule.allow, rule.max) {
                (true, None) => None,
                (false, Some(m)) => Some(m),
                (true, Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "connections.cidr {}: set either allow = true or max, not both",
                        rule.cidr
                    )))
                }
                (false, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "connections.cidr {}: needs allow = true or max = N",
                        rule.cidr
                    )))
                }
            };
            cidr.push(ResolvedCidr { net, max });
        }
        cidr.sort_by_key(|rule| std::cmp::Reverse(rule.net.prefix_len()));
        let a = &self.admission;
        if a.min_retry_ms == 0 || a.min_retry_ms > a.max_retry_ms {
            return Err(ConfigError::Invalid(
                "admission: need 0 < min_retry_ms <= max_retry_ms".into(),
            ));
        }
        if a.wait_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "admission.wait_ms: at most 60000 (waits must stay short)".into(),
            ));
        }
        let classes = classes::build_table(&self.classes, &self.commands, available_cpus())?;
        let pp = &self.proxy_protocol;
        let proxy_protocol = if pp.enabled {
            let mut trusted = Vec::with_capacity(pp.trusted.len());
            for t in &pp.trusted {
                trusted.push(parse_net(t).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "proxy_protocol.trusted: {t:?} is not a CIDR range or IP address"
                    ))
                })?);
            }
            if pp.header_timeout_ms == 0 {
                return Err(ConfigError::Invalid(
                    "proxy_protocol.header_timeout_ms must be > 0".into(),
                ));
            }
            Some(ProxyProtocol {
                trusted,
                header_timeout: Duration::from_millis(pp.header_timeout_ms),
            })
        } else {
            None
        };
        Ok(Resolved {
            enabled: self.enabled,
            connections: ConnectionPolicy {
                per_ip_max: c.per_ip_max,
                reject_rate_per_sec: c.reject_rate_per_sec,
                reject_burst: c.reject_burst.unwrap_or(c.reject_rate_per_sec),
                top_ips: c.top_ips,
                cidr,
            },
            inflight_max: self.inflight.max.unwrap_or_else(default_inflight_max),
            wait: Duration::from_millis(a.wait_ms),
            min_retry: Duration::from_millis(a.min_retry_ms),
            max_retry: Duration::from_millis(a.max_retry_ms),
            classes,
            proxy_protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PolicyConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_match_the_spec() {
        let r = PolicyConfig::default().resolve().unwrap();
        assert!(r.enabled);
        assert_eq!(r.connections.per_ip_max, 8);
        assert_eq!(r.connections.reject_rate_per_sec, 20);
        assert_eq!(r.connections.reject_burst, 20);
        assert_eq!(r.wait, Duration::ZERO);
        assert!(r.inflight_max >= 8192);
        assert_eq!(
            r.classes.class_max("heavy"),
            Some(2 * available_cpus()),
            "heavy defaults to 2 x CPUs"
        );
    }

    #[test]
    fn cidr_overrides_pick_the_longest_prefix() {
        let cfg = parse(
            r#"
            [connections]
            per_ip_max = 3
            [[connections.cidr]]
            cidr = "10.0.0.0/8"
            max = 100
            [[connections.cidr]]
            cidr = "10.1.2.3"
            allow = true
            [[connections.cidr]]
            cidr = "192.168.0.0/16"
            max = 1
            "#,
        );
        let r = cfg.resolve().unwrap();
        let cap = |s: &str| r.connections.cap_for(s.parse().unwrap());
        assert_eq!(cap("10.9.9.9"), Some(100));
        assert_eq!(cap("10.1.2.3"), None);
        assert_eq!(cap("::ffff:10.1.2.3"), None, "v4-mapped v6 counts as v4");
        assert_eq!(cap("192.168.4.4"), Some(1));
        assert_eq!(cap("172.16.0.1"), Some(3));
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        let bad_cidr = parse("[[connections.cidr]]\ncidr = \"10.0.0.0/33\"\nmax = 1\n");
        assert!(bad_cidr
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/33"));
        let both = parse("[[connections.cidr]]\ncidr = \"10.0.0.0/8\"\nmax = 1\nallow = true\n");
        assert!(both.resolve().is_err());
        let neither = parse("[[connections.cidr]]\ncidr = \"10.0.0.0/8\"\n");
        assert!(neither.resolve().is_err());
        assert!(toml::from_str::<PolicyConfig>("[connections]\nper_ip = 3\n").is_err());
        let retry = parse("[admission]\nmin_retry_ms = 0\n");
        assert!(retry.resolve().is_err());
        let pp = parse("[proxy_protocol]\nenabled = true\ntrusted = [\"lb\"]\n");
        assert!(pp.resolve().unwrap_err().to_string().contains("lb"));
    }

    /// The example in docs/policies.md is a valid `[policies]` section.
    #[test]
    fn documented_example_parses() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            policies: PolicyConfig,
        }
        let doc = include_str!("../../docs/policies.md");
        let start = doc.find("```toml\n").expect("toml block") + 8;
        let end = start + doc[start..].find("```").expect("block end");
        let file: File = toml::from_str(&doc[start..end]).unwrap();
        let r = file.policies.resolve().unwrap();
        assert_eq!(
            r.connections.cap_for("10.20.1.1".parse().unwrap()),
            Some(64)
        );
        assert_eq!(r.connections.cap_for("10.0.0.5".parse().unwrap()), None);
        assert_eq!(r.classes.class_max("reports"), Some(2));
        assert!(r.proxy_protocol.is_none());
    }

    #[test]
    fn proxy_protocol_is_off_by_default_and_trusts_everyone_when_on() {
        assert!(PolicyConfig::default()
            .resolve()
            .unwrap()
            .proxy_protocol
            .is_none());
        let on = parse("[proxy_protocol]\nenabled = true\n")
            .resolve()
            .unwrap();
        let pp = on.proxy_protocol.unwrap();
        assert!(pp.expects_header_from("10.1.2.3".parse().unwrap()));
        assert!(pp.expects_header_from("2001:db8::1".parse().unwrap()));
        let lb = parse("[proxy_protocol]\nenabled = true\ntrusted = [\"10.0.0.5\"]\n")
            .resolve()
            .unwrap()
            .proxy_protocol
            .unwrap();
        assert!(lb.expects_header_from("10.0.0.5".parse().unwrap()));
        assert!(!lb.expects_header_from("10.0.0.6".parse().unwrap()));
    }
}
