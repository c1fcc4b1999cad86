//! Packet drops inside the node namespaces: real partitions, not mocks.
//!
//! A partition is a set of directed pairs "node A drops what node B sends";
//! each node namespace gets one input rule per peer it must not hear. A
//! symmetric cut is both directions; a one-way cut one. These rules drop
//! traffic between nodes only: the proxies (in the root namespace, at the
//! network's .1 address) still reach every node.
//!
//! Proxies (in the root namespace, sharing its address) are told apart by
//! their user id: with the partition nemesis each proxy runs as its own
//! uid ([`proxy_uid`]), and a table of ours in the root namespace drops
//! what that uid sends to the nodes it must not reach ([`nft_proxy_script`];
//! nft only). Dropping the proxy's outgoing packets is enough to cut a TCP
//! connection both ways: nothing it sends arrives, so nothing is answered.
//!
//! nft is preferred: the harness's rules live in a table of its own
//! (`inet rampart_chaos`) that is replaced atomically by one script. Hosts
//! without nft get the same rules through iptables in a chain of ours.

use super::error::ChaosError;
use super::sys::{run, run_with_input, which};
use std::net::Ipv4Addr;

pub const NFT_TABLE: &str = "rampart_chaos";
pub const IPT_CHAIN: &str = "RAMPART_CHAOS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Nft,
    Iptables,
}

impl Firewall {
    /// nft if installed, else iptables, else an error naming both.
    pub fn detect() -> Result<Firewall, ChaosError> {
        if which("nft").is_some() {
            Ok(Firewall::Nft)
        } else if which("iptables").is_some() {
            Ok(Firewall::Iptables)
        } else {
            Err(ChaosError::MissingTool(
                "partitions need nft (nftables) or iptables; install one".into(),
            ))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Firewall::Nft => "nft",
            Firewall::Iptables => "iptables",
        }
    }

    /// Makes namespace `ns` drop every packet from `blocked` (and nothing
    /// else: the previous rules are replaced). Empty `blocked` = heal.
    pub async fn apply(self, ns: &str, blocked: &[Ipv4Addr]) -> Result<(), ChaosError> {
        match self {
            Firewall::Nft => {
                let script = nft_script(blocked);
                run_with_input(
                    "ip",
                    &["netns", "exec", ns, "nft", "-f", "-"],
                    Some(&script),
                )
                .await
                .map(|_| ())
            }
            Firewall::Iptables => {
                for args in iptables_commands(blocked) {
                    let mut full = vec!["netns", "exec", ns, "iptables"];
                    full.extend(args.iter().map(String::as_str));
                    if let Err(e) = run("ip", &full).await {
                        // `-N` of an existing chain and `-C` of a missing
                        // jump fail by design; the others must not.
                        if !matches!(args[0].as_str(), "-N" | "-C") {
                            return Err(e);
                        }
                        if args[0] == "-C" {
                            let mut insert = vec!["netns", "exec", ns, "iptables", "-I", "INPUT"];
                            insert.extend(["-j", IPT_CHAIN]);
                            run("ip", &insert).await?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The nft script that replaces the harness's table with one dropping
/// input from `blocked`. `table X` + `delete table X` first makes it work
/// whether or not the table exists; the script is applied atomically.
pub fn nft_script(blocked: &[Ipv4Addr]) -> String {
    let mut s = format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n");
    if blocked.is_empty() {
        return s;
    }
    let set = blocked
        .iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    s.push_str(&format!(
        "table inet {NFT_TABLE} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority -10; policy accept;\n\
         \t\tip saddr {{ {set} }} drop\n\
         \t}}\n\
         }}\n"
    ));
    s
}

/// First uid of the proxies when the partition nemesis is on: proxy `j`
/// runs as uid and gid `PROXY_UID_BASE + j` (no passwd entry needed).
pub const PROXY_UID_BASE: u32 = 64_000;

pub fn proxy_uid(j: usize) -> u32 {
    PROXY_UID_BASE + j as u32
}

/// The nft script that replaces table `table` of the root namespace with
/// one dropping, for each (uid, addresses), what that uid sends to those
/// addresses. Empty `drops` = heal (the table is deleted).
pub fn nft_proxy_script(table: &str, drops: &[(u32, Vec<Ipv4Addr>)]) -> String {
    let mut s = format!("table inet {table}\ndelete table inet {table}\n");
    let rules: Vec<String> = drops
        .iter()
        .filter(|(_, ips)| !ips.is_empty())
        .map(|(uid, ips)| {
            let set = ips
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            format!("\t\tmeta skuid {uid} ip daddr {{ {set} }} drop\n")
        })
        .collect();
    if rules.is_empty() {
        return s;
    }
    s.push_str(&format!(
        "table inet {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority -10; policy accept;\n\
         {}\
         \t}}\n\
         }}\n",
        rules.concat()
    ));
    s
}

/// iptables argument lists doing what [`nft_script`] does: create our chain
/// (may already exist), make sure INPUT jumps to it (`-C` checks; the
/// caller inserts the jump when the check fails), flush it, add the drops.
pub fn iptables_commands(blocked: &[Ipv4Addr]) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut cmds = vec![
        s(&["-N", IPT_CHAIN]),
        s(&["-C", "INPUT", "-j", IPT_CHAIN]),
        s(&["-F", IPT_CHAIN]),
    ];
    for ip in blocked {
        cmds.push(s(&["-A", IPT_CHAIN, "-s", &ip.to_string(), "-j", "DROP"]));
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_script_drops_exactly_the_blocked_sources() {
        let a = Ipv4Addr::new(10, 64, 1, 11);
        let b = Ipv4Addr::new(10, 64, 1, 12);
        let text = nft_script(&[a, b]);
        assert!(text.starts_with(
            "table inet rampart_chaos\ndelete table inet rampart_chaos\ntable inet rampart_chaos {"
        ));
        assert!(text.contains("type filter hook input priority -10; policy accept;"));
        assert!(text.contains("ip saddr { 10.64.1.11, 10.64.1.12 } drop"));
        assert_eq!(
            nft_script(&[]),
            "table inet rampart_chaos\ndelete table inet rampart_chaos\n"
        );
    }

    /// Every partition shape, resolved and turned into the per-namespace
    /// scripts the harness applies.
    #[test]
    fn each_partition_shape_yields_the_expected_rules() {
        use crate::chaos::nemesis::{resolve, Shape};
        let ip = |n: usize| Ipv4Addr::new(10, 64, 1, 10 + n as u8);
        let scripts = |shape: Shape| -> Vec<(usize, String)> {
            let cut = resolve(shape, &[1, 2, 3], Some(1), 2);
            (1..=3)
                .map(|n| {
                    let blocked: Vec<Ipv4Addr> = cut
                        .drops
                        .get(&n)
                        .map(|s| s.iter().map(|&j| ip(j)).collect())
                        .unwrap_or_default();
                    (n, nft_script(&blocked))
                })
                .collect()
        };
        let drop_line = |ips: &str| format!("ip saddr {{ {ips} }} drop");
        let isolate = scripts(Shape::IsolateLeader);
        assert!(isolate[0].1.contains(&drop_line("10.64.1.12, 10.64.1.13")));
        assert!(isolate[1].1.contains(&drop_line("10.64.1.11")));
        assert!(isolate[2].1.contains(&drop_line("10.64.1.11")));
        let minority = scripts(Shape::MajorityMinority {
            leader_in_minority: true,
        });
        assert_eq!(
            minority, isolate,
            "with 3 nodes the minority is the leader alone"
        );
        let deaf = scripts(Shape::LeaderDeaf);
        assert!(deaf[0].1.contains(&drop_line("10.64.1.12, 10.64.1.13")));
        assert!(!deaf[1].1.contains("drop") && !deaf[2].1.contains("drop"));
        let one_way = scripts(Shape::OneWay);
        assert!(one_way[2].1.contains(&drop_line("10.64.1.12")));
        assert!(!one_way[0].1.contains("drop") && !one_way[1].1.contains("drop"));
        let bridge = scripts(Shape::Bridge);
        assert!(bridge[0].1.contains(&drop_line("10.64.1.13")));
        assert!(
            !bridge[1].1.contains("drop"),
            "the bridge node hears everyone"
        );
        assert!(bridge[2].1.contains(&drop_line("10.64.1.11")));
    }

    #[test]
    fn proxy_script_drops_by_uid_and_destination() {
        let a = Ipv4Addr::new(10, 64, 1, 11);
        let b = Ipv4Addr::new(10, 64, 1, 12);
        let text = nft_proxy_script(
            "rch9r",
            &[(proxy_uid(0), vec![a]), (proxy_uid(1), vec![a, b])],
        );
        assert!(text.starts_with("table inet rch9r\ndelete table inet rch9r\ntable inet rch9r {"));
        assert!(text.contains("type filter hook output priority -10; policy accept;"));
        assert!(text.contains("meta skuid 64000 ip daddr { 10.64.1.11 } drop"));
        assert!(text.contains("meta skuid 64001 ip daddr { 10.64.1.11, 10.64.1.12 } drop"));
        let heal = "table inet rch9r\ndelete table inet rch9r\n";
        assert_eq!(nft_proxy_script("rch9r", &[]), heal);
        assert_eq!(nft_proxy_script("rch9r", &[(proxy_uid(0), vec![])]), heal);
    }

    #[test]
    fn iptables_fallback_flushes_then_drops() {
        let cmds = iptables_commands(&[Ipv4Addr::new(10, 1, 2, 13)]);
        assert_eq!(cmds[0], vec!["-N", IPT_CHAIN]);
        assert_eq!(cmds[2], vec!["-F", IPT_CHAIN]);
        assert_eq!(
            cmds[3],
            vec!["-A", IPT_CHAIN, "-s", "10.1.2.13", "-j", "DROP"]
        );
        assert_eq!(iptables_commands(&[]).len(), 3);
    }
}
