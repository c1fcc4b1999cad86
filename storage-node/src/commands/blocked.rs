//! Blocking commands as data: which keys a blocking pop or XREADGROUP
//! waits on, for how long, which type serves it, and the narrowed attempt
//! to make once some of its keys hold data (`exec::blocking` waits; this
//! module only reads arguments and applied state).
//!
//! Also the internal command [`SERVE`]: `rampart.serveblocked <blocking
//! command>`, the attempt the leader adds to a write batch for a client
//! blocked on a key the batch writes. Applied after the batch's own runs, it
//! serves the client from whichever of its keys now hold data of the right
//! type (a key of another type is skipped, never a WRONGTYPE), or answers
//! the empty reply that leaves the client waiting. So a push, the pops it
//! unblocks and the pops those unblock apply in ONE entry, before the
//! pusher is answered, as Redis serves blocked clients before its next
//! command (linked BLMOVEs, circular BRPOPLPUSH).

use std::time::Duration;

use rampart_proto::{reply, Argv, Reply};

use super::{apply_write, streams};
use crate::engine::meta::ValueType;
use crate::engine::{self, DataRead, Txn};

/// Name of the internal serve-a-blocked-client attempt.
pub const SERVE: &[u8] = b"rampart.serveblocked";

/// Whether `argv` is a [`SERVE`] attempt (a blocking attempt: its empty
/// reply must not be kept for deduplication).
pub fn is_serve(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|name| name.eq_ignore_ascii_case(SERVE))
}

/// `argv` wrapped as a [`SERVE`] attempt.
pub fn serve_attempt(argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(argv.len() + 1);
    out.push(SERVE.to_vec());
    out.extend(argv.iter().cloned());
    out
}

/// Applies a [`SERVE`] attempt; `None` for any other command.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>], now_ms: i64) -> Option<Reply> {
    if !is_serve(argv) {
        return None;
    }
    let inner = &argv[1..];
    let served = BlockingCall::parse(inner, now_ms)
        .filter(|call| call.kind != ValueType::Stream)
        .and_then(|call| {
            let ready = call.ready_keys(&*txn, now_ms);
            (!ready.is_empty()).then(|| call.narrowed(inner, &ready))
        });
    Some(match served {
        Some(attempt) => apply_write(txn, &attempt, now_ms),
        None => reply::null_array(),
    })
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
    /// XREADGROUP's group: its wait ends when the group is destroyed.
    group: Option<Vec<u8>>,
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
        let mut group = None;
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
                let (keys, timeout, name) = xreadgroup_keys_and_timeout(argv, now_ms)?;
                group = Some(name);
                (keys, timeout, ValueType::Stream, Shape::StreamGroupRead)
            }
            _ => return None,
        };
        Some(BlockingCall {
            keys,
            timeout,
            kind,
            shape,
            group,
        })
    }

    /// The error that ends the wait of an XREADGROUP whose stream was
    /// deleted or overwritten, or whose group was destroyed (Redis 7's
    /// `UNBLOCKED` / `NOGROUP`); `None` for the other commands, which wait
    /// on through deletions as in Redis.
    pub fn wait_ended<R: DataRead + ?Sized>(&self, r: &R, now_ms: i64) -> Option<Reply> {
        let group = self.group.as_deref()?;
        match streams::readgroup::blocked_read_ended(r, &self.keys, group, now_ms) {
            Ok(ended) => ended,
            Err(err) => {
                tracing::warn!(error = ?err, "blocked XREADGROUP could not read its streams");
                None
            }
        }
    }

    /// The keys that now hold data of the command's type, in order.
    pub fn ready_keys<R: DataRead + ?Sized>(&self, r: &R, now_ms: i64) -> Vec<Vec<u8>> {
        self.keys
            .iter()
            .filter(|key| match engine::live_meta(r, key, now_ms) {
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

/// An XREADGROUP's streams, BLOCK timeout and group.
type GroupWait = (Vec<Vec<u8>>, Option<Duration>, Vec<u8>);

/// XREADGROUP's streams, BLOCK timeout (milliseconds, 0 = forever) and
/// group; `None` without BLOCK or with invalid arguments (the attempt
/// answers).
fn xreadgroup_keys_and_timeout(argv: &[Vec<u8>], now_ms: i64) -> Option<GroupWait> {
    let mut timeout = None;
    let mut group = None;
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
            return Some((rest[..rest.len() / 2].to_vec(), wait, group?));
        }
        if word("block") {
            let ms = rampart_proto::args::parse_i64(argv.get(i + 1)?)?;
            if ms < 0 || ms > i64::MAX - now_ms.max(0) {
                return None;
            }
            timeout = Some(ms);
            i += 2;
        } else if word("group") {
            group = Some(argv.get(i + 1)?.clone());
            i += 3;
        } else if word("count") {
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{show, Node};
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
    fn a_blocked_xreadgroup_ends_when_its_stream_or_group_goes() {
        let a = argv("XREADGROUP GROUP g c BLOCK 0 STREAMS s t > >");
        let call = BlockingCall::parse(&a, NOW).unwrap();
        assert_eq!(call.keys, argv("s t"));
        assert_eq!(call.group.as_deref(), Some(&b"g"[..]));
        let node = Node::new();
        let ended = |node: &Node| {
            call.wait_ended(&node.engine.read_view(), NOW)
                .map(|r| show(&r))
        };
        let key_gone = Some("-UNBLOCKED the stream key no longer exists".to_string());
        let group_gone = Some(
            "-NOGROUP the consumer group this client was blocked on no longer exists".to_string(),
        );
        for key in ["s", "t"] {
            node.run(NOW, &format!("XGROUP CREATE {key} g $ MKSTREAM"));
        }
        assert_eq!(ended(&node), None);
        node.run(NOW, "XGROUP DESTROY t g");
        assert_eq!(ended(&node), group_gone);
        node.run(NOW, "XGROUP CREATE t g $");
        assert_eq!(ended(&node), None);
        node.run(NOW, "DEL s");
        assert_eq!(ended(&node), key_gone);
        node.run(NOW, "SET s x");
        assert_eq!(ended(&node), key_gone);
        // Lists and sorted sets wait on through deletions, as in Redis.
        let blpop = BlockingCall::parse(&argv("BLPOP s 0"), NOW).unwrap();
        assert_eq!(blpop.wait_ended(&node.engine.read_view(), NOW), None);
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

    #[test]
    fn a_serve_attempt_pops_from_ready_keys_only_and_never_errs_on_type() {
        let node = Node::new();
        let serve = |cmd: &str| {
            let mut txn = node.engine.txn();
            let reply = apply_internal(&mut txn, &serve_attempt(&argv(cmd)), NOW).expect("serve");
            let batch = txn.into_batch().expect("batch");
            node.engine.write_batch(batch, false).expect("write");
            show(&reply)
        };
        node.run(NOW, "SET str x");
        // Nothing ready: the empty reply that keeps the client waiting.
        assert_eq!(serve("BLPOP str empty 0"), "nil");
        node.run(NOW, "RPUSH b 1 2");
        // A key of another type among the keys is skipped, not an error.
        assert_eq!(serve("BLPOP str b 0"), "[\"b\", \"1\"]");
        assert_eq!(serve("BRPOPLPUSH b c 0"), "\"2\"");
        assert_eq!(show(&node.run(NOW, "LRANGE c 0 -1")), "[\"2\"]");
        node.run(NOW, "ZADD z 1 m");
        assert_eq!(serve("BZPOPMIN z 0"), "[\"z\", \"m\", ,1]");
        // Streams are never served this way.
        assert_eq!(serve("XREADGROUP GROUP g c BLOCK 0 STREAMS s >"), "nil");
        assert!(apply_internal(&mut node.engine.txn(), &argv("BLPOP b 0"), NOW).is_none());
        assert!(is_serve(&serve_attempt(&argv("BLPOP b 0"))));
    }
}
