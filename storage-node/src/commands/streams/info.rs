//! XINFO STREAM [FULL], XINFO HELP, and the dispatch of XINFO GROUPS /
//! CONSUMERS to `groups`.
//!
//! `radix-tree-keys` and `radix-tree-nodes` describe Redis's in-memory
//! radix tree of 100-entry listpacks, which Rampart does not have. They are
//! reported as that tree would roughly be for the stream's length:
//! keys = ceil(length / 100) and nodes = keys + 1 (Redis's numbers for
//! streams built by appends only: 0 and 1 when empty, 1 and 2 up to 100
//! entries), so tools that read them see plausible values.

use prost::Message;
use rampart_proto::args::parse_i64;
use rampart_proto::{errors, reply, Reply};

use super::groups::{self, group_lag};
use super::id::StreamId;
use super::layout::{entry_reply, ConsumerRecord, GroupMeta, PendingRecord, Stream};
use super::legacy;
use crate::commands::{CmdError, CmdResult};
use crate::engine::{keys, DataRead, EngineError};

const HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

/// Entries per listpack node in Redis (for the radix-tree estimates).
const NODE_ENTRIES: u64 = 100;

fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

/// XINFO STREAM|GROUPS|CONSUMERS|HELP ...
pub fn xinfo<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let sub_raw = &args[0];
    let sub = String::from_utf8_lossy(sub_raw).to_ascii_lowercase();
    // Subcommand arities as Redis's command table has them (`xinfo|stream`
    // is -3: at least a key).
    let arity_ok = match sub.as_str() {
        "stream" => args.len() >= 2,
        "groups" => args.len() == 2,
        "consumers" => args.len() == 3,
        "help" => args.len() == 1,
        _ => return Err(errors::unknown_subcommand("xinfo", sub_raw).into()),
    };
    if !arity_ok {
        return Err(errors::wrong_arity(&format!("xinfo|{sub}")).into());
    }
    match sub.as_str() {
        "help" => Ok(reply::array(
            HELP.iter().map(|l| reply::status(*l)).collect(),
        )),
        "groups" => groups::xinfo_groups(r, &args[1..], now),
        "consumers" => groups::xinfo_consumers(r, &args[1..], now),
        _ => xinfo_stream(r, &args[1..], sub_raw, now),
    }
}

/// `key [FULL [COUNT count]]`; `sub_raw` is the subcommand as typed (for
/// Redis's syntax error text).
fn xinfo_stream<R: DataRead + ?Sized>(
    r: &R,
    args: &[Vec<u8>],
    sub_raw: &[u8],
    now: i64,
) -> CmdResult {
    let syntax = || -> CmdError {
        format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(sub_raw)
        )
        .into()
    };
    let opts = &args[1..];
    // `None`: the summary form; `Some(count)`: FULL (0 = everything).
    let full: Option<u64> = match opts.len() {
        0 => None,
        1 | 3 => {
            if !opts[0].eq_ignore_ascii_case(b"full") {
                return Err(syntax());
            }
            match opts.get(1..) {
                Some([word, count]) => {
                    if !word.eq_ignore_ascii_case(b"count") {
                        return Err(syntax());
                    }
                    let n = parse_i64(count).ok_or(errors::NOT_INTEGER)?;
                    // Redis turns a negative COUNT into the default.
                    Some(if n < 0 { 10 } else { n as u64 })
                }
                _ => Some(10),
            }
        }
        _ => return Err(syntax()),
    };
    legacy::with_readable(r, &args[0], now, |r, stream| {
        let Some(stream) = stream else {
            return Err(errors::NO_SUCH_KEY.into());
        };
        let info = &stream.info;
        let mut fields = vec![
            ("length", reply::integer(info.length as i64)),
            (
                "radix-tree-keys",
                reply::integer(info.length.div_ceil(NODE_ENTRIES) as i64),
            ),
            (
                "radix-tree-nodes",
                reply::integer((info.length.div_ceil(NODE_ENTRIES) + 1) as i64),
            ),
            ("last-generated-id", id_reply(info.last_id())),
            ("max-deleted-entry-id", id_reply(info.max_deleted_id())),
            ("entries-added", reply::integer(info.entries_added as i64)),
            ("recorded-first-entry-id", id_reply(info.first_id())),
        ];
        match full {
            None => {
                let edge = |rev| -> Result<Reply, CmdError> {
                    Ok(stream
                        .edge_entry(r, rev)?
                        .map_or_else(reply::null, entry_reply))
                };
                fields.push(("groups", reply::integer(info.groups.len() as i64)));
                fields.push(("first-entry", edge(false)?));
                fields.push(("last-entry", edge(true)?));
            }
            Some(count) => {
                let limit = (count > 0).then(|| usize::try_from(count).unwrap_or(usize::MAX));
                let entries = stream.range(r, StreamId::MIN, StreamId::MAX, false, limit)?;
                fields.push((
                    "entries",
                    reply::array(entries.into_iter().map(entry_reply).collect()),
                ));
                let groups = info
                    .groups
                    .iter()
                    .map(|g| group_full(r, stream, g, limit))
                    .collect::<Result<Vec<_>, _>>()?;
                fields.push(("groups", reply::array(groups)));
            }
        }
        Ok(reply::map(
            fields
                .into_iter()
                .map(|(k, v)| (reply::bulk(k), v))
                .collect(),
        ))
    })
}

fn id_reply(id: StreamId) -> Reply {
    reply::bulk(id.to_reply_bytes())
}

/// One group of XINFO STREAM FULL: its fields, PEL and consumers (each
/// list at most `limit` long when given).
fn group_full<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &GroupMeta,
    limit: Option<usize>,
) -> Result<Reply, CmdError> {
    let name = group.name.as_slice();
    let limit = limit.unwrap_or(usize::MAX);
    let pel_prefix = stream.pending_prefix(name);
    let mut pel = Vec::new();
    let mut failed = None;
    under(r, &pel_prefix, &mut |suffix, value| {
        match (StreamId::from_bytes(suffix), PendingRecord::decode(value)) {
            (Some(id), Ok(p)) => pel.push(reply::array(vec![
                id_reply(id),
                reply::bulk(p.consumer),
                reply::integer(p.delivery_time_ms),
                reply::integer(p.delivery_count as i64),
            ])),
            _ => failed = Some(corrupt("undecodable PEL record")),
        }
        failed.is_none() && pel.len() < limit
    })?;
    if let Some(err) = failed {
        return Err(err);
    }
    let mut consumers = Vec::new();
    under(r, &stream.consumer_prefix(name), &mut |suffix, value| {
        match ConsumerRecord::decode(value) {
            Ok(c) => consumers.push((suffix.to_vec(), c)),
            Err(_) => failed = Some(corrupt("undecodable consumer record")),
        }
        failed.is_none()
    })?;
    if let Some(err) = failed {
        return Err(err);
    }
    let consumers = consumers
        .into_iter()
        .map(|(consumer, c)| {
            let pending = consumer_pel(r, stream, name, &consumer, limit)?;
            Ok(reply::map(vec![
                (reply::bulk("name"), reply::bulk(consumer)),
                (reply::bulk("seen-time"), reply::integer(c.seen_time_ms)),
                (reply::bulk("active-time"), reply::integer(c.active_time_ms)),
                (reply::bulk("pel-count"), reply::integer(c.pending as i64)),
                (reply::bulk("pending"), reply::array(pending)),
            ]))
        })
        .collect::<Result<Vec<_>, CmdError>>()?;
    let entries_read = if group.entries_read >= 0 {
        reply::integer(group.entries_read)
    } else {
        reply::null()
    };
    let lag = group_lag(&stream.info, group).map_or_else(reply::null, reply::integer);
    Ok(reply::map(vec![
        (reply::bulk("name"), reply::bulk(name.to_vec())),
        (reply::bulk("last-delivered-id"), id_reply(group.last_id())),
        (reply::bulk("entries-read"), entries_read),
        (reply::bulk("lag"), lag),
        (
            reply::bulk("pel-count"),
            reply::integer(group.pending as i64),
        ),
        (reply::bulk("pending"), reply::array(pel)),
        (reply::bulk("consumers"), reply::array(consumers)),
    ]))
}

/// A consumer's PEL entries `[id, delivery time, delivery count]`, at most
/// `limit`, from its PEL index and the group's PEL records.
fn consumer_pel<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    consumer: &[u8],
    limit: usize,
) -> Result<Vec<Reply>, CmdError> {
    let mut ids = Vec::new();
    let mut failed = false;
    under(
        r,
        &stream.consumer_pel_prefix(group, consumer),
        &mut |suffix, _| {
            match StreamId::from_bytes(suffix) {
                Some(id) => ids.push(id),
                None => failed = true,
            }
            !failed && ids.len() < limit
        },
    )?;
    if failed {
        return Err(corrupt("bad consumer PEL key"));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(raw) = r.get(&stream.pending_key(group, id))? else {
            continue;
        };
        let p =
            PendingRecord::decode(raw.as_slice()).map_err(|_| corrupt("undecodable PEL record"))?;
        out.push(reply::array(vec![
            id_reply(id),
            reply::integer(p.delivery_time_ms),
            reply::integer(p.delivery_count as i64),
        ]));
    }
    Ok(out)
}

/// Calls `f(suffix, value)` for each record under `prefix` until it
/// returns false.
fn under<R: DataRead + ?Sized>(
    r: &R,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), CmdError> {
    let Some(end) = keys::prefix_end(prefix) else {
        return Ok(());
    };
    r.for_each(prefix, &end, &mut |k, v| f(&k[prefix.len()..], v))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::streams::layout::StreamMeta;
    use crate::commands::test_support::*;

    #[test]
    fn lag_follows_redis_rules() {
        let mut s = StreamMeta::empty();
        let mut g = GroupMeta {
            name: b"g".to_vec(),
            last_ms: 0,
            last_seq: 0,
            entries_read: 0,
            pending: 0,
        };
        assert_eq!(group_lag(&s, &g), Some(0));
        s.entries_added = 5;
        s.length = 5;
        s.set_first_id(StreamId::new(1, 0));
        s.set_last_id(StreamId::new(5, 0));
        g.entries_read = 2;
        g.set_last_id(StreamId::new(2, 0));
        assert_eq!(group_lag(&s, &g), Some(3));
        // A deletion after the group's position: the counter is not trusted.
        s.set_max_deleted_id(StreamId::new(3, 0));
        s.length = 4;
        assert_eq!(group_lag(&s, &g), None);
        g.set_last_id(StreamId::new(5, 0));
        g.entries_read = 5;
        assert_eq!(group_lag(&s, &g), Some(0));
        g.entries_read = -1;
        g.set_last_id(StreamId::MIN);
        s.set_max_deleted_id(StreamId::MIN);
        assert_eq!(group_lag(&s, &g), Some(4));
    }

    #[test]
    fn stream_summary_and_full() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                ("XINFO STREAM s", "-ERR no such key"),
                ("XADD s 1-1 a 1", "\"1-1\""),
                ("XADD s 2-1 b 2", "\"2-1\""),
                ("XDEL s 1-1", ":1"),
                (
                    "XINFO STREAM s",
                    "[\"length\", :1, \"radix-tree-keys\", :1, \"radix-tree-nodes\", :2, \"last-generated-id\", \"2-1\", \"max-deleted-entry-id\", \"1-1\", \"entries-added\", :2, \"recorded-first-entry-id\", \"2-1\", \"groups\", :0, \"first-entry\", [\"2-1\", [\"b\", \"2\"]], \"last-entry\", [\"2-1\", [\"b\", \"2\"]]]",
                ),
                (
                    "XINFO STREAM s FULL COUNT 0",
                    "[\"length\", :1, \"radix-tree-keys\", :1, \"radix-tree-nodes\", :2, \"last-generated-id\", \"2-1\", \"max-deleted-entry-id\", \"1-1\", \"entries-added\", :2, \"recorded-first-entry-id\", \"2-1\", \"entries\", [[\"2-1\", [\"b\", \"2\"]]], \"groups\", []]",
                ),
                ("XINFO STREAM s FULL COUNT", "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP."),
                ("XINFO STREAM s fuller", "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP."),
                ("XINFO foo s", "-ERR unknown subcommand 'foo'. Try XINFO HELP."),
                ("XINFO STREAM", "-ERR wrong number of arguments for 'xinfo|stream' command"),
                ("XINFO HELP x", "-ERR wrong number of arguments for 'xinfo|help' command"),
            ],
        );
        assert!(show(&node.run(0, "XINFO HELP")).starts_with("[+XINFO <subcommand>"));
    }
}
