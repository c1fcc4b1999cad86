//! The per-entry stream layout: the stream's meta payload, its records and
//! their keys, and [`Stream`], the handle every stream command works through.
//!
//! Records under the stream's sub-key prefix (`engine::keys::sub_key_prefix`,
//! so DEL/EXPIRE/RENAME/FLUSHDB treat them like any collection's elements):
//!
//! | suffix | value |
//! |--------|-------|
//! | `i` + id (16 bytes) | [`EntryRecord`]: the entry's field/value list |
//! | `p` + len(group) (u32 BE) + group + id | [`PendingRecord`]: a group's PEL entry |
//! | `q` + len(group) + group + len(consumer) + consumer + id | empty: the consumer's PEL index |
//! | `c` + len(group) + group + consumer | [`ConsumerRecord`] |
//! | `b` | the legacy blob (whole stream, or in Mode B its not yet migrated entries; see `legacy`) |
//!
//! The meta payload is a [`StreamMeta`] (protobuf): length, first/last/
//! max-deleted ids, entries-added and the consumer groups' own fields, so
//! XLEN, XINFO and XADD's id check read one record. Ids are 16 big-endian
//! bytes, so key order is id order and XRANGE/XREAD are one range scan of
//! exactly the entries they return.

use prost::Message;

use super::id::StreamId;
use super::legacy;
use crate::commands::collection as coll;
use crate::commands::CmdError;
use crate::engine::meta::{Meta, ValueType};
use crate::engine::{keys, DataRead, EngineError, Txn};

pub const KIND: ValueType = ValueType::Stream;

pub const ENTRY_TAG: u8 = b'i';
pub const PENDING_TAG: u8 = b'p';
pub const CONSUMER_PEL_TAG: u8 = b'q';
pub const CONSUMER_TAG: u8 = b'c';
pub const LEGACY_BLOB_TAG: u8 = b'b';

/// Where a stream's entries live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Format {
    /// Every entry, PEL entry and consumer in its own record.
    PerEntry = 0,
    /// Untouched legacy stream: everything is in the blob, the meta payload
    /// holds only this format.
    Legacy = 1,
    /// Mode B in progress: meta, groups, PELs and consumers are per-entry;
    /// the entries in `[legacy_first, legacy_last]` not yet migrated are in
    /// the blob (`legacy_len` of them). Reads merge both by id.
    Mixed = 2,
}

/// The meta payload of a stream.
#[derive(Clone, PartialEq, Message)]
pub struct StreamMeta {
    #[prost(uint64, tag = "1")]
    pub length: u64,
    #[prost(uint64, tag = "2")]
    pub last_ms: u64,
    #[prost(uint64, tag = "3")]
    pub last_seq: u64,
    /// Id of the first entry; 0-0 when the stream is empty.
    #[prost(uint64, tag = "4")]
    pub first_ms: u64,
    #[prost(uint64, tag = "5")]
    pub first_seq: u64,
    #[prost(uint64, tag = "6")]
    pub max_deleted_ms: u64,
    #[prost(uint64, tag = "7")]
    pub max_deleted_seq: u64,
    #[prost(uint64, tag = "8")]
    pub entries_added: u64,
    /// Sorted by name (the order XINFO GROUPS lists them in).
    #[prost(message, repeated, tag = "9")]
    pub groups: Vec<GroupMeta>,
    #[prost(enumeration = "Format", tag = "10")]
    pub format: i32,
    /// Mixed only: entries still in the blob, and their id interval.
    #[prost(uint64, tag = "11")]
    pub legacy_len: u64,
    #[prost(uint64, tag = "12")]
    pub legacy_first_ms: u64,
    #[prost(uint64, tag = "13")]
    pub legacy_first_seq: u64,
    #[prost(uint64, tag = "14")]
    pub legacy_last_ms: u64,
    #[prost(uint64, tag = "15")]
    pub legacy_last_seq: u64,
}

/// A consumer group's own fields (its PEL and consumers are records).
#[derive(Clone, PartialEq, Message)]
pub struct GroupMeta {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub last_ms: u64,
    #[prost(uint64, tag = "3")]
    pub last_seq: u64,
    /// Redis's `entries_read`; -1 when unknown (XINFO shows lag as nil).
    #[prost(int64, tag = "4")]
    pub entries_read: i64,
    /// Number of PEL entries.
    #[prost(uint64, tag = "5")]
    pub pending: u64,
}

/// One entry's fields and values, alternating.
#[derive(Clone, PartialEq, Message)]
pub struct EntryRecord {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub field_values: Vec<Vec<u8>>,
}

/// A pending (delivered, not acknowledged) entry of a group.
#[derive(Clone, PartialEq, Message)]
pub struct PendingRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub consumer: Vec<u8>,
    /// Last delivery time, ms since the epoch.
    #[prost(int64, tag = "2")]
    pub delivery_time_ms: i64,
    #[prost(uint64, tag = "3")]
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Clone, PartialEq, Message)]
pub struct ConsumerRecord {
    /// Last interaction (read or claim attempt), ms.
    #[prost(int64, tag = "1")]
    pub seen_time_ms: i64,
    /// Last successful read or claim, ms; -1 never.
    #[prost(int64, tag = "2")]
    pub active_time_ms: i64,
    /// Number of PEL entries owned.
    #[prost(uint64, tag = "3")]
    pub pending: u64,
}

impl StreamMeta {
    pub fn empty() -> StreamMeta {
        StreamMeta {
            length: 0,
            last_ms: 0,
            last_seq: 0,
            first_ms: 0,
            first_seq: 0,
            max_deleted_ms: 0,
            max_deleted_seq: 0,
            entries_added: 0,
            groups: Vec::new(),
            format: Format::PerEntry as i32,
            legacy_len: 0,
            legacy_first_ms: 0,
            legacy_first_seq: 0,
            legacy_last_ms: 0,
            legacy_last_seq: 0,
        }
    }

    pub fn stored_format(&self) -> Format {
        Format::try_from(self.format).unwrap_or(Format::PerEntry)
    }

    pub fn last_id(&self) -> StreamId {
        StreamId::new(self.last_ms, self.last_seq)
    }

    pub fn set_last_id(&mut self, id: StreamId) {
        (self.last_ms, self.last_seq) = (id.ms, id.seq);
    }

    pub fn first_id(&self) -> StreamId {
        StreamId::new(self.first_ms, self.first_seq)
    }

    pub fn set_first_id(&mut self, id: StreamId) {
        (self.first_ms, self.first_seq) = (id.ms, id.seq);
    }

    pub fn max_deleted_id(&self) -> StreamId {
        StreamId::new(self.max_deleted_ms, self.max_deleted_seq)
    }

    pub fn set_max_deleted_id(&mut self, id: StreamId) {
        (self.max_deleted_ms, self.max_deleted_seq) = (id.ms, id.seq);
    }

    /// The id interval of the entries still in the blob (Mixed only).
    pub fn legacy_interval(&self) -> Option<(StreamId, StreamId)> {
        (self.stored_format() == Format::Mixed && self.legacy_len > 0).then(|| {
            (
                StreamId::new(self.legacy_first_ms, self.legacy_first_seq),
                StreamId::new(self.legacy_last_ms, self.legacy_last_seq),
            )
        })
    }

    pub fn group(&self, name: &[u8]) -> Option<&GroupMeta> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut GroupMeta> {
        self.groups.iter_mut().find(|g| g.name == name)
    }
}

impl GroupMeta {
    pub fn last_id(&self) -> StreamId {
        StreamId::new(self.last_ms, self.last_seq)
    }

    pub fn set_last_id(&mut self, id: StreamId) {
        (self.last_ms, self.last_seq) = (id.ms, id.seq);
    }
}

/// One stream entry: id and alternating fields/values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: StreamId,
    pub field_values: Vec<Vec<u8>>,
}

fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

/// `u32 BE length + bytes`: keeps a name from being a prefix of another.
fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
}

/// A stream: its engine meta record and decoded payload. Commands change
/// `info` and the records through the methods below, then [`Stream::save`].
pub struct Stream {
    pub key: Vec<u8>,
    pub meta: Meta,
    pub info: StreamMeta,
    pub prefix: Vec<u8>,
}

impl Stream {
    /// The stream at `key` as stored (a Legacy one is returned as such;
    /// readers go through `legacy::with_readable`, writers through
    /// `legacy::open_for_write`). WRONGTYPE for another type.
    pub fn lookup<R: DataRead + ?Sized>(
        r: &R,
        key: &[u8],
        now: i64,
    ) -> Result<Option<Stream>, CmdError> {
        let Some(meta) = coll::lookup(r, key, KIND, now)? else {
            return Ok(None);
        };
        Stream::from_meta(key, meta).map(Some)
    }

    pub fn from_meta(key: &[u8], meta: Meta) -> Result<Stream, CmdError> {
        let info = StreamMeta::decode(meta.payload.as_slice())
            .map_err(|_| corrupt("undecodable stream meta"))?;
        Ok(Stream {
            key: key.to_vec(),
            prefix: coll::prefix(key, &meta),
            meta,
            info,
        })
    }

    /// A new empty per-entry stream (stored by [`Stream::save`]).
    pub fn create(txn: &mut Txn<'_>, key: &[u8]) -> Result<Stream, CmdError> {
        let meta = Meta {
            kind: KIND,
            version: txn.next_version()?,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        Ok(Stream {
            key: key.to_vec(),
            prefix: coll::prefix(key, &meta),
            meta,
            info: StreamMeta::empty(),
        })
    }

    pub fn format(&self) -> Format {
        self.info.stored_format()
    }

    /// Writes the meta record. An empty stream stays (as in Redis).
    pub fn save(&mut self, txn: &mut Txn<'_>) -> Result<(), CmdError> {
        self.meta.payload = self.info.encode_to_vec();
        txn.put_meta(&self.key, &self.meta)?;
        Ok(())
    }

    fn tagged(&self, tag: u8) -> Vec<u8> {
        coll::tagged(&self.prefix, tag)
    }

    pub fn entry_key(&self, id: StreamId) -> Vec<u8> {
        let mut out = self.tagged(ENTRY_TAG);
        out.extend_from_slice(&id.to_bytes());
        out
    }

    /// Prefix of a group's PEL records (the id follows).
    pub fn pending_prefix(&self, group: &[u8]) -> Vec<u8> {
        let mut out = self.tagged(PENDING_TAG);
        push_name(&mut out, group);
        out
    }

    pub fn pending_key(&self, group: &[u8], id: StreamId) -> Vec<u8> {
        let mut out = self.pending_prefix(group);
        out.extend_from_slice(&id.to_bytes());
        out
    }

    /// Prefix of one consumer's PEL index (the id follows).
    pub fn consumer_pel_prefix(&self, group: &[u8], consumer: &[u8]) -> Vec<u8> {
        let mut out = self.tagged(CONSUMER_PEL_TAG);
        push_name(&mut out, group);
        push_name(&mut out, consumer);
        out
    }

    pub fn consumer_pel_key(&self, group: &[u8], consumer: &[u8], id: StreamId) -> Vec<u8> {
        let mut out = self.consumer_pel_prefix(group, consumer);
        out.extend_from_slice(&id.to_bytes());
        out
    }

    /// Prefix of every consumer record of a group (the name follows).
    pub fn consumer_prefix(&self, group: &[u8]) -> Vec<u8> {
        let mut out = self.tagged(CONSUMER_TAG);
        push_name(&mut out, group);
        out
    }

    pub fn consumer_key(&self, group: &[u8], consumer: &[u8]) -> Vec<u8> {
        let mut out = self.consumer_prefix(group);
        out.extend_from_slice(consumer);
        out
    }

    /// Every record of a group: its PEL, PEL indexes and consumers, as
    /// `[start, end)` ranges (XGROUP DESTROY deletes them).
    pub fn group_ranges(&self, group: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut pel_index = self.tagged(CONSUMER_PEL_TAG);
        push_name(&mut pel_index, group);
        [
            self.pending_prefix(group),
            pel_index,
            self.consumer_prefix(group),
        ]
        .into_iter()
        .filter_map(|p| keys::prefix_end(&p).map(|end| (p, end)))
        .collect()
    }

    pub fn legacy_blob_key(&self) -> Vec<u8> {
        self.tagged(LEGACY_BLOB_TAG)
    }

    /// The entries with ids in `[from, to]`, ascending (or descending when
    /// `rev`), at most `limit`. In the Mixed state this merges the per-entry
    /// records with the blob's entries by id (never one or the other).
    pub fn range<R: DataRead + ?Sized>(
        &self,
        r: &R,
        from: StreamId,
        to: StreamId,
        rev: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>, CmdError> {
        let limit = limit.unwrap_or(usize::MAX);
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let per_entry = self.scan_records(r, from, to, rev, limit)?;
        let legacy = match self.info.legacy_interval() {
            Some((first, last)) if first <= to && from <= last => {
                legacy::suffix_range(r, self, from, to, rev, limit)?
            }
            _ => Vec::new(),
        };
        if legacy.is_empty() {
            return Ok(per_entry);
        }
        Ok(merge_by_id(per_entry, legacy, rev, limit))
    }

    /// Only the per-entry records in `[from, to]`.
    fn scan_records<R: DataRead + ?Sized>(
        &self,
        r: &R,
        from: StreamId,
        to: StreamId,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<Entry>, CmdError> {
        let start = self.entry_key(from);
        let end = match to.successor() {
            Some(next) => self.entry_key(next),
            None => keys::prefix_end(&self.tagged(ENTRY_TAG)).ok_or_else(|| corrupt("prefix"))?,
        };
        let id_at = self.prefix.len() + 1;
        let records = scan_id_records(r, &start, &end, id_at, rev, limit, |v| {
            EntryRecord::decode(v).ok()
        })
        .map_err(|err| match err {
            ScanError::Engine(err) => err.into(),
            ScanError::Undecodable => corrupt("undecodable stream entry"),
        })?;
        Ok(records
            .into_iter()
            .map(|(id, record)| Entry {
                id,
                field_values: record.field_values,
            })
            .collect())
    }

    /// The entry with id `id`, from whichever layout holds it.
    pub fn get<R: DataRead + ?Sized>(
        &self,
        r: &R,
        id: StreamId,
    ) -> Result<Option<Entry>, CmdError> {
        Ok(self.range(r, id, id, false, Some(1))?.pop())
    }

    /// The first (or last, when `rev`) entry, if any.
    pub fn edge_entry<R: DataRead + ?Sized>(
        &self,
        r: &R,
        rev: bool,
    ) -> Result<Option<Entry>, CmdError> {
        Ok(self
            .range(r, StreamId::MIN, StreamId::MAX, rev, Some(1))?
            .pop())
    }

    /// Stores a new entry. The caller checked that `id` is greater than the
    /// last id and updates length, ids and entries-added.
    pub fn put_entry(&self, txn: &mut Txn<'_>, id: StreamId, field_values: Vec<Vec<u8>>) {
        let record = EntryRecord { field_values };
        txn.put(self.entry_key(id), record.encode_to_vec());
    }

    /// Deletes the entry `id` wherever it lives; returns whether it
    /// existed. Updates `length`, `max_deleted` and the first id.
    pub fn delete_entry(&mut self, txn: &mut Txn<'_>, id: StreamId) -> Result<bool, CmdError> {
        let removed = if txn.get(&self.entry_key(id))?.is_some() {
            txn.delete(self.entry_key(id));
            true
        } else {
            match self.info.legacy_interval() {
                Some((first, last)) if first <= id && id <= last => {
                    legacy::suffix_remove(txn, self, &[id])? == 1
                }
                _ => false,
            }
        };
        if removed {
            self.info.length = self.info.length.saturating_sub(1);
            if id > self.info.max_deleted_id() {
                self.info.set_max_deleted_id(id);
            }
            if id == self.info.first_id() {
                self.refresh_first_id(&*txn)?;
            }
        }
        Ok(removed)
    }

    /// Recomputes the first id after deletions (0-0 when empty).
    pub fn refresh_first_id<R: DataRead + ?Sized>(&mut self, r: &R) -> Result<(), CmdError> {
        let first = self.edge_entry(r, false)?.map_or(StreamId::MIN, |e| e.id);
        self.info.set_first_id(first);
        Ok(())
    }
}

/// Why [`scan_id_records`] stopped early.
#[derive(Debug)]
pub enum ScanError {
    /// A key without an id at `id_at`, or a value `decode` refused.
    Undecodable,
    Engine(EngineError),
}

impl From<EngineError> for ScanError {
    fn from(err: EngineError) -> Self {
        ScanError::Engine(err)
    }
}

/// Up to `limit` records in `[start, end)` whose keys end in a stream id
/// at `id_at`, decoded by `decode`, ascending (descending when `rev`).
/// Shared by the entry scan and the PEL scans.
pub fn scan_id_records<R: DataRead + ?Sized, T>(
    r: &R,
    start: &[u8],
    end: &[u8],
    id_at: usize,
    rev: bool,
    limit: usize,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Result<Vec<(StreamId, T)>, ScanError> {
    let mut out = Vec::new();
    let mut failed = false;
    let mut visit = |k: &[u8], v: &[u8]| -> bool {
        match (k.get(id_at..).and_then(StreamId::from_bytes), decode(v)) {
            (Some(id), Some(record)) => out.push((id, record)),
            _ => {
                failed = true;
                return false;
            }
        }
        out.len() < limit
    };
    if rev {
        r.for_each_rev(start, end, &mut visit)?;
    } else {
        r.for_each(start, end, &mut visit)?;
    }
    if failed {
        return Err(ScanError::Undecodable);
    }
    Ok(out)
}

/// Merges two id-sorted runs (both ascending, or both descending when
/// `rev`), keeping at most `limit`. The runs are disjoint by construction
/// (an id lives in exactly one layout); a duplicate keeps the record.
fn merge_by_id(a: Vec<Entry>, b: Vec<Entry>, rev: bool, limit: usize) -> Vec<Entry> {
    let before = |x: &Entry, y: &Entry| if rev { x.id > y.id } else { x.id < y.id };
    let mut out = Vec::with_capacity((a.len() + b.len()).min(limit));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.id == y.id => {
                b.next();
                a.next()
            }
            (Some(x), Some(y)) if before(x, y) => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => None,
        };
        match next {
            Some(entry) => out.push(entry),
            None => break,
        }
    }
    out
}

/// The reply of one entry: `[id, [field, value, ...]]`.
pub fn entry_reply(entry: Entry) -> rampart_proto::Reply {
    use rampart_proto::reply;
    reply::array(vec![
        reply::bulk(entry.id.to_reply_bytes()),
        reply::array(entry.field_values.into_iter().map(reply::bulk).collect()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ms: u64) -> Entry {
        Entry {
            id: StreamId::new(ms, 0),
            field_values: vec![],
        }
    }

    #[test]
    fn merge_interleaves_by_id_without_duplicates() {
        let ids = |v: Vec<Entry>| v.into_iter().map(|e| e.id.ms).collect::<Vec<_>>();
        let merged = merge_by_id(vec![e(1), e(4), e(9)], vec![e(2), e(3), e(4)], false, 10);
        assert_eq!(ids(merged), vec![1, 2, 3, 4, 9]);
        let merged = merge_by_id(vec![e(9), e(4), e(1)], vec![e(3), e(2)], true, 3);
        assert_eq!(ids(merged), vec![9, 4, 3]);
    }

    #[test]
    fn meta_round_trips() {
        let mut meta = StreamMeta::empty();
        meta.length = 3;
        meta.set_last_id(StreamId::new(5, 1));
        meta.groups.push(GroupMeta {
            name: b"g".to_vec(),
            last_ms: 1,
            last_seq: 0,
            entries_read: -1,
            pending: 2,
        });
        let decoded = StreamMeta::decode(meta.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, meta);
        assert_eq!(decoded.stored_format(), Format::PerEntry);
    }
}
