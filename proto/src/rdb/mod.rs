//! Redis's DUMP payload format (the RDB serialization of one value) for the
//! types Rampart has: `DUMP` encodes with [`encode`], `RESTORE` decodes with
//! [`decode`].
//!
//! A payload is `type byte | value | RDB version (u16 LE) | CRC-64 (u64 LE)`,
//! the checksum covering everything before it. [`decode`] accepts every
//! encoding Redis 2.x–7.2 write for strings, lists, sets, sorted sets,
//! hashes and streams (RDB versions up to 11); [`encode`] writes RDB
//! version 10 with encodings Redis 7.0 and later load (see
//! docs/dump-restore.md). Nothing here trusts a length field: every count
//! is bounded by the input left, so hostile payloads fail with
//! [`RdbError::BadFormat`] instead of allocating or panicking.

mod compact;
mod crc64;
mod decode;
mod encode;
mod io;
mod lzf;

pub use crc64::crc64;
pub use decode::decode;
pub use encode::encode;

use crate::parse::streams::StreamId;

/// The RDB version DUMP writes: Redis 7.0's, which 7.0 and later load.
pub const EMIT_VERSION: u16 = 10;
/// The newest RDB version RESTORE accepts: Redis 7.2's.
pub const MAX_VERSION: u16 = 11;

/// Why a payload was refused; the texts are Redis's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RdbError {
    #[error("ERR DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("ERR Bad data format")]
    BadFormat,
}

/// A value as a DUMP payload carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Vec<u8>),
    /// Elements head to tail.
    List(Vec<Vec<u8>>),
    /// Distinct members.
    Set(Vec<Vec<u8>>),
    /// Distinct members with their (non-NaN) scores.
    ZSet(Vec<(Vec<u8>, f64)>),
    /// Distinct fields with their values.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(Box<Stream>),
}

/// A stream with its consumer groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Entries in increasing id order.
    pub entries: Vec<StreamEntry>,
    pub last_id: StreamId,
    /// Id of the first entry; 0-0 when empty.
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: Vec<StreamGroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    /// field, value, field, value, ...
    pub field_values: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamGroup {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// Entries the group has read; -1 when unknown (Redis's
    /// SCG_INVALID_ENTRIES_READ).
    pub entries_read: i64,
    /// The group's PEL in id order, each entry owned by one consumer.
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub consumer: Vec<u8>,
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Vec<u8>,
    pub seen_time_ms: i64,
    /// Last successful read (Redis 7.2); older payloads carry only the
    /// seen time, which stands in for it, as in Redis.
    pub active_time_ms: i64,
}

/// RDB object type codes (rdb.h).
mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

#[cfg(test)]
mod tests;
