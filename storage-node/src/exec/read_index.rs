//! Coalesced ReadIndex: concurrent reads share leadership confirmations.
//!
//! Every `ensure_linearizable` costs a heartbeat round to a quorum. With one
//! round per read batch, fifty clients doing GETs make the leader and both
//! followers spend their CPU on heartbeats. Here at most one round runs at a
//! time: a read that arrives while a round is running waits for the *next*
//! round (which starts after it arrived, so the read still observes every
//! write acknowledged before it), and all reads waiting for that round share
//! its result.

use std::sync::{Arc, Mutex};

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::watch;

use crate::raft::{NodeId, NodeInfo, Raft};

pub type CheckError = RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>;
type RoundResult = (u64, Result<(), CheckError>);

#[derive(Clone)]
pub struct ReadBarrier {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    done: watch::Sender<RoundResult>,
}

#[derive(Default)]
struct State {
    /// Number of the newest round started.
    started: u64,
    running: bool,
    /// Some read is waiting for a round that has not started yet.
    want_next: bool,
}

impl Default for ReadBarrier {
    fn default() -> Self {
        ReadBarrier {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                done: watch::channel((0, Ok(()))).0,
            }),
        }
    }
}

impl ReadBarrier {
    /// Returns once a leadership confirmation that started after this call
    /// has succeeded and the state machine has applied up to its read index.
    pub async fn wait(&self, raft: &Raft) -> Result<(), CheckError> {
        let mut done = self.inner.done.subscribe();
        let target = {
            let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.running {
                state.want_next = true;
                state.started + 1
            } else {
                state.running = true;
                state.started += 1;
                self.spawn_rounds(raft.clone(), state.started);
                state.started
            }
        };
        loop {
            {
                let (round, result) = &*done.borrow_and_update();
                if *round >= target {
                    return result.clone();
                }
            }
            if done.changed().await.is_err() {
                // Cannot happen (we hold the sender through `inner`); confirm
                // on our own rather than hang or panic.
                return raft.ensure_linearizable().await.map(|_| ());
            }
        }
    }

    fn spawn_rounds(&self, raft: Raft, first: u64) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut round = first;
            loop {
                let result = raft.ensure_linearizable().await.map(|_| ());
                // The previous value (an older round) is of no further use.
                let _previous = inner.done.send_replace((round, result));
                let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.want_next {
                    state.want_next = false;
                    state.started += 1;
                    round = state.started;
                } else {
                    state.running = false;
                    return;
                }
            }
        });
    }
}
