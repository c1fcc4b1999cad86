//! The node's hard limits on what one command may build: the largest string
//! value (Redis's `proto-max-bulk-len`) and the bytes a read command may
//! gather for its reply (`max-reply-bytes`).
//!
//! They are process-wide and set once at start-up ([`install`]), because the
//! command code that checks them runs deep inside the engine, on Raft apply
//! threads and heavy-executor threads alike.
//!
//! How they relate to the Raft limit
//! ([`MAX_REPLICATED_BYTES`](rampart_proto::limits::MAX_REPLICATED_BYTES)):
//! a value may not grow past what one write could carry, so every value that
//! exists can be written again by a single SET/RESTORE, and one apply never
//! rewrites more than about one Raft entry's worth of bytes on every replica
//! (APPEND and SETRANGE rewrite the whole value). A reply must hold at least
//! the largest value (a GET) and fit in one gRPC message to the proxy.

use std::sync::atomic::{AtomicUsize, Ordering};

use rampart_proto::limits::MAX_REPLICATED_BYTES;
pub use rampart_proto::limits::{DEFAULT_MAX_BULK_LEN, MIN_MAX_BULK_LEN};
/// Default bytes a read command may gather for one reply.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 128 << 20;
/// The largest gRPC message a node sends to a proxy: no reply may be larger.
pub const MAX_CLIENT_MESSAGE: usize = 1 << 30;

static MAX_BULK_LEN: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BULK_LEN);
static MAX_REPLY_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_REPLY_BYTES);

/// The limits of one node, checked against each other and the Raft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_reply_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        }
    }
}

impl Limits {
    /// Checks the relations the module documentation describes.
    pub fn check(&self) -> Result<(), String> {
        if !(MIN_MAX_BULK_LEN..=MAX_REPLICATED_BYTES).contains(&self.max_bulk_len) {
            return Err(format!(
                "--proto-max-bulk-len must be between {MIN_MAX_BULK_LEN} and the Raft entry \
                 limit of {MAX_REPLICATED_BYTES} bytes (a value may not outgrow what one write \
                 can replicate)"
            ));
        }
        if self.max_reply_bytes < self.max_bulk_len || self.max_reply_bytes > MAX_CLIENT_MESSAGE {
            return Err(format!(
                "--max-reply-bytes must be between --proto-max-bulk-len ({}) and the gRPC \
                 message limit of {MAX_CLIENT_MESSAGE} bytes",
                self.max_bulk_len
            ));
        }
        Ok(())
    }
}

/// Makes `limits` the ones every command of this process checks.
pub fn install(limits: Limits) {
    MAX_BULK_LEN.store(limits.max_bulk_len, Ordering::Relaxed);
    MAX_REPLY_BYTES.store(limits.max_reply_bytes, Ordering::Relaxed);
}

/// The largest string value a command may build (`proto-max-bulk-len`).
pub fn max_bulk_len() -> usize {
    MAX_BULK_LEN.load(Ordering::Relaxed)
}

/// The bytes a read command may gather for one reply.
pub fn max_reply_bytes() -> usize {
    MAX_REPLY_BYTES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent_and_bad_relations_are_refused() {
        Limits::default().check().unwrap();
        let over_raft = Limits {
            max_bulk_len: MAX_REPLICATED_BYTES + 1,
            max_reply_bytes: 1 << 30,
        };
        assert!(over_raft.check().unwrap_err().contains("Raft entry"));
        let tiny = Limits {
            max_bulk_len: 1000,
            ..Limits::default()
        };
        assert!(tiny.check().is_err());
        let reply_below_bulk = Limits {
            max_bulk_len: 4 << 20,
            max_reply_bytes: 1 << 20,
        };
        assert!(reply_below_bulk.check().is_err());
    }
}
