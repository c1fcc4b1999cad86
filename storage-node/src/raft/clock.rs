//! The cluster's time as this node knows it (docs/time.md).
//!
//! Entries carry the proposing leader's wall clock; the state machine
//! applies `max(entry time, last applied time)`, so the replicated time
//! never goes backwards whatever the leaders' clocks do. This module holds
//! the rule ([`effective_ms`]) and the node-local view of it
//! ([`ClusterClock`]) that reads, expiry scans and new proposals use.
//!
//! Reads must also never judge a TTL at a time later than an entry that can
//! still apply after them: a write stamped `S` but committed after a read
//! at `T > S` applies at `S`, and could keep alive (or extend) a key that
//! the read already reported expired. So the leader remembers the stamps
//! of its entries in flight, and a read's "now" is at most the lowest of
//! them (docs/time.md, rule 4).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// This node's view of the cluster's time. Shared by the state machine
/// (which raises the applied time after each apply) and the execution
/// paths (which stamp entries and judge reads).
#[derive(Debug, Default)]
pub struct ClusterClock {
    applied_ms: AtomicI64,
    issued: Mutex<Issued>,
}

/// Times handed out, under one lock so that stamps and reads are ordered.
#[derive(Debug, Default)]
struct Issued {
    /// Stamps of entries proposed here whose outcome is not known yet
    /// (stamp → how many entries carry it).
    in_flight: BTreeMap<i64, usize>,
    last_stamp_ms: i64,
    last_read_ms: i64,
}

impl ClusterClock {
    pub fn new() -> ClusterClock {
        ClusterClock::default()
    }

    /// Notes that time `ms` was applied here.
    pub fn observe(&self, ms: i64) {
        self.applied_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// The highest time applied here so far.
    pub fn floor_ms(&self) -> i64 {
        self.applied_ms.load(Ordering::Acquire)
    }

    fn issued(&self) -> MutexGuard<'_, Issued> {
        // The critical sections cannot panic; a poisoned lock still holds
        // consistent numbers.
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// "Now" for reads, scripts and blocking commands: the wall clock, but
    /// never below a time already applied or read (a key seen expired stays
    /// expired), and never above the stamp of an entry still in flight (so
    /// that entry, applied at its stamp or later, cannot revive a key this
    /// read saw expired). Later stamps are never below it.
    pub fn now_ms(&self) -> i64 {
        let mut issued = self.issued();
        let wall = wall_ms();
        let bound = issued
            .in_flight
            .keys()
            .next()
            .map_or(wall, |&lowest| wall.min(lowest));
        let now = bound.max(self.floor_ms()).max(issued.last_read_ms);
        issued.last_read_ms = now;
        now
    }

    /// A time to stamp an entry with, not tracked as in flight: for entries
    /// that can only remove expired keys (active expiry), which no read
    /// needs to wait for. Never below a time stamped, applied or read here.
    pub fn stamp_ms(&self) -> i64 {
        let mut issued = self.issued();
        self.next_stamp(&mut issued)
    }

    /// A stamp for an entry that may write: tracked as in flight (reads
    /// judge no later than it) until the returned guard is dropped. Keep
    /// the guard until the entry's outcome is known (applied, or failed
    /// because this node lost leadership), not just until a caller gave up.
    pub fn stamp_in_flight(self: &Arc<Self>) -> InFlightStamp {
        let mut issued = self.issued();
        let ms = self.next_stamp(&mut issued);
        *issued.in_flight.entry(ms).or_insert(0) += 1;
        InFlightStamp {
            clock: self.clone(),
            ms,
        }
    }

    fn next_stamp(&self, issued: &mut Issued) -> i64 {
        let ms = wall_ms()
            .max(self.floor_ms())
            .max(issued.last_stamp_ms)
            .max(issued.last_read_ms);
        issued.last_stamp_ms = ms;
        ms
    }

    fn release(&self, ms: i64) {
        let mut issued = self.issued();
        if let Some(count) = issued.in_flight.get_mut(&ms) {
            *count -= 1;
            if *count == 0 {
                issued.in_flight.remove(&ms);
            }
        }
    }
}

/// The stamp of an entry in flight; dropping it ends the tracking.
#[derive(Debug)]
pub struct InFlightStamp {
    clock: Arc<ClusterClock>,
    ms: i64,
}

impl InFlightStamp {
    pub fn ms(&self) -> i64 {
        self.ms
    }
}

impl Drop for InFlightStamp {
    fn drop(&mut self) {
        self.clock.release(self.ms);
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
        assert!(b >= a);
    }

    #[test]
    fn reads_judge_no_later_than_an_entry_still_in_flight() {
        let clock = Arc::new(ClusterClock::new());
        let in_flight = clock.stamp_in_flight();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The wall clock moved on, but the entry may still apply at its
        // stamp: a read must not see a key as expired after that stamp.
        assert_eq!(clock.now_ms(), in_flight.ms());
        let second = clock.stamp_in_flight();
        assert!(second.ms() > in_flight.ms());
        assert_eq!(clock.now_ms(), in_flight.ms());
        drop(in_flight);
        assert_eq!(clock.now_ms(), second.ms());
        drop(second);
        assert!(clock.now_ms() >= wall_ms() - 1);
        // Applied time above an in-flight stamp wins: that entry applies at
        // the applied time or later anyway.
        let third = clock.stamp_in_flight();
        clock.observe(third.ms() + 5_000);
        assert_eq!(clock.now_ms(), third.ms() + 5_000);
    }

    #[test]
    fn later_stamps_are_never_below_a_time_a_read_used() {
        let clock = Arc::new(ClusterClock::new());
        let ahead = wall_ms() + 60_000;
        clock.observe(ahead);
        let read = clock.now_ms();
        assert!(clock.stamp_ms() >= read);
        assert!(clock.stamp_in_flight().ms() >= read);
    }
}
