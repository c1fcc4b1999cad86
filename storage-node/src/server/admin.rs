//! The Admin service: cluster bootstrap, membership changes, status and
//! log compaction. Served on both listen addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::ServerState;
use rampart_proto::pb::admin_server::Admin;
use rampart_proto::pb::{
    AddLearnerRequest, AdminReply, ChangeMembershipRequest, ClusterStatus, InitializeRequest,
    NodeAddress, NodeProgress, StatusRequest,
};
use tonic::{Request, Response, Status};

use crate::raft::{NodeId, NodeInfo};
use crate::NodeCtx;

/// How long AddLearner waits for the learner to catch up.
const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long TriggerSnapshot waits for the snapshot to be built.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AdminService {
    ctx: Arc<NodeCtx>,
}

impl AdminService {
    pub fn new(ctx: Arc<NodeCtx>) -> AdminService {
        AdminService { ctx }
    }

    fn ok(message: impl Into<String>) -> Response<AdminReply> {
        Response::new(AdminReply {
            ok: true,
            message: message.into(),
            not_leader: None,
        })
    }

    fn fail(message: impl Into<String>) -> Response<AdminReply> {
        Response::new(AdminReply {
            ok: false,
            message: message.into(),
            not_leader: None,
        })
    }

    fn write_error(
        &self,
        what: &str,
        err: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
    ) -> Response<AdminReply> {
        match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => {
                Response::new(AdminReply {
                    ok: false,
                    message: format!("{what}: this node is not the leader"),
                    not_leader: Some(self.ctx.not_leader(&fwd)),
                })
            }
            other => Self::fail(format!("{what}: {other}")),
        }
    }

    fn is_leader(&self) -> bool {
        let m = self.ctx.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.ctx.id)
    }

    fn not_leader_reply(&self, what: &str) -> Response<AdminReply> {
        Response::new(AdminReply {
            ok: false,
            message: format!("{what}: this node is not the leader"),
            not_leader: Some(self.ctx.current_not_leader()),
        })
    }
}

fn node_info(addr: &NodeAddress) -> NodeInfo {
    NodeInfo {
        raft_addr: addr.raft_addr.clone(),
        client_addr: addr.client_addr.clone(),
        metrics_url: addr.metrics_url.clone(),
    }
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn initialize(
        &self,
        request: Request<InitializeRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let req = request.into_inner();
        if req.members.is_empty() {
            return Ok(Self::fail("initialize: no members given"));
        }
        let mut members = BTreeMap::new();
        for m in &req.members {
            if m.id == 0 {
                return Ok(Self::fail("initialize: node id 0 is not allowed"));
            }
            if members.insert(m.id, node_info(m)).is_some() {
                return Ok(Self::fail(format!(
                    "initialize: node {} listed twice",
                    m.id
                )));
            }
        }
        match self.ctx.raft.initialize(members).await {
            Ok(()) => Ok(Self::ok("initialized")),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => Ok(Self::fail(format!(
                "initialize: cluster already initialized ({e})"
            ))),
            Err(e) => Ok(Self::fail(format!("initialize: {e}"))),
        }
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let Some(node) = request.into_inner().node else {
            return Ok(Self::fail("add learner: node missing"));
        };
        if node.id == 0 {
            return Ok(Self::fail("add learner: node id 0 is not allowed"));
        }
        if !self.is_leader() {
            return Ok(self.not_leader_reply("add learner"));
        }
        // Blocking: returns once the learner has caught up with the log.
        let call = self.ctx.raft.add_learner(node.id, node_info(&node), true);
        match tokio::time::timeout(ADD_LEARNER_TIMEOUT, call).await {
            Ok(Ok(resp)) => Ok(Self::ok(format!(
                "node {} added as learner at log {}",
                node.id, resp.log_id.index
            ))),
            Ok(Err(e)) => Ok(self.write_error("add learner", e)),
            Err(_) => Ok(Self::fail(format!(
                "add learner: node {} was added but has not caught up within {}s",
                node.id,
                ADD_LEARNER_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let voters: BTreeSet<NodeId> = request.into_inner().voter_ids.into_iter().collect();
        if voters.is_empty() {
            return Ok(Self::fail("change membership: no voters given"));
        }
        if !self.is_leader() {
            return Ok(self.not_leader_reply("change membership"));
        }
        // retain=false: nodes dropped from the voters leave the cluster.
        let call = self.ctx.raft.change_membership(voters, false);
        match tokio::time::timeout(self.ctx.write_timeout * 4, call).await {
            Ok(Ok(resp)) => Ok(Self::ok(format!(
                "membership changed at log {}",
                resp.log_id.index
            ))),
            Ok(Err(e)) => Ok(self.write_error("change membership", e)),
            Err(_) => Ok(Self::fail("change membership: timed out")),
        }
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let m = self.ctx.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let members = membership
            .nodes()
            .map(|(id, n)| NodeAddress {
                id: *id,
                raft_addr: n.raft_addr.clone(),
                client_addr: n.client_addr.clone(),
                metrics_url: n.metrics_url.clone(),
            })
            .collect();
        let replication = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, matched)| NodeProgress {
                        node_id: *id,
                        matched_index: matched.map(|l| l.index).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(ClusterStatus {
            node_id: m.id,
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            state: state_name(m.state).to_string(),
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: self.committed_index().await,
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
            purged_index: m.purged.map(|l| l.index).unwrap_or(0),
            members,
            voter_ids: membership.voter_ids().collect(),
            replication,
        }))
    }

    async fn trigger_snapshot(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let target = self
            .ctx
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| l.index);
        if let Err(e) = self.ctx.raft.trigger().snapshot().await {
            return Ok(Self::fail(format!("snapshot: {e}")));
        }
        // Wait until a snapshot covering what was applied at the call exists;
        // openraft then purges the log behind it (keeping the configured tail).
        let waited = self
            .ctx
            .raft
            .wait(Some(SNAPSHOT_TIMEOUT))
            .metrics(|m| m.snapshot.map(|l| l.index) >= target, "snapshot built")
            .await;
        match waited {
            Ok(m) => Ok(Self::ok(format!(
                "snapshot at log {}",
                m.snapshot.map(|l| l.index).unwrap_or(0)
            ))),
            Err(e) => Ok(Self::fail(format!("snapshot: {e}"))),
        }
    }
}

impl AdminService {
    /// The committed index from Raft's own state (metrics do not carry it).
    async fn committed_index(&self) -> u64 {
        self.ctx
            .raft
            .with_raft_state(|st| st.committed.map(|l| l.index).unwrap_or(0))
            .await
            .unwrap_or(0)
    }
}
