//! The policy configuration checked and completed: [`PolicyConfig::resolve`]
//! turns what the file says ([`crate::config`]) into a [`Resolved`] that the
//! policies are built from, every default filled in. A file that fails to
//! resolve is rejected as a whole, so a reload never half-applies.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use rampart_proto::acl::Limits;

use crate::classes::{self, ClassTable};
use crate::config::{
    available_cpus, canonical_ip, default_inflight_max, ConfigError, PolicyConfig,
};
use crate::proxy_protocol::ProxyProtocol;

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

/// Everything the policies are built from, defaults filled in.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub enabled: bool,
    pub connections: ConnectionPolicy,
    /// 0 = unlimited.
    pub inflight_max: u64,
    /// How long a refused command may wait for its class (zero: not at all).
    pub wait: Duration,
    /// Requests of one client waiting for one class at once.
    pub queue_max: usize,
    pub min_retry: Duration,
    pub max_retry: Duration,
    pub classes: ClassTable,
    /// `None`: PROXY protocol off.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Configured limits per ACL user name.
    pub users: BTreeMap<String, Limits>,
}

/// Bound of `admission.queue_max`: more waiting requests per client than
/// any pool has connections would only be a buffer for a runaway client.
const MAX_QUEUE: u32 = 10_000;

fn parse_net(text: &str) -> Option<IpNet> {
    match text.parse::<IpNet>() {
        Ok(net) => Some(net.trunc()),
        Err(_) => text
            .parse::<IpAddr>()
            .ok()
            .map(|ip| IpNet::from(canonical_ip(ip))),
    }
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
        if a.queue_max > MAX_QUEUE {
            return Err(ConfigError::Invalid(format!(
                "admission.queue_max: at most {MAX_QUEUE} (lines must stay short)"
            )));
        }
        let classes = classes::build_table(&self.classes, &self.commands, available_cpus())?;
        let pp = &self.proxy_protocol;
        let proxy_protocol = if pp.enabled {
            if pp.trusted.is_empty() {
                return Err(ConfigError::Invalid(
                    "proxy_protocol.enabled needs proxy_protocol.trusted \
                     (--proxy-protocol-trusted): the load balancers' addresses; \
                     no peer is trusted by default"
                        .into(),
                ));
            }
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
        let mut users = BTreeMap::new();
        for (name, user) in &self.users {
            for class in user.shares.keys() {
                if classes.class_index(class).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "users.{name}.shares: no command class {class:?}"
                    )));
                }
            }
            let limits = Limits {
                connections: user.connections.filter(|&n| n > 0),
                reject_rate: user.reject_rate_per_sec,
                shares: user
                    .shares
                    .iter()
                    .filter(|(_, &n)| n > 0)
                    .map(|(c, &n)| (c.clone(), n))
                    .collect(),
            };
            users.insert(name.clone(), limits);
        }
        Ok(Resolved {
            users,
            enabled: self.enabled,
            connections: ConnectionPolicy {
                per_ip_max: c.per_ip_max,
                reject_rate_per_sec: c.reject_rate_per_sec,
                reject_burst: c.reject_burst.unwrap_or(c.reject_rate_per_sec),
                top_ips: c.top_ips,
                cidr,
            },
            inflight_max: self.inflight.max.unwrap_or_else(default_inflight_max),
            // No line, no waiting: either 0 turns it off.
            wait: if a.queue_max == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(a.wait_ms)
            },
            queue_max: a.queue_max as usize,
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
    use serde::Deserialize;

    fn parse(text: &str) -> PolicyConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_match_the_spec() {
        let r = PolicyConfig::default().resolve().unwrap();
        assert!(r.enabled);
        assert_eq!(
            r.connections.per_ip_max, 128,
            "a pool of 50 from one host fits, twice"
        );
        assert_eq!(r.connections.reject_rate_per_sec, 20);
        assert_eq!(r.connections.reject_burst, 20);
        assert_eq!(r.wait, Duration::from_millis(1000), "paced, not refused");
        assert_eq!(r.queue_max, 64);
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
        let retry = parse("[admission]\nmin_retry_ms = 0\n");
        assert!(retry.resolve().is_err());
        let wait = parse("[admission]\nwait_ms = 60001\n");
        assert!(wait.resolve().unwrap_err().to_string().contains("wait_ms"));
        let line = parse("[admission]\nqueue_max = 10001\n");
        assert!(line
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("queue_max"));
        // Either knob at 0 turns waiting off.
        let no_line = parse("[admission]\nqueue_max = 0\n").resolve().unwrap();
        assert_eq!(no_line.wait, Duration::ZERO);
        let no_wait = parse("[admission]\nwait_ms = 0\n").resolve().unwrap();
        assert_eq!(no_wait.wait, Duration::ZERO);
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
    fn proxy_protocol_is_off_by_default_and_trusts_only_the_listed_peers() {
        assert!(PolicyConfig::default()
            .resolve()
            .unwrap()
            .proxy_protocol
            .is_none());
        // On without a trusted list is refused rather than trusting anyone.
        let err = parse("[proxy_protocol]\nenabled = true\n")
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("proxy_protocol.trusted"), "{err}");
        let nets = parse(
            "[proxy_protocol]\nenabled = true\ntrusted = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n",
        )
        .resolve()
        .unwrap()
        .proxy_protocol
        .unwrap();
        assert!(nets.expects_header_from("10.1.2.3".parse().unwrap()));
        assert!(nets.expects_header_from("2001:db8::1".parse().unwrap()));
        assert!(!nets.expects_header_from("192.168.1.1".parse().unwrap()));
        assert!(!nets.expects_header_from("::ffff:192.168.1.1".parse().unwrap()));
        let lb = parse("[proxy_protocol]\nenabled = true\ntrusted = [\"10.0.0.5\"]\n")
            .resolve()
            .unwrap()
            .proxy_protocol
            .unwrap();
        assert!(lb.expects_header_from("10.0.0.5".parse().unwrap()));
        assert!(!lb.expects_header_from("10.0.0.6".parse().unwrap()));
    }
}
