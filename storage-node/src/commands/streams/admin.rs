//! Rampart's legacy-layout commands (docs/streams.md, "Operations"):
//!
//! - `RAMPART.STREAMFORMAT key`: `per-entry`, `legacy` or
//!   `mixed <entries still in the blob>`; nil for a missing key.
//! - `RAMPART.STREAMIMPORT key blob [REPLACE]`: stores a stream given as a
//!   protobuf [`LegacyStream`] (importing the old system's data).
//! - `RAMPART.STREAMTOLEGACY key`: rewrites a stream of any format as one
//!   legacy blob (migration drills and tests); replies the entry count.
//!
//! And the internal commands the node itself puts in the log (not in the
//! command table, so no client can send them; see [`apply_internal`]):
//!
//! - `rampart.stream.settings <mode>`: stores the replicated migration mode.
//! - `rampart.stream.migrate <key> [max]`: one migration step of a legacy
//!   stream (the background drainer's unit of work).

use std::collections::HashSet;

use prost::Message;
use rampart_proto::{errors, reply, Reply};

use super::id::StreamId;
use super::layout::{ConsumerRecord, Format, PendingRecord, Stream, StreamMeta};
use super::legacy::{
    self, LegacyConsumer, LegacyEntry, LegacyGroup, LegacyPending, LegacyStream, MigrationMode,
};
use crate::commands::collection as coll;
use crate::commands::{CmdError, CmdResult};
use crate::engine::{keys, DataRead, EngineError, Txn};

pub const SETTINGS: &str = "rampart.stream.settings";
pub const MIGRATE: &str = "rampart.stream.migrate";
const INTERNAL_PREFIX: &[u8] = b"rampart.stream.";

/// Text of RAMPART.STREAMIMPORT on an existing key without REPLACE
/// (RESTORE's wording).
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";

pub fn streamformat<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    let [key] = args else {
        return Err(errors::wrong_arity("rampart.streamformat").into());
    };
    // Only the meta record: this must not decode a blob.
    let Some(stream) = Stream::lookup(r, key, now)? else {
        return Ok(reply::null());
    };
    Ok(reply::bulk(match stream.format() {
        Format::PerEntry => "per-entry".to_string(),
        Format::Legacy => "legacy".to_string(),
        Format::Mixed => format!("mixed {}", stream.info.legacy_len),
    }))
}

pub fn streamimport(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let (key, raw, replace) = match args {
        [key, raw] => (key, raw, false),
        [key, raw, opt] if opt.eq_ignore_ascii_case(b"replace") => (key, raw, true),
        [_, _, ..] => return Err(errors::SYNTAX.into()),
        _ => return Err(errors::wrong_arity("rampart.streamimport").into()),
    };
    let mut blob = LegacyStream::decode(raw.as_slice()).map_err(|_| {
        CmdError::from("ERR invalid legacy stream blob: not a LegacyStream message")
    })?;
    validate(&mut blob)
        .map_err(|why| CmdError::from(format!("ERR invalid legacy stream blob: {why}")))?;
    if !replace && crate::engine::live_meta(&*txn, key, now)?.is_some() {
        return Err(BUSYKEY.into());
    }
    // Also drops an expired record still occupying the key (its elements,
    // TTL entry and counters).
    txn.delete_key(key)?;
    let mut stream = Stream::create(txn, key)?;
    let entries = blob.entries.len() as i64;
    store_legacy(txn, &mut stream, &blob)?;
    Ok(reply::integer(entries))
}

pub fn streamtolegacy(txn: &mut Txn<'_>, args: &[Vec<u8>], now: i64) -> CmdResult {
    let [key] = args else {
        return Err(errors::wrong_arity("rampart.streamtolegacy").into());
    };
    let blob = legacy::with_readable(&*txn, key, now, |r, stream| match stream {
        Some(stream) => collect(r, stream).map(Some),
        None => Ok(None),
    })?;
    let Some(blob) = blob else {
        return Err(errors::NO_SUCH_KEY.into());
    };
    let mut stream =
        Stream::lookup(&*txn, key, now)?.ok_or_else(|| CmdError::from(errors::NO_SUCH_KEY))?;
    // Every record of the stream (entries, PELs, PEL indexes, consumers,
    // an old blob) goes; the new blob replaces them.
    if let Some(end) = keys::prefix_end(&stream.prefix) {
        txn.delete_range(stream.prefix.clone(), end);
    }
    let entries = blob.entries.len() as i64;
    store_legacy(txn, &mut stream, &blob)?;
    Ok(reply::integer(entries))
}

/// Writes `blob` as the whole content of `stream` (whose records are
/// gone): the blob record, a format-only meta payload and the marker.
fn store_legacy(
    txn: &mut Txn<'_>,
    stream: &mut Stream,
    blob: &LegacyStream,
) -> Result<(), CmdError> {
    let mut info = StreamMeta::empty();
    info.format = Format::Legacy as i32;
    stream.info = info;
    stream.save(txn)?;
    txn.put(stream.legacy_blob_key(), blob.encode_to_vec());
    txn.put(keys::legacy_stream_marker(&stream.key), Vec::new());
    Ok(())
}

/// The whole stream (any format, read through `with_readable`) as a blob.
fn collect<R: DataRead + ?Sized>(r: &R, stream: &Stream) -> Result<LegacyStream, CmdError> {
    let info = &stream.info;
    let entries = stream
        .range(r, StreamId::MIN, StreamId::MAX, false, None)?
        .into_iter()
        .map(|e| LegacyEntry {
            ms: e.id.ms,
            seq: e.id.seq,
            field_values: e.field_values,
        })
        .collect();
    let mut groups = Vec::with_capacity(info.groups.len());
    for g in &info.groups {
        let mut pending = Vec::new();
        let mut failed: Option<CmdError> = None;
        coll::for_each_under(
            r,
            &stream.pending_prefix(&g.name),
            &mut |suffix, value| match (StreamId::from_bytes(suffix), PendingRecord::decode(value))
            {
                (Some(id), Ok(p)) => {
                    pending.push(LegacyPending {
                        ms: id.ms,
                        seq: id.seq,
                        consumer: p.consumer,
                        delivery_time_ms: p.delivery_time_ms,
                        delivery_count: p.delivery_count,
                    });
                    true
                }
                _ => {
                    failed = Some(corrupt("undecodable stream PEL record"));
                    false
                }
            },
        )?;
        let mut consumers = Vec::new();
        coll::for_each_under(r, &stream.consumer_prefix(&g.name), &mut |name, value| {
            match ConsumerRecord::decode(value) {
                Ok(c) => {
                    consumers.push(LegacyConsumer {
                        name: name.to_vec(),
                        seen_time_ms: c.seen_time_ms,
                        active_time_ms: c.active_time_ms,
                    });
                    true
                }
                Err(_) => {
                    failed = Some(corrupt("undecodable stream consumer record"));
                    false
                }
            }
        })?;
        if let Some(err) = failed {
            return Err(err);
        }
        groups.push(LegacyGroup {
            name: g.name.clone(),
            last_ms: g.last_ms,
            last_seq: g.last_seq,
            entries_read: g.entries_read,
            pending,
            consumers,
        });
    }
    Ok(LegacyStream {
        entries,
        last_ms: info.last_ms,
        last_seq: info.last_seq,
        max_deleted_ms: info.max_deleted_ms,
        max_deleted_seq: info.max_deleted_seq,
        entries_added: info.entries_added,
        groups,
    })
}

fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

/// What an imported blob must satisfy for every stream command to work on
/// it: ascending unique non-zero ids, entries with field/value pairs,
/// unique group names, PEL ids and consumers per group. Fields the old
/// system may have left at zero are repaired instead: a last id below the
/// top entry is raised to it, and entries-added to at least the count.
fn validate(blob: &mut LegacyStream) -> Result<(), String> {
    for pair in blob.entries.windows(2) {
        if pair[0].id() >= pair[1].id() {
            return Err(format!(
                "entry ids must be ascending and unique ({} then {})",
                pair[0].id(),
                pair[1].id()
            ));
        }
    }
    if blob.entries.first().is_some_and(|e| e.id().is_zero()) {
        return Err("entry id 0-0".into());
    }
    if let Some(e) = blob
        .entries
        .iter()
        .find(|e| e.field_values.is_empty() || !e.field_values.len().is_multiple_of(2))
    {
        return Err(format!("entry {} has no field/value pairs", e.id()));
    }
    if let Some(top) = blob.entries.last().map(LegacyEntry::id) {
        if top > StreamId::new(blob.last_ms, blob.last_seq) {
            (blob.last_ms, blob.last_seq) = (top.ms, top.seq);
        }
    }
    blob.entries_added = blob.entries_added.max(blob.entries.len() as u64);
    let mut names = HashSet::new();
    for g in &blob.groups {
        if !names.insert(g.name.as_slice()) {
            return Err(format!(
                "duplicate group {}",
                String::from_utf8_lossy(&g.name)
            ));
        }
        let mut ids = HashSet::new();
        if !g.pending.iter().all(|p| ids.insert((p.ms, p.seq))) {
            return Err(format!(
                "duplicate PEL id in group {}",
                String::from_utf8_lossy(&g.name)
            ));
        }
        let mut consumers = HashSet::new();
        if !g
            .consumers
            .iter()
            .all(|c| consumers.insert(c.name.as_slice()))
        {
            return Err(format!(
                "duplicate consumer in group {}",
                String::from_utf8_lossy(&g.name)
            ));
        }
    }
    Ok(())
}

/// The internal command that sets the replicated migration mode.
pub fn settings_command(mode: MigrationMode) -> Vec<Vec<u8>> {
    vec![SETTINGS.as_bytes().to_vec(), mode.encode()]
}

/// The internal command that takes one migration step of `key`, moving at
/// most `max` entries (Mode B only: Mode A always moves everything).
pub fn migrate_command(key: &[u8], max: Option<u64>) -> Vec<Vec<u8>> {
    let mut argv = vec![MIGRATE.as_bytes().to_vec(), key.to_vec()];
    if let Some(max) = max {
        argv.push(max.to_string().into_bytes());
    }
    argv
}

/// Applies `argv` if it is one of the internal `rampart.stream.*`
/// commands; `None` for anything else.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>], now: i64) -> Option<Reply> {
    let name = argv.first()?;
    if !name.starts_with(INTERNAL_PREFIX) {
        return None;
    }
    let result = match (name.as_slice(), &argv[1..]) {
        (n, [encoded]) if n == SETTINGS.as_bytes() => match MigrationMode::decode(encoded) {
            Some(_) => {
                txn.put(keys::setting_key(legacy::MODE_SETTING), encoded.clone());
                Ok(reply::ok())
            }
            None => Err("ERR internal error: bad stream migration mode".into()),
        },
        (n, [key]) if n == MIGRATE.as_bytes() => migrate(txn, key, None, now),
        (n, [key, max]) if n == MIGRATE.as_bytes() => {
            match std::str::from_utf8(max).ok().and_then(|m| m.parse().ok()) {
                Some(max) if max > 0 => migrate(txn, key, Some(max), now),
                _ => Err("ERR internal error: bad migration step size".into()),
            }
        }
        _ => Err("ERR internal error: malformed stream command".into()),
    };
    Some(crate::commands::finish(result))
}

/// One migration step of `key` (see `legacy::migrate_step`); replies
/// `[entries moved, entries still in the blob]`. A marker without a legacy
/// stream behind it (a key gone or of another type) is removed, so the
/// drainer cannot spin on it.
fn migrate(txn: &mut Txn<'_>, key: &[u8], max: Option<u64>, now: i64) -> CmdResult {
    let stream = match Stream::lookup(&*txn, key, now) {
        Ok(found) => found,
        Err(CmdError::Redis(_)) => None, // WRONGTYPE
        Err(err) => return Err(err),
    };
    let Some(mut stream) = stream else {
        if crate::engine::load_meta(&*txn, key)?.is_none_or(|m| !m.is_expired(now)) {
            txn.delete(keys::legacy_stream_marker(key));
        }
        // An expired stream keeps its marker until active expiry deletes
        // the key (and the marker with it).
        return Ok(reply::array(vec![reply::integer(0), reply::integer(0)]));
    };
    if stream.format() == Format::PerEntry {
        txn.delete(keys::legacy_stream_marker(key));
        return Ok(reply::array(vec![reply::integer(0), reply::integer(0)]));
    }
    let chunk = match (MigrationMode::current(&*txn)?, max) {
        (MigrationMode::A, _) => u64::MAX,
        (MigrationMode::B { chunk }, Some(max)) => chunk.min(max),
        (MigrationMode::B { chunk }, None) => chunk,
    };
    let moved = legacy::migrate_step(txn, &mut stream, chunk)?;
    Ok(reply::array(vec![
        reply::integer(moved as i64),
        reply::integer(stream.info.legacy_len as i64),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{check, show, Node};

    const NOW: i64 = 1_700_000_000_000;

    fn blob(ids: &[(u64, u64)], last: (u64, u64)) -> LegacyStream {
        LegacyStream {
            entries: ids
                .iter()
                .map(|&(ms, seq)| LegacyEntry {
                    ms,
                    seq,
                    field_values: vec![b"f".to_vec(), format!("{ms}-{seq}").into_bytes()],
                })
                .collect(),
            last_ms: last.0,
            last_seq: last.1,
            max_deleted_ms: 0,
            max_deleted_seq: 0,
            entries_added: ids.len() as u64,
            groups: vec![LegacyGroup {
                name: b"g".to_vec(),
                last_ms: 1,
                last_seq: 0,
                entries_read: 1,
                pending: vec![LegacyPending {
                    ms: 1,
                    seq: 0,
                    consumer: b"alice".to_vec(),
                    delivery_time_ms: NOW - 5,
                    delivery_count: 2,
                }],
                consumers: vec![LegacyConsumer {
                    name: b"alice".to_vec(),
                    seen_time_ms: NOW - 5,
                    active_time_ms: NOW - 5,
                }],
            }],
        }
    }

    fn import(node: &Node, key: &str, blob: &[u8], extra: &[&str]) -> String {
        let mut argv = vec![
            b"RAMPART.STREAMIMPORT".to_vec(),
            key.as_bytes().to_vec(),
            blob.to_vec(),
        ];
        argv.extend(extra.iter().map(|a| a.as_bytes().to_vec()));
        show(&node.run_at(NOW, &argv))
    }

    fn raw_blob(node: &Node, key: &str) -> Option<LegacyStream> {
        let view = node.engine.read_view();
        let stream = Stream::lookup(&view, key.as_bytes(), NOW).unwrap()?;
        let raw = view.get(&stream.legacy_blob_key()).unwrap()?;
        Some(LegacyStream::decode(raw.as_slice()).unwrap())
    }

    fn marker(node: &Node, key: &str) -> bool {
        node.engine
            .read_view()
            .get(&keys::legacy_stream_marker(key.as_bytes()))
            .unwrap()
            .is_some()
    }

    #[test]
    fn import_validates_and_respects_existing_keys() {
        let node = Node::new();
        let good = blob(&[(1, 0), (2, 0), (2, 1)], (5, 0)).encode_to_vec();
        assert_eq!(import(&node, "s", &good, &[]), ":3");
        assert!(marker(&node, "s"));
        check(
            &node,
            NOW,
            &[
                ("TYPE s", "+stream"),
                ("RAMPART.STREAMFORMAT s", "\"legacy\""),
                ("RAMPART.STREAMFORMAT nosuch", "nil"),
                ("SET str x", "+OK"),
                (
                    "RAMPART.STREAMFORMAT str",
                    "-WRONGTYPE Operation against a key holding the wrong kind of value",
                ),
            ],
        );
        assert_eq!(
            import(&node, "s", &good, &[]),
            "-BUSYKEY Target key name already exists."
        );
        assert_eq!(
            import(&node, "str", &good, &[]),
            "-BUSYKEY Target key name already exists."
        );
        assert_eq!(import(&node, "str", &good, &["replace"]), ":3");
        check(&node, NOW, &[("TYPE str", "+stream")]);
        assert_eq!(import(&node, "s", &good, &["NOPE"]), "-ERR syntax error");
        assert_eq!(
            import(&node, "s", &good, &["REPLACE", "x"]),
            "-ERR syntax error"
        );
        assert!(
            import(&node, "n", b"\xff\xff\xff", &[]).starts_with("-ERR invalid legacy stream blob")
        );
        let unordered = blob(&[(2, 0), (1, 0)], (5, 0)).encode_to_vec();
        assert!(import(&node, "n", &unordered, &[]).starts_with("-ERR invalid legacy stream blob"));
        let zero = blob(&[(0, 0)], (5, 0)).encode_to_vec();
        assert!(import(&node, "n", &zero, &[]).starts_with("-ERR invalid legacy stream blob"));
        let mut odd = blob(&[(1, 0)], (5, 0));
        odd.entries[0].field_values.pop();
        assert!(import(&node, "n", &odd.encode_to_vec(), &[])
            .starts_with("-ERR invalid legacy stream blob"));
        check(&node, NOW, &[("EXISTS n", ":0")]);
        // A last id below the top entry is repaired, not refused.
        let low = blob(&[(1, 0), (9, 0)], (0, 0)).encode_to_vec();
        assert_eq!(import(&node, "low", &low, &[]), ":2");
        assert_eq!(
            raw_blob(&node, "low").map(|b| (b.last_ms, b.last_seq)),
            Some((9, 0))
        );
        // DEL takes blob and marker with it.
        check(&node, NOW, &[("DEL s", ":1")]);
        assert!(!marker(&node, "s"));
    }

    #[test]
    fn to_legacy_round_trips_any_format() {
        let node = Node::new();
        let original = blob(&[(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)], (7, 0));
        assert_eq!(import(&node, "s", &original.encode_to_vec(), &[]), ":5");
        // Legacy -> legacy keeps the blob as it was.
        check(&node, NOW, &[("RAMPART.STREAMTOLEGACY s", ":5")]);
        assert_eq!(raw_blob(&node, "s"), Some(original.clone()));
        // Mixed -> legacy: one step of 2 entries first.
        let mut txn = node.engine.txn();
        crate::commands::apply_write(
            &mut txn,
            &settings_command(MigrationMode::B { chunk: 2 }),
            NOW,
        );
        let reply = crate::commands::apply_write(&mut txn, &migrate_command(b"s", None), NOW);
        assert_eq!(show(&reply), "[:2, :3]");
        let batch = txn.into_batch().unwrap();
        node.engine.write_batch(batch, false).unwrap();
        check(&node, NOW, &[("RAMPART.STREAMFORMAT s", "\"mixed 3\"")]);
        check(&node, NOW, &[("RAMPART.STREAMTOLEGACY s", ":5")]);
        assert_eq!(raw_blob(&node, "s"), Some(original.clone()));
        assert!(marker(&node, "s"));
        // Per-entry -> legacy: migrate whole, then back.
        let mut txn = node.engine.txn();
        crate::commands::apply_write(&mut txn, &settings_command(MigrationMode::A), NOW);
        let reply = crate::commands::apply_write(&mut txn, &migrate_command(b"s", Some(1)), NOW);
        assert_eq!(show(&reply), "[:5, :0]");
        let batch = txn.into_batch().unwrap();
        node.engine.write_batch(batch, false).unwrap();
        check(&node, NOW, &[("RAMPART.STREAMFORMAT s", "\"per-entry\"")]);
        assert!(!marker(&node, "s"));
        assert_eq!(raw_blob(&node, "s"), None);
        check(&node, NOW, &[("RAMPART.STREAMTOLEGACY s", ":5")]);
        assert_eq!(raw_blob(&node, "s"), Some(original));
        check(
            &node,
            NOW,
            &[
                ("RAMPART.STREAMTOLEGACY nosuch", "-ERR no such key"),
                ("SET str x", "+OK"),
                (
                    "RAMPART.STREAMTOLEGACY str",
                    "-WRONGTYPE Operation against a key holding the wrong kind of value",
                ),
            ],
        );
    }

    #[test]
    fn internal_commands_are_not_client_commands() {
        let node = Node::new();
        // Through the command table (as a client's command would go), the
        // internal names are unknown.
        let reply = node.run_at(NOW, &migrate_command(b"s", None));
        assert!(
            show(&reply).starts_with("-ERR unknown command"),
            "{reply:?}"
        );
        let reply = node.run_at(NOW, &settings_command(MigrationMode::A));
        assert!(
            show(&reply).starts_with("-ERR unknown command"),
            "{reply:?}"
        );
        assert!(rampart_proto::command_table::lookup(MIGRATE.as_bytes()).is_none());
        assert!(rampart_proto::command_table::lookup(SETTINGS.as_bytes()).is_none());
        // Malformed internal commands are errors, not panics.
        let mut txn = node.engine.txn();
        for argv in [
            vec![SETTINGS.as_bytes().to_vec(), b"z".to_vec()],
            vec![MIGRATE.as_bytes().to_vec()],
            vec![MIGRATE.as_bytes().to_vec(), b"k".to_vec(), b"0".to_vec()],
            vec![b"rampart.stream.other".to_vec()],
        ] {
            let reply = apply_internal(&mut txn, &argv, NOW).expect("internal");
            assert!(reply.is_error(), "{argv:?}");
        }
        assert!(apply_internal(&mut txn, &[b"GET".to_vec()], NOW).is_none());
    }
}
