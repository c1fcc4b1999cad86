//! `rampart-loadtest chaos`: a cluster under faults, workloads that record
//! histories, and checkers that judge them (issue 17).
//!
//! - [`cluster`] starts N nodes, each in its own network namespace
//!   ([`netns`]), and the proxies; [`janitor`] removes everything again.
//! - [`nemesis`] draws the fault schedule from the seed; [`faults`] applies
//!   it (kill, pause, partitions through [`firewall`], clock, disk, proxy).
//! - [`workload`] clients record every operation into a [`history`]
//!   through [`client`].
//! - [`runner`] ties a run together; [`report`] and [`plot`] show it;
//!   [`recovery`] measures failover time.
//! - `check` holds the checkers.

pub mod check;
pub mod client;
pub mod cluster;
pub mod error;
pub mod faults;
pub mod firewall;
pub mod history;
pub mod janitor;
pub mod names;
pub mod nemesis;
pub mod netns;
pub mod plot;
pub mod procs;
pub mod recovery;
pub mod report;
pub mod runner;
pub mod sys;
pub mod workload;

use std::time::{Duration, Instant};

/// The run's monotonic clock: histories and fault records are stamped in
/// nanoseconds since the same start.
#[derive(Debug, Clone, Copy)]
pub struct RunClock(Instant);

impl RunClock {
    pub fn start() -> RunClock {
        RunClock(Instant::now())
    }

    pub fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}
