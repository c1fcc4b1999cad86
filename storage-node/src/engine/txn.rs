//! The write transaction of one Raft entry: an overlay of pending writes to
//! the DATA column family over RocksDB. Reads see the transaction's own
//! earlier writes (a pipelined `SET k 1; INCR k` in one entry gives 2);
//! nothing reaches RocksDB until the caller writes the batch.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use super::meta::ValueType;
use super::walk::{self, Order};
use super::{cf, keys, DataRead, Engine, EngineError, WriteBatch};

/// Write transaction for one Raft entry: an overlay over RocksDB whose reads
/// see its own writes.
pub struct Txn<'a> {
    engine: &'a Engine,
    /// Pending point writes: `Some` = put, `None` = delete.
    writes: walk::Overlay,
    /// Pending deleted ranges `[start, end)`. They precede every entry of
    /// `writes` logically: adding a range drops the writes it covers.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// User keys of lists, sorted sets and streams whose meta record this
    /// transaction wrote (they exist and may have new elements): blocked
    /// readers of those keys are told once the entry is applied.
    written: Vec<(ValueType, Vec<u8>)>,
    /// Whether every key was deleted (FLUSHALL): blocked readers of any
    /// key must look again.
    flushed: bool,
    /// When set, every user key this transaction changes gets a revision
    /// record with this log index (see [`Txn::set_revision`]).
    revision: Option<(u64, keys::ChangeKind)>,
    /// When set, reads of the applied state come from this RocksDB
    /// snapshot (a script's consistent view) instead of the latest state.
    snapshot: Option<rocksdb::Snapshot<'a>>,
    /// When set, the first read of each user key records its revision and
    /// existence in the base state (see [`Txn::track_reads`]).
    tracked: Option<RefCell<TrackedReads>>,
    /// The first RocksDB read error of this transaction. A command may
    /// turn a failed read into a reply, or ignore it; committing the entry
    /// anyway would let this replica diverge from the others (whose reads
    /// worked), so [`Txn::into_batch`] fails with it instead.
    failure: RefCell<Option<String>>,
}

#[cfg(test)]
thread_local! {
    /// Tests: make every read of the applied state fail on this thread.
    pub(crate) static FAIL_READS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The user keys a tracked transaction read, with their state in the base
/// (applied) data at the transaction's view.
struct TrackedReads {
    now_ms: i64,
    keys: BTreeMap<Vec<u8>, (u64, bool)>,
}

/// One user key a tracked transaction read: its revision (0 = never
/// changed) and whether it existed, unexpired, in the base state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadKey {
    pub key: Vec<u8>,
    pub revision: u64,
    pub existed: bool,
}

/// The base state of a transaction (its snapshot or the latest applied
/// state), without the overlay.
struct Base<'t, 'a>(&'t Txn<'a>);

impl DataRead for Base<'_, '_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.0.base_get(key)
    }

    fn walk(
        &self,
        range: (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let txn = self.0;
        walk::walk_data(txn.engine, txn.snapshot.as_ref(), None, range, order, f)
    }
}

impl<'a> Txn<'a> {
    pub(super) fn new(engine: &'a Engine) -> Txn<'a> {
        Txn {
            engine,
            writes: BTreeMap::new(),
            ranges: Vec::new(),
            written: Vec::new(),
            flushed: false,
            revision: None,
            snapshot: None,
            tracked: None,
            failure: RefCell::new(None),
        }
    }

    /// A transaction whose reads of the applied state all come from one
    /// RocksDB snapshot taken now (a Lua script's consistent view).
    pub fn over_snapshot(engine: &'a Engine) -> Txn<'a> {
        let mut txn = Txn::new(engine);
        txn.snapshot = Some(engine.db.snapshot());
        txn
    }

    /// From now on, the first read of each user key (through its meta
    /// record or its elements) records the key's revision record and
    /// whether it existed at `now_ms`, both from the base state (never the
    /// overlay), read before the value is returned. A script's commit
    /// carries them as watch tokens.
    pub fn track_reads(&mut self, now_ms: i64) {
        self.tracked = Some(RefCell::new(TrackedReads {
            now_ms,
            keys: BTreeMap::new(),
        }));
    }

    /// The keys recorded since [`Txn::track_reads`], in key order.
    pub fn read_keys(&self) -> Vec<ReadKey> {
        let Some(tracked) = &self.tracked else {
            return Vec::new();
        };
        tracked
            .borrow()
            .keys
            .iter()
            .map(|(key, &(revision, existed))| ReadKey {
                key: key.clone(),
                revision,
                existed,
            })
            .collect()
    }

    fn base_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        #[cfg(test)]
        if FAIL_READS.with(std::cell::Cell::get) {
            return Err(self.note_failure("injected read failure".into()));
        }
        let cf = self.engine.cf(cf::DATA);
        let got = match &self.snapshot {
            Some(snapshot) => snapshot.get_cf(cf, key),
            None => self.engine.db.get_cf(cf, key),
        };
        got.map_err(|e| self.note_failure(e.into_string()))
    }

    /// Remembers the first read failure (for [`Txn::into_batch`]) and
    /// returns it as the error of the read.
    fn note_failure(&self, message: String) -> EngineError {
        self.failure
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        EngineError::ReadFailed(message)
    }

    /// Whether a read of this transaction failed.
    pub fn failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// Records the user key of the raw DATA key `raw` if reads are tracked
    /// and it is the first access to that key.
    fn note_read(&self, raw: &[u8]) {
        let Some(tracked) = &self.tracked else {
            return;
        };
        let user_key = match raw.first() {
            Some(&keys::META_TAG) => keys::decode_meta_key(raw).map(|(_, k)| k),
            Some(&keys::SUB_TAG) => keys::decode_sub_key(raw).map(|(k, _, _)| k),
            _ => None,
        };
        let Some(user_key) = user_key else {
            return;
        };
        let now_ms = {
            let t = tracked.borrow();
            if t.keys.contains_key(user_key) {
                return;
            }
            t.now_ms
        };
        let base = Base(self);
        let revision = match base.get(&keys::revision_key(user_key)) {
            Ok(Some(value)) => keys::decode_revision(&value).map_or(0, |(rev, _)| rev),
            _ => 0,
        };
        let existed = matches!(super::live_meta(&base, user_key, now_ms), Ok(Some(_)));
        tracked
            .borrow_mut()
            .keys
            .insert(user_key.to_vec(), (revision, existed));
    }

    /// Stamps the user keys this transaction changes with revision `index`
    /// (the Raft log index of the entry), which WATCH compares.
    pub fn set_revision(&mut self, index: u64, kind: keys::ChangeKind) {
        self.revision = Some((index, kind));
    }

    /// The user keys whose records this transaction writes: meta records and
    /// collection elements, point writes and range deletes alike. A flush
    /// names no key (WATCH sees flushed keys as gone instead).
    fn changed_user_keys(&self) -> std::collections::BTreeSet<Vec<u8>> {
        let user_key = |raw: &[u8]| -> Option<Vec<u8>> {
            match raw.first() {
                Some(&keys::META_TAG) => keys::decode_meta_key(raw).map(|(_, k)| k.to_vec()),
                Some(&keys::SUB_TAG) => keys::decode_sub_key(raw).map(|(k, _, _)| k.to_vec()),
                _ => None,
            }
        };
        self.writes
            .keys()
            .map(|k| k.as_slice())
            .chain(self.ranges.iter().map(|(start, _)| start.as_slice()))
            .filter_map(user_key)
            .collect()
    }

    /// Records that `user_key` now holds a collection a blocked reader may
    /// be waiting for.
    pub(super) fn note_written(&mut self, kind: ValueType, user_key: &[u8]) {
        if !self
            .written
            .iter()
            .any(|(t, k)| *t == kind && k == user_key)
        {
            self.written.push((kind, user_key.to_vec()));
        }
    }

    /// The ranges deleted so far (`[start, end)`), for the reclaimer.
    pub fn deleted_ranges(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.ranges
    }

    /// The keys recorded by [`Txn::note_written`], in first-write order.
    pub fn take_written(&mut self) -> Vec<(ValueType, Vec<u8>)> {
        std::mem::take(&mut self.written)
    }

    /// Whether this transaction deleted every key (FLUSHALL / FLUSHDB).
    pub fn flushed(&self) -> bool {
        self.flushed
    }

    pub(super) fn mark_flushed(&mut self) {
        self.flushed = true;
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.ranges.is_empty()
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Deletes every key in `[start, end)`.
    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        if start >= end {
            return;
        }
        let covered: Vec<Vec<u8>> = self
            .writes
            .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
            .map(|(k, _)| k.clone())
            .collect();
        for key in covered {
            self.writes.remove(&key);
        }
        self.ranges.push((start, end));
    }

    fn range_deleted(&self, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(start, end)| start.as_slice() <= key && key < end.as_slice())
    }

    /// The atomic batch of everything written; the caller adds its own
    /// bookkeeping and writes it with [`Engine::write_batch`]. Fails if any
    /// read of the transaction failed, whatever the commands made of it:
    /// the writes may rest on data this replica could not see.
    pub fn into_batch(self) -> Result<WriteBatch<'a>, EngineError> {
        if let Some(message) = self.failure.take() {
            return Err(EngineError::ReadFailed(message));
        }
        let mut batch = self.engine.batch();
        if let Some((index, kind)) = self.revision {
            for user_key in self.changed_user_keys() {
                batch.put(
                    cf::DATA,
                    keys::revision_key(&user_key),
                    keys::encode_revision(index, kind),
                );
            }
        }
        // Ranges first: point writes made after a range delete must survive it.
        for (start, end) in &self.ranges {
            batch.delete_range(cf::DATA, start, end);
        }
        for (key, value) in &self.writes {
            match value {
                Some(value) => batch.put(cf::DATA, key, value),
                None => batch.delete(cf::DATA, key),
            }
        }
        Ok(batch)
    }
}

impl DataRead for Txn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.note_read(key);
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        if self.range_deleted(key) {
            return Ok(None);
        }
        self.base_get(key)
    }

    fn walk(
        &self,
        range: (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        let mut f = |k: &[u8], v: &[u8]| {
            self.note_read(k);
            f(k, v)
        };
        let hidden = |key: &[u8]| self.range_deleted(key);
        let pending = walk::Pending {
            writes: &self.writes,
            hidden: &hidden,
        };
        walk::walk_data(
            self.engine,
            self.snapshot.as_ref(),
            Some(pending),
            range,
            order,
            &mut f,
        )
        .map_err(|e| self.note_failure(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Engine;
    use super::*;

    fn collect(reader: &dyn DataRead, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        reader
            .for_each(start, end, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
        out
    }

    fn commit(engine: &Engine, txn: Txn<'_>) {
        let batch = txn.into_batch().unwrap();
        engine.write_batch(batch, false).unwrap();
    }

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn tracked_reads_record_base_revisions_of_first_accesses() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        txn.set_revision(7, keys::ChangeKind::Write);
        crate::commands::apply_write(
            &mut txn,
            &[b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()],
            0,
        );
        commit(&engine, txn);
        let mut txn = Txn::over_snapshot(&engine);
        txn.track_reads(0);
        // Written after the snapshot: the script's view does not see it.
        let mut later = engine.txn();
        later.put(keys::meta_key(b"zzz"), b"x".to_vec());
        commit(&engine, later);
        for argv in [
            &["GET", "a"][..],
            &["INCR", "b"],
            &["GET", "zzz"],
            &["GET", "b"],
        ] {
            let argv: Vec<Vec<u8>> = argv.iter().map(|s| s.as_bytes().to_vec()).collect();
            crate::commands::apply_write(&mut txn, &argv, 0);
        }
        let reads = txn.read_keys();
        let summary: Vec<(&[u8], u64, bool)> = reads
            .iter()
            .map(|r| (r.key.as_slice(), r.revision, r.existed))
            .collect();
        // "b" was created by the transaction itself: recorded as absent.
        assert_eq!(
            summary,
            vec![
                (&b"a"[..], 7, true),
                (&b"b"[..], 0, false),
                (&b"zzz"[..], 0, false)
            ]
        );
    }

    #[test]
    fn reads_see_own_writes_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        txn.put(b"a".to_vec(), b"1".to_vec());
        assert_eq!(txn.get(b"a").unwrap(), Some(b"1".to_vec()));
        // Not visible outside before the batch is written.
        assert_eq!(engine.read_view().get(b"a").unwrap(), None);
        commit(&engine, txn);
        assert_eq!(engine.read_view().get(b"a").unwrap(), Some(b"1".to_vec()));

        let mut txn = engine.txn();
        txn.delete(b"a".to_vec());
        assert_eq!(txn.get(b"a").unwrap(), None);
        assert!(!txn.is_empty());
    }

    #[test]
    fn delete_ranges_hide_database_keys_but_not_later_puts() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        for k in ["a", "b", "c", "d"] {
            txn.put(k.as_bytes().to_vec(), b"old".to_vec());
        }
        commit(&engine, txn);

        let mut txn = engine.txn();
        txn.put(b"b2".to_vec(), b"gone".to_vec());
        txn.delete_range(b"b".to_vec(), b"d".to_vec());
        txn.put(b"c".to_vec(), b"new".to_vec());
        assert_eq!(txn.get(b"b").unwrap(), None);
        assert_eq!(txn.get(b"b2").unwrap(), None);
        assert_eq!(txn.get(b"c").unwrap(), Some(b"new".to_vec()));
        assert_eq!(txn.get(b"d").unwrap(), Some(b"old".to_vec()));
        let expected = vec![kv("a", "old"), kv("c", "new"), kv("d", "old")];
        assert_eq!(collect(&txn, b"", b"z"), expected);
        commit(&engine, txn);
        assert_eq!(collect(&engine.read_view(), b"", b"z"), expected);
    }

    #[test]
    fn iteration_merges_overlay_and_database_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        for k in ["b", "d", "f"] {
            txn.put(k.as_bytes().to_vec(), b"db".to_vec());
        }
        commit(&engine, txn);
        let mut txn = engine.txn();
        txn.put(b"a".to_vec(), b"tx".to_vec());
        txn.put(b"d".to_vec(), b"tx".to_vec());
        txn.delete(b"f".to_vec());
        txn.put(b"e".to_vec(), b"tx".to_vec());
        assert_eq!(
            collect(&txn, b"", b"z"),
            vec![kv("a", "tx"), kv("b", "db"), kv("d", "tx"), kv("e", "tx")]
        );
        assert_eq!(collect(&txn, b"c", b"e"), vec![kv("d", "tx")]);
        let mut rev = Vec::new();
        txn.for_each_rev(b"", b"z", &mut |k, v| {
            rev.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
        assert_eq!(
            rev,
            vec![kv("e", "tx"), kv("d", "tx"), kv("b", "db"), kv("a", "tx")]
        );
        let mut view_rev = Vec::new();
        engine
            .read_view()
            .for_each_rev(b"b", b"f", &mut |k, _| {
                view_rev.push(k.to_vec());
                true
            })
            .unwrap();
        assert_eq!(view_rev, vec![b"d".to_vec(), b"b".to_vec()]);
        // Stopping early is honoured.
        let mut seen = 0;
        txn.for_each(b"", b"z", &mut |_, _| {
            seen += 1;
            seen < 2
        })
        .unwrap();
        assert_eq!(seen, 2);
    }

    #[test]
    fn both_directions_agree_with_range_deletes_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        for k in ["a", "b", "c", "d", "e", "f"] {
            txn.put(k.as_bytes().to_vec(), b"db".to_vec());
        }
        commit(&engine, txn);
        let mut txn = engine.txn();
        txn.delete_range(b"b".to_vec(), b"e".to_vec());
        txn.put(b"c".to_vec(), b"tx".to_vec());
        txn.put(b"g".to_vec(), b"tx".to_vec());
        let forward = collect(&txn, b"a", b"g");
        assert_eq!(
            forward,
            vec![kv("a", "db"), kv("c", "tx"), kv("e", "db"), kv("f", "db")]
        );
        let mut backward = Vec::new();
        txn.walk((b"a", b"g"), Order::Descending, &mut |k, v| {
            backward.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
        backward.reverse();
        assert_eq!(backward, forward, "the end bound excludes the pending g");
        let mut first_two = Vec::new();
        txn.for_each_rev(b"", b"z", &mut |k, _| {
            first_two.push(k.to_vec());
            first_two.len() < 2
        })
        .unwrap();
        assert_eq!(first_two, vec![b"g".to_vec(), b"f".to_vec()]);
    }
}
