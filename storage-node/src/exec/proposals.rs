//! Proposal batching: concurrent write runs share Raft entries.
//!
//! openraft's core handles a few thousand entries per second here whatever
//! their size, so one entry per Execute write run caps the node's write rate
//! under many concurrent clients even though CPU is idle. The batcher puts
//! every run queued at the same time into ONE `Op::Batch` entry (as TiKV
//! batches proposals). At most [`MAX_IN_FLIGHT`] entries are being committed
//! at once: while they are, new runs queue up and the next entry carries all
//! of them. A lone client never waits for anyone: nothing sleeps to collect
//! more runs, its run is proposed as soon as a slot is free (always, when it
//! is alone).
//!
//! A run keeps its own dedup identity inside a combined entry, so a retried
//! batch is still answered from its stored replies; a failed entry fails all
//! of its runs with the same error, and the proxy retries each of them.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::error::{ClientWriteError, RaftError};
use rampart_proto::Reply;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics::{RAFT_COMMIT_SECONDS, RAFT_PROPOSAL_OVERFLOW, RAFT_PROPOSAL_QUEUE_DEPTH};
use crate::raft::clock::ClusterClock;
use crate::raft::commit_clock::CommitClock;
use crate::raft::types::WriteRun;
use crate::raft::{NodeId, NodeInfo, Op, Raft, Request, Response};

pub type WriteError = RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>;

/// Entries being committed at once. The leader appends (and fsyncs) entries
/// one after another, so the per-entry cost is what limits throughput: two
/// let one entry's log flush overlap the previous one's replication, while
/// more only queue behind each other's flushes with fewer runs in each
/// (measured with 50 clients: 1 and 2 about equal, 2 better with pipelined
/// clients; 3 is 25% slower, 4 40%, 16 an eighth).
const MAX_IN_FLIGHT: usize = 2;
/// Upper bounds of one combined entry; a single run larger than this still
/// goes alone.
const MAX_ITEMS: usize = 256;
const MAX_BYTES: usize = 4 << 20;
/// Runs waiting for an entry; `submit` waits when it is full.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Raft refused or failed the entry holding the run.
    #[error(transparent)]
    Raft(WriteError),
    #[error("{0}")]
    Unavailable(String),
}

struct Pending {
    run: WriteRun,
    size: usize,
    reply: ReplyTo,
}

/// Where the replies of a run in a batch go.
pub enum ReplyTo {
    /// The task that submitted the run.
    Submitter(oneshot::Sender<Result<Vec<Reply>, ProposeError>>),
    /// A blocked client the batch carries an attempt for (see
    /// [`BatchExtras`]): its channel, and its count of batches in flight
    /// that carry one, taken back once the answer is on the channel.
    Blocked {
        tx: mpsc::UnboundedSender<Result<Vec<Reply>, ProposeError>>,
        in_flight: Arc<AtomicUsize>,
    },
}

impl ReplyTo {
    /// A submitter that gave up (timed out) needs no run proposed.
    fn is_closed(&self) -> bool {
        match self {
            ReplyTo::Submitter(tx) => tx.is_closed(),
            ReplyTo::Blocked { .. } => false,
        }
    }

    /// Delivers the answer; a receiver that went away needs none.
    pub fn send(self, result: Result<Vec<Reply>, ProposeError>) {
        match self {
            ReplyTo::Submitter(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Blocked { tx, in_flight } => {
                let _ = tx.send(result);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Runs added to a batch just before it is proposed, after its own runs:
/// the node's blocked clients waiting on keys the batch writes
/// (`blocking::KeyWaiters`), so the pops a push unblocks apply in the same
/// entry.
pub trait BatchExtras: Send + Sync + 'static {
    fn extras(&self, runs: &[&WriteRun]) -> Vec<(WriteRun, ReplyTo)>;
}

/// Handle to the batching task; cheap to clone. The task ends when every
/// handle is dropped.
#[derive(Clone)]
pub struct ProposalBatcher {
    tx: mpsc::Sender<Pending>,
}

impl ProposalBatcher {
    /// Starts the batching task on the current tokio runtime. `clock` dates
    /// commits, for the commit latency histogram; `time` stamps entries.
    /// `extras` adds runs to each batch (the blocked clients it serves).
    pub fn new(
        raft: Raft,
        clock: Arc<CommitClock>,
        time: Arc<ClusterClock>,
        extras: Arc<dyn BatchExtras>,
    ) -> ProposalBatcher {
        ProposalBatcher::with_proposer(time, Some(extras), move |req| {
            let raft = raft.clone();
            let clock = clock.clone();
            async move {
                let proposed = Instant::now();
                let written = raft.client_write(req).await?;
                // Answered after apply; the commit itself was dated by the
                // log store. Unknown (very old) commits are not recorded.
                if let Some(at) = clock.committed_at(written.log_id.index) {
                    metrics::histogram!(RAFT_COMMIT_SECONDS)
                        .record(at.saturating_duration_since(proposed));
                }
                Ok::<_, WriteError>(written.data)
            }
        })
    }

    fn with_proposer<F, Fut>(
        time: Arc<ClusterClock>,
        extras: Option<Arc<dyn BatchExtras>>,
        propose: F,
    ) -> ProposalBatcher
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, WriteError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Exported from the start (at 0), so alerts see the series.
        for reason in ["queue_full", "expired"] {
            metrics::counter!(RAFT_PROPOSAL_OVERFLOW, "reason" => reason).increment(0);
        }
        metrics::gauge!(RAFT_PROPOSAL_QUEUE_DEPTH).set(0.0);
        tokio::spawn(run_loop(rx, time, extras, Arc::new(propose)));
        ProposalBatcher { tx }
    }

    /// Commits `run` (in an entry shared with other runs) and returns its
    /// replies, one per command. The caller bounds the wait.
    pub async fn submit(&self, run: WriteRun) -> Result<Vec<Reply>, ProposeError> {
        let size = run
            .commands
            .iter()
            .flatten()
            .map(|arg| arg.len() + 8)
            .sum::<usize>()
            + run.client_id.len();
        let (reply, rx) = oneshot::channel();
        let closed = || ProposeError::Unavailable("the node is shutting down".into());
        let reply = ReplyTo::Submitter(reply);
        match self.tx.try_send(Pending { run, size, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(pending)) => {
                // The queue of runs waiting for an entry overflowed: the
                // submitter waits for room (the caller bounds the wait).
                metrics::counter!(RAFT_PROPOSAL_OVERFLOW, "reason" => "queue_full").increment(1);
                self.tx.send(pending).await.map_err(|_| closed())?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(closed()),
        }
        publish_depth(&self.tx);
        rx.await.map_err(|_| closed())?
    }
}

/// Sets the proposal queue depth gauge from the channel's free room.
fn publish_depth<T>(tx: &mpsc::Sender<T>) {
    let depth = tx.max_capacity().saturating_sub(tx.capacity());
    metrics::gauge!(RAFT_PROPOSAL_QUEUE_DEPTH).set(depth as f64);
}

async fn run_loop<F, Fut>(
    mut rx: mpsc::Receiver<Pending>,
    time: Arc<ClusterClock>,
    extras: Option<Arc<dyn BatchExtras>>,
    propose: Arc<F>,
) where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, WriteError>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // A slot first, then the runs: while every slot is busy, runs pile
        // up in the channel and the next entry takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut size = first.size;
        let mut batch = vec![first];
        while batch.len() < MAX_ITEMS && size < MAX_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    size += p.size;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        // A submitter that timed out was told the write is unavailable; not
        // proposing its run keeps that answer true (its retry applies it).
        let before = batch.len();
        batch.retain(|p| !p.reply.is_closed());
        let expired = before - batch.len();
        if expired > 0 {
            metrics::counter!(RAFT_PROPOSAL_OVERFLOW, "reason" => "expired")
                .increment(expired as u64);
        }
        let depth = rx.max_capacity().saturating_sub(rx.capacity());
        metrics::gauge!(RAFT_PROPOSAL_QUEUE_DEPTH).set(depth as f64);
        if batch.is_empty() {
            continue;
        }
        if let Some(extras) = &extras {
            let runs: Vec<&WriteRun> = batch.iter().map(|p| &p.run).collect();
            let added = extras.extras(&runs);
            batch.extend(added.into_iter().map(|(run, reply)| Pending {
                run,
                size: 0,
                reply,
            }));
        }
        let propose = propose.clone();
        // Tracked until Raft answers, even if every submitter gave up: the
        // entry may still apply at this stamp (see `ClusterClock::now_ms`).
        let stamp = time.stamp_in_flight();
        tokio::spawn(async move {
            let _slot = slot;
            propose_batch(&*propose, stamp.ms(), batch).await;
            drop(stamp);
        });
    }
}

async fn propose_batch<F, Fut>(propose: &F, now_ms: i64, batch: Vec<Pending>)
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Response, WriteError>>,
{
    let (items, waiters): (Vec<WriteRun>, Vec<_>) =
        batch.into_iter().map(|p| (p.run, p.reply)).unzip();
    let request = Request {
        now_ms,
        op: Op::Batch { items },
    };
    match propose(request).await {
        Ok(resp) if resp.items.len() == waiters.len() => {
            for (waiter, replies) in waiters.into_iter().zip(resp.items) {
                waiter.send(Ok(replies));
            }
        }
        Ok(resp) => {
            // Cannot happen: apply answers every item of a batch.
            tracing::error!(
                items = waiters.len(),
                answered = resp.items.len(),
                "batch entry answered the wrong number of items"
            );
            let err = ProposeError::Unavailable("internal error: batch reply mismatch".into());
            for waiter in waiters {
                waiter.send(Err(err.clone()));
            }
        }
        Err(e) => {
            let err = ProposeError::Raft(e);
            for waiter in waiters {
                waiter.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::error::ForwardToLeader;
    use rampart_proto::reply;

    use super::*;

    fn run(client: &str, seq: u64) -> WriteRun {
        WriteRun {
            client_id: client.into(),
            seq,
            part: 0,
            commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
        }
    }

    #[derive(Default)]
    struct Stats {
        entries: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    /// A fake commit taking 5 ms that answers each item with its identity.
    fn echo_batcher(stats: Arc<Stats>) -> ProposalBatcher {
        ProposalBatcher::with_proposer(Default::default(), None, move |req: Request| {
            let stats = stats.clone();
            async move {
                stats.entries.fetch_add(1, Ordering::SeqCst);
                let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                let Op::Batch { items } = req.op else {
                    panic!("expected a batch entry");
                };
                Ok(Response {
                    replies: Vec::new(),
                    items: items
                        .iter()
                        .map(|r| {
                            vec![
                                reply::bulk(r.client_id.clone()),
                                reply::integer(r.seq as i64),
                            ]
                        })
                        .collect(),
                })
            }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_runs_share_entries_and_get_their_own_replies() {
        let stats = Arc::new(Stats::default());
        let batcher = echo_batcher(stats.clone());
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.submit(run(&format!("c{i}"), i)).await) })
            })
            .collect();
        for task in tasks {
            let (i, result) = task.await.expect("task");
            assert_eq!(
                result.expect("replies"),
                vec![reply::bulk(format!("c{i}")), reply::integer(i as i64)]
            );
        }
        let entries = stats.entries.load(Ordering::SeqCst);
        assert!(entries < 200 / 4, "{entries} entries for 200 runs");
        assert!(stats.max_in_flight.load(Ordering::SeqCst) <= MAX_IN_FLIGHT);
    }

    #[tokio::test]
    async fn a_lone_run_is_proposed_at_once() {
        let stats = Arc::new(Stats::default());
        let batcher = echo_batcher(stats.clone());
        for seq in 0..3 {
            let started = std::time::Instant::now();
            let replies = batcher.submit(run("solo", seq)).await.expect("replies");
            assert_eq!(replies[1], reply::integer(seq as i64));
            assert!(started.elapsed() < Duration::from_millis(200));
        }
        assert_eq!(stats.entries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_entry_fails_every_run_in_it() {
        let batcher =
            ProposalBatcher::with_proposer(Default::default(), None, |_req: Request| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err::<Response, _>(RaftError::APIError(ClientWriteError::ForwardToLeader(
                    ForwardToLeader {
                        leader_id: Some(2),
                        leader_node: None,
                    },
                )))
            });
        let tasks: Vec<_> = (0..20u64)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(run("c", i)).await })
            })
            .collect();
        for task in tasks {
            match task.await.expect("task") {
                Err(ProposeError::Raft(RaftError::APIError(
                    ClientWriteError::ForwardToLeader(f),
                ))) => assert_eq!(f.leader_id, Some(2)),
                other => panic!("expected ForwardToLeader, got {other:?}"),
            }
        }
    }
}
