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

/// The table. Sorted by name so lookups can binary-search.
pub static COMMANDS: &[CommandSpec] = &[
    cmd!("append", 3, W, 1, 1, 1, STR_WF, NodeWrite, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    cmd!("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Authenticates the connection."),
    cmd!("client", -2, &[], 0, 0, 0, &["slow"], Proxy, "connection", "2.4.0", "A container for client connection commands."),
    cmd!("command", -1, &["loading", "stale"], 0, 0, 0, &["slow", "connection"], Proxy, "server", "2.8.13", "Returns detailed information about all commands."),
    cmd!("dbsize", 1, RF, 0, 0, 0, &["keyspace", "read", "fast"], NodeRead, "server", "1.0.0", "Returns the number of keys in the database."),
    cmd!("decr", 2, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd!("decrby", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    cmd!("del", -2, WNOOM, 1, -1, 1, KEY_WS, NodeWrite, "generic", "1.0.0", "Deletes one or more keys."),
    cmd!("echo", 2, CONN, 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Returns the given string."),
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
    cmd!("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "6.0.0", "Handshakes with the Redis server."),
    cmd!("incr", 2, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd!("incrby", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    cmd!("incrbyfloat", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    cmd!("info", -1, &["loading", "stale"], 0, 0, 0, &["slow", "dangerous"], Proxy, "server", "1.0.0", "Returns information and statistics about the server."),
    cmd!("keys", 2, R, 0, 0, 0, KEY_RS, NodeRead, "generic", "1.0.0", "Returns all key names that match a pattern."),
    cmd!("mget", -2, RF, 1, -1, 1, STR_RF, NodeRead, "string", "1.0.0", "Atomically returns the string values of one or more keys."),
    cmd!("mset", -3, W, 1, -1, 2, STR_WS, NodeWrite, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    cmd!("msetnx", -3, W, 1, -1, 2, STR_WS, NodeWrite, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    cmd!("persist", 2, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.2.0", "Removes the expiration time of a key."),
    cmd!("pexpire", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    cmd!("pexpireat", -3, WFNOOM, 1, 1, 1, KEY_WF, NodeWrite, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    cmd!("pexpiretime", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    cmd!("ping", -1, &["fast"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Returns the server's liveliness response."),
    cmd!("psetex", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    cmd!("pttl", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    cmd!("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Closes the connection."),
    cmd!("randomkey", 1, R, 0, 0, 0, &["keyspace", "read", "slow"], NodeRead, "generic", "1.0.0", "Returns a random key name from the database."),
    cmd!("rename", 3, WNOOM, 1, 2, 1, KEY_WS, NodeWrite, "generic", "1.0.0", "Renames a key and overwrites the destination."),
    cmd!("renamenx", 3, WFNOOM, 1, 2, 1, KEY_WF, NodeWrite, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    cmd!("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, CONN_CATS, Proxy, "connection", "6.2.0", "Resets the connection."),
    cmd!("scan", -2, R, 0, 0, 0, &["keyspace", "read", "slow"], NodeRead, "generic", "2.8.0", "Iterates over the key names in the database."),
    cmd!("select", 2, CONN, 0, 0, 0, CONN_CATS, Proxy, "connection", "1.0.0", "Changes the selected database."),
    cmd!("set", -3, W, 1, 1, 1, STR_WS, NodeWrite, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    cmd!("setex", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    cmd!("setnx", 3, WF, 1, 1, 1, STR_WF, NodeWrite, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    cmd!("setrange", 4, W, 1, 1, 1, STR_WS, NodeWrite, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    cmd!("strlen", 2, RF, 1, 1, 1, STR_RF, NodeRead, "string", "2.2.0", "Returns the length of a string value."),
    cmd!("ttl", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    cmd!("type", 2, RF, 1, 1, 1, KEY_RF, NodeRead, "generic", "1.0.0", "Determines the type of value stored at a key."),
    cmd!("unlink", -2, WFNOOM, 1, -1, 1, KEY_WF, NodeWrite, "generic", "4.0.0", "Asynchronously deletes one or more keys."),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} !< {}", pair[0].name, pair[1].name);
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
}
