//! The node's gRPC services: Kv (clients), RaftTransport (peers) and Admin.

pub mod admin;
pub mod blocking;
pub mod grpc_metrics;
pub mod heavy;
pub mod kv;
pub mod proposals;
pub mod pubsub;
pub mod read_index;
pub mod stream_drainer;
pub mod transport;

use std::time::Duration;

use openraft::error::ForwardToLeader;
use rampart_proto::pb::NotLeader;

use crate::engine::Engine;
use crate::raft::{NodeId, NodeInfo, Raft};

/// What every service of one node shares.
pub struct NodeCtx {
    pub id: NodeId,
    pub raft: Raft,
    pub engine: Engine,
    /// Bound on waiting for a commit or a ReadIndex confirmation.
    pub write_timeout: Duration,
    /// Shares ReadIndex rounds between concurrent reads.
    pub reads: read_index::ReadBarrier,
    /// Combines concurrent client write runs into shared Raft entries.
    pub proposals: proposals::ProposalBatcher,
    /// Bounded executor for heavy reads (`-BUSY` when full).
    pub heavy: heavy::HeavyExecutor,
    /// Clients blocked in BLPOP & co., woken by applied writes.
    pub waiters: std::sync::Arc<blocking::KeyWaiters>,
    /// Whether this node is the leader (changes only when that does).
    pub leadership: tokio::sync::watch::Receiver<bool>,
    /// Lua scripts running on this node (SCRIPT KILL) and their time limit.
    pub scripts: std::sync::Arc<crate::scripting::Scripts>,
}

impl NodeCtx {
    /// A `NotLeader` answer pointing at the leader's client address, looked
    /// up in the membership when openraft did not include the node.
    pub fn not_leader(&self, fwd: &ForwardToLeader<NodeId, NodeInfo>) -> NotLeader {
        let leader_id = fwd.leader_id.unwrap_or(0);
        let leader_addr = match (&fwd.leader_node, fwd.leader_id) {
            (Some(node), _) => node.client_addr.clone(),
            (None, Some(id)) => self.client_addr_of(id).unwrap_or_default(),
            (None, None) => String::new(),
        };
        NotLeader {
            leader_id,
            leader_addr,
        }
    }

    /// `NotLeader` from this node's current view (for admin calls).
    pub fn current_not_leader(&self) -> NotLeader {
        let leader = self.raft.metrics().borrow().current_leader;
        NotLeader {
            leader_id: leader.unwrap_or(0),
            leader_addr: leader
                .and_then(|id| self.client_addr_of(id))
                .unwrap_or_default(),
        }
    }

    fn client_addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.client_addr.clone())
    }
}

/// Milliseconds since the Unix epoch by this node's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
