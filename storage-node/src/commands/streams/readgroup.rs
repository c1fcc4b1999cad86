//! XREADGROUP: one non-blocking attempt (`exec::blocking` waits and
//! retries for BLOCK). `>` delivers entries after the group's last id and
//! records them in the PEL; an explicit id re-reads the consumer's own
//! pending entries.

use rampart_proto::{reply, Reply};

use super::groups::{
    advance_group, apply_pending, corrupt, parse_strict_id, quote, reopen, EntryLookup,
};
use super::id::StreamId;
use super::layout::{entry_reply, PendingRecord, Stream};
use super::legacy;
use super::pel::{self, GroupEdit};
use crate::commands::{CmdError, CmdResult};
use crate::engine::meta::ValueType;
use crate::engine::{live_meta, DataRead, Txn};

pub use rampart_proto::parse::streams::ReadGroupArgs;

/// Parses XREADGROUP's arguments (after the command name) like Redis's
/// `xreadCommand` (`rampart_proto::parse::streams::readgroup`).
pub fn parse_readgroup(args: &[Vec<u8>], now: i64) -> Result<ReadGroupArgs<'_>, CmdError> {
    Ok(rampart_proto::parse::streams::readgroup(args, now)?)
}

/// Redis 7's answer to an XREADGROUP blocked on a stream that was deleted
/// or overwritten by another type.
pub const KEY_GONE: &str = "UNBLOCKED the stream key no longer exists";
/// ... and to one whose consumer group was destroyed.
pub const GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";

/// Whether an XREADGROUP blocked on `keys` with `group` must stop waiting,
/// and with which error: a key is gone (or holds another type), or the
/// group is. `None` while every stream still has the group, so the wait
/// goes on (Redis ends it the same way instead of leaving the client
/// waiting for entries that cannot come).
pub fn blocked_read_ended<R: DataRead + ?Sized>(
    r: &R,
    keys: &[Vec<u8>],
    group: &[u8],
    now: i64,
) -> Result<Option<Reply>, CmdError> {
    for key in keys {
        if !live_meta(r, key, now)?.is_some_and(|meta| meta.kind == ValueType::Stream) {
            return Ok(Some(reply::error(KEY_GONE)));
        }
        let has_group = legacy::with_readable(r, key, now, |_, stream| {
            Ok(stream.is_some_and(|s| s.info.group(group).is_some()))
        })?;
        if !has_group {
            return Ok(Some(reply::error(GROUP_GONE)));
        }
    }
    Ok(None)
}

/// `>` is encoded as the maximum id, as Redis does (so an explicit maximum
/// id also means "new entries").
const NEW_ENTRIES: StreamId = StreamId::MAX;

/// XREADGROUP, one non-blocking attempt: serves what is there now. When
/// nothing can be served (only `>` streams without new entries) the reply
/// is a null array, which the blocking machinery takes as "wait" for
/// BLOCK (it owns the waiting; BLOCK is parsed here but never waits).
pub fn xreadgroup(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let parsed = parse_readgroup(args, now)?;
    let group = parsed.group;
    // Every stream is checked (type, group, id) before any is served.
    let mut targets = Vec::with_capacity(parsed.keys.len());
    for (key, raw_id) in parsed.keys.iter().zip(parsed.ids) {
        let stream = legacy::open_for_write(txn, key, now)?;
        if stream.is_none_or(|s| s.info.group(group).is_none()) {
            return Err(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                quote(key),
                quote(group)
            )
            .into());
        }
        let id = match raw_id.as_slice() {
            b"$" => return Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into()),
            b">" => NEW_ENTRIES,
            raw => parse_strict_id(raw)?,
        };
        targets.push((key, id));
    }
    let mut served = Vec::new();
    for (key, id) in targets {
        let mut stream = reopen(txn, key, now)?;
        let mut edit = GroupEdit::new(group);
        let (consumer, _) = edit.get_or_create(txn, &stream, parsed.consumer, now)?;
        consumer.seen_time_ms = now;
        let entries = if id == NEW_ENTRIES {
            read_new(txn, &mut stream, &mut edit, &parsed, now)?
        } else {
            Some(read_history(txn, &stream, &mut edit, &parsed, id, now)?)
        };
        // `>` that delivered moved the group: its meta changes.
        let moved = id == NEW_ENTRIES && entries.is_some();
        let delta = edit.finish(txn, &stream);
        if moved || delta != 0 {
            apply_pending(&mut stream, group, delta);
            stream.save(txn)?;
        }
        if let Some(entries) = entries {
            served.push((reply::bulk(key.clone()), reply::array(entries)));
        }
    }
    if served.is_empty() {
        return Ok(reply::null_array());
    }
    Ok(reply::keyed(served))
}

/// `>`: the entries after the group's last delivered id, delivered to the
/// consumer (PEL entries unless NOACK). `None` when there are none. Moves
/// the group in `stream.info`; the caller saves it.
fn read_new(
    txn: &mut Txn<'_>,
    stream: &mut Stream,
    edit: &mut GroupEdit,
    parsed: &ReadGroupArgs<'_>,
    now: i64,
) -> Result<Option<Vec<Reply>>, CmdError> {
    let mut group = stream
        .info
        .group(parsed.group)
        .cloned()
        .ok_or_else(|| corrupt("group checked above"))?;
    let Some(start) = group.last_id().successor() else {
        return Ok(None);
    };
    let limit = (parsed.count > 0).then_some(parsed.count);
    let entries = stream.range(&*txn, start, StreamId::MAX, false, limit)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let id = entry.id;
        advance_group(&stream.info, &mut group, id);
        if !parsed.noack {
            let record = PendingRecord {
                consumer: parsed.consumer.to_vec(),
                delivery_time_ms: now,
                delivery_count: 1,
            };
            match pel::pending(&*txn, stream, parsed.group, id)? {
                // Delivered before (the group's id was moved back with
                // SETID): the entry now belongs to this consumer.
                Some(mut old) => {
                    old.delivery_time_ms = now;
                    old.delivery_count = 1;
                    edit.reassign(txn, stream, id, &mut old, parsed.consumer)?;
                }
                None => edit.insert(txn, stream, id, &record)?,
            }
            if let Some(consumer) = edit.get(txn, stream, parsed.consumer)? {
                consumer.active_time_ms = now;
            }
        }
        out.push(entry_reply(entry));
    }
    if let Some(g) = stream.info.group_mut(parsed.group) {
        g.set_last_id(group.last_id());
        g.entries_read = group.entries_read;
    }
    Ok(Some(out))
}

/// An explicit id: the consumer's own pending entries after `after`, each
/// redelivered (delivery time now, count + 1); an entry deleted since
/// comes back as `[id, nil]`.
fn read_history(
    txn: &mut Txn<'_>,
    stream: &Stream,
    edit: &mut GroupEdit,
    parsed: &ReadGroupArgs<'_>,
    after: StreamId,
    now: i64,
) -> Result<Vec<Reply>, CmdError> {
    let Some(start) = after.successor() else {
        return Ok(Vec::new());
    };
    let limit = if parsed.count > 0 {
        parsed.count
    } else {
        usize::MAX
    };
    let ids = pel::consumer_pel_ids(
        &*txn,
        stream,
        parsed.group,
        parsed.consumer,
        start,
        StreamId::MAX,
        limit,
    )?;
    let mut entries = EntryLookup::new(stream);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match entries.get(&*txn, id)? {
            Some(entry) => {
                if let Some(mut record) = pel::pending(&*txn, stream, parsed.group, id)? {
                    record.delivery_time_ms = now;
                    record.delivery_count = record.delivery_count.saturating_add(1);
                    edit.update(txn, stream, id, &record);
                }
                out.push(entry_reply(entry));
            }
            None => out.push(reply::array(vec![
                reply::bulk(id.to_reply_bytes()),
                reply::null_array(),
            ])),
        }
    }
    Ok(out)
}
