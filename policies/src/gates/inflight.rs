//! Gate: the global in-flight request cap, in units of one executing
//! command (a transaction is one unit) across all connections. It bounds
//! memory, not clients: a batch that finds the cap reached WAITS for units
//! (its connection reads nothing meanwhile, so TCP flow control slows the
//! sender) instead of being refused, because a pipeline is a client's own
//! ordered work and Redis clients cannot handle part of it refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::{Counter, Gauge};
use tokio::sync::Notify;

use crate::metrics::{INFLIGHT_WAITS, REQUESTS_IN_FLIGHT};

/// The cap and its count.
#[derive(Debug)]
pub struct Inflight {
    used: AtomicU64,
    /// 0 = unlimited.
    max: AtomicU64,
    released: Notify,
    gauge: Gauge,
    waits: Counter,
}

/// Units of the cap, released on drop.
#[derive(Debug)]
pub struct InflightPermit {
    owner: Arc<Inflight>,
    units: u64,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(self.units, Ordering::AcqRel);
        self.owner.gauge.decrement(self.units as f64);
        self.owner.released.notify_waiters();
    }
}

impl Inflight {
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(Inflight {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            released: Notify::new(),
            gauge: metrics::gauge!(REQUESTS_IN_FLIGHT),
            waits: metrics::counter!(INFLIGHT_WAITS),
        })
    }

    /// A new cap; units already taken stay counted. Waiters look again.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Release);
        self.released.notify_waiters();
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `units` (at most the whole cap, so a batch larger than the cap
    /// still runs, alone), waiting while the cap has no room for them.
    pub async fn acquire(self: &Arc<Self>, units: u64) -> InflightPermit {
        let mut counted = false;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(permit) = self.try_acquire(units) {
                return permit;
            }
            if !counted {
                self.waits.increment(1);
                counted = true;
            }
            released.await;
        }
    }

    /// Takes `units` now, or `None` when the cap has no room.
    pub fn try_acquire(self: &Arc<Self>, units: u64) -> Option<InflightPermit> {
        let max = self.max.load(Ordering::Acquire);
        let units = if max > 0 { units.min(max) } else { units };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (max == 0 || used + units <= max).then_some(used + units)
            })
            .ok()?;
        self.gauge.increment(units as f64);
        Some(InflightPermit {
            owner: self.clone(),
            units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_cap_is_exact_and_zero_means_unlimited() {
        let cap = Inflight::new(2);
        let a = cap.try_acquire(1).unwrap();
        let _b = cap.try_acquire(1).unwrap();
        assert!(cap.try_acquire(1).is_none());
        drop(a);
        assert!(cap.try_acquire(1).is_some());
        cap.set_max(0);
        let many = cap.try_acquire(100).unwrap();
        assert_eq!(cap.in_use(), 101);
        drop(many);
        assert_eq!(cap.in_use(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_room_and_one_larger_than_the_cap_runs_alone() {
        let cap = Inflight::new(4);
        let held = cap.try_acquire(3).unwrap();
        let waiter = {
            let cap = cap.clone();
            tokio::spawn(async move { cap.acquire(2).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "no room for 2 while 3 of 4 are used");
        drop(held);
        let two = waiter.await.unwrap();
        assert_eq!(cap.in_use(), 2);
        drop(two);
        // 10 units on a cap of 4: takes the whole cap once it is free.
        let big = cap.acquire(10).await;
        assert_eq!(cap.in_use(), 4);
        drop(big);
        assert_eq!(cap.in_use(), 0);
    }
}
