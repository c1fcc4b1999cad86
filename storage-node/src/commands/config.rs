//! Cluster `CONFIG` parameters as replicated state: the internal commands
//! the proxy's `CONFIG SET` / `CONFIG GET` send (`rampart.config.*`, see
//! [`rampart_proto::redis_config::internal`]), and the reads other
//! commands make of them (OBJECT ENCODING's thresholds).
//!
//! Each parameter ever set is one replicated setting `config.<name>` (its
//! canonical text); `config.version` is bumped by every change so a proxy
//! can ask "changed since version N?". They live outside FLUSHALL's range,
//! as Redis keeps its configuration across FLUSHALL, and travel in
//! snapshots with every other DATA record. Not in the command table: no
//! client and no Lua script can send them through a proxy.

use rampart_proto::args::parse_i64;
use rampart_proto::redis_config::{self, internal, Param, PARAMS};
use rampart_proto::{reply, Reply};

use crate::engine::{keys, DataRead, Txn};

const VERSION: &[u8] = b"config.version";

fn setting(name: &str) -> Vec<u8> {
    keys::setting_key(format!("config.{name}").as_bytes())
}

/// Whether `argv` is one of the internal CONFIG commands.
pub fn is_internal(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|name| name.starts_with(internal::PREFIX))
}

/// Whether `argv` is the internal CONFIG write (goes through the log).
pub fn is_internal_write(argv: &[Vec<u8>]) -> bool {
    argv.first()
        .is_some_and(|name| name == internal::SET.as_bytes())
}

fn version<R: DataRead + ?Sized>(r: &R) -> u64 {
    crate::engine::setting_version(r, VERSION)
}

/// The stored value of `param`, or its default.
pub fn value<R: DataRead + ?Sized>(r: &R, param: &Param) -> String {
    r.get(&setting(param.name))
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_else(|| param.default.to_string())
}

/// An integer parameter's value (`name` must be an integer parameter of
/// the table; a stored value that does not parse counts as the default).
pub fn integer<R: DataRead + ?Sized>(r: &R, name: &str) -> i64 {
    let Some(param) = redis_config::by_name(name) else {
        return 0;
    };
    let default = parse_i64(param.default.as_bytes()).unwrap_or(0);
    parse_i64(value(r, param).as_bytes()).unwrap_or(default)
}

/// Applies `rampart.config.set` inside a Raft entry; `None` when `argv` is
/// not it. All pairs are checked before anything is stored.
pub fn apply_internal(txn: &mut Txn<'_>, argv: &[Vec<u8>]) -> Option<Reply> {
    if !is_internal_write(argv) {
        return None;
    }
    let pairs = &argv[1..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Some(reply::error("ERR internal error: malformed CONFIG command"));
    }
    let mut changes = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        let Some(param) = redis_config::lookup(&pair[0])
            .filter(|p| p.scope == redis_config::Scope::Cluster && p.mutable)
        else {
            return Some(reply::error(redis_config::unknown_option(&pair[0])));
        };
        match redis_config::normalize(param, &pair[1]) {
            Ok(value) => changes.push((param, value)),
            Err(why) => return Some(reply::error(redis_config::set_failed(&pair[0], &why))),
        }
    }
    for (param, value) in changes {
        txn.put(setting(param.name), value.into_bytes());
    }
    let next = version(&*txn) + 1;
    txn.put(keys::setting_key(VERSION), next.to_be_bytes().to_vec());
    Some(reply::ok())
}

/// Answers `rampart.config.get <version>`: nil when unchanged, else
/// `[version, name, value, ...]` for every cluster parameter ever set.
pub fn read_internal<R: DataRead + ?Sized>(r: &R, argv: &[Vec<u8>]) -> Reply {
    if argv.first().map(Vec::as_slice) != Some(internal::GET.as_bytes()) {
        return reply::error("ERR internal error: malformed CONFIG command");
    }
    let known = argv.get(1).and_then(|v| parse_i64(v));
    let current = version(r);
    if known == Some(current as i64) {
        return reply::null();
    }
    let mut items = vec![reply::integer(current as i64)];
    for param in PARAMS {
        if let Ok(Some(stored)) = r.get(&setting(param.name)) {
            items.push(reply::bulk(param.name));
            items.push(reply::bulk(stored));
        }
    }
    reply::array(items)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn values_are_replicated_versioned_and_kept_by_flushall() {
        let node = Node::new();
        assert_eq!(
            integer(&node.engine.read_view(), "hash-max-listpack-entries"),
            512
        );
        assert_eq!(
            show(&node.run(0, "rampart.config.get -1")),
            "[:0]",
            "nothing set yet"
        );
        assert_eq!(
            show(&node.run(
                0,
                "rampart.config.set hash-max-ziplist-entries 4 maxmemory 1mb"
            )),
            "+OK"
        );
        assert_eq!(
            show(&node.run(0, "rampart.config.set timeout 4")),
            "-ERR Unknown option or number of arguments for CONFIG SET - 'timeout'",
            "a proxy parameter is not cluster state"
        );
        assert_eq!(
            show(&node.run(0, "rampart.config.set set-max-intset-entries 1 maxmemory x")),
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
        );
        node.run(0, "FLUSHALL");
        let view = node.engine.read_view();
        assert_eq!(integer(&view, "hash-max-listpack-entries"), 4);
        assert_eq!(
            integer(&view, "set-max-intset-entries"),
            512,
            "all or nothing"
        );
        assert_eq!(
            show(&node.run(0, "rampart.config.get 0")),
            "[:1, \"hash-max-listpack-entries\", \"4\", \"maxmemory\", \"1048576\"]"
        );
        assert_eq!(show(&node.run(0, "rampart.config.get 1")), "nil");
    }
}
