//! The cluster's time as this node knows it (docs/time.md).
//!
//! Entries carry the proposing leader's wall clock; the state machine
//! applies `max(entry time, last applied time)`, so the replicated time
//! never goes backwards whatever the leaders' clocks do. This module holds
//! the rule ([`effective_ms`]) and the node-local view of it
//! ([`ClusterClock`]) that reads, expiry scans and new proposals use, so
//! that none of them judges a TTL by a time below one already applied.

use std::sync::atomic::{AtomicI64, Ordering};

/// The time an entry stamped `entry_ms` is applied at, after entries
/// applied at `applied_ms`: never earlier. Deterministic (it depends only
/// on the log), so every replica computes the same.
pub fn effective_ms(entry_ms: i64, applied_ms: i64) -> i64 {
    entry_ms.max(applied_ms)
}

/// Milliseconds since the Unix epoch by this node's wall clock.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// This node's floor for "now": the highest time applied here or stamped
/// into an entry proposed here. Shared by the state machine (which raises
/// it after each apply) and the execution paths (which read it).
#[derive(Debug, Default)]
pub struct ClusterClock {
    floor_ms: AtomicI64,
}

impl ClusterClock {
    pub fn new() -> ClusterClock {
        ClusterClock::default()
    }

    /// Notes that time `ms` was applied (or proposed) here.
    pub fn observe(&self, ms: i64) {
        self.floor_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// The highest time applied or proposed here so far.
    pub fn floor_ms(&self) -> i64 {
        self.floor_ms.load(Ordering::Acquire)
    }

    /// "Now" for reads and expiry scans: the wall clock, but never below a
    /// time already applied (a key the log expired stays expired).
    pub fn now_ms(&self) -> i64 {
        wall_ms().max(self.floor_ms())
    }

    /// The time to stamp a new entry with: [`Self::now_ms`], remembered so
    /// the next entry proposed here is never stamped earlier, even if the
    /// wall clock steps back before this one is applied.
    pub fn stamp_ms(&self) -> i64 {
        let now = wall_ms();
        let prev = self.floor_ms.fetch_max(now, Ordering::AcqRel);
        now.max(prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_time_never_goes_backwards() {
        assert_eq!(effective_ms(1_000, 0), 1_000);
        assert_eq!(effective_ms(500, 1_000), 1_000);
        assert_eq!(effective_ms(2_000, 1_000), 2_000);
    }

    #[test]
    fn now_and_stamps_are_never_below_what_was_applied() {
        let clock = ClusterClock::new();
        let wall = wall_ms();
        assert!(clock.now_ms() >= wall);
        // An entry from a leader an hour ahead was applied.
        let ahead = wall + 3_600_000;
        clock.observe(ahead);
        assert_eq!(clock.now_ms(), ahead);
        assert_eq!(clock.stamp_ms(), ahead);
        // An older observation does not lower it.
        clock.observe(wall);
        assert_eq!(clock.floor_ms(), ahead);
        // Stamps are monotonic on their own too.
        let fresh = ClusterClock::new();
        let a = fresh.stamp_ms();
        let b = fresh.stamp_ms();
        assert!(b >= a && fresh.floor_ms() >= b);
    }
}
