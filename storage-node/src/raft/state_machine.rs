//! The replicated state machine: applies committed entries to the Redis data
//! in RocksDB, deduplicates retried writes, and builds/installs snapshots.
//!
//! Every entry is applied as ONE atomic RocksDB write batch holding the data
//! changes, the dedup record and `last_applied`: after a crash the node
//! resumes exactly after the last entry whose effects are on disk, so no
//! entry is applied twice or half.
//!
//! Apply writes are not fsynced themselves: the log entry they come from is
//! already durable (synced append), and the DB has a single WAL, so the next
//! synced write (a log append, vote or purge) also makes them durable. The
//! log is only purged by a synced write after a snapshot covering it exists.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StorageIOError,
};
use rampart_proto::{reply, Reply};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::snapshot_file::SnapshotFiles;
use super::types::{
    codec, replies_serde, Entry, LogId, Op, Request, Response, Snapshot, SnapshotMeta,
    StorageError, StoredMembership, TypeConfig, WatchToken, WriteRun,
};
use crate::commands;
use crate::engine::keys::ChangeKind;
use crate::engine::meta::ValueType;
use crate::engine::reclaim::Reclaimer;
use crate::engine::{cf, Engine, DB};

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
/// Before snapshot files: the whole [`LegacyStoredSnapshot`] as one value.
/// Still read (data folders written by older versions) until a newer
/// snapshot replaces it.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The current [`SnapshotRecord`].
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";

/// Dedup records live this long (by the leader-stamped clock of later
/// entries); a proxy retries a batch within seconds, far below this.
pub const DEDUP_TTL_MS: i64 = 10 * 60 * 1000;
/// Records pruned per applied entry at most, so pruning never makes one
/// apply slow; steady state prunes as fast as records are created.
const DEDUP_PRUNE_PER_APPLY: usize = 64;

/// DEDUP column family layout:
/// - `r` + u32 BE len(client_id) + client_id + u64 BE seq + u32 BE part
///   → [`DedupRecord`]
/// - `t` + u64 BE (now_ms with the sign bit flipped) + the record key
///   without its `r` → empty (time index for pruning oldest first)
const DEDUP_RECORD: u8 = b'r';
const DEDUP_TIME: u8 = b't';

#[derive(Serialize, Deserialize)]
struct DedupRecord {
    now_ms: i64,
    /// prost-encoded replies.
    replies: Vec<Vec<u8>>,
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What a snapshot's bytes hold.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The DATA column family, in key order.
    data: Pairs,
    /// The DEDUP column family: a retried batch must stay deduplicated on a
    /// node that caught up through a snapshot.
    dedup: Pairs,
}

/// The current snapshot as older versions stored it in SM_META.
#[derive(Serialize, Deserialize)]
struct LegacyStoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The current snapshot, recorded in SM_META so it can be served to a
/// lagging follower after a restart; its bytes are in `file`.
#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    file: String,
}

/// What the state machine and its snapshot builders share about stored
/// snapshots.
struct SnapshotStore {
    /// Serialises "is the stored snapshot newer?" checks with writes of it.
    lock: Mutex<()>,
    files: SnapshotFiles,
    /// Added to the nice value of the thread building a snapshot, which
    /// reads and encodes the whole data set: CPU that clients need more.
    build_nice: i32,
}

impl SnapshotStore {
    /// The last log id of the stored snapshot, if any.
    fn current_last_log(db: &DB) -> Result<Option<Option<LogId>>, StorageError> {
        if let Some(r) = get_decoded::<SnapshotRecord>(db, cf::SM_META, KEY_SNAPSHOT_FILE)? {
            return Ok(Some(r.meta.last_log_id));
        }
        Ok(
            get_decoded::<LegacyStoredSnapshot>(db, cf::SM_META, KEY_SNAPSHOT)?
                .map(|l| l.meta.last_log_id),
        )
    }

    /// Stores `data` as the current snapshot unless a newer one is already
    /// stored (a build can finish after a newer snapshot was installed),
    /// and writes `extra` in the same synced batch either way.
    fn persist(
        &self,
        db: &DB,
        meta: &SnapshotMeta,
        data: &[u8],
        extra: Option<WriteBatch>,
    ) -> Result<(), StorageError> {
        let _lock = self
            .lock
            .lock()
            .map_err(|_| snap_err(ErrorVerb::Write, "snapshot lock poisoned"))?;
        let newer_exists = Self::current_last_log(db)?
            .map(|current| current > meta.last_log_id)
            .unwrap_or(false);
        let mut batch = extra.unwrap_or_default();
        let mut written = None;
        if !newer_exists {
            let file = SnapshotFiles::name_for(&meta.snapshot_id);
            self.files
                .write(&file, data)
                .map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let record = SnapshotRecord {
                meta: meta.clone(),
                file: file.clone(),
            };
            put_encoded(db, &mut batch, cf::SM_META, KEY_SNAPSHOT_FILE, &record)?;
            batch.delete_cf(cf_of(db, cf::SM_META)?, KEY_SNAPSHOT);
            written = Some(file);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(file) = written {
            // Only now is the new record durable; older files may go.
            if let Err(e) = self.files.remove_all_but(&file) {
                tracing::warn!(error = %e, "cannot delete old snapshot files");
            }
        }
        Ok(())
    }

    /// The stored snapshot's meta and bytes.
    fn load(&self, db: &DB) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StorageError> {
        if let Some(r) = get_decoded::<SnapshotRecord>(db, cf::SM_META, KEY_SNAPSHOT_FILE)? {
            let data = self
                .files
                .read(&r.file)
                .map_err(|e| snap_err(ErrorVerb::Read, e))?;
            return Ok(Some((r.meta, data)));
        }
        Ok(
            get_decoded::<LegacyStoredSnapshot>(db, cf::SM_META, KEY_SNAPSHOT)?
                .map(|l| (l.meta, l.data)),
        )
    }
}

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(e)).into()
}

fn snap_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::error(e)).into()
}

fn cf_of<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name)
        .ok_or_else(|| sm_err(ErrorVerb::Read, format!("column family {name} missing")))
}

fn dedup_record_key(client_id: &str, seq: u64, part: u32) -> Vec<u8> {
    let id = client_id.as_bytes();
    let mut key = Vec::with_capacity(1 + 4 + id.len() + 8 + 4);
    key.push(DEDUP_RECORD);
    // Client ids are short strings; a length over u32 cannot come from gRPC.
    key.extend_from_slice(&(id.len() as u32).to_be_bytes());
    key.extend_from_slice(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&part.to_be_bytes());
    key
}

fn time_key(now_ms: i64, record_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + record_key.len());
    key.push(DEDUP_TIME);
    // Flipping the sign bit makes big-endian bytes sort like the i64.
    key.extend_from_slice(&((now_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&record_key[1..]);
    key
}

fn time_key_ms(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

fn get_decoded<T: serde::de::DeserializeOwned>(
    db: &DB,
    cf_name: &str,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    let cf = cf_of(db, cf_name)?;
    match db.get_cf(cf, key).map_err(|e| sm_err(ErrorVerb::Read, e))? {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes)
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e)),
    }
}

fn put_encoded<T: Serialize>(
    db: &DB,
    batch: &mut WriteBatch,
    cf_name: &str,
    key: &[u8],
    value: &T,
) -> Result<(), StorageError> {
    let cf = cf_of(db, cf_name)?;
    let bytes = codec::encode(value).map_err(|e| sm_err(ErrorVerb::Write, e))?;
    batch.put_cf(cf, key, bytes);
    Ok(())
}

/// Told which keys applied entries wrote, once the entry is in RocksDB, so
/// clients blocked on those keys (BLPOP, BZPOPMIN...) can retry.
pub trait WriteObserver: Send + Sync + 'static {
    /// Lists, sorted sets or streams that exist after the entry and may have
    /// gained elements.
    fn keys_written(&self, keys: &[(ValueType, Vec<u8>)]);
    /// A snapshot replaced the data: any key may have changed.
    fn everything_changed(&self);
}

/// What applying an entry did besides its replies, acted on once the
/// entry's batch is written.
#[derive(Default)]
struct Applied {
    /// Lists, sorted sets and streams written (for blocked readers).
    keys: Vec<(ValueType, Vec<u8>)>,
    /// Key ranges deleted (for the reclaimer).
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The state machine over the node's RocksDB.
pub struct StateMachineStore {
    engine: Engine,
    snapshots: Arc<SnapshotStore>,
    observer: Option<Arc<dyn WriteObserver>>,
    reclaimer: Option<Reclaimer>,
    /// Where dedup pruning resumes: every time key below it is deleted.
    /// Seeking from the start of the index instead walks every tombstone
    /// of earlier prunes until compaction removes them: measured, after
    /// ~150k writes each apply spent most of the Raft thread skipping
    /// tombstones. Memory only; reset (to a full seek) at start, on
    /// snapshot install, and when a record is written below it.
    prune_from: std::sync::Mutex<Option<Vec<u8>>>,
}

impl StateMachineStore {
    pub fn new(engine: Engine) -> StateMachineStore {
        let files = SnapshotFiles::new(engine.db().path());
        StateMachineStore {
            engine,
            snapshots: Arc::new(SnapshotStore {
                lock: Mutex::new(()),
                files,
                build_nice: 0,
            }),
            observer: None,
            reclaimer: None,
            prune_from: std::sync::Mutex::new(None),
        }
    }

    fn prune_cursor(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.prune_from.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the background reclaimer of deleted ranges.
    pub fn with_reclaimer(mut self, reclaimer: Reclaimer) -> StateMachineStore {
        self.reclaimer = Some(reclaimer);
        self
    }

    /// Builds snapshots on a thread whose nice value is raised by `nice`
    /// (see [`crate::priority`]).
    pub fn with_snapshot_build_nice(mut self, nice: i32) -> StateMachineStore {
        if let Some(store) = Arc::get_mut(&mut self.snapshots) {
            store.build_nice = nice;
        }
        self
    }

    /// Adds the observer told about written keys after each apply.
    pub fn with_observer(mut self, observer: Arc<dyn WriteObserver>) -> StateMachineStore {
        self.observer = Some(observer);
        self
    }

    fn db(&self) -> &DB {
        self.engine.db()
    }

    /// Replies stored for an already applied (client_id, seq, part).
    fn dedup_lookup(&self, record_key: &[u8]) -> Result<Option<Vec<Reply>>, StorageError> {
        let Some(record) = get_decoded::<DedupRecord>(self.db(), cf::DEDUP, record_key)? else {
            return Ok(None);
        };
        replies_serde::decode(&record.replies)
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    /// Deletes up to [`DEDUP_PRUNE_PER_APPLY`] records older than the TTL.
    /// Only depends on `now_ms` from the entry and the replicated state, so
    /// every replica prunes the same records.
    fn prune_dedup(&self, now_ms: i64, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let db = self.db();
        let cf = cf_of(db, cf::DEDUP)?;
        let cutoff = now_ms.saturating_sub(DEDUP_TTL_MS);
        let mut cursor = self.prune_cursor();
        let start = cursor.clone().unwrap_or_else(|| vec![DEDUP_TIME]);
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(vec![DEDUP_TIME + 1]);
        let iter = db.iterator_cf_opt(
            cf,
            opts,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter.take(DEDUP_PRUNE_PER_APPLY) {
            let (key, _) = item.map_err(|e| sm_err(ErrorVerb::Read, e))?;
            match time_key_ms(&key) {
                Some(ms) if ms < cutoff => {
                    let mut record_key = Vec::with_capacity(key.len() - 8);
                    record_key.push(DEDUP_RECORD);
                    record_key.extend_from_slice(&key[9..]);
                    batch.delete_cf(cf, &record_key);
                    batch.delete_cf(cf, &key);
                }
                Some(_) => break,
                None => batch.delete_cf(cf, &key),
            }
            // Everything up to and including `key` is now deleted.
            let mut next = key.to_vec();
            next.push(0);
            *cursor = Some(next);
        }
        Ok(())
    }

    /// Applies one normal entry into `batch`; returns its response.
    fn apply_request(
        &self,
        index: u64,
        req: Request,
        batch: &mut WriteBatch,
        written: &mut Applied,
    ) -> Result<Response, StorageError> {
        let now_ms = req.now_ms;
        let response = match req.op {
            Op::Commands {
                client_id,
                seq,
                part,
                commands,
            } => {
                let run = WriteRun {
                    client_id,
                    seq,
                    part,
                    commands,
                };
                let mut items =
                    self.apply_runs(now_ms, index, vec![(run, None)], batch, written)?;
                Response {
                    replies: items.pop().unwrap_or_default(),
                    items: Vec::new(),
                }
            }
            Op::Batch { items } => Response {
                replies: Vec::new(),
                items: self.apply_runs(
                    now_ms,
                    index,
                    items.into_iter().map(|run| (run, None)).collect(),
                    batch,
                    written,
                )?,
            },
            Op::Transaction { run, watches } => {
                let mut items =
                    self.apply_runs(now_ms, index, vec![(run, Some(watches))], batch, written)?;
                Response {
                    replies: items.pop().unwrap_or_default(),
                    items: Vec::new(),
                }
            }
            Op::ExpireKeys { keys } => {
                let mut txn = self.engine.txn();
                txn.set_revision(index, ChangeKind::Expired);
                commands::apply_expire(&mut txn, &keys, now_ms);
                written.ranges.extend_from_slice(txn.deleted_ranges());
                *batch = txn
                    .into_write_batch()
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                Response::default()
            }
        };
        self.prune_dedup(now_ms, batch)?;
        Ok(response)
    }

    /// Applies write runs in order on ONE transaction (a later run sees the
    /// earlier ones' writes, as commands within a run do) into `batch`;
    /// returns one reply list per run.
    ///
    /// Each run is deduplicated on its own `(client_id, seq, part)`: a run
    /// already applied, by an earlier entry or earlier in this one (a retry
    /// that caught up with its original in the same batch), gets the stored
    /// replies and changes nothing.
    ///
    /// A run with watches is a MULTI/EXEC transaction: one reply, the array
    /// of its commands' replies, or a null array (nothing applied) when a
    /// watched key changed since its WATCH.
    fn apply_runs(
        &self,
        now_ms: i64,
        index: u64,
        runs: Vec<(WriteRun, Option<Vec<WatchToken>>)>,
        batch: &mut WriteBatch,
        written: &mut Applied,
    ) -> Result<Vec<Vec<Reply>>, StorageError> {
        let mut txn = self.engine.txn();
        txn.set_revision(index, ChangeKind::Write);
        let mut out = Vec::with_capacity(runs.len());
        // Dedup records of this entry, not yet in RocksDB.
        let mut records: HashMap<Vec<u8>, Vec<Reply>> = HashMap::new();
        for (run, watches) in runs {
            let record_key = (!run.client_id.is_empty())
                .then(|| dedup_record_key(&run.client_id, run.seq, run.part));
            if let Some(key) = &record_key {
                if let Some(stored) = records.get(key) {
                    out.push(stored.clone());
                    continue;
                }
                if let Some(stored) = self.dedup_lookup(key)? {
                    out.push(stored);
                    continue;
                }
            }
            let apply = |txn: &mut crate::engine::Txn<'_>| -> Vec<Reply> {
                run.commands
                    .iter()
                    .map(|argv| {
                        if argv.is_empty() {
                            reply::error("ERR empty command")
                        } else {
                            commands::apply_write(txn, argv, now_ms)
                        }
                    })
                    .collect()
            };
            let replies: Vec<Reply> = match &watches {
                None => apply(&mut txn),
                Some(watches) => {
                    let unchanged = watches
                        .iter()
                        .all(|w| commands::transactions::unchanged(&txn, w, now_ms));
                    vec![if unchanged {
                        reply::array(apply(&mut txn))
                    } else {
                        reply::null_array()
                    }]
                }
            };
            // A blocking pop that found nothing is retried under the same
            // request id when data arrives: only its successful attempt is
            // the one a retry of the request must see.
            let empty_blocking_attempt = watches.is_none()
                && run.commands.len() == 1
                && commands::is_blocking(&run.commands[0])
                && replies
                    .first()
                    .is_some_and(commands::is_empty_blocking_reply);
            if let Some(key) = record_key.filter(|_| !empty_blocking_attempt) {
                records.insert(key, replies.clone());
            }
            out.push(replies);
        }
        written.keys.extend(txn.take_written());
        written.ranges.extend_from_slice(txn.deleted_ranges());
        *batch = txn
            .into_write_batch()
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let cf = cf_of(self.db(), cf::DEDUP)?;
        for (key, replies) in records {
            let record = DedupRecord {
                now_ms,
                replies: replies_serde::encode(&replies),
            };
            let bytes = codec::encode(&record).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            let time = time_key(now_ms, &key);
            {
                // A record below the cursor (the leader's clock went back)
                // must still be pruned: fall back to a full seek.
                let mut cursor = self.prune_cursor();
                if cursor.as_ref().is_some_and(|from| time < *from) {
                    *cursor = None;
                }
            }
            batch.put_cf(cf, time, []);
            batch.put_cf(cf, key, bytes);
        }
        Ok(out)
    }

    fn apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let started = std::time::Instant::now();
        let log_id = entry.log_id;
        let mut batch = WriteBatch::default();
        let mut response = Response::default();
        let mut written = Applied::default();
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership);
                put_encoded(self.db(), &mut batch, cf::SM_META, KEY_MEMBERSHIP, &stored)?;
            }
            EntryPayload::Normal(req) => {
                response = self.apply_request(log_id.index, req, &mut batch, &mut written)?;
            }
        }
        put_encoded(
            self.db(),
            &mut batch,
            cf::SM_META,
            KEY_LAST_APPLIED,
            &Some(log_id),
        )?;
        self.db()
            .write(batch)
            .map_err(|e| StorageError::from(StorageIOError::apply(log_id, AnyError::new(&e))))?;
        metrics::histogram!(crate::metrics::RAFT_APPLY_SECONDS).record(started.elapsed());
        if let (Some(observer), false) = (&self.observer, written.keys.is_empty()) {
            observer.keys_written(&written.keys);
        }
        if let (Some(reclaimer), false) = (&self.reclaimer, written.ranges.is_empty()) {
            reclaimer.submit(written.ranges);
        }
        Ok(response)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let last: Option<LogId> =
            get_decoded::<Option<LogId>>(self.db(), cf::SM_META, KEY_LAST_APPLIED)?.flatten();
        let membership: StoredMembership =
            get_decoded(self.db(), cf::SM_META, KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((last, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        entries
            .into_iter()
            .map(|entry| self.apply_entry(entry))
            .collect()
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.engine.db().clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        *self.prune_cursor() = None;
        let payload: SnapshotPayload =
            codec::decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let db = self.db();
        let mut batch = WriteBatch::default();
        self.engine.import_data_into(&mut batch, payload.data);
        let dedup = cf_of(db, cf::DEDUP)?;
        batch.delete_range_cf(dedup, [0x00u8].as_slice(), [0xffu8].as_slice());
        batch.delete_cf(dedup, []);
        for (k, v) in payload.dedup {
            batch.put_cf(dedup, k, v);
        }
        // The meta openraft hands us is authoritative (it is what the leader
        // sent alongside the bytes).
        put_encoded(
            db,
            &mut batch,
            cf::SM_META,
            KEY_LAST_APPLIED,
            &meta.last_log_id,
        )?;
        put_encoded(
            db,
            &mut batch,
            cf::SM_META,
            KEY_MEMBERSHIP,
            &meta.last_membership,
        )?;
        // One synced batch: data, dedup, SM meta and the snapshot's record
        // (its file is durable before the batch is written).
        self.snapshots.persist(db, meta, &data, Some(batch))?;
        if let Some(observer) = &self.observer {
            observer.everything_changed();
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let db = self.engine.db().clone();
        let snapshots = self.snapshots.clone();
        // Reading a file of tens of MB: off the Raft runtime's workers.
        let stored = tokio::task::spawn_blocking(move || snapshots.load(&db))
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))??;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from one consistent RocksDB snapshot of the DATA,
/// DEDUP and SM_META column families, so `last_applied` matches the data
/// exactly even while entries keep being applied.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    snapshots: Arc<SnapshotStore>,
}

impl SnapshotBuilder {
    fn build_blocking(db: &DB) -> Result<(SnapshotPayload, Vec<u8>), StorageError> {
        let snap = db.snapshot();
        let read = |cf_name: &str, key: &[u8]| -> Result<Option<Vec<u8>>, StorageError> {
            snap.get_cf(cf_of(db, cf_name)?, key)
                .map_err(|e| snap_err(ErrorVerb::Read, e))
        };
        let last_applied: Option<LogId> = match read(cf::SM_META, KEY_LAST_APPLIED)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => None,
        };
        let membership: StoredMembership = match read(cf::SM_META, KEY_MEMBERSHIP)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => StoredMembership::default(),
        };
        let dump = |cf_name: &str| -> Result<Pairs, StorageError> {
            let mut out = Vec::new();
            for item in snap.iterator_cf(cf_of(db, cf_name)?, IteratorMode::Start) {
                let (k, v) = item.map_err(|e| snap_err(ErrorVerb::Read, e))?;
                out.push((k.into_vec(), v.into_vec()));
            }
            Ok(out)
        };
        let mut payload = SnapshotPayload {
            last_applied,
            membership,
            data: dump(cf::DATA)?,
            dedup: dump(cf::DEDUP)?,
        };
        let bytes = codec::encode(&payload).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // Only the meta is needed from here on.
        payload.data = Vec::new();
        payload.dedup = Vec::new();
        Ok((payload, bytes))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let db = self.db.clone();
        let snapshots = self.snapshots.clone();
        // Exporting the whole data set is long blocking work: on a thread of
        // its own (not the Raft runtime's workers, not the shared blocking
        // pool, whose threads must not keep the lowered priority).
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot-build".into())
            .spawn(move || {
                crate::priority::lower_current_thread_priority(snapshots.build_nice);
                let result = Self::build_and_persist(&db, &snapshots);
                // Let go of the DB before answering: the receiver may close
                // it (or the process exit) right after, and a RocksDB closed
                // from a detached thread during exit crashes.
                drop((db, snapshots));
                let _ = tx.send(result);
            })
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let (meta, data) = rx
            .await
            .map_err(|_| snap_err(ErrorVerb::Write, "snapshot build thread panicked"))??;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl SnapshotBuilder {
    fn build_and_persist(
        db: &DB,
        snapshots: &SnapshotStore,
    ) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
        let (payload, data) = Self::build_blocking(db)?;
        let snapshot_id = match payload.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term,
                id.index,
                SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            None => format!("empty-{}", SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed)),
        };
        let meta = SnapshotMeta {
            last_log_id: payload.last_applied,
            last_membership: payload.membership,
            snapshot_id,
        };
        snapshots.persist(db, &meta, &data, None)?;
        Ok((meta, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_time_keys_sort_by_time_and_round_trip() {
        let rk = dedup_record_key("c", 1, 0);
        let a = time_key(-5, &rk);
        let b = time_key(3, &rk);
        let c = time_key(1_700_000_000_000, &rk);
        assert!(a < b && b < c);
        assert_eq!(time_key_ms(&a), Some(-5));
        assert_eq!(time_key_ms(&c), Some(1_700_000_000_000));
        assert_eq!(&c[9..], &rk[1..]);
    }

    #[test]
    fn dedup_keys_of_different_clients_do_not_collide() {
        // A length prefix keeps ("ab", ..) and ("a", ..) apart even when the
        // following bytes line up.
        assert_ne!(dedup_record_key("ab", 1, 0), dedup_record_key("a", 1, 0));
        assert_ne!(dedup_record_key("a", 1, 0), dedup_record_key("a", 1, 1));
    }

    fn argv(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    fn run(client_id: &str, seq: u64, cmds: &[&[&str]]) -> WriteRun {
        WriteRun {
            client_id: client_id.into(),
            seq,
            part: 0,
            commands: cmds.iter().map(|c| argv(c)).collect(),
        }
    }

    fn entry(index: u64, op: Op) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request { now_ms: 1_000, op }),
        }
    }

    /// A data folder from before snapshot files keeps serving its stored
    /// snapshot; the first new snapshot moves to a file and drops the old
    /// value.
    #[tokio::test]
    async fn snapshots_live_in_files_and_a_legacy_stored_snapshot_is_still_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut sm = StateMachineStore::new(engine.clone());
        let legacy = LegacyStoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "legacy-1".into(),
            },
            data: b"old bytes".to_vec(),
        };
        let db = engine.db();
        let mut batch = WriteBatch::default();
        put_encoded(db, &mut batch, cf::SM_META, KEY_SNAPSHOT, &legacy).expect("encode");
        db.write(batch).expect("write");
        let served = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!(served.meta.snapshot_id, "legacy-1");
        assert_eq!(served.snapshot.into_inner(), b"old bytes");

        sm.apply_entry(entry(
            1,
            Op::Commands {
                client_id: String::new(),
                seq: 0,
                part: 0,
                commands: vec![argv(&["SET", "k", "v"])],
            },
        ))
        .expect("apply");
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        let served = sm
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!(served.meta, built.meta);
        assert_eq!(served.snapshot.into_inner(), built.snapshot.into_inner());
        assert!(
            get_decoded::<LegacyStoredSnapshot>(db, cf::SM_META, KEY_SNAPSHOT)
                .expect("read")
                .is_none(),
            "the legacy value is gone"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path().join("raft-snapshots"))
            .expect("snapshot folder")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            files,
            vec![std::ffi::OsString::from(SnapshotFiles::name_for(
                &built.meta.snapshot_id
            ))]
        );
    }

    #[test]
    fn batch_items_apply_in_order_with_their_own_dedup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open"));
        // An old-style single entry still applies.
        let old = Op::Commands {
            client_id: "a".into(),
            seq: 1,
            part: 0,
            commands: vec![argv(&["INCR", "n"])],
        };
        let resp = sm.apply_entry(entry(1, old)).expect("apply");
        assert_eq!(resp.replies, vec![reply::integer(1)]);
        assert!(resp.items.is_empty());

        let batch = Op::Batch {
            items: vec![
                run("b", 1, &[&["INCR", "n"], &["INCR", "n"]]),
                // A retry of the entry above: answered from its record.
                run("a", 1, &[&["INCR", "n"]]),
                // Sees the first item's writes.
                run("c", 1, &[&["INCR", "n"]]),
                // Same identity as the first item in the same entry.
                run("b", 1, &[&["INCR", "n"], &["INCR", "n"]]),
                // No client id: never deduplicated.
                run("", 1, &[&["INCR", "n"]]),
                run("", 1, &[&["INCR", "n"]]),
            ],
        };
        let resp = sm.apply_entry(entry(2, batch)).expect("apply");
        assert!(resp.replies.is_empty());
        assert_eq!(
            resp.items,
            vec![
                vec![reply::integer(2), reply::integer(3)],
                vec![reply::integer(1)],
                vec![reply::integer(4)],
                vec![reply::integer(2), reply::integer(3)],
                vec![reply::integer(5)],
                vec![reply::integer(6)],
            ]
        );

        // Retrying every item of the batch in a later entry changes nothing.
        let retry = Op::Batch {
            items: vec![
                run("c", 1, &[&["INCR", "n"]]),
                run("b", 1, &[&["INCR", "n"], &["INCR", "n"]]),
                run("d", 1, &[&["INCR", "n"]]),
            ],
        };
        let resp = sm.apply_entry(entry(3, retry)).expect("apply");
        assert_eq!(
            resp.items,
            vec![
                vec![reply::integer(4)],
                vec![reply::integer(2), reply::integer(3)],
                vec![reply::integer(7)],
            ]
        );
        assert_eq!(
            commands::execute_read(&sm.engine, &argv(&["GET", "n"]), 1_000),
            reply::bulk("7")
        );
    }

    fn dedup_time_keys(sm: &StateMachineStore) -> usize {
        let db = sm.db();
        let cf = db.cf_handle(cf::DEDUP).expect("cf");
        db.iterator_cf(cf, IteratorMode::Start)
            .filter(|item| {
                item.as_ref()
                    .is_ok_and(|(k, _)| k.first() == Some(&DEDUP_TIME))
            })
            .count()
    }

    fn entry_at(index: u64, now_ms: i64, client: &str) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request {
                now_ms,
                op: Op::Batch {
                    items: vec![run(client, 1, &[&["INCR", "n"]])],
                },
            }),
        }
    }

    #[test]
    fn dedup_pruning_resumes_where_it_stopped_and_catches_records_from_the_past() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open"));
        let mut index = 0;
        let mut next = || {
            index += 1;
            index
        };
        for i in 0..200 {
            sm.apply_entry(entry_at(next(), 1_000, &format!("old{i}")))
                .expect("apply");
        }
        assert_eq!(dedup_time_keys(&sm), 200);
        // Each later apply prunes up to 64 expired records, then its own
        // record stays: four applies clear all 200.
        let late = 1_000 + DEDUP_TTL_MS + 1;
        for i in 0..4 {
            sm.apply_entry(entry_at(next(), late, &format!("new{i}")))
                .expect("apply");
        }
        assert_eq!(dedup_time_keys(&sm), 4, "only the new records remain");
        // A leader whose clock is behind writes a record older than the
        // cursor: it must still be pruned once expired.
        sm.apply_entry(entry_at(next(), 500, "from-the-past"))
            .expect("apply");
        sm.apply_entry(entry_at(next(), late + 2_000, "later"))
            .expect("apply");
        assert_eq!(dedup_time_keys(&sm), 5, "the past record was pruned");
    }
}
