//! Request-id deduplication: retried writes are applied at most once.
//!
//! A proxy that got no answer for a write batch (leader change, timeout)
//! sends it again under the same `(client_id, seq, part)`, and the first
//! attempt may well have been committed. So every applied write run leaves
//! a record of its replies in `cf::DEDUP`, in the same atomic batch as its
//! data; a retry finds the record, gets the stored replies and changes
//! nothing. Records are pruned once older than [`DEDUP_TTL_MS`] by the
//! effective (leader-stamped, never decreasing) time of later entries, so
//! every replica keeps and drops the same ones.
//!
//! DEDUP column family layout:
//! - `r` + u32 BE len(client_id) + client_id + u64 BE seq + u32 BE part
//!   → [`DedupRecord`]
//! - `t` + u64 BE (now_ms with the sign bit flipped) + the record key
//!   without its `r` → empty (time index for pruning oldest first)
//! - `clock` → i64: the effective time of the last applied entry
//!   (docs/time.md), written with `last_applied`. Here rather than in
//!   SM_META because snapshots carry this column family whole: the clock
//!   must travel with the records it prunes and the data it expires.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use openraft::ErrorVerb;
use rampart_proto::Reply;
use serde::{Deserialize, Serialize};

use super::sm_meta::{get_decoded, put_encoded, sm_err};
use super::types::{codec, replies_serde, StorageError};
use crate::engine::{cf, Engine, EngineError, EngineSnapshot, WriteBatch};

/// Dedup records live this long (by the leader-stamped clock of later
/// entries); a proxy retries a batch within seconds, far below this.
pub const DEDUP_TTL_MS: i64 = 10 * 60 * 1000;
/// Records pruned per applied entry at most, so pruning never makes one
/// apply slow; steady state prunes as fast as records are created.
const DEDUP_PRUNE_PER_APPLY: usize = 64;

const DEDUP_RECORD: u8 = b'r';
const DEDUP_TIME: u8 = b't';
/// Outside the `r` and `t` ranges, so lookups and pruning never see it.
const KEY_APPLIED_TIME: &[u8] = b"clock";

#[derive(Serialize, Deserialize)]
struct DedupRecord {
    now_ms: i64,
    /// prost-encoded replies.
    replies: Vec<Vec<u8>>,
}

/// The key of the record of run `(client_id, seq, part)`.
pub(super) fn record_key(client_id: &str, seq: u64, part: u32) -> Vec<u8> {
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

/// The replies recorded on this node for run `(client_id, seq, part)`, if
/// that run applied (a read outside the state machine: the script runner
/// asks whether an earlier attempt of a retried request already applied).
pub fn recorded(
    engine: &Engine,
    client_id: &str,
    seq: u64,
    part: u32,
) -> Result<Option<Vec<Reply>>, StorageError> {
    Dedup::new(engine.clone()).lookup(&record_key(client_id, seq, part))
}

/// The dedup records of the state machine: lookups, new records and
/// pruning, all through the caller's batch so they commit with the entry.
pub(super) struct Dedup {
    engine: Engine,
    /// Where pruning resumes: every time key below it is deleted.
    /// Seeking from the start of the index instead walks every tombstone
    /// of earlier prunes until compaction removes them: measured, after
    /// ~150k writes each apply spent most of the Raft thread skipping
    /// tombstones. Memory only; reset (to a full seek) at start, on
    /// snapshot install, and when a record is written below it.
    prune_from: Mutex<Option<Vec<u8>>>,
}

impl Dedup {
    pub(super) fn new(engine: Engine) -> Dedup {
        Dedup {
            engine,
            prune_from: Mutex::new(None),
        }
    }

    fn prune_cursor(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        self.prune_from.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets where pruning stopped (a snapshot replaced every record).
    pub(super) fn reset_prune_cursor(&self) {
        *self.prune_cursor() = None;
    }

    /// Replies stored for an already applied run (its [`record_key`]).
    pub(super) fn lookup(&self, record_key: &[u8]) -> Result<Option<Vec<Reply>>, StorageError> {
        let Some(record) = get_decoded::<DedupRecord>(&self.engine, cf::DEDUP, record_key)? else {
            return Ok(None);
        };
        replies_serde::decode(&record.replies)
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    /// Adds to `batch` the records of runs applied at `now_ms`: record key
    /// → the run's replies.
    pub(super) fn record(
        &self,
        batch: &mut WriteBatch<'_>,
        now_ms: i64,
        records: HashMap<Vec<u8>, Vec<Reply>>,
    ) -> Result<(), StorageError> {
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
            batch.put(cf::DEDUP, time, []);
            batch.put(cf::DEDUP, key, bytes);
        }
        Ok(())
    }

    /// Adds to `batch` the deletion of up to [`DEDUP_PRUNE_PER_APPLY`]
    /// records older than the TTL. `now_ms` is the entry's effective time
    /// (never below an earlier entry's, see `raft::clock`), so a record
    /// stamped by a leader whose clock was ahead is not pruned early once
    /// time comes back; it depends only on the log, so every replica prunes
    /// the same records.
    pub(super) fn prune(
        &self,
        now_ms: i64,
        batch: &mut WriteBatch<'_>,
    ) -> Result<(), StorageError> {
        let cutoff = now_ms.saturating_sub(DEDUP_TTL_MS);
        let mut cursor = self.prune_cursor();
        let start = cursor.clone().unwrap_or_else(|| vec![DEDUP_TIME]);
        let iter = self
            .engine
            .iter_cf(cf::DEDUP, &start, Some([DEDUP_TIME + 1].as_slice()));
        for item in iter.take(DEDUP_PRUNE_PER_APPLY) {
            let (key, _) = item.map_err(|e| sm_err(ErrorVerb::Read, e))?;
            match time_key_ms(&key) {
                Some(ms) if ms < cutoff => {
                    let mut record_key = Vec::with_capacity(key.len() - 8);
                    record_key.push(DEDUP_RECORD);
                    record_key.extend_from_slice(&key[9..]);
                    batch.delete(cf::DEDUP, &record_key);
                    batch.delete(cf::DEDUP, &key);
                }
                Some(_) => break,
                None => batch.delete(cf::DEDUP, &key),
            }
            // Everything up to and including `key` is now deleted.
            let mut next = key;
            next.push(0);
            *cursor = Some(next);
        }
        Ok(())
    }
}

/// The effective time of the last applied entry; 0 before any (or in data
/// written before it was recorded).
pub(super) fn load_applied_time(engine: &Engine) -> Result<i64, StorageError> {
    Ok(get_decoded::<i64>(engine, cf::DEDUP, KEY_APPLIED_TIME)?.unwrap_or(0))
}

/// Adds to `batch` the write of the applied time (with `last_applied`).
pub(super) fn store_applied_time(batch: &mut WriteBatch<'_>, ms: i64) -> Result<(), StorageError> {
    put_encoded(batch, cf::DEDUP, KEY_APPLIED_TIME, &ms)
}

/// Calls `f` with every record pair at `snapshot`, in key order, for a
/// Raft snapshot: a retried batch must stay deduplicated on a node that
/// caught up through a snapshot.
pub(super) fn for_each<E: From<EngineError>>(
    snapshot: &EngineSnapshot<'_>,
    f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    snapshot.for_each_cf(cf::DEDUP, f)
}

/// Adds to `batch` the deletion of every record (before a snapshot's are
/// ingested).
pub(super) fn clear_into(batch: &mut WriteBatch<'_>) {
    batch.delete_range(cf::DEDUP, [0x00u8].as_slice(), [0xffu8].as_slice());
    batch.delete(cf::DEDUP, []);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_proto::reply;

    #[test]
    fn dedup_time_keys_sort_by_time_and_round_trip() {
        let rk = record_key("c", 1, 0);
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
        assert_ne!(record_key("ab", 1, 0), record_key("a", 1, 0));
        assert_ne!(record_key("a", 1, 0), record_key("a", 1, 1));
    }

    fn time_keys(engine: &Engine) -> usize {
        engine
            .iter_cf(cf::DEDUP, &[], None)
            .filter(|item| {
                item.as_ref()
                    .is_ok_and(|(k, _)| k.first() == Some(&DEDUP_TIME))
            })
            .count()
    }

    /// What applying an entry with one deduplicated run at `now_ms` does
    /// to the records (as the state machine's apply): the run's record,
    /// then pruning, in one batch.
    fn apply(dedup: &Dedup, engine: &Engine, now_ms: i64, client: &str) {
        let mut batch = engine.batch();
        let records = HashMap::from([(record_key(client, 1, 0), vec![reply::integer(1)])]);
        dedup.record(&mut batch, now_ms, records).expect("record");
        dedup.prune(now_ms, &mut batch).expect("prune");
        engine.write_batch(batch, false).expect("write");
    }

    #[test]
    fn records_answer_lookups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let dedup = Dedup::new(engine.clone());
        assert_eq!(dedup.lookup(&record_key("a", 1, 0)).expect("lookup"), None);
        apply(&dedup, &engine, 1_000, "a");
        assert_eq!(
            dedup.lookup(&record_key("a", 1, 0)).expect("lookup"),
            Some(vec![reply::integer(1)])
        );
        assert_eq!(dedup.lookup(&record_key("a", 1, 1)).expect("lookup"), None);
    }

    #[test]
    fn dedup_pruning_resumes_where_it_stopped_and_catches_records_from_the_past() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let dedup = Dedup::new(engine.clone());
        for i in 0..200 {
            apply(&dedup, &engine, 1_000, &format!("old{i}"));
        }
        assert_eq!(time_keys(&engine), 200);
        // Each later apply prunes up to 64 expired records, then its own
        // record stays: four applies clear all 200.
        let late = 1_000 + DEDUP_TTL_MS + 1;
        for i in 0..4 {
            apply(&dedup, &engine, late, &format!("new{i}"));
        }
        assert_eq!(time_keys(&engine), 4, "only the new records remain");
        // A leader whose clock is behind writes a record older than the
        // cursor: it must still be pruned once expired.
        apply(&dedup, &engine, 500, "from-the-past");
        apply(&dedup, &engine, late + 2_000, "later");
        assert_eq!(time_keys(&engine), 5, "the past record was pruned");
    }
}
