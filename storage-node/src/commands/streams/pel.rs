//! A consumer group's records: its PEL (`p` records, ordered by id), each
//! consumer's PEL index (`q` records) and the consumer records (`c`), read
//! through any [`DataRead`] and changed through [`GroupEdit`], which keeps
//! the three and the pending counts (group and consumer) in step.
//!
//! Invariants every write keeps (docs/streams.md, "Consumer groups"):
//! - a `p` record for (group, id) exists iff a `q` record for (group, its
//!   consumer, id) exists;
//! - `GroupMeta::pending` is the number of the group's `p` records;
//! - `ConsumerRecord::pending` is the number of the consumer's `q` records.

use std::collections::BTreeMap;

use prost::Message;

use super::id::StreamId;
use super::layout::{scan_id_records, ConsumerRecord, PendingRecord, ScanError, Stream};
use crate::commands::CmdError;
use crate::engine::{keys, DataRead, EngineError, Txn};

fn corrupt(what: &str) -> CmdError {
    EngineError::Corrupt(what.to_string()).into()
}

fn decode_pending(value: &[u8]) -> Result<PendingRecord, CmdError> {
    PendingRecord::decode(value).map_err(|_| corrupt("undecodable PEL record"))
}

fn decode_consumer(value: &[u8]) -> Result<ConsumerRecord, CmdError> {
    ConsumerRecord::decode(value).map_err(|_| corrupt("undecodable consumer record"))
}

/// The `[start, end)` keys of the ids `[from, to]` under `prefix`.
fn id_bounds(prefix: &[u8], from: StreamId, to: StreamId) -> Option<(Vec<u8>, Vec<u8>)> {
    if from > to {
        return None;
    }
    let mut start = prefix.to_vec();
    start.extend_from_slice(&from.to_bytes());
    let end = match to.successor() {
        Some(next) => {
            let mut end = prefix.to_vec();
            end.extend_from_slice(&next.to_bytes());
            end
        }
        None => keys::prefix_end(prefix)?,
    };
    Some((start, end))
}

/// The PEL record of `id` in `group`.
pub fn pending<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    id: StreamId,
) -> Result<Option<PendingRecord>, CmdError> {
    match r.get(&stream.pending_key(group, id))? {
        Some(value) => decode_pending(&value).map(Some),
        None => Ok(None),
    }
}

/// Up to `limit` PEL records of `group` with ids in `[from, to]`,
/// ascending (descending when `rev`).
pub fn pel_range<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    from: StreamId,
    to: StreamId,
    rev: bool,
    limit: usize,
) -> Result<Vec<(StreamId, PendingRecord)>, CmdError> {
    let prefix = stream.pending_prefix(group);
    let Some((start, end)) = id_bounds(&prefix, from, to) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    scan_id_records(r, &start, &end, prefix.len(), rev, limit, |v| {
        decode_pending(v).ok()
    })
    .map_err(|err| match err {
        ScanError::Engine(err) => err.into(),
        ScanError::Undecodable => corrupt("bad PEL record"),
    })
}

/// Up to `limit` ids of `consumer`'s PEL index with ids in `[from, to]`, ascending.
pub fn consumer_pel_ids<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    consumer: &[u8],
    from: StreamId,
    to: StreamId,
    limit: usize,
) -> Result<Vec<StreamId>, CmdError> {
    let prefix = stream.consumer_pel_prefix(group, consumer);
    let Some((start, end)) = id_bounds(&prefix, from, to) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut bad = false;
    r.for_each(&start, &end, &mut |k, _| {
        match StreamId::from_bytes(&k[prefix.len()..]) {
            Some(id) => out.push(id),
            None => bad = true,
        }
        !bad && out.len() < limit
    })?;
    if bad {
        return Err(corrupt("bad consumer PEL index key"));
    }
    Ok(out)
}

/// The record of `consumer` in `group`.
pub fn consumer<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
    name: &[u8],
) -> Result<Option<ConsumerRecord>, CmdError> {
    match r.get(&stream.consumer_key(group, name))? {
        Some(value) => decode_consumer(&value).map(Some),
        None => Ok(None),
    }
}

/// Every consumer of `group` in name order (byte order, as Redis lists them).
pub fn consumers<R: DataRead + ?Sized>(
    r: &R,
    stream: &Stream,
    group: &[u8],
) -> Result<Vec<(Vec<u8>, ConsumerRecord)>, CmdError> {
    let prefix = stream.consumer_prefix(group);
    let Some(end) = keys::prefix_end(&prefix) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut bad = None;
    r.for_each(&prefix, &end, &mut |k, v| match decode_consumer(v) {
        Ok(record) => {
            out.push((k[prefix.len()..].to_vec(), record));
            true
        }
        Err(err) => {
            bad = Some(err);
            false
        }
    })?;
    match bad {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

/// The changes one write command makes to one group's records. PEL and
/// index records are written at once (later reads in the same command see
/// them); consumer records are cached, their pending counts adjusted as
/// PEL entries move, and written by [`GroupEdit::finish`], which also
/// returns the change of the group's PEL size for `GroupMeta::pending`.
pub struct GroupEdit {
    pub group: Vec<u8>,
    /// Loaded consumers (`None`: missing or deleted here), and whether
    /// the command may have changed them.
    consumers: BTreeMap<Vec<u8>, (Option<ConsumerRecord>, bool)>,
    pending_delta: i64,
}

impl GroupEdit {
    pub fn new(group: &[u8]) -> GroupEdit {
        GroupEdit {
            group: group.to_vec(),
            consumers: BTreeMap::new(),
            pending_delta: 0,
        }
    }

    fn load(&mut self, txn: &Txn<'_>, stream: &Stream, name: &[u8]) -> Result<(), CmdError> {
        if !self.consumers.contains_key(name) {
            let record = consumer(txn, stream, &self.group, name)?;
            self.consumers.insert(name.to_vec(), (record, false));
        }
        Ok(())
    }

    /// The consumer's record, if it exists.
    pub fn get(
        &mut self,
        txn: &Txn<'_>,
        stream: &Stream,
        name: &[u8],
    ) -> Result<Option<&mut ConsumerRecord>, CmdError> {
        self.load(txn, stream, name)?;
        Ok(self.consumers.get_mut(name).and_then(|(record, dirty)| {
            *dirty |= record.is_some();
            record.as_mut()
        }))
    }

    /// The consumer's record, created (seen now, never active) when
    /// missing; the flag says whether it was created.
    pub fn get_or_create(
        &mut self,
        txn: &Txn<'_>,
        stream: &Stream,
        name: &[u8],
        now: i64,
    ) -> Result<(&mut ConsumerRecord, bool), CmdError> {
        self.load(txn, stream, name)?;
        let (slot, dirty) = self.consumers.entry(name.to_vec()).or_insert((None, false));
        let created = slot.is_none();
        *dirty = true;
        let record = slot.get_or_insert_with(|| ConsumerRecord {
            seen_time_ms: now,
            active_time_ms: -1,
            pending: 0,
        });
        Ok((record, created))
    }

    /// Changes a consumer's pending count (missing consumers are left
    /// alone: a PEL record always has its consumer, but never panic).
    fn adjust(
        &mut self,
        txn: &Txn<'_>,
        stream: &Stream,
        name: &[u8],
        delta: i64,
    ) -> Result<(), CmdError> {
        if let Some(record) = self.get(txn, stream, name)? {
            record.pending = record.pending.saturating_add_signed(delta);
        }
        Ok(())
    }

    /// Stores the PEL record of `id` as it is (delivery time and count
    /// changes that keep the owner).
    pub fn update(&self, txn: &mut Txn<'_>, stream: &Stream, id: StreamId, record: &PendingRecord) {
        txn.put(stream.pending_key(&self.group, id), record.encode_to_vec());
    }

    /// Adds a new PEL entry `id` owned by `record.consumer` (the caller
    /// checked there is none).
    pub fn insert(
        &mut self,
        txn: &mut Txn<'_>,
        stream: &Stream,
        id: StreamId,
        record: &PendingRecord,
    ) -> Result<(), CmdError> {
        self.update(txn, stream, id, record);
        txn.put(
            stream.consumer_pel_key(&self.group, &record.consumer, id),
            Vec::new(),
        );
        self.adjust(txn, stream, &record.consumer, 1)?;
        self.pending_delta += 1;
        Ok(())
    }

    /// Moves the PEL entry `id` (currently `record`) to consumer `to`, and
    /// stores `record` with its new owner. The caller sets delivery time
    /// and count on `record` first.
    pub fn reassign(
        &mut self,
        txn: &mut Txn<'_>,
        stream: &Stream,
        id: StreamId,
        record: &mut PendingRecord,
        to: &[u8],
    ) -> Result<(), CmdError> {
        if record.consumer != to {
            let from = std::mem::replace(&mut record.consumer, to.to_vec());
            txn.delete(stream.consumer_pel_key(&self.group, &from, id));
            self.adjust(txn, stream, &from, -1)?;
            txn.put(stream.consumer_pel_key(&self.group, to, id), Vec::new());
            self.adjust(txn, stream, to, 1)?;
        }
        self.update(txn, stream, id, record);
        Ok(())
    }

    /// Removes the PEL entry `id` (currently `record`).
    pub fn remove(
        &mut self,
        txn: &mut Txn<'_>,
        stream: &Stream,
        id: StreamId,
        record: &PendingRecord,
    ) -> Result<(), CmdError> {
        txn.delete(stream.pending_key(&self.group, id));
        txn.delete(stream.consumer_pel_key(&self.group, &record.consumer, id));
        self.adjust(txn, stream, &record.consumer, -1)?;
        self.pending_delta -= 1;
        Ok(())
    }

    /// Deletes consumer `name` and its PEL entries; returns how many it
    /// had (XGROUP DELCONSUMER's reply); `None` when it does not exist.
    pub fn delete_consumer(
        &mut self,
        txn: &mut Txn<'_>,
        stream: &Stream,
        name: &[u8],
    ) -> Result<Option<u64>, CmdError> {
        if self.get(txn, stream, name)?.is_none() {
            return Ok(None);
        }
        let ids = consumer_pel_ids(
            &*txn,
            stream,
            &self.group,
            name,
            StreamId::MIN,
            StreamId::MAX,
            usize::MAX,
        )?;
        for &id in &ids {
            txn.delete(stream.pending_key(&self.group, id));
            txn.delete(stream.consumer_pel_key(&self.group, name, id));
        }
        self.pending_delta -= ids.len() as i64;
        self.consumers.insert(name.to_vec(), (None, true));
        Ok(Some(ids.len() as u64))
    }

    /// Writes the changed consumer records; returns the change of the
    /// group's PEL size, for the caller to apply to `GroupMeta::pending`.
    pub fn finish(self, txn: &mut Txn<'_>, stream: &Stream) -> i64 {
        for (name, (record, dirty)) in self.consumers {
            if !dirty {
                continue;
            }
            let key = stream.consumer_key(&self.group, &name);
            match record {
                Some(record) => txn.put(key, record.encode_to_vec()),
                None => txn.delete(key),
            }
        }
        self.pending_delta
    }
}
