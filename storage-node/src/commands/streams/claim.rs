//! XCLAIM and XAUTOCLAIM: moving pending entries to another consumer,
//! with Redis 7.2's rules (entries deleted from the stream are dropped from
//! the PEL instead of claimed; FORCE creates PEL entries; JUSTID does not
//! count as a delivery).

use rampart_proto::parse::streams::ClaimOptions;
use rampart_proto::{reply, Reply};

use super::groups::{apply_pending, nogroup, EntryLookup};
use super::id::StreamId;
use super::layout::{entry_reply, Entry, PendingRecord};
use super::legacy;
use super::pel::{self, GroupEdit};
use crate::commands::{CmdError, CmdResult};
use crate::engine::Txn;

/// Parses XCLAIM's min-idle-time, ids and options
/// (`rampart_proto::parse::streams::xclaim`).
fn parse_xclaim(
    args: &[Vec<u8>],
    now: i64,
) -> Result<(i64, Vec<StreamId>, ClaimOptions), CmdError> {
    Ok(rampart_proto::parse::streams::xclaim(args, now)?)
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
/// [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, group, consumer) = (&args[0], &args[1], &args[2]);
    // Redis reports a missing key or group before any argument error.
    let parsed = parse_xclaim(&args[3..], now);
    let Some(mut stream) = legacy::open_for_write(txn, key, now)? else {
        return Err(nogroup(key, group));
    };
    if stream.info.group(group).is_none() {
        return Err(nogroup(key, group));
    }
    let (min_idle, ids, opts) = parsed?;
    let mut moved = false;
    if let Some(g) = stream.info.group_mut(group) {
        if opts.last_id > g.last_id() {
            g.set_last_id(opts.last_id);
            moved = true;
        }
    }
    let delivery_time = opts.delivery_time.unwrap_or(now);

    let mut edit = GroupEdit::new(group);
    let (record, _) = edit.get_or_create(txn, &stream, consumer, now)?;
    record.seen_time_ms = now;
    let mut entries = EntryLookup::new(&stream);
    let mut out = Vec::new();
    for id in ids {
        let existing = pel::pending(&*txn, &stream, group, id)?;
        let Some(entry) = entries.get(&*txn, id)? else {
            // Deleted from the stream: it can never be processed, so it
            // leaves the PEL instead of being claimed.
            if let Some(record) = existing {
                edit.remove(txn, &stream, id, &record)?;
            }
            continue;
        };
        let mut record = match existing {
            Some(record) => {
                let idle = now.saturating_sub(record.delivery_time_ms);
                if min_idle > 0 && idle < min_idle {
                    continue;
                }
                record
            }
            None if opts.force => {
                // FORCE: a new PEL entry (delivery count 1, as Redis
                // creates it), then claimed below like any other.
                let record = PendingRecord {
                    consumer: consumer.clone(),
                    delivery_time_ms: now,
                    delivery_count: 1,
                };
                edit.insert(txn, &stream, id, &record)?;
                record
            }
            None => continue,
        };
        record.delivery_time_ms = delivery_time;
        match opts.retry_count {
            Some(n) => record.delivery_count = n,
            None if !opts.justid => record.delivery_count = record.delivery_count.saturating_add(1),
            None => {}
        }
        edit.reassign(txn, &stream, id, &mut record, consumer)?;
        out.push(claimed_reply(opts.justid, entry));
        if let Some(c) = edit.get(txn, &stream, consumer)? {
            c.active_time_ms = now;
        }
    }
    let delta = edit.finish(txn, &stream);
    if moved || delta != 0 {
        apply_pending(&mut stream, group, delta);
        stream.save(txn)?;
    }
    Ok(reply::array(out))
}

/// One claimed entry in the reply: its id (JUSTID) or the whole entry.
fn claimed_reply(justid: bool, entry: Entry) -> Reply {
    if justid {
        reply::bulk(entry.id.to_reply_bytes())
    } else {
        entry_reply(entry)
    }
}

/// How many PEL entries XAUTOCLAIM may examine per entry it may return
/// (Redis's `attempts_factor`): bounds the work of one call.
const ATTEMPTS_FACTOR: i64 = 10;

/// PEL records read per batch while XAUTOCLAIM scans.
const SCAN_BATCH: usize = 256;

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]
pub fn xautoclaim(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, group, consumer) = (&args[0], &args[1], &args[2]);
    let (min_idle, start, count, justid) = rampart_proto::parse::streams::xautoclaim(args)?;
    let mut count = count;
    let Some(mut stream) = legacy::open_for_write(txn, key, now)? else {
        return Err(nogroup(key, group));
    };
    if stream.info.group(group).is_none() {
        return Err(nogroup(key, group));
    }

    let mut edit = GroupEdit::new(group);
    let (record, _) = edit.get_or_create(txn, &stream, consumer, now)?;
    record.seen_time_ms = now;
    let mut attempts = count.saturating_mul(ATTEMPTS_FACTOR);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut entries = EntryLookup::new(&stream);
    let mut from = Some(start);
    'scan: while let Some(at) = from {
        let batch = pel::pel_range(&*txn, &stream, group, at, StreamId::MAX, false, SCAN_BATCH)?;
        from = match batch.last() {
            Some((last, _)) if batch.len() == SCAN_BATCH => last.successor(),
            _ => None,
        };
        for (id, mut record) in batch {
            if attempts == 0 || count == 0 {
                // The cursor is the first PEL entry not examined.
                from = Some(id);
                break 'scan;
            }
            attempts -= 1;
            let Some(entry) = entries.get(&*txn, id)? else {
                edit.remove(txn, &stream, id, &record)?;
                deleted.push(reply::bulk(id.to_reply_bytes()));
                count -= 1;
                continue;
            };
            let idle = now.saturating_sub(record.delivery_time_ms);
            if min_idle > 0 && idle < min_idle {
                continue;
            }
            record.delivery_time_ms = now;
            if !justid {
                record.delivery_count = record.delivery_count.saturating_add(1);
            }
            edit.reassign(txn, &stream, id, &mut record, consumer)?;
            claimed.push(claimed_reply(justid, entry));
            count -= 1;
            if let Some(c) = edit.get(txn, &stream, consumer)? {
                c.active_time_ms = now;
            }
        }
    }
    // Stopped by the limits, `from` is the next entry: the cursor; 0-0
    // when the scan reached the end of the PEL.
    let cursor = from.unwrap_or(StreamId::MIN);
    let delta = edit.finish(txn, &stream);
    if delta != 0 {
        apply_pending(&mut stream, group, delta);
        stream.save(txn)?;
    }
    Ok(reply::array(vec![
        reply::bulk(cursor.to_reply_bytes()),
        reply::array(claimed),
        reply::array(deleted),
    ]))
}
