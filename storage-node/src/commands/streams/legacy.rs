//! The legacy one-blob stream layout (SPEC §2 Layer 4) and its migration
//! to the per-entry layout.
//!
//! A legacy stream is what the incident's system stored: the whole stream
//! (entries, consumer groups, PELs, consumers) as one protobuf
//! [`LegacyStream`] blob. Here the blob lives at the stream's `b` sub-key
//! and the meta payload only says `Format::Legacy`, so the keyspace
//! commands (TYPE, DEL, EXPIRE, RENAME, SCAN) treat it like any stream,
//! and the sidecar marker (`engine::keys::legacy_stream_marker`) counts it.
//!
//! Reading a Legacy stream decodes the whole blob (that O(n) is the cost
//! the per-entry layout removes): [`with_readable`] materializes it into
//! an in-memory [`Overlay`] in the per-entry layout, so every read command
//! has one implementation.
//!
//! Writes migrate first ([`open_for_write`]):
//! - **Mode A**: the write's Raft entry rewrites the whole stream per-entry
//!   and deletes the blob and marker.
//! - **Mode B**: the write's entry moves stream fields, groups, PELs and
//!   consumers, plus at most `chunk` of the oldest entries; the rest stays in
//!   the blob as the *legacy suffix* (`Format::Mixed`), which reads merge
//!   with the per-entry records by id (`Stream::range`). The entry that
//!   moves the last of them deletes blob and marker.
//!
//! Each step is one Raft entry, so a crash between steps leaves a readable
//! Mixed stream.

use std::collections::BTreeMap;
use std::ops::Bound;

use prost::Message;

use super::id::StreamId;
use super::layout::{
    ConsumerRecord, Entry, EntryRecord, Format, GroupMeta, PendingRecord, Stream, StreamMeta,
};
use crate::commands::CmdError;
use crate::engine::{keys, DataRead, EngineError, Order, Pair, Txn};

/// The legacy blob: the whole stream in one protobuf message.
#[derive(Clone, PartialEq, Message)]
pub struct LegacyStream {
    /// Ascending by id.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<LegacyEntry>,
    #[prost(uint64, tag = "2")]
    pub last_ms: u64,
    #[prost(uint64, tag = "3")]
    pub last_seq: u64,
    #[prost(uint64, tag = "4")]
    pub max_deleted_ms: u64,
    #[prost(uint64, tag = "5")]
    pub max_deleted_seq: u64,
    #[prost(uint64, tag = "6")]
    pub entries_added: u64,
    #[prost(message, repeated, tag = "7")]
    pub groups: Vec<LegacyGroup>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LegacyEntry {
    #[prost(uint64, tag = "1")]
    pub ms: u64,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    /// Fields and values, alternating.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub field_values: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LegacyGroup {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub last_ms: u64,
    #[prost(uint64, tag = "3")]
    pub last_seq: u64,
    #[prost(int64, tag = "4")]
    pub entries_read: i64,
    #[prost(message, repeated, tag = "5")]
    pub pending: Vec<LegacyPending>,
    #[prost(message, repeated, tag = "6")]
    pub consumers: Vec<LegacyConsumer>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LegacyPending {
    #[prost(uint64, tag = "1")]
    pub ms: u64,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub consumer: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub delivery_time_ms: i64,
    #[prost(uint64, tag = "5")]
    pub delivery_count: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct LegacyConsumer {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub seen_time_ms: i64,
    #[prost(int64, tag = "3")]
    pub active_time_ms: i64,
}

impl LegacyEntry {
    pub fn id(&self) -> StreamId {
        StreamId::new(self.ms, self.seq)
    }
}

fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

/// Counts one decode of a legacy blob (`rampart_stream_legacy_format_reads_total`).
fn note_legacy_read() {
    metrics::counter!(crate::metrics::STREAM_LEGACY_READS).increment(1);
}

/// Loads and decodes the blob of `stream` (Legacy or Mixed).
pub fn load_blob<R: DataRead + ?Sized>(r: &R, stream: &Stream) -> Result<LegacyStream, CmdError> {
    let bytes = r
        .get(&stream.legacy_blob_key())?
        .ok_or_else(|| corrupt("legacy stream without its blob"))?;
    note_legacy_read();
    let mut blob =
        LegacyStream::decode(bytes.as_slice()).map_err(|_| corrupt("undecodable legacy stream"))?;
    // The old system kept entries in id order; do not trust it blindly.
    if !blob.entries.windows(2).all(|w| w[0].id() < w[1].id()) {
        blob.entries.sort_by_key(LegacyEntry::id);
        blob.entries.dedup_by_key(|e| e.id());
    }
    Ok(blob)
}

/// The suffix entries in `[from, to]`, in the requested order, at most `limit`.
pub fn suffix_range<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    from: StreamId,
    to: StreamId,
    rev: bool,
    limit: usize,
) -> Result<Vec<Entry>, CmdError> {
    let blob = load_blob(r, stream)?;
    let start = blob.entries.partition_point(|e| e.id() < from);
    let end = blob.entries.partition_point(|e| e.id() <= to);
    let slice = &blob.entries[start..end.max(start)];
    let to_entry = |e: &LegacyEntry| Entry {
        id: e.id(),
        field_values: e.field_values.clone(),
    };
    Ok(if rev {
        slice.iter().rev().take(limit).map(to_entry).collect()
    } else {
        slice.iter().take(limit).map(to_entry).collect()
    })
}

/// Removes `ids` from the legacy suffix of a Mixed stream; returns how
/// many were there. Finishes the migration when the suffix empties. The
/// caller adjusts length and max-deleted.
pub fn suffix_remove(
    txn: &mut Txn<'_>,
    stream: &mut Stream,
    ids: &[StreamId],
) -> Result<u64, CmdError> {
    let mut blob = load_blob(&*txn, stream)?;
    let before = blob.entries.len();
    let ids: std::collections::HashSet<StreamId> = ids.iter().copied().collect();
    blob.entries.retain(|e| !ids.contains(&e.id()));
    let removed = (before - blob.entries.len()) as u64;
    if removed > 0 {
        store_suffix(txn, stream, blob.entries);
    }
    Ok(removed)
}

/// Writes `entries` as the new legacy suffix of a Mixed stream (or, when
/// empty, deletes blob and marker and makes the stream per-entry). Does not
/// save the meta record.
fn store_suffix(txn: &mut Txn<'_>, stream: &mut Stream, entries: Vec<LegacyEntry>) {
    let info = &mut stream.info;
    match (entries.first(), entries.last()) {
        (Some(first), Some(last)) => {
            info.format = Format::Mixed as i32;
            info.legacy_len = entries.len() as u64;
            (info.legacy_first_ms, info.legacy_first_seq) = (first.ms, first.seq);
            (info.legacy_last_ms, info.legacy_last_seq) = (last.ms, last.seq);
            let suffix = LegacyStream {
                entries,
                last_ms: 0,
                last_seq: 0,
                max_deleted_ms: 0,
                max_deleted_seq: 0,
                entries_added: 0,
                groups: Vec::new(),
            };
            txn.put(stream.legacy_blob_key(), suffix.encode_to_vec());
        }
        _ => {
            info.format = Format::PerEntry as i32;
            info.legacy_len = 0;
            (info.legacy_first_ms, info.legacy_first_seq) = (0, 0);
            (info.legacy_last_ms, info.legacy_last_seq) = (0, 0);
            txn.delete(stream.legacy_blob_key());
            txn.delete(keys::legacy_stream_marker(&stream.key));
        }
    }
}

/// How writes migrate legacy streams. Replicated (a setting record written
/// through the log), so every replica migrates identically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationMode {
    /// Rewrite the whole stream on its first write.
    A,
    /// Move at most `chunk` entries per write.
    B { chunk: u64 },
}

/// `STREAM_MIGRATION_CHUNK`'s default.
pub const DEFAULT_CHUNK: u64 = 1024;

impl Default for MigrationMode {
    fn default() -> Self {
        MigrationMode::B {
            chunk: DEFAULT_CHUNK,
        }
    }
}

/// Name of the replicated migration-mode setting.
pub const MODE_SETTING: &[u8] = b"stream_migration";

impl MigrationMode {
    /// `a`, or `b:<chunk>`.
    pub fn encode(self) -> Vec<u8> {
        match self {
            MigrationMode::A => b"a".to_vec(),
            MigrationMode::B { chunk } => format!("b:{chunk}").into_bytes(),
        }
    }

    pub fn decode(raw: &[u8]) -> Option<MigrationMode> {
        match raw {
            b"a" => Some(MigrationMode::A),
            _ => {
                let chunk = std::str::from_utf8(raw.strip_prefix(b"b:")?)
                    .ok()?
                    .parse()
                    .ok()?;
                (chunk > 0).then_some(MigrationMode::B { chunk })
            }
        }
    }

    /// The replicated setting (the default until one is written).
    pub(crate) fn current<R: DataRead + ?Sized>(r: &R) -> Result<MigrationMode, CmdError> {
        Ok(r.get(&keys::setting_key(MODE_SETTING))?
            .and_then(|raw| MigrationMode::decode(&raw))
            .unwrap_or_default())
    }

    fn chunk(self) -> u64 {
        match self {
            MigrationMode::A => u64::MAX,
            MigrationMode::B { chunk } => chunk,
        }
    }
}

/// The stream at `key` ready for a write: a Legacy or Mixed stream first
/// takes one migration step (whole in Mode A), saved in this entry.
pub fn open_for_write(txn: &mut Txn<'_>, key: &[u8], now: i64) -> Result<Option<Stream>, CmdError> {
    let Some(mut stream) = Stream::lookup(&*txn, key, now)? else {
        return Ok(None);
    };
    if stream.format() != Format::PerEntry {
        let mode = MigrationMode::current(&*txn)?;
        migrate_step(txn, &mut stream, mode.chunk())?;
    }
    Ok(Some(stream))
}

/// One migration step of a Legacy or Mixed stream: at most `chunk` of the
/// oldest blob entries become records (plus, from Legacy, everything
/// else the blob holds). Saves the meta record. Returns the entries moved.
pub fn migrate_step(txn: &mut Txn<'_>, stream: &mut Stream, chunk: u64) -> Result<u64, CmdError> {
    let mut blob = load_blob(&*txn, stream)?;
    if stream.format() == Format::Legacy {
        stream.info = legacy_meta(&blob);
        for (key, value) in group_records(stream, &mut blob) {
            txn.put(key, value);
        }
    }
    let take = (chunk.min(blob.entries.len() as u64)) as usize;
    let rest = blob.entries.split_off(take);
    for entry in blob.entries {
        let id = entry.id();
        stream.put_entry(txn, id, entry.field_values);
    }
    store_suffix(txn, stream, rest);
    stream.save(txn)?;
    Ok(take as u64)
}

/// The stream fields and groups of a legacy blob, as a meta payload.
fn legacy_meta(blob: &LegacyStream) -> StreamMeta {
    let mut info = StreamMeta::empty();
    info.length = blob.entries.len() as u64;
    info.set_last_id(StreamId::new(blob.last_ms, blob.last_seq));
    if let Some(first) = blob.entries.first() {
        info.set_first_id(first.id());
    }
    info.set_max_deleted_id(StreamId::new(blob.max_deleted_ms, blob.max_deleted_seq));
    info.entries_added = blob.entries_added;
    let mut groups: Vec<GroupMeta> = blob
        .groups
        .iter()
        .map(|g| GroupMeta {
            name: g.name.clone(),
            last_ms: g.last_ms,
            last_seq: g.last_seq,
            entries_read: g.entries_read,
            pending: g.pending.len() as u64,
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    info.groups = groups;
    info
}

/// The PEL, PEL-index and consumer records of every group of `blob`, as
/// `(key, value)` pairs in the per-entry layout (the groups are taken out
/// of the blob).
fn group_records(stream: &Stream, blob: &mut LegacyStream) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for group in std::mem::take(&mut blob.groups) {
        let mut owned: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for p in &group.pending {
            let id = StreamId::new(p.ms, p.seq);
            let record = PendingRecord {
                consumer: p.consumer.clone(),
                delivery_time_ms: p.delivery_time_ms,
                delivery_count: p.delivery_count,
            };
            out.push((stream.pending_key(&group.name, id), record.encode_to_vec()));
            out.push((
                stream.consumer_pel_key(&group.name, &p.consumer, id),
                Vec::new(),
            ));
            *owned.entry(p.consumer.clone()).or_default() += 1;
        }
        for c in &group.consumers {
            let record = ConsumerRecord {
                seen_time_ms: c.seen_time_ms,
                active_time_ms: c.active_time_ms,
                pending: owned.remove(&c.name).unwrap_or(0),
            };
            out.push((
                stream.consumer_key(&group.name, &c.name),
                record.encode_to_vec(),
            ));
        }
        // A PEL entry whose consumer the blob forgot: recreate the consumer
        // so XPENDING and XINFO CONSUMERS agree.
        for (name, pending) in owned {
            let record = ConsumerRecord {
                seen_time_ms: 0,
                active_time_ms: -1,
                pending,
            };
            out.push((
                stream.consumer_key(&group.name, &name),
                record.encode_to_vec(),
            ));
        }
    }
    out
}

/// A read-only overlay over `base`: the per-entry records of a Legacy
/// stream materialized in memory, so read commands can run against it.
pub struct Overlay<'a, R: DataRead + ?Sized> {
    base: &'a R,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<R: DataRead + ?Sized> Overlay<'_, R> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn overlaps(&self, start: &[u8], end: &[u8]) -> bool {
        self.writes
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next()
            .is_some()
    }

    fn merged(&self, start: &[u8], end: &[u8]) -> Result<Vec<Pair>, EngineError> {
        let mut all: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        self.base.for_each(start, end, &mut |k, v| {
            all.insert(k.to_vec(), Some(v.to_vec()));
            true
        })?;
        for (k, v) in self
            .writes
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        {
            all.insert(k.clone(), v.clone());
        }
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

impl<R: DataRead + ?Sized> DataRead for Overlay<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    fn walk(
        &self,
        (start, end): (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        if !self.overlaps(start, end) {
            return self.base.walk((start, end), order, f);
        }
        let merged = self.merged(start, end)?;
        let pairs: Box<dyn Iterator<Item = &Pair>> = match order {
            Order::Ascending => Box::new(merged.iter()),
            Order::Descending => Box::new(merged.iter().rev()),
        };
        for (k, v) in pairs {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}

/// Runs the read `f` against the stream at `key` in the per-entry layout:
/// directly for PerEntry and Mixed streams (`Stream::range` merges the
/// suffix), through an in-memory materialization for a Legacy one.
/// `f` gets `None` when the key does not exist (WRONGTYPE is an error).
pub fn with_readable<R, T, F>(r: &R, key: &[u8], now: i64, f: F) -> Result<T, CmdError>
where
    R: DataRead + ?Sized,
    F: FnOnce(&Overlay<'_, R>, Option<&Stream>) -> Result<T, CmdError>,
{
    let mut overlay = Overlay {
        base: r,
        writes: BTreeMap::new(),
    };
    let Some(mut stream) = Stream::lookup(r, key, now)? else {
        return f(&overlay, None);
    };
    if stream.format() == Format::Legacy {
        let mut blob = load_blob(r, &stream)?;
        stream.info = legacy_meta(&blob);
        for (key, value) in group_records(&stream, &mut blob) {
            overlay.put(key, value);
        }
        for entry in blob.entries {
            let record = EntryRecord {
                field_values: entry.field_values,
            };
            overlay.put(
                stream.entry_key(StreamId::new(entry.ms, entry.seq)),
                record.encode_to_vec(),
            );
        }
    }
    f(&overlay, Some(&stream))
}

#[cfg(test)]
mod tests {
    //! The merged read of every migration state against a model: legacy
    //! streams of 0, 1, chunk-1, chunk, chunk+1 (and more) entries are
    //! migrated step by step while entries are added and deleted, and after
    //! every step every range read equals the model's.

    use std::collections::BTreeMap;

    use super::*;
    use crate::commands::streams::admin;
    use crate::commands::test_support::Node;

    const NOW: i64 = 1_700_000_000_000;
    const CHUNK: u64 = 4;
    const KEY: &[u8] = b"s";

    type Model = BTreeMap<StreamId, Vec<Vec<u8>>>;

    fn commit<T>(node: &Node, f: impl FnOnce(&mut Txn<'_>) -> T) -> T {
        let mut txn = node.engine.txn();
        let out = f(&mut txn);
        let batch = txn.into_batch().expect("batch");
        node.engine.write_batch(batch, false).expect("write");
        out
    }

    fn fields(id: StreamId) -> Vec<Vec<u8>> {
        vec![b"f".to_vec(), format!("v{id}").into_bytes()]
    }

    /// A legacy stream of `n` entries with ids 1-0, 3-0, 5-0... and a
    /// group whose PEL holds every third entry.
    fn import(node: &Node, n: u64) -> Model {
        let ids: Vec<StreamId> = (0..n).map(|i| StreamId::new(2 * i + 1, 0)).collect();
        let blob = LegacyStream {
            entries: ids
                .iter()
                .map(|id| LegacyEntry {
                    ms: id.ms,
                    seq: id.seq,
                    field_values: fields(*id),
                })
                .collect(),
            last_ms: 2 * n + 1,
            last_seq: 0,
            max_deleted_ms: 0,
            max_deleted_seq: 0,
            entries_added: n,
            groups: vec![LegacyGroup {
                name: b"g".to_vec(),
                last_ms: 2 * n,
                last_seq: 0,
                entries_read: n as i64,
                pending: ids
                    .iter()
                    .step_by(3)
                    .map(|id| LegacyPending {
                        ms: id.ms,
                        seq: id.seq,
                        consumer: b"alice".to_vec(),
                        delivery_time_ms: NOW - 10,
                        delivery_count: 1,
                    })
                    .collect(),
                consumers: vec![LegacyConsumer {
                    name: b"alice".to_vec(),
                    seen_time_ms: NOW - 10,
                    active_time_ms: NOW - 10,
                }],
            }],
        };
        let argv = vec![
            b"RAMPART.STREAMIMPORT".to_vec(),
            KEY.to_vec(),
            blob.encode_to_vec(),
        ];
        assert_eq!(node.run_at(NOW, &argv).integer_value(), Some(n as i64));
        ids.into_iter().map(|id| (id, fields(id))).collect()
    }

    fn set_chunk(node: &Node, chunk: u64) {
        let mode = MigrationMode::B { chunk };
        let reply = commit(node, |txn| {
            crate::commands::apply_write(txn, &admin::settings_command(mode), NOW)
        });
        assert!(!reply.is_error(), "{reply:?}");
    }

    fn model_range(
        model: &Model,
        from: StreamId,
        to: StreamId,
        rev: bool,
        limit: usize,
    ) -> Vec<Entry> {
        if from > to {
            return Vec::new();
        }
        let it = model.range(from..=to).map(|(id, fv)| Entry {
            id: *id,
            field_values: fv.clone(),
        });
        if rev {
            it.rev().take(limit).collect()
        } else {
            it.take(limit).collect()
        }
    }

    /// Every range read (all bounds around every id, both directions,
    /// several limits) and the stream fields equal the model's.
    fn check_reads(node: &Node, model: &Model, what: &str) {
        let view = node.engine.read_view();
        let mut bounds = vec![StreamId::MIN, StreamId::MAX];
        for id in model.keys() {
            bounds.push(*id);
            bounds.extend(id.predecessor());
            bounds.extend(id.successor());
        }
        bounds.sort();
        bounds.dedup();
        with_readable(&view, KEY, NOW, |r, stream| {
            let stream = stream.expect("the stream exists");
            assert_eq!(stream.info.length, model.len() as u64, "{what}: length");
            let first = model.keys().next().copied().unwrap_or(StreamId::MIN);
            assert_eq!(stream.info.first_id(), first, "{what}: first id");
            for &from in &bounds {
                for &to in &bounds {
                    for rev in [false, true] {
                        for limit in [1usize, 2, 5, usize::MAX] {
                            let got = stream.range(r, from, to, rev, Some(limit))?;
                            let want = model_range(model, from, to, rev, limit);
                            assert_eq!(
                                got, want,
                                "{what}: range {from}..{to} rev={rev} limit={limit}"
                            );
                        }
                    }
                }
            }
            for id in &bounds {
                let got = stream.get(r, *id)?;
                let want = model.get(id).map(|fv| Entry {
                    id: *id,
                    field_values: fv.clone(),
                });
                assert_eq!(got, want, "{what}: get {id}");
            }
            Ok(())
        })
        .expect("reads");
    }

    fn format_of(node: &Node) -> (Format, u64) {
        let view = node.engine.read_view();
        let stream = Stream::lookup(&view, KEY, NOW).unwrap().unwrap();
        (stream.format(), stream.info.legacy_len)
    }

    fn marker(node: &Node) -> bool {
        node.engine
            .read_view()
            .get(&keys::legacy_stream_marker(KEY))
            .unwrap()
            .is_some()
    }

    /// One write the way stream commands do it: open (one migration step),
    /// then `change`, then save.
    fn write(node: &Node, change: impl FnOnce(&mut Txn<'_>, &mut Stream)) {
        commit(node, |txn| {
            let mut stream = open_for_write(txn, KEY, NOW).unwrap().unwrap();
            change(txn, &mut stream);
            stream.save(txn).unwrap();
        });
    }

    fn append(txn: &mut Txn<'_>, stream: &mut Stream, model: &mut Model, id: StreamId) {
        stream.put_entry(txn, id, fields(id));
        if stream.info.length == 0 {
            stream.info.set_first_id(id);
        }
        stream.info.length += 1;
        stream.info.set_last_id(id);
        stream.info.entries_added += 1;
        model.insert(id, fields(id));
    }

    #[test]
    fn reads_merge_both_layouts_in_every_mixed_state() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3] {
            let node = Node::new();
            set_chunk(&node, CHUNK);
            let mut model = import(&node, n);
            assert_eq!(format_of(&node).0, Format::Legacy);
            check_reads(&node, &model, &format!("n={n} legacy"));
            let mut next_ms = 2 * n + 10;
            let mut step = 0u64;
            while marker(&node) {
                step += 1;
                assert!(step < 100, "migration of {n} entries does not end");
                let before = format_of(&node);
                let legacy_before = match before.0 {
                    Format::Legacy => model.len() as u64,
                    _ => before.1,
                };
                // A write: one step, then append one entry and delete the
                // oldest remaining legacy-suffix entry (if any) and, every
                // other step, the oldest entry overall.
                let id = StreamId::new(next_ms, 0);
                next_ms += 1;
                let mut deleted = 0;
                write(&node, |txn, stream| {
                    append(txn, stream, &mut model, id);
                    if let Some((first, _)) = stream.info.legacy_interval() {
                        assert!(stream.delete_entry(txn, first).unwrap());
                        model.remove(&first);
                        deleted += 1;
                    }
                    if step.is_multiple_of(2) {
                        if let Some(&oldest) = model.keys().next() {
                            assert!(stream.delete_entry(txn, oldest).unwrap());
                            model.remove(&oldest);
                        }
                    }
                });
                let (format, left) = format_of(&node);
                let expect_left = legacy_before.saturating_sub(CHUNK).saturating_sub(deleted);
                assert_eq!(left, expect_left, "n={n} step {step}: suffix size");
                assert_eq!(
                    format,
                    if expect_left == 0 {
                        Format::PerEntry
                    } else {
                        Format::Mixed
                    },
                    "n={n} step {step}"
                );
                assert_eq!(marker(&node), expect_left > 0);
                check_reads(&node, &model, &format!("n={n} step {step}"));
            }
            // Fully migrated: the blob is gone too.
            let view = node.engine.read_view();
            let stream = Stream::lookup(&view, KEY, NOW).unwrap().unwrap();
            assert!(view.get(&stream.legacy_blob_key()).unwrap().is_none());
            assert_eq!(stream.info.entries_added, n + step);
        }
    }

    #[test]
    fn first_step_moves_groups_pels_and_consumers() {
        let node = Node::new();
        set_chunk(&node, CHUNK);
        let model = import(&node, 10);
        commit(&node, |txn| {
            open_for_write(txn, KEY, NOW).unwrap().unwrap();
        });
        let view = node.engine.read_view();
        let stream = Stream::lookup(&view, KEY, NOW).unwrap().unwrap();
        assert_eq!(stream.format(), Format::Mixed);
        assert_eq!(stream.info.legacy_len, 10 - CHUNK);
        let group = &stream.info.groups[0];
        assert_eq!(
            (group.name.as_slice(), group.pending, group.entries_read),
            (b"g".as_slice(), 4, 10)
        );
        for id in model.keys().step_by(3) {
            let raw = view.get(&stream.pending_key(b"g", *id)).unwrap().unwrap();
            let pending = PendingRecord::decode(raw.as_slice()).unwrap();
            assert_eq!(pending.consumer, b"alice");
            assert!(view
                .get(&stream.consumer_pel_key(b"g", b"alice", *id))
                .unwrap()
                .is_some());
        }
        let raw = view
            .get(&stream.consumer_key(b"g", b"alice"))
            .unwrap()
            .unwrap();
        assert_eq!(ConsumerRecord::decode(raw.as_slice()).unwrap().pending, 4);
    }

    #[test]
    fn mode_a_migrates_whole_in_one_step() {
        let node = Node::new();
        let reply = commit(&node, |txn| {
            crate::commands::apply_write(txn, &admin::settings_command(MigrationMode::A), NOW)
        });
        assert!(!reply.is_error());
        let model = import(&node, 2 * DEFAULT_CHUNK + 1);
        commit(&node, |txn| {
            open_for_write(txn, KEY, NOW).unwrap().unwrap();
        });
        assert_eq!(format_of(&node), (Format::PerEntry, 0));
        assert!(!marker(&node));
        let view = node.engine.read_view();
        with_readable(&view, KEY, NOW, |r, s| {
            let all = s
                .unwrap()
                .range(r, StreamId::MIN, StreamId::MAX, false, None)?;
            assert_eq!(all.len(), model.len());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn mode_setting_round_trips() {
        for mode in [
            MigrationMode::A,
            MigrationMode::B { chunk: 1 },
            MigrationMode::default(),
        ] {
            assert_eq!(MigrationMode::decode(&mode.encode()), Some(mode));
        }
        for bad in [&b"b:0"[..], b"b:", b"c", b"b:x", b""] {
            assert_eq!(MigrationMode::decode(bad), None);
        }
    }
}
