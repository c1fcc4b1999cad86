//! Background reclamation of deleted elements.
//!
//! Deleting or expiring a collection, `LTRIM` and `FLUSHDB` remove element
//! records with ONE RocksDB range delete, so the Raft apply loop pays O(1)
//! whatever the size. The records stay on disk under the range tombstone
//! until a compaction happens to rewrite those files, and many tombstones
//! over live files slow reads down. The reclaimer compacts each deleted
//! range in the background, on its own thread, one range at a time, and
//! only when RocksDB estimates the range still holds at least
//! `min_bytes` on disk (compacting a tiny range would rewrite whole files
//! for nothing). Each node reclaims its own copy; nothing goes through Raft.
//! The queue is bounded: when it is full a range is skipped (counted), and
//! RocksDB's own compactions reclaim it eventually.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use super::{cf, Engine};

/// Ranges waiting for the reclaimer at most.
const QUEUE: usize = 1024;

/// `rampart_reclaim_compactions_total`: deleted ranges compacted.
pub const RECLAIM_COMPACTIONS: &str = "rampart_reclaim_compactions_total";
/// `rampart_reclaim_bytes_total`: estimated on-disk bytes of those ranges.
pub const RECLAIM_BYTES: &str = "rampart_reclaim_bytes_total";
/// `rampart_reclaim_skipped_total{reason}`: ranges not compacted (`small`:
/// under the threshold; `queue_full`).
pub const RECLAIM_SKIPPED: &str = "rampart_reclaim_skipped_total";

/// Hands deleted key ranges to the reclaimer thread.
#[derive(Clone)]
pub struct Reclaimer {
    tx: SyncSender<(Vec<u8>, Vec<u8>)>,
}

impl Reclaimer {
    /// Starts the reclaimer thread for `engine`'s DATA column family. It
    /// ends when every `Reclaimer` handle is dropped.
    pub fn start(engine: Engine, min_bytes: u64) -> std::io::Result<Reclaimer> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        thread::Builder::new()
            .name("reclaimer".into())
            .spawn(move || run(engine, rx, min_bytes))?;
        Ok(Reclaimer { tx })
    }

    /// Queues ranges that were just deleted (after their batch is written).
    pub fn submit(&self, ranges: Vec<(Vec<u8>, Vec<u8>)>) {
        for range in ranges {
            match self.tx.try_send(range) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    metrics::counter!(RECLAIM_SKIPPED, "reason" => "queue_full").increment(1);
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

fn run(engine: Engine, rx: Receiver<(Vec<u8>, Vec<u8>)>, min_bytes: u64) {
    while let Ok((start, end)) = rx.recv() {
        reclaim(&engine, &start, &end, min_bytes);
    }
}

/// Compacts `[start, end)` of the DATA column family if RocksDB estimates
/// it holds at least `min_bytes` on disk; returns whether it did.
pub fn reclaim(engine: &Engine, start: &[u8], end: &[u8], min_bytes: u64) -> bool {
    let estimate = engine.approximate_size_cf(cf::DATA, start, end);
    if estimate < min_bytes {
        metrics::counter!(RECLAIM_SKIPPED, "reason" => "small").increment(1);
        return false;
    }
    engine.compact_range_cf(cf::DATA, start, end);
    metrics::counter!(RECLAIM_COMPACTIONS).increment(1);
    metrics::counter!(RECLAIM_BYTES).increment(estimate);
    tracing::debug!(bytes = estimate, "reclaimed a deleted key range");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys;

    fn on_disk(engine: &Engine, start: &[u8], end: &[u8]) -> u64 {
        engine.approximate_size_cf(cf::DATA, start, end)
    }

    #[test]
    fn a_deleted_big_range_is_compacted_away_and_a_small_one_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let prefix = keys::sub_key_prefix(b"big", 1);
        let end = keys::prefix_end(&prefix).unwrap();
        let mut txn = engine.txn();
        for i in 0..50_000u32 {
            let mut k = prefix.clone();
            k.extend_from_slice(&i.to_be_bytes());
            txn.put(k, vec![b'x'; 64]);
        }
        engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        engine.flush_cf(cf::DATA).unwrap();
        let before = on_disk(&engine, &prefix, &end);
        assert!(before > 100_000, "{before} bytes on disk");

        let mut txn = engine.txn();
        txn.delete_range(prefix.clone(), end.clone());
        assert_eq!(txn.deleted_ranges(), &[(prefix.clone(), end.clone())]);
        engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        engine.flush_cf(cf::DATA).unwrap();
        // The tombstone alone frees nothing.
        assert!(on_disk(&engine, &prefix, &end) >= before / 2);

        // Above the threshold it is compacted; the space is gone.
        assert!(!reclaim(&engine, &prefix, &end, u64::MAX));
        assert!(reclaim(&engine, &prefix, &end, before / 2));
        let after = on_disk(&engine, &prefix, &end);
        assert!(after < before / 10, "{after} bytes left of {before}");
    }
}
