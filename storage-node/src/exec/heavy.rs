//! The heavy executor: dedicated OS threads with bounded queues, for work
//! whose cost grows with the data it touches (full collection reads, range
//! scans, keyspace scans: commands whose class in the command table is
//! heavy, [`is_heavy`]) and for Lua scripts.
//!
//! Why (SPEC Layer 2): the proxy's class limits protect one proxy, but many
//! proxies can send to one node. Here a node caps its own heavy work: each
//! lane runs at most its threads plus its queue at once; the next job is
//! answered at once with `-BUSY heavy executor is full, retry after <ms>ms`
//! (never queued without bound), which the proxy relays to the client like
//! any error reply. Cheap reads keep using tokio's blocking pool and never
//! wait behind heavy ones; Raft runs on its own runtime and is not touched
//! by either.
//!
//! Two lanes, so that one kind of heavy work cannot queue the other out
//! (SPEC Layer 1's sub-pools, again on the node):
//! - [`Lane::Reads`]: heavy read runs. Its threads run at the lowest CPU
//!   priority (`SCHED_IDLE`, see [`crate::priority`]): an abusive reader
//!   only gets CPU the rest of the node leaves.
//! - [`Lane::Scripts`]: `EVAL*` and transactions holding them. Applications
//!   put short data-path logic in scripts (locks, rate limiters, counters),
//!   so a script starts at the node's normal priority. One that has used
//!   `--script-demote-ms` of CPU time, or calls a heavy command, lowers its own thread
//!   to the reads' priority for the rest of its run ([`demote_if_overdue`],
//!   [`demote_now`]); a fresh thread takes its place in the lane, so the
//!   short scripts behind it keep their priority. A demoted thread ends
//!   after its job (Linux lets a thread lower its priority without a
//!   privilege, not raise it back).
//!
//! A read run that contains a heavy command runs whole on the reads lane,
//! so its replies keep their order. When the lane is full, only the heavy
//! commands of the run get `-BUSY`; its cheap commands still run (the
//! proxy's admission answers a batch the same way).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rampart_proto::command_table::is_heavy;
use rampart_proto::{reply, Argv, Reply};
use tokio::sync::oneshot;

use crate::commands;
use crate::engine::Engine;
use crate::metrics::{
    HEAVY_DEMOTED, HEAVY_QUEUE_CAPACITY, HEAVY_QUEUE_DEPTH, HEAVY_REJECTED, HEAVY_RUNNING,
    HEAVY_SECONDS, HEAVY_SUBMITTED, HEAVY_THREADS,
};

/// A job computes its answer and hands back the step that delivers it, so
/// the worker can give its place back before the caller hears the answer: a
/// caller that sends its next heavy read at once must find the place free.
type Job = Box<dyn FnOnce() -> Deliver + Send + 'static>;
type Deliver = Box<dyn FnOnce() + Send + 'static>;
/// Runs on a thread (at start, or when its job is demoted).
type ThreadHook = Arc<dyn Fn() + Send + Sync + 'static>;

/// Default `--heavy-queue`: jobs that may wait in each lane.
pub const DEFAULT_QUEUE: usize = 64;
/// Default `--script-demote-ms`: a script that has used this much CPU time
/// is lowered to the heavy reads' priority. A typical application script (a few
/// `redis.call`s) takes well under a millisecond.
pub const DEFAULT_SCRIPT_DEMOTE_MS: u64 = 2;
/// Bounds of the `retry after` hint, as the proxy's defaults.
const MIN_RETRY: Duration = Duration::from_millis(10);
const MAX_RETRY: Duration = Duration::from_millis(5000);
/// The hint before any run has completed.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Which lane of the executor a job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Heavy read runs (scans, full collection reads), at low priority.
    Reads,
    /// Lua scripts, at normal priority until they overrun.
    Scripts,
}

impl Lane {
    /// The `lane` label of the executor's metrics.
    pub fn label(self) -> &'static str {
        match self {
            Lane::Reads => "reads",
            Lane::Scripts => "scripts",
        }
    }

    /// Prefix of the lane's thread names.
    fn thread_prefix(self) -> &'static str {
        match self {
            Lane::Reads => "heavy",
            Lane::Scripts => "script",
        }
    }
}

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

/// How one lane runs.
#[derive(Clone)]
pub struct LaneSettings {
    /// Threads (at least 1).
    pub threads: usize,
    /// Jobs that may wait for a thread.
    pub queue: usize,
    /// Runs first on every thread of the lane (core pinning, priority).
    pub on_start: ThreadHook,
    /// Set for a lane whose jobs start at normal priority: lowers a job's
    /// thread once the job overruns.
    pub demotion: Option<Demotion>,
}

impl LaneSettings {
    /// `threads` threads and `queue` places, each thread set up by
    /// `on_start`, no demotion.
    pub fn new(threads: usize, queue: usize, on_start: impl Fn() + Send + Sync + 'static) -> Self {
        LaneSettings {
            threads,
            queue,
            on_start: Arc::new(on_start),
            demotion: None,
        }
    }

    pub fn with_demotion(mut self, demotion: Demotion) -> Self {
        self.demotion = Some(demotion);
        self
    }
}

/// When and how a job's thread is lowered.
#[derive(Clone)]
pub struct Demotion {
    /// CPU time of the job after which its thread is lowered.
    pub after: Duration,
    /// Lowers the calling thread's priority (one way).
    pub lower: ThreadHook,
}

struct State {
    queue: VecDeque<Job>,
    running: usize,
    closed: bool,
}

struct Shared {
    lane: Lane,
    state: Mutex<State>,
    work: Condvar,
    threads: usize,
    queue_cap: usize,
    on_start: ThreadHook,
    demotion: Option<Demotion>,
    /// Numbers new threads' names (replacements keep counting).
    next_thread: AtomicUsize,
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
        let lane = self.lane.label();
        metrics::gauge!(HEAVY_QUEUE_DEPTH, "lane" => lane).set(st.queue.len() as f64);
        metrics::gauge!(HEAVY_RUNNING, "lane" => lane).set(st.running as f64);
    }

    fn retry_after(&self) -> Duration {
        match self.avg_run_us.load(Ordering::Relaxed) {
            0 => FIRST_RETRY,
            us => Duration::from_micros(us).clamp(MIN_RETRY, MAX_RETRY),
        }
    }

    fn note_run(&self, took: Duration) {
        metrics::histogram!(HEAVY_SECONDS, "lane" => self.lane.label()).record(took);
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

    /// Admits one more job (queued or reserved) unless the lane is full.
    fn admit(&self) -> Result<MutexGuard<'_, State>, Full> {
        let st = self.lock();
        if st.closed || st.queue.len() + st.running >= self.threads + self.queue_cap {
            drop(st);
            metrics::counter!(HEAVY_REJECTED, "lane" => self.lane.label()).increment(1);
            return Err(Full {
                retry_after: self.retry_after(),
            });
        }
        metrics::counter!(HEAVY_SUBMITTED, "lane" => self.lane.label()).increment(1);
        Ok(st)
    }
}

/// Starts one worker thread of the lane.
fn spawn_worker(shared: &Arc<Shared>) -> std::io::Result<()> {
    let n = shared.next_thread.fetch_add(1, Ordering::Relaxed);
    let shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("{}-{n}", shared.lane.thread_prefix()))
        .spawn(move || {
            (shared.on_start)();
            worker(&shared);
        })
        .map(drop)
}

/// One lane: its threads and queue.
struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    fn start(lane: Lane, settings: LaneSettings) -> std::io::Result<Pool> {
        let threads = settings.threads.max(1);
        let shared = Arc::new(Shared {
            lane,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                closed: false,
            }),
            work: Condvar::new(),
            threads,
            queue_cap: settings.queue,
            on_start: settings.on_start,
            demotion: settings.demotion,
            next_thread: AtomicUsize::new(0),
            avg_run_us: AtomicU64::new(0),
        });
        for _ in 0..threads {
            spawn_worker(&shared)?;
        }
        let label = lane.label();
        metrics::gauge!(HEAVY_THREADS, "lane" => label).set(threads as f64);
        metrics::gauge!(HEAVY_QUEUE_CAPACITY, "lane" => label).set(settings.queue as f64);
        // Exported from the start (at 0), so alerts see the series.
        metrics::counter!(HEAVY_SUBMITTED, "lane" => label).increment(0);
        metrics::counter!(HEAVY_REJECTED, "lane" => label).increment(0);
        if shared.demotion.is_some() {
            metrics::counter!(HEAVY_DEMOTED, "lane" => label).increment(0);
        }
        shared.publish(&shared.lock());
        Ok(Pool { shared })
    }

    fn close(&self) {
        let mut st = self.shared.lock();
        st.closed = true;
        drop(st);
        self.shared.work.notify_all();
    }
}

/// Handle to the executor; cheap to clone. The threads stop when the last
/// handle is dropped (after finishing the queued jobs).
#[derive(Clone)]
pub struct HeavyExecutor {
    lanes: Arc<Lanes>,
}

struct Lanes {
    reads: Pool,
    scripts: Pool,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.reads.close();
        self.scripts.close();
    }
}

impl HeavyExecutor {
    /// Starts both lanes.
    pub fn start(reads: LaneSettings, scripts: LaneSettings) -> std::io::Result<HeavyExecutor> {
        Ok(HeavyExecutor {
            lanes: Arc::new(Lanes {
                reads: Pool::start(Lane::Reads, reads)?,
                scripts: Pool::start(Lane::Scripts, scripts)?,
            }),
        })
    }

    /// Both lanes with `threads` threads and `queue` places each, every
    /// thread set up by `on_start`, no demotion (tests).
    pub fn new(
        threads: usize,
        queue: usize,
        on_start: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<HeavyExecutor> {
        let settings = LaneSettings::new(threads, queue, on_start);
        HeavyExecutor::start(settings.clone(), settings)
    }

    fn pool(&self, lane: Lane) -> &Shared {
        match lane {
            Lane::Reads => &self.lanes.reads.shared,
            Lane::Scripts => &self.lanes.scripts.shared,
        }
    }

    /// Queues `f` on `lane` if a thread or a queue place is free, else
    /// answers [`Full`] at once. The receiver yields `f`'s result; it fails
    /// if `f` panicked. A job whose receiver was dropped before it started
    /// is skipped.
    pub fn try_run<T, F>(&self, lane: Lane, f: F) -> Result<oneshot::Receiver<T>, Full>
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
                    tracing::error!("a heavy job panicked");
                    // Dropping `tx` (after the place is given back) is the
                    // caller's error.
                    drop(panic);
                    Box::new(move || drop(tx))
                }
            }
        });
        let shared = self.pool(lane);
        let mut st = shared.admit()?;
        st.queue.push_back(job);
        shared.publish(&st);
        drop(st);
        shared.work.notify_one();
        Ok(rx)
    }

    /// Takes one place of the reads lane (counted as a running run) for
    /// work done elsewhere, e.g. a write to a legacy stream waiting for its
    /// Raft commit: the place is given back when the [`Slot`] drops. Answers
    /// [`Full`] at once when every place is taken.
    pub fn try_reserve(&self) -> Result<Slot, Full> {
        let shared = &self.lanes.reads.shared;
        let mut st = shared.admit()?;
        st.running += 1;
        shared.publish(&st);
        drop(st);
        Ok(Slot {
            shared: shared.clone(),
            started: Instant::now(),
        })
    }
}

/// A place of the executor held by [`HeavyExecutor::try_reserve`].
pub struct Slot {
    shared: Arc<Shared>,
    started: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.note_run(self.started.elapsed());
        let mut st = self.shared.lock();
        st.running -= 1;
        self.shared.publish(&st);
    }
}

/// The job running on this thread, for demotion.
struct CurrentJob {
    shared: Arc<Shared>,
    started: Instant,
    /// This thread's CPU time when the job started.
    cpu_started: Duration,
    /// The thread was lowered (and, if a replacement started, ends after
    /// this job).
    demoted: bool,
    replaced: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentJob>> = const { RefCell::new(None) };
}

/// Lowers this thread if it runs a job of a demoting lane that has run past
/// the lane's limit. Cheap; a no-op on any other thread. Called from the
/// Lua hook and between a script's commands.
pub fn demote_if_overdue() {
    demote(false);
}

/// Lowers this thread now if it runs a job of a demoting lane (a script
/// about to run a heavy command: it pays that command's cost at the heavy
/// reads' priority).
pub fn demote_now() {
    demote(true);
}

/// Runs one command of a script (`redis.call`, or a command of a MULTI
/// holding scripts) on this thread: a heavy command at the heavy reads'
/// priority, whatever its arguments; afterwards the script is lowered if it
/// has overrun.
pub fn script_command<R>(argv: &[Vec<u8>], run: impl FnOnce() -> R) -> R {
    if is_heavy_argv(argv) {
        demote_now();
    }
    let result = run();
    demote_if_overdue();
    result
}

fn demote(now: bool) {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(job) = current.as_mut() else {
            return;
        };
        if job.demoted {
            return;
        }
        let Some(demotion) = &job.shared.demotion else {
            return;
        };
        // CPU time, not wall time: a short script preempted on a busy host
        // is not an expensive one. Wall time bounds CPU time, so the cheap
        // check comes first.
        if !now
            && (job.started.elapsed() < demotion.after
                || thread_cpu_time().saturating_sub(job.cpu_started) < demotion.after)
        {
            return;
        }
        // A fresh thread serves the lane's queue at the lane's priority;
        // this one ends after its job. Started first: a new thread inherits
        // its creator's priority.
        match spawn_worker(&job.shared) {
            Ok(()) => job.replaced = true,
            Err(e) => tracing::warn!(error = %e, "cannot start a replacement heavy thread"),
        }
        (demotion.lower)();
        job.demoted = true;
        metrics::counter!(HEAVY_DEMOTED, "lane" => job.shared.lane.label()).increment(1);
    });
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn worker(shared: &Arc<Shared>) {
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
        if shared.demotion.is_some() {
            CURRENT.with(|c| {
                *c.borrow_mut() = Some(CurrentJob {
                    shared: shared.clone(),
                    started,
                    cpu_started: thread_cpu_time(),
                    demoted: false,
                    replaced: false,
                })
            });
        }
        // `job` catches a panic of the read itself.
        let deliver = job();
        let replaced = CURRENT
            .with(|c| c.borrow_mut().take())
            .is_some_and(|job| job.replaced);
        shared.note_run(started.elapsed());
        let mut st = shared.lock();
        st.running -= 1;
        shared.publish(&st);
        drop(st);
        deliver();
        if replaced {
            return;
        }
    }
}

/// Executes a run of read commands in order at time `now` (the node's
/// cluster clock); a command for which `reject` says so gets `busy`
/// instead of running.
fn read_commands(
    engine: &Engine,
    now: i64,
    run: &[Argv],
    busy: Option<&Reply>,
    reject: impl Fn(&[Vec<u8>]) -> bool,
) -> Vec<Reply> {
    // The run's replies share one `--max-reply-bytes` budget: a pipeline of
    // 500 LRANGEs must not build 500 maximal replies into one response.
    let limit = crate::limits::max_reply_bytes();
    let mut left = limit;
    run.iter()
        .map(|argv| {
            if argv.is_empty() {
                reply::error("ERR empty command")
            } else if let Some(b) = busy.filter(|_| reject(argv.as_slice())) {
                b.clone()
            } else if left == 0 {
                reply::error(rampart_proto::errors::reply_too_large(limit))
            } else {
                let reply = commands::execute_read_within(engine, argv, now, left);
                left = left.saturating_sub(prost::Message::encoded_len(&reply));
                reply
            }
        })
        .collect()
}

/// Runs a read run where it belongs: on the heavy executor when it holds a
/// heavy command, else on tokio's blocking pool (RocksDB reads block).
/// `now` judges TTLs (see `raft::clock::ClusterClock::now_ms`).
pub async fn run_reads(
    heavy: &HeavyExecutor,
    engine: Engine,
    now: i64,
    run: Vec<Argv>,
) -> Result<Vec<Reply>, RunFailed> {
    if !run.iter().any(|argv| is_heavy_argv(argv)) {
        return tokio::task::spawn_blocking(move || {
            read_commands(&engine, now, &run, None, |_| false)
        })
        .await
        .map_err(|e| RunFailed(e.to_string()));
    }
    let job_engine = engine.clone();
    let (full, run) = {
        // The closure owns the run until the executor takes it; get it back
        // if it does not.
        let slot = Arc::new(Mutex::new(Some(run)));
        let job_slot = slot.clone();
        match heavy.try_run(Lane::Reads, move || {
            let run = job_slot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_default();
            // Encoded here, at the heavy threads' low priority, rather than
            // element by element on the request runtime and in the proxy.
            read_commands(&job_engine, now, &run, None, |_| false)
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
        return Ok(read_commands(
            &engine,
            now,
            &run,
            Some(&busy),
            is_heavy_argv,
        ));
    }
    tokio::task::spawn_blocking(move || {
        read_commands(&engine, now, &run, Some(&busy), is_heavy_argv)
    })
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
        let first = exec
            .try_run(Lane::Reads, blocker(release_rx.clone()))
            .expect("runs");
        let second = exec
            .try_run(Lane::Reads, blocker(release_rx.clone()))
            .expect("queued");
        let full = exec
            .try_run(Lane::Reads, || 0)
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
        assert_eq!(
            exec.try_run(Lane::Reads, || 3)
                .expect("runs")
                .await
                .expect("answer"),
            3
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_place_is_free_once_the_answer_arrives() {
        // One thread, no queue: every run needs the one place, so a run
        // sent right after the previous answer finds it taken unless the
        // worker gives it back before answering.
        let exec = HeavyExecutor::new(1, 0, || {}).expect("start");
        for i in 0..500u32 {
            let answer = exec
                .try_run(Lane::Reads, move || i)
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
        assert!(exec.try_run(Lane::Reads, || 1).is_err());
        drop(first);
        assert_eq!(
            exec.try_run(Lane::Reads, || 2)
                .expect("room")
                .await
                .expect("answer"),
            2
        );
        drop(second);
        let _again = exec.try_reserve().expect("room again");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_only() {
        // No queue: the run after a panic needs the place the panicking run
        // held, so it must be free by the time the caller hears the error.
        let exec = HeavyExecutor::new(1, 0, || {}).expect("start");
        for _ in 0..20 {
            let bad = exec
                .try_run(Lane::Reads, || -> u32 { panic!("boom") })
                .expect("runs");
            assert!(bad.await.is_err());
            assert_eq!(
                exec.try_run(Lane::Reads, || 5)
                    .expect("runs")
                    .await
                    .expect("answer"),
                5
            );
        }
    }

    /// A scripts lane of one thread that demotes after `after`, counting
    /// the demotions and the threads started.
    fn demoting_lane(after: Duration) -> (HeavyExecutor, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (lowered, started) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let count_start = started.clone();
        let count_lower = lowered.clone();
        let scripts = LaneSettings::new(1, 4, move || {
            count_start.fetch_add(1, Ordering::SeqCst);
        })
        .with_demotion(Demotion {
            after,
            lower: Arc::new(move || {
                count_lower.fetch_add(1, Ordering::SeqCst);
            }),
        });
        let exec = HeavyExecutor::start(LaneSettings::new(1, 0, || {}), scripts).expect("start");
        (exec, lowered, started)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_overdue_script_is_lowered_and_the_jobs_behind_it_still_run() {
        let (exec, lowered, started) = demoting_lane(Duration::from_millis(5));
        let (ran_tx, ran_rx) = mpsc::channel::<()>();
        // The one thread runs a long job; the job behind it can only run
        // (and signal) while the long one still waits if a replacement
        // thread took over once the long one was demoted.
        let long = exec
            .try_run(Lane::Scripts, move || {
                demote_if_overdue();
                let early = lowered_now();
                // Waiting is not running: only CPU time counts.
                std::thread::sleep(Duration::from_millis(20));
                demote_if_overdue();
                let slept_only = lowered_now();
                let spin = Instant::now();
                while !lowered_now() && spin.elapsed() < Duration::from_secs(10) {
                    std::hint::black_box((0..1000u64).sum::<u64>());
                    demote_if_overdue();
                }
                let other_ran = ran_rx.recv_timeout(Duration::from_secs(10)).is_ok();
                (early || slept_only, other_ran)
            })
            .expect("runs");
        let short = exec
            .try_run(Lane::Scripts, move || {
                let _ = ran_tx.send(());
                lowered_now()
            })
            .expect("queued");
        assert!(
            !short.await.expect("answer"),
            "the short job ran at the lane's priority"
        );
        let (early, other_ran) = long.await.expect("answer");
        assert!(!early, "not lowered before it used its CPU time");
        assert!(
            other_ran,
            "the queued job ran while the demoted one was still running"
        );
        assert_eq!(lowered.load(Ordering::SeqCst), 1);
        assert_eq!(started.load(Ordering::SeqCst), 2, "one replacement thread");
        // The lane keeps serving: the demoted thread ended, its replacement
        // took its place.
        for i in 0..20u32 {
            assert_eq!(
                exec.try_run(Lane::Scripts, move || i)
                    .expect("runs")
                    .await
                    .expect("answer"),
                i
            );
        }
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heavy_command_in_a_script_lowers_it_at_once_and_reads_never_demote() {
        let (exec, lowered, _) = demoting_lane(Duration::from_secs(3600));
        let demoted = exec
            .try_run(Lane::Scripts, || {
                demote_if_overdue();
                let before = lowered_now();
                demote_now();
                demote_now();
                (before, lowered_now())
            })
            .expect("runs")
            .await
            .expect("answer");
        assert_eq!(demoted, (false, true));
        assert_eq!(lowered.load(Ordering::SeqCst), 1, "lowered once per run");
        // Reads have no demotion; outside a job both calls do nothing.
        exec.try_run(Lane::Reads, demote_now)
            .expect("runs")
            .await
            .expect("answer");
        demote_now();
        assert_eq!(lowered.load(Ordering::SeqCst), 1);
    }

    /// Whether the job on this thread has been lowered.
    fn lowered_now() -> bool {
        CURRENT.with(|c| c.borrow().as_ref().is_some_and(|j| j.demoted))
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
            .try_run(Lane::Reads, move || {
                let _ = release_rx.recv();
            })
            .expect("runs");
        let run = vec![
            argv(&["GET", "k"]),
            argv(&["HGETALL", "h"]),
            argv(&["EXISTS", "k"]),
        ];
        let replies = run_reads(&exec, engine.clone(), 0, run)
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
        let replies = run_reads(&exec, engine, 0, vec![argv(&["HGETALL", "h"])])
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
            0,
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
