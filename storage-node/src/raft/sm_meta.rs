//! The state machine's bookkeeping in `cf::SM_META` (last applied log id,
//! membership) and the typed reads, writes and errors that apply
//! (`state_machine`), deduplication (`dedup`) and snapshots
//! (`snapshot_store`) share.
//!
//! A module of its own so those three depend on it and never on one
//! another's internals.

// openraft's own `StorageError` is large; it is what the storage traits
// return, so helpers return it too instead of boxing and converting back.
#![allow(clippy::result_large_err)]

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};
use serde::Serialize;

use super::types::{codec, StorageError};
use crate::engine::{Engine, WriteBatch};

/// `Option<LogId>`: the last entry whose effects are in the data.
pub(super) const KEY_LAST_APPLIED: &[u8] = b"last_applied";
/// `StoredMembership`: the last membership applied.
pub(super) const KEY_MEMBERSHIP: &[u8] = b"membership";

pub(super) fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(e)).into()
}

pub(super) fn snap_err(verb: ErrorVerb, e: impl ToString) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::error(e)).into()
}

/// The decoded value of `key` in column family `cf_name`, latest state.
pub(super) fn get_decoded<T: serde::de::DeserializeOwned>(
    engine: &Engine,
    cf_name: &str,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match engine
        .get_cf(cf_name, key)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?
    {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes)
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e)),
    }
}

/// Adds to `batch` the write of `value`, encoded, as `key` of `cf_name`.
pub(super) fn put_encoded<T: Serialize>(
    batch: &mut WriteBatch<'_>,
    cf_name: &str,
    key: &[u8],
    value: &T,
) -> Result<(), StorageError> {
    let bytes = codec::encode(value).map_err(|e| sm_err(ErrorVerb::Write, e))?;
    batch.put(cf_name, key, bytes);
    Ok(())
}
