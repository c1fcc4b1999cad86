//! Gate: the global in-flight request cap, one unit per executing command
//! across all connections. Lock-free; a full cap refuses at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::Gauge;

use crate::metrics::REQUESTS_IN_FLIGHT;

/// Refusal: the proxy-wide cap is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the proxy is at its in-flight request limit ({max})")]
pub struct InflightFull {
    pub max: u64,
}

/// The cap and its count.
#[derive(Debug)]
pub struct Inflight {
    used: AtomicU64,
    /// 0 = unlimited.
    max: AtomicU64,
    gauge: Gauge,
}

/// One in-flight unit, released on drop.
#[derive(Debug)]
pub struct InflightPermit {
    owner: Arc<Inflight>,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(1, Ordering::AcqRel);
        self.owner.gauge.decrement(1.0);
    }
}

impl Inflight {
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(Inflight {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            gauge: metrics::gauge!(REQUESTS_IN_FLIGHT),
        })
    }

    /// A new cap; units already taken stay counted.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Release);
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes a unit, or refuses at the cap.
    pub fn try_acquire(self: &Arc<Self>) -> Result<InflightPermit, InflightFull> {
        let max = self.max.load(Ordering::Acquire);
        let before = self.used.fetch_add(1, Ordering::AcqRel);
        if max > 0 && before >= max {
            self.used.fetch_sub(1, Ordering::AcqRel);
            return Err(InflightFull { max });
        }
        self.gauge.increment(1.0);
        Ok(InflightPermit {
            owner: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_cap_is_exact_and_zero_means_unlimited() {
        let cap = Inflight::new(2);
        let a = cap.try_acquire().unwrap();
        let _b = cap.try_acquire().unwrap();
        assert_eq!(cap.try_acquire().unwrap_err(), InflightFull { max: 2 });
        drop(a);
        assert!(cap.try_acquire().is_ok());
        cap.set_max(0);
        let many: Vec<_> = (0..100).map(|_| cap.try_acquire().unwrap()).collect();
        assert_eq!(cap.in_use(), 101);
        drop(many);
        assert_eq!(cap.in_use(), 1);
    }
}
