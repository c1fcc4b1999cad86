//! The Raft log and vote in the engine (`cf::RAFT_LOG`, `cf::RAFT_META`).
//!
//! RocksDB is the only copy: every read goes to the DB. Appends and vote
//! writes are fsynced before they are acknowledged to openraft, which is
//! what lets a node promise its vote and its log across a crash. Because the
//! DB has one WAL, a synced append also makes every earlier (unsynced)
//! state-machine write durable.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::commit_clock::CommitClock;
use super::types::{codec, Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::engine::{cf, Engine};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Log storage over the node's RocksDB. Cheap to clone (the log reader is a
/// clone).
#[derive(Clone)]
pub struct LogStore {
    engine: Engine,
    /// Told when the commit index advances (commit latency metric).
    commit_clock: Option<Arc<CommitClock>>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        io_err(
            ErrorSubject::Logs,
            ErrorVerb::Read,
            "log key is not 8 bytes",
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, msg: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(msg)).into()
}

impl LogStore {
    pub fn new(engine: Engine) -> LogStore {
        LogStore {
            engine,
            commit_clock: None,
        }
    }

    /// Notes every commit advance in `clock`.
    pub fn with_commit_clock(mut self, clock: Arc<CommitClock>) -> LogStore {
        self.commit_clock = Some(clock);
        self
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let raw = self
            .engine
            .get_cf(cf::RAFT_META, key)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
        match raw {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e)),
        }
    }

    fn put_meta<T: Serialize>(
        &self,
        subject: ErrorSubject<NodeId>,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError> {
        let bytes =
            codec::encode(value).map_err(|e| io_err(subject.clone(), ErrorVerb::Write, e))?;
        self.engine
            .put_cf(cf::RAFT_META, key, &bytes, sync)
            .map_err(|e| io_err(subject, ErrorVerb::Write, e))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let last = self
            .engine
            .last_cf(cf::RAFT_LOG)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        match last {
            None => Ok(None),
            Some((_, value)) => {
                let entry: Entry = codec::decode(&value)
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                Ok(Some(entry.log_id))
            }
        }
    }

    fn read_range<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, StorageError> {
        self.read_range_limited(range, usize::MAX)
    }

    /// The entries of `range`, stopping once they hold `budget` encoded
    /// bytes (always at least one entry when the range is not empty).
    fn read_range_limited<RB: RangeBounds<u64>>(
        &self,
        range: RB,
        budget: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let key = index_key(start);
        let iter = self.engine.iter_cf(cf::RAFT_LOG, &key, None);
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for item in iter {
            let (key, value) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let index = key_index(&key)?;
            if !range.contains(&index) {
                break;
            }
            if !entries.is_empty() && bytes.saturating_add(value.len()) > budget {
                break;
            }
            bytes = bytes.saturating_add(value.len());
            let entry: Entry = codec::decode(&value)
                .map_err(|e| io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, e))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range)
    }

    /// What replication sends in one AppendEntries call: at most
    /// [`MAX_APPEND_BYTES`] of entries (one entry at least), so a call fits
    /// the deadline openraft gives it (see `network::append_entries_deadline`).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range_limited(start..end, MAX_APPEND_BYTES)
    }
}

/// Bytes of entries sent in one AppendEntries call at most (a larger single
/// entry goes alone; the leader refuses entries above
/// [`MAX_REPLICATED_BYTES`](rampart_proto::limits::MAX_REPLICATED_BYTES)).
pub const MAX_APPEND_BYTES: usize = rampart_proto::limits::MAX_REPLICATED_BYTES;

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = match self.last_entry_log_id()? {
            Some(id) => Some(id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(ErrorSubject::Vote, KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let (Some(clock), Some(id)) = (&self.commit_clock, &committed) {
            clock.committed(id.index);
        }
        // Not synced: losing it only means re-applying from last_applied.
        self.put_meta(ErrorSubject::Store, KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.engine.batch();
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, e))?;
            batch.put(cf::RAFT_LOG, index_key(entry.log_id.index), bytes);
        }
        let result = self.engine.write_batch(batch, true);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Deletes [log_id.index, end]: conflicting entries from a former leader.
        let mut batch = self.engine.batch();
        batch.delete_range(cf::RAFT_LOG, index_key(log_id.index), index_key(u64::MAX));
        batch.delete(cf::RAFT_LOG, index_key(u64::MAX));
        self.engine
            .write_batch(batch, true)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first (in the same batch), so a crash never
        // leaves a gap that get_log_state cannot explain.
        let bytes =
            codec::encode(&log_id).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let mut batch = self.engine.batch();
        batch.put(cf::RAFT_META, KEY_LAST_PURGED, bytes);
        match log_id.index.checked_add(1) {
            Some(end) => batch.delete_range(cf::RAFT_LOG, index_key(0), index_key(end)),
            None => {
                batch.delete_range(cf::RAFT_LOG, index_key(0), index_key(u64::MAX));
                batch.delete(cf::RAFT_LOG, index_key(u64::MAX));
            }
        }
        self.engine
            .write_batch(batch, true)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::{Op, Request};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Request {
                now_ms: index as i64,
                op: Op::ExpireKeys {
                    keys: vec![format!("k{index}").into_bytes()],
                },
            }),
        }
    }

    /// Appends without going through openraft's core (the callback type has
    /// no public constructor), using the same batch code path.
    fn append_direct(store: &LogStore, entries: Vec<Entry>) {
        let mut batch = store.engine.batch();
        for e in entries {
            batch.put(
                cf::RAFT_LOG,
                index_key(e.log_id.index),
                codec::encode(&e).expect("encode"),
            );
        }
        store.engine.write_batch(batch, true).expect("write");
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn limited_reads_stop_at_the_byte_budget_but_return_one_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::new(Engine::open(dir.path()).expect("open"));
        append_direct(&store, (1..=5).map(|i| entry(1, i)).collect());
        let one = codec::encode(&entry(1, 1)).expect("encode").len();
        let got = store.read_range_limited(1..6, 2 * one).expect("read");
        assert_eq!(indexes(&got), vec![1, 2]);
        let got = store.read_range_limited(3..6, 1).expect("read");
        assert_eq!(indexes(&got), vec![3], "one entry even over the budget");
        let got = store.limited_get_log_entries(1, 6).await.expect("read");
        assert_eq!(indexes(&got), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn reads_ranges_truncates_and_purges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut store = LogStore::new(engine.clone());

        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, None);
        assert_eq!(state.last_purged_log_id, None);

        append_direct(&store, (1..=10).map(|i| entry(1, i)).collect());
        assert_eq!(
            indexes(&store.try_get_log_entries(3..6).await.expect("read")),
            vec![3, 4, 5]
        );
        assert_eq!(
            indexes(&store.try_get_log_entries(9..).await.expect("read")),
            vec![9, 10]
        );
        assert_eq!(
            indexes(&store.try_get_log_entries(..=2).await.expect("read")),
            vec![1, 2]
        );
        assert!(store
            .try_get_log_entries(11..20)
            .await
            .expect("read")
            .is_empty());
        let got = store.try_get_log_entries(4..5).await.expect("read");
        assert_eq!(got[0], entry(1, 4));

        store.truncate(log_id(1, 8)).await.expect("truncate");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(1, 7)));
        assert_eq!(
            indexes(&store.try_get_log_entries(6..).await.expect("read")),
            vec![6, 7]
        );

        store.purge(log_id(1, 5)).await.expect("purge");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
        assert_eq!(state.last_log_id, Some(log_id(1, 7)));
        assert_eq!(
            indexes(&store.try_get_log_entries(0..).await.expect("read")),
            vec![6, 7]
        );

        // Purging everything keeps the last log id known through the purge point.
        store.purge(log_id(1, 7)).await.expect("purge");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(1, 7)));
        assert!(store
            .try_get_log_entries(0..)
            .await
            .expect("read")
            .is_empty());
    }

    #[tokio::test]
    async fn vote_log_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vote = Vote::new_committed(3, 2);
        {
            let engine = Engine::open(dir.path()).expect("open");
            let mut store = LogStore::new(engine.clone());
            assert_eq!(store.read_vote().await.expect("vote"), None);
            store.save_vote(&vote).await.expect("save vote");
            store
                .save_committed(Some(log_id(3, 4)))
                .await
                .expect("committed");
            append_direct(&store, (1..=4).map(|i| entry(3, i)).collect());
            store.purge(log_id(3, 1)).await.expect("purge");
        }
        let engine = Engine::open(dir.path()).expect("reopen");
        let mut store = LogStore::new(engine.clone());
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(3, 4))
        );
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(3, 4)));
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 1)));
        assert_eq!(
            indexes(&store.try_get_log_entries(..).await.expect("read")),
            vec![2, 3, 4]
        );
    }
}
