//! Every command Rampart understands, as data: name, arity, flags and key
//! positions (Redis's `COMMAND INFO` model). The proxy uses it to answer
//! `COMMAND`, check arity before forwarding and decide where a command runs;
//! the node uses it to tell reads from writes.

/// Where a command is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// Answered by the proxy from connection state (PING, HELLO, CLIENT...).
    Proxy,
    /// Read on the node, after a linearizability check.
    NodeRead,
    /// Replicated through the Raft log and applied by every node.
    NodeWrite,
}

#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// Lower-case name, as `COMMAND` reports it.
    pub name: &'static str,
    /// Redis arity: positive = exact argument count (name included),
    /// negative = at least that many.
    pub arity: i32,
    /// Redis command flags as `COMMAND` reports them.
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// ACL categories as `COMMAND` reports them (without the '@').
    pub categories: &'static [&'static str],
    pub runs: Runs,
    /// Redis documentation group, for `COMMAND DOCS`.
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
}

impl CommandSpec {
    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.runs == Runs::NodeWrite
    }

    /// Positions of the key arguments in `argc` arguments (name at 0).
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argc as i64 + self.last_key as i64
        } else {
            self.last_key as i64
        };
        let step = self.step.max(1) as usize;
        (self.first_key as usize..=last.max(0) as usize)
            .step_by(step)
            .filter(|&i| i < argc)
            .collect()
    }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WNOOM: &[&str] = &["write"];
const WFNOOM: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const CONN: &[&str] = &["noscript", "loading", "stale", "fast"];

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr,
     $cats:expr, $runs:ident, $group:literal, $since:literal, $summary:literal) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            categories: $cats,
            runs: Runs::$runs,
            group: $group,
            summary: $summary,
            since: $since,
        }
    };
}

const STR_WS: &[&str] = &["write", "string", "slow"];
const STR_WF: &[&str] = &["write", "string", "fast"];
const STR_RF: &[&str] = &["read", "string", "fast"];
const STR_RS: &[&str] = &["read", "string", "slow"];
const KEY_WF: &[&str] = &["keyspace", "write", "fast"];
const KEY_WS: &[&str] = &["keyspace", "write", "slow"];
const KEY_RF: &[&str] = &["keyspace", "read", "fast"];
const KEY_RS: &[&str] = &["keyspace", "read", "slow", "dangerous"];
const CONN_CATS: &[&str] = &["fast", "connection"];
const SRV_DANGER: &[&str] = &["keyspace", "write", "slow", "dangerous"];
const HASH_WF: &[&str] = &["write", "hash", "fast"];
const HASH_RF: &[&str] = &["read", "hash", "fast"];
const HASH_RS: &[&str] = &["read", "hash", "slow"];
const SET_WF: &[&str] = &["write", "set", "fast"];
const SET_WS: &[&str] = &["write", "set", "slow"];
const SET_RF: &[&str] = &["read", "set", "fast"];
const SET_RS: &[&str] = &["read", "set", "slow"];
const RMOV: &[&str] = &["readonly", "movablekeys"];
const WMOV: &[&str] = &["write", "movablekeys"];
const WDMOV: &[&str] = &["write", "denyoom", "movablekeys"];
const L_WF: &[&str] = &["write", "list", "fast"];
const L_WS: &[&str] = &["write", "list", "slow"];
const L_RF: &[&str] = &["read", "list", "fast"];
const L_RS: &[&str] = &["read", "list", "slow"];
const Z_WF: &[&str] = &["write", "sortedset", "fast"];
const Z_WS: &[&str] = &["write", "sortedset", "slow"];
const Z_RF: &[&str] = &["read", "sortedset", "fast"];
const Z_RS: &[&str] = &["read", "sortedset", "slow"];
/// Scripting (EVAL*): forwarded to the node, which runs them on the leader
/// (docs/scripting.md).
const EVAL_FLAGS: &[&str] = &[
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];
const EVAL_RO_FLAGS: &[&str] = &[
    "readonly",
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];
const SCRIPTING: &[&str] = &["slow", "scripting"];
/// Pub/sub: answered by the proxy, relayed through the nodes (docs/pubsub.md).
const PS_SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PS_PUB: &[&str] = &["pubsub", "loading", "stale", "fast", "may_replicate"];
const PS_SLOW: &[&str] = &["pubsub", "slow"];
const PS_FAST: &[&str] = &["pubsub", "fast"];
const X_WF: &[&str] = &["write", "stream", "fast"];
const X_WS: &[&str] = &["write", "stream", "slow"];
const X_RF: &[&str] = &["read", "stream", "fast"];
const X_RS: &[&str] = &["read", "stream", "slow"];
/// Rampart's own stream administration (the legacy layout, docs/streams.md).
const X_ADMIN: &[&str] = &["admin", "stream", "slow", "dangerous"];

/// The table. Sorted by name so lookups can binary-search.
pub static COMMANDS: &[CommandSpec] = &[
    cmd!("append", 3, W, 1, 1, 1, STR_WF, NodeWrite, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    cmd!("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Authenticates the connection."),
    cmd!("blmove", 6, &["write", "denyoom", "blocking"], 1, 2, 1, &["write", "list", "slow", "blocking"], NodeWrite, "list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    cmd!("blmpop", -5, &["write", "blocking", "movablekeys"], 0, 0, 0, &["write", "list", "slow", "blocking"], NodeWrite, "list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd!("blpop", -3, &["write", "blocking"], 1, -2, 1, &["write", "list", "slow", "blocking"], NodeWrite, "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd!("brpop", -3, &["write", "blocking"], 1, -2, 1, &["write", "list", "slow", "blocking"], NodeWrite, "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd!("brpoplpush", 4, &["write", "denyoom", "blocking"], 1, 2, 1, &["write", "list", "slow", "blocking"], NodeWrite, "list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd!("bzmpop", -5, &["write", "blocking", "movablekeys"], 0, 0, 0, &["write", "sortedset", "slow", "blocking"], NodeWrite, "sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    cmd!("bzpopmax", -3, &["write", "blocking", "fast"], 1, -2, 1, &["write", "sortedset", "fast", "blocking"], NodeWrite, "sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    cmd!("bzpopmin", -3, &["write", "blocking", "fast"], 1, -2, 1, &["write", "sortedset", "fast", "blocking"], NodeWrite, "sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    cmd!("client", -2, &[], 0, 0, 0, &["slow"], Proxy, "connection", "2.4.0", "A container for client connection commands."),
    cmd!("command", -1, &["loading", "stale"], 0, 0, 0, &["slow", "connection"], Proxy, "server", "2.8.13", "Returns detailed information about all commands."),
    cmd!("copy", -3, W, 1, 2, 1, &["keyspace", "write", "slow"], NodeWrite, "generic", "6.2.0", "Copies the value of a key to a new key."),
    cmd!("dbsize", 1, RF, 0, 0, 0, &["keyspace", "read", "fast"], NodeRead, "server", "1.0.0", "Returns the number of keys in the database."),
    cmd!("decr", 2, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd!("decrby", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    cmd!("del", -2, WNOOM, 1, -1, 1, KEY_WS, NodeWrite, "generic", "1.0.0", "Deletes one or more keys."),
    cmd!("discard", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, &["fast", "transaction"], Proxy, "transactions", "2.0.0", "Discards a transaction."),
    cmd!("echo", 2, CONN, 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Returns the given string."),
    cmd!("eval", -3, EVAL_FLAGS, 0, 0, 0, SCRIPTING, NodeRead, "scripting", "2.6.0", "Executes a server-side Lua script."),
    cmd!("eval_ro", -3, EVAL_RO_FLAGS, 0, 0, 0, SCRIPTING, NodeRead, "scripting", "7.0.0", "Executes a read-only server-side Lua script."),
    cmd!("evalsha", -3, EVAL_FLAGS, 0, 0, 0, SCRIPTING, NodeRead, "scripting", "2.6.0", "Executes a server-side Lua script by SHA1 digest."),
    cmd!("evalsha_ro", -3, EVAL_RO_FLAGS, 0, 0, 0, SCRIPTING, NodeRead, "scripting", "7.0.0", "Executes a read-only server-side Lua script by SHA1 digest."),
    cmd!("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0, &["slow", "transaction"], Proxy, "transactions", "1.2.0", "Executes all commands in a transaction."),
    cmd!("exists", -2, RF, 1, -1, 1, KEY_RF, NodeRead, "generic", "1.0.0", "Determines whether one or more keys exist."),
    cmd!("expire", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    cmd!("expireat", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."),
    cmd!("expiretime", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp."),
    cmd!("flushall", -1, WNOOM, 0, 0, 0, SRV_DANGER, NodeWrite, "server", "1.0.0", "Removes all keys from all databases."),
    cmd!("flushdb", -1, WNOOM, 0, 0, 0, SRV_DANGER, NodeWrite, "server", "1.0.0", "Remove all keys from the current database."),
    cmd!("get", 2, RF, 1, 1, 1, STR_RF, NodeRead, "string", "1.0.0", "Returns the string value of a key."),
    cmd!("getdel", 2, WFNOOM, 1, 1, 1, STR_WF, NodeWrite, "string", "6.2.0", "Returns the string value of a key after deleting the key."),
    cmd!("getex", -2, WFNOOM, 1, 1, 1, STR_WF, NodeWrite, "string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
    cmd!("getrange", 4, R, 1, 1, 1, STR_RS, NodeRead, "string", "2.4.0", "Returns a substring of the string stored at a key."),
    cmd!("getset", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    cmd!("hdel", -3, WFNOOM, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    cmd!("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "6.0.0", "Handshakes with the Redis server."),
    cmd!("hexists", 3, RF, 1, 1, 1, HASH_RF, NodeRead, "hash", "2.0.0", "Determines whether a field exists in a hash."),
    cmd!("hget", 3, RF, 1, 1, 1, HASH_RF, NodeRead, "hash", "2.0.0", "Returns the value of a field in a hash."),
    cmd!("hgetall", 2, R, 1, 1, 1, HASH_RS, NodeRead, "hash", "2.0.0", "Returns all fields and values in a hash."),
    cmd!("hincrby", 4, WF, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    cmd!("hincrbyfloat", 4, WF, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    cmd!("hkeys", 2, R, 1, 1, 1, HASH_RS, NodeRead, "hash", "2.0.0", "Returns all fields in a hash."),
    cmd!("hlen", 2, RF, 1, 1, 1, HASH_RF, NodeRead, "hash", "2.0.0", "Returns the number of fields in a hash."),
    cmd!("hmget", -3, RF, 1, 1, 1, HASH_RF, NodeRead, "hash", "2.0.0", "Returns the values of all fields in a hash."),
    cmd!("hmset", -4, WF, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.0.0", "Sets the values of multiple fields."),
    cmd!("hrandfield", -2, R, 1, 1, 1, HASH_RS, NodeRead, "hash", "6.2.0", "Returns one or more random fields from a hash."),
    cmd!("hscan", -3, R, 1, 1, 1, HASH_RS, NodeRead, "hash", "2.8.0", "Iterates over fields and values of a hash."),
    cmd!("hset", -4, WF, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.0.0", "Creates or modifies the value of a field in a hash."),
    cmd!("hsetnx", 4, WF, 1, 1, 1, HASH_WF, NodeWrite, "hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist."),
    cmd!("hstrlen", 3, RF, 1, 1, 1, HASH_RF, NodeRead, "hash", "3.2.0", "Returns the length of the value of a field."),
    cmd!("hvals", 2, R, 1, 1, 1, HASH_RS, NodeRead, "hash", "2.0.0", "Returns all values in a hash."),
    cmd!("incr", 2, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd!("incrby", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    cmd!("incrbyfloat", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    cmd!("info", -1, &["loading", "stale"], 0, 0, 0, &["slow", "dangerous"], Proxy, "server", "1.0.0", "Returns information and statistics about the server."),
    cmd!("keys", 2, R, 0, 0, 0, KEY_RS, NodeRead, "generic", "1.0.0", "Returns all key names that match a pattern."),
    cmd!("lindex", 3, R, 1, 1, 1, L_RS, NodeRead, "list", "1.0.0", "Returns an element from a list by its index."),
    cmd!("linsert", 5, W, 1, 1, 1, L_WS, NodeWrite, "list", "2.2.0", "Inserts an element before or after another element in a list."),
    cmd!("llen", 2, RF, 1, 1, 1, L_RF, NodeRead, "list", "1.0.0", "Returns the length of a list."),
    cmd!("lmove", 5, W, 1, 2, 1, L_WS, NodeWrite, "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    cmd!("lmpop", -4, WMOV, 0, 0, 0, L_WS, NodeWrite, "list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    cmd!("lpop", -2, WFNOOM, 1, 1, 1, L_WF, NodeWrite, "list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    cmd!("lpos", -3, R, 1, 1, 1, L_RS, NodeRead, "list", "6.0.6", "Returns the index of matching elements in a list."),
    cmd!("lpush", -3, WF, 1, 1, 1, L_WF, NodeWrite, "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    cmd!("lpushx", -3, WF, 1, 1, 1, L_WF, NodeWrite, "list", "2.2.0", "Prepends one or more elements to a list only when the list exists."),
    cmd!("lrange", 4, R, 1, 1, 1, L_RS, NodeRead, "list", "1.0.0", "Returns a range of elements from a list."),
    cmd!("lrem", 4, WNOOM, 1, 1, 1, L_WS, NodeWrite, "list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed."),
    cmd!("lset", 4, W, 1, 1, 1, L_WS, NodeWrite, "list", "1.0.0", "Sets the value of an element in a list by its index."),
    cmd!("ltrim", 4, WNOOM, 1, 1, 1, L_WS, NodeWrite, "list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    cmd!("mget", -2, RF, 1, -1, 1, STR_RF, NodeRead, "string", "1.0.0", "Atomically returns the string values of one or more keys."),
    cmd!("mset", -3, W, 1, -1, 2, STR_WS, NodeWrite, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    cmd!("msetnx", -3, W, 1, -1, 2, STR_WS, NodeWrite, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    cmd!("multi", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, &["fast", "transaction"], Proxy, "transactions", "1.2.0", "Starts a transaction."),
    cmd!("object", -2, R, 2, 2, 1, &["keyspace", "read", "slow"], NodeRead, "generic", "2.2.3", "A container for object introspection commands."),
    cmd!("persist", 2, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.2.0", "Removes the expiration time of a key."),
    cmd!("pexpire", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    cmd!("pexpireat", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    cmd!("pexpiretime", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    cmd!("ping", -1, &["fast"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Returns the server's liveliness response."),
    cmd!("psetex", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    cmd!("psubscribe", -2, PS_SUB, 0, 0, 0, PS_SLOW, Proxy, "pubsub", "2.0.0", "Listens for messages published to channels that match one or more patterns."),
    cmd!("pttl", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    cmd!("publish", 3, PS_PUB, 0, 0, 0, PS_FAST, Proxy, "pubsub", "2.0.0", "Posts a message to a channel."),
    cmd!("pubsub", -2, &[], 0, 0, 0, &["slow"], Proxy, "pubsub", "2.8.0", "A container for Pub/Sub commands."),
    cmd!("punsubscribe", -1, PS_SUB, 0, 0, 0, PS_SLOW, Proxy, "pubsub", "2.0.0", "Stops listening to messages published to channels that match one or more patterns."),
    cmd!("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Closes the connection."),
    cmd!("rampart.streamformat", 2, R, 1, 1, 1, X_ADMIN, NodeRead, "stream", "0.1.0", "Rampart: reports a stream's storage layout (per-entry, legacy, or mixed during a chunked migration)."),
    cmd!("rampart.streamimport", -3, W, 1, 1, 1, X_ADMIN, NodeWrite, "stream", "0.1.0", "Rampart: stores a stream given as a legacy-layout protobuf blob (importing old data)."),
    cmd!("rampart.streamtolegacy", 2, W, 1, 1, 1, X_ADMIN, NodeWrite, "stream", "0.1.0", "Rampart: rewrites a stream in the legacy one-blob layout (tests and migration drills)."),
    cmd!("randomkey", 1, R, 0, 0, 0, &["keyspace", "read", "slow"], NodeRead, "generic", "1.0.0", "Returns a random key name from the database."),
    cmd!("rename", 3, WNOOM, 1, 2, 1, KEY_WS, NodeWrite, "generic", "1.0.0", "Renames a key and overwrites the destination."),
    cmd!("renamenx", 3, WFNOOM, 1, 2, 1, KEY_WF, NodeWrite, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    cmd!("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "6.2.0", "Resets the connection."),
    cmd!("rpop", -2, WFNOOM, 1, 1, 1, L_WF, NodeWrite, "list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    cmd!("rpoplpush", 3, W, 1, 2, 1, L_WS, NodeWrite, "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    cmd!("rpush", -3, WF, 1, 1, 1, L_WF, NodeWrite, "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    cmd!("rpushx", -3, WF, 1, 1, 1, L_WF, NodeWrite, "list", "2.2.0", "Appends an element to a list only when the list exists."),
    cmd!("sadd", -3, WF, 1, 1, 1, SET_WF, NodeWrite, "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist."),
    cmd!("scan", -2, R, 0, 0, 0, &["keyspace", "read", "slow"], NodeRead, "generic", "2.8.0", "Iterates over the key names in the database."),
    cmd!("scard", 2, RF, 1, 1, 1, SET_RF, NodeRead, "set", "1.0.0", "Returns the number of members in a set."),
    cmd!("script", -2, &[], 0, 0, 0, &["slow"], NodeRead, "scripting", "2.6.0", "A container for Lua scripts management commands (LOAD, EXISTS, FLUSH, KILL)."),
    cmd!("sdiff", -2, R, 1, -1, 1, SET_RS, NodeRead, "set", "1.0.0", "Returns the difference of multiple sets."),
    cmd!("sdiffstore", -3, W, 1, -1, 1, SET_WS, NodeWrite, "set", "1.0.0", "Stores the difference of multiple sets in a key."),
    cmd!("select", 2, CONN, 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Changes the selected database."),
    cmd!("set", -3, W, 1, 1, 1, STR_WS, NodeWrite, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    cmd!("setex", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    cmd!("setnx", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    cmd!("setrange", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    cmd!("sinter", -2, R, 1, -1, 1, SET_RS, NodeRead, "set", "1.0.0", "Returns the intersect of multiple sets."),
    cmd!("sintercard", -3, RMOV, 0, 0, 0, SET_RS, NodeRead, "set", "7.0.0", "Returns the number of members of the intersect of multiple sets."),
    cmd!("sinterstore", -3, W, 1, -1, 1, SET_WS, NodeWrite, "set", "1.0.0", "Stores the intersect of multiple sets in a key."),
    cmd!("sismember", 3, RF, 1, 1, 1, SET_RF, NodeRead, "set", "1.0.0", "Determines whether a member belongs to a set."),
    cmd!("smembers", 2, R, 1, 1, 1, SET_RS, NodeRead, "set", "1.0.0", "Returns all members of a set."),
    cmd!("smismember", -3, RF, 1, 1, 1, SET_RF, NodeRead, "set", "6.2.0", "Determines whether multiple members belong to a set."),
    cmd!("smove", 4, WFNOOM, 1, 2, 1, SET_WF, NodeWrite, "set", "1.0.0", "Moves a member from one set to another."),
    cmd!("spop", -2, WFNOOM, 1, 1, 1, SET_WF, NodeWrite, "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    cmd!("spublish", 3, PS_PUB, 1, 1, 1, PS_FAST, Proxy, "pubsub", "7.0.0", "Post a message to a shard channel"),
    cmd!("srandmember", -2, R, 1, 1, 1, SET_RS, NodeRead, "set", "1.0.0", "Get one or multiple random members from a set"),
    cmd!("srem", -3, WFNOOM, 1, 1, 1, SET_WF, NodeWrite, "set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed."),
    cmd!("sscan", -3, R, 1, 1, 1, SET_RS, NodeRead, "set", "2.8.0", "Iterates over members of a set."),
    cmd!("ssubscribe", -2, PS_SUB, 1, -1, 1, PS_SLOW, Proxy, "pubsub", "7.0.0", "Listens for messages published to shard channels."),
    cmd!("strlen", 2, RF, 1, 1, 1, STR_RF, NodeRead, "string", "2.2.0", "Returns the length of a string value."),
    cmd!("subscribe", -2, PS_SUB, 0, 0, 0, PS_SLOW, Proxy, "pubsub", "2.0.0", "Listens for messages published to channels."),
    cmd!("sunion", -2, R, 1, -1, 1, SET_RS, NodeRead, "set", "1.0.0", "Returns the union of multiple sets."),
    cmd!("sunionstore", -3, W, 1, -1, 1, SET_WS, NodeWrite, "set", "1.0.0", "Stores the union of multiple sets in a key."),
    cmd!("sunsubscribe", -1, PS_SUB, 1, -1, 1, PS_SLOW, Proxy, "pubsub", "7.0.0", "Stops listening to messages posted to shard channels."),
    cmd!("ttl", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    cmd!("type", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "1.0.0", "Determines the type of value stored at a key."),
    cmd!("unlink", -2, WFNOOM, 1, -1, 1, KEY_WF, NodeWrite, "generic", "4.0.0", "Asynchronously deletes one or more keys."),
    cmd!("unsubscribe", -1, PS_SUB, 0, 0, 0, PS_SLOW, Proxy, "pubsub", "2.0.0", "Stops listening to messages posted to channels."),
    cmd!("unwatch", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, &["fast", "transaction"], Proxy, "transactions", "2.2.0", "Forgets about watched keys of a transaction."),
    cmd!("watch", -2, &["noscript", "loading", "stale", "fast", "allow_busy"], 1, -1, 1, &["fast", "transaction"], NodeRead, "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction."),
    cmd!("xack", -4, WF, 1, 1, 1, X_WF, NodeWrite, "stream", "5.0.0", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream."),
    cmd!("xadd", -5, WF, 1, 1, 1, X_WF, NodeWrite, "stream", "5.0.0", "Appends a new message to a stream. Creates the key if it doesn't exist."),
    cmd!("xautoclaim", -6, WFNOOM, 1, 1, 1, X_WF, NodeWrite, "stream", "6.2.0", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member."),
    cmd!("xclaim", -6, WFNOOM, 1, 1, 1, X_WF, NodeWrite, "stream", "5.0.0", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member."),
    cmd!("xdel", -3, WFNOOM, 1, 1, 1, X_WF, NodeWrite, "stream", "5.0.0", "Returns the number of messages after removing them from a stream."),
    cmd!("xgroup", -2, &[], 2, 2, 1, X_WS, NodeWrite, "stream", "5.0.0", "A container for consumer groups commands."),
    cmd!("xinfo", -2, R, 2, 2, 1, X_RS, NodeRead, "stream", "5.0.0", "A container for stream introspection commands."),
    cmd!("xlen", 2, RF, 1, 1, 1, X_RF, NodeRead, "stream", "5.0.0", "Return the number of messages in a stream."),
    cmd!("xpending", -3, R, 1, 1, 1, X_RS, NodeRead, "stream", "5.0.0", "Returns the information and entries from a stream consumer group's pending entries list."),
    cmd!("xrange", -4, R, 1, 1, 1, X_RS, NodeRead, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs."),
    cmd!("xread", -4, &["readonly", "blocking", "movablekeys"], 0, 0, 0, &["read", "stream", "slow", "blocking"], NodeRead, "stream", "5.0.0", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."),
    cmd!("xreadgroup", -7, &["write", "blocking", "movablekeys"], 0, 0, 0, &["write", "stream", "slow", "blocking"], NodeWrite, "stream", "5.0.0", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise."),
    cmd!("xrevrange", -4, R, 1, 1, 1, X_RS, NodeRead, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs in reverse order."),
    cmd!("xsetid", -3, WF, 1, 1, 1, X_WF, NodeWrite, "stream", "5.0.0", "An internal command for replicating stream values."),
    cmd!("xtrim", -4, WNOOM, 1, 1, 1, X_WS, NodeWrite, "stream", "5.0.0", "Deletes messages from the beginning of a stream."),
    cmd!("zadd", -4, WF, 1, 1, 1, Z_WF, NodeWrite, "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    cmd!("zcard", 2, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "1.2.0", "Returns the number of members in a sorted set."),
    cmd!("zcount", 4, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range."),
    cmd!("zdiff", -3, RMOV, 0, 0, 0, Z_RS, NodeRead, "sorted-set", "6.2.0", "Returns the difference between multiple sorted sets."),
    cmd!("zdiffstore", -4, WDMOV, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key."),
    cmd!("zincrby", 4, WF, 1, 1, 1, Z_WF, NodeWrite, "sorted-set", "1.2.0", "Increments the score of a member in a sorted set."),
    cmd!("zinter", -3, RMOV, 0, 0, 0, Z_RS, NodeRead, "sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets."),
    cmd!("zintercard", -3, RMOV, 0, 0, 0, Z_RS, NodeRead, "sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets."),
    cmd!("zinterstore", -4, WDMOV, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key."),
    cmd!("zlexcount", 4, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range."),
    cmd!("zmpop", -4, WMOV, 0, 0, 0, Z_WS, NodeWrite, "sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
    cmd!("zmscore", -3, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set."),
    cmd!("zpopmax", -2, WFNOOM, 1, 1, 1, Z_WF, NodeWrite, "sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    cmd!("zpopmin", -2, WFNOOM, 1, 1, 1, Z_WF, NodeWrite, "sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    cmd!("zrandmember", -2, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "6.2.0", "Returns one or more random members from a sorted set."),
    cmd!("zrange", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes."),
    cmd!("zrangebylex", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range."),
    cmd!("zrangebyscore", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores."),
    cmd!("zrangestore", -5, W, 1, 2, 1, Z_WS, NodeWrite, "sorted-set", "6.2.0", "Stores a range of members from sorted set in a key."),
    cmd!("zrank", -3, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores."),
    cmd!("zrem", -3, WFNOOM, 1, 1, 1, Z_WF, NodeWrite, "sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    cmd!("zremrangebylex", 4, WNOOM, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    cmd!("zremrangebyrank", 4, WNOOM, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    cmd!("zremrangebyscore", 4, WNOOM, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    cmd!("zrevrange", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order."),
    cmd!("zrevrangebylex", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order."),
    cmd!("zrevrangebyscore", -4, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order."),
    cmd!("zrevrank", -3, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores."),
    cmd!("zscan", -3, R, 1, 1, 1, Z_RS, NodeRead, "sorted-set", "2.8.0", "Iterates over members and scores of a sorted set."),
    cmd!("zscore", 3, RF, 1, 1, 1, Z_RF, NodeRead, "sorted-set", "1.2.0", "Returns the score of a member in a sorted set."),
    cmd!("zunion", -3, RMOV, 0, 0, 0, Z_RS, NodeRead, "sorted-set", "6.2.0", "Returns the union of multiple sorted sets."),
    cmd!("zunionstore", -4, WDMOV, 1, 1, 1, Z_WS, NodeWrite, "sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key."),
];

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > 32 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let lower = std::str::from_utf8(&lower).ok()?;
    COMMANDS
        .binary_search_by(|spec| spec.name.cmp(lower))
        .ok()
        .map(|i| &COMMANDS[i])
}

/// Heavy-class commands (SPEC Layer 1): full collection reads, range scans,
/// keyspace scans and scripts, whose cost grows with the data they touch.
/// The proxy's policy table classifies them too (`rampart_policies::classes`,
/// where an operator can re-tune it); this list is what the storage node uses
/// on its own, without the proxy's configuration: a read run holding one of
/// them runs on the node's bounded heavy executor, not on the cheap read
/// path. Commands Rampart does not implement yet are listed so they are
/// classified the day they are. Sorted, lower case.
pub const HEAVY_COMMANDS: &[&str] = &[
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "hgetall",
    "hkeys",
    "hscan",
    "hvals",
    "keys",
    "lrange",
    "scan",
    "sdiff",
    "sdiffstore",
    "sinter",
    "sintercard",
    "sinterstore",
    "smembers",
    "sort",
    "sort_ro",
    "sscan",
    "sunion",
    "sunionstore",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "zdiff",
    "zdiffstore",
    "zinter",
    "zintercard",
    "zinterstore",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrangestore",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zscan",
    "zunion",
    "zunionstore",
];

/// Whether the command named `name` (any case) is in [`HEAVY_COMMANDS`].
pub fn is_heavy(name: &[u8]) -> bool {
    if name.len() > 32 {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let Ok(lower) = std::str::from_utf8(&lower) else {
        return false;
    };
    HEAVY_COMMANDS.binary_search(&lower).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert!(lookup(b"nosuchcommand").is_none());
    }

    #[test]
    fn arity_follows_redis_rules() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
    }

    #[test]
    fn key_positions_cover_steps() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.key_positions(5), vec![1, 3]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4), vec![1, 2, 3]);
        assert!(lookup(b"ping").unwrap().key_positions(2).is_empty());
    }

    #[test]
    fn heavy_list_is_sorted_and_lookup_ignores_case() {
        for pair in HEAVY_COMMANDS.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert!(is_heavy(b"HGETALL") && is_heavy(b"keys") && is_heavy(b"ZRangeByScore"));
        assert!(!is_heavy(b"get") && !is_heavy(b"hget") && !is_heavy(b""));
    }
}
