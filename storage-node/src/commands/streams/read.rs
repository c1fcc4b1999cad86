//! XREAD (the non-blocking read; BLOCK waits in `exec::blocking`).
//!
//! A blocking XREAD is served by the node's wait loop (`exec::blocking`): it
//! resolves the ids once with [`resolve_for_wait`] (`$` becomes the
//! stream's last id at the start of the call, and stays that across
//! wake-ups), then makes linearizable read attempts of the rewritten
//! command, which has no BLOCK and only explicit ids.

use rampart_proto::reply;

use super::entries::parse_strict_id;
use super::id::StreamId;
use super::layout::{entry_reply, Format, Stream};
use super::legacy;
use crate::commands::{CmdError, CmdResult};
use crate::engine::{DataRead, Engine};

pub use rampart_proto::parse::streams::XRead;

/// Parses `[COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]`
/// with Redis's errors (`rampart_proto::parse::streams::xread`).
pub fn parse(args: &[Vec<u8>], now: i64) -> Result<XRead, CmdError> {
    Ok(rampart_proto::parse::streams::xread(args, now)?)
}

/// Checks each key's type and turns each id argument into the id entries
/// must be greater than, in Redis's order (key by key). `$` is the
/// stream's last id (0-0 for a missing key).
pub fn resolve<R: DataRead + ?Sized>(
    r: &R,
    call: &XRead,
    now: i64,
) -> Result<Vec<StreamId>, CmdError> {
    let mut out = Vec::with_capacity(call.keys.len());
    for (key, raw) in call.keys.iter().zip(&call.ids) {
        let stream = Stream::lookup(r, key, now)?;
        let id = match raw.as_slice() {
            b"$" => match stream {
                // A Legacy stream's meta payload holds only its format.
                Some(_) => legacy::with_readable(r, key, now, |_, s| {
                    Ok(s.map_or(StreamId::MIN, |s| s.info.last_id()))
                })?,
                None => StreamId::MIN,
            },
            b">" => return Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".into()),
            _ => parse_strict_id(raw)?,
        };
        out.push(id);
    }
    Ok(out)
}

/// The entries after `after[i]` of each stream, as Redis replies: one
/// `[key, entries]` per stream that has some (a map in RESP3), or a null
/// array when none has.
pub fn read_after<R: DataRead + ?Sized>(
    r: &R,
    keys: &[Vec<u8>],
    after: &[StreamId],
    count: u64,
    now: i64,
) -> CmdResult {
    let limit = (count > 0).then(|| usize::try_from(count).unwrap_or(usize::MAX));
    let mut found = Vec::new();
    for (key, gt) in keys.iter().zip(after) {
        let Some(start) = gt.successor() else {
            continue;
        };
        let entries = legacy::with_readable(r, key, now, |r, stream| match stream {
            // The meta record answers "nothing newer" without a scan.
            Some(s) if s.info.length > 0 && s.info.last_id() >= start => {
                s.range(r, start, StreamId::MAX, false, limit)
            }
            _ => Ok(Vec::new()),
        })?;
        if !entries.is_empty() {
            found.push((
                reply::bulk(key.clone()),
                reply::array(entries.into_iter().map(entry_reply).collect()),
            ));
        }
    }
    if found.is_empty() {
        return Ok(reply::null_array());
    }
    Ok(reply::keyed(found))
}

/// XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]
///
/// Run as a plain read (also inside MULTI or a pipeline, where BLOCK
/// cannot wait, as in Redis): answers at once.
pub fn xread<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let call = parse(args, now)?;
    let after = resolve(r, &call, now)?;
    read_after(r, &call.keys, &after, call.count, now)
}

/// A blocking XREAD with its ids resolved.
#[derive(Debug)]
pub struct Wait {
    pub call: XRead,
    /// Per key, the id entries must be greater than.
    pub after: Vec<StreamId>,
    /// What each attempt runs: `XREAD [COUNT n] STREAMS keys... ids...`.
    pub attempt: Vec<Vec<u8>>,
}

/// For a blocking XREAD (`argv` with the name): its ids resolved now and
/// the command each wait attempt runs, or the error reply to answer at
/// once. `None` when `argv` is not an XREAD with BLOCK.
pub fn resolve_for_wait<R: DataRead + ?Sized>(
    r: &R,
    argv: &[Vec<u8>],
    now: i64,
) -> Option<Result<Wait, rampart_proto::Reply>> {
    let call = parse(argv.get(1..)?, now).ok()?;
    call.block?;
    let after = match resolve(r, &call, now) {
        Ok(after) => after,
        Err(CmdError::Redis(text)) => return Some(Err(reply::error(text))),
        Err(CmdError::Engine(err)) => {
            return Some(Err(reply::error(format!("ERR storage error: {err}"))))
        }
    };
    let mut attempt = vec![argv[0].clone()];
    if call.count > 0 {
        attempt.push(b"COUNT".to_vec());
        attempt.push(call.count.to_string().into_bytes());
    }
    attempt.push(b"STREAMS".to_vec());
    attempt.extend(call.keys.iter().cloned());
    attempt.extend(after.iter().map(|id| id.to_reply_bytes()));
    Some(Ok(Wait {
        call,
        after,
        attempt,
    }))
}

/// Whether one of `keys` may now hold an entry after `after` (a local,
/// non-linearizable look that spares a read attempt after a wake-up that
/// brought nothing new). A Legacy stream, whose meta record does not hold
/// its last id, always may.
pub fn may_have_new(engine: &Engine, keys: &[Vec<u8>], after: &[StreamId], now: i64) -> bool {
    let view = engine.read_view();
    keys.iter()
        .zip(after)
        .any(|(key, gt)| match Stream::lookup(&view, key, now) {
            Ok(Some(s)) if s.format() == Format::Legacy => true,
            Ok(Some(s)) => s.info.length > 0 && s.info.last_id() > *gt,
            Ok(None) => false,
            // Let the attempt report it.
            Err(_) => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::*;
    use rampart_proto::errors;

    #[test]
    fn parses_options_and_keys() {
        let call = parse(&argv("COUNT 2 BLOCK 0 STREAMS a b $ 0"), 0).unwrap();
        assert_eq!(call.count, 2);
        assert_eq!(call.block, Some(None));
        assert_eq!(call.keys, argv("a b"));
        assert_eq!(call.ids, argv("$ 0"));
        let call = parse(&argv("block 5 count -3 streams STREAMS 1"), 0).unwrap();
        assert_eq!((call.count, call.block), (0, Some(Some(5))));
        assert_eq!(call.keys, argv("STREAMS"));
        let err = |t: &str| match parse(&argv(t), 0) {
            Err(CmdError::Redis(e)) => e,
            other => panic!("{t}: {other:?}"),
        };
        assert!(err("STREAMS a b c").starts_with("ERR Unbalanced 'xread'"));
        assert_eq!(err("COUNT 1 a 0"), errors::SYNTAX);
        assert_eq!(err("BLOCK -1 STREAMS a 0"), "ERR timeout is negative");
        assert_eq!(
            err("BLOCK x STREAMS a 0"),
            "ERR timeout is not an integer or out of range"
        );
        assert!(err("GROUP g c STREAMS a 0").contains("only supported by XREADGROUP"));
    }

    #[test]
    fn reads_only_newer_entries_and_resolves_dollar() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("XADD a 1-1 f 1", "\"1-1\""),
                ("XADD a 2-1 f 2", "\"2-1\""),
                ("XADD b 5-0 g 1", "\"5-0\""),
                (
                    "XREAD COUNT 1 STREAMS a b nokey 1-1 0 0",
                    "[[\"a\", [[\"2-1\", [\"f\", \"2\"]]]], [\"b\", [[\"5-0\", [\"g\", \"1\"]]]]]",
                ),
                ("XREAD STREAMS a $", "nil"),
                ("XREAD BLOCK 10 STREAMS a 2-1", "nil"),
                ("XREAD STREAMS a >", "-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."),
                ("SET s x", "+OK"),
                ("XREAD STREAMS a s 0 x", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
                ("XREAD STREAMS a s x 0", "-ERR Invalid stream ID specified as stream command argument"),
            ],
        );
        let view = node.engine.read_view();
        let wait = resolve_for_wait(&view, &argv("XREAD BLOCK 0 COUNT 3 STREAMS a nokey $ $"), 0)
            .unwrap()
            .unwrap();
        assert_eq!(wait.attempt, argv("XREAD COUNT 3 STREAMS a nokey 2-1 0-0"));
        assert_eq!(wait.after, vec![StreamId::new(2, 1), StreamId::MIN]);
        assert!(!may_have_new(&node.engine, &wait.call.keys, &wait.after, 0));
        node.run(0, "XADD a 3-0 f 3");
        assert!(may_have_new(&node.engine, &wait.call.keys, &wait.after, 0));
        assert!(resolve_for_wait(&view, &argv("XREAD STREAMS a $"), 0).is_none());
    }
}
