//! Keyspace maintenance on top of the raw DATA column family: meta records,
//! the expiry index and the counters always change together, in one `Txn`,
//! through the methods here. Command code never writes `m`/`e`/`c` records
//! itself, so the invariants below hold by construction:
//!
//! - `keys` counter = number of meta records;
//! - `expires` counter = number of meta records with a TTL = number of
//!   expiry-index entries, each pointing at its record's exact TTL;
//! - a collection's sub-keys exist only under its current version.

use super::keys;
use super::meta::{Meta, MetaHeader, ValueType};
use super::{DataRead, EngineError, Txn};

/// The O(1) key statistics behind DBSIZE and INFO keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCounts {
    /// Meta records, logically expired ones not yet removed included.
    pub keys: i64,
    /// Meta records with a TTL.
    pub expires: i64,
}

/// The meta record of `user_key`, expired or not.
pub fn load_meta<R: DataRead + ?Sized>(
    reader: &R,
    user_key: &[u8],
) -> Result<Option<Meta>, EngineError> {
    match reader.get(&keys::meta_key(user_key))? {
        Some(bytes) => Ok(Some(Meta::decode(&bytes)?)),
        None => Ok(None),
    }
}

/// The meta record of `user_key` if the key exists at `now_ms` (expired keys
/// are absent).
pub fn live_meta<R: DataRead + ?Sized>(
    reader: &R,
    user_key: &[u8],
    now_ms: i64,
) -> Result<Option<Meta>, EngineError> {
    Ok(load_meta(reader, user_key)?.filter(|meta| !meta.is_expired(now_ms)))
}

fn read_counter<R: DataRead + ?Sized>(reader: &R, name: &[u8]) -> Result<i64, EngineError> {
    match reader.get(&keys::counter_key(name))? {
        None => Ok(0),
        Some(bytes) => {
            let word: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                EngineError::Corrupt(format!(
                    "counter {} of {} bytes",
                    String::from_utf8_lossy(name),
                    bytes.len()
                ))
            })?;
            Ok(i64::from_be_bytes(word))
        }
    }
}

pub fn key_counts<R: DataRead + ?Sized>(reader: &R) -> Result<KeyCounts, EngineError> {
    Ok(KeyCounts {
        keys: read_counter(reader, keys::COUNTER_KEYS)?,
        expires: read_counter(reader, keys::COUNTER_EXPIRES)?,
    })
}

impl Txn<'_> {
    fn add_counter(&mut self, name: &[u8], delta: i64) -> Result<(), EngineError> {
        if delta == 0 {
            return Ok(());
        }
        let value = read_counter(self, name)?.saturating_add(delta);
        self.put(keys::counter_key(name), value.to_be_bytes().to_vec());
        Ok(())
    }

    /// Range-deletes the elements of a collection at `header`'s version.
    fn drop_sub_keys(&mut self, user_key: &[u8], header: &MetaHeader) {
        if !header.kind.has_sub_keys() {
            return;
        }
        let prefix = keys::sub_key_prefix(user_key, header.version);
        if let Some(end) = keys::prefix_end(&prefix) {
            self.delete_range(prefix, end);
        }
        if header.kind == ValueType::Stream {
            // Its legacy blob (if any) went with the sub-keys: so does the
            // sidecar marker that counts it.
            self.delete(keys::legacy_stream_marker(user_key));
        }
    }

    /// Writes `meta` as the record of `user_key`, replacing any record
    /// there (expired or not), and keeps the expiry index and counters in
    /// step. The caller removes keys whose new TTL is already in the past
    /// with [`Txn::delete_key`] instead. Replacing a collection by a value
    /// of another type or version drops the old elements.
    pub fn put_meta(&mut self, user_key: &[u8], meta: &Meta) -> Result<(), EngineError> {
        let old = match self.get(&keys::meta_key(user_key))? {
            Some(bytes) => Some(MetaHeader::decode(&bytes)?),
            None => None,
        };
        let mut expires_delta = 0;
        match &old {
            None => self.add_counter(keys::COUNTER_KEYS, 1)?,
            Some(old) => {
                if old.has_ttl() {
                    self.delete(keys::expiry_key(old.expire_at_ms, user_key));
                    expires_delta -= 1;
                }
                if old.kind != meta.kind || old.version != meta.version {
                    self.drop_sub_keys(user_key, old);
                }
            }
        }
        if meta.has_ttl() {
            self.put(keys::expiry_key(meta.expire_at_ms, user_key), Vec::new());
            expires_delta += 1;
        }
        self.add_counter(keys::COUNTER_EXPIRES, expires_delta)?;
        self.put(keys::meta_key(user_key), meta.encode());
        // A stream overwritten by another type ends blocked XREADGROUPs
        // on it (Redis answers them UNBLOCKED): they must look again.
        if old.is_some_and(|old| old.kind == ValueType::Stream) && meta.kind != ValueType::Stream {
            self.note_written(ValueType::Stream, user_key);
        }
        if matches!(
            meta.kind,
            ValueType::List | ValueType::ZSet | ValueType::Stream
        ) {
            self.note_written(meta.kind, user_key);
        }
        Ok(())
    }

    /// Deletes `user_key` (its meta record, expiry entry and elements).
    /// Returns whether a record existed, expired or not.
    pub fn delete_key(&mut self, user_key: &[u8]) -> Result<bool, EngineError> {
        let meta_key = keys::meta_key(user_key);
        let old = match self.get(&meta_key)? {
            Some(bytes) => MetaHeader::decode(&bytes)?,
            None => return Ok(false),
        };
        if old.has_ttl() {
            self.delete(keys::expiry_key(old.expire_at_ms, user_key));
            self.add_counter(keys::COUNTER_EXPIRES, -1)?;
        }
        self.drop_sub_keys(user_key, &old);
        self.add_counter(keys::COUNTER_KEYS, -1)?;
        self.delete(meta_key);
        // As for an overwrite: blocked XREADGROUPs on a deleted stream end.
        if old.kind == ValueType::Stream {
            self.note_written(ValueType::Stream, user_key);
        }
        Ok(true)
    }

    /// Deletes every key (FLUSHDB / FLUSHALL) with range deletes, so the
    /// cost does not depend on the number of keys. The version counter is
    /// kept so versions are never reused.
    pub fn flush_data(&mut self) {
        let (start, end) = keys::flush_range();
        self.delete_range(start, end);
        self.delete(keys::counter_key(keys::COUNTER_KEYS));
        self.delete(keys::counter_key(keys::COUNTER_EXPIRES));
        self.mark_flushed();
    }

    /// A new collection version, the same on every replica (a replicated
    /// counter, never a clock).
    pub fn next_version(&mut self) -> Result<u64, EngineError> {
        let name = keys::COUNTER_VERSION;
        let next = (read_counter(self, name)? as u64).wrapping_add(1).max(1);
        self.put(keys::counter_key(name), next.to_be_bytes().to_vec());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::super::meta::ValueType;
    use super::super::Engine;
    use super::*;

    fn commit(engine: &Engine, txn: Txn<'_>) {
        engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
    }

    fn expiry_entries(reader: &dyn DataRead) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        reader
            .for_each(&[keys::EXPIRY_TAG], &[keys::EXPIRY_TAG + 1], &mut |k, _| {
                let (at, key) = keys::decode_expiry_key(k).unwrap();
                out.push((at, key.to_vec()));
                true
            })
            .unwrap();
        out
    }

    #[test]
    fn deleting_or_overwriting_a_stream_and_flushing_are_noted_for_blocked_readers() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let stream = Meta {
            kind: ValueType::Stream,
            version: 1,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        let mut txn = engine.txn();
        txn.put_meta(b"s", &stream).unwrap();
        txn.put_meta(b"t", &stream).unwrap();
        txn.put_meta(b"h", &Meta::string(b"v".to_vec(), 0)).unwrap();
        commit(&engine, txn);
        let mut txn = engine.txn();
        txn.delete_key(b"s").unwrap();
        txn.put_meta(b"t", &Meta::string(b"v".to_vec(), 0)).unwrap();
        txn.delete_key(b"h").unwrap();
        assert_eq!(
            txn.take_written(),
            vec![
                (ValueType::Stream, b"s".to_vec()),
                (ValueType::Stream, b"t".to_vec())
            ]
        );
        assert!(!txn.flushed());
        txn.flush_data();
        assert!(txn.flushed());
    }

    #[test]
    fn counters_and_index_follow_puts_overwrites_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        txn.put_meta(b"a", &Meta::string(b"1".to_vec(), 0)).unwrap();
        txn.put_meta(b"b", &Meta::string(b"2".to_vec(), 5_000))
            .unwrap();
        assert_eq!(
            key_counts(&txn).unwrap(),
            KeyCounts {
                keys: 2,
                expires: 1
            }
        );
        commit(&engine, txn);
        assert_eq!(
            key_counts(&engine.read_view()).unwrap(),
            KeyCounts {
                keys: 2,
                expires: 1
            }
        );

        let mut txn = engine.txn();
        // New TTL on b replaces its index entry; a gains one.
        txn.put_meta(b"b", &Meta::string(b"2".to_vec(), 9_000))
            .unwrap();
        txn.put_meta(b"a", &Meta::string(b"1".to_vec(), 7_000))
            .unwrap();
        assert_eq!(
            expiry_entries(&txn),
            vec![(7_000, b"a".to_vec()), (9_000, b"b".to_vec())]
        );
        assert_eq!(
            key_counts(&txn).unwrap(),
            KeyCounts {
                keys: 2,
                expires: 2
            }
        );
        // Overwrite without TTL drops the entry.
        txn.put_meta(b"a", &Meta::string(b"x".to_vec(), 0)).unwrap();
        assert!(txn.delete_key(b"b").unwrap());
        assert!(!txn.delete_key(b"b").unwrap());
        assert!(expiry_entries(&txn).is_empty());
        assert_eq!(
            key_counts(&txn).unwrap(),
            KeyCounts {
                keys: 1,
                expires: 0
            }
        );
        commit(&engine, txn);
        let view = engine.read_view();
        assert_eq!(
            key_counts(&view).unwrap(),
            KeyCounts {
                keys: 1,
                expires: 0
            }
        );
        assert_eq!(
            load_meta(&view, b"a").unwrap().unwrap().payload,
            b"x".to_vec()
        );
    }

    #[test]
    fn expired_records_are_invisible_but_counted_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        txn.put_meta(b"k", &Meta::string(b"v".to_vec(), 1_000))
            .unwrap();
        commit(&engine, txn);
        let view = engine.read_view();
        assert!(live_meta(&view, b"k", 999).unwrap().is_some());
        assert!(live_meta(&view, b"k", 1_000).unwrap().is_none());
        assert!(load_meta(&view, b"k",).unwrap().is_some());
        assert_eq!(key_counts(&view).unwrap().keys, 1);
        // Overwriting the expired record keeps the counters exact.
        let mut txn = engine.txn();
        txn.put_meta(b"k", &Meta::string(b"new".to_vec(), 0))
            .unwrap();
        assert_eq!(
            key_counts(&txn).unwrap(),
            KeyCounts {
                keys: 1,
                expires: 0
            }
        );
        assert!(expiry_entries(&txn).is_empty());
    }

    #[test]
    fn replacing_a_collection_drops_its_elements() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        let version = txn.next_version().unwrap();
        assert_eq!(txn.next_version().unwrap(), version + 1);
        let hash = Meta {
            kind: ValueType::Hash,
            version,
            expire_at_ms: 0,
            payload: Vec::new(),
        };
        txn.put_meta(b"h", &hash).unwrap();
        let mut field = keys::sub_key_prefix(b"h", version);
        field.extend_from_slice(b"f1");
        txn.put(field.clone(), b"v".to_vec());
        commit(&engine, txn);

        let mut txn = engine.txn();
        txn.put_meta(b"h", &Meta::string(b"s".to_vec(), 0)).unwrap();
        assert_eq!(txn.get(&field).unwrap(), None);
        commit(&engine, txn);
        assert_eq!(engine.read_view().get(&field).unwrap(), None);
    }

    #[test]
    fn flush_clears_data_but_keeps_versions_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut txn = engine.txn();
        let v1 = txn.next_version().unwrap();
        txn.put_meta(b"a", &Meta::string(b"1".to_vec(), 5_000))
            .unwrap();
        commit(&engine, txn);
        let mut txn = engine.txn();
        txn.flush_data();
        assert_eq!(key_counts(&txn).unwrap(), KeyCounts::default());
        assert!(load_meta(&txn, b"a").unwrap().is_none());
        // Writes after the flush in the same txn survive it.
        txn.put_meta(b"b", &Meta::string(b"2".to_vec(), 0)).unwrap();
        commit(&engine, txn);
        let view = engine.read_view();
        assert_eq!(
            key_counts(&view).unwrap(),
            KeyCounts {
                keys: 1,
                expires: 0
            }
        );
        assert!(expiry_entries(&view).is_empty());
        let mut txn = engine.txn();
        assert!(txn.next_version().unwrap() > v1);
    }
}
