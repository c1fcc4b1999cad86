//! Blocking pops on the node (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP,
//! BZPOPMIN, BZPOPMAX, BZMPOP), and XREADGROUP BLOCK, which waits the same
//! way (its attempts are writes: they change the group's PEL). XREAD BLOCK
//! uses the same waiters, but its attempts are linearizable reads
//! (`blocking_xread`).
//!
//! A blocking command arrives alone in its batch (the proxy sends it so).
//! The leader registers a waiter on its keys, then applies the command
//! through Raft as one non-blocking attempt (as Redis runs it inside
//! MULTI). If that found nothing, the waiter sleeps, with no slot held and
//! no polling, until the state machine reports that an applied entry wrote
//! one of its keys ([`KeyWaiters`] is the state machine's
//! [`WriteObserver`]), the timeout passes, or this node stops being leader.
//! Woken, it checks the applied state and, if a key holds data of the right
//! type, makes another attempt narrowed to those keys. Every pop is a Raft
//! write, so each element goes to exactly one client.
//!
//! Fairness: waiters queue per key in arrival order and a write wakes only
//! the head of each queue; a waiter that leaves (served, timed out,
//! cancelled) hands the turn to the next one, which re-checks the key.
//! Stream waiters are the exception: a write to a stream wakes all of them
//! (readers do not consume entries).
//!
//! Retries: all attempts of one request share its `(client_id, seq)`. The
//! state machine records only the attempt that popped something, so a
//! proxy that retries the request on a new leader gets that result back
//! from deduplication instead of popping a second element.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rampart_proto::command_table;
use rampart_proto::key_spec::KeyFlags;
use rampart_proto::{reply, Argv, Reply};
use tokio::sync::{mpsc, watch, Notify};

use super::proposals::{BatchExtras, ProposeError, ReplyTo};
use super::{read_run, single_reply, write_run, ExecCtx, Failure};
use crate::commands;
use crate::commands::blocked::BlockingCall;
use crate::engine::meta::ValueType;
use crate::raft::state_machine::WriteObserver;
use crate::raft::types::WriteRun;
use crate::raft::{NodeId, Raft};

/// Told when a blocking command starts to wait (ExecuteBlocking's
/// `waiting` event), with the command a retry must send instead of the
/// original, if any; a no-op for Execute.
pub(crate) type OnWaiting<'a> = &'a (dyn Fn(Option<&Argv>) + Sync);

/// A blocking pop sent alone: attempts through Raft until one pops data,
/// waiting between attempts for a write to one of its keys. In a larger
/// batch the same command is applied as a single attempt, as Redis does
/// inside MULTI.
///
/// While it waits, a batch of writes to one of its keys also carries an
/// attempt for it (see [`KeyWaiters`] as [`BatchExtras`]), so it is usually
/// served inside the entry that pushed, before the pusher is answered; its
/// own attempt after the wake-up then only finds what is left.
pub(crate) async fn blocking_command(
    ctx: &ExecCtx,
    client_id: &str,
    seq: u64,
    argv: Argv,
    on_waiting: OnWaiting<'_>,
) -> Result<Reply, Failure> {
    if argv[0].eq_ignore_ascii_case(b"xread") {
        return blocking_xread(ctx, argv, on_waiting).await;
    }
    let Some(call) = BlockingCall::parse(&argv, ctx.clock.now_ms()) else {
        // Invalid arguments: the attempt answers the error.
        return Ok(single_reply(
            write_run(ctx, client_id, seq, 0, vec![argv]).await?,
        ));
    };
    let deadline = call.timeout.map(|t| tokio::time::Instant::now() + t);
    // Pops with a request id can be served inside batches (XREADGROUP
    // waits for its own attempts: readers in a group do not chain).
    let serve = (call.kind != ValueType::Stream && !client_id.is_empty()).then(|| Serve {
        client_id: client_id.to_string(),
        seq,
        argv: argv.clone(),
    });
    // Registered before the first attempt, so no write after it is missed.
    let (mut registration, mut served) = ctx.waiters.register(call.kind, &call.keys, serve);
    let mut leadership = ctx.leadership.clone();
    let mut attempt = argv.clone();
    loop {
        let reply = single_reply(write_run(ctx, client_id, seq, 0, vec![attempt]).await?);
        if !commands::is_empty_blocking_reply(&reply) {
            return Ok(reply);
        }
        // Retries resend the command unchanged (dedup by request id).
        on_waiting(None);
        attempt = loop {
            let wake = tokio::select! {
                _ = registration.woken() => Wake::Written,
                Some(result) = next_served(&mut served) => Wake::Served(Box::new(result)),
                _ = sleep_until(deadline) => Wake::TimedOut,
                _ = leadership.wait_for(|leader| !*leader) => Wake::NotLeader,
            };
            match wake {
                Wake::Written => {}
                Wake::Served(result) => {
                    if let Some(reply) = served_reply(*result) {
                        return Ok(reply);
                    }
                    continue;
                }
                Wake::TimedOut => {
                    return leave(&mut registration, &mut served, ctx.write_timeout).await;
                }
                Wake::NotLeader => {
                    // The proxy retries on the new leader, where the wait
                    // is re-armed (same request id: a pop that did commit
                    // here, by this waiter or inside a batch, is answered
                    // from deduplication).
                    return Err(Failure::NotLeader(ctx.current_not_leader()));
                }
            }
            let view = ctx.engine.read_view();
            let now = ctx.clock.now_ms();
            if let Some(ended) = call.wait_ended(&view, now) {
                return Ok(ended);
            }
            let ready = call.ready_keys(&view, now);
            if !ready.is_empty() {
                break call.narrowed(&argv, &ready);
            }
        };
    }
}

/// What ended one wait of a blocked pop.
enum Wake {
    Written,
    Served(Box<Served>),
    TimedOut,
    NotLeader,
}

/// The reply of a batch that carried an attempt for this client, when it
/// popped something (`None`: it found nothing, or its entry failed and the
/// client's own attempts go on).
fn served_reply(result: Served) -> Option<Reply> {
    match result {
        Ok(replies) => replies
            .into_iter()
            .next()
            .filter(|reply| !commands::is_empty_blocking_reply(reply)),
        Err(err) => {
            tracing::debug!(error = %err, "a batch serving a blocked client failed");
            None
        }
    }
}

async fn next_served(served: &mut Option<mpsc::UnboundedReceiver<Served>>) -> Option<Served> {
    match served {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The timeout of a blocked pop: out of the queues first (no batch takes
/// it in after that), then the answers of batches already carrying an
/// attempt for it, since one of them may have popped for it. An entry
/// whose outcome is unknown makes the answer `Unavailable`: the proxy
/// retries under the same request id, and deduplication answers with the
/// pop if it committed (otherwise a last 1 ms attempt).
async fn leave(
    registration: &mut Registration,
    served: &mut Option<mpsc::UnboundedReceiver<Served>>,
    limit: Duration,
) -> Result<Reply, Failure> {
    registration.withdraw();
    let Some(rx) = served else {
        return Ok(reply::null_array());
    };
    let until = tokio::time::Instant::now() + limit;
    let mut unknown = false;
    loop {
        while let Ok(result) = rx.try_recv() {
            match result {
                Err(_) => unknown = true,
                ok => {
                    if let Some(reply) = served_reply(ok) {
                        return Ok(reply);
                    }
                }
            }
        }
        if registration.batches_in_flight() == 0 {
            break;
        }
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(Err(_))) => unknown = true,
            Ok(Some(ok)) => {
                if let Some(reply) = served_reply(ok) {
                    return Ok(reply);
                }
            }
            Ok(None) | Err(_) => {
                unknown = true;
                break;
            }
        }
    }
    if unknown {
        return Err(Failure::Unavailable(
            "a batch that may have served this blocked client did not answer".into(),
        ));
    }
    Ok(reply::null_array())
}

/// XREAD with BLOCK sent alone: linearizable reads (never Raft writes)
/// until one returns entries, waiting between them for a write to one of
/// its streams. `$` is resolved once, when the call starts, so entries
/// added while it waits are the ones it returns. A leader change ends the
/// wait with NotLeader; the proxy re-sends the command to the new leader
/// with the ids resolved here (the `resume` of the `waiting` event), so
/// entries added in between are not skipped.
async fn blocking_xread(
    ctx: &ExecCtx,
    argv: Argv,
    on_waiting: OnWaiting<'_>,
) -> Result<Reply, Failure> {
    let started = tokio::time::Instant::now();
    let now = ctx.clock.now_ms();
    let Ok(call) = commands::streams::read::parse(&argv[1..], now) else {
        // Invalid arguments: the read answers the error.
        return Ok(single_reply(read_run(ctx, vec![argv]).await?));
    };
    // Registered before `$` is resolved, so no entry added after it is missed.
    let (registration, _) = ctx.waiters.register(ValueType::Stream, &call.keys, None);
    super::confirm_leadership(ctx, "a blocking read").await?;
    let engine = ctx.engine.clone();
    let command = argv.clone();
    let resolved = tokio::task::spawn_blocking(move || {
        let view = engine.read_view();
        commands::streams::read::resolve_for_wait(&view, &command, now)
    })
    .await
    .map_err(|e| Failure::Unavailable(format!("blocking read failed: {e}")))?;
    let wait = match resolved {
        Some(Ok(wait)) => wait,
        Some(Err(reply)) => return Ok(reply),
        // Not reachable (`is_blocking` and the parser agree on BLOCK), but
        // a plain read is the right answer for an XREAD that cannot wait.
        None => return Ok(single_reply(read_run(ctx, vec![argv]).await?)),
    };
    let deadline = wait
        .call
        .block
        .flatten()
        .map(|ms| started + Duration::from_millis(ms));
    // XREAD's ids are its last arguments, one per key.
    let mut resume = argv[..argv.len() - wait.after.len()].to_vec();
    resume.extend(wait.after.iter().map(|id| id.to_reply_bytes()));
    let mut leadership = ctx.leadership.clone();
    loop {
        let reply = single_reply(read_run(ctx, vec![wait.attempt.clone()]).await?);
        if !commands::is_empty_blocking_reply(&reply) {
            return Ok(reply);
        }
        on_waiting(Some(&resume));
        loop {
            tokio::select! {
                _ = registration.woken() => {}
                _ = sleep_until(deadline) => return Ok(reply::null_array()),
                _ = leadership.wait_for(|leader| !*leader) => {
                    return Err(Failure::NotLeader(ctx.current_not_leader()));
                }
            }
            // A cheap local look before paying for a linearizable read.
            let keys = &wait.call.keys;
            if commands::streams::read::may_have_new(
                &ctx.engine,
                keys,
                &wait.after,
                ctx.clock.now_ms(),
            ) {
                break;
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waiters per key, in arrival order.
#[derive(Default)]
pub struct KeyWaiters {
    inner: Mutex<Inner>,
    /// Registered waiters: lets applies skip the lock when there are none.
    registered: AtomicUsize,
    /// Registered waiters that batches may serve: lets proposals skip the
    /// key lookup when there are none.
    serving: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Per (type a waiter needs, key): a BLPOP and a BZPOPMIN on the same
    /// key never hold each other's turn.
    queues: HashMap<(ValueType, Vec<u8>), VecDeque<u64>>,
    wakers: HashMap<u64, Arc<Notify>>,
    /// The waiters batches may carry an attempt for.
    servable: HashMap<u64, Servable>,
}

/// What a batch needs to serve a blocked pop: its request id and command.
pub struct Serve {
    pub client_id: String,
    pub seq: u64,
    pub argv: Argv,
}

/// A batch's answer to the attempt it carried for a blocked client.
pub type Served = Result<Vec<Reply>, ProposeError>;

struct Servable {
    serve: Serve,
    /// Keys its attempt may push to (BLMOVE's destination): waiters on
    /// them join the same batch, after it.
    pushes_to: Vec<Vec<u8>>,
    tx: mpsc::UnboundedSender<Served>,
    /// Batches carrying an attempt for it that have not answered yet.
    in_flight: Arc<AtomicUsize>,
}

/// Waiters served per key in one batch, and in all.
const SERVED_PER_KEY: usize = 16;
const SERVED_PER_BATCH: usize = 256;

impl KeyWaiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked mid-update of
        // unrelated state: every update below is a single insert/remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a waiter for data of type `kind` on `keys`; it leaves the
    /// queues when dropped (or [`Registration::withdraw`]n). With `serve`,
    /// batches writing to its keys carry an attempt for it, whose answers
    /// arrive on the returned receiver.
    pub fn register(
        self: &Arc<Self>,
        kind: ValueType,
        keys: &[Vec<u8>],
        serve: Option<Serve>,
    ) -> (Registration, Option<mpsc::UnboundedReceiver<Served>>) {
        let notify = Arc::new(Notify::new());
        let mut keys: Vec<(ValueType, Vec<u8>)> = keys.iter().map(|k| (kind, k.clone())).collect();
        keys.sort_by(|a, b| a.1.cmp(&b.1));
        keys.dedup();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (servable, rx) = match serve {
            Some(serve) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let pushes_to = keys_of(&serve.argv, KeyFlags::INSERT);
                let servable = Servable {
                    serve,
                    pushes_to,
                    tx,
                    in_flight: in_flight.clone(),
                };
                (Some(servable), Some(rx))
            }
            None => (None, None),
        };
        let servable_now = servable.is_some();
        let id = {
            let mut inner = self.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            for key in &keys {
                inner.queues.entry(key.clone()).or_default().push_back(id);
            }
            inner.wakers.insert(id, notify.clone());
            if let Some(servable) = servable {
                inner.servable.insert(id, servable);
            }
            id
        };
        if servable_now {
            self.serving.fetch_add(1, Ordering::Relaxed);
        }
        let count = self.registered.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(BLOCKED_CLIENTS).set(count as f64);
        let registration = Registration {
            registry: self.clone(),
            id,
            keys,
            notify,
            in_flight,
            left: false,
        };
        (registration, rx)
    }

    /// How many clients are blocked on this node.
    pub fn blocked(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
    }
}

/// The keys of `argv` whose key-spec flags include `flags` (all keys for
/// [`KeyFlags::NONE`]), by the command table.
fn keys_of(argv: &[Vec<u8>], flags: KeyFlags) -> Vec<Vec<u8>> {
    let Some(spec) = command_table::lookup_argv(argv) else {
        return Vec::new();
    };
    spec.find_keys(argv)
        .into_iter()
        .filter(|k| k.flags.contains(flags))
        .filter_map(|k| argv.get(k.pos).cloned())
        .collect()
}

impl BatchExtras for KeyWaiters {
    /// For every key the batch's commands name (and every key an attempt
    /// added here pushes to), an attempt for each of the first
    /// [`SERVED_PER_KEY`] clients waiting on it, in their arrival order,
    /// each client once. Read-only commands cannot make a key ready, but
    /// telling them apart costs more than the empty attempt they may add.
    fn extras(&self, runs: &[&WriteRun]) -> Vec<(WriteRun, ReplyTo)> {
        if self.serving.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let mut keys: Vec<Vec<u8>> = runs
            .iter()
            .flat_map(|run| run.commands.iter())
            .flat_map(|argv| keys_of(argv, KeyFlags::NONE))
            .collect();
        let inner = self.lock();
        let mut taken = HashSet::new();
        let mut out = Vec::new();
        let mut next = 0;
        while next < keys.len() && out.len() < SERVED_PER_BATCH {
            let key = keys[next].clone();
            next += 1;
            for kind in [ValueType::List, ValueType::ZSet] {
                let Some(queue) = inner.queues.get(&(kind, key.clone())) else {
                    continue;
                };
                for id in queue.iter().take(SERVED_PER_KEY) {
                    let Some(s) = inner.servable.get(id) else {
                        continue;
                    };
                    if !taken.insert(*id) {
                        continue;
                    }
                    s.in_flight.fetch_add(1, Ordering::SeqCst);
                    let run = WriteRun {
                        client_id: s.serve.client_id.clone(),
                        seq: s.serve.seq,
                        part: 0,
                        commands: vec![commands::blocked::serve_attempt(&s.serve.argv)],
                    };
                    let to = ReplyTo::Blocked {
                        tx: s.tx.clone(),
                        in_flight: s.in_flight.clone(),
                    };
                    out.push((run, to));
                    keys.extend(s.pushes_to.iter().cloned());
                }
            }
        }
        out
    }
}

/// `rampart_blocked_clients`: clients waiting in a blocking pop.
pub const BLOCKED_CLIENTS: &str = "rampart_blocked_clients";

impl WriteObserver for KeyWaiters {
    fn keys_written(&self, keys: &[(ValueType, Vec<u8>)]) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        let inner = self.lock();
        for key in keys {
            let Some(queue) = inner.queues.get(key) else {
                continue;
            };
            // Stream readers do not consume what they read (XREAD), and
            // each XREADGROUP waiter may wait after a different id or in
            // another group: all of them re-check, not only the head.
            let woken = if key.0 == ValueType::Stream {
                queue.len()
            } else {
                1
            };
            for id in queue.iter().take(woken) {
                if let Some(waker) = inner.wakers.get(id) {
                    waker.notify_one();
                }
            }
        }
    }

    fn everything_changed(&self) {
        let inner = self.lock();
        for waker in inner.wakers.values() {
            waker.notify_one();
        }
    }
}

/// One blocked client's place in the queues of its keys.
pub struct Registration {
    registry: Arc<KeyWaiters>,
    id: u64,
    keys: Vec<(ValueType, Vec<u8>)>,
    notify: Arc<Notify>,
    in_flight: Arc<AtomicUsize>,
    left: bool,
}

impl Registration {
    /// Resolves when a write may have given one of the keys data (or the
    /// previous head of a queue left); a wake-up that came while the
    /// waiter was busy is kept, not lost.
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Batches carrying an attempt for this waiter not answered yet.
    pub fn batches_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Leaves the queues now: no batch takes this waiter in after this
    /// returns (those that did are counted in [`batches_in_flight`]).
    ///
    /// [`batches_in_flight`]: Registration::batches_in_flight
    pub fn withdraw(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut inner = self.registry.lock();
        inner.wakers.remove(&self.id);
        let was_servable = inner.servable.remove(&self.id).is_some();
        let mut next_heads = Vec::new();
        for key in &self.keys {
            let Some(queue) = inner.queues.get_mut(key) else {
                continue;
            };
            let was_head = queue.front() == Some(&self.id);
            queue.retain(|id| *id != self.id);
            match queue.front() {
                None => {
                    inner.queues.remove(key);
                }
                // The turn passes on: the next waiter re-checks the key.
                Some(next) if was_head => next_heads.push(*next),
                Some(_) => {}
            }
        }
        for id in next_heads {
            if let Some(waker) = inner.wakers.get(&id) {
                waker.notify_one();
            }
        }
        drop(inner);
        if was_servable {
            self.registry.serving.fetch_sub(1, Ordering::Relaxed);
        }
        let count = self.registry.registered.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(BLOCKED_CLIENTS).set(count as f64);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// Whether this node is the leader, as a watch that changes only when that
/// does (Raft's own metrics change on every apply; waiters must not wake
/// for those).
pub fn leadership(raft: &Raft, id: NodeId) -> watch::Receiver<bool> {
    let mut metrics = raft.metrics();
    let initial = metrics.borrow().current_leader == Some(id);
    let (tx, rx) = watch::channel(initial);
    tokio::spawn(async move {
        loop {
            let is_leader = metrics.borrow_and_update().current_leader == Some(id);
            tx.send_if_modified(|current| {
                let changed = *current != is_leader;
                *current = is_leader;
                changed
            });
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tx.closed() => break,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Argv {
        text.split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_write_wakes_the_head_and_leaving_passes_the_turn() {
        let waiters = Arc::new(KeyWaiters::default());
        let list = ValueType::List;
        let (first, _) = waiters.register(list, &argv("k"), None);
        let (second, _) = waiters.register(list, &argv("k other"), None);
        let (zset_waiter, _) = waiters.register(ValueType::ZSet, &argv("k"), None);
        assert_eq!(waiters.blocked(), 3);
        waiters.keys_written(&[(list, b"k".to_vec())]);
        // Only the head was told.
        tokio::time::timeout(Duration::from_secs(5), first.woken())
            .await
            .unwrap();
        let not_yet = tokio::time::timeout(Duration::from_millis(50), second.woken()).await;
        assert!(not_yet.is_err());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.woken())
            .await
            .unwrap();
        drop(second);
        // A list write never woke the sorted-set waiter.
        let not_woken = tokio::time::timeout(Duration::from_millis(50), zset_waiter.woken()).await;
        assert!(not_woken.is_err());
        drop(zset_waiter);
        assert_eq!(waiters.blocked(), 0);
        assert!(waiters.lock().queues.is_empty());
    }

    fn serve(client: &str, cmd: &str) -> Option<Serve> {
        Some(Serve {
            client_id: client.into(),
            seq: 7,
            argv: argv(cmd),
        })
    }

    fn push(cmd: &str) -> WriteRun {
        WriteRun {
            client_id: "pusher".into(),
            seq: 1,
            part: 0,
            commands: vec![argv(cmd)],
        }
    }

    /// The clients named in the attempts a batch would carry, in order.
    fn served(waiters: &KeyWaiters, cmds: &[&str]) -> Vec<String> {
        let runs: Vec<WriteRun> = cmds.iter().map(|c| push(c)).collect();
        let refs: Vec<&WriteRun> = runs.iter().collect();
        waiters
            .extras(&refs)
            .into_iter()
            .map(|(run, to)| {
                assert_eq!((run.seq, run.part), (7, 0));
                assert!(commands::blocked::is_serve(&run.commands[0]));
                // Answered: the batch no longer counts as in flight.
                to.send(Ok(vec![reply::null_array()]));
                run.client_id
            })
            .collect()
    }

    #[tokio::test]
    async fn batches_carry_attempts_for_waiters_on_their_keys_and_down_chains() {
        let waiters = Arc::new(KeyWaiters::default());
        let list = ValueType::List;
        assert!(served(&waiters, &["RPUSH a x"]).is_empty());
        // Linked: a -> b -> c, and a plain waiter on a behind the first.
        let (w1, _r1) = waiters.register(list, &argv("a"), serve("c1", "BLMOVE a b LEFT RIGHT 0"));
        let (w2, _r2) = waiters.register(list, &argv("b"), serve("c2", "BRPOPLPUSH b c 0"));
        let (w3, mut r3) = waiters.register(list, &argv("a"), serve("c3", "BLPOP a 0"));
        let (_plain, _) = waiters.register(list, &argv("a"), None);
        let (_z, _) = waiters.register(ValueType::ZSet, &argv("z"), serve("z1", "BZPOPMIN z 0"));
        assert_eq!(served(&waiters, &["RPUSH a x"]), vec!["c1", "c3", "c2"]);
        assert_eq!(served(&waiters, &["GET b"]), vec!["c2"]);
        assert_eq!(served(&waiters, &["ZADD z 1 m", "RPUSH q 1"]), vec!["z1"]);
        assert!(served(&waiters, &["SET other 1"]).is_empty());
        // The answer reached the waiter's channel.
        assert!(r3.as_mut().expect("servable").try_recv().is_ok());
        // A waiter that left is not served, and its chain stops with it.
        drop(w1);
        assert_eq!(served(&waiters, &["RPUSH a x"]), vec!["c3"]);
        let mut w3 = w3;
        w3.withdraw();
        assert_eq!(w3.batches_in_flight(), 0);
        assert!(served(&waiters, &["RPUSH a x"]).is_empty());
        drop(w2);
        assert_eq!(waiters.serving.load(Ordering::Relaxed), 1);
    }
}
