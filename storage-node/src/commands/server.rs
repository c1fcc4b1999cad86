//! Server commands the node executes: DBSIZE, FLUSHDB/FLUSHALL and the
//! keyspace section of INFO (the proxy assembles the rest of INFO).

use rampart_proto::args::Args;
use rampart_proto::{errors, reply};

use super::CmdResult;
use crate::engine::{key_counts, DataRead, Txn};

pub fn dbsize<R: DataRead + ?Sized>(r: &R) -> CmdResult {
    Ok(reply::integer(key_counts(r)?.keys))
}

/// FLUSHDB / FLUSHALL [ASYNC | SYNC]. Both are range deletes, cheap at any
/// size, so the two modes behave the same.
pub fn flush(txn: &mut Txn<'_>, args: &[Vec<u8>]) -> CmdResult {
    let mut a = Args::new(args);
    if a.remaining() > 1 {
        return Err(errors::SYNTAX.into());
    }
    if !a.is_empty() {
        let mode = a.next_keyword()?;
        if mode != "ASYNC" && mode != "SYNC" {
            return Err(errors::SYNTAX.into());
        }
    }
    txn.flush_data();
    Ok(reply::ok())
}

/// The keyspace section as Redis prints it (an empty body when there are
/// no keys; `avg_ttl` is not tracked and reported as 0).
pub fn keyspace_section<R: DataRead + ?Sized>(r: &R) -> Result<String, crate::engine::EngineError> {
    let counts = key_counts(r)?;
    let mut text = String::from("# Keyspace\r\n");
    if counts.keys > 0 {
        text.push_str(&format!(
            "db0:keys={},expires={},avg_ttl=0\r\n",
            counts.keys, counts.expires
        ));
    }
    Ok(text)
}

/// `INFO [section ...]` on the node: only the keyspace section lives here;
/// other sections yield an empty string for the proxy to fill in.
pub fn info<R: DataRead + ?Sized>(r: &R, args: &[Vec<u8>]) -> CmdResult {
    let wants_keyspace = args.is_empty()
        || args.iter().any(|section| {
            let section = section.to_ascii_lowercase();
            matches!(
                section.as_slice(),
                b"keyspace" | b"all" | b"default" | b"everything"
            )
        });
    let text = if wants_keyspace {
        keyspace_section(r)?
    } else {
        String::new()
    };
    Ok(reply::bulk(text))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, Node};

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn dbsize_info_and_flush() {
        let node = Node::new();
        check(
            &node,
            NOW,
            &[
                ("DBSIZE", ":0"),
                ("INFO keyspace", "\"# Keyspace\r\n\""),
                ("MSET a 1 b 2", "+OK"),
                ("SET c 3 EX 100", "+OK"),
                ("DBSIZE", ":3"),
                (
                    "INFO KEYSPACE",
                    "\"# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n\"",
                ),
                ("INFO server", "\"\""),
                ("FLUSHDB", "+OK"),
                ("DBSIZE", ":0"),
                ("GET a", "nil"),
                ("TTL c", ":-2"),
                ("SET a 1", "+OK"),
                ("FLUSHALL async", "+OK"),
                ("DBSIZE", ":0"),
                ("SET a 1", "+OK"),
                ("FLUSHDB SYNC", "+OK"),
                ("FLUSHDB LATER", "-ERR syntax error"),
                ("FLUSHALL SYNC ASYNC", "-ERR syntax error"),
                ("SET a 1 EX 5", "+OK"),
                ("DBSIZE", ":1"),
                (
                    "INFO keyspace",
                    "\"# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\n\"",
                ),
            ],
        );
        assert_eq!(
            node.engine.expired_keys(NOW + 5_000, 10).unwrap(),
            vec![b"a".to_vec()]
        );
    }
}
