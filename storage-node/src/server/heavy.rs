//! The heavy executor: a fixed set of dedicated OS threads with a bounded
//! queue, for reads whose cost grows with the data they touch (full
//! collection reads, range scans, keyspace scans, scripts: the command
//! table's [`HEAVY_COMMANDS`](rampart_proto::command_table::HEAVY_COMMANDS)).
//!
//! Why (SPEC Layer 2): the proxy's class limits protect one proxy, but many
//! proxies can send to one node. Here a node caps its own heavy work at
//! `--heavy-threads` running plus `--heavy-queue` waiting read runs; the
//! next one is answered at once with
//! `-BUSY heavy executor is full, retry after <ms>ms` (never queued without
//! bound), which the proxy relays to the client like any error reply. Cheap
//! reads keep using tokio's blocking pool and never wait behind heavy ones;
//! Raft runs on its own runtime and is not touched by either.
//!
//! A read run that contains a heavy command runs whole on the executor, so
//! its replies keep their order. When the executor is full, only the heavy
//! commands of the run get `-BUSY`; its cheap commands still run (the
//! proxy's admission answers a batch the same way).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rampart_proto::command_table::is_heavy;
use rampart_proto::{reply, Reply};
use tokio::sync::oneshot;

use super::now_ms;
use crate::commands;
use crate::engine::Engine;
use crate::metrics::{
    HEAVY_QUEUE_CAPACITY, HEAVY_QUEUE_DEPTH, HEAVY_REJECTED, HEAVY_RUNNING, HEAVY_SECONDS,
    HEAVY_SUBMITTED, HEAVY_THREADS,
};

type Argv = Vec<Vec<u8>>;
/// A job computes its answer and hands back the step that delivers it, so
/// the worker can give its place back before the caller hears the answer: a
/// caller that sends its next heavy read at once must find the place free.
type Job = Box<dyn FnOnce() -> Deliver + Send + 'static>;
type Deliver = Box<dyn FnOnce() + Send + 'static>;

/// Default `--heavy-queue`: read runs waiting for a heavy thread.
pub const DEFAULT_QUEUE: usize = 64;
/// Bounds of the `retry after` hint, as the proxy's defaults.
const MIN_RETRY: Duration = Duration::from_millis(10);
const MAX_RETRY: Duration = Duration::from_millis(5000);
/// The hint before any run has completed.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Whether `argv` names a heavy command.
pub fn is_heavy_argv(argv: &[Vec<u8>]) -> bool {
    argv.first().is_some_and(|name| is_heavy(name))
}

/// The `-BUSY` text (without the leading '-') for a full executor.
pub fn busy_text(retry_after: Duration) -> String {
    format!(
        "BUSY heavy executor is full, retry after {}ms",
        retry_after.as_millis()
    )
}

/// The executor could not take the job: every thread is busy and the queue
/// is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("heavy executor is full, retry after {}ms", .retry_after.as_millis())]
pub struct Full {
    /// The hint for the client: the recent average run time.
    pub retry_after: Duration,
}

impl Full {
    pub fn reply(&self) -> Reply {
        reply::error(busy_text(self.retry_after))
    }
}

/// The run's reads could not be executed (a panic in command code); the
/// caller answers with an internal error.
#[derive(Debug, thiserror::Error)]
#[error("a read run failed: {0}")]
pub struct RunFailed(String);

struct State {
    queue: VecDeque<Job>,
    running: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    threads: usize,
    queue_cap: usize,
    /// Exponentially weighted average run time, in microseconds (0 = none
    /// completed yet).
    avg_run_us: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job panicking never holds this lock (jobs run outside it).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, st: &State) {
        metrics::gauge!(HEAVY_QUEUE_DEPTH).set(st.queue.len() as f64);
        metrics::gauge!(HEAVY_RUNNING).set(st.running as f64);
    }

    fn retry_after(&self) -> Duration {
        match self.avg_run_us.load(Ordering::Relaxed) {
            0 => FIRST_RETRY,
            us => Duration::from_micros(us).clamp(MIN_RETRY, MAX_RETRY),
        }
    }

    fn note_run(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        // avg += (sample - avg) / 8; lost updates under a race only make the
        // hint a little less smooth.
        let old = self.avg_run_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us.max(1)
        } else {
            (old - old / 8 + us / 8).max(1)
        };
        self.avg_run_us.store(new, Ordering::Relaxed);
    }
}

/// Handle to the executor; cheap to clone. The threads stop when the last
/// handle is dropped (after finishing the queued jobs).
#[derive(Clone)]
pub struct HeavyExecutor {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.closed = true;
        drop(st);
        self.0.work.notify_all();
    }
}

impl HeavyExecutor {
    /// Starts `threads` (at least 1) threads named `heavy-<n>`, admitting at
    /// most `threads + queue` runs at once. `on_start` runs first on every
    /// thread (core pinning).
    pub fn new(
        threads: usize,
        queue: usize,
        on_start: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<HeavyExecutor> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                closed: false,
            }),
            work: Condvar::new(),
            threads,
            queue_cap: queue,
            avg_run_us: AtomicU64::new(0),
        });
        let on_start = Arc::new(on_start);
        for i in 0..threads {
            let shared = shared.clone();
            let on_start = on_start.clone();
            std::thread::Builder::new()
                .name(format!("heavy-{i}"))
                .spawn(move || {
                    on_start();
                    worker(&shared);
                })?;
        }
        metrics::gauge!(HEAVY_THREADS).set(threads as f64);
        metrics::gauge!(HEAVY_QUEUE_CAPACITY).set(queue as f64);
        // Exported from the start (at 0), so alerts see the series.
        metrics::counter!(HEAVY_SUBMITTED).increment(0);
        metrics::counter!(HEAVY_REJECTED).increment(0);
        shared.publish(&shared.lock());
        Ok(HeavyExecutor {
            _stop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    /// Queues `f` if a thread or a queue place is free, else answers
    /// [`Full`] at once. The receiver yields `f`'s result; it fails if `f`
    /// panicked. A job whose receiver was dropped before it started is
    /// skipped.
    pub fn try_run<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, Full>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || -> Deliver {
            if tx.is_closed() {
                return Box::new(|| {});
            }
            match std::panic::catch_unwind(AssertUnwindSafe(f)) {
                Ok(answer) => Box::new(move || {
                    let _ = tx.send(answer);
                }),
                Err(panic) => {
                    tracing::error!("a heavy read panicked");
                    // Dropping `tx` (after the place is given back) is the
                    // caller's error.
                    drop(panic);
                    Box::new(move || drop(tx))
                }
            }
        });
        let mut st = self.shared.lock();
        if st.closed || st.queue.len() + st.running >= self.shared.threads + self.shared.queue_cap {
            drop(st);
            metrics::counter!(HEAVY_REJECTED).increment(1);
            return Err(Full {
                retry_after: self.shared.retry_after(),
            });
        }
        st.queue.push_back(job);
        self.shared.publish(&st);
        drop(st);
        metrics::counter!(HEAVY_SUBMITTED).increment(1);
        self.shared.work.notify_one();
        Ok(rx)
    }

    /// Takes one place of the executor (counted as a running run) for
    /// work done elsewhere, e.g. a write to a legacy stream waiting for its
    /// Raft commit: the place is given back when the [`Slot`] drops. Answers
    /// [`Full`] at once when every place is taken.
    pub fn try_reserve(&self) -> Result<Slot, Full> {
        let mut st = self.shared.lock();
        if st.closed || st.queue.len() + st.running >= self.shared.threads + self.shared.queue_cap {
            drop(st);
            metrics::counter!(HEAVY_REJECTED).increment(1);
            return Err(Full {
                retry_after: self.shared.retry_after(),
            });
        }
        st.running += 1;
        self.shared.publish(&st);
        drop(st);
        metrics::counter!(HEAVY_SUBMITTED).increment(1);
        Ok(Slot {
            shared: self.shared.clone(),
            started: Instant::now(),
        })
    }

    /// Threads of the executor.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }
}

/// A place of the executor held by [`HeavyExecutor::try_reserve`].
pub struct Slot {
    shared: Arc<Shared>,
    started: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        metrics::histogram!(HEAVY_SECONDS).record(took);
        self.shared.note_run(took);
        let mut st = self.shared.lock();
        st.running -= 1;
        self.shared.publish(&st);
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if let Some(job) = st.queue.pop_front() {
                    st.running += 1;
                    shared.publish(&st);
                    break job;
                }
                if st.closed {
                    return;
                }
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let started = Instant::now();
        // `job` catches a panic of the read itself.
        let deliver = job();
        let took = started.elapsed();
        metrics::histogram!(HEAVY_SECONDS).record(took);
        shared.note_run(took);
        let mut st = shared.lock();
        st.running -= 1;
        shared.publish(&st);
        drop(st);
        deliver();
    }
}

/// Executes a run of read commands in order; a command for which `reject`
/// says so gets `busy` instead of running.
fn read_commands(
    engine: &Engine,
    run: &[Argv],
    busy: Option<&Reply>,
    reject: impl Fn(&[Vec<u8>]) -> bool,
) -> Vec<Reply> {
    let now = now_ms();
    run.iter()
        .map(|argv| {
            if argv.is_empty() {
                reply::error("ERR empty command")
            } else if let Some(b) = busy.filter(|_| reject(argv.as_slice())) {
                b.clone()
            } else {
                commands::execute_read(engine, argv, now)
            }
        })
        .collect()
}

/// Runs a read run where it belongs: on the heavy executor when it holds a
/// heavy command, else on tokio's blocking pool (RocksDB reads block).
pub async fn run_reads(
    heavy: &HeavyExecutor,
    engine: Engine,
    run: Vec<Argv>,
) -> Result<Vec<Reply>, RunFailed> {
    if !run.iter().any(|argv| is_heavy_argv(argv)) {
        return tokio::task::spawn_blocking(move || read_commands(&engine, &run, None, |_| false))
            .await
            .map_err(|e| RunFailed(e.to_string()));
    }
    let job_engine = engine.clone();
    let (full, run) = {
        // The closure owns the run until the executor takes it; get it back
        // if it does not.
        let slot = Arc::new(Mutex::new(Some(run)));
        let job_slot = slot.clone();
        match heavy.try_run(move || {
            let run = job_slot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            // Encoded here, at the heavy threads' low priority, rather than
            // element by element on the request runtime and in the proxy.
            read_commands(&job_engine, &run, None, |_| false)
                .into_iter()
                .map(|r| reply::encode_if_large(r, reply::PRE_ENCODE_MIN_ELEMENTS))
                .collect::<Vec<_>>()
        }) {
            Ok(rx) => {
                drop(slot);
                return rx
                    .await
                    .map_err(|_| RunFailed("the heavy read stopped without an answer".into()));
            }
            Err(full) => {
                let run = slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                (full, run)
            }
        }
    };
    let busy = full.reply();
    if run
        .iter()
        .all(|argv| argv.is_empty() || is_heavy_argv(argv))
    {
        return Ok(read_commands(&engine, &run, Some(&busy), is_heavy_argv));
    }
    tokio::task::spawn_blocking(move || read_commands(&engine, &run, Some(&busy), is_heavy_argv))
        .await
        .map_err(|e| RunFailed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test]
    async fn runs_jobs_and_rejects_beyond_threads_plus_queue() {
        let exec = HeavyExecutor::new(1, 1, || {}).expect("start");
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let blocker = |rx: Arc<Mutex<mpsc::Receiver<()>>>| {
            move || {
                let _ = rx.lock().expect("lock").recv();
                7
            }
        };
        let first = exec.try_run(blocker(release_rx.clone())).expect("runs");
        let second = exec.try_run(blocker(release_rx.clone())).expect("queued");
        let full = exec
            .try_run(|| 0)
            .expect_err("one thread + one queue place are taken");
        assert!(full.retry_after >= MIN_RETRY && full.retry_after <= MAX_RETRY);
        let text = busy_text(full.retry_after);
        assert!(
            text.starts_with("BUSY heavy executor is full, retry after ") && text.ends_with("ms"),
            "{text}"
        );
        release_tx.send(()).expect("release");
        release_tx.send(()).expect("release");
        assert_eq!(first.await.expect("answer"), 7);
        assert_eq!(second.await.expect("answer"), 7);
        // Room again.
        assert_eq!(exec.try_run(|| 3).expect("runs").await.expect("answer"), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_place_is_free_once_the_answer_arrives() {
        // One thread, no queue: every run needs the one place, so a run
        // sent right after the previous answer finds it taken unless the
        // worker gives it back before answering.
        let exec = HeavyExecutor::new(1, 0, || {}).expect("start");
        for i in 0..500u32 {
            let answer = exec
                .try_run(move || i)
                .unwrap_or_else(|_| panic!("run {i} found the executor full"))
                .await
                .expect("answer");
            assert_eq!(answer, i);
        }
    }

    #[tokio::test]
    async fn a_reserved_slot_counts_until_dropped() {
        let exec = HeavyExecutor::new(1, 1, || {}).expect("start");
        let first = exec.try_reserve().expect("a thread place");
        let second = exec.try_reserve().expect("a queue place");
        assert!(exec.try_reserve().is_err());
        assert!(exec.try_run(|| 1).is_err());
        drop(first);
        assert_eq!(exec.try_run(|| 2).expect("room").await.expect("answer"), 2);
        drop(second);
        let _again = exec.try_reserve().expect("room again");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_only() {
        // No queue: the run after a panic needs the place the panicking run
        // held, so it must be free by the time the caller hears the error.
        let exec = HeavyExecutor::new(1, 0, || {}).expect("start");
        for _ in 0..20 {
            let bad = exec.try_run(|| -> u32 { panic!("boom") }).expect("runs");
            assert!(bad.await.is_err());
            assert_eq!(exec.try_run(|| 5).expect("runs").await.expect("answer"), 5);
        }
    }

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn heavy_commands_are_recognised_by_name() {
        assert!(is_heavy_argv(&argv(&["HGETALL", "h"])));
        assert!(is_heavy_argv(&argv(&["keys", "*"])));
        assert!(!is_heavy_argv(&argv(&["GET", "k"])));
        assert!(!is_heavy_argv(&[]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_executor_answers_busy_for_heavy_commands_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let exec = HeavyExecutor::new(1, 0, || {}).expect("start");
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let hold = exec
            .try_run(move || {
                let _ = release_rx.recv();
            })
            .expect("runs");
        let run = vec![
            argv(&["GET", "k"]),
            argv(&["HGETALL", "h"]),
            argv(&["EXISTS", "k"]),
        ];
        let replies = run_reads(&exec, engine.clone(), run)
            .await
            .expect("replies");
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0], reply::null());
        assert!(
            replies[1]
                .error_text()
                .is_some_and(|e| e.starts_with("BUSY heavy executor is full, retry after ")),
            "{:?}",
            replies[1]
        );
        assert_eq!(replies[2], reply::integer(0));
        release_tx.send(()).expect("release");
        hold.await.expect("done");
        // With the thread free the heavy command runs.
        let replies = run_reads(&exec, engine, vec![argv(&["HGETALL", "h"])])
            .await
            .expect("replies");
        assert_eq!(replies.len(), 1);
        assert!(!replies[0].is_error(), "{:?}", replies[0]);
    }

    #[tokio::test]
    async fn big_heavy_replies_leave_encoded_and_small_ones_as_trees() {
        let node = crate::commands::test_support::Node::new();
        let keys = reply::PRE_ENCODE_MIN_ELEMENTS + 1;
        for i in 0..keys {
            node.run_at(0, &argv(&["RPUSH", "big", &format!("v{i}")]));
        }
        node.run_at(0, &argv(&["RPUSH", "small", "a", "b"]));
        let engine = node.engine.clone();
        let exec = HeavyExecutor::new(1, 4, || {}).expect("start");
        let replies = run_reads(
            &exec,
            engine,
            vec![
                argv(&["LRANGE", "big", "0", "-1"]),
                argv(&["LRANGE", "small", "0", "-1"]),
            ],
        )
        .await
        .expect("replies");
        let Some(rampart_proto::pb::reply::Kind::Resp(encoded)) = &replies[0].kind else {
            panic!("a big LRANGE leaves encoded: {:?}", replies[0].kind);
        };
        let expected: String = std::iter::once(format!("*{keys}\r\n"))
            .chain((0..keys).map(|i| {
                let v = format!("v{i}");
                format!("${}\r\n{v}\r\n", v.len())
            }))
            .collect();
        assert_eq!(String::from_utf8_lossy(encoded), expected);
        assert_eq!(replies[1], reply::bulk_array(["a", "b"]));
    }
}
