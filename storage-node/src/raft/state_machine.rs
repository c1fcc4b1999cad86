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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, ErrorVerb, OptionalSend, StorageIOError};
use rampart_proto::{reply, Reply};

use super::clock::{effective_ms, ClusterClock};
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
    /// Every key was deleted (FLUSHALL): every blocked reader looks again.
    flushed: bool,
}

/// The state machine over the node's engine.
pub struct StateMachineStore {
    engine: Engine,
    dedup: Dedup,
    snapshots: Arc<SnapshotStore>,
    observer: Option<Arc<dyn WriteObserver>>,
    reclaimer: Option<Reclaimer>,
    /// Effective time of the last applied entry (docs/time.md): what the
    /// next entry's time is raised to. Replicated state, loaded from and
    /// written with `last_applied`; an atomic only because apply takes
    /// `&self`.
    applied_ms: AtomicI64,
    /// This node's view of cluster time, raised after each apply.
    clock: Arc<ClusterClock>,
}

impl StateMachineStore {
    pub fn new(engine: Engine) -> Result<StateMachineStore, StorageError> {
        let applied_ms = dedup::load_applied_time(&engine)?;
        // Exported from the start (at 0), so alerts see the series.
        metrics::counter!(crate::metrics::APPLY_STORAGE_ERRORS).increment(0);
        let clock = Arc::new(ClusterClock::new());
        clock.observe(applied_ms);
        Ok(StateMachineStore {
            dedup: Dedup::new(engine.clone()),
            snapshots: Arc::new(SnapshotStore::new(engine.clone())),
            engine,
            observer: None,
            reclaimer: None,
            applied_ms: AtomicI64::new(applied_ms),
            clock,
        })
    }

    /// The clock this state machine raises after each apply; reads and
    /// proposals on this node use it (see [`ClusterClock`]).
    pub fn clock(&self) -> Arc<ClusterClock> {
        self.clock.clone()
    }

    /// Reloads the applied time after the data was replaced (a snapshot).
    fn reload_applied_time(&self) -> Result<(), StorageError> {
        let ms = dedup::load_applied_time(&self.engine)?;
        self.applied_ms.store(ms, Ordering::Release);
        self.clock.observe(ms);
        Ok(())
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

    /// Applies one normal entry into `batch`; returns its response and its
    /// effective time (written into `batch` as the applied time).
    fn apply_request<'s>(
        &'s self,
        index: u64,
        req: Request,
        batch: &mut WriteBatch<'s>,
        written: &mut Applied,
    ) -> Result<(Response, i64), StorageError> {
        // Never below an earlier entry's time: a leader whose clock is
        // behind cannot revive expired keys or re-date dedup records.
        let now_ms = effective_ms(req.now_ms, self.applied_ms.load(Ordering::Acquire));
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
        dedup::store_applied_time(batch, now_ms)?;
        Ok((response, now_ms))
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
        written.flushed |= txn.flushed();
        written.ranges.extend_from_slice(txn.deleted_ranges());
        *batch = txn.into_batch().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.dedup.record(batch, now_ms, records)?;
        Ok(out)
    }

    /// Applies one committed entry, or fails without applying anything of
    /// it: a storage error is never turned into a client reply, since the
    /// other replicas (whose storage worked) apply the entry and this one
    /// would silently diverge. The error stops openraft (fail-stop; the
    /// process then exits, see `crate::run`) and the restarted node
    /// replays the entry from its log.
    fn apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let log_id = entry.log_id;
        self.try_apply_entry(entry).inspect_err(|e| {
            metrics::counter!(crate::metrics::APPLY_STORAGE_ERRORS).increment(1);
            tracing::error!(
                index = log_id.index,
                term = log_id.leader_id.term,
                error = %e,
                "storage error while applying a committed entry: stopping the node \
                 (it replays the entry from its log when restarted)"
            );
        })
    }

    fn try_apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let started = std::time::Instant::now();
        let log_id = entry.log_id;
        let mut batch = self.engine.batch();
        let mut response = Response::default();
        let mut written = Applied::default();
        let mut applied_ms = None;
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership);
                put_encoded(&mut batch, cf::SM_META, KEY_MEMBERSHIP, &stored)?;
            }
            EntryPayload::Normal(req) => {
                let (resp, ms) = self.apply_request(log_id.index, req, &mut batch, &mut written)?;
                response = resp;
                applied_ms = Some(ms);
            }
        }
        put_encoded(&mut batch, cf::SM_META, KEY_LAST_APPLIED, &Some(log_id))?;
        self.engine
            .write_batch(batch, false)
            .map_err(|e| StorageError::from(StorageIOError::apply(log_id, AnyError::new(&e))))?;
        if let Some(ms) = applied_ms {
            self.applied_ms.store(ms, Ordering::Release);
            self.clock.observe(ms);
        }
        metrics::histogram!(crate::metrics::RAFT_APPLY_SECONDS).record(started.elapsed());
        if let Some(observer) = &self.observer {
            if written.flushed {
                observer.everything_changed();
            } else if !written.keys.is_empty() {
                observer.keys_written(&written.keys);
            }
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
        // The snapshot's DEDUP column family carries its applied time.
        self.reload_applied_time()?;
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
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
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

    fn entry_at(index: u64, now_ms: i64, op: Op) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Request { now_ms, op }),
        }
    }

    fn commands(client_id: &str, seq: u64, cmds: &[&[&str]]) -> Op {
        Op::Batch {
            items: vec![run(client_id, seq, cmds)],
        }
    }

    /// A leader whose clock is behind proposes after entries stamped
    /// later: its entries apply at the later time, so a key the log already
    /// saw expire stays expired (for writes, WATCH and active expiry).
    #[test]
    fn an_entry_stamped_earlier_applies_at_the_last_applied_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
        sm.apply_entry(entry_at(
            1,
            10_000,
            commands("", 0, &[&["SET", "k", "5", "PX", "1000"]]),
        ))
        .expect("apply");
        // Time passes on a good leader: k is expired from 11_000 on.
        sm.apply_entry(entry_at(
            2,
            20_000,
            commands("", 0, &[&["SET", "other", "x"]]),
        ))
        .expect("apply");
        assert_eq!(sm.clock().floor_ms(), 20_000);
        // A new leader whose clock says 10_500 must not revive k.
        let resp = sm
            .apply_entry(entry_at(3, 10_500, commands("", 0, &[&["INCR", "k"]])))
            .expect("apply");
        assert_eq!(resp.items, vec![vec![reply::integer(1)]], "k was expired");
        assert_eq!(sm.applied_ms.load(Ordering::Acquire), 20_000);
        // Nor keep a key alive in active expiry.
        sm.apply_entry(entry_at(
            4,
            20_000,
            commands("", 0, &[&["SET", "t", "v", "PX", "100"]]),
        ))
        .expect("apply");
        sm.apply_entry(entry_at(5, 30_000, Op::ExpireKeys { keys: vec![] }))
            .expect("apply");
        sm.apply_entry(entry_at(
            6,
            1_000,
            Op::ExpireKeys {
                keys: vec![b"t".to_vec()],
            },
        ))
        .expect("apply");
        assert_eq!(
            commands::execute_read(&sm.engine, &argv(&["EXISTS", "t"]), 0),
            reply::integer(0),
            "deleted even when read with an old clock"
        );
        // Blank and membership entries carry no time and change nothing.
        sm.apply_entry(Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 7),
            payload: EntryPayload::Blank,
        })
        .expect("apply");
        assert_eq!(sm.applied_ms.load(Ordering::Acquire), 30_000);
    }

    /// A record written by an entry from a leader whose clock is behind is
    /// dated at the applied time, not in the past: the next entry does not
    /// prune it, and a retry of its run is still answered from it.
    #[test]
    fn dedup_records_of_a_lagging_leader_survive_pruning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
        let late = 100 * dedup::DEDUP_TTL_MS;
        sm.apply_entry(entry_at(1, late, commands("a", 1, &[&["INCR", "n"]])))
            .expect("apply");
        // A lagging leader's write, far more than the TTL in the past.
        sm.apply_entry(entry_at(2, 1_000, commands("b", 1, &[&["INCR", "n"]])))
            .expect("apply");
        // The clock is back; later entries prune what is due.
        sm.apply_entry(entry_at(3, late + 1, commands("c", 1, &[&["INCR", "n"]])))
            .expect("apply");
        // b's retry is answered from its record, not applied again.
        let resp = sm
            .apply_entry(entry_at(4, late + 2, commands("b", 1, &[&["INCR", "n"]])))
            .expect("apply");
        assert_eq!(resp.items, vec![vec![reply::integer(2)]]);
        assert_eq!(get(&sm, "n"), reply::bulk("3"));
    }

    /// The applied time is written with `last_applied`: a restarted node
    /// goes on from it, not from the next entry's stamp.
    #[test]
    fn the_applied_time_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
            sm.apply_entry(entry_at(
                1,
                50_000,
                commands("", 0, &[&["SET", "k", "v", "PX", "10"]]),
            ))
            .expect("apply");
        }
        let sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
        assert_eq!(sm.clock().floor_ms(), 50_000);
        assert!(sm.clock().now_ms() >= 50_000);
        // A TTL set by an entry stamped earlier counts from 50_000.
        sm.apply_entry(entry_at(
            2,
            40_000,
            commands("", 0, &[&["SET", "j", "v", "PX", "10000"]]),
        ))
        .expect("apply");
        assert_eq!(sm.applied_ms.load(Ordering::Acquire), 50_000);
        assert_eq!(
            commands::execute_read(&sm.engine, &argv(&["PTTL", "j"]), 50_000),
            reply::integer(10_000)
        );
    }

    /// A storage error while applying fails the entry (and so stops Raft)
    /// instead of becoming a `-ERR storage error` reply: nothing of the
    /// entry is written, `last_applied` and the applied time stay where
    /// they were, and applying it again once storage works gives the reply
    /// every other replica gave.
    #[tokio::test]
    async fn a_storage_error_in_apply_fails_the_entry_and_applies_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
        sm.apply_entry(entry_at(1, 1_000, commands("a", 1, &[&["SET", "n", "5"]])))
            .expect("apply");
        let (before, _) = sm.applied_state().await.expect("state");
        let failing = || {
            entry_at(
                2,
                2_000,
                commands("a", 2, &[&["INCR", "n"], &["SET", "m", "1"]]),
            )
        };
        crate::engine::FAIL_READS.with(|f| f.set(true));
        let result = sm.apply(vec![failing()]).await;
        crate::engine::FAIL_READS.with(|f| f.set(false));
        assert!(result.is_err(), "an error, not a reply: {result:?}");
        let (after, _) = sm.applied_state().await.expect("state");
        assert_eq!(after, before, "last_applied did not advance");
        assert_eq!(sm.applied_ms.load(Ordering::Acquire), 1_000);
        assert_eq!(get(&sm, "m"), reply::null());
        // Replayed after the restart, the entry applies normally.
        let resp = sm.apply(vec![failing()]).await.expect("apply");
        assert_eq!(resp[0].items, vec![vec![reply::integer(6), reply::ok()]]);
        assert_eq!(
            sm.applied_state().await.expect("state").0.map(|l| l.index),
            Some(2)
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
        let mut leader =
            StateMachineStore::new(Engine::open(dir.path()).expect("open")).expect("sm");
        let incr = || Op::Batch {
            items: vec![run("a", 1, &[&["INCR", "n"]])],
        };
        leader
            .apply_entry(entry_at(1, 7_000, incr()))
            .expect("apply");
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
        let mut follower =
            StateMachineStore::new(Engine::open(dir2.path()).expect("open")).expect("sm");
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
        // The applied time comes with the snapshot.
        assert_eq!(follower.applied_ms.load(Ordering::Acquire), 7_000);
        assert_eq!(follower.clock().floor_ms(), 7_000);
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
