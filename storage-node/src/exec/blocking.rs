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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rampart_proto::{reply, Argv, Reply};
use tokio::sync::{watch, Notify};

use super::{read_run, single_reply, write_run, ExecCtx, Failure};
use crate::commands;
use crate::engine::meta::ValueType;
use crate::engine::{self, Engine};
use crate::raft::state_machine::WriteObserver;
use crate::raft::{NodeId, Raft};

/// Told when a blocking command starts to wait (ExecuteBlocking's
/// `waiting` event), with the command a retry must send instead of the
/// original, if any; a no-op for Execute.
pub(crate) type OnWaiting<'a> = &'a (dyn Fn(Option<&Argv>) + Sync);

/// A blocking pop sent alone: attempts through Raft until one pops data,
/// waiting between attempts for a write to one of its keys. In a larger
/// batch the same command is applied as a single attempt, as Redis does
/// inside MULTI.
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
    // Registered before the first attempt, so no write after it is missed.
    let registration = ctx.waiters.register(call.kind, &call.keys);
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
            tokio::select! {
                _ = registration.woken() => {}
                _ = sleep_until(deadline) => return Ok(reply::null_array()),
                _ = leadership.wait_for(|leader| !*leader) => {
                    // The proxy retries on the new leader, where the wait
                    // is re-armed (same request id: a pop that did commit
                    // here is answered from deduplication).
                    return Err(Failure::NotLeader(ctx.current_not_leader()));
                }
            }
            let ready = call.ready_keys(&ctx.engine, ctx.clock.now_ms());
            if !ready.is_empty() {
                break call.narrowed(&argv, &ready);
            }
        };
    }
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
    let registration = ctx.waiters.register(ValueType::Stream, &call.keys);
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
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Per (type a waiter needs, key): a BLPOP and a BZPOPMIN on the same
    /// key never hold each other's turn.
    queues: HashMap<(ValueType, Vec<u8>), VecDeque<u64>>,
    wakers: HashMap<u64, Arc<Notify>>,
}

impl KeyWaiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked mid-update of
        // unrelated state: every update below is a single insert/remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a waiter for data of type `kind` on `keys`; it leaves the
    /// queues when dropped.
    pub fn register(self: &Arc<Self>, kind: ValueType, keys: &[Vec<u8>]) -> Registration {
        let notify = Arc::new(Notify::new());
        let mut keys: Vec<(ValueType, Vec<u8>)> = keys.iter().map(|k| (kind, k.clone())).collect();
        keys.sort_by(|a, b| a.1.cmp(&b.1));
        keys.dedup();
        let id = {
            let mut inner = self.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            for key in &keys {
                inner.queues.entry(key.clone()).or_default().push_back(id);
            }
            inner.wakers.insert(id, notify.clone());
            id
        };
        let count = self.registered.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(BLOCKED_CLIENTS).set(count as f64);
        Registration {
            registry: self.clone(),
            id,
            keys,
            notify,
        }
    }

    /// How many clients are blocked on this node.
    pub fn blocked(&self) -> usize {
        self.registered.load(Ordering::Relaxed)
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
}

impl Registration {
    /// Resolves when a write may have given one of the keys data (or the
    /// previous head of a queue left); a wake-up that came while the
    /// waiter was busy is kept, not lost.
    pub async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.wakers.remove(&self.id);
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
        let count = self.registry.registered.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(BLOCKED_CLIENTS).set(count as f64);
    }
}

/// What a blocking command waits for, read from its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockingCall {
    /// Keys to watch, in the command's order.
    pub keys: Vec<Vec<u8>>,
    /// `None`: block until served.
    pub timeout: Option<Duration>,
    /// The type a key must hold to serve the command.
    pub kind: ValueType,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// `NAME key [key ...] timeout`
    KeysThenTimeout,
    /// `NAME timeout numkeys key [key ...] rest...`
    TimeoutNumkeys,
    /// One source key; the command is retried unchanged.
    SingleSource,
    /// XREADGROUP: its streams are the keys; retried unchanged.
    StreamGroupRead,
}

impl BlockingCall {
    /// `None` when `argv` is not a blocking pop or its arguments are
    /// invalid: one attempt then answers the error.
    pub fn parse(argv: &[Vec<u8>], now_ms: i64) -> Option<BlockingCall> {
        let name = argv.first()?.to_ascii_lowercase();
        let timeout_at = |i: usize| -> Option<Option<Duration>> {
            let raw = argv.get(i)?;
            rampart_proto::args::parse_timeout_secs(raw, now_ms)
                .ok()
                .map(|ms| ms.map(Duration::from_millis))
        };
        let (keys, timeout, kind, shape) = match name.as_slice() {
            b"blpop" | b"brpop" | b"bzpopmin" | b"bzpopmax" if argv.len() >= 3 => {
                let kind = if name.starts_with(b"bz") {
                    ValueType::ZSet
                } else {
                    ValueType::List
                };
                let timeout = timeout_at(argv.len() - 1)?;
                (
                    argv[1..argv.len() - 1].to_vec(),
                    timeout,
                    kind,
                    Shape::KeysThenTimeout,
                )
            }
            b"blmove" if argv.len() == 6 => (
                vec![argv[1].clone()],
                timeout_at(5)?,
                ValueType::List,
                Shape::SingleSource,
            ),
            b"brpoplpush" if argv.len() == 4 => (
                vec![argv[1].clone()],
                timeout_at(3)?,
                ValueType::List,
                Shape::SingleSource,
            ),
            b"blmpop" | b"bzmpop" if argv.len() >= 5 => {
                let kind = if name.starts_with(b"bz") {
                    ValueType::ZSet
                } else {
                    ValueType::List
                };
                let n = rampart_proto::args::parse_i64(&argv[2])?;
                let n = usize::try_from(n).ok().filter(|n| *n >= 1)?;
                // The keys, then at least the LEFT/RIGHT or MIN/MAX word.
                if n >= argv.len() - 3 {
                    return None;
                }
                (
                    argv[3..3 + n].to_vec(),
                    timeout_at(1)?,
                    kind,
                    Shape::TimeoutNumkeys,
                )
            }
            b"xreadgroup" => {
                let (keys, timeout) = xreadgroup_keys_and_timeout(argv, now_ms)?;
                (keys, timeout, ValueType::Stream, Shape::StreamGroupRead)
            }
            _ => return None,
        };
        Some(BlockingCall {
            keys,
            timeout,
            kind,
            shape,
        })
    }

    /// The keys that now hold data of the command's type, in order.
    pub fn ready_keys(&self, engine: &Engine, now_ms: i64) -> Vec<Vec<u8>> {
        let view = engine.read_view();
        self.keys
            .iter()
            .filter(|key| match engine::live_meta(&view, key, now_ms) {
                Ok(Some(meta)) => meta.kind == self.kind,
                Ok(None) => false,
                Err(err) => {
                    tracing::warn!(error = %err, "blocking pop could not read a key");
                    false
                }
            })
            .cloned()
            .collect()
    }

    /// The attempt to make when `ready` (non-empty, a subset of the keys)
    /// hold data: the command restricted to them, so a key of another type
    /// among the others does not turn the attempt into WRONGTYPE (Redis
    /// serves a blocked client from the key that became ready).
    pub fn narrowed(&self, argv: &[Vec<u8>], ready: &[Vec<u8>]) -> Argv {
        match self.shape {
            Shape::SingleSource | Shape::StreamGroupRead => argv.to_vec(),
            Shape::KeysThenTimeout => {
                let mut out = Vec::with_capacity(ready.len() + 2);
                out.push(argv[0].clone());
                out.extend(ready.iter().cloned());
                out.push(argv[argv.len() - 1].clone());
                out
            }
            Shape::TimeoutNumkeys => {
                let mut out = Vec::with_capacity(argv.len());
                out.push(argv[0].clone());
                out.push(argv[1].clone());
                out.push(ready.len().to_string().into_bytes());
                out.extend(ready.iter().cloned());
                out.extend(argv[3 + self.keys.len()..].iter().cloned());
                out
            }
        }
    }
}

/// XREADGROUP's streams and BLOCK timeout (milliseconds, 0 = forever);
/// `None` without BLOCK or with invalid arguments (the attempt answers).
fn xreadgroup_keys_and_timeout(
    argv: &[Vec<u8>],
    now_ms: i64,
) -> Option<(Vec<Vec<u8>>, Option<Duration>)> {
    let mut timeout = None;
    let mut i = 1;
    while i < argv.len() {
        let word = |w: &str| argv[i].eq_ignore_ascii_case(w.as_bytes());
        if word("streams") {
            let rest = &argv[i + 1..];
            if rest.is_empty() || !rest.len().is_multiple_of(2) {
                return None;
            }
            let ms: i64 = timeout?;
            let wait = (ms > 0).then(|| Duration::from_millis(ms as u64));
            return Some((rest[..rest.len() / 2].to_vec(), wait));
        }
        if word("block") {
            let ms = rampart_proto::args::parse_i64(argv.get(i + 1)?)?;
            if ms < 0 || ms > i64::MAX - now_ms.max(0) {
                return None;
            }
            timeout = Some(ms);
            i += 2;
        } else if word("group") {
            i += 3;
        } else if word("count") {
            i += 2;
        } else {
            i += 1;
        }
    }
    None
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

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn parses_keys_and_timeouts_of_each_shape() {
        let call = BlockingCall::parse(&argv("BLPOP a b 1.5"), NOW).unwrap();
        assert_eq!(call.keys, argv("a b"));
        assert_eq!(call.timeout, Some(Duration::from_millis(1500)));
        let call = BlockingCall::parse(&argv("bzpopmax z 0"), NOW).unwrap();
        assert_eq!((call.kind, call.timeout), (ValueType::ZSet, None));
        let call = BlockingCall::parse(&argv("BLMOVE s d LEFT RIGHT 2"), NOW).unwrap();
        assert_eq!(call.keys, argv("s"));
        let call = BlockingCall::parse(&argv("BLMPOP 0 2 a b LEFT COUNT 3"), NOW).unwrap();
        assert_eq!(call.keys, argv("a b"));
        // Invalid arguments: no wait, the attempt answers the error.
        assert!(BlockingCall::parse(&argv("BLPOP a -1"), NOW).is_none());
        assert!(BlockingCall::parse(&argv("BLMPOP 0 2 a b"), NOW).is_none());
        assert!(BlockingCall::parse(&argv("BLMPOP 0 x a LEFT"), NOW).is_none());
        assert!(BlockingCall::parse(&argv("LPOP a"), NOW).is_none());
    }

    #[test]
    fn narrowing_keeps_only_ready_keys() {
        let a = argv("BLPOP a b c 0");
        let call = BlockingCall::parse(&a, NOW).unwrap();
        assert_eq!(call.narrowed(&a, &argv("b")), argv("BLPOP b 0"));
        let m = argv("BZMPOP 5 3 a b c MAX COUNT 2");
        let call = BlockingCall::parse(&m, NOW).unwrap();
        assert_eq!(
            call.narrowed(&m, &argv("a c")),
            argv("BZMPOP 5 2 a c MAX COUNT 2")
        );
    }

    #[tokio::test]
    async fn a_write_wakes_the_head_and_leaving_passes_the_turn() {
        let waiters = Arc::new(KeyWaiters::default());
        let list = ValueType::List;
        let first = waiters.register(list, &argv("k"));
        let second = waiters.register(list, &argv("k other"));
        let zset_waiter = waiters.register(ValueType::ZSet, &argv("k"));
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
}
