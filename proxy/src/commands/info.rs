//! INFO [section ...]: server, clients, stats (its pub/sub fields),
//! replication and keyspace like Redis 7.2, plus a `# Rampart` section describing the storage nodes.
//!
//! The keyspace section comes from the leader (argv `INFO keyspace`
//! forwarded as a one-command batch; the node answers with the
//! `# Keyspace` section text). The Rampart section asks every configured
//! node for its Raft status through the Admin service.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rampart_proto::pb::reply::Kind;
use rampart_proto::Reply;

use super::connection::REDIS_VERSION;
use super::{Session, Shared};
use crate::upstream::CallOptions;

/// INFO must answer even when the cluster is down, so the node calls it
/// makes are bounded well below the batch retry deadline.
const NODE_QUERY_TIMEOUT: Duration = Duration::from_millis(500);

const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "stats",
    "replication",
    "cluster",
    "keyspace",
    "rampart",
];

pub async fn info(args: &[Vec<u8>], session: &mut Session, shared: &Shared) -> Reply {
    let mut wanted: Vec<&str> = Vec::new();
    if args.is_empty() {
        wanted.extend(ALL_SECTIONS);
    }
    for arg in args {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "all" | "everything" | "default" => wanted.extend(ALL_SECTIONS),
            other => {
                if let Some(s) = ALL_SECTIONS.iter().find(|s| **s == other) {
                    wanted.push(s);
                }
            }
        }
    }
    let mut sections = Vec::new();
    for name in ALL_SECTIONS.iter().filter(|s| wanted.contains(s)) {
        sections.push(match *name {
            "server" => server(shared),
            "clients" => clients(shared),
            "stats" => stats(shared).await,
            "replication" => replication(shared),
            // Clients (redis-py's test harness among them) read
            // cluster_enabled; the proxies present one non-cluster endpoint.
            "cluster" => section("Cluster", &[("cluster_enabled", "0".into())]),
            "keyspace" => keyspace(session, shared).await,
            _ => rampart(shared).await,
        });
    }
    session.text_reply(sections.join("\r\n"))
}

fn section(title: &str, fields: &[(&str, String)]) -> String {
    let mut text = format!("# {title}\r\n");
    for (key, value) in fields {
        text.push_str(key);
        text.push(':');
        text.push_str(value);
        text.push_str("\r\n");
    }
    text
}

fn server(shared: &Shared) -> String {
    let uptime = shared.started.elapsed().as_secs();
    let now_usec = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let executable = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let config_file = shared
        .config
        .config_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    section(
        "Server",
        &[
            ("redis_version", REDIS_VERSION.to_string()),
            ("redis_git_sha1", "00000000".into()),
            ("redis_git_dirty", "0".into()),
            ("redis_build_id", "0".into()),
            ("redis_mode", "standalone".into()),
            (
                "os",
                format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            ),
            ("arch_bits", (usize::BITS).to_string()),
            ("multiplexing_api", "epoll".into()),
            ("process_id", std::process::id().to_string()),
            ("run_id", shared.run_id.clone()),
            ("tcp_port", shared.local_addr.port().to_string()),
            ("server_time_usec", now_usec.to_string()),
            ("uptime_in_seconds", uptime.to_string()),
            ("uptime_in_days", (uptime / 86_400).to_string()),
            ("executable", executable),
            ("config_file", config_file),
            ("rampart_version", env!("CARGO_PKG_VERSION").into()),
            ("rampart_role", "proxy".into()),
        ],
    )
}

fn clients(shared: &Shared) -> String {
    section(
        "Clients",
        &[
            ("connected_clients", shared.registry.len().to_string()),
            ("cluster_connections", "0".into()),
            ("maxclients", "10000".into()),
            ("client_recent_max_input_buffer", "0".into()),
            ("client_recent_max_output_buffer", "0".into()),
            ("blocked_clients", shared.registry.blocked().to_string()),
            ("tracking_clients", "0".into()),
            ("clients_in_timeout_table", "0".into()),
        ],
    )
}

/// The pub/sub fields of Redis 7.2's Stats section, cluster-wide: one
/// node counts the distinct channels, patterns and shard channels of every
/// proxy linked to it (as PUBSUB NUMPAT does). If no node answers in time,
/// this proxy's own subscriptions.
async fn stats(shared: &Shared) -> String {
    let query = rampart_proto::pb::PubSubQuery {
        subcommand: "counts".into(),
        ..Default::default()
    };
    let cluster = tokio::time::timeout(NODE_QUERY_TIMEOUT, shared.pubsub.query(query))
        .await
        .ok()
        .and_then(Result::ok)
        .filter(|r| r.counts.len() == 3)
        .map(|r| (r.counts[0], r.counts[1], r.counts[2]));
    let (channels, patterns, shard) = cluster.unwrap_or_else(|| {
        let (c, p, s) = shared.pubsub.local_counts();
        (c as i64, p as i64, s as i64)
    });
    section(
        "Stats",
        &[
            ("pubsub_channels", channels.to_string()),
            ("pubsub_patterns", patterns.to_string()),
            ("pubsubshard_channels", shard.to_string()),
        ],
    )
}

fn replication(shared: &Shared) -> String {
    section(
        "Replication",
        &[
            ("role", "master".into()),
            ("connected_slaves", "0".into()),
            ("master_failover_state", "no-failover".into()),
            ("master_replid", shared.run_id.clone()),
            ("master_replid2", "0".repeat(40)),
            ("master_repl_offset", "0".into()),
            ("second_repl_offset", "-1".into()),
            ("repl_backlog_active", "0".into()),
            ("repl_backlog_size", "1048576".into()),
            ("repl_backlog_first_byte_offset", "0".into()),
            ("repl_backlog_histlen", "0".into()),
        ],
    )
}

/// The node's `# Keyspace` section; just the header when no node answers.
async fn keyspace(session: &Session, shared: &Shared) -> String {
    let argv = vec![b"INFO".to_vec(), b"keyspace".to_vec()];
    // A read: the seq is never compared with write seqs of this connection.
    let client_id = format!("{}:{}:info", shared.proxy_id, session.id());
    let result = shared
        .upstream
        .call(
            vec![argv],
            client_id,
            0,
            CallOptions {
                deadline: Some(NODE_QUERY_TIMEOUT),
                ..CallOptions::default()
            },
        )
        .await;
    if let Ok(replies) = result {
        if let Some(Reply {
            kind: Some(Kind::Bulk(text) | Kind::Verbatim(rampart_proto::pb::Verbatim { text, .. })),
        }) = replies.into_iter().next()
        {
            let mut text = String::from_utf8_lossy(&text).into_owned();
            if !text.ends_with("\r\n") {
                text.push_str("\r\n");
            }
            return text;
        }
    }
    "# Keyspace\r\n".to_string()
}

async fn rampart(shared: &Shared) -> String {
    let statuses = shared.upstream.status_all(NODE_QUERY_TIMEOUT).await;
    let mut fields = vec![
        ("proxy_id", shared.proxy_id.clone()),
        ("leader_addr", shared.upstream.leader().unwrap_or_default()),
        ("nodes", statuses.len().to_string()),
    ];
    let mut lines = Vec::new();
    for (i, (addr, status)) in statuses.iter().enumerate() {
        let line = match status {
            Ok(s) => {
                let metrics = s
                    .members
                    .iter()
                    .find(|m| m.id == s.node_id)
                    .map(|m| m.metrics_url.clone())
                    .unwrap_or_default();
                let role = if s.leader_id != 0 && s.leader_id == s.node_id {
                    "leader".to_string()
                } else {
                    s.state.clone()
                };
                format!(
                    "id={},addr={},role={},term={},leader_id={},last_log_index={},applied_index={},metrics_url={}",
                    s.node_id, addr, role, s.term, s.leader_id, s.last_log_index, s.applied_index, metrics
                )
            }
            Err(error) => format!(
                "addr={addr},role=unreachable,error={}",
                error.replace(['\r', '\n', ','], " ")
            ),
        };
        lines.push((format!("node{i}"), line));
    }
    for (key, line) in &lines {
        fields.push((key.as_str(), line.clone()));
    }
    section("Rampart", &fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::{session_and_shared, text};

    #[tokio::test]
    async fn info_has_redis_sections_even_without_nodes() {
        let (mut session, shared) = session_and_shared(None);
        let all = text(&info(&[], &mut session, &shared).await);
        assert!(
            all.starts_with("$# Server\r\nredis_version:7.2.4\r\n"),
            "{all}"
        );
        for needle in [
            "redis_mode:standalone\r\n",
            "\r\n\r\n# Clients\r\nconnected_clients:1\r\n",
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n",
            "# Cluster\r\ncluster_enabled:0\r\n",
            // No node answers: this proxy's own (zero) subscriptions.
            "# Stats\r\npubsub_channels:0\r\npubsub_patterns:0\r\npubsubshard_channels:0\r\n",
            "# Keyspace\r\n",
            "# Rampart\r\n",
            "node0:addr=127.0.0.1:1,role=unreachable",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in {all}");
        }
        let only = text(&info(&[b"CLIENTS".to_vec()], &mut session, &shared).await);
        assert!(
            only.starts_with("$# Clients\r\n") && !only.contains("# Server"),
            "{only}"
        );
        let none = text(&info(&[b"nosuch".to_vec()], &mut session, &shared).await);
        assert_eq!(none, "$");
    }
}
