//! When each log index became committed on this node, for the Raft commit
//! latency histogram (`rampart_raft_commit_seconds`).
//!
//! openraft 0.9's `client_write` answers only after the entry is applied, so
//! the proposer cannot see the commit itself. openraft does tell the log
//! store the moment the commit index advances (`save_committed`, called
//! before the entries are handed to the state machine); the log store notes
//! `(index, now)` here and the proposer, once `client_write` returns the
//! entry's index, looks up when that index was committed. The difference to
//! the instant it proposed is propose → committed, without the apply.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Commit advances remembered. Proposers look their entry up within
/// milliseconds of its commit, so only a short history is needed.
const KEEP: usize = 4096;

#[derive(Default)]
pub struct CommitClock {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (committed index, when), ascending by index.
    advances: VecDeque<(u64, Instant)>,
    /// Whether older advances were dropped (so an index below the first
    /// remembered one cannot be dated).
    truncated: bool,
}

impl CommitClock {
    pub fn new() -> CommitClock {
        CommitClock::default()
    }

    /// Notes that everything up to `index` is committed now.
    pub fn committed(&self, index: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner
            .advances
            .back()
            .is_some_and(|(last, _)| *last >= index)
        {
            return;
        }
        inner.advances.push_back((index, Instant::now()));
        if inner.advances.len() > KEEP {
            inner.advances.pop_front();
            inner.truncated = true;
        }
    }

    /// When `index` became committed here, if that is still known.
    pub fn committed_at(&self, index: u64) -> Option<Instant> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pos = inner.advances.partition_point(|(i, _)| *i < index);
        if pos == 0 && inner.truncated {
            // The advance covering it may have been dropped.
            return inner
                .advances
                .front()
                .filter(|(i, _)| *i == index)
                .map(|(_, t)| *t);
        }
        inner.advances.get(pos).map(|(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_dated_by_the_advance_that_covered_it() {
        let clock = CommitClock::new();
        assert!(clock.committed_at(1).is_none());
        clock.committed(3);
        let t3 = clock.committed_at(3).expect("known");
        assert_eq!(clock.committed_at(1), Some(t3));
        clock.committed(2); // stale advances are ignored
        clock.committed(5);
        let t5 = clock.committed_at(4).expect("known");
        assert!(t5 >= t3);
        assert_eq!(clock.committed_at(5), Some(t5));
        assert!(clock.committed_at(6).is_none());
    }

    #[test]
    fn history_is_bounded() {
        let clock = CommitClock::new();
        for i in 1..=(KEEP as u64 + 10) {
            clock.committed(i);
        }
        assert!(clock.committed_at(5).is_none());
        assert!(clock.committed_at(KEEP as u64 + 10).is_some());
    }
}
