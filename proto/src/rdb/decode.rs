//! RESTORE's side: a DUMP payload to a [`Value`].

use std::collections::{HashMap, HashSet};

use super::compact::{self, Item};
use super::io::{parse_double, Reader};
use super::types as t;
use super::{
    crc64, Consumer, PendingEntry, RdbError, Stream, StreamEntry, StreamGroup, Value, MAX_VERSION,
};
use crate::parse::streams::StreamId;

/// Footer: RDB version (2 bytes) and CRC-64 (8 bytes).
const FOOTER: usize = 10;

/// Quicklist node containers (QUICKLIST_2).
const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;

/// Stream entry flags (t_stream.c).
const ITEM_DELETED: i64 = 1;
const ITEM_SAMEFIELDS: i64 = 2;

/// Decodes a whole DUMP payload: checks its version and checksum, then
/// reads the value. Bytes between the value and the footer are ignored,
/// as Redis ignores them.
pub fn decode(payload: &[u8]) -> Result<Value, RdbError> {
    let body = verify(payload)?;
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    value(kind, &mut r)
}

/// The payload without its footer, once the footer's version is one we
/// read and its checksum matches.
fn verify(payload: &[u8]) -> Result<&[u8], RdbError> {
    if payload.len() < FOOTER {
        return Err(RdbError::VersionOrChecksum);
    }
    let body_len = payload.len() - FOOTER;
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    if version > MAX_VERSION {
        return Err(RdbError::VersionOrChecksum);
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&payload[body_len + 2..]);
    if crc64(0, &payload[..body_len + 2]) != u64::from_le_bytes(stored) {
        return Err(RdbError::VersionOrChecksum);
    }
    Ok(&payload[..body_len])
}

fn value(kind: u8, r: &mut Reader<'_>) -> Result<Value, RdbError> {
    let value = match kind {
        t::STRING => return Ok(Value::String(r.string()?)),
        t::LIST => Value::List(strings(r)?),
        t::SET => Value::Set(distinct(strings(r)?)?),
        t::ZSET | t::ZSET_2 => {
            let n = r.len()?;
            let mut out = Vec::new();
            for _ in 0..n {
                let member = r.string()?;
                let score = if kind == t::ZSET {
                    r.string_double()?
                } else {
                    r.binary_double()?
                };
                out.push((member, score));
            }
            zset(out)?
        }
        t::HASH => {
            let n = r.len()?;
            let mut out = Vec::new();
            for _ in 0..n {
                out.push((r.string()?, r.string()?));
            }
            hash(out)?
        }
        t::HASH_ZIPMAP => hash(compact::zipmap(&r.string()?)?)?,
        t::LIST_ZIPLIST => Value::List(bytes(compact::ziplist(&r.string()?)?)),
        t::SET_INTSET => Value::Set(
            compact::intset(&r.string()?)?
                .into_iter()
                .map(|n| n.to_string().into_bytes())
                .collect(),
        ),
        t::SET_LISTPACK => Value::Set(distinct(bytes(compact::listpack(&r.string()?)?))?),
        t::ZSET_ZIPLIST | t::ZSET_LISTPACK => {
            let blob = r.string()?;
            let items = if kind == t::ZSET_ZIPLIST {
                compact::ziplist(&blob)?
            } else {
                compact::listpack(&blob)?
            };
            let mut out = Vec::new();
            for (member, score) in pairs(&items)? {
                let score = match score {
                    Item::Int(n) => n as f64,
                    Item::Str(s) => parse_double(s)?,
                };
                out.push((member.to_bytes(), score));
            }
            zset(out)?
        }
        t::HASH_ZIPLIST | t::HASH_LISTPACK => {
            let blob = r.string()?;
            let items = if kind == t::HASH_ZIPLIST {
                compact::ziplist(&blob)?
            } else {
                compact::listpack(&blob)?
            };
            let out = pairs(&items)?
                .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
                .collect();
            hash(out)?
        }
        t::LIST_QUICKLIST => {
            let nodes = r.len()?;
            let mut out = Vec::new();
            for _ in 0..nodes {
                out.extend(bytes(compact::ziplist(&r.string()?)?));
            }
            Value::List(out)
        }
        t::LIST_QUICKLIST_2 => {
            let nodes = r.len()?;
            let mut out = Vec::new();
            for _ in 0..nodes {
                match r.len()? {
                    NODE_PLAIN => out.push(r.string()?),
                    NODE_PACKED => out.extend(bytes(compact::listpack(&r.string()?)?)),
                    _ => return Err(RdbError::BadFormat),
                }
            }
            Value::List(out)
        }
        t::STREAM_LISTPACKS | t::STREAM_LISTPACKS_2 | t::STREAM_LISTPACKS_3 => {
            // An empty stream is a valid value (unlike empty collections).
            return Ok(Value::Stream(Box::new(stream(kind, r)?)));
        }
        _ => return Err(RdbError::BadFormat),
    };
    // Redis refuses empty collections (RDB_LOAD_ERR_EMPTY_KEY).
    let empty = match &value {
        Value::List(v) | Value::Set(v) => v.is_empty(),
        Value::ZSet(v) => v.is_empty(),
        Value::Hash(v) => v.is_empty(),
        Value::String(_) | Value::Stream(_) => false,
    };
    if empty {
        return Err(RdbError::BadFormat);
    }
    Ok(value)
}

fn strings(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, RdbError> {
    let n = r.len()?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(r.string()?);
    }
    Ok(out)
}

fn bytes(items: Vec<Item<'_>>) -> Vec<Vec<u8>> {
    items.into_iter().map(Item::to_bytes).collect()
}

fn pairs<'i, 'a>(
    items: &'i [Item<'a>],
) -> Result<impl Iterator<Item = (Item<'a>, Item<'a>)> + 'i, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::BadFormat);
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])))
}

/// Rampart keeps one record per member or field, so duplicates (which
/// Redis refuses too) cannot be represented.
fn distinct(members: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, RdbError> {
    let mut seen = HashSet::with_capacity(members.len());
    if members.iter().all(|m| seen.insert(m.as_slice())) {
        Ok(members)
    } else {
        Err(RdbError::BadFormat)
    }
}

fn zset(items: Vec<(Vec<u8>, f64)>) -> Result<Value, RdbError> {
    let mut seen = HashSet::with_capacity(items.len());
    for (member, score) in &items {
        if score.is_nan() || !seen.insert(member.as_slice()) {
            return Err(RdbError::BadFormat);
        }
    }
    Ok(Value::ZSet(items))
}

fn hash(items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Value, RdbError> {
    let mut seen = HashSet::with_capacity(items.len());
    if items.iter().all(|(f, _)| seen.insert(f.as_slice())) {
        Ok(Value::Hash(items))
    } else {
        Err(RdbError::BadFormat)
    }
}

fn id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(r.len()?, r.len()?))
}

fn raw_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    StreamId::from_bytes(r.take(16)?).ok_or(RdbError::BadFormat)
}

fn stream(kind: u8, r: &mut Reader<'_>) -> Result<Stream, RdbError> {
    let nodes = r.len()?;
    let mut entries: Vec<StreamEntry> = Vec::new();
    for _ in 0..nodes {
        let key = r.string()?;
        let master = StreamId::from_bytes(&key).ok_or(RdbError::BadFormat)?;
        let blob = r.string()?;
        let before = entries.len();
        stream_node(master, &compact::listpack(&blob)?, &mut entries)?;
        // Ids increase across nodes as within them (rax order).
        if before > 0 && entries.len() > before && entries[before].id <= entries[before - 1].id {
            return Err(RdbError::BadFormat);
        }
    }
    let length = r.len()?;
    let last_id = id(r)?;
    let (first_id, max_deleted_id, entries_added) = if kind >= t::STREAM_LISTPACKS_2 {
        (id(r)?, id(r)?, r.len()?)
    } else {
        let first = entries.first().map_or(StreamId::MIN, |e| e.id);
        (first, StreamId::MIN, length)
    };
    // Rampart derives XLEN from its entry records: a length the entries do
    // not back cannot be kept.
    if length != entries.len() as u64 || entries.last().is_some_and(|e| e.id > last_id) {
        return Err(RdbError::BadFormat);
    }
    let group_count = r.len()?;
    let mut groups: Vec<StreamGroup> = Vec::new();
    let mut names = HashSet::new();
    for _ in 0..group_count {
        let name = r.string()?;
        if !names.insert(name.clone()) {
            return Err(RdbError::BadFormat);
        }
        let group_last = id(r)?;
        let entries_read = if kind >= t::STREAM_LISTPACKS_2 {
            r.len()? as i64
        } else {
            estimate_entries_read(&entries, last_id, length, group_last)
        };
        // The global PEL: id -> (delivery time, count, owner once known).
        let pel_size = r.len()?;
        let mut pel: HashMap<StreamId, PendingEntry> = HashMap::new();
        for _ in 0..pel_size {
            let pid = raw_id(r)?;
            let delivery_time_ms = r.millis()?;
            let delivery_count = r.len()?;
            let entry = PendingEntry {
                id: pid,
                consumer: Vec::new(),
                delivery_time_ms,
                delivery_count,
            };
            if pel.insert(pid, entry).is_some() {
                return Err(RdbError::BadFormat);
            }
        }
        let consumer_count = r.len()?;
        let mut consumers: Vec<Consumer> = Vec::new();
        let mut consumer_names = HashSet::new();
        let mut owned = 0usize;
        for _ in 0..consumer_count {
            let cname = r.string()?;
            if !consumer_names.insert(cname.clone()) {
                return Err(RdbError::BadFormat);
            }
            let seen_time_ms = r.millis()?;
            let active_time_ms = if kind >= t::STREAM_LISTPACKS_3 {
                r.millis()?
            } else {
                seen_time_ms
            };
            let own = r.len()?;
            for _ in 0..own {
                let pid = raw_id(r)?;
                let nack = pel.get_mut(&pid).ok_or(RdbError::BadFormat)?;
                if !nack.consumer.is_empty() {
                    return Err(RdbError::BadFormat);
                }
                nack.consumer = cname.clone();
                owned += 1;
            }
            consumers.push(Consumer {
                name: cname,
                seen_time_ms,
                active_time_ms,
            });
        }
        // Every PEL entry has an owner in Redis (its deep sanitization
        // checks it); Rampart's PEL records name theirs.
        if owned != pel.len() {
            return Err(RdbError::BadFormat);
        }
        let mut pending: Vec<PendingEntry> = pel.into_values().collect();
        pending.sort_by_key(|p| p.id);
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        groups.push(StreamGroup {
            name,
            last_id: group_last,
            entries_read,
            pending,
            consumers,
        });
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Stream {
        entries,
        last_id,
        first_id,
        max_deleted_id,
        entries_added,
        groups,
    })
}

/// Entries read by a group, for payloads older than Redis 7.0 that do not
/// carry it: known only at the ends of a stream that never lost entries
/// (as streamEstimateDistanceFromFirstEverEntry), else unknown (-1).
fn estimate_entries_read(
    entries: &[StreamEntry],
    last_id: StreamId,
    length: u64,
    group_last: StreamId,
) -> i64 {
    if length == 0 && group_last <= last_id {
        return 0;
    }
    if group_last == last_id {
        return length as i64;
    }
    if entries.first().is_some_and(|e| group_last < e.id) {
        return 0;
    }
    -1
}

/// Appends the live entries of one stream node listpack: a master entry
/// (`count, deleted, n, field_1..field_n, 0`) and then, per entry,
/// `flags, ms-diff, seq-diff, [n, field, value, ...] | [value, ...],
/// lp-count`, the values alone when the entry has the master's fields.
fn stream_node(
    master: StreamId,
    items: &[Item<'_>],
    out: &mut Vec<StreamEntry>,
) -> Result<(), RdbError> {
    let mut it = items.iter().copied();
    let mut next = || it.next().ok_or(RdbError::BadFormat);
    let count = next()?.as_int()?;
    let deleted = next()?.as_int()?;
    let master_fields_len = usize::try_from(next()?.as_int()?).map_err(|_| RdbError::BadFormat)?;
    if master_fields_len > items.len() {
        return Err(RdbError::BadFormat);
    }
    let mut master_fields = Vec::with_capacity(master_fields_len);
    for _ in 0..master_fields_len {
        master_fields.push(next()?.to_bytes());
    }
    if next()?.as_int()? != 0 {
        return Err(RdbError::BadFormat);
    }
    let (mut live, mut dead) = (0i64, 0i64);
    let mut last: Option<StreamId> = out.last().map(|e| e.id);
    let mut it = items[master_fields_len + 4..].iter().copied().peekable();
    while it.peek().is_some() {
        let mut next = || it.next().ok_or(RdbError::BadFormat);
        let flags = next()?.as_int()?;
        let ms_diff = next()?.as_int()?;
        let seq_diff = next()?.as_int()?;
        // Diffs are two's-complement offsets from the master id, as
        // Redis adds them in unsigned arithmetic.
        let id = StreamId::new(
            master.ms.wrapping_add(ms_diff as u64),
            master.seq.wrapping_add(seq_diff as u64),
        );
        let mut field_values = Vec::new();
        let lp_count = if flags & ITEM_SAMEFIELDS != 0 {
            for field in &master_fields {
                field_values.push(field.clone());
                field_values.push(next()?.to_bytes());
            }
            master_fields.len() as i64 + 3
        } else {
            let n = next()?.as_int()?;
            if n < 0 || n as usize > items.len() {
                return Err(RdbError::BadFormat);
            }
            for _ in 0..2 * n {
                field_values.push(next()?.to_bytes());
            }
            2 * n + 4
        };
        if next()?.as_int()? != lp_count {
            return Err(RdbError::BadFormat);
        }
        if flags & ITEM_DELETED != 0 {
            dead += 1;
            continue;
        }
        if field_values.is_empty() || last.is_some_and(|l| id <= l) {
            return Err(RdbError::BadFormat);
        }
        last = Some(id);
        live += 1;
        out.push(StreamEntry { id, field_values });
    }
    if live != count || dead != deleted || (live == 0 && dead == 0) {
        return Err(RdbError::BadFormat);
    }
    Ok(())
}
