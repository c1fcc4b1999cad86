//! Consumer groups: XGROUP, XACK, XPENDING, XINFO GROUPS and CONSUMERS
//! (XREADGROUP is in `readgroup`, XCLAIM and XAUTOCLAIM in `claim`), with Redis 7.2's
//! semantics and error texts. The group's fields live in the stream's meta
//! record (`GroupMeta`), its PEL and consumers in records (`pel`).
//!
//! Writes open the stream with `legacy::open_for_write` (a legacy stream
//! takes its migration step first), reads with `legacy::with_readable`.
//! Times come from `now`: the Raft entry's leader clock in writes, the
//! read's clock in reads.

use rampart_proto::parse::streams::{GroupSub, PendingRange, XGroup};
use rampart_proto::{errors, reply, Reply};

use super::id::{parse_id, StreamId};
use super::layout::{Entry, GroupMeta, PendingRecord, Stream, StreamMeta};
use super::legacy;
use super::pel::{self, GroupEdit};
use crate::commands::{CmdError, CmdResult};
use crate::engine::{DataRead, EngineError, Txn};

pub use super::claim::{xautoclaim, xclaim};
pub use super::readgroup::xreadgroup;

/// Redis quotes names in error texts as `%s`; keep them readable and short.
pub(super) fn quote(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(128)]).into_owned()
}

/// `NOGROUP No such key 'k' or consumer group 'g'` (XPENDING, XCLAIM, XAUTOCLAIM).
pub(super) fn nogroup(key: &[u8], group: &[u8]) -> CmdError {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        quote(key),
        quote(group)
    )
    .into()
}

/// `NOGROUP No such consumer group 'g' for key name 'k'` (XGROUP, XINFO).
fn nogroup_for_key(key: &[u8], group: &[u8]) -> CmdError {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        quote(group),
        quote(key)
    )
    .into()
}

/// A strict id: `-` and `+` are not ids here (Redis's `streamParseStrictIDOrReply`).
pub(super) fn parse_strict_id(raw: &[u8]) -> Result<StreamId, CmdError> {
    Ok(rampart_proto::parse::streams::parse_strict_id(raw)?)
}

pub(super) fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

/// The stream at `key` for a write that already checked it exists.
pub(super) fn reopen(txn: &Txn<'_>, key: &[u8], now: i64) -> Result<Stream, CmdError> {
    Stream::lookup(txn, key, now)?.ok_or_else(|| corrupt("stream vanished inside a write"))
}

/// Point lookups of entries for commands that check many PEL ids
/// (history reads, XCLAIM, XAUTOCLAIM). On a Mixed stream an id inside
/// the legacy suffix's interval would decode the whole blob per lookup,
/// so the suffix interval is read once, on first need, and kept.
pub(super) struct EntryLookup<'s> {
    stream: &'s Stream,
    suffix: Option<std::collections::BTreeMap<StreamId, Entry>>,
}

impl<'s> EntryLookup<'s> {
    pub(super) fn new(stream: &'s Stream) -> EntryLookup<'s> {
        EntryLookup {
            stream,
            suffix: None,
        }
    }

    pub(super) fn get<R: DataRead + ?Sized>(
        &mut self,
        r: &R,
        id: StreamId,
    ) -> Result<Option<Entry>, CmdError> {
        let Some((first, last)) = self.stream.info.legacy_interval() else {
            return self.stream.get(r, id);
        };
        if id < first || last < id {
            return self.stream.get(r, id);
        }
        if self.suffix.is_none() {
            let entries = self.stream.range(r, first, last, false, None)?;
            self.suffix = Some(entries.into_iter().map(|e| (e.id, e)).collect());
        }
        Ok(self.suffix.as_ref().and_then(|m| m.get(&id)).cloned())
    }
}

/// Applies a [`GroupEdit`]'s PEL size change to the group's meta.
pub(super) fn apply_pending(stream: &mut Stream, group: &[u8], delta: i64) {
    if let Some(g) = stream.info.group_mut(group) {
        g.pending = g.pending.saturating_add_signed(delta);
    }
}

/// Redis's `addReplyHelp`: a header, the lines, and the HELP footer.
fn help_reply(command: &str, lines: &[&str]) -> Reply {
    let mut out = vec![reply::status(format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    out.extend(lines.iter().map(|line| reply::status(*line)));
    out.push(reply::status("HELP"));
    out.push(reply::status("    Prints this help."));
    reply::array(out)
}

// ---------------------------------------------------------------------------
// entries-read and lag (Redis 7's logical read counter)

/// Whether the stream may hold a deleted entry at or after `start`
/// (Redis's `streamRangeHasTombstones(s, start, NULL)`).
fn tombstones_from(info: &StreamMeta, start: StreamId) -> bool {
    let max_deleted = info.max_deleted_id();
    info.length > 0
        && !max_deleted.is_zero()
        && info.first_id() <= max_deleted
        && start <= max_deleted
}

/// The logical read counter of `id` (how many entries were ever added up
/// to it), when it can be known (Redis's
/// `streamEstimateDistanceFromFirstEverEntry`).
fn estimate_entries_read(info: &StreamMeta, id: StreamId) -> Option<u64> {
    if info.entries_added == 0 {
        return Some(0);
    }
    if info.length == 0 && id <= info.last_id() {
        return Some(info.entries_added);
    }
    let max_deleted = info.max_deleted_id();
    if !id.is_zero() && id < max_deleted {
        return None;
    }
    match id.cmp(&info.last_id()) {
        std::cmp::Ordering::Equal => return Some(info.entries_added),
        std::cmp::Ordering::Greater => return None,
        std::cmp::Ordering::Less => {}
    }
    let first = info.first_id();
    if max_deleted.is_zero() || max_deleted < first {
        if id < first {
            return Some(info.entries_added.saturating_sub(info.length));
        }
        if id == first {
            return Some(info.entries_added.saturating_sub(info.length) + 1);
        }
    }
    None
}

/// The group's lag (entries not delivered yet), `None` when it cannot be
/// known (XINFO shows nil). Also used by XINFO STREAM FULL.
pub fn group_lag(info: &StreamMeta, group: &GroupMeta) -> Option<i64> {
    let added = info.entries_added as i64;
    if info.entries_added == 0 || info.length == 0 {
        return Some(0);
    }
    let first = info.first_id();
    if group.last_id() < first && info.max_deleted_id() < first {
        return Some(info.length as i64);
    }
    if group.entries_read >= 0 && !tombstones_from(info, group.last_id()) {
        return Some(added - group.entries_read);
    }
    estimate_entries_read(info, group.last_id()).map(|read| added - read as i64)
}

/// The group's `entries-read` as XINFO shows it (nil when unknown).
pub fn entries_read_reply(group: &GroupMeta) -> Reply {
    if group.entries_read >= 0 {
        reply::integer(group.entries_read)
    } else {
        reply::null()
    }
}

fn lag_reply(info: &StreamMeta, group: &GroupMeta) -> Reply {
    group_lag(info, group).map_or_else(reply::null, reply::integer)
}

/// Advances the group past the delivered entry `id`, keeping its read
/// counter as Redis's `streamReplyWithRange` does.
pub(super) fn advance_group(info: &StreamMeta, group: &mut GroupMeta, id: StreamId) {
    if id <= group.last_id() {
        return;
    }
    if group.entries_read >= 0
        && group.last_id() >= info.first_id()
        && !tombstones_from(info, group.last_id())
    {
        group.entries_read += 1;
    } else if info.entries_added > 0 {
        group.entries_read = estimate_entries_read(info, id).map_or(-1, |n| n as i64);
    }
    group.set_last_id(id);
}

// ---------------------------------------------------------------------------
// XGROUP

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

const KEY_REQUIRED: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

fn xgroup_syntax(sub: &[u8]) -> CmdError {
    rampart_proto::parse::streams::xgroup_syntax(sub).into()
}

/// XGROUP CREATE/SETID/DESTROY/CREATECONSUMER/DELCONSUMER/HELP.
pub fn xgroup(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let sub_raw = &args[0];
    let XGroup {
        sub,
        mkstream,
        entries_read,
        form_ok,
    } = rampart_proto::parse::streams::xgroup(args)?;
    if sub == GroupSub::Help {
        return Ok(help_reply("XGROUP", XGROUP_HELP));
    }
    let (key, group) = (&args[1], &args[2]);

    let stream = legacy::open_for_write(txn, key, now)?;
    if !mkstream {
        let Some(stream) = &stream else {
            return Err(KEY_REQUIRED.into());
        };
        let needs_group = matches!(
            sub,
            GroupSub::SetId | GroupSub::CreateConsumer | GroupSub::DelConsumer
        );
        if needs_group && stream.info.group(group).is_none() {
            return Err(nogroup_for_key(key, group));
        }
    }
    if !form_ok {
        return Err(xgroup_syntax(sub_raw));
    }

    match sub {
        GroupSub::Create => {
            let id = if args[3] == b"$" {
                stream.as_ref().map_or(StreamId::MIN, |s| s.info.last_id())
            } else {
                parse_strict_id(&args[3])?
            };
            let mut stream = match stream {
                Some(stream) => stream,
                None => Stream::create(txn, key)?,
            };
            if stream.info.group(group).is_some() {
                return Err("BUSYGROUP Consumer Group name already exists".into());
            }
            let mut meta = GroupMeta {
                name: group.clone(),
                last_ms: 0,
                last_seq: 0,
                entries_read,
                pending: 0,
            };
            meta.set_last_id(id);
            let at = stream.info.groups.partition_point(|g| g.name < *group);
            stream.info.groups.insert(at, meta);
            stream.save(txn)?;
            Ok(reply::ok())
        }
        GroupSub::SetId => {
            let mut stream = stream.ok_or_else(|| corrupt("checked above"))?;
            let id = if args[3] == b"$" {
                stream.info.last_id()
            } else {
                parse_id(&args[3], 0)?
            };
            let g = stream
                .info
                .group_mut(group)
                .ok_or_else(|| corrupt("checked above"))?;
            g.set_last_id(id);
            g.entries_read = entries_read;
            stream.save(txn)?;
            Ok(reply::ok())
        }
        GroupSub::Destroy => {
            let mut stream = stream.ok_or_else(|| corrupt("checked above"))?;
            let Some(at) = stream.info.groups.iter().position(|g| g.name == *group) else {
                return Ok(reply::integer(0));
            };
            stream.info.groups.remove(at);
            for (start, end) in stream.group_ranges(group) {
                txn.delete_range(start, end);
            }
            stream.save(txn)?;
            Ok(reply::integer(1))
        }
        GroupSub::CreateConsumer => {
            let stream = stream.ok_or_else(|| corrupt("checked above"))?;
            let mut edit = GroupEdit::new(group);
            let (_, created) = edit.get_or_create(txn, &stream, &args[3], now)?;
            edit.finish(txn, &stream);
            Ok(reply::integer(created as i64))
        }
        GroupSub::DelConsumer => {
            let mut stream = stream.ok_or_else(|| corrupt("checked above"))?;
            let mut edit = GroupEdit::new(group);
            let pending = edit.delete_consumer(txn, &stream, &args[3])?;
            let delta = edit.finish(txn, &stream);
            if delta != 0 {
                apply_pending(&mut stream, group, delta);
                stream.save(txn)?;
            }
            Ok(reply::integer(pending.unwrap_or(0) as i64))
        }
        GroupSub::Help => Ok(help_reply("XGROUP", XGROUP_HELP)),
    }
}

// ---------------------------------------------------------------------------
// XACK

/// XACK key group id [id ...]
pub fn xack(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, group) = (&args[0], &args[1]);
    // Redis answers 0 for a missing key or group before it parses the ids.
    let ids: Result<Vec<StreamId>, CmdError> =
        args[2..].iter().map(|raw| parse_strict_id(raw)).collect();
    let Some(mut stream) = legacy::open_for_write(txn, key, now)? else {
        return Ok(reply::integer(0));
    };
    if stream.info.group(group).is_none() {
        return Ok(reply::integer(0));
    }
    let ids = ids?;
    let mut edit = GroupEdit::new(group);
    let mut acked = 0;
    for id in ids {
        if let Some(record) = pel::pending(&*txn, &stream, group, id)? {
            edit.remove(txn, &stream, id, &record)?;
            acked += 1;
        }
    }
    let delta = edit.finish(txn, &stream);
    if delta != 0 {
        apply_pending(&mut stream, group, delta);
        stream.save(txn)?;
    }
    Ok(reply::integer(acked))
}

// ---------------------------------------------------------------------------
// XPENDING

/// Parses `[[IDLE ms] start end count [consumer]]` in Redis's order
/// (`rampart_proto::parse::streams::pending_range`).
fn parse_pending_range(args: &[Vec<u8>]) -> Result<Option<PendingRange<'_>>, CmdError> {
    Ok(rampart_proto::parse::streams::pending_range(args)?)
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, group) = (&args[0], &args[1]);
    let range = parse_pending_range(args)?;
    legacy::with_readable(r, key, now, |r, stream| {
        let Some((stream, meta)) = stream.and_then(|s| s.info.group(group).map(|g| (s, g))) else {
            return Err(nogroup(key, group));
        };
        match range {
            None => pending_summary(r, stream, meta),
            Some(range) => pending_entries(r, stream, group, &range, now),
        }
    })
}

fn pending_summary<R: DataRead + ?Sized>(r: &R, stream: &Stream, group: &GroupMeta) -> CmdResult {
    let name = &group.name;
    let first = pel::pel_range(r, stream, name, StreamId::MIN, StreamId::MAX, false, 1)?;
    let last = pel::pel_range(r, stream, name, StreamId::MIN, StreamId::MAX, true, 1)?;
    let (Some((first, _)), Some((last, _))) = (first.first(), last.first()) else {
        return Ok(reply::array(vec![
            reply::integer(0),
            reply::null(),
            reply::null(),
            reply::null_array(),
        ]));
    };
    let owners = pel::consumers(r, stream, name)?
        .into_iter()
        .filter(|(_, c)| c.pending > 0)
        .map(|(consumer, c)| {
            reply::array(vec![
                reply::bulk(consumer),
                reply::bulk(c.pending.to_string()),
            ])
        })
        .collect();
    Ok(reply::array(vec![
        reply::integer(group.pending as i64),
        reply::bulk(first.to_reply_bytes()),
        reply::bulk(last.to_reply_bytes()),
        reply::array(owners),
    ]))
}

/// How many PEL records the extended XPENDING reads at a time while it
/// skips entries that are not idle enough.
const SCAN_BATCH: usize = 256;

fn pending_entries<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    range: &PendingRange<'_>,
    now: i64,
) -> CmdResult {
    let mut out = Vec::new();
    if range.count == 0 {
        return Ok(reply::array(out));
    }
    if let Some(name) = range.consumer {
        if pel::consumer(r, stream, group, name)?.is_none() {
            return Ok(reply::array(out));
        }
    }
    let mut from = range.start;
    loop {
        // Without IDLE every record read is returned, so read exactly count.
        let want = if range.min_idle != 0 {
            SCAN_BATCH
        } else {
            range.count - out.len()
        };
        let batch: Vec<(StreamId, PendingRecord)> = match range.consumer {
            None => pel::pel_range(r, stream, group, from, range.end, false, want)?,
            Some(name) => {
                let ids = pel::consumer_pel_ids(r, stream, group, name, from, range.end, want)?;
                let mut records = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(record) = pel::pending(r, stream, group, id)? {
                        records.push((id, record));
                    }
                }
                records
            }
        };
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        let full = batch.len() == want;
        for (id, record) in batch {
            let idle = now.saturating_sub(record.delivery_time_ms);
            if range.min_idle != 0 && idle < range.min_idle {
                continue;
            }
            out.push(reply::array(vec![
                reply::bulk(id.to_reply_bytes()),
                reply::bulk(record.consumer),
                reply::integer(idle.max(0)),
                reply::integer(record.delivery_count as i64),
            ]));
            if out.len() == range.count {
                return Ok(reply::array(out));
            }
        }
        match last.successor() {
            Some(next) if full => from = next,
            _ => break,
        }
    }
    Ok(reply::array(out))
}

// ---------------------------------------------------------------------------
// XINFO GROUPS / CONSUMERS

/// The stream for XINFO: `ERR no such key` when missing.
fn info_stream(stream: Option<&Stream>) -> Result<&Stream, CmdError> {
    stream.ok_or_else(|| errors::NO_SUCH_KEY.into())
}

/// XINFO GROUPS key. `args` are the arguments after the subcommand
/// (`info::xinfo` dispatches here after checking the arity).
pub fn xinfo_groups<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let [key] = args else {
        return Err(errors::wrong_arity("xinfo|groups").into());
    };
    legacy::with_readable(r, key, now, |r, stream| {
        let stream = info_stream(stream)?;
        let mut out = Vec::with_capacity(stream.info.groups.len());
        for group in &stream.info.groups {
            let consumers = pel::consumers(r, stream, &group.name)?.len();
            out.push(reply::map(vec![
                (reply::bulk("name"), reply::bulk(group.name.clone())),
                (reply::bulk("consumers"), reply::integer(consumers as i64)),
                (reply::bulk("pending"), reply::integer(group.pending as i64)),
                (
                    reply::bulk("last-delivered-id"),
                    reply::bulk(group.last_id().to_reply_bytes()),
                ),
                (reply::bulk("entries-read"), entries_read_reply(group)),
                (reply::bulk("lag"), lag_reply(&stream.info, group)),
            ]));
        }
        Ok(reply::array(out))
    })
}

/// XINFO CONSUMERS key group. `args` are the arguments after the
/// subcommand (`info::xinfo` dispatches here after checking the arity).
pub fn xinfo_consumers<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let [key, group] = args else {
        return Err(errors::wrong_arity("xinfo|consumers").into());
    };
    legacy::with_readable(r, key, now, |r, stream| {
        let stream = info_stream(stream)?;
        if stream.info.group(group).is_none() {
            return Err(nogroup_for_key(key, group));
        }
        let out = pel::consumers(r, stream, group)?
            .into_iter()
            .map(|(name, c)| {
                let inactive = if c.active_time_ms == -1 {
                    -1
                } else {
                    now.saturating_sub(c.active_time_ms)
                };
                reply::map(vec![
                    (reply::bulk("name"), reply::bulk(name)),
                    (reply::bulk("pending"), reply::integer(c.pending as i64)),
                    (
                        reply::bulk("idle"),
                        reply::integer(now.saturating_sub(c.seen_time_ms).max(0)),
                    ),
                    (reply::bulk("inactive"), reply::integer(inactive)),
                ])
            })
            .collect();
        Ok(reply::array(out))
    })
}
