//! The storage engine: one RocksDB instance holding the Raft log and the Redis
//! data in separate column families, behind a narrow API.
//!
//! One DB (not two) on purpose: a single WAL means the synced write of a Raft
//! log append also makes every earlier state-machine write durable.
//!
//! Callers never see RocksDB: the engine offers named operations (point
//! reads and writes of a column family, ordered scans, atomic [`WriteBatch`]
//! writes, consistent [`EngineSnapshot`]s, flush/compaction and property
//! queries) and RocksDB's types stay in this module, as in TiKV's engine
//! traits. Swapping or tuning the storage library touches `engine/` only.
//!
//! CONTRACT (shared by `commands/` and `raft/`; change only together):
//! - `Engine::open(dir)` opens/creates the DB with all column families in
//!   [`cf`].
//! - `commands/` reads through [`ReadView`] (point-in-time reads for one
//!   command) and writes through [`Txn`] (an overlay: reads see the txn's own
//!   earlier writes; nothing reaches RocksDB until the state machine commits).
//! - `raft/` turns a `Txn` into a [`WriteBatch`] with [`Txn::into_batch`],
//!   adds its own `sm_meta`/`dedup` writes, and writes the batch atomically
//!   with [`Engine::write_batch`].

mod bulk;
pub mod keys;
mod keyspace;
pub mod meta;
pub mod reclaim;
mod txn;
mod walk;
#[cfg(test)]
pub(crate) use txn::FAIL_READS;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteOptions};

pub use bulk::{SstBuilder, SstOptions};
pub use keyspace::{key_counts, live_meta, load_meta, KeyCounts};
pub use txn::{ReadKey, Txn};
pub use walk::Order;
/// Column family names.
pub mod cf {
    /// Raft log entries, keyed by big-endian index.
    pub const RAFT_LOG: &str = "raft_log";
    /// Raft vote, committed index, last purged log id.
    pub const RAFT_META: &str = "raft_meta";
    /// Redis data: meta records, sub-keys, expiry index, counters.
    pub const DATA: &str = "data";
    /// State machine bookkeeping: last applied log id, membership.
    pub const SM_META: &str = "sm_meta";
    /// Replies of applied writes by (client id, seq, part), for retries.
    pub const DEDUP: &str = "dedup";
    pub const ALL: &[&str] = &[RAFT_LOG, RAFT_META, DATA, SM_META, DEDUP];
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A read inside a write transaction failed earlier (see
    /// [`Txn::into_batch`]).
    #[error("a read of the transaction failed: {0}")]
    ReadFailed(String),
    /// A read command gathered more than `max-reply-bytes` (see
    /// `commands::budget`); answered with a Redis error, not logged.
    #[error("reply exceeds {limit} bytes")]
    ReplyTooLarge { limit: usize },
}

type DB = rocksdb::DB;

/// One RocksDB key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Cheap to clone; all clones share one RocksDB instance.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
}

/// Shared by every column family, so hot data of any kind competes for one
/// memory budget.
const BLOCK_CACHE_BYTES: usize = 256 << 20;

impl Engine {
    pub fn open(dir: &Path) -> Result<Engine, EngineError> {
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Point reads (GET, meta lookups) dominate: a bloom filter saves
        // most misses a disk read.
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        // Partitioned index and filters: with one monolithic filter block
        // per SST, a file holding a million-element collection has a filter
        // of megabytes, larger than a cache shard, so every point read
        // re-read and re-checksummed it from disk (measured: 10x slower
        // reads of small keys once such a file existed). Partitions are
        // 4 KiB blocks cached like data; the small top level stays pinned.
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_metadata_block_size(4096);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);

        let mut cf_opts = rocksdb::Options::default();
        cf_opts.set_block_based_table_factory(&table);
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.increase_parallelism(2);

        let descriptors = cf::ALL
            .iter()
            .map(|name| rocksdb::ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, dir, descriptors)?;
        Ok(Engine { db: Arc::new(db) })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened at start")
    }

    /// The folder the DB lives in (the node's data folder; Raft snapshot
    /// files are kept beside the RocksDB files).
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// An empty batch of writes, for [`Engine::write_batch`].
    pub fn batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            engine: self,
            raw: rocksdb::WriteBatch::default(),
        }
    }

    /// Writes `batch` atomically; with `sync` the WAL is fsynced before
    /// returning (and with it every earlier unsynced write).
    pub fn write_batch(&self, batch: WriteBatch<'_>, sync: bool) -> Result<(), EngineError> {
        Ok(self.db.write_opt(batch.into(), &write_options(sync))?)
    }

    /// The value of `key` in column family `cf`, latest state.
    pub fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Writes one value of column family `cf` (see [`Engine::write_batch`]
    /// for `sync`).
    pub fn put_cf(
        &self,
        cf: &str,
        key: &[u8],
        value: &[u8],
        sync: bool,
    ) -> Result<(), EngineError> {
        Ok(self
            .db
            .put_cf_opt(self.cf(cf), key, value, &write_options(sync))?)
    }

    /// The pairs of column family `cf` from `start` on, in key order, below
    /// `end` if given; latest state. Stop reading whenever you like.
    pub fn iter_cf<'a>(
        &'a self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Pair, EngineError>> + 'a {
        let mut opts = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        self.db
            .iterator_cf_opt(
                self.cf(cf),
                opts,
                IteratorMode::From(start, Direction::Forward),
            )
            .map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(EngineError::from)
            })
    }

    /// The pair with the largest key of column family `cf`, if any.
    pub fn last_cf(&self, cf: &str) -> Result<Option<Pair>, EngineError> {
        match self.db.iterator_cf(self.cf(cf), IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.into_vec(), v.into_vec())))
            }
        }
    }

    /// A consistent point-in-time view of every column family (for
    /// building a Raft snapshot whose applied index matches its data).
    ///
    /// This is the one lower-level handle `raft/` gets: openraft's snapshot
    /// is the state machine as of one applied index, which several
    /// independent reads cannot give while entries keep being applied.
    /// It offers reads only.
    pub fn snapshot(&self) -> EngineSnapshot<'_> {
        EngineSnapshot {
            engine: self,
            snapshot: self.db.snapshot(),
        }
    }

    /// Flushes the memtable of column family `cf` to SST files.
    pub fn flush_cf(&self, cf: &str) -> Result<(), EngineError> {
        Ok(self.db.flush_cf(self.cf(cf))?)
    }

    /// RocksDB's estimate of the on-disk bytes of `[start, end)` in column
    /// family `cf`.
    pub fn approximate_size_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> u64 {
        self.db
            .get_approximate_sizes_cf(self.cf(cf), &[rocksdb::Range::new(start, end)])
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// Compacts `[start, end)` of column family `cf` (rewrites the files
    /// holding it, dropping deleted records).
    pub fn compact_range_cf(&self, cf: &str, start: &[u8], end: &[u8]) {
        self.db
            .compact_range_cf(self.cf(cf), Some(start), Some(end));
    }

    /// An integer property of the whole DB (e.g.
    /// `rocksdb.is-write-stopped`), for metrics.
    pub fn property_int(&self, name: &str) -> Result<Option<u64>, EngineError> {
        Ok(self.db.property_int_value(name)?)
    }

    /// An integer property of column family `cf` (e.g.
    /// `rocksdb.total-sst-files-size`), for metrics; `None` if unknown.
    pub fn property_int_cf(&self, cf: &str, name: &str) -> Result<Option<u64>, EngineError> {
        let Some(handle) = self.db.cf_handle(cf) else {
            return Ok(None);
        };
        Ok(self.db.property_int_value_cf(handle, name)?)
    }

    /// A read view for executing read commands (reads the latest applied
    /// state; one command runs against one view).
    pub fn read_view(&self) -> ReadView<'_> {
        ReadView {
            engine: self,
            snapshot: self.db.snapshot(),
        }
    }

    /// Starts a write transaction for applying one Raft entry.
    pub fn txn(&self) -> Txn<'_> {
        Txn::new(self)
    }

    /// All key/value pairs of the DATA column family in key order (tests:
    /// snapshots stream them instead, see [`EngineSnapshot::for_each_cf`]).
    #[cfg(test)]
    pub(crate) fn export_data(&self) -> Result<Vec<Pair>, EngineError> {
        let view = self.read_view();
        let (start, end) = keys::whole_range();
        let mut out = Vec::new();
        view.for_each(&start, &end, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Up to `limit` user keys whose TTL is at or before `now_ms`, from the
    /// expiry index (for the leader's active expiry).
    pub fn expired_keys(&self, now_ms: i64, limit: usize) -> Result<Vec<Vec<u8>>, EngineError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let start = vec![keys::EXPIRY_TAG];
        let end = keys::expiry_upper_bound(now_ms);
        self.read_view().for_each(&start, &end, &mut |k, _| {
            if let Some((_, user_key)) = keys::decode_expiry_key(k) {
                out.push(user_key.to_vec());
            }
            out.len() < limit
        })?;
        Ok(out)
    }
}

fn write_options(sync: bool) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    opts
}

/// Writes to any column families, applied all or nothing by
/// [`Engine::write_batch`]. Made by [`Engine::batch`] or
/// [`Txn::into_batch`].
pub struct WriteBatch<'e> {
    engine: &'e Engine,
    raw: rocksdb::WriteBatch,
}

impl WriteBatch<'_> {
    pub fn put(&mut self, cf: &str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.raw.put_cf(self.engine.cf(cf), key, value);
    }

    pub fn delete(&mut self, cf: &str, key: impl AsRef<[u8]>) {
        self.raw.delete_cf(self.engine.cf(cf), key);
    }

    /// Deletes every key in `[start, end)` of column family `cf`.
    pub fn delete_range(&mut self, cf: &str, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.raw
            .delete_range_cf(self.engine.cf(cf), start.as_ref(), end.as_ref());
    }
}

impl From<WriteBatch<'_>> for rocksdb::WriteBatch {
    fn from(batch: WriteBatch<'_>) -> rocksdb::WriteBatch {
        batch.raw
    }
}

/// Reads of every column family as of one instant (see
/// [`Engine::snapshot`]).
pub struct EngineSnapshot<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::Snapshot<'a>,
}

impl EngineSnapshot<'_> {
    /// The value of `key` in column family `cf` at the snapshot.
    pub fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.snapshot.get_cf(self.engine.cf(cf), key)?)
    }

    /// Calls `f` with every pair of column family `cf` at the snapshot, in
    /// key order, without collecting them (a snapshot may be gigabytes);
    /// stops at `f`'s first error. Bypasses the block cache: a full scan
    /// would evict what client reads need.
    pub fn for_each_cf<E: From<EngineError>>(
        &self,
        cf: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        let mut it = self.snapshot.raw_iterator_cf_opt(self.engine.cf(cf), opts);
        it.seek_to_first();
        while let Some((k, v)) = it.item() {
            f(k, v)?;
            it.next();
        }
        it.status().map_err(EngineError::from)?;
        Ok(())
    }
}

/// Point reads and ordered range reads of the DATA column family: what
/// command code needs, implemented by [`ReadView`] (applied state) and
/// [`Txn`] (applied state plus the transaction's own writes).
/// The big-endian counter stored under setting `name` (0 when absent or
/// malformed): the version of replicated tables such as ACL users and
/// CONFIG values.
pub fn setting_version<R: DataRead + ?Sized>(r: &R, name: &[u8]) -> u64 {
    r.get(&keys::setting_key(name))
        .ok()
        .flatten()
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub trait DataRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Calls `f` with every pair whose key is in `[start, end)`, in `order`,
    /// until `f` returns false.
    fn walk(
        &self,
        range: (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError>;

    /// [`DataRead::walk`] in ascending key order.
    fn for_each(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        self.walk((start, end), Order::Ascending, f)
    }

    /// [`DataRead::walk`] in descending key order (for ZREVRANGE, ZPOPMAX
    /// and other reads from the high end of a sorted index).
    fn for_each_rev(
        &self,
        start: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        self.walk((start, end), Order::Descending, f)
    }

    /// Counts `bytes` a command is about to put in its reply without
    /// reading them (repeated random picks); only a budgeted reader
    /// (`commands::budget`) refuses.
    fn charge(&self, _bytes: usize) -> Result<(), EngineError> {
        Ok(())
    }
}

/// Read access to the applied data for one read command: every read of the
/// view sees the same RocksDB snapshot, so a multi-key read (MGET, SCAN
/// page) never mixes state from before and after an apply.
pub struct ReadView<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::Snapshot<'a>,
}

impl DataRead for ReadView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.snapshot.get_cf(self.engine.cf(cf::DATA), key)?)
    }

    fn walk(
        &self,
        range: (&[u8], &[u8]),
        order: Order,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), EngineError> {
        walk::walk_data(self.engine, Some(&self.snapshot), None, range, order, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_every_column_family_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(dir.path()).unwrap();
            for name in cf::ALL {
                assert!(engine.db.cf_handle(name).is_some(), "{name}");
            }
            let mut txn = engine.txn();
            txn.put(b"mkey".to_vec(), b"v".to_vec());
            engine
                .write_batch(txn.into_batch().unwrap(), false)
                .unwrap();
        }
        let engine = Engine::open(dir.path()).unwrap();
        assert_eq!(
            engine.read_view().get(b"mkey").unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn read_view_is_a_consistent_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let view = engine.read_view();
        let mut txn = engine.txn();
        txn.put(b"k".to_vec(), b"v".to_vec());
        engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        assert_eq!(view.get(b"k").unwrap(), None);
        assert_eq!(engine.read_view().get(b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_streamed_export_ingested_elsewhere_replaces_all_data() {
        let dir = tempfile::tempdir().unwrap();
        let source = Engine::open(dir.path()).unwrap();
        let mut txn = source.txn();
        txn.put(
            keys::meta_key(b"a"),
            meta::Meta::string(b"1".to_vec(), 0).encode(),
        );
        txn.put(
            keys::counter_key(keys::COUNTER_KEYS),
            1i64.to_be_bytes().to_vec(),
        );
        source
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        let pairs = source.export_data().unwrap();
        assert_eq!(pairs.len(), 2);

        let dir2 = tempfile::tempdir().unwrap();
        let target = Engine::open(&dir2.path().join("db")).unwrap();
        let mut txn = target.txn();
        txn.put(keys::meta_key(b"stale"), b"x".to_vec());
        target
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        let opts = SstOptions::new();
        let mut sst = SstBuilder::new(&opts, dir2.path(), "data");
        source
            .snapshot()
            .for_each_cf(cf::DATA, |k: &[u8], v: &[u8]| sst.put(k, v))
            .unwrap();
        let files = sst.finish().unwrap();
        let mut batch = target.batch();
        target.clear_data_into(&mut batch);
        target.write_batch(batch, false).unwrap();
        target.ingest_cf(cf::DATA, &files).unwrap();
        assert_eq!(target.export_data().unwrap(), pairs);
    }

    #[test]
    fn expired_keys_come_from_the_index_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        txn.put(keys::expiry_key(300, b"late"), Vec::new());
        txn.put(keys::expiry_key(100, b"early"), Vec::new());
        txn.put(keys::expiry_key(200, b"mid"), Vec::new());
        engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        assert_eq!(
            engine.expired_keys(200, 10).unwrap(),
            vec![b"early".to_vec(), b"mid".to_vec()]
        );
        assert_eq!(
            engine.expired_keys(1_000, 1).unwrap(),
            vec![b"early".to_vec()]
        );
        assert!(engine.expired_keys(99, 10).unwrap().is_empty());
        assert!(engine.expired_keys(1_000, 0).unwrap().is_empty());
    }
}
