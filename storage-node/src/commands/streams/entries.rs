//! XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID.
//!
//! Trimming: exact trimming (`MAXLEN n`, `MINID id`, or with `=`) removes
//! exactly the entries asked for. Approximate trimming (`~`) removes only
//! whole groups of [`APPROX_NODE`] oldest entries, the way Redis removes
//! only whole radix-tree nodes (100 entries each by default), and at most
//! `LIMIT` entries (default 10,000, 0 = no limit), so a client sees the same
//! bounds as with Redis: after `XADD ... MAXLEN ~ n` the length is in
//! `[n, n + 99]`.

use rampart_proto::args::parse_i64;
use rampart_proto::{errors, reply};

pub use rampart_proto::parse::streams::APPROX_NODE;
use rampart_proto::parse::streams::{AddOrTrim, Trim, TrimTo};

use super::id::{parse_range_bound, AddId, RangeEnd, StreamId};
use super::layout::{entry_reply, Stream};
use super::legacy;
use crate::commands::{CmdError, CmdResult};
use crate::engine::{DataRead, Txn};

const ID_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";

/// A strict stream id (`-` and `+` are not ids here), as XDEL, XSETID,
/// MINID and XREAD take them.
pub(crate) fn parse_strict_id(raw: &[u8]) -> Result<StreamId, CmdError> {
    Ok(rampart_proto::parse::streams::parse_strict_id(raw)?)
}

fn eq(raw: &[u8], word: &str) -> bool {
    raw.eq_ignore_ascii_case(word.as_bytes())
}

fn parse_add_or_trim(args: &[Vec<u8>], xadd: bool) -> Result<AddOrTrim, CmdError> {
    Ok(rampart_proto::parse::streams::add_or_trim(args, xadd)?)
}

/// The id XADD gives the new entry, or its error. `now` is the leader's
/// clock from the Raft entry, so every replica computes the same id.
fn next_id(last: StreamId, requested: AddId, now: i64) -> Result<StreamId, CmdError> {
    let id = match requested {
        AddId::Auto => {
            let now = now.max(0) as u64;
            if now > last.ms {
                StreamId::new(now, 0)
            } else {
                // The clock went back or did not move: keep ids monotonic.
                last.successor().ok_or(EXHAUSTED)?
            }
        }
        AddId::AutoSeq(ms) if ms == last.ms => {
            if last.seq == u64::MAX {
                return Err(ID_TOO_SMALL.into());
            }
            StreamId::new(ms, last.seq + 1)
        }
        AddId::AutoSeq(ms) => StreamId::new(ms, 0),
        AddId::Explicit(id) => id,
    };
    if id <= last {
        return Err(ID_TOO_SMALL.into());
    }
    Ok(id)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
pub fn xadd(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let parsed = parse_add_or_trim(args, true)?;
    let Some((requested, fields_at)) = parsed.id else {
        return Err(errors::wrong_arity("xadd").into());
    };
    let fields = &args[fields_at.min(args.len())..];
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return Err(errors::wrong_arity("xadd").into());
    }
    if requested == AddId::Explicit(StreamId::MIN) {
        return Err(ID_ZERO.into());
    }
    let key = &args[0];
    let mut stream = match legacy::open_for_write(txn, key, now)? {
        Some(stream) => stream,
        None if parsed.nomkstream => return Ok(reply::null()),
        None => Stream::create(txn, key)?,
    };
    let last = stream.info.last_id();
    if last == StreamId::MAX {
        return Err(EXHAUSTED.into());
    }
    let id = next_id(last, requested, now)?;
    stream.put_entry(txn, id, fields.to_vec());
    let info = &mut stream.info;
    info.length += 1;
    info.entries_added += 1;
    info.set_last_id(id);
    if info.length == 1 {
        info.set_first_id(id);
    }
    if let Some(trim) = parsed.trim {
        trim_stream(txn, &mut stream, trim)?;
    }
    stream.save(txn)?;
    Ok(reply::bulk(id.to_reply_bytes()))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let parsed = parse_add_or_trim(args, false)?;
    let Some(trim) = parsed.trim else {
        return Err(errors::SYNTAX.into());
    };
    let Some(mut stream) = legacy::open_for_write(txn, &args[0], now)? else {
        return Ok(reply::integer(0));
    };
    let removed = trim_stream(txn, &mut stream, trim)?;
    if removed > 0 {
        stream.save(txn)?;
    }
    Ok(reply::integer(removed as i64))
}

/// How many of the `oldest` candidate entries a trim removes: all of
/// them when exact, whole [`APPROX_NODE`] groups when approximate, and
/// never more than the limit.
fn trim_count(candidates: u64, trim: Trim) -> u64 {
    let mut n = candidates;
    if trim.limit > 0 {
        n = n.min(trim.limit);
    }
    if trim.approx {
        n -= n % APPROX_NODE;
    }
    n
}

/// Removes the oldest entries as `trim` asks; returns how many. Updates
/// length and first id (not max-deleted: Redis counts only XDEL's
/// deletions there). The caller saves the meta record.
pub(crate) fn trim_stream(
    txn: &mut Txn<'_>,
    stream: &mut Stream,
    trim: Trim,
) -> Result<u64, CmdError> {
    let length = stream.info.length;
    // The newest id a trim may remove, and the most it may remove.
    let (upper, most) = match trim.to {
        TrimTo::MaxLen(max) => (StreamId::MAX, trim_count(length.saturating_sub(max), trim)),
        TrimTo::MinId(min) => match min.predecessor() {
            Some(upper) => (
                upper,
                trim_count(
                    length,
                    Trim {
                        approx: false,
                        ..trim
                    },
                ),
            ),
            None => return Ok(0),
        },
    };
    if most == 0 {
        return Ok(0);
    }
    let mut ids: Vec<StreamId> = stream
        .range(&*txn, StreamId::MIN, upper, false, Some(most as usize))?
        .into_iter()
        .map(|e| e.id)
        .collect();
    if let TrimTo::MinId(_) = trim.to {
        // Only whole groups of the entries below MINID.
        let keep = trim_count(ids.len() as u64, trim) as usize;
        ids.truncate(keep);
    }
    let Some(&newest) = ids.last() else {
        return Ok(0);
    };
    let interval = stream.info.legacy_interval();
    let mut in_suffix = Vec::new();
    for id in &ids {
        match interval {
            Some((first, last)) if first <= *id && *id <= last => in_suffix.push(*id),
            _ => txn.delete(stream.entry_key(*id)),
        }
    }
    if !in_suffix.is_empty() {
        legacy::suffix_remove(txn, stream, &in_suffix)?;
    }
    let removed = ids.len() as u64;
    stream.info.length = length.saturating_sub(removed);
    let first = match newest.successor() {
        Some(next) if stream.info.length > 0 => stream
            .range(&*txn, next, StreamId::MAX, false, Some(1))?
            .first()
            .map_or(StreamId::MIN, |e| e.id),
        _ => StreamId::MIN,
    };
    stream.info.set_first_id(first);
    Ok(removed)
}

/// XLEN key
pub fn xlen<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    legacy::with_readable(r, &args[0], now, |_, stream| {
        Ok(reply::integer(stream.map_or(0, |s| s.info.length as i64)))
    })
}

/// XRANGE key start end [COUNT count] / XREVRANGE key end start [COUNT count]
pub fn xrange<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64, rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev {
        (&args[2], &args[1])
    } else {
        (&args[1], &args[2])
    };
    let start = parse_range_bound(start_arg, RangeEnd::Start)?;
    let end = parse_range_bound(end_arg, RangeEnd::End)?;
    let mut count: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        if eq(&args[i], "count") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            count = Some(n.max(0));
            i += 2;
        } else {
            return Err(errors::SYNTAX.into());
        }
    }
    legacy::with_readable(r, &args[0], now, |r, stream| {
        let Some(stream) = stream else {
            return Ok(reply::array(Vec::new()));
        };
        // Redis answers COUNT 0 (and a negative COUNT) with a null array.
        if count == Some(0) {
            return Ok(reply::null_array());
        }
        let limit = count.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let entries = stream.range(r, start, end, rev, limit)?;
        Ok(reply::array(entries.into_iter().map(entry_reply).collect()))
    })
}

/// XDEL key id [id ...]
pub fn xdel(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let key = &args[0];
    // Redis looks the key up before it parses the ids.
    if Stream::lookup(&*txn, key, now)?.is_none() {
        return Ok(reply::integer(0));
    }
    let ids = args[1..]
        .iter()
        .map(|raw| parse_strict_id(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(mut stream) = legacy::open_for_write(txn, key, now)? else {
        return Ok(reply::integer(0));
    };
    let mut deleted = 0;
    for id in ids {
        if stream.delete_entry(txn, id)? {
            deleted += 1;
        }
    }
    if deleted > 0 {
        stream.save(txn)?;
    }
    Ok(reply::integer(deleted))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let id = parse_strict_id(&args[1])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 2;
    while i < args.len() {
        let more = i + 1 < args.len();
        if eq(&args[i], "entriesadded") && more {
            let n = parse_i64(&args[i + 1]).ok_or(errors::NOT_INTEGER)?;
            if n < 0 {
                return Err("ERR entries_added must be positive".into());
            }
            entries_added = Some(n as u64);
        } else if eq(&args[i], "maxdeletedid") && more {
            max_deleted = parse_strict_id(&args[i + 1])?;
            if id < max_deleted {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
        } else {
            return Err(errors::SYNTAX.into());
        }
        i += 2;
    }
    let Some(mut stream) = legacy::open_for_write(txn, &args[0], now)? else {
        return Err(errors::NO_SUCH_KEY.into());
    };
    if id < stream.info.max_deleted_id() {
        return Err(
            "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id".into(),
        );
    }
    if stream.info.length > 0 {
        let top = stream
            .edge_entry(&*txn, true)?
            .map_or(StreamId::MIN, |e| e.id);
        if id < top {
            return Err(
                "ERR The ID specified in XSETID is smaller than the target stream top item".into(),
            );
        }
        if entries_added.is_some_and(|n| n < stream.info.length) {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length".into());
        }
    }
    stream.info.set_last_id(id);
    if let Some(n) = entries_added {
        stream.info.entries_added = n;
    }
    if !max_deleted.is_zero() {
        stream.info.set_max_deleted_id(max_deleted);
    }
    stream.save(txn)?;
    Ok(reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::*;
    use rampart_proto::parse::streams::{
        APPROX_DEFAULT_LIMIT, INVALID_ID, LIMIT_WITHOUT_APPROX, MAXLEN_AND_MINID,
    };

    fn argv_of(text: &str) -> Vec<Vec<u8>> {
        argv(text)
    }

    #[test]
    fn trim_options_parse_like_redis() {
        let p = |t: &str| parse_add_or_trim(&argv_of(t), true);
        let opts = p("k MAXLEN ~ 5 LIMIT 7 * f v").unwrap();
        assert_eq!(
            opts.trim,
            Some(Trim {
                to: TrimTo::MaxLen(5),
                approx: true,
                limit: 7
            })
        );
        assert_eq!(opts.id, Some((AddId::Auto, 7)));
        let opts = p("k NOMKSTREAM MINID = 3-1 12-* f v").unwrap();
        assert!(opts.nomkstream);
        assert_eq!(
            opts.trim.unwrap(),
            Trim {
                to: TrimTo::MinId(StreamId::new(3, 1)),
                approx: false,
                limit: 0
            }
        );
        assert_eq!(opts.id, Some((AddId::AutoSeq(12), 6)));
        let default_limit = p("k MAXLEN ~ 5 * f v").unwrap().trim.unwrap().limit;
        assert_eq!(default_limit, APPROX_DEFAULT_LIMIT);
        let err = |t: &str| match p(t) {
            Err(CmdError::Redis(e)) => e,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(err("k MAXLEN 5 LIMIT 1 * f v"), LIMIT_WITHOUT_APPROX);
        assert_eq!(err("k MAXLEN 1 MINID 1 * f v"), MAXLEN_AND_MINID);
        assert_eq!(
            err("k MAXLEN -1 * f v"),
            "ERR The MAXLEN argument must be >= 0."
        );
        assert_eq!(
            err("k MAXLEN ~ 1 LIMIT -1 * f v"),
            "ERR The LIMIT argument must be >= 0."
        );
        assert_eq!(err("k MAXLEN x * f v"), errors::NOT_INTEGER);
        assert_eq!(err("k MINID + * f v"), INVALID_ID);
        assert_eq!(err("k - f v"), INVALID_ID);
        let xtrim = |t: &str| parse_add_or_trim(&argv_of(t), false);
        assert!(xtrim("k FOO 1").is_err());
        assert_eq!(
            xtrim("k MINID ~ 9").unwrap().trim.unwrap().to,
            TrimTo::MinId(StreamId::new(9, 0))
        );
    }

    #[test]
    fn ids_are_monotonic_whatever_the_clock() {
        let last = StreamId::new(100, 5);
        assert_eq!(
            next_id(last, AddId::Auto, 200).unwrap(),
            StreamId::new(200, 0)
        );
        // The clock went back: last ms, next seq.
        assert_eq!(
            next_id(last, AddId::Auto, 50).unwrap(),
            StreamId::new(100, 6)
        );
        assert_eq!(
            next_id(last, AddId::Auto, 100).unwrap(),
            StreamId::new(100, 6)
        );
        assert_eq!(
            next_id(StreamId::new(7, u64::MAX), AddId::Auto, 1).unwrap(),
            StreamId::new(8, 0)
        );
        assert_eq!(
            next_id(last, AddId::AutoSeq(100), 0).unwrap(),
            StreamId::new(100, 6)
        );
        assert_eq!(
            next_id(last, AddId::AutoSeq(101), 0).unwrap(),
            StreamId::new(101, 0)
        );
        assert!(next_id(last, AddId::AutoSeq(99), 0).is_err());
        assert!(next_id(StreamId::new(5, u64::MAX), AddId::AutoSeq(5), 0).is_err());
        assert!(next_id(last, AddId::Explicit(last), 0).is_err());
        assert_eq!(
            next_id(StreamId::MIN, AddId::AutoSeq(0), 0).unwrap(),
            StreamId::new(0, 1)
        );
    }

    #[test]
    fn approximate_trims_remove_whole_groups_up_to_the_limit() {
        let t = |approx, limit| Trim {
            to: TrimTo::MaxLen(0),
            approx,
            limit,
        };
        assert_eq!(trim_count(445, t(false, 0)), 445);
        assert_eq!(trim_count(445, t(true, 10_000)), 400);
        assert_eq!(trim_count(445, t(true, 250)), 200);
        assert_eq!(trim_count(99, t(true, 0)), 0);
    }

    #[test]
    fn commands_keep_the_stream_fields() {
        let node = Node::new();
        check(
            &node,
            1_000,
            &[
                ("XADD s 1-1 a 1", "\"1-1\""),
                ("XADD s * b 2", "\"1000-0\""),
                ("XADD s 1000-* c 3", "\"1000-1\""),
                ("XADD s 5 d 4", "-ERR The ID specified in XADD is equal or smaller than the target stream top item"),
                ("XADD s 0 d 4", "-ERR The ID specified in XADD must be greater than 0-0"),
                ("XADD s * d", "-ERR wrong number of arguments for 'xadd' command"),
                ("XLEN s", ":3"),
                ("XRANGE s - + COUNT 2", "[[\"1-1\", [\"a\", \"1\"]], [\"1000-0\", [\"b\", \"2\"]]]"),
                ("XREVRANGE s + (1000-0", "[[\"1000-1\", [\"c\", \"3\"]]]"),
                ("XRANGE s - + COUNT 0", "nil"),
                ("XDEL s 1000-0 1000-0 9-9", ":1"),
                ("XTRIM s MAXLEN 1", ":1"),
                ("XRANGE s - +", "[[\"1000-1\", [\"c\", \"3\"]]]"),
                ("XSETID s 999", "-ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"),
                ("XSETID s 1000-0", "-ERR The ID specified in XSETID is smaller than the target stream top item"),
                ("XSETID s 2000 ENTRIESADDED 0", "-ERR The entries_added specified in XSETID is smaller than the target stream length"),
                ("XSETID s 2000 ENTRIESADDED 9 MAXDELETEDID 1500", "+OK"),
                ("XADD s 1999 e 5", "-ERR The ID specified in XADD is equal or smaller than the target stream top item"),
                ("XADD s * e 5", "\"2000-1\""),
                ("XADD nope NOMKSTREAM * a 1", "nil"),
                ("EXISTS nope", ":0"),
                ("XADD e MAXLEN 0 * a 1", "\"1000-0\""),
                ("XLEN e", ":0"),
                ("EXISTS e", ":1"),
            ],
        );
    }

    #[test]
    fn trims_and_deletes_reach_into_the_legacy_suffix() {
        let node = Node::new();
        let mode = legacy::MigrationMode::B { chunk: 3 };
        // An internal command: applied the way the state machine does.
        let mut txn = node.engine.txn();
        let reply =
            crate::commands::apply_write(&mut txn, &super::super::admin::settings_command(mode), 0);
        assert!(!reply.is_error(), "{reply:?}");
        node.engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        for i in 1..=10 {
            node.run(0, &format!("XADD s {i}-0 f {i}"));
        }
        check(&node, 0, &[("RAMPART.STREAMTOLEGACY s", ":10")]);
        let ids = |node: &Node| show(&node.run(0, "XRANGE s - +"));
        // Each write moves 3 entries; the rest stay in the blob.
        check(
            &node,
            0,
            &[
                ("XADD s 11-0 f 11", "\"11-0\""),
                ("RAMPART.STREAMFORMAT s", "\"mixed 7\""),
            ],
        );
        check(
            &node,
            0,
            &[
                ("XTRIM s MAXLEN 5", ":6"),
                ("XLEN s", ":5"),
                ("XDEL s 8-0", ":1"),
                (
                    "XREAD COUNT 2 STREAMS s 7-0",
                    "[[\"s\", [[\"9-0\", [\"f\", \"9\"]], [\"10-0\", [\"f\", \"10\"]]]]]",
                ),
            ],
        );
        assert_eq!(
            ids(&node),
            "[[\"7-0\", [\"f\", \"7\"]], [\"9-0\", [\"f\", \"9\"]], [\"10-0\", [\"f\", \"10\"]], [\"11-0\", [\"f\", \"11\"]]]"
        );
        let info = show(&node.run(0, "XINFO STREAM s"));
        assert!(
            info.contains("\"max-deleted-entry-id\", \"8-0\", \"entries-added\", :11, \"recorded-first-entry-id\", \"7-0\""),
            "{info}"
        );
    }

    #[test]
    fn odd_arguments_never_panic() {
        let node = Node::new();
        node.run(0, "XADD s 1-1 f v");
        let words = [
            "s",
            "*",
            "~",
            "=",
            "MAXLEN",
            "MINID",
            "LIMIT",
            "NOMKSTREAM",
            "COUNT",
            "BLOCK",
            "STREAMS",
            "FULL",
            "STREAM",
            "$",
            ">",
            "+",
            "-",
            "(1",
            "0",
            "-1",
            "1-*",
            "f",
        ];
        for name in [
            "XADD",
            "XTRIM",
            "XRANGE",
            "XREVRANGE",
            "XDEL",
            "XSETID",
            "XREAD",
            "XINFO",
            "XLEN",
        ] {
            for a in words {
                for b in words {
                    for c in words {
                        for d in ["", "v", "0"] {
                            let cmd = format!("{name} {a} {b} {c} {d}");
                            let _ = node.run(1, &cmd);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn trims_update_length_and_first_id() {
        let node = Node::new();
        for i in 1..=250 {
            node.run(0, &format!("XADD s {i}-0 f v"));
        }
        check(
            &node,
            0,
            &[
                ("XTRIM s MAXLEN ~ 100", ":100"),
                ("XLEN s", ":150"),
                ("XRANGE s - + COUNT 1", "[[\"101-0\", [\"f\", \"v\"]]]"),
                ("XTRIM s MINID ~ 200", ":0"),
                ("XTRIM s MINID 200", ":99"),
                ("XRANGE s - + COUNT 1", "[[\"200-0\", [\"f\", \"v\"]]]"),
                ("XTRIM s MAXLEN = 0", ":51"),
                ("XLEN s", ":0"),
                ("XRANGE s - +", "[]"),
            ],
        );
    }
}
