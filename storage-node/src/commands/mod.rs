//! Redis command execution on the node, one module per command family.
//!
//! CONTRACT (used by `raft/` and `server/`):
//! - [`is_write`]: whether a command must go through the Raft log.
//! - [`execute_read`]: runs a read command against applied state.
//! - [`apply_write`]: applies a write command inside a Raft entry's `Txn`,
//!   deterministically: `now_ms` is the leader's clock stamped into the entry.
//! - [`apply_expire`]: deletes the given keys if they are expired at `now_ms`
//!   (the leader's active expiry, replicated through the log).
//!
//! Every function returns the Redis reply; errors are replies, never panics.
//!
//! Commands are written once against [`DataRead`], so a read command inside
//! a Raft entry (run by [`apply_write`]) sees the entry's earlier writes.

pub mod acl;
mod bitmaps;
pub mod blocked;
mod budget;
mod collection;
pub mod config;
mod dump;
mod geo;
mod hashes;
mod hyperloglog;
mod keys;
mod lists;
mod object;
pub mod scripting;
mod server;
mod sets;
pub(crate) mod sort;
pub(crate) mod streams;
mod strings;
pub(crate) mod transactions;
mod zsets;

use rampart_proto::{command_table, errors, reply, Reply};

use crate::engine::{self, DataRead, Engine, EngineError, Txn};

pub use rampart_proto::glob::glob_match;

/// Whether `argv` (name first) is a write that must be replicated.
/// Unknown commands count as reads (they are answered with an error).
pub fn is_write(argv: &[Vec<u8>]) -> bool {
    if acl::is_internal(argv) {
        return acl::is_internal_write(argv);
    }
    if config::is_internal(argv) {
        return config::is_internal_write(argv);
    }
    argv.first()
        .and_then(|name| rampart_proto::command_table::lookup(name))
        .map(|spec| spec.is_write())
        .unwrap_or(false)
}

/// Whether `argv` blocks (its spec's [`Blocking`](command_table::Blocking)
/// rule): the pops always (applied as one non-blocking attempt, retried by
/// the node's wait loop), XREAD / XREADGROUP with a `BLOCK` option (a
/// blocking XREAD waits as repeated reads, a blocking XREADGROUP as
/// repeated write attempts like the pops).
pub fn is_blocking(argv: &[Vec<u8>]) -> bool {
    if blocked::is_serve(argv) {
        return true;
    }
    argv.first()
        .and_then(|name| command_table::lookup(name))
        .is_some_and(|spec| spec.blocks(argv))
}

/// Whether a blocking attempt's reply means "no data yet" (the null a
/// blocking pop answers inside MULTI), as opposed to data or an error.
pub fn is_empty_blocking_reply(reply: &Reply) -> bool {
    use rampart_proto::pb::reply::Kind;
    matches!(reply.kind, Some(Kind::Null(_)) | Some(Kind::NullArray(_)))
}

pub fn execute_read(engine: &Engine, argv: &[Vec<u8>], now_ms: i64) -> Reply {
    execute_read_within(engine, argv, now_ms, crate::limits::max_reply_bytes())
}

/// [`execute_read`] with a reply budget of `budget` bytes (what is left of
/// its read run's `--max-reply-bytes`, see `commands::budget`).
pub fn execute_read_within(engine: &Engine, argv: &[Vec<u8>], now_ms: i64, budget: usize) -> Reply {
    if acl::is_internal(argv) {
        return acl::read_internal(&engine.read_view(), argv);
    }
    if config::is_internal(argv) {
        return config::read_internal(&engine.read_view(), argv);
    }
    let (name, args) = match validate(argv) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let view = engine.read_view();
    let view = budget::Budgeted::new(&view, budget);
    match run_read(&view, name, args, now_ms) {
        Some(result) => finish(result),
        None => reply::error(format!(
            "ERR '{name}' is a write command and must go through the log"
        )),
    }
}

pub fn apply_write(txn: &mut Txn<'_>, argv: &[Vec<u8>], now_ms: i64) -> Reply {
    if let Some(reply) = blocked::apply_internal(txn, argv, now_ms) {
        return reply;
    }
    if let Some(reply) = scripting::apply_internal(txn, argv) {
        return reply;
    }
    if let Some(reply) = streams::admin::apply_internal(txn, argv, now_ms) {
        return reply;
    }
    if let Some(reply) = acl::apply_internal(txn, argv) {
        return reply;
    }
    if let Some(reply) = config::apply_internal(txn, argv) {
        return reply;
    }
    let (name, args) = match validate(argv) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if let Some(result) = run_write(txn, name, args, now_ms) {
        return finish(result);
    }
    // A read ordered inside a Raft entry reads through the entry's overlay;
    // it changes nothing, so its reply may be bounded by this node's limit.
    let view = budget::Budgeted::new(&*txn, crate::limits::max_reply_bytes());
    match run_read(&view, name, args, now_ms) {
        Some(result) => finish(result),
        None => reply::error(errors::unknown_command(name.as_bytes(), args)),
    }
}

pub fn apply_expire(txn: &mut Txn<'_>, keys: &[Vec<u8>], now_ms: i64) {
    for key in keys {
        // The key may have been rewritten (new TTL, persisted) since the
        // leader listed it: only a record still expired at `now_ms` goes.
        let result = match engine::load_meta(&*txn, key) {
            Ok(Some(meta)) if meta.is_expired(now_ms) => txn.delete_key(key).map(drop),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "active expiry could not delete a key");
        }
    }
}

/// A failed command: a Redis error reply, or a storage failure.
#[derive(Debug)]
pub(crate) enum CmdError {
    Redis(String),
    Engine(EngineError),
}

impl From<String> for CmdError {
    fn from(text: String) -> Self {
        CmdError::Redis(text)
    }
}

impl From<&str> for CmdError {
    fn from(text: &str) -> Self {
        CmdError::Redis(text.to_string())
    }
}

impl From<EngineError> for CmdError {
    fn from(err: EngineError) -> Self {
        CmdError::Engine(err)
    }
}

pub(crate) type CmdResult = Result<Reply, CmdError>;

fn finish(result: CmdResult) -> Reply {
    match result {
        Ok(reply) => reply,
        Err(CmdError::Redis(text)) => reply::error(text),
        Err(CmdError::Engine(EngineError::ReplyTooLarge { limit })) => {
            reply::error(budget::error_text(limit))
        }
        Err(CmdError::Engine(err)) => {
            tracing::error!(error = %err, "storage error while executing a command");
            reply::error(format!("ERR storage error: {err}"))
        }
    }
}

/// Checks the name and arity; returns the lower-case name and the
/// arguments after it. INFO is a proxy command the node answers only for
/// its keyspace section.
fn validate(argv: &[Vec<u8>]) -> Result<(&'static str, &[Vec<u8>]), Reply> {
    let Some((name, args)) = argv.split_first() else {
        return Err(reply::error(errors::unknown_command(b"", &[] as &[&[u8]])));
    };
    let spec = command_table::lookup(name)
        .filter(|spec| spec.runs != command_table::Runs::Proxy || spec.name == "info")
        .ok_or_else(|| reply::error(errors::unknown_command(name, args)))?;
    if !spec.arity_ok(argv.len()) {
        return Err(reply::error(errors::wrong_arity(spec.name)));
    }
    Ok((spec.name, args))
}

/// Runs a read command; `None` when `name` is not one.
fn run_read<R: DataRead + ?Sized>(
    r: &R,
    name: &str,
    args: &[Vec<u8>],
    now: i64,
) -> Option<CmdResult> {
    Some(match name {
        "get" => strings::get(r, args, now),
        "mget" => strings::mget(r, args, now),
        "strlen" => strings::strlen(r, args, now),
        "getrange" | "substr" => strings::getrange(r, args, now),
        "lcs" => strings::lcs(r, args, now),
        "getbit" => bitmaps::getbit(r, args, now),
        "bitcount" => bitmaps::bitcount(r, args, now),
        "bitpos" => bitmaps::bitpos(r, args, now),
        "bitfield_ro" => bitmaps::bitfield_ro(r, args, now),
        "pfcount" => hyperloglog::pfcount(r, args, now),
        "geopos" => geo::geopos(r, args, now),
        "geohash" => geo::geohash_cmd(r, args, now),
        "geodist" => geo::geodist(r, args, now),
        "geosearch" => geo::search_read(r, args, now, geo::Variant::Search, "geosearch"),
        "georadius_ro" => {
            let variant = geo::Variant::Radius { store: false };
            geo::search_read(r, args, now, variant, "georadius_ro")
        }
        "georadiusbymember_ro" => {
            let variant = geo::Variant::RadiusByMember { store: false };
            geo::search_read(r, args, now, variant, "georadiusbymember_ro")
        }
        "exists" => keys::exists(r, args, now),
        // Rampart keeps no access times: TOUCH only counts, like EXISTS.
        "touch" => keys::exists(r, args, now),
        "sort_ro" => sort::sort_ro(r, args, now),
        "type" => keys::key_type(r, args, now),
        "ttl" => keys::ttl(r, args, now, keys::TtlOutput::Seconds),
        "pttl" => keys::ttl(r, args, now, keys::TtlOutput::Millis),
        "expiretime" => keys::ttl(r, args, now, keys::TtlOutput::AbsSeconds),
        "pexpiretime" => keys::ttl(r, args, now, keys::TtlOutput::AbsMillis),
        "keys" => keys::keys(r, args, now),
        "scan" => keys::scan(r, args, now),
        "randomkey" => keys::randomkey(r, now),
        "dbsize" => server::dbsize(r),
        "hget" => hashes::hget(r, args, now),
        "hmget" => hashes::hmget(r, args, now),
        "hexists" => hashes::hexists(r, args, now),
        "hlen" => hashes::hlen(r, args, now),
        "hstrlen" => hashes::hstrlen(r, args, now),
        "hkeys" => hashes::hgetall(r, args, now, hashes::Part::Keys),
        "hvals" => hashes::hgetall(r, args, now, hashes::Part::Values),
        "hgetall" => hashes::hgetall(r, args, now, hashes::Part::All),
        "hrandfield" => hashes::hrandfield(r, args, now),
        "hscan" => hashes::hscan(r, args, now),
        "sismember" => sets::sismember(r, args, now),
        "smismember" => sets::smismember(r, args, now),
        "scard" => sets::scard(r, args, now),
        "smembers" => sets::smembers(r, args, now),
        "srandmember" => sets::srandmember(r, args, now),
        "sinter" => sets::combine_read(r, args, now, sets::Op::Inter),
        "sunion" => sets::combine_read(r, args, now, sets::Op::Union),
        "sdiff" => sets::combine_read(r, args, now, sets::Op::Diff),
        "sintercard" => sets::sintercard(r, args, now),
        "sscan" => sets::sscan(r, args, now),
        "zcard" => zsets::zcard(r, args, now),
        "zscore" => zsets::zscore(r, args, now),
        "zmscore" => zsets::zmscore(r, args, now),
        "zrank" => zsets::zrank(r, args, now, false),
        "zrevrank" => zsets::zrank(r, args, now, true),
        "zcount" => zsets::zcount(r, args, now, false),
        "zlexcount" => zsets::zcount(r, args, now, true),
        "zrange" => zsets::zrange(r, args, now, zsets::RangeCmd::Auto),
        "zrevrange" => zsets::zrange(r, args, now, zsets::RangeCmd::RevRank),
        "zrangebyscore" => zsets::zrange(r, args, now, zsets::RangeCmd::Score { rev: false }),
        "zrevrangebyscore" => zsets::zrange(r, args, now, zsets::RangeCmd::Score { rev: true }),
        "zrangebylex" => zsets::zrange(r, args, now, zsets::RangeCmd::Lex { rev: false }),
        "zrevrangebylex" => zsets::zrange(r, args, now, zsets::RangeCmd::Lex { rev: true }),
        "zrandmember" => zsets::zrandmember(r, args, now),
        "zunion" => zsets::zcombine(r, args, now, zsets::SetOp::Union, "zunion"),
        "zinter" => zsets::zcombine(r, args, now, zsets::SetOp::Inter, "zinter"),
        "zdiff" => zsets::zcombine(r, args, now, zsets::SetOp::Diff, "zdiff"),
        "zintercard" => zsets::zintercard(r, args, now),
        "zscan" => zsets::zscan(r, args, now),
        "llen" => lists::llen(r, args, now),
        "lindex" => lists::lindex(r, args, now),
        "lrange" => lists::lrange(r, args, now),
        "lpos" => lists::lpos(r, args, now),
        "info" => server::info(r, args),
        "object" => object::object(r, args, now),
        "dump" => dump::dump(r, args, now),
        "watch" => transactions::watch(r, args, now),
        "xlen" => streams::entries::xlen(r, args, now),
        "xrange" => streams::entries::xrange(r, args, now, false),
        "xrevrange" => streams::entries::xrange(r, args, now, true),
        "xread" => streams::read::xread(r, args, now),
        "xinfo" => streams::info::xinfo(r, args, now),
        "xpending" => streams::groups::xpending(r, args, now),
        "rampart.streamformat" => streams::admin::streamformat(r, args, now),
        _ => return None,
    })
}

/// Applies a write command; `None` when `name` is not one.
fn run_write(txn: &mut Txn<'_>, name: &str, args: &[Vec<u8>], now: i64) -> Option<CmdResult> {
    Some(match name {
        "set" => strings::set(txn, args, now),
        "setnx" => strings::setnx(txn, args, now),
        "setex" => strings::setex(txn, args, now, strings::Unit::Seconds, "setex"),
        "psetex" => strings::setex(txn, args, now, strings::Unit::Millis, "psetex"),
        "mset" => strings::mset(txn, args),
        "msetnx" => strings::msetnx(txn, args, now),
        "getset" => strings::getset(txn, args, now),
        "getdel" => strings::getdel(txn, args, now),
        "getex" => strings::getex(txn, args, now),
        "append" => strings::append(txn, args, now),
        "setrange" => strings::setrange(txn, args, now),
        "setbit" => bitmaps::setbit(txn, args, now),
        "bitop" => bitmaps::bitop(txn, args, now),
        "bitfield" => bitmaps::bitfield(txn, args, now),
        "pfadd" => hyperloglog::pfadd(txn, args, now),
        "pfmerge" => hyperloglog::pfmerge(txn, args, now),
        "geoadd" => geo::geoadd(txn, args, now),
        "geosearchstore" => {
            geo::search_write(txn, args, now, geo::Variant::SearchStore, "geosearchstore")
        }
        "georadius" => {
            let variant = geo::Variant::Radius { store: true };
            geo::search_write(txn, args, now, variant, "georadius")
        }
        "georadiusbymember" => {
            let variant = geo::Variant::RadiusByMember { store: true };
            geo::search_write(txn, args, now, variant, "georadiusbymember")
        }
        "incr" => strings::incr(txn, args, now, 1),
        "decr" => strings::incr(txn, args, now, -1),
        "incrby" => strings::incrby(txn, args, now, false),
        "decrby" => strings::incrby(txn, args, now, true),
        "incrbyfloat" => strings::incrbyfloat(txn, args, now),
        "del" | "unlink" => keys::del(txn, args, now),
        "rename" => keys::rename(txn, args, now, false),
        "copy" => object::copy(txn, args, now),
        "restore" => dump::restore(txn, args, now),
        "renamenx" => keys::rename(txn, args, now, true),
        "expire" => keys::expire(txn, args, now, keys::ExpireBase::RelativeSeconds, "expire"),
        "pexpire" => keys::expire(txn, args, now, keys::ExpireBase::RelativeMillis, "pexpire"),
        "expireat" => keys::expire(txn, args, now, keys::ExpireBase::AbsSeconds, "expireat"),
        "pexpireat" => keys::expire(txn, args, now, keys::ExpireBase::AbsMillis, "pexpireat"),
        "persist" => keys::persist(txn, args, now),
        "flushdb" | "flushall" => server::flush(txn, args),
        "hset" => hashes::hset(txn, args, now, false),
        "hmset" => hashes::hset(txn, args, now, true),
        "hsetnx" => hashes::hsetnx(txn, args, now),
        "hdel" => hashes::hdel(txn, args, now),
        "hincrby" => hashes::hincrby(txn, args, now),
        "hincrbyfloat" => hashes::hincrbyfloat(txn, args, now),
        "sadd" => sets::sadd(txn, args, now),
        "srem" => sets::srem(txn, args, now),
        "spop" => sets::spop(txn, args, now),
        "smove" => sets::smove(txn, args, now),
        "sinterstore" => sets::combine_store(txn, args, now, sets::Op::Inter),
        "sunionstore" => sets::combine_store(txn, args, now, sets::Op::Union),
        "sdiffstore" => sets::combine_store(txn, args, now, sets::Op::Diff),
        "sort" => sort::sort(txn, args, now),
        "zadd" => zsets::zadd(txn, args, now),
        "zincrby" => zsets::zincrby(txn, args, now),
        "zrem" => zsets::zrem(txn, args, now),
        "zrangestore" => zsets::zrangestore(txn, args, now),
        "zremrangebyrank" => zsets::zremrange(txn, args, now, zsets::RemBy::Rank),
        "zremrangebyscore" => zsets::zremrange(txn, args, now, zsets::RemBy::Score),
        "zremrangebylex" => zsets::zremrange(txn, args, now, zsets::RemBy::Lex),
        "zpopmin" => zsets::zpop(txn, args, now, false),
        "zpopmax" => zsets::zpop(txn, args, now, true),
        "zmpop" => zsets::zmpop(txn, args, now),
        "zunionstore" => zsets::zcombine_store(txn, args, now, zsets::SetOp::Union, "zunionstore"),
        "zinterstore" => zsets::zcombine_store(txn, args, now, zsets::SetOp::Inter, "zinterstore"),
        "zdiffstore" => zsets::zcombine_store(txn, args, now, zsets::SetOp::Diff, "zdiffstore"),
        "lpush" => lists::push(txn, args, now, true, false),
        "rpush" => lists::push(txn, args, now, false, false),
        "lpushx" => lists::push(txn, args, now, true, true),
        "rpushx" => lists::push(txn, args, now, false, true),
        "lpop" => lists::pop(txn, args, now, true),
        "rpop" => lists::pop(txn, args, now, false),
        "lset" => lists::lset(txn, args, now),
        "ltrim" => lists::ltrim(txn, args, now),
        "linsert" => lists::linsert(txn, args, now),
        "lrem" => lists::lrem(txn, args, now),
        "lmove" => lists::lmove(txn, args, now),
        "rpoplpush" => lists::rpoplpush(txn, args, now),
        "lmpop" => lists::lmpop(txn, args, now),
        "blpop" => lists::bpop(txn, args, now, true),
        "brpop" => lists::bpop(txn, args, now, false),
        "blmove" => lists::blmove(txn, args, now),
        "brpoplpush" => lists::brpoplpush(txn, args, now),
        "blmpop" => lists::blmpop(txn, args, now),
        "bzpopmin" => zsets::bzpop(txn, args, now, false),
        "bzpopmax" => zsets::bzpop(txn, args, now, true),
        "bzmpop" => zsets::bzmpop(txn, args, now),
        "xadd" => streams::entries::xadd(txn, args, now),
        "xdel" => streams::entries::xdel(txn, args, now),
        "xtrim" => streams::entries::xtrim(txn, args, now),
        "xsetid" => streams::entries::xsetid(txn, args, now),
        "xgroup" => streams::groups::xgroup(txn, args, now),
        "xreadgroup" => streams::groups::xreadgroup(txn, args, now),
        "xack" => streams::groups::xack(txn, args, now),
        "xclaim" => streams::groups::xclaim(txn, args, now),
        "xautoclaim" => streams::groups::xautoclaim(txn, args, now),
        "rampart.streamimport" => streams::admin::streamimport(txn, args, now),
        "rampart.streamtolegacy" => streams::admin::streamtolegacy(txn, args, now),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A real engine in a temp dir plus helpers that run commands the way
    //! the state machine does: writes through a committed `Txn`, reads
    //! through a fresh view.

    use rampart_proto::pb::reply::Kind;
    use rampart_proto::Reply;

    use crate::engine::Engine;

    pub struct Node {
        pub engine: Engine,
        _dir: tempfile::TempDir,
    }

    pub fn argv(text: &str) -> Vec<Vec<u8>> {
        text.split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    impl Node {
        pub fn new() -> Node {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine = Engine::open(dir.path()).expect("open engine");
            Node { engine, _dir: dir }
        }

        /// Runs one command at `now` (ms), routed like the server does.
        pub fn run_at(&self, now: i64, args: &[Vec<u8>]) -> Reply {
            if super::is_write(args) {
                let mut txn = self.engine.txn();
                let reply = super::apply_write(&mut txn, args, now);
                let batch = txn.into_batch().expect("batch");
                self.engine.write_batch(batch, false).expect("write");
                reply
            } else {
                super::execute_read(&self.engine, args, now)
            }
        }

        pub fn run(&self, now: i64, text: &str) -> Reply {
            self.run_at(now, &argv(text))
        }
    }

    /// A compact rendering of a reply for table-driven assertions:
    /// `+OK`, `-ERR ...`, `:1`, `"bulk"`, `nil`, `[a, b]`.
    pub fn show(reply: &Reply) -> String {
        match &reply.kind {
            Some(Kind::Status(s)) => format!("+{s}"),
            Some(Kind::Error(e)) => format!("-{e}"),
            Some(Kind::Integer(i)) => format!(":{i}"),
            Some(Kind::Bulk(b)) => format!("\"{}\"", String::from_utf8_lossy(b)),
            Some(Kind::Null(_)) | Some(Kind::NullArray(_)) => "nil".to_string(),
            Some(Kind::Resp(r)) => format!("resp:{}", String::from_utf8_lossy(r)),
            Some(Kind::Array(list)) | Some(Kind::Set(list)) | Some(Kind::Map(list)) => {
                let items: Vec<String> = list.items.iter().map(show).collect();
                format!("[{}]", items.join(", "))
            }
            Some(Kind::Pairs(list)) | Some(Kind::Keyed(list)) => {
                let items: Vec<String> = list
                    .items
                    .chunks(2)
                    .map(|pair| {
                        let pair: Vec<String> = pair.iter().map(show).collect();
                        format!("[{}]", pair.join(", "))
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }
            Some(Kind::Double(d) | Kind::HumanDouble(d)) => format!(",{d}"),
            Some(Kind::Boolean(b)) => format!("#{b}"),
            Some(Kind::Verbatim(v)) => format!("\"{}\"", String::from_utf8_lossy(&v.text)),
            None => "<empty>".to_string(),
        }
    }

    /// Runs each `(command, expected)` at `now` in order.
    pub fn check(node: &Node, now: i64, cases: &[(&str, &str)]) {
        for (command, expected) in cases {
            assert_eq!(
                &show(&node.run(now, command)),
                expected,
                "command: {command}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn unknown_commands_and_bad_arity_are_errors() {
        let node = Node::new();
        check(
            &node,
            0,
            &[
                (
                    "FOO a b",
                    "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' ",
                ),
                ("GET", "-ERR wrong number of arguments for 'get' command"),
                (
                    "GET a b",
                    "-ERR wrong number of arguments for 'get' command",
                ),
                ("SET a", "-ERR wrong number of arguments for 'set' command"),
                (
                    "PING",
                    "-ERR unknown command 'PING', with args beginning with: ",
                ),
            ],
        );
        assert!(node.run_at(0, &[]).is_error());
    }

    #[test]
    fn a_write_on_the_read_path_is_refused() {
        let node = Node::new();
        let reply = execute_read(&node.engine, &argv("SET k v"), 0);
        assert!(reply.is_error());
        assert_eq!(show(&node.run(0, "GET k")), "nil");
    }

    #[test]
    fn reads_inside_an_entry_see_its_earlier_writes() {
        let node = Node::new();
        let mut txn = node.engine.txn();
        assert_eq!(show(&apply_write(&mut txn, &argv("SET k 1"), 0)), "+OK");
        assert_eq!(show(&apply_write(&mut txn, &argv("INCR k"), 0)), ":2");
        assert_eq!(show(&apply_write(&mut txn, &argv("GET k"), 0)), "\"2\"");
        assert_eq!(show(&apply_write(&mut txn, &argv("DBSIZE"), 0)), ":1");
        // Nothing is visible before the batch is written.
        assert_eq!(show(&node.run(0, "GET k")), "nil");
        node.engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        assert_eq!(show(&node.run(0, "GET k")), "\"2\"");
    }

    #[test]
    fn active_expiry_deletes_only_keys_still_expired() {
        let node = Node::new();
        check(
            &node,
            1_000,
            &[
                ("SET a 1 PX 100", "+OK"),
                ("SET b 1 PX 100", "+OK"),
                ("SET c 1 PX 5000", "+OK"),
            ],
        );
        // b got a new TTL after the leader listed it.
        check(&node, 1_050, &[("PEXPIRE b 10000", ":1")]);
        let listed = node.engine.expired_keys(1_200, 10).unwrap();
        assert_eq!(listed, vec![b"a".to_vec()]);
        let mut txn = node.engine.txn();
        apply_expire(
            &mut txn,
            &[b"a".to_vec(), b"b".to_vec(), b"zz".to_vec()],
            1_200,
        );
        node.engine
            .write_batch(txn.into_batch().unwrap(), false)
            .unwrap();
        check(
            &node,
            1_200,
            &[("DBSIZE", ":2"), ("EXISTS b c", ":2"), ("EXISTS a", ":0")],
        );
        assert!(node.engine.expired_keys(1_200, 10).unwrap().is_empty());
    }
}
