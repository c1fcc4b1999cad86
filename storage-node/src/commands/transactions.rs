//! WATCH support: the node's side of optimistic MULTI/EXEC.
//!
//! Every entry stamps the user keys it changes with a revision record (the
//! entry's log index, `engine::keys::revision_key`). `WATCH` reads each
//! key's revision and whether it exists; `EXEC` carries those tokens into
//! its Raft entry, and the state machine applies the transaction only if
//! every token still matches ([`unchanged`]). No lock is held between WATCH
//! and EXEC; the check and the writes happen in one entry, in log order, so
//! the outcome is the same on every replica.

use rampart_proto::reply;

use super::CmdResult;
use crate::engine::keys::{self, ChangeKind};
use crate::engine::{live_meta, DataRead};
use crate::raft::types::WatchToken;

/// The revision record of `key`: `(0, Write)` if it never changed.
fn revision<R: DataRead + ?Sized>(r: &R, key: &[u8]) -> (u64, ChangeKind) {
    match r.get(&keys::revision_key(key)) {
        Ok(Some(value)) => keys::decode_revision(&value).unwrap_or((0, ChangeKind::Write)),
        _ => (0, ChangeKind::Write),
    }
}

/// Whether `key` exists and has not expired at `now`.
fn exists<R: DataRead + ?Sized>(r: &R, key: &[u8], now: i64) -> bool {
    matches!(live_meta(r, key, now), Ok(Some(_)))
}

/// WATCH key [key ...] as the proxy sends it to the node: one
/// `[revision, existed]` pair per key, which the proxy keeps until EXEC.
pub fn watch<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>], now: i64) -> CmdResult {
    Ok(reply::array(
        args.iter()
            .map(|key| {
                let (rev, _) = revision(r, key);
                reply::array(vec![
                    reply::integer(rev as i64),
                    reply::integer(exists(r, key, now) as i64),
                ])
            })
            .collect(),
    ))
}

/// Whether the watched key is as it was at WATCH time, by Redis 7's rules:
/// any write since (including delete and re-create) is a change, and so is
/// expiring; but a key that had already expired when watched and was then
/// removed by active expiry did not change.
pub fn unchanged<R: DataRead + ?Sized>(r: &R, token: &WatchToken, now: i64) -> bool {
    let (rev, kind) = revision(r, &token.key);
    let live = exists(r, &token.key, now);
    if rev != token.revision {
        return !token.existed && kind == ChangeKind::Expired && !live;
    }
    // Same revision: only time (expiry) or a FLUSHDB can have removed it.
    !token.existed || live
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{argv, check, Node};
    use super::*;
    use crate::engine::keys::ChangeKind;

    const NOW: i64 = 1_700_000_000_000;

    fn token(node: &Node, key: &str, now: i64) -> WatchToken {
        let view = node.engine.read_view();
        let (revision, _) = revision(&view, key.as_bytes());
        WatchToken {
            key: key.as_bytes().to_vec(),
            revision,
            existed: exists(&view, key.as_bytes(), now),
        }
    }

    fn still(node: &Node, t: &WatchToken, now: i64) -> bool {
        unchanged(&node.engine.read_view(), t, now)
    }

    /// Applies `cmd` as entry `index` would (with revision stamping).
    fn write(node: &Node, index: u64, kind: ChangeKind, cmd: &str) {
        let mut txn = node.engine.txn();
        txn.set_revision(index, kind);
        let argv = argv(cmd);
        if kind == ChangeKind::Expired {
            super::super::apply_expire(&mut txn, &argv, NOW + 10_000);
        } else {
            super::super::apply_write(&mut txn, &argv, NOW);
        }
        let batch = txn.into_batch().unwrap();
        node.engine.write_batch(batch, false).unwrap();
    }

    #[test]
    fn writes_deletes_and_recreation_are_changes() {
        let node = Node::new();
        let missing = token(&node, "k", NOW);
        assert_eq!((missing.revision, missing.existed), (0, false));
        write(&node, 5, ChangeKind::Write, "SET k v");
        assert!(!still(&node, &missing, NOW));
        let t = token(&node, "k", NOW);
        assert_eq!((t.revision, t.existed), (5, true));
        assert!(still(&node, &t, NOW));
        // A command that changes nothing leaves the revision alone.
        write(&node, 6, ChangeKind::Write, "DEL other");
        write(&node, 7, ChangeKind::Write, "LPOP nolist");
        assert!(still(&node, &t, NOW));
        write(&node, 8, ChangeKind::Write, "DEL k");
        assert!(!still(&node, &t, NOW));
        write(&node, 9, ChangeKind::Write, "SET k v");
        assert!(!still(&node, &t, NOW), "deleted and re-created");
        // Collection elements count: HSET of an existing field.
        write(&node, 10, ChangeKind::Write, "HSET h f 1");
        let h = token(&node, "h", NOW);
        write(&node, 11, ChangeKind::Write, "HSET h f 2");
        assert!(!still(&node, &h, NOW));
        check(&node, NOW, &[("WATCH h nokey", "[[:11, :1], [:0, :0]]")]);
    }

    #[test]
    fn expiry_follows_redis_rules() {
        let node = Node::new();
        write(&node, 1, ChangeKind::Write, "SET k v PX 1000");
        let t = token(&node, "k", NOW);
        assert!(t.existed);
        // Expiring while watched is a change, even before active expiry.
        assert!(!still(&node, &t, NOW + 5_000));
        // Watched after it expired: its removal by active expiry is not.
        let stale = token(&node, "k", NOW + 5_000);
        assert!(!stale.existed);
        write(&node, 2, ChangeKind::Expired, "k");
        assert!(still(&node, &stale, NOW + 5_000));
        // ...but writing it is.
        write(&node, 3, ChangeKind::Write, "SET k again");
        assert!(!still(&node, &stale, NOW + 5_000));
    }

    #[test]
    fn flush_changes_only_keys_that_existed() {
        let node = Node::new();
        write(&node, 1, ChangeKind::Write, "SET a 1");
        let a = token(&node, "a", NOW);
        let b = token(&node, "b", NOW);
        write(&node, 2, ChangeKind::Write, "FLUSHDB");
        assert!(!still(&node, &a, NOW));
        assert!(still(&node, &b, NOW));
    }
}
