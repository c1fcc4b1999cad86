//! Size limits the proxy and the nodes agree on.

/// Largest write that is replicated as one Raft entry: the commands of one
/// write run, a MULTI/EXEC or a script's writes, as [`replicated_size`]
/// counts them. Larger ones are refused with
/// [`errors::too_large_to_replicate`](crate::errors::too_large_to_replicate)
/// before they are proposed.
///
/// Why 16 MiB: openraft 0.9 bounds every AppendEntries call by the
/// heartbeat interval (250 ms), whatever the payload, and retries a call
/// that ran out of time with the same entries: an entry that cannot cross
/// the network within that bound stalls replication to that follower for
/// good. The nodes send at most this many bytes of entries per call (at
/// least one entry), and a call's deadline is `base + bytes / assumed
/// bandwidth` (`storage-node` `raft::network::append_entries_deadline`),
/// which for this size stays inside the heartbeat interval at 100 MiB/s.
pub const MAX_REPLICATED_BYTES: usize = 16 << 20;

/// Default `proto-max-bulk-len` of the proxy (largest bulk a client may
/// send) and of the nodes (largest string value a command may build):
/// the Raft entry limit, not Redis's 512 MiB. A longer argument could only
/// serve a write that is refused anyway, and a value longer than one write
/// can carry would make every APPEND to it rewrite more than a whole Raft
/// entry on every replica. The nodes refuse a larger setting at start-up;
/// the proxy accepts one (reads and PUBLISH may use it) with a warning.
pub const DEFAULT_MAX_BULK_LEN: usize = MAX_REPLICATED_BYTES;

/// Redis's smallest accepted `proto-max-bulk-len`.
pub const MIN_MAX_BULK_LEN: usize = 1 << 20;

/// Bytes a run of commands takes in a Raft entry: its arguments plus a
/// length prefix each (bincode's u64), close to the encoded entry.
pub fn replicated_size<'a>(commands: impl IntoIterator<Item = &'a Vec<Vec<u8>>>) -> usize {
    commands
        .into_iter()
        .flatten()
        .map(|arg| arg.len() + 8)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_size_counts_arguments_and_their_prefixes() {
        let run = vec![vec![b"SET".to_vec(), b"k".to_vec(), vec![0; 100]]];
        assert_eq!(replicated_size(&run), 3 + 1 + 100 + 3 * 8);
        assert_eq!(replicated_size(&Vec::<Vec<Vec<u8>>>::new()), 0);
    }
}
