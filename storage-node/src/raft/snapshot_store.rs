//! The snapshot store: builds Raft snapshots of the state machine, installs
//! the ones a leader sends, and keeps the current one (its meta in
//! `cf::SM_META`, its bytes in a file, see [`super::snapshot_file`]) so it
//! can be served to a lagging follower, also after a restart.
//!
//! Apart from apply because a snapshot is about the whole state machine at
//! one applied index, not about entries: it has its own consistency rule
//! (one engine snapshot for the data, the dedup records and
//! `last_applied`), its own durability rule (file durable before the
//! record naming it) and its own thread.
//!
//! Nothing here holds the data set in memory: a build streams an engine
//! snapshot into a file ([`super::snapshot_format`]); an install streams
//! the received file into SST files and ingests them.
//!
//! Install atomicity. Replacing gigabytes cannot be one write batch, so an
//! install is made redoable instead:
//! 1. the received file is fsynced and renamed to its final name;
//! 2. it is read whole into staged SST files (a corrupt file fails here,
//!    before anything changed);
//! 3. one synced batch records "installing this snapshot" and clears DATA
//!    and DEDUP;
//! 4. the SST files are ingested;
//! 5. one synced batch writes `last_applied`, membership and the current
//!    snapshot record, and drops the "installing" record.
//!
//! A crash between 3 and 5 leaves the "installing" record; the next start
//! redoes 2–5 from the file (in `applied_state`, before openraft reads the
//! applied state), so a half-installed state is never taken for installed.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use std::fs;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::{ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::dedup;
use super::sm_meta::{get_decoded, put_encoded, snap_err, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use super::snapshot_file::{SnapshotFile, SnapshotFiles};
use super::snapshot_format::{self, FormatError, Header, Section, Sink};
use super::types::{
    codec, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::engine::{cf, Engine, EngineError, SstBuilder, SstOptions};

/// Before snapshot files: the whole [`LegacyStoredSnapshot`] as one value.
/// Still read (data folders written by older versions): moved to a file
/// the first time it is served.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The current [`SnapshotRecord`].
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";
/// The [`SnapshotRecord`] of an install that has started changing the data
/// and not finished (see the module doc).
const KEY_INSTALLING: &[u8] = b"snapshot_installing";

/// Buffer of the build's file writes and the install's file reads.
const IO_BUFFER: usize = 1 << 20;

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

/// The current snapshot as older versions stored it in SM_META.
#[derive(Serialize, Deserialize)]
struct LegacyStoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// A snapshot recorded in SM_META (served to a lagging follower after a
/// restart); its bytes are in `file`.
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
    /// Made once at start: deletes files a crash left half written.
    pub(super) fn new(engine: Engine) -> SnapshotStore {
        let files = SnapshotFiles::new(engine.path());
        if let Err(e) = files.remove_leftovers() {
            tracing::warn!(error = %e, "cannot delete unfinished snapshot files");
        }
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

    pub(super) fn files(&self) -> &SnapshotFiles {
        &self.files
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, StorageError> {
        self.lock
            .lock()
            .map_err(|_| snap_err(ErrorVerb::Write, "snapshot lock poisoned"))
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

    /// Records the complete snapshot file `file` as the current snapshot
    /// unless a newer one is already stored (a build can finish after a
    /// newer snapshot was installed); `extra` goes in the same synced
    /// batch either way. Returns whether it was recorded.
    fn record(
        &self,
        meta: &SnapshotMeta,
        file: &str,
        extra: Option<crate::engine::WriteBatch<'_>>,
    ) -> Result<bool, StorageError> {
        let _lock = self.lock()?;
        let newer_exists = self
            .current_last_log()?
            .map(|current| current > meta.last_log_id)
            .unwrap_or(false);
        let mut batch = extra.unwrap_or_else(|| self.engine.batch());
        if !newer_exists {
            let record = SnapshotRecord {
                meta: meta.clone(),
                file: file.to_string(),
            };
            put_encoded(&mut batch, cf::SM_META, KEY_SNAPSHOT_FILE, &record)?;
            batch.delete(cf::SM_META, KEY_SNAPSHOT);
        }
        self.engine
            .write_batch(batch, true)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if !newer_exists {
            // Only now is the new record durable; older files may go.
            if let Err(e) = self.files.remove_all_but(file) {
                tracing::warn!(error = %e, "cannot delete old snapshot files");
            }
        }
        Ok(!newer_exists)
    }

    /// The stored snapshot's meta and file name. A legacy snapshot (a value
    /// in SM_META) is moved to a file first.
    pub(super) fn load(&self) -> Result<Option<(SnapshotMeta, String)>, StorageError> {
        if let Some(r) =
            get_decoded::<SnapshotRecord>(&self.engine, cf::SM_META, KEY_SNAPSHOT_FILE)?
        {
            return Ok(Some((r.meta, r.file)));
        }
        let Some(legacy) =
            get_decoded::<LegacyStoredSnapshot>(&self.engine, cf::SM_META, KEY_SNAPSHOT)?
        else {
            return Ok(None);
        };
        // Its bytes are a legacy payload, which installs still read.
        let file = SnapshotFiles::name_for(&legacy.meta.snapshot_id);
        self.files
            .write(&file, &legacy.data)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.record(&legacy.meta, &file, None)?;
        Ok(Some((legacy.meta, file)))
    }

    /// Replaces the state machine (data, dedup records, applied state) with
    /// the received snapshot at `received` (fsynced, in the snapshot
    /// folder) described by `meta`, and makes it the current snapshot.
    /// Blocking; see the module doc for the steps.
    pub(super) fn install(&self, meta: &SnapshotMeta, received: &Path) -> Result<(), StorageError> {
        let file = SnapshotFiles::name_for(&meta.snapshot_id);
        self.files
            .publish(received, &file)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.install_file(meta, &file)
    }

    /// Finishes an install a crash interrupted (see the module doc); call
    /// before the applied state is read.
    pub(super) fn finish_interrupted_install(&self) -> Result<(), StorageError> {
        let Some(r) = get_decoded::<SnapshotRecord>(&self.engine, cf::SM_META, KEY_INSTALLING)?
        else {
            return Ok(());
        };
        tracing::warn!(
            snapshot = %r.meta.snapshot_id,
            "an interrupted snapshot install is redone from its file"
        );
        self.install_file(&r.meta, &r.file)
    }

    /// Steps 2–5 of an install, from the snapshot file `file`.
    fn install_file(&self, meta: &SnapshotMeta, file: &str) -> Result<(), StorageError> {
        let read_err = |e: FormatError| snap_err(ErrorVerb::Read, e);
        let write_err = |e: EngineError| snap_err(ErrorVerb::Write, e);
        let io_err = |e: io::Error| snap_err(ErrorVerb::Write, e);
        let started = std::time::Instant::now();
        // 2. Stage: read and check the whole file into SST files.
        let staging = self.files.ingest_dir().map_err(io_err)?;
        let opts = SstOptions::new();
        let mut sink = Staging {
            header: None,
            data: SstBuilder::new(&opts, &staging, "data"),
            dedup: SstBuilder::new(&opts, &staging, "dedup"),
            pairs: 0,
        };
        let input =
            fs::File::open(self.files.path(file)).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        snapshot_format::read(BufReader::with_capacity(IO_BUFFER, input), &mut sink)
            .map_err(read_err)?;
        let header = sink
            .header
            .ok_or_else(|| snap_err(ErrorVerb::Read, "snapshot without header"))?;
        if header.last_applied != meta.last_log_id {
            return Err(snap_err(
                ErrorVerb::Read,
                format!(
                    "snapshot {} holds state at {:?}, not {:?}",
                    meta.snapshot_id, header.last_applied, meta.last_log_id
                ),
            ));
        }
        let pairs = sink.pairs;
        let data_files = sink.data.finish().map_err(write_err)?;
        let dedup_files = sink.dedup.finish().map_err(write_err)?;

        // 3. From here the data is not what `last_applied` says until step
        // 5: say so durably first.
        let mut batch = self.engine.batch();
        let installing = SnapshotRecord {
            meta: meta.clone(),
            file: file.to_string(),
        };
        put_encoded(&mut batch, cf::SM_META, KEY_INSTALLING, &installing)?;
        self.engine.clear_data_into(&mut batch);
        dedup::clear_into(&mut batch);
        self.engine.write_batch(batch, true).map_err(write_err)?;

        // 4. Each ingest is atomic and durable (MANIFEST) when it returns.
        self.engine
            .ingest_cf(cf::DATA, &data_files)
            .map_err(write_err)?;
        self.engine
            .ingest_cf(cf::DEDUP, &dedup_files)
            .map_err(write_err)?;

        // 5. The meta openraft hands us is authoritative (it is what the
        // leader sent alongside the bytes).
        let mut batch = self.engine.batch();
        put_encoded(&mut batch, cf::SM_META, KEY_LAST_APPLIED, &meta.last_log_id)?;
        put_encoded(
            &mut batch,
            cf::SM_META,
            KEY_MEMBERSHIP,
            &meta.last_membership,
        )?;
        batch.delete(cf::SM_META, KEY_INSTALLING);
        self.record(meta, file, Some(batch))?;
        if let Err(e) = fs::remove_dir_all(&staging) {
            tracing::warn!(error = %e, "cannot delete staged snapshot files");
        }
        tracing::info!(
            snapshot = %meta.snapshot_id,
            pairs,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot installed"
        );
        Ok(())
    }

    /// Streams the state machine, from one consistent engine snapshot of
    /// the DATA, DEDUP and SM_META column families (so `last_applied`
    /// matches the data exactly even while entries keep being applied),
    /// into a new snapshot file; returns its meta and file name.
    fn build(&self) -> Result<(SnapshotMeta, String), StorageError> {
        let read_err = |e: EngineError| snap_err(ErrorVerb::Read, e);
        let snap = self.engine.snapshot();
        let read = |key: &[u8]| snap.get_cf(cf::SM_META, key).map_err(read_err);
        let last_applied: Option<LogId> = match read(KEY_LAST_APPLIED)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => None,
        };
        let membership: StoredMembership = match read(KEY_MEMBERSHIP)? {
            Some(b) => codec::decode(&b).map_err(|e| snap_err(ErrorVerb::Read, e))?,
            None => StoredMembership::default(),
        };
        let snapshot_id = match last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term,
                id.index,
                SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            None => format!("empty-{}", SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed)),
        };
        let header = Header {
            last_applied,
            membership: membership.clone(),
        };
        let name = SnapshotFiles::name_for(&snapshot_id);
        let tmp = self
            .files
            .building_path(&name)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let written = write_stream(&snap, &header, &tmp);
        drop(snap);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(snap_err(ErrorVerb::Write, e));
        }
        self.files
            .publish(&tmp, &name)
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        Ok((meta, name))
    }

    /// Builds a snapshot and stores it as the current one (unless a newer
    /// one is; the built file is still returned, deleted once closed).
    fn build_and_persist(&self) -> Result<(SnapshotMeta, fs::File, PathBuf), StorageError> {
        let (meta, name) = self.build()?;
        let path = self.files.path(&name);
        // Open before recording: recording a newer snapshot deletes it.
        let file = fs::File::open(&path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        if !self.record(&meta, &name, None)? {
            let _ = fs::remove_file(&path);
        }
        Ok((meta, file, path))
    }
}

/// Writes the snapshot stream of `snap` to `path`, fsynced.
fn write_stream(
    snap: &crate::engine::EngineSnapshot<'_>,
    header: &Header,
    path: &Path,
) -> Result<(), FormatError> {
    let out = BufWriter::with_capacity(IO_BUFFER, fs::File::create(path)?);
    let mut w = snapshot_format::Writer::new(out, header)?;
    snap.for_each_cf(cf::DATA, |k: &[u8], v: &[u8]| w.pair(k, v))?;
    w.next_section()?;
    dedup::for_each(snap, |k: &[u8], v: &[u8]| w.pair(k, v))?;
    let file = w
        .finish()?
        .into_inner()
        .map_err(|e| FormatError::Io(e.into_error()))?;
    file.sync_all()?;
    Ok(())
}

/// Receives a snapshot stream into staged SST files, one set per column
/// family.
struct Staging<'o> {
    header: Option<Header>,
    data: SstBuilder<'o>,
    dedup: SstBuilder<'o>,
    pairs: u64,
}

impl Sink for Staging<'_> {
    fn header(&mut self, header: Header) -> Result<(), FormatError> {
        self.header = Some(header);
        Ok(())
    }

    fn pair(&mut self, section: Section, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let builder = match section {
            Section::Data => &mut self.data,
            Section::Dedup => &mut self.dedup,
        };
        self.pairs += 1;
        builder.put(key, value).map_err(|e| match e {
            // Keys out of order: the stream, not the disk, is at fault.
            EngineError::Corrupt(what) => FormatError::Corrupt(what),
            other => FormatError::Engine(other),
        })
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
        // Streaming the whole data set is long blocking work: on a thread of
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
        let (meta, file, path) = rx
            .await
            .map_err(|_| snap_err(ErrorVerb::Write, "snapshot build thread panicked"))??;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFile::new(tokio::fs::File::from_std(file), path)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands;
    use rampart_proto::{reply, Reply};

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

    fn get(engine: &Engine, key: &str) -> Reply {
        let argv = [b"GET".to_vec(), key.into()];
        commands::execute_read(engine, &argv, 1_000)
    }

    fn snapshot_files(dir: &Path) -> Vec<std::ffi::OsString> {
        fs::read_dir(dir.join("raft-snapshots"))
            .expect("snapshot folder")
            .map(|e| e.expect("entry").file_name())
            .collect()
    }

    fn applied(engine: &Engine) -> Option<LogId> {
        get_decoded::<Option<LogId>>(engine, cf::SM_META, KEY_LAST_APPLIED)
            .expect("read")
            .flatten()
    }

    /// A snapshot file copied to `to`'s folder as a received one would be.
    fn receive_copy(from: &SnapshotStore, name: &str, to: &SnapshotStore) -> PathBuf {
        let dst = to.files.building_path("received").expect("path");
        fs::copy(from.files.path(name), &dst).expect("copy");
        dst
    }

    /// A data folder from before snapshot files keeps serving its stored
    /// snapshot (moved to a file); the first new snapshot replaces it.
    #[test]
    fn a_legacy_stored_snapshot_is_still_served_then_replaced() {
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
        let (meta, file) = store.load().expect("read").expect("some");
        assert_eq!(meta.snapshot_id, "legacy-1");
        assert_eq!(
            fs::read(store.files.path(&file)).expect("file"),
            b"old bytes"
        );
        assert_eq!(store.load().expect("read").expect("some"), (meta, file));

        apply_set(&engine, 1, "k", "v");
        let (built, _, _) = store.build_and_persist().expect("build");
        assert_eq!(built.last_log_id, Some(log_id(1)));
        let (served, name) = store.load().expect("read").expect("some");
        assert_eq!(served, built);
        assert!(
            get_decoded::<LegacyStoredSnapshot>(&engine, cf::SM_META, KEY_SNAPSHOT)
                .expect("read")
                .is_none(),
            "the legacy value is gone"
        );
        assert_eq!(
            snapshot_files(dir.path()),
            vec![std::ffi::OsString::from(name)]
        );
    }

    /// A snapshot of an older version (one bincode value) still installs.
    #[test]
    fn a_legacy_snapshot_payload_installs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let store = SnapshotStore::new(engine.clone());
        let source_dir = tempfile::tempdir().expect("tempdir");
        let source = Engine::open(source_dir.path()).expect("open");
        apply_set(&source, 4, "k", "legacy");
        let payload = snapshot_format::LegacyPayload {
            last_applied: Some(log_id(4)),
            membership: StoredMembership::default(),
            data: source.export_data().expect("export"),
            dedup: Vec::new(),
        };
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(4)),
            last_membership: StoredMembership::default(),
            snapshot_id: "1-4-0".into(),
        };
        let received = store.files.building_path("received").expect("path");
        fs::write(&received, codec::encode(&payload).expect("encode")).expect("write");
        store.install(&meta, &received).expect("install");
        assert_eq!(get(&engine, "k"), reply::bulk("legacy"));
        assert_eq!(applied(&engine), Some(log_id(4)));
    }

    /// A build that finishes after a newer snapshot was installed does not
    /// replace it.
    #[test]
    fn an_older_build_never_replaces_a_newer_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let store = SnapshotStore::new(engine.clone());
        apply_set(&engine, 5, "k", "new");
        let (newer, _, _) = store.build_and_persist().expect("build");
        let older = SnapshotMeta {
            last_log_id: Some(log_id(3)),
            ..newer.clone()
        };
        store.files.write("older.snap", b"x").expect("write");
        assert!(!store.record(&older, "older.snap", None).expect("record"));
        assert_eq!(store.load().expect("read").expect("some").0, newer);
    }

    /// A received snapshot replaces the data and dedup records; a corrupt
    /// one fails before anything changed.
    #[test]
    fn an_install_replaces_everything_and_a_corrupt_file_changes_nothing() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let leader = SnapshotStore::new(Engine::open(leader_dir.path()).expect("open"));
        apply_set(&leader.engine, 7, "k", "leader");
        let (meta, _, _) = leader.build_and_persist().expect("build");
        let name = SnapshotFiles::name_for(&meta.snapshot_id);

        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let store = SnapshotStore::new(engine.clone());
        apply_set(&engine, 2, "stale", "x");

        let bad = receive_copy(&leader, &name, &store);
        let len = fs::metadata(&bad).expect("meta").len();
        fs::OpenOptions::new()
            .write(true)
            .open(&bad)
            .and_then(|f| f.set_len(len - 3))
            .expect("truncate");
        assert!(store.install(&meta, &bad).is_err());
        assert_eq!(get(&engine, "stale"), reply::bulk("x"));
        assert_eq!(applied(&engine), Some(log_id(2)));

        let good = receive_copy(&leader, &name, &store);
        store.install(&meta, &good).expect("install");
        assert_eq!(get(&engine, "k"), reply::bulk("leader"));
        assert_eq!(get(&engine, "stale"), reply::null());
        assert_eq!(applied(&engine), Some(log_id(7)));
        assert_eq!(store.load().expect("read").expect("some"), (meta, name));
    }

    /// A crash after the data was cleared (step 3) and before the install
    /// finished is redone at the next start.
    #[test]
    fn an_interrupted_install_is_redone_at_start() {
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let leader = SnapshotStore::new(Engine::open(leader_dir.path()).expect("open"));
        apply_set(&leader.engine, 9, "k", "leader");
        let (meta, _, _) = leader.build_and_persist().expect("build");
        let name = SnapshotFiles::name_for(&meta.snapshot_id);

        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        apply_set(&engine, 2, "stale", "x");
        {
            let store = SnapshotStore::new(engine.clone());
            let received = receive_copy(&leader, &name, &store);
            store.files.publish(&received, &name).expect("publish");
            // The state step 3 leaves behind.
            let mut batch = engine.batch();
            let record = SnapshotRecord {
                meta: meta.clone(),
                file: name.clone(),
            };
            put_encoded(&mut batch, cf::SM_META, KEY_INSTALLING, &record).expect("encode");
            engine.clear_data_into(&mut batch);
            engine.write_batch(batch, true).expect("write");
        }
        let store = SnapshotStore::new(engine.clone());
        store.finish_interrupted_install().expect("redo");
        assert_eq!(get(&engine, "k"), reply::bulk("leader"));
        assert_eq!(get(&engine, "stale"), reply::null());
        assert_eq!(applied(&engine), Some(log_id(9)));
        assert!(
            get_decoded::<SnapshotRecord>(&engine, cf::SM_META, KEY_INSTALLING)
                .expect("read")
                .is_none()
        );
        store.finish_interrupted_install().expect("nothing to redo");
    }
}
