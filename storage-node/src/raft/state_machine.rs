//! The replicated state machine: applies committed entries to the Redis data
//! through the engine. Request-id deduplication lives in [`super::dedup`],
//! building and installing snapshots in [`super::snapshot_store`]; this
//! module wires them into openraft's [`RaftStateMachine`].
//!
//! Every entry is applied as ONE atomic engine write batch holding the data
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
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, ErrorVerb, OptionalSend, StorageIOError};
use rampart_proto::{reply, Reply};

use super::dedup::{self, Dedup};
use super::sm_meta::{
    get_decoded, put_encoded, sm_err, snap_err, KEY_LAST_APPLIED, KEY_MEMBERSHIP,
};
use super::snapshot_file::SnapshotFile;
use super::snapshot_store::{SnapshotBuilder, SnapshotStore};
use super::types::{
    Entry, LogId, Op, Request, Response, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, WatchToken, WriteRun,
};
use crate::commands;
use crate::engine::keys::ChangeKind;
use crate::engine::meta::ValueType;
use crate::engine::reclaim::Reclaimer;
use crate::engine::{cf, Engine, WriteBatch};

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

/// The state machine over the node's engine.
pub struct StateMachineStore {
    engine: Engine,
    dedup: Dedup,
    snapshots: Arc<SnapshotStore>,
    observer: Option<Arc<dyn WriteObserver>>,
    reclaimer: Option<Reclaimer>,
}

impl StateMachineStore {
    pub fn new(engine: Engine) -> StateMachineStore {
        StateMachineStore {
            dedup: Dedup::new(engine.clone()),
            snapshots: Arc::new(SnapshotStore::new(engine.clone())),
            engine,
            observer: None,
            reclaimer: None,
        }
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
            store.set_build_nice(nice);
        }
        self
    }

    /// Adds the observer told about written keys after each apply.
    pub fn with_observer(mut self, observer: Arc<dyn WriteObserver>) -> StateMachineStore {
        self.observer = Some(observer);
        self
    }

    /// Applies one normal entry into `batch`; returns its response.
    fn apply_request<'s>(
        &'s self,
        index: u64,
        req: Request,
        batch: &mut WriteBatch<'s>,
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
                *batch = txn.into_batch().map_err(|e| sm_err(ErrorVerb::Write, e))?;
                Response::default()
            }
        };
        self.dedup.prune(now_ms, batch)?;
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
    fn apply_runs<'s>(
        &'s self,
        now_ms: i64,
        index: u64,
        runs: Vec<(WriteRun, Option<Vec<WatchToken>>)>,
        batch: &mut WriteBatch<'s>,
        written: &mut Applied,
    ) -> Result<Vec<Vec<Reply>>, StorageError> {
        let mut txn = self.engine.txn();
        txn.set_revision(index, ChangeKind::Write);
        let mut out = Vec::with_capacity(runs.len());
        // Dedup records of this entry, not yet in RocksDB.
        let mut records: HashMap<Vec<u8>, Vec<Reply>> = HashMap::new();
        for (run, watches) in runs {
            let record_key = (!run.client_id.is_empty())
                .then(|| dedup::record_key(&run.client_id, run.seq, run.part));
            if let Some(key) = &record_key {
                if let Some(stored) = records.get(key) {
                    out.push(stored.clone());
                    continue;
                }
                if let Some(stored) = self.dedup.lookup(key)? {
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
        *batch = txn.into_batch().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.dedup.record(batch, now_ms, records)?;
        Ok(out)
    }

    fn apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let started = std::time::Instant::now();
        let log_id = entry.log_id;
        let mut batch = self.engine.batch();
        let mut response = Response::default();
        let mut written = Applied::default();
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership);
                put_encoded(&mut batch, cf::SM_META, KEY_MEMBERSHIP, &stored)?;
            }
            EntryPayload::Normal(req) => {
                response = self.apply_request(log_id.index, req, &mut batch, &mut written)?;
            }
        }
        put_encoded(&mut batch, cf::SM_META, KEY_LAST_APPLIED, &Some(log_id))?;
        self.engine
            .write_batch(batch, false)
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
        self.snapshots.finish_interrupted_install()?;
        let last: Option<LogId> =
            get_decoded::<Option<LogId>>(&self.engine, cf::SM_META, KEY_LAST_APPLIED)?.flatten();
        let membership: StoredMembership =
            get_decoded(&self.engine, cf::SM_META, KEY_MEMBERSHIP)?.unwrap_or_default();
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
        SnapshotBuilder::new(self.snapshots.clone())
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let file = self
            .snapshots
            .files()
            .receive()
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let received = snapshot
            .finish_writing()
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.dedup.reset_prune_cursor();
        // Minutes of disk work for a large snapshot: off the Raft runtime.
        let (snapshots, meta) = (self.snapshots.clone(), meta.clone());
        tokio::task::spawn_blocking(move || snapshots.install(&meta, &received))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        if let Some(observer) = &self.observer {
            observer.everything_changed();
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let snapshots = self.snapshots.clone();
        let stored = tokio::task::spawn_blocking(move || snapshots.load())
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))??;
        let Some((meta, file)) = stored else {
            return Ok(None);
        };
        let file = self
            .snapshots
            .files()
            .open(&file)
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::RaftSnapshotBuilder;

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

    fn get(sm: &StateMachineStore, key: &str) -> Reply {
        commands::execute_read(&sm.engine, &argv(&["GET", key]), 1_000)
    }

    /// A snapshot built by one state machine and installed on another
    /// replaces its data and carries the dedup records and applied state;
    /// both then serve it as their current snapshot.
    #[tokio::test]
    async fn a_snapshot_installed_elsewhere_carries_data_dedup_and_applied_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut leader = StateMachineStore::new(Engine::open(dir.path()).expect("open"));
        let incr = || Op::Batch {
            items: vec![run("a", 1, &[&["INCR", "n"]])],
        };
        leader.apply_entry(entry(1, incr())).expect("apply");
        let built = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        let served = leader
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!(served.meta, built.meta);
        assert_eq!(served.snapshot.path(), built.snapshot.path());

        let dir2 = tempfile::tempdir().expect("tempdir");
        let mut follower = StateMachineStore::new(Engine::open(dir2.path()).expect("open"));
        let stale = Op::Commands {
            client_id: String::new(),
            seq: 0,
            part: 0,
            commands: vec![argv(&["SET", "stale", "x"])],
        };
        follower.apply_entry(entry(1, stale)).expect("apply");
        let meta = built.meta.clone();
        let mut received = follower.begin_receiving_snapshot().await.expect("begin");
        let mut sent = built.snapshot;
        tokio::io::copy(&mut sent, &mut received)
            .await
            .expect("copy");
        follower
            .install_snapshot(&meta, received)
            .await
            .expect("install");
        let (applied, _) = follower.applied_state().await.expect("state");
        assert_eq!(applied, meta.last_log_id);
        assert_eq!(get(&follower, "n"), reply::bulk("1"));
        assert_eq!(get(&follower, "stale"), reply::null());
        // A retry of the run in the snapshot is answered from its record.
        let resp = follower.apply_entry(entry(2, incr())).expect("apply");
        assert_eq!(resp.items, vec![vec![reply::integer(1)]]);
        assert_eq!(get(&follower, "n"), reply::bulk("1"));
        let current = follower
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("some");
        assert_eq!(current.meta, meta);
    }
}
