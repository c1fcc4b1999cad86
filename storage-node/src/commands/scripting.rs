//! The state-machine side of Lua scripting: internal commands that the
//! leader's script runner puts in Raft entries (never sent by clients: they
//! are not in the command table, so the proxy refuses them and a script's
//! `redis.call` cannot reach them).
//!
//! - `rampart.script.store <sha> <body>`: caches a script body under its
//!   SHA1 (`engine::keys::script_key`), on every replica.
//! - `rampart.script.flush`: SCRIPT FLUSH, deletes every cached script.
//! - `rampart.script.reply <prost Reply>`: changes nothing and answers the
//!   given reply. Appended last to a script's commit, so the dedup record
//!   of the entry ends with the script's own reply and a retried EVAL is
//!   answered with it.

use prost::Message;
use rampart_proto::{reply, Reply};

use crate::engine::{keys, DataRead, Txn};

pub const STORE: &str = "rampart.script.store";
pub const FLUSH: &str = "rampart.script.flush";
pub const REPLY: &str = "rampart.script.reply";

/// Applies `argv` if it is one of the internal commands above.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>]) -> Option<Reply> {
    let name = argv.first()?;
    if !name.starts_with(b"rampart.script.") {
        return None;
    }
    if let Some(reply) = crate::scripting::functions::apply_internal(txn, argv) {
        return Some(reply);
    }
    let args = &argv[1..];
    Some(match (name.as_slice(), args) {
        (n, [sha, body]) if n == STORE.as_bytes() => {
            txn.put(keys::script_key(sha), body.clone());
            reply::ok()
        }
        (n, []) if n == FLUSH.as_bytes() => {
            let (start, end) = keys::script_range();
            txn.delete_range(start, end);
            reply::ok()
        }
        (n, [encoded]) if n == REPLY.as_bytes() => Reply::decode(encoded.as_slice())
            .unwrap_or_else(|_| reply::error("ERR internal error: undecodable script reply")),
        _ => reply::error("ERR internal error: malformed script command"),
    })
}

/// The internal command that answers `reply`.
pub fn reply_command(reply: &Reply) -> Vec<Vec<u8>> {
    vec![REPLY.as_bytes().to_vec(), reply.encode_to_vec()]
}

/// The internal command that caches `body` under `sha`.
pub fn store_command(sha: &str, body: &[u8]) -> Vec<Vec<u8>> {
    vec![
        STORE.as_bytes().to_vec(),
        sha.as_bytes().to_vec(),
        body.to_vec(),
    ]
}

/// The internal command that deletes every cached script.
pub fn flush_command() -> Vec<Vec<u8>> {
    vec![FLUSH.as_bytes().to_vec()]
}

/// The cached body of the script `sha`, if any.
pub fn load<R: DataRead + ?Sized>(r: &R, sha: &[u8]) -> Option<Vec<u8>> {
    r.get(&keys::script_key(sha)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn store_flush_and_reply_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open");
        let mut txn = engine.txn();
        let r = apply_internal(&mut txn, &store_command("abc", b"return 1"));
        assert_eq!(r, Some(reply::ok()));
        assert_eq!(load(&txn, b"abc"), Some(b"return 1".to_vec()));
        let back = apply_internal(&mut txn, &reply_command(&reply::integer(7)));
        assert_eq!(back, Some(reply::integer(7)));
        assert_eq!(
            apply_internal(&mut txn, &flush_command()),
            Some(reply::ok())
        );
        assert_eq!(load(&txn, b"abc"), None);
        assert!(apply_internal(&mut txn, &[b"GET".to_vec()]).is_none());
        // FLUSHALL keeps scripts.
        apply_internal(&mut txn, &store_command("abc", b"return 1"));
        crate::commands::apply_write(&mut txn, &[b"FLUSHALL".to_vec()], 0);
        assert_eq!(load(&txn, b"abc"), Some(b"return 1".to_vec()));
    }
}
