//! The cluster's network: one namespace per node, joined by a bridge.
//!
//! ```text
//!   root namespace            rch-<pid>-hub              rch-<pid>-n<i>
//!   rch<pid>r 10.a.b.1 ──veth── up0 ┐
//!                                   ├─ br0 ─ n<i> ──veth── eth0 10.a.b.(10+i)
//! ```
//!
//! The bridge lives in a namespace of its own rather than in the root
//! namespace: with `br_netfilter` loaded (Docker loads it) bridged frames go
//! through the root namespace's iptables FORWARD chain, whose policy is often
//! DROP, and an `accept` in a table of ours cannot override another table's
//! drop. The hub namespace has no rules, so nothing on the host decides
//! whether node A reaches node B; only the partition rules the harness puts
//! in the node namespaces do. Processes in the root namespace (the proxies,
//! `rampart admin`) reach the nodes through the `rch<pid>r` link.
//!
//! The /24 is derived from the pid (two concurrent runs get different
//! ones) and moved on if the host already uses it.

use super::error::ChaosError;
use super::janitor::{self, Resource, Token};
use super::names;
use super::sys::run;
use std::net::Ipv4Addr;

/// Host part of node i's address: `10.a.b.(NODE_HOST_BASE + i)`, i from 1.
const NODE_HOST_BASE: u8 = 10;

pub struct Network {
    pid: u32,
    subnet: [u8; 3],
    nodes: usize,
    /// Registered resources, removed in reverse order on drop.
    tokens: Vec<Token>,
}

/// The /24 for `pid`: 10.(64..192).(0..256), unique per pid below 32768.
pub fn subnet_for(pid: u32, attempt: u32) -> [u8; 3] {
    let n = pid.wrapping_add(attempt.wrapping_mul(256));
    [10, 64 + ((n >> 8) % 128) as u8, (n & 0xff) as u8]
}

impl Network {
    /// Creates the hub, the node namespaces and the links.
    pub async fn create(nodes: usize) -> Result<Network, ChaosError> {
        let pid = std::process::id();
        let used = run("ip", &["-o", "-4", "addr", "show"]).await?;
        let subnet = (0..64)
            .map(|a| subnet_for(pid, a))
            .find(|s| !used.contains(&format!(" {}.{}.{}.", s[0], s[1], s[2])))
            .ok_or_else(|| ChaosError::Setup("no free 10.x.y.0/24 for the cluster".into()))?;
        let mut net = Network {
            pid,
            subnet,
            nodes,
            tokens: Vec::new(),
        };
        let hub = names::hub_ns(pid);
        net.add_netns(&hub).await?;
        ip(&["-n", &hub, "link", "set", "lo", "up"]).await?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]).await?;
        ip(&["-n", &hub, "link", "set", "br0", "up"]).await?;
        for i in 1..=nodes {
            let ns = names::node_ns(pid, i);
            net.add_netns(&ns).await?;
            // Created inside the hub with its peer moved straight into the
            // node's namespace: nothing appears in the root namespace.
            let port = format!("n{i}");
            ip(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])
            .await?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"]).await?;
            ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
            let cidr = format!("{}/24", net.node_ip(i));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]).await?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
        }
        let link = names::root_link(pid);
        let me = pid.to_string();
        ip(&[
            "-n", &hub, "link", "add", "up0", "type", "veth", "peer", "name", &link, "netns", &me,
        ])
        .await?;
        net.tokens
            .push(janitor::register(Resource::RootLink(link.clone())));
        ip(&["-n", &hub, "link", "set", "up0", "master", "br0", "up"]).await?;
        let cidr = format!("{}/24", net.host_ip());
        ip(&["addr", "add", &cidr, "dev", &link]).await?;
        ip(&["link", "set", &link, "up"]).await?;
        Ok(net)
    }

    async fn add_netns(&mut self, name: &str) -> Result<(), ChaosError> {
        run("ip", &["netns", "add", name]).await.map_err(|e| {
            if self.tokens.is_empty() {
                ChaosError::NoNamespaces(format!(
                    "{e} (the chaos tool needs root and the `ip` tool from iproute2)"
                ))
            } else {
                e
            }
        })?;
        self.tokens
            .push(janitor::register(Resource::Netns(name.to_string())));
        Ok(())
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Namespace of node `i` (1-based).
    pub fn ns(&self, i: usize) -> String {
        names::node_ns(self.pid, i)
    }

    /// Address of node `i` (1-based).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, NODE_HOST_BASE + i as u8)
    }

    /// The root namespace's address on the cluster network.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    pub fn subnet_text(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }
}

async fn ip(args: &[&str]) -> Result<String, ChaosError> {
    run("ip", args).await
}

impl Drop for Network {
    fn drop(&mut self) {
        // The root link first (its peer is in the hub), then the namespaces.
        for token in self.tokens.drain(..).rev() {
            janitor::cleanup(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_differ_between_nearby_pids_and_attempts() {
        assert_ne!(subnet_for(1000, 0), subnet_for(1001, 0));
        assert_ne!(subnet_for(1000, 0), subnet_for(1000, 1));
        for pid in [1, 255, 256, 32767, 4_194_304] {
            let [a, b, _] = subnet_for(pid, 0);
            assert_eq!(a, 10);
            assert!((64..192).contains(&b));
        }
    }
}
