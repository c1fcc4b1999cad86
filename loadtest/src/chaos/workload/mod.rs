//! The workloads: each runs `concurrency` clients at a fixed total rate
//! through the proxies and records every operation; after the faults are
//! healed and load has stopped, the set, counter and stream workloads make
//! their final reads.
//!
//! Each workload module has the same three parts: `setup` (initial values,
//! consumer groups), `client` (one client's loop) and `final_read`.

pub mod counter;
pub mod list_append;
pub mod register;
pub mod set;
pub mod stream;
pub mod ttl;

use super::client::{source_ip, Client, ClientConfig, ProcessIds};
use super::error::ChaosError;
use super::history::{History, Op, OpKind, Outcome};
use super::RunClock;
use crate::conn::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Register,
    ListAppend,
    Set,
    Counter,
    Stream,
    Ttl,
}

pub const ALL_WORKLOADS: &[WorkloadKind] = &[
    WorkloadKind::Register,
    WorkloadKind::ListAppend,
    WorkloadKind::Set,
    WorkloadKind::Counter,
    WorkloadKind::Stream,
    WorkloadKind::Ttl,
];

impl WorkloadKind {
    /// The command-line name, also the checker's (`check::WORKLOADS`).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::Set => "set",
            WorkloadKind::Counter => "counter",
            WorkloadKind::Stream => "stream",
            WorkloadKind::Ttl => "ttl",
        }
    }

    pub fn parse(name: &str) -> Option<WorkloadKind> {
        ALL_WORKLOADS.iter().copied().find(|w| w.name() == name)
    }
}

/// What every client of one workload shares.
#[derive(Clone)]
pub struct Ctx {
    pub client: Arc<ClientConfig>,
    pub clock: RunClock,
    pub ids: ProcessIds,
    pub concurrency: usize,
    /// Operations per second over all clients of the workload.
    pub rate: f64,
    pub seed: u64,
    pub stop: watch::Receiver<bool>,
    /// Source of values unique across the workload's run.
    pub unique: Arc<AtomicU64>,
    /// Client `i` of this workload is client `first_client + i` of the run
    /// (its source address, [`source_ip`]).
    pub first_client: usize,
}

impl Ctx {
    pub fn new_client(&self, index: usize) -> Client {
        let source = source_ip(self.first_client + index);
        Client::new(
            self.client.clone(),
            self.clock,
            self.ids.clone(),
            index,
            Some(source),
        )
    }

    pub fn next_unique(&self) -> u64 {
        self.unique.fetch_add(1, Ordering::Relaxed)
    }

    /// Time between two operations of one client.
    pub fn period(&self) -> Duration {
        let rate = self.rate.max(0.001);
        Duration::from_secs_f64(self.concurrency.max(1) as f64 / rate)
    }

    /// A seed for client `index` of workload `kind`.
    pub fn client_seed(&self, kind: WorkloadKind, index: usize) -> u64 {
        self.seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add((kind as u64) << 32)
            .wrapping_add(index as u64)
    }
}

/// Operations one client recorded, plus notes for the report (replies
/// that hint at a server problem the history cannot express).
#[derive(Debug, Default)]
pub struct Recorded {
    pub ops: Vec<Op>,
    pub notes: Vec<String>,
}

impl Recorded {
    pub fn extend(&mut self, other: Recorded) {
        self.ops.extend(other.ops);
        self.notes.extend(other.notes);
    }

    /// All operations, in invocation order.
    pub fn into_history(mut self) -> (History, Vec<String>) {
        self.ops.sort_by_key(|o| (o.start_ns, o.process));
        (History { ops: self.ops }, self.notes)
    }
}

/// Fixed-rate pacing of one client: ticks every `period`, clients of a
/// workload staggered across the period. A slow operation delays the next
/// tick instead of bunching the missed ones (the rate is a ceiling).
pub struct Pacer {
    interval: Interval,
}

impl Pacer {
    pub fn new(ctx: &Ctx, index: usize) -> Pacer {
        let period = ctx.period();
        let offset = period.mul_f64(index as f64 / ctx.concurrency.max(1) as f64);
        let mut interval = interval_at(Instant::now() + offset, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Pacer { interval }
    }

    /// Waits for the next tick; false once the run says stop.
    pub async fn next(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            _ = self.interval.tick() => !*stop.borrow(),
            _ = stop.changed() => false,
        }
    }
}

/// Sets up workload `kind` (retried until it works or `deadline` passes).
pub async fn setup(
    kind: WorkloadKind,
    ctx: &Ctx,
    deadline: Duration,
) -> Result<Recorded, ChaosError> {
    match kind {
        WorkloadKind::Register => register::setup(ctx, deadline).await,
        WorkloadKind::Stream => stream::setup(ctx, deadline).await,
        WorkloadKind::ListAppend
        | WorkloadKind::Set
        | WorkloadKind::Counter
        | WorkloadKind::Ttl => Ok(Recorded::default()),
    }
}

/// Runs client `index` of workload `kind` until `ctx.stop`.
pub async fn client(kind: WorkloadKind, ctx: Ctx, index: usize) -> Recorded {
    match kind {
        WorkloadKind::Register => register::client(ctx, index).await,
        WorkloadKind::ListAppend => list_append::client(ctx, index).await,
        WorkloadKind::Set => set::client(ctx, index).await,
        WorkloadKind::Counter => counter::client(ctx, index).await,
        WorkloadKind::Stream => stream::client(ctx, index).await,
        WorkloadKind::Ttl => ttl::client(ctx, index).await,
    }
}

/// The final reads of workload `kind`, retried until one succeeds or
/// `deadline` passes.
pub async fn final_read(kind: WorkloadKind, ctx: &Ctx, deadline: Duration) -> Recorded {
    match kind {
        WorkloadKind::Set => set::final_read(ctx, deadline).await,
        WorkloadKind::Counter => counter::final_read(ctx, deadline).await,
        WorkloadKind::Stream => stream::final_read(ctx, deadline).await,
        WorkloadKind::Register | WorkloadKind::ListAppend | WorkloadKind::Ttl => {
            Recorded::default()
        }
    }
}

/// One attempt of a final read: the kind to record, or it with the error.
pub type Attempt = Result<OpKind, (OpKind, String)>;

/// Repeats a read until it succeeds or `deadline` passes; every attempt is
/// recorded (failed ones as `Fail`: a read changes nothing).
pub async fn read_until_ok<F>(ctx: &Ctx, deadline: Duration, mut read: F) -> Recorded
where
    F: for<'a> FnMut(&'a mut Client) -> Pin<Box<dyn Future<Output = Attempt> + Send + 'a>>,
{
    let mut out = Recorded::default();
    let until = Instant::now() + deadline;
    let mut client = ctx.new_client(ctx.concurrency);
    loop {
        let start_ns = client.clock().now_ns();
        match read(&mut client).await {
            Ok(kind) => {
                out.ops
                    .push(client.finish(start_ns, Outcome::Ok, kind, None));
                return out;
            }
            Err((kind, error)) => {
                out.ops
                    .push(client.finish(start_ns, Outcome::Fail, kind, Some(error)));
                client.reconnect();
            }
        }
        if Instant::now() >= until {
            out.notes
                .push(format!("final read gave up after {deadline:?}"));
            return out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One page of a paged final read: its items, and where the next page
/// starts (None after the last page), or why the page failed.
pub type Page<T, C> = Result<(Vec<T>, Option<C>), String>;

/// A final read made of pages (SSCAN, XRANGE with COUNT), recorded as one
/// read from the first page's start to the last page's end. Load has
/// stopped, so the pages add up to one consistent read. A failed page is
/// retried from where it started (after a reconnect) until `deadline`, so
/// one slow or refused page on a loaded machine does not throw away the
/// pages already read, and no single request has to carry a whole
/// 60,000-item collection.
pub async fn read_paged<T, C, F, K>(
    ctx: &Ctx,
    deadline: Duration,
    first: C,
    mut page: F,
    kind: K,
) -> Recorded
where
    C: Clone,
    F: for<'a> FnMut(&'a mut Client, C) -> Pin<Box<dyn Future<Output = Page<T, C>> + Send + 'a>>,
    K: Fn(Option<Vec<T>>) -> OpKind,
{
    let mut out = Recorded::default();
    let until = Instant::now() + deadline;
    let mut client = ctx.new_client(ctx.concurrency);
    let start_ns = client.clock().now_ns();
    let mut items = Vec::new();
    let mut at = first;
    let (mut pages, mut failures) = (0u64, 0u64);
    loop {
        match page(&mut client, at.clone()).await {
            Ok((mut got, next)) => {
                pages += 1;
                items.append(&mut got);
                match next {
                    Some(next) => at = next,
                    None => {
                        if failures > 0 {
                            out.notes.push(format!(
                                "final read: {pages} pages, {failures} page attempts failed and were retried"
                            ));
                        }
                        out.ops
                            .push(client.finish(start_ns, Outcome::Ok, kind(Some(items)), None));
                        return out;
                    }
                }
            }
            Err(error) => {
                failures += 1;
                client.reconnect();
                if Instant::now() >= until {
                    out.notes.push(format!(
                        "final read gave up after {deadline:?}: {pages} pages read, \
                         {failures} page attempts failed (last: {error})"
                    ));
                    out.ops
                        .push(client.finish(start_ns, Outcome::Fail, kind(None), Some(error)));
                    return out;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Text of a reply for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => format!("unexpected reply {other:?}"),
    }
}
