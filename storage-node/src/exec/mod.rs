//! Execution: how commands run on this node, whoever asked for them.
//!
//! The Kv handler, Lua scripting and the legacy-stream drainer all write
//! through one Raft entry per run, read after a ReadIndex barrier, commit
//! MULTI/EXEC as one guarded entry and wait out blocking commands the same
//! way. Keeping those paths here, beneath all three, gives each command one
//! source of truth and lets none of its callers depend on another.
//! Execution knows nothing of gRPC services or of scripts: it sees only
//! [`ExecCtx`], the part of the node's shared state it needs.
//!
//! - [`batch`]: a pipelined batch, split into runs of writes and reads.
//! - [`write`], [`read`], [`transaction`]: one write run, one read run, one
//!   MULTI/EXEC.
//! - [`blocking`]: blocking commands sent alone, the key waiters that
//!   applied writes wake, and the attempts for them that write batches
//!   carry.
//! - [`proposals`], [`read_index`], [`heavy`]: what those paths share
//!   between concurrent requests (Raft entries, leadership confirmations,
//!   the bounded executor for heavy work).

pub mod batch;
pub mod blocking;
pub mod heavy;
pub mod proposals;
pub mod read;
pub mod read_index;
pub mod transaction;
pub mod write;

use std::time::Duration;

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::{NotLeader, Unavailable};
use rampart_proto::{reply, Reply};

use crate::engine::Engine;
use crate::raft::{NodeId, NodeInfo, Raft};

pub(crate) use batch::run_batch;
pub(crate) use blocking::OnWaiting;
pub(crate) use read::{confirm_leadership, read_run};
pub(crate) use transaction::transaction;
pub(crate) use write::write_run;

use proposals::ProposeError;

/// What the execution paths of one node share.
pub struct ExecCtx {
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
    /// A leader that has heard from no quorum for longer than this (the
    /// election timeout) refuses requests: see [`ExecCtx::check_quorum`].
    pub quorum_timeout: Duration,
    /// "Now" for TTLs: never below a time already applied here
    /// (docs/time.md). Every read, scan and proposal asks it, never the
    /// raw wall clock.
    pub clock: std::sync::Arc<crate::raft::clock::ClusterClock>,
}

impl ExecCtx {
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

    /// `Unavailable` when this node leads but no quorum has acknowledged it
    /// for longer than the election timeout. Such a leader is cut off from
    /// the others (openraft 0.9 has no check-quorum, so it does not step
    /// down); a call to it would be accepted and never answered. Refusing at
    /// once sends the proxy to the other nodes, where a new leader is about
    /// to be elected.
    pub(crate) fn check_quorum(&self) -> Result<(), Failure> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        if m.current_leader != Some(self.id) {
            return Ok(());
        }
        match m.millis_since_quorum_ack {
            Some(ms) if u128::from(ms) > self.quorum_timeout.as_millis() => Err(
                Failure::Unavailable(format!("the leader has heard from no quorum for {ms} ms")),
            ),
            _ => Ok(()),
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

/// Why a run could not be served.
#[derive(Debug)]
pub(crate) enum Failure {
    NotLeader(NotLeader),
    Unavailable(String),
}

impl Failure {
    pub(crate) fn into_outcome(self) -> Outcome {
        match self {
            Failure::NotLeader(n) => Outcome::NotLeader(n),
            Failure::Unavailable(reason) => Outcome::Unavailable(Unavailable { reason }),
        }
    }

    /// Per-command error for commands that could not run after part of a
    /// batch without a client id (which cannot be retried safely) committed.
    pub(crate) fn error_reply(&self) -> Reply {
        match self {
            Failure::NotLeader(_) => {
                reply::error("TRYAGAIN leadership changed while the batch was running")
            }
            Failure::Unavailable(reason) => reply::error(format!(
                "TRYAGAIN the cluster could not complete the batch: {reason}"
            )),
        }
    }
}

/// The failure of a write that Raft (or the proposal batcher) refused.
fn propose_failure(ctx: &ExecCtx, err: ProposeError) -> Failure {
    match err {
        ProposeError::Unavailable(reason) => Failure::Unavailable(reason),
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd))) => {
            Failure::NotLeader(ctx.not_leader(&fwd))
        }
        ProposeError::Raft(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Failure::Unavailable(e.to_string())
        }
        ProposeError::Raft(RaftError::Fatal(e)) => {
            Failure::Unavailable(format!("raft stopped: {e}"))
        }
    }
}

/// The reply of a run of one command.
pub(crate) fn single_reply(mut replies: Vec<Reply>) -> Reply {
    replies
        .pop()
        .unwrap_or_else(|| reply::error("ERR internal error: no reply for the command"))
}
