//! The snapshot store: builds Raft snapshots of the state machine, installs
//! the ones a leader sends, and keeps the current one (its meta in
//! `cf::SM_META`, its bytes in a file, see [`super::snapshot_file`]) so it
//! can be served to a lagging follower, also after a restart.
//!
//! Apart from apply because a snapshot is about the whole state machine at
//! one applied index, not about entries: it has its own consistency rule
//! (one engine snapshot for the data, the dedup records and
//! `last_applied`), its own durability rule (file durable before the
//! record naming it; installed data, applied state and record in one
//! synced batch) and its own thread.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::{ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::dedup;
use super::sm_meta::{get_decoded, put_encoded, snap_err, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use super::snapshot_file::SnapshotFiles;
use super::types::{
    codec, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::engine::{cf, Engine, Pair, WriteBatch};

/// Before snapshot files: the whole [`LegacyStoredSnapshot`] as one value.
/// Still read (data folders written by older versions) until a newer
/// snapshot replaces it.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The current [`SnapshotRecord`].
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

/// What a snapshot's bytes hold.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The DATA column family, in key order.
    data: Vec<Pair>,
    /// The DEDUP column family: a retried batch must stay deduplicated on a
    /// node that caught up through a snapshot.
    dedup: Vec<Pair>,
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
pub(super) struct SnapshotStore {
    engine: Engine,
    /// Serialises "is the stored snapshot newer?" checks with writes of it.
    lock: Mutex<()>,
    files: SnapshotFiles,
    /// Added to the nice value of the thread building a snapshot, which
    /// reads and encodes the whole data set: CPU that clients need more.
    build_nice: i32,
}

impl SnapshotStore {
    /// The store of `engine`'s snapshots; files beside its RocksDB files.
    pub(super) fn new(engine: Engine) -> SnapshotStore {
        let files = SnapshotFiles::new(engine.path());
        SnapshotStore {
            engine,
            lock: Mutex::new(()),
            files,
            build_nice: 0,
        }
    }

    /// Builds snapshots on a thread whose nice value is raised by `nice`
    /// (see [`crate::priority`]).
    pub(super) fn set_build_nice(&mut self, nice: i32) {
        self.build_nice = nice;
    }

    /// The last log id of the stored snapshot, if any.
    fn current_last_log(&self) -> Result<Option<Option<LogId>>, StorageError> {
        if let Some(r) =
            get_decoded::<SnapshotRecord>(&self.engine, cf::SM_META, KEY_SNAPSHOT_FILE)?
        {
            return Ok(Some(r.meta.last_log_id));
        }
        Ok(
            get_decoded::<LegacyStoredSnapshot>(&self.engine, cf::SM_META, KEY_SNAPSHOT)?
                .map(|l| l.meta.last_log_id),
        )
    }

    /// Stores `data` as the current snapshot unless a newer one is already
    /// stored (a build can finish after a newer snapshot was installed),
    /// and writes `extra` in the same synced batch either way.
    fn persist(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        extra: Option<WriteBatch<'_>>,
    ) -> Result<(), StorageError> {
        let _lock = self
            .lock
            .lock()
            .map_err(|_| snap_err(ErrorVerb::Write, "snapshot lock poisoned"))?;
        let newer_exists = self
            .current_last_log()?
            .map(|current| current > meta.last_log_id)
            .unwrap_or(false);
        let mut batch = extra.unwrap_or_else(|| self.engine.batch());
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
            put_encoded(&mut batch, cf::SM_META, KEY_SNAPSHOT_FILE, &record)?;
            batch.delete(cf::SM_META, KEY_SNAPSHOT);
            written = Some(file);
        }
        self.engine
            .write_batch(batch, true)
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
    pub(super) fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StorageError> {
        if let Some(r) =
            get_decoded::<SnapshotRecord>(&self.engine, cf::SM_META, KEY_SNAPSHOT_FILE)?
        {
            let data = self
                .files
                .read(&r.file)
                .map_err(|e| snap_err(ErrorVerb::Read, e))?;
            return Ok(Some((r.meta, data)));
        }
        Ok(
            get_decoded::<LegacyStoredSnapshot>(&self.engine, cf::SM_META, KEY_SNAPSHOT)?
                .map(|l| (l.meta, l.data)),
        )
    }

    /// Replaces the state machine (data, dedup records, applied state) with
    /// the snapshot `data` described by `meta`, and stores it as the
    /// current snapshot: one synced batch (the file is durable before it).
    pub(super) fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        let payload: SnapshotPayload =
            codec::decode(&data).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let mut batch = self.engine.batch();
        self.engine.import_data_into(&mut batch, payload.data);
        dedup::import_into(&mut batch, payload.dedup);
        // The meta openraft hands us is authoritative (it is what the leader
        // sent alongside the bytes).
        put_encoded(&mut batch, cf::SM_META, KEY_LAST_APPLIED, &meta.last_log_id)?;
        put_encoded(
            &mut batch,
            cf::SM_META,
            KEY_MEMBERSHIP,
            &meta.last_membership,
        )?;
        // One synced batch: data, dedup, SM meta and the snapshot's record
        // (its file is durable before the batch is written).
        self.persist(meta, &data, Some(batch))
    }

    /// Encodes the state machine from one consistent engine snapshot of
    /// the DATA, DEDUP and SM_META column families, so `last_applied`
    /// matches the data exactly even while entries keep being applied.
    fn build(&self) -> Result<(SnapshotPayload, Vec<u8>), StorageError> {
        let snap = self.engine.snapshot();
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>, StorageError> {
            snap.get_cf(cf::SM_META, key)
                .map_err(|e| snap_err(ErrorVerb::Read, e))
        };
        let last_applied: Option<LogId> = match read(KEY_LAST_APPLIED)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => None,
        };
        let membership: StoredMembership = match read(KEY_MEMBERSHIP)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => StoredMembership::default(),
        };
        let mut payload = SnapshotPayload {
            last_applied,
            membership,
            data: snap
                .export_cf(cf::DATA)
                .map_err(|e| snap_err(ErrorVerb::Read, e))?,
            dedup: dedup::export(&snap).map_err(|e| snap_err(ErrorVerb::Read, e))?,
        };
        let bytes = codec::encode(&payload).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // Only the meta is needed from here on.
        payload.data = Vec::new();
        payload.dedup = Vec::new();
        Ok((payload, bytes))
    }

    /// Builds a snapshot and stores it as the current one.
    fn build_and_persist(&self) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
        let (payload, data) = self.build()?;
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
        self.persist(&meta, &data, None)?;
        Ok((meta, data))
    }
}

/// Builds a snapshot (see [`SnapshotStore::build`]) on a thread of its own
/// and stores it as the current one.
pub struct SnapshotBuilder {
    store: Arc<SnapshotStore>,
}

impl SnapshotBuilder {
    pub(super) fn new(store: Arc<SnapshotStore>) -> SnapshotBuilder {
        SnapshotBuilder { store }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let store = self.store.clone();
        // Exporting the whole data set is long blocking work: on a thread of
        // its own (not the Raft runtime's workers, not the shared blocking
        // pool, whose threads must not keep the lowered priority).
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot-build".into())
            .spawn(move || {
                crate::priority::lower_current_thread_priority(store.build_nice);
                let result = store.build_and_persist();
                // Let go of the DB before answering: the receiver may close
                // it (or the process exit) right after, and a RocksDB closed
                // from a detached thread during exit crashes.
                drop(store);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands;

    fn log_id(index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(1, 1), index)
    }

    /// Writes `SET key value` and `last_applied = index` as an applied entry
    /// would.
    fn apply_set(engine: &Engine, index: u64, key: &str, value: &str) {
        let mut txn = engine.txn();
        let argv = [b"SET".to_vec(), key.into(), value.into()];
        commands::apply_write(&mut txn, &argv, 1_000);
        let mut batch = txn.into_batch().expect("batch");
        put_encoded(
            &mut batch,
            cf::SM_META,
            KEY_LAST_APPLIED,
            &Some(log_id(index)),
        )
        .expect("encode");
        engine.write_batch(batch, false).expect("write");
    }

    fn snapshot_files(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir.join("raft-snapshots"))
            .expect("snapshot folder")
            .map(|e| e.expect("entry").file_name())
            .collect()
    }

    /// A data folder from before snapshot files keeps serving its stored
    /// snapshot; the first new snapshot moves to a file and drops the old
    /// value.
    #[test]
    fn snapshots_live_in_files_and_a_legacy_stored_snapshot_is_still_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let store = SnapshotStore::new(engine.clone());
        let legacy = LegacyStoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: None,
                last_membership: StoredMembership::default(),
                snapshot_id: "legacy-1".into(),
            },
            data: b"old bytes".to_vec(),
        };
        let mut batch = engine.batch();
        put_encoded(&mut batch, cf::SM_META, KEY_SNAPSHOT, &legacy).expect("encode");
        engine.write_batch(batch, false).expect("write");
        let (meta, data) = store.load().expect("read").expect("some");
        assert_eq!(meta.snapshot_id, "legacy-1");
        assert_eq!(data, b"old bytes");

        apply_set(&engine, 1, "k", "v");
        let built = store.build_and_persist().expect("build");
        assert_eq!(built.0.last_log_id, Some(log_id(1)));
        let served = store.load().expect("read").expect("some");
        assert_eq!(served, built);
        assert!(
            get_decoded::<LegacyStoredSnapshot>(&engine, cf::SM_META, KEY_SNAPSHOT)
                .expect("read")
                .is_none(),
            "the legacy value is gone"
        );
        assert_eq!(
            snapshot_files(dir.path()),
            vec![std::ffi::OsString::from(SnapshotFiles::name_for(
                &built.0.snapshot_id
            ))]
        );
    }

    /// A build that finishes after a newer snapshot was installed does not
    /// replace it.
    #[test]
    fn an_older_build_never_replaces_a_newer_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let store = SnapshotStore::new(engine.clone());
        apply_set(&engine, 5, "k", "new");
        let newer = store.build_and_persist().expect("build");

        let old_dir = tempfile::tempdir().expect("tempdir");
        let old_engine = Engine::open(old_dir.path()).expect("open");
        apply_set(&old_engine, 3, "k", "old");
        let (old_meta, old_data) = SnapshotStore::new(old_engine)
            .build_and_persist()
            .expect("build");
        store.persist(&old_meta, &old_data, None).expect("persist");
        assert_eq!(store.load().expect("read").expect("some"), newer);
        assert_eq!(
            snapshot_files(dir.path()),
            vec![std::ffi::OsString::from(SnapshotFiles::name_for(
                &newer.0.snapshot_id
            ))]
        );
    }
}
