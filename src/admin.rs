//! `rampart admin`: a thin CLI over the nodes' Admin gRPC service.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rampart_proto::cluster_tls::{self, ClusterSecurity, ClusterTls};
use rampart_proto::pb::admin_client::AdminClient;
use rampart_proto::pb::{
    AddLearnerRequest, AdminReply, ChangeMembershipRequest, ClusterStatus, InitializeRequest,
    NodeAddress, StatusRequest,
};
use std::path::PathBuf;
use tonic::transport::Channel;

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    tls: ClusterTlsArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

/// How `rampart admin` reaches a node: mutual TLS with an admin
/// certificate (the Admin service accepts no other role), or `--insecure`
/// for a cluster running in plaintext.
#[derive(Args, Clone, Default)]
pub struct ClusterTlsArgs {
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "RAMPART_CLUSTER_TLS_CA_FILE", global = true)]
    pub cluster_tls_ca_file: Option<PathBuf>,
    /// An admin certificate (PEM) signed by the cluster CA (`rampart certs`
    /// writes admin.pem).
    #[arg(long, env = "RAMPART_CLUSTER_TLS_CERT_FILE", global = true)]
    pub cluster_tls_cert_file: Option<PathBuf>,
    /// The private key of --cluster-tls-cert-file (PEM).
    #[arg(long, env = "RAMPART_CLUSTER_TLS_KEY_FILE", global = true)]
    pub cluster_tls_key_file: Option<PathBuf>,
    /// Talk to a node running with --insecure, in plaintext.
    #[arg(long, env = "RAMPART_INSECURE", global = true)]
    pub insecure: bool,
}

impl ClusterTlsArgs {
    /// The loaded identity, `None` with --insecure; an error without either.
    pub fn load(&self) -> Result<Option<ClusterTls>> {
        Ok(ClusterSecurity::from_settings(
            self.cluster_tls_ca_file.clone(),
            self.cluster_tls_cert_file.clone(),
            self.cluster_tls_key_file.clone(),
            self.insecure,
        )?
        .load()?)
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Initialise a new cluster whose voters are the given members.
    Init {
        /// Raft address of any member (Admin is served there only).
        #[arg(long)]
        node: String,
        /// `ID=RAFT_ADDR/CLIENT_ADDR[/METRICS_URL]`, once per member.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Print a node's view of the cluster as one line of JSON.
    Status {
        #[arg(long)]
        node: String,
    },
    /// Build a snapshot now and compact the log on that node.
    Snapshot {
        #[arg(long)]
        node: String,
    },
    /// Add a node as a learner (send to the leader).
    AddLearner {
        #[arg(long)]
        node: String,
        /// `ID=RAFT_ADDR/CLIENT_ADDR[/METRICS_URL]`
        #[arg(long)]
        member: String,
    },
    /// Set the voting members (send to the leader).
    ChangeMembership {
        #[arg(long)]
        node: String,
        /// Comma-separated node ids.
        #[arg(long, value_delimiter = ',')]
        voters: Vec<u64>,
    },
}

pub async fn run(args: AdminArgs) -> Result<()> {
    let tls = args.tls.load()?;
    let tls = tls.as_ref();
    match args.command {
        AdminCommand::Init { node, members } => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<Vec<_>>>()?;
            let reply = connect(&node, tls)
                .await?
                .initialize(InitializeRequest { members })
                .await?
                .into_inner();
            report(reply)
        }
        AdminCommand::Status { node } => {
            let status = status(&node, tls).await?;
            println!("{}", status_json(&status));
            Ok(())
        }
        AdminCommand::Snapshot { node } => {
            let reply = connect(&node, tls)
                .await?
                .trigger_snapshot(StatusRequest {})
                .await?
                .into_inner();
            report(reply)
        }
        AdminCommand::AddLearner { node, member } => {
            let reply = connect(&node, tls)
                .await?
                .add_learner(AddLearnerRequest {
                    node: Some(parse_member(&member)?),
                })
                .await?
                .into_inner();
            report(reply)
        }
        AdminCommand::ChangeMembership { node, voters } => {
            let reply = connect(&node, tls)
                .await?
                .change_membership(ChangeMembershipRequest { voter_ids: voters })
                .await?
                .into_inner();
            report(reply)
        }
    }
}

/// The Admin service of the node whose Raft address is `addr`.
pub async fn connect(addr: &str, tls: Option<&ClusterTls>) -> Result<AdminClient<Channel>> {
    let channel = cluster_tls::endpoint(tls, addr)
        .map_err(|e| anyhow!(e))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("cannot reach node admin service at {addr}"))?;
    Ok(AdminClient::new(channel))
}

pub async fn status(addr: &str, tls: Option<&ClusterTls>) -> Result<ClusterStatus> {
    Ok(connect(addr, tls)
        .await?
        .status(StatusRequest {})
        .await?
        .into_inner())
}

/// Parses `ID=RAFT_ADDR/CLIENT_ADDR[/METRICS_URL]`. The optional metrics
/// URL (e.g. `http://10.0.0.1:7121/metrics`, slashes allowed) is stored in
/// the membership and shown by the proxy's `INFO rampart`.
pub fn parse_member(text: &str) -> Result<NodeAddress> {
    let malformed = || anyhow!("member `{text}` is not ID=RAFT_ADDR/CLIENT_ADDR[/METRICS_URL]");
    let (id, addrs) = text.split_once('=').ok_or_else(malformed)?;
    let mut parts = addrs.splitn(3, '/');
    let raft_addr = parts.next().unwrap_or_default();
    let client_addr = parts.next().ok_or_else(malformed)?;
    let metrics_url = parts.next().unwrap_or_default();
    if raft_addr.is_empty() || client_addr.is_empty() {
        return Err(malformed());
    }
    Ok(NodeAddress {
        id: id
            .parse()
            .with_context(|| format!("bad node id in `{text}`"))?,
        raft_addr: raft_addr.to_string(),
        client_addr: client_addr.to_string(),
        metrics_url: metrics_url.to_string(),
    })
}

fn report(reply: AdminReply) -> Result<()> {
    if reply.ok {
        println!("ok {}", reply.message);
        return Ok(());
    }
    if let Some(leader) = reply.not_leader {
        bail!(
            "{} (not the leader; leader is node {} at {})",
            reply.message,
            leader.leader_id,
            leader.leader_addr
        );
    }
    bail!("{}", reply.message)
}

pub fn status_json(s: &ClusterStatus) -> String {
    format!(
        concat!(
            "{{\"node_id\":{},\"leader_id\":{},\"term\":{},\"state\":\"{}\",",
            "\"last_log_index\":{},\"committed_index\":{},\"applied_index\":{},",
            "\"snapshot_index\":{},\"purged_index\":{},\"voter_ids\":{:?}}}"
        ),
        s.node_id,
        s.leader_id,
        s.term,
        s.state,
        s.last_log_index,
        s.committed_index,
        s.applied_index,
        s.snapshot_index,
        s.purged_index,
        s.voter_ids,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_spec_parses() {
        let m = parse_member("2=127.0.0.1:7112/127.0.0.1:7102").unwrap();
        assert_eq!(m.id, 2);
        assert_eq!(m.raft_addr, "127.0.0.1:7112");
        assert_eq!(m.client_addr, "127.0.0.1:7102");
        assert_eq!(m.metrics_url, "");
        let m =
            parse_member("2=127.0.0.1:7112/127.0.0.1:7102/http://127.0.0.1:7122/metrics").unwrap();
        assert_eq!(m.client_addr, "127.0.0.1:7102");
        assert_eq!(m.metrics_url, "http://127.0.0.1:7122/metrics");
        assert!(parse_member("2=/127.0.0.1:7102").is_err());
        assert!(parse_member("2=127.0.0.1:7112").is_err());
        assert!(parse_member("x=a/b").is_err());
    }
}
