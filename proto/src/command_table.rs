//! Every command Rampart understands, as data: one [`CommandSpec`] row per
//! command (Redis's `COMMAND INFO` model plus Rampart's admission class,
//! where it runs, how it blocks, and Redis 7 key specs). The proxy, the
//! policies and the node all read it; nothing about a command is listed
//! anywhere else. Adding a command: docs/commands.md.

pub use crate::command_spec::{Blocking, Class, CommandSpec, Runs};
pub use crate::key_spec::{GetKeysProc, KeyFlags, KeyRef, KeySpec};

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WNOOM: &[&str] = &["write"];
const WFNOOM: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const CONN: &[&str] = &["noscript", "loading", "stale", "fast"];

macro_rules! or_default {
    ($default:expr) => {
        $default
    };
    ($default:expr, $value:expr) => {
        $value
    };
}

/// One row: name, arity, flags, ACL categories, where it runs, its class,
/// docs group, since, summary, key specs; then, where they apply, how it
/// blocks, Redis's fallback getkeys rule and the subcommands.
macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $cats:expr, $runs:ident, $class:ident,
     $group:literal, $since:literal, $summary:literal, keys: $keys:expr
     $(, block: $block:expr)? $(, getkeys: $getkeys:expr)? $(, subs: $subs:expr)? $(,)?) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            categories: $cats,
            runs: Runs::$runs,
            class: Class::$class,
            blocking: or_default!(Blocking::Never $(, $block)?),
            keys: $keys,
            getkeys: or_default!(None $(, Some($getkeys))?),
            subcommands: or_default!(&[] $(, $subs)?),
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
/// FUNCTION subcommands that change the libraries.
const FN_WRITE: &[&str] = &["write", "slow", "scripting"];
/// Pub/sub: answered by the proxy, relayed through the nodes (docs/pubsub.md).
const PS_SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PS_PUB: &[&str] = &["pubsub", "loading", "stale", "fast", "may_replicate"];
const PS_SLOW: &[&str] = &["pubsub", "slow"];
const PS_FAST: &[&str] = &["pubsub", "fast"];
const X_WF: &[&str] = &["write", "stream", "fast"];
const X_WS: &[&str] = &["write", "stream", "slow"];
const X_RF: &[&str] = &["read", "stream", "fast"];
const X_RS: &[&str] = &["read", "stream", "slow"];
/// ACL administration (answered by the proxy; users live in the cluster).
const ACL_ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const ACL_ADMIN_CATS: &[&str] = &["admin", "slow", "dangerous"];
/// Rampart's own stream administration (the legacy layout, docs/streams.md).
/// RAMPART.* flags: `noscript`, so no Lua script can call them.
const RAMPART_R: &[&str] = &["readonly", "noscript"];
const RAMPART_W: &[&str] = &["write", "denyoom", "noscript"];
const X_ADMIN: &[&str] = &["admin", "stream", "slow", "dangerous"];

// Key flag sets used by the rows below.
const NOT_KEY: KeyFlags = KeyFlags::of(&[KeyFlags::NOT_KEY]);
const OW_INSERT: KeyFlags = KeyFlags::of(&[KeyFlags::OW, KeyFlags::INSERT]);
const OW_UPDATE: KeyFlags = KeyFlags::of(&[KeyFlags::OW, KeyFlags::UPDATE]);
const RM_DELETE: KeyFlags = KeyFlags::of(&[KeyFlags::RM, KeyFlags::DELETE]);
const RO: KeyFlags = KeyFlags::of(&[KeyFlags::RO]);
const RO_ACCESS: KeyFlags = KeyFlags::of(&[KeyFlags::RO, KeyFlags::ACCESS]);
const RW_ACCESS_DELETE: KeyFlags =
    KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::DELETE]);
const RW_ACCESS_UPDATE: KeyFlags =
    KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::UPDATE]);
const RW_ACCESS_UPDATE_VARIABLE_FLAGS: KeyFlags = KeyFlags::of(&[
    KeyFlags::RW,
    KeyFlags::ACCESS,
    KeyFlags::UPDATE,
    KeyFlags::VARIABLE_FLAGS,
]);
const RW_ACCESS: KeyFlags = KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS]);
const RW_ACCESS_INSERT: KeyFlags =
    KeyFlags::of(&[KeyFlags::RW, KeyFlags::ACCESS, KeyFlags::INSERT]);
const RW_DELETE: KeyFlags = KeyFlags::of(&[KeyFlags::RW, KeyFlags::DELETE]);
const RW_INSERT: KeyFlags = KeyFlags::of(&[KeyFlags::RW, KeyFlags::INSERT]);
const RW_UPDATE: KeyFlags = KeyFlags::of(&[KeyFlags::RW, KeyFlags::UPDATE]);

/// SORT's BY and GET patterns name keys built from the sorted elements:
/// no spec can find them. Rampart serves them (one Raft group holds every
/// key); once keys are sharded (issue 21) a pattern will have to hash to the
/// sorted key's slot, as in Redis Cluster.
const SORT_PATTERN_NOTE: &str = "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort";

#[rustfmt::skip]
static ACL_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("acl|cat", -2, &["noscript", "loading", "stale"], &["slow"], Proxy, Exempt, "server", "6.0.0", "Lists the ACL categories, or the commands inside a category.", keys: &[]),
    cmd!("acl|deluser", -3, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Deletes ACL users, and terminates their connections.", keys: &[]),
    cmd!("acl|dryrun", -4, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "7.0.0", "Simulates the execution of a command by a user, without executing the command.", keys: &[]),
    cmd!("acl|genpass", -2, &["noscript", "loading", "stale"], &["slow"], Proxy, Exempt, "server", "6.0.0", "Generates a pseudorandom, secure password that can be used to identify ACL users.", keys: &[]),
    cmd!("acl|getuser", 3, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Lists the ACL rules of a user.", keys: &[]),
    cmd!("acl|help", 2, &["loading", "stale"], &["slow"], Proxy, Exempt, "server", "6.0.0", "Returns helpful text about the different subcommands.", keys: &[]),
    cmd!("acl|list", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Dumps the effective rules in ACL file format.", keys: &[]),
    cmd!("acl|load", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Reloads the rules from the configured ACL file.", keys: &[]),
    cmd!("acl|log", -2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Lists recent security events generated due to ACL rules.", keys: &[]),
    cmd!("acl|save", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Saves the effective ACL rules in the configured ACL file.", keys: &[]),
    cmd!("acl|setuser", -3, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Creates and modifies an ACL user and its rules.", keys: &[]),
    cmd!("acl|users", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "6.0.0", "Lists all ACL users.", keys: &[]),
    cmd!("acl|whoami", 2, &["noscript", "loading", "stale"], &["slow"], Proxy, Exempt, "server", "6.0.0", "Returns the authenticated username of the current connection.", keys: &[]),
];

#[rustfmt::skip]
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("client|getname", 2, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "2.6.9", "Get the current connection name", keys: &[]),
    cmd!("client|help", 2, &["loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "5.0.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("client|id", 2, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "5.0.0", "Returns the client ID for the current connection", keys: &[]),
    cmd!("client|info", 2, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "6.2.0", "Returns information about the current client connection.", keys: &[]),
    cmd!("client|kill", -3, &["admin", "noscript", "loading", "stale"], &["admin", "slow", "dangerous", "connection"], Proxy, Exempt, "connection", "2.4.0", "Kill the connection of a client", keys: &[]),
    cmd!("client|list", -2, &["admin", "noscript", "loading", "stale"], &["admin", "slow", "dangerous", "connection"], Proxy, Exempt, "connection", "2.4.0", "Get the list of client connections", keys: &[]),
    cmd!("client|no-evict", 3, &["admin", "noscript", "loading", "stale"], &["admin", "slow", "dangerous", "connection"], Proxy, Exempt, "connection", "7.0.0", "Set client eviction mode for the current connection", keys: &[]),
    // Redis 7.2 (not in the 7.0 server the rest was read from).
    cmd!("client|no-touch", 3, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "7.2.0", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", keys: &[]),
    // Redis 7.2 (not in the 7.0 server the rest was read from).
    cmd!("client|setinfo", 4, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "7.2.0", "Sets information specific to the client or connection.", keys: &[]),
    cmd!("client|setname", 3, &["noscript", "loading", "stale"], &["slow", "connection"], Proxy, Exempt, "connection", "2.6.9", "Set the current connection name", keys: &[]),
];

#[rustfmt::skip]
static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("command|count", 2, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "2.8.13", "Get total number of Redis commands", keys: &[]),
    cmd!("command|docs", -2, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "7.0.0", "Get array of specific Redis command documentation", keys: &[]),
    cmd!("command|getkeys", -4, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "2.8.13", "Extract keys given a full Redis command", keys: &[]),
    cmd!("command|getkeysandflags", -4, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "7.0.0", "Extract keys and access flags given a full Redis command", keys: &[]),
    cmd!("command|help", 2, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "5.0.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("command|info", -2, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "2.8.13", "Get array of specific Redis command details, or all when no argument is given.", keys: &[]),
    cmd!("command|list", -2, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "7.0.0", "Get an array of Redis command names", keys: &[]),
];

/// CONFIG (answered by the proxy; cluster parameters live in the cluster,
/// docs/config.md).
#[rustfmt::skip]
static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("config|get", -3, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "2.0.0", "Returns the effective values of configuration parameters.", keys: &[]),
    cmd!("config|help", 2, &["loading", "stale"], &["slow"], Proxy, Exempt, "server", "5.0.0", "Returns helpful text about the different subcommands.", keys: &[]),
    cmd!("config|resetstat", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "2.0.0", "Resets the server's statistics.", keys: &[]),
    cmd!("config|rewrite", 2, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "2.8.0", "Persists the effective configuration to file.", keys: &[]),
    cmd!("config|set", -4, ACL_ADMIN, ACL_ADMIN_CATS, Proxy, Exempt, "server", "2.0.0", "Sets configuration parameters in-flight.", keys: &[]),
];

#[rustfmt::skip]
static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("pubsub|channels", -2, &["pubsub", "loading", "stale"], &["pubsub", "slow"], Proxy, Cheap, "pubsub", "2.8.0", "List active channels", keys: &[]),
    cmd!("pubsub|help", 2, &["loading", "stale"], &["slow"], Proxy, Cheap, "pubsub", "6.2.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("pubsub|numpat", 2, &["pubsub", "loading", "stale"], &["pubsub", "slow"], Proxy, Cheap, "pubsub", "2.8.0", "Get the count of unique patterns pattern subscriptions", keys: &[]),
    cmd!("pubsub|numsub", -2, &["pubsub", "loading", "stale"], &["pubsub", "slow"], Proxy, Cheap, "pubsub", "2.8.0", "Get the count of subscribers for channels", keys: &[]),
    cmd!("pubsub|shardchannels", -2, &["pubsub", "loading", "stale"], &["pubsub", "slow"], Proxy, Cheap, "pubsub", "7.0.0", "List active shard channels", keys: &[]),
    cmd!("pubsub|shardnumsub", -2, &["pubsub", "loading", "stale"], &["pubsub", "slow"], Proxy, Cheap, "pubsub", "7.0.0", "Get the count of subscribers for shard channels", keys: &[]),
];

#[rustfmt::skip]
static FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("function|delete", 3, &["write", "noscript"], FN_WRITE, ScriptAdmin, Admin, "scripting", "7.0.0", "Deletes a library and its functions.", keys: &[]),
    cmd!("function|dump", 2, &["noscript"], SCRIPTING, ScriptAdmin, Admin, "scripting", "7.0.0", "Dumps all libraries into a serialized binary payload.", keys: &[]),
    cmd!("function|flush", -2, &["write", "noscript"], FN_WRITE, ScriptAdmin, Admin, "scripting", "7.0.0", "Deletes all libraries and functions.", keys: &[]),
    cmd!("function|help", 2, &["loading", "stale"], SCRIPTING, ScriptAdmin, Admin, "scripting", "7.0.0", "Returns helpful text about the different subcommands.", keys: &[]),
    cmd!("function|kill", 2, &["noscript", "allow_busy"], SCRIPTING, ScriptAdmin, Admin, "scripting", "7.0.0", "Terminates a function during execution.", keys: &[]),
    cmd!("function|list", -2, &["noscript"], SCRIPTING, ScriptAdmin, Admin, "scripting", "7.0.0", "Returns information about all libraries.", keys: &[]),
    cmd!("function|load", -3, &["write", "denyoom", "noscript"], FN_WRITE, ScriptAdmin, Admin, "scripting", "7.0.0", "Creates a library.", keys: &[]),
    cmd!("function|restore", -3, &["write", "denyoom", "noscript"], FN_WRITE, ScriptAdmin, Admin, "scripting", "7.0.0", "Restores all libraries from a payload.", keys: &[]),
    cmd!("function|stats", 2, &["noscript", "allow_busy"], SCRIPTING, ScriptAdmin, Admin, "scripting", "7.0.0", "Returns information about a function during execution.", keys: &[]),
];

#[rustfmt::skip]
static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("script|exists", -3, &["noscript"], &["slow", "scripting"], ScriptAdmin, Admin, "scripting", "2.6.0", "Check existence of scripts in the script cache.", keys: &[]),
    cmd!("script|flush", -2, &["noscript"], &["slow", "scripting"], ScriptAdmin, Admin, "scripting", "2.6.0", "Remove all the scripts from the script cache.", keys: &[]),
    cmd!("script|help", 2, &["loading", "stale"], &["slow", "scripting"], ScriptAdmin, Admin, "scripting", "5.0.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("script|kill", 2, &["noscript", "allow_busy"], &["slow", "scripting"], ScriptAdmin, Admin, "scripting", "2.6.0", "Kill the script currently in execution.", keys: &[]),
    cmd!("script|load", 3, &["noscript", "stale"], &["slow", "scripting"], ScriptAdmin, Admin, "scripting", "2.6.0", "Load the specified Lua script into the script cache.", keys: &[]),
];

#[rustfmt::skip]
static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("object|encoding", 3, &["readonly"], &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "2.2.3", "Inspect the internal encoding of a Redis object", keys: &[KeySpec::at(2, RO)]),
    cmd!("object|freq", 3, &["readonly"], &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "4.0.0", "Get the logarithmic access frequency counter of a Redis object", keys: &[KeySpec::at(2, RO)]),
    cmd!("object|help", 2, &["loading", "stale"], &["keyspace", "slow"], NodeRead, Cheap, "generic", "6.2.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("object|idletime", 3, &["readonly"], &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "2.2.3", "Get the time since a Redis object was last accessed", keys: &[KeySpec::at(2, RO)]),
    cmd!("object|refcount", 3, &["readonly"], &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "2.2.3", "Get the number of references to the value of the key", keys: &[KeySpec::at(2, RO)]),
];

#[rustfmt::skip]
static XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("xgroup|create", -5, &["write", "denyoom"], &["write", "stream", "slow"], NodeWrite, Cheap, "stream", "5.0.0", "Create a consumer group.", keys: &[KeySpec::at(2, RW_INSERT)]),
    cmd!("xgroup|createconsumer", 5, &["write", "denyoom"], &["write", "stream", "slow"], NodeWrite, Cheap, "stream", "6.2.0", "Create a consumer in a consumer group.", keys: &[KeySpec::at(2, RW_INSERT)]),
    cmd!("xgroup|delconsumer", 5, &["write"], &["write", "stream", "slow"], NodeWrite, Cheap, "stream", "5.0.0", "Delete a consumer from a consumer group.", keys: &[KeySpec::at(2, RW_DELETE)]),
    cmd!("xgroup|destroy", 4, &["write"], &["write", "stream", "slow"], NodeWrite, Cheap, "stream", "5.0.0", "Destroy a consumer group.", keys: &[KeySpec::at(2, RW_DELETE)]),
    cmd!("xgroup|help", 2, &["loading", "stale"], &["stream", "slow"], NodeWrite, Cheap, "stream", "5.0.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("xgroup|setid", -5, &["write"], &["write", "stream", "slow"], NodeWrite, Cheap, "stream", "5.0.0", "Set a consumer group to an arbitrary last delivered ID value.", keys: &[KeySpec::at(2, RW_UPDATE)]),
];

#[rustfmt::skip]
static XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("xinfo|consumers", 4, &["readonly"], &["read", "stream", "slow"], NodeRead, Cheap, "stream", "5.0.0", "List the consumers in a consumer group", keys: &[KeySpec::at(2, RO_ACCESS)]),
    cmd!("xinfo|groups", 3, &["readonly"], &["read", "stream", "slow"], NodeRead, Cheap, "stream", "5.0.0", "List the consumer groups of a stream", keys: &[KeySpec::at(2, RO_ACCESS)]),
    cmd!("xinfo|help", 2, &["loading", "stale"], &["stream", "slow"], NodeRead, Cheap, "stream", "5.0.0", "Show helpful text about the different subcommands", keys: &[]),
    cmd!("xinfo|stream", -3, &["readonly"], &["read", "stream", "slow"], NodeRead, Cheap, "stream", "5.0.0", "Get information about a stream", keys: &[KeySpec::at(2, RO_ACCESS)]),
];

/// The table. Sorted by name so lookups can binary-search.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    cmd!("acl", -2, &[], &["slow"], Proxy, Exempt, "server", "6.0.0", "A container for Access List Control commands.", keys: &[], subs: ACL_SUBCOMMANDS),
    cmd!("append", 3, W, STR_WF, NodeWrite, Cheap, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], CONN_CATS, Proxy, Exempt, "connection", "1.0.0", "Authenticates the connection.", keys: &[]),
    cmd!("bitcount", -2, R, &["read", "bitmap", "slow"], NodeRead, Cheap, "bitmap", "2.6.0", "Counts the number of set bits (population counting) in a string.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("bitfield", -2, W, &["write", "bitmap", "slow"], NodeWrite, Cheap, "bitmap", "3.2.0", "Performs arbitrary bitfield integer operations on strings.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE_VARIABLE_FLAGS).with_notes("This command allows both access and modification of the key")], getkeys: GetKeysProc::Bitfield),
    cmd!("bitfield_ro", -2, RF, &["read", "bitmap", "fast"], NodeRead, Cheap, "bitmap", "6.0.0", "Performs arbitrary read-only bitfield integer operations on strings.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("bitop", -4, W, &["write", "bitmap", "slow"], NodeWrite, HeavyData, "bitmap", "2.6.0", "Performs bitwise operations on multiple strings, and stores the result.", keys: &[KeySpec::at(2, OW_UPDATE), KeySpec::range(3, -1, 1, RO_ACCESS)]),
    cmd!("bitpos", -3, R, &["read", "bitmap", "slow"], NodeRead, Cheap, "bitmap", "2.8.7", "Finds the first set (1) or clear (0) bit in a string.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("blmove", 6, &["write", "denyoom", "blocking"], &["write", "list", "slow", "blocking"], NodeWrite, Blocking, "list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, RW_INSERT)], block: Blocking::TimeoutLast),
    cmd!("blmpop", -5, &["write", "blocking", "movablekeys"], &["write", "list", "slow", "blocking"], NodeWrite, Blocking, "list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", keys: &[KeySpec::keynum(2, RW_ACCESS_DELETE)], block: Blocking::TimeoutAt(1), getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("blpop", -3, &["write", "blocking"], &["write", "list", "slow", "blocking"], NodeWrite, Blocking, "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", keys: &[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], block: Blocking::TimeoutLast),
    cmd!("brpop", -3, &["write", "blocking"], &["write", "list", "slow", "blocking"], NodeWrite, Blocking, "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", keys: &[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], block: Blocking::TimeoutLast),
    cmd!("brpoplpush", 4, &["write", "denyoom", "blocking"], &["write", "list", "slow", "blocking"], NodeWrite, Blocking, "list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, RW_INSERT)], block: Blocking::TimeoutLast),
    cmd!("bzmpop", -5, &["write", "blocking", "movablekeys"], &["write", "sortedset", "slow", "blocking"], NodeWrite, Blocking, "sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", keys: &[KeySpec::keynum(2, RW_ACCESS_DELETE)], block: Blocking::TimeoutAt(1), getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("bzpopmax", -3, &["write", "blocking", "fast"], &["write", "sortedset", "fast", "blocking"], NodeWrite, Blocking, "sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.", keys: &[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], block: Blocking::TimeoutLast),
    cmd!("bzpopmin", -3, &["write", "blocking", "fast"], &["write", "sortedset", "fast", "blocking"], NodeWrite, Blocking, "sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", keys: &[KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], block: Blocking::TimeoutLast),
    cmd!("client", -2, &[], &["slow"], Proxy, Exempt, "connection", "2.4.0", "A container for client connection commands.", keys: &[], subs: CLIENT_SUBCOMMANDS),
    cmd!("command", -1, &["loading", "stale"], &["slow", "connection"], Proxy, Cheap, "server", "2.8.13", "Returns detailed information about all commands.", keys: &[], subs: COMMAND_SUBCOMMANDS),
    cmd!("config", -2, &[], &["slow"], Proxy, Exempt, "server", "2.0.0", "A container for server configuration commands.", keys: &[], subs: CONFIG_SUBCOMMANDS),
    cmd!("copy", -3, W, &["keyspace", "write", "slow"], NodeWrite, Cheap, "generic", "6.2.0", "Copies the value of a key to a new key.", keys: &[KeySpec::at(1, RO_ACCESS), KeySpec::at(2, OW_UPDATE)]),
    cmd!("dbsize", 1, RF, &["keyspace", "read", "fast"], NodeRead, Cheap, "server", "1.0.0", "Returns the number of keys in the database.", keys: &[]),
    cmd!("decr", 2, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("decrby", 3, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("del", -2, WNOOM, KEY_WS, NodeWrite, Cheap, "generic", "1.0.0", "Deletes one or more keys.", keys: &[KeySpec::range(1, -1, 1, RM_DELETE)]),
    cmd!("discard", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["fast", "transaction"], Proxy, Cheap, "transactions", "2.0.0", "Discards a transaction.", keys: &[]),
    cmd!("dump", 2, R, &["keyspace", "read", "slow"], NodeRead, HeavyData, "generic", "2.6.0", "Returns a serialized representation of the value stored at a key.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("echo", 2, CONN, CONN_CATS, Proxy, Cheap, "connection", "1.0.0", "Returns the given string.", keys: &[]),
    cmd!("eval", -3, EVAL_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "2.6.0", "Executes a server-side Lua script.", keys: &[KeySpec::keynum(2, RW_ACCESS_UPDATE).with_notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("eval_ro", -3, EVAL_RO_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "7.0.0", "Executes a read-only server-side Lua script.", keys: &[KeySpec::keynum(2, RO_ACCESS).with_notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("evalsha", -3, EVAL_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "2.6.0", "Executes a server-side Lua script by SHA1 digest.", keys: &[KeySpec::keynum(2, RW_ACCESS_UPDATE)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("evalsha_ro", -3, EVAL_RO_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "7.0.0", "Executes a read-only server-side Lua script by SHA1 digest.", keys: &[KeySpec::keynum(2, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], &["slow", "transaction"], Proxy, Cheap, "transactions", "1.2.0", "Executes all commands in a transaction.", keys: &[]),
    cmd!("exists", -2, RF, KEY_RF, NodeRead, Cheap, "generic", "1.0.0", "Determines whether one or more keys exist.", keys: &[KeySpec::range(1, -1, 1, RO)]),
    cmd!("expire", -3, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "1.0.0", "Sets the expiration time of a key in seconds.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("expireat", -3, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("expiretime", 2, RF, KEY_RF, NodeRead, Cheap, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("fcall", -3, EVAL_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "7.0.0", "Invokes a function.", keys: &[KeySpec::keynum(2, RW_ACCESS_UPDATE).with_notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("fcall_ro", -3, EVAL_RO_FLAGS, SCRIPTING, Script, HeavyScript, "scripting", "7.0.0", "Invokes a read-only function.", keys: &[KeySpec::keynum(2, RO_ACCESS).with_notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 2, first_at: 3 }),
    cmd!("flushall", -1, WNOOM, SRV_DANGER, NodeWrite, Admin, "server", "1.0.0", "Removes all keys from all databases.", keys: &[]),
    cmd!("flushdb", -1, WNOOM, SRV_DANGER, NodeWrite, Admin, "server", "1.0.0", "Remove all keys from the current database.", keys: &[]),
    cmd!("function", -2, &[], &["slow"], ScriptAdmin, Admin, "scripting", "7.0.0", "A container for function commands.", keys: &[], subs: FUNCTION_SUBCOMMANDS),
    cmd!("geoadd", -5, W, &["write", "geo", "slow"], NodeWrite, Cheap, "geo", "3.2.0", "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("geodist", -4, R, &["read", "geo", "slow"], NodeRead, Cheap, "geo", "3.2.0", "Returns the distance between two members of a geospatial index.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("geohash", -2, R, &["read", "geo", "slow"], NodeRead, Cheap, "geo", "3.2.0", "Returns members from a geospatial index as geohash strings.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("geopos", -2, R, &["read", "geo", "slow"], NodeRead, Cheap, "geo", "3.2.0", "Returns the longitude and latitude of members from a geospatial index.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("georadius", -6, &["write", "denyoom", "movablekeys"], &["write", "geo", "slow"], NodeWrite, HeavyData, "geo", "3.2.0", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", keys: &[KeySpec::at(1, RO_ACCESS), KeySpec::after("STORE", 6, OW_UPDATE), KeySpec::after("STOREDIST", 6, OW_UPDATE)]),
    cmd!("georadius_ro", -6, R, &["read", "geo", "slow"], NodeRead, HeavyData, "geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a coordinate.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("georadiusbymember", -5, &["write", "denyoom", "movablekeys"], &["write", "geo", "slow"], NodeWrite, HeavyData, "geo", "3.2.0", "Queries a geospatial index for members within a distance from a member, optionally stores the result.", keys: &[KeySpec::at(1, RO_ACCESS), KeySpec::after("STORE", 5, OW_UPDATE), KeySpec::after("STOREDIST", 5, OW_UPDATE)]),
    cmd!("georadiusbymember_ro", -5, R, &["read", "geo", "slow"], NodeRead, HeavyData, "geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a member.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("geosearch", -7, R, &["read", "geo", "slow"], NodeRead, HeavyData, "geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("geosearchstore", -8, W, &["write", "geo", "slow"], NodeWrite, HeavyData, "geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::at(2, RO_ACCESS)]),
    cmd!("get", 2, RF, STR_RF, NodeRead, Cheap, "string", "1.0.0", "Returns the string value of a key.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("getbit", 3, RF, &["read", "bitmap", "fast"], NodeRead, Cheap, "bitmap", "2.2.0", "Returns a bit value by offset.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("getdel", 2, WFNOOM, STR_WF, NodeWrite, Cheap, "string", "6.2.0", "Returns the string value of a key after deleting the key.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("getex", -2, WFNOOM, STR_WF, NodeWrite, Cheap, "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE).with_notes("RW and UPDATE because it changes the TTL")]),
    cmd!("getrange", 4, R, STR_RS, NodeRead, Cheap, "string", "2.4.0", "Returns a substring of the string stored at a key.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("getset", 3, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("hdel", -3, WFNOOM, HASH_WF, NodeWrite, Cheap, "hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], CONN_CATS, Proxy, Exempt, "connection", "6.0.0", "Handshakes with the Redis server.", keys: &[]),
    cmd!("hexists", 3, RF, HASH_RF, NodeRead, Cheap, "hash", "2.0.0", "Determines whether a field exists in a hash.", keys: &[KeySpec::at(1, RO)]),
    cmd!("hget", 3, RF, HASH_RF, NodeRead, Cheap, "hash", "2.0.0", "Returns the value of a field in a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hgetall", 2, R, HASH_RS, NodeRead, HeavyData, "hash", "2.0.0", "Returns all fields and values in a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hincrby", 4, WF, HASH_WF, NodeWrite, Cheap, "hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("hincrbyfloat", 4, WF, HASH_WF, NodeWrite, Cheap, "hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("hkeys", 2, R, HASH_RS, NodeRead, HeavyData, "hash", "2.0.0", "Returns all fields in a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hlen", 2, RF, HASH_RF, NodeRead, Cheap, "hash", "2.0.0", "Returns the number of fields in a hash.", keys: &[KeySpec::at(1, RO)]),
    cmd!("hmget", -3, RF, HASH_RF, NodeRead, Cheap, "hash", "2.0.0", "Returns the values of all fields in a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hmset", -4, WF, HASH_WF, NodeWrite, Cheap, "hash", "2.0.0", "Sets the values of multiple fields.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("hrandfield", -2, R, HASH_RS, NodeRead, Cheap, "hash", "6.2.0", "Returns one or more random fields from a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hscan", -3, R, HASH_RS, NodeRead, HeavyScan, "hash", "2.8.0", "Iterates over fields and values of a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("hset", -4, WF, HASH_WF, NodeWrite, Cheap, "hash", "2.0.0", "Creates or modifies the value of a field in a hash.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("hsetnx", 4, WF, HASH_WF, NodeWrite, Cheap, "hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("hstrlen", 3, RF, HASH_RF, NodeRead, Cheap, "hash", "3.2.0", "Returns the length of the value of a field.", keys: &[KeySpec::at(1, RO)]),
    cmd!("hvals", 2, R, HASH_RS, NodeRead, HeavyData, "hash", "2.0.0", "Returns all values in a hash.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("incr", 2, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("incrby", 3, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("incrbyfloat", 3, WF, STR_WF, NodeWrite, Cheap, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("info", -1, &["loading", "stale"], &["slow", "dangerous"], Proxy, Exempt, "server", "1.0.0", "Returns information and statistics about the server.", keys: &[]),
    cmd!("keys", 2, R, KEY_RS, NodeRead, HeavyScan, "generic", "1.0.0", "Returns all key names that match a pattern.", keys: &[]),
    cmd!("lcs", -3, R, STR_RS, NodeRead, HeavyData, "string", "7.0.0", "Finds the longest common substring.", keys: &[KeySpec::range(1, 1, 1, RO_ACCESS)]),
    cmd!("lindex", 3, R, L_RS, NodeRead, Cheap, "list", "1.0.0", "Returns an element from a list by its index.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("linsert", 5, W, L_WS, NodeWrite, Cheap, "list", "2.2.0", "Inserts an element before or after another element in a list.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("llen", 2, RF, L_RF, NodeRead, Cheap, "list", "1.0.0", "Returns the length of a list.", keys: &[KeySpec::at(1, RO)]),
    cmd!("lmove", 5, W, L_WS, NodeWrite, Cheap, "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, RW_INSERT)]),
    cmd!("lmpop", -4, WMOV, L_WS, NodeWrite, Cheap, "list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", keys: &[KeySpec::keynum(1, RW_ACCESS_DELETE)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("lpop", -2, WFNOOM, L_WF, NodeWrite, Cheap, "list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("lpos", -3, R, L_RS, NodeRead, Cheap, "list", "6.0.6", "Returns the index of matching elements in a list.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("lpush", -3, WF, L_WF, NodeWrite, Cheap, "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("lpushx", -3, WF, L_WF, NodeWrite, Cheap, "list", "2.2.0", "Prepends one or more elements to a list only when the list exists.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("lrange", 4, R, L_RS, NodeRead, HeavyData, "list", "1.0.0", "Returns a range of elements from a list.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("lrem", 4, WNOOM, L_WS, NodeWrite, Cheap, "list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("lset", 4, W, L_WS, NodeWrite, Cheap, "list", "1.0.0", "Sets the value of an element in a list by its index.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("ltrim", 4, WNOOM, L_WS, NodeWrite, Cheap, "list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("mget", -2, RF, STR_RF, NodeRead, Cheap, "string", "1.0.0", "Atomically returns the string values of one or more keys.", keys: &[KeySpec::range(1, -1, 1, RO_ACCESS)]),
    cmd!("mset", -3, W, STR_WS, NodeWrite, Cheap, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", keys: &[KeySpec::range(1, -1, 2, OW_UPDATE)]),
    cmd!("msetnx", -3, W, STR_WS, NodeWrite, Cheap, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", keys: &[KeySpec::range(1, -1, 2, OW_INSERT)]),
    cmd!("multi", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["fast", "transaction"], Proxy, Cheap, "transactions", "1.2.0", "Starts a transaction.", keys: &[]),
    cmd!("object", -2, R, &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "2.2.3", "A container for object introspection commands.", keys: &[], subs: OBJECT_SUBCOMMANDS),
    cmd!("persist", 2, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "2.2.0", "Removes the expiration time of a key.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("pexpire", -3, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("pexpireat", -3, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("pexpiretime", 2, RF, KEY_RF, NodeRead, Cheap, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("pfadd", -2, WF, &["write", "hyperloglog", "fast"], NodeWrite, Cheap, "hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("pfcount", -2, R, &["read", "hyperloglog", "slow"], NodeRead, Cheap, "hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", keys: &[KeySpec::range(1, -1, 1, RW_ACCESS).with_notes("RW because it may change the internal representation of the key, and propagate to replicas")]),
    cmd!("pfmerge", -2, W, &["write", "hyperloglog", "slow"], NodeWrite, Cheap, "hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key.", keys: &[KeySpec::at(1, RW_ACCESS_INSERT), KeySpec::range(2, -1, 1, RO_ACCESS)]),
    cmd!("ping", -1, &["fast"], CONN_CATS, Proxy, Exempt, "connection", "1.0.0", "Returns the server's liveliness response.", keys: &[]),
    cmd!("psetex", 4, W, STR_WS, NodeWrite, Cheap, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", keys: &[KeySpec::at(1, OW_UPDATE)]),
    cmd!("psubscribe", -2, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "2.0.0", "Listens for messages published to channels that match one or more patterns.", keys: &[]),
    cmd!("pttl", 2, RF, KEY_RF, NodeRead, Cheap, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("publish", 3, PS_PUB, PS_FAST, Proxy, Cheap, "pubsub", "2.0.0", "Posts a message to a channel.", keys: &[]),
    cmd!("pubsub", -2, &[], &["slow"], Proxy, Cheap, "pubsub", "2.8.0", "A container for Pub/Sub commands.", keys: &[], subs: PUBSUB_SUBCOMMANDS),
    cmd!("punsubscribe", -1, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "2.0.0", "Stops listening to messages published to channels that match one or more patterns.", keys: &[]),
    cmd!("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], CONN_CATS, Proxy, Exempt, "connection", "1.0.0", "Closes the connection.", keys: &[]),
    cmd!("rampart.streamformat", 2, RAMPART_R, X_ADMIN, NodeRead, Cheap, "stream", "0.1.0", "Rampart: reports a stream's storage layout (per-entry, legacy, or mixed during a chunked migration).", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("rampart.streamimport", -3, RAMPART_W, X_ADMIN, NodeWrite, Cheap, "stream", "0.1.0", "Rampart: stores a stream given as a legacy-layout protobuf blob (importing old data).", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("rampart.streamtolegacy", 2, RAMPART_W, X_ADMIN, NodeWrite, Cheap, "stream", "0.1.0", "Rampart: rewrites a stream in the legacy one-blob layout (tests and migration drills).", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("randomkey", 1, R, &["keyspace", "read", "slow"], NodeRead, Cheap, "generic", "1.0.0", "Returns a random key name from the database.", keys: &[]),
    cmd!("rename", 3, WNOOM, KEY_WS, NodeWrite, Cheap, "generic", "1.0.0", "Renames a key and overwrites the destination.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, OW_UPDATE)]),
    cmd!("renamenx", 3, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, OW_INSERT)]),
    cmd!("reset", 1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], CONN_CATS, Proxy, Cheap, "connection", "6.2.0", "Resets the connection.", keys: &[]),
    cmd!("restore", -4, W, &["keyspace", "write", "slow", "dangerous"], NodeWrite, HeavyData, "generic", "2.6.0", "Creates a key from the serialized representation of a value.", keys: &[KeySpec::at(1, OW_UPDATE)]),
    cmd!("rpop", -2, WFNOOM, L_WF, NodeWrite, Cheap, "list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("rpoplpush", 3, W, L_WS, NodeWrite, Cheap, "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, RW_INSERT)]),
    cmd!("rpush", -3, WF, L_WF, NodeWrite, Cheap, "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("rpushx", -3, WF, L_WF, NodeWrite, Cheap, "list", "2.2.0", "Appends an element to a list only when the list exists.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("sadd", -3, WF, SET_WF, NodeWrite, Cheap, "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_INSERT)]),
    cmd!("scan", -2, R, &["keyspace", "read", "slow"], NodeRead, HeavyScan, "generic", "2.8.0", "Iterates over the key names in the database.", keys: &[]),
    cmd!("scard", 2, RF, SET_RF, NodeRead, Cheap, "set", "1.0.0", "Returns the number of members in a set.", keys: &[KeySpec::at(1, RO)]),
    cmd!("script", -2, &[], &["slow"], ScriptAdmin, Admin, "scripting", "2.6.0", "A container for Lua scripts management commands (LOAD, EXISTS, FLUSH, KILL).", keys: &[], subs: SCRIPT_SUBCOMMANDS),
    cmd!("sdiff", -2, R, SET_RS, NodeRead, HeavyData, "set", "1.0.0", "Returns the difference of multiple sets.", keys: &[KeySpec::range(1, -1, 1, RO_ACCESS)]),
    cmd!("sdiffstore", -3, W, SET_WS, NodeWrite, HeavyData, "set", "1.0.0", "Stores the difference of multiple sets in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::range(2, -1, 1, RO_ACCESS)]),
    cmd!("select", 2, CONN, CONN_CATS, Proxy, Cheap, "connection", "1.0.0", "Changes the selected database.", keys: &[]),
    cmd!("set", -3, W, STR_WS, NodeWrite, Cheap, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE_VARIABLE_FLAGS).with_notes("RW and ACCESS due to the optional `GET` argument")], getkeys: GetKeysProc::Set),
    cmd!("setbit", 4, W, &["write", "bitmap", "slow"], NodeWrite, Cheap, "bitmap", "2.2.0", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("setex", 4, W, STR_WS, NodeWrite, Cheap, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, OW_UPDATE)]),
    cmd!("setnx", 3, WF, STR_WF, NodeWrite, Cheap, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", keys: &[KeySpec::at(1, OW_INSERT)]),
    cmd!("setrange", 4, W, STR_WS, NodeWrite, Cheap, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("sinter", -2, R, SET_RS, NodeRead, HeavyData, "set", "1.0.0", "Returns the intersect of multiple sets.", keys: &[KeySpec::range(1, -1, 1, RO_ACCESS)]),
    cmd!("sintercard", -3, RMOV, SET_RS, NodeRead, HeavyData, "set", "7.0.0", "Returns the number of members of the intersect of multiple sets.", keys: &[KeySpec::keynum(1, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("sinterstore", -3, W, SET_WS, NodeWrite, HeavyData, "set", "1.0.0", "Stores the intersect of multiple sets in a key.", keys: &[KeySpec::at(1, RW_UPDATE), KeySpec::range(2, -1, 1, RO_ACCESS)]),
    cmd!("sismember", 3, RF, SET_RF, NodeRead, Cheap, "set", "1.0.0", "Determines whether a member belongs to a set.", keys: &[KeySpec::at(1, RO)]),
    cmd!("smembers", 2, R, SET_RS, NodeRead, HeavyData, "set", "1.0.0", "Returns all members of a set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("smismember", -3, RF, SET_RF, NodeRead, Cheap, "set", "6.2.0", "Determines whether multiple members belong to a set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("smove", 4, WFNOOM, SET_WF, NodeWrite, Cheap, "set", "1.0.0", "Moves a member from one set to another.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE), KeySpec::at(2, RW_INSERT)]),
    cmd!("sort", -2, WDMOV, &["write", "set", "sortedset", "list", "slow", "dangerous"], NodeWrite, HeavyData, "generic", "1.0.0", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.", keys: &[KeySpec::at(1, RO_ACCESS), KeySpec::unknown(RO_ACCESS).with_notes(SORT_PATTERN_NOTE), KeySpec::unknown(OW_UPDATE).with_notes("For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array")], getkeys: GetKeysProc::Sort),
    cmd!("sort_ro", -2, RMOV, &["read", "set", "sortedset", "list", "slow", "dangerous"], NodeRead, HeavyData, "generic", "7.0.0", "Returns the sorted elements of a list, a set, or a sorted set.", keys: &[KeySpec::at(1, RO_ACCESS), KeySpec::unknown(RO_ACCESS).with_notes(SORT_PATTERN_NOTE)], getkeys: GetKeysProc::SortRo),
    cmd!("spop", -2, WFNOOM, SET_WF, NodeWrite, Cheap, "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("spublish", 3, PS_PUB, PS_FAST, Proxy, Cheap, "pubsub", "7.0.0", "Post a message to a shard channel", keys: &[KeySpec::at(1, NOT_KEY)]),
    cmd!("srandmember", -2, R, SET_RS, NodeRead, Cheap, "set", "1.0.0", "Get one or multiple random members from a set", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("srem", -3, WFNOOM, SET_WF, NodeWrite, Cheap, "set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("sscan", -3, R, SET_RS, NodeRead, HeavyScan, "set", "2.8.0", "Iterates over members of a set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("ssubscribe", -2, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "7.0.0", "Listens for messages published to shard channels.", keys: &[KeySpec::range(1, -1, 1, NOT_KEY)]),
    cmd!("strlen", 2, RF, STR_RF, NodeRead, Cheap, "string", "2.2.0", "Returns the length of a string value.", keys: &[KeySpec::at(1, RO)]),
    cmd!("subscribe", -2, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "2.0.0", "Listens for messages published to channels.", keys: &[]),
    cmd!("substr", 4, R, STR_RS, NodeRead, Cheap, "string", "1.0.0", "Returns a substring from a string value.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("sunion", -2, R, SET_RS, NodeRead, HeavyData, "set", "1.0.0", "Returns the union of multiple sets.", keys: &[KeySpec::range(1, -1, 1, RO_ACCESS)]),
    cmd!("sunionstore", -3, W, SET_WS, NodeWrite, HeavyData, "set", "1.0.0", "Stores the union of multiple sets in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::range(2, -1, 1, RO_ACCESS)]),
    cmd!("sunsubscribe", -1, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "7.0.0", "Stops listening to messages posted to shard channels.", keys: &[KeySpec::range(1, -1, 1, NOT_KEY)]),
    cmd!("time", 1, &["loading", "stale", "fast"], &["fast"], Proxy, Exempt, "server", "2.6.0", "Returns the server time.", keys: &[]),
    cmd!("touch", -2, RF, KEY_RF, NodeRead, Cheap, "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys: &[KeySpec::range(1, -1, 1, RO)]),
    cmd!("ttl", 2, RF, KEY_RF, NodeRead, Cheap, "generic", "1.0.0", "Returns the expiration time in seconds of a key.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("type", 2, RF, KEY_RF, NodeRead, Cheap, "generic", "1.0.0", "Determines the type of value stored at a key.", keys: &[KeySpec::at(1, RO)]),
    cmd!("unlink", -2, WFNOOM, KEY_WF, NodeWrite, Cheap, "generic", "4.0.0", "Asynchronously deletes one or more keys.", keys: &[KeySpec::range(1, -1, 1, RM_DELETE)]),
    cmd!("unsubscribe", -1, PS_SUB, PS_SLOW, Proxy, Cheap, "pubsub", "2.0.0", "Stops listening to messages posted to channels.", keys: &[]),
    cmd!("unwatch", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], &["fast", "transaction"], Proxy, Cheap, "transactions", "2.2.0", "Forgets about watched keys of a transaction.", keys: &[]),
    cmd!("watch", -2, &["noscript", "loading", "stale", "fast", "allow_busy"], &["fast", "transaction"], NodeRead, Cheap, "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction.", keys: &[KeySpec::range(1, -1, 1, RO)]),
    cmd!("xack", -4, WF, X_WF, NodeWrite, Cheap, "stream", "5.0.0", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("xadd", -5, WF, X_WF, NodeWrite, Cheap, "stream", "5.0.0", "Appends a new message to a stream. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_UPDATE).with_notes("UPDATE instead of INSERT because of the optional trimming feature")]),
    cmd!("xautoclaim", -6, WFNOOM, X_WF, NodeWrite, Cheap, "stream", "6.2.0", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("xclaim", -6, WFNOOM, X_WF, NodeWrite, Cheap, "stream", "5.0.0", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("xdel", -3, WFNOOM, X_WF, NodeWrite, Cheap, "stream", "5.0.0", "Returns the number of messages after removing them from a stream.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("xgroup", -2, &[], X_WS, NodeWrite, Cheap, "stream", "5.0.0", "A container for consumer groups commands.", keys: &[], subs: XGROUP_SUBCOMMANDS),
    cmd!("xinfo", -2, R, X_RS, NodeRead, Cheap, "stream", "5.0.0", "A container for stream introspection commands.", keys: &[], subs: XINFO_SUBCOMMANDS),
    cmd!("xlen", 2, RF, X_RF, NodeRead, Cheap, "stream", "5.0.0", "Return the number of messages in a stream.", keys: &[KeySpec::at(1, RO)]),
    cmd!("xpending", -3, R, X_RS, NodeRead, Cheap, "stream", "5.0.0", "Returns the information and entries from a stream consumer group's pending entries list.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("xrange", -4, R, X_RS, NodeRead, HeavyData, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("xread", -4, &["readonly", "blocking", "movablekeys"], &["read", "stream", "slow", "blocking"], NodeRead, HeavyData, "stream", "5.0.0", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", keys: &[KeySpec::half_after("STREAMS", 1, RO_ACCESS)], block: Blocking::BlockOption, getkeys: GetKeysProc::StreamRead),
    cmd!("xreadgroup", -7, &["write", "blocking", "movablekeys"], &["write", "stream", "slow", "blocking"], NodeWrite, HeavyData, "stream", "5.0.0", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", keys: &[KeySpec::half_after("STREAMS", 4, RO_ACCESS)], block: Blocking::BlockOption, getkeys: GetKeysProc::StreamRead),
    cmd!("xrevrange", -4, R, X_RS, NodeRead, HeavyData, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs in reverse order.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("xsetid", -3, WF, X_WF, NodeWrite, Cheap, "stream", "5.0.0", "An internal command for replicating stream values.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("xtrim", -4, WNOOM, X_WS, NodeWrite, Cheap, "stream", "5.0.0", "Deletes messages from the beginning of a stream.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("zadd", -4, WF, Z_WF, NodeWrite, Cheap, "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", keys: &[KeySpec::at(1, RW_UPDATE)]),
    cmd!("zcard", 2, RF, Z_RF, NodeRead, Cheap, "sorted-set", "1.2.0", "Returns the number of members in a sorted set.", keys: &[KeySpec::at(1, RO)]),
    cmd!("zcount", 4, RF, Z_RF, NodeRead, Cheap, "sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zdiff", -3, RMOV, Z_RS, NodeRead, HeavyData, "sorted-set", "6.2.0", "Returns the difference between multiple sorted sets.", keys: &[KeySpec::keynum(1, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("zdiffstore", -4, WDMOV, Z_WS, NodeWrite, HeavyData, "sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::keynum(2, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: Some(1), count_at: 2, first_at: 3 }),
    cmd!("zincrby", 4, WF, Z_WF, NodeWrite, Cheap, "sorted-set", "1.2.0", "Increments the score of a member in a sorted set.", keys: &[KeySpec::at(1, RW_ACCESS_UPDATE)]),
    cmd!("zinter", -3, RMOV, Z_RS, NodeRead, HeavyData, "sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets.", keys: &[KeySpec::keynum(1, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("zintercard", -3, RMOV, Z_RS, NodeRead, HeavyData, "sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets.", keys: &[KeySpec::keynum(1, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("zinterstore", -4, WDMOV, Z_WS, NodeWrite, HeavyData, "sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::keynum(2, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: Some(1), count_at: 2, first_at: 3 }),
    cmd!("zlexcount", 4, RF, Z_RF, NodeRead, Cheap, "sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zmpop", -4, WMOV, Z_WS, NodeWrite, Cheap, "sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", keys: &[KeySpec::keynum(1, RW_ACCESS_DELETE)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("zmscore", -3, RF, Z_RF, NodeRead, Cheap, "sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zpopmax", -2, WFNOOM, Z_WF, NodeWrite, Cheap, "sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("zpopmin", -2, WFNOOM, Z_WF, NodeWrite, Cheap, "sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", keys: &[KeySpec::at(1, RW_ACCESS_DELETE)]),
    cmd!("zrandmember", -2, R, Z_RS, NodeRead, Cheap, "sorted-set", "6.2.0", "Returns one or more random members from a sorted set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrange", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrangebylex", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrangebyscore", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrangestore", -5, W, Z_WS, NodeWrite, HeavyData, "sorted-set", "6.2.0", "Stores a range of members from sorted set in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::at(2, RO_ACCESS)]),
    cmd!("zrank", -3, RF, Z_RF, NodeRead, Cheap, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrem", -3, WFNOOM, Z_WF, NodeWrite, Cheap, "sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("zremrangebylex", 4, WNOOM, Z_WS, NodeWrite, Cheap, "sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("zremrangebyrank", 4, WNOOM, Z_WS, NodeWrite, Cheap, "sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("zremrangebyscore", 4, WNOOM, Z_WS, NodeWrite, Cheap, "sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", keys: &[KeySpec::at(1, RW_DELETE)]),
    cmd!("zrevrange", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrevrangebylex", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrevrangebyscore", -4, R, Z_RS, NodeRead, HeavyData, "sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zrevrank", -3, RF, Z_RF, NodeRead, Cheap, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zscan", -3, R, Z_RS, NodeRead, HeavyScan, "sorted-set", "2.8.0", "Iterates over members and scores of a sorted set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zscore", 3, RF, Z_RF, NodeRead, Cheap, "sorted-set", "1.2.0", "Returns the score of a member in a sorted set.", keys: &[KeySpec::at(1, RO_ACCESS)]),
    cmd!("zunion", -3, RMOV, Z_RS, NodeRead, HeavyData, "sorted-set", "6.2.0", "Returns the union of multiple sorted sets.", keys: &[KeySpec::keynum(1, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: None, count_at: 1, first_at: 2 }),
    cmd!("zunionstore", -4, WDMOV, Z_WS, NodeWrite, HeavyData, "sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key.", keys: &[KeySpec::at(1, OW_UPDATE), KeySpec::keynum(2, RO_ACCESS)], getkeys: GetKeysProc::Numkeys { store_at: Some(1), count_at: 2, first_at: 3 }),
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

/// Looks a command up by its `COMMAND` name: `get`, or `xgroup|create`
/// for a subcommand (as `COMMAND INFO` and `COMMAND DOCS` accept them).
pub fn lookup_name(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
        None => lookup(name),
    }
}

/// The spec that describes `argv`: a container's subcommand (XGROUP
/// CREATE) when it has one by that name, else the command itself. `None`
/// for an unknown command, or a container with an unknown subcommand.
pub fn lookup_argv(argv: &[Vec<u8>]) -> Option<&'static CommandSpec> {
    let spec = lookup(argv.first()?)?;
    if spec.subcommands.is_empty() {
        return Some(spec);
    }
    match argv.get(1) {
        Some(sub) => spec.subcommand(sub),
        None => Some(spec),
    }
}

/// Whether the command named `name` (any case) is heavy by its class.
pub fn is_heavy(name: &[u8]) -> bool {
    lookup(name).is_some_and(|spec| spec.is_heavy())
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

    fn argv(text: &str) -> Vec<Vec<u8>> {
        text.split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }

    /// The keys `argv` names, by its spec (subcommands resolved).
    fn keys(text: &str) -> Vec<String> {
        let argv = argv(text);
        let spec = lookup_argv(&argv).expect("known command");
        spec.find_keys(&argv)
            .iter()
            .map(|k| String::from_utf8_lossy(&argv[k.pos]).into_owned())
            .collect()
    }

    #[test]
    fn keys_of_fixed_and_variable_commands() {
        // Each expectation is Redis 7.2's COMMAND GETKEYS answer.
        let cases: &[(&str, &[&str])] = &[
            ("GET k", &["k"]),
            ("MSET a 1 b 2", &["a", "b"]),
            ("DEL a b c", &["a", "b", "c"]),
            ("BLPOP a b 0", &["a", "b"]),
            ("BLMOVE src dst LEFT RIGHT 0", &["src", "dst"]),
            ("EVAL s 2 k1 k2 a1", &["k1", "k2"]),
            ("EVALSHA abc 0", &[]),
            ("FCALL f 2 k1 k2 a1", &["k1", "k2"]),
            ("FCALL_RO f 0 a1", &[]),
            ("ZUNIONSTORE d 2 a b WEIGHTS 1 2", &["d", "a", "b"]),
            ("ZUNION 2 a b", &["a", "b"]),
            ("ZINTERCARD 2 a b LIMIT 1", &["a", "b"]),
            ("SINTERCARD 1 a", &["a"]),
            ("LMPOP 2 a b LEFT", &["a", "b"]),
            ("BLMPOP 0 2 a b LEFT", &["a", "b"]),
            ("BZMPOP 1.5 1 z MIN COUNT 2", &["z"]),
            ("ZMPOP 1 z MAX", &["z"]),
            ("XREAD COUNT 2 BLOCK 0 STREAMS s1 s2 0 $", &["s1", "s2"]),
            ("XREADGROUP GROUP g c COUNT 1 STREAMS s >", &["s"]),
            ("XREADGROUP GROUP streams STREAMS STREAMS s >", &["s"]),
            ("XGROUP CREATE s g $ MKSTREAM", &["s"]),
            ("XINFO STREAM s FULL", &["s"]),
            ("OBJECT ENCODING k", &["k"]),
            ("OBJECT HELP", &[]),
            ("RENAME a b", &["a", "b"]),
            ("SMOVE a b m", &["a", "b"]),
            ("SINTERSTORE d a b", &["d", "a", "b"]),
            ("ZRANGESTORE d s 0 -1", &["d", "s"]),
            ("WATCH a b", &["a", "b"]),
            ("SPUBLISH ch m", &[]),
            ("SET k v GET", &["k"]),
            ("COPY a b DB 0", &["a", "b"]),
            ("SORT k BY w_* LIMIT 0 1 GET # STORE d", &["k", "d"]),
            ("SORT k STORE a STORE b", &["k", "b"]),
            ("SORT_RO k GET h_*->f", &["k"]),
            ("TOUCH a b", &["a", "b"]),
        ];
        for (command, expected) in cases {
            assert_eq!(keys(command), *expected, "{command}");
        }
    }

    #[test]
    fn key_flags_say_what_the_command_does() {
        let flags = |text: &str| {
            let argv = argv(text);
            let spec = lookup_argv(&argv).unwrap();
            spec.find_keys(&argv)
                .iter()
                .map(|k| k.flags.names().join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(flags("GET k"), vec!["RO access"]);
        assert_eq!(flags("SET k v"), vec!["OW update"]);
        assert_eq!(flags("SET k v GET"), vec!["RW access update"]);
        assert_eq!(
            flags("LMOVE a b LEFT LEFT"),
            vec!["RW access delete", "RW insert"]
        );
        assert_eq!(flags("DEL k"), vec!["RM delete"]);
    }

    #[test]
    fn legacy_ranges_and_movablekeys_agree_with_the_specs() {
        let get = lookup(b"get").unwrap();
        assert_eq!(get.legacy_range(), (1, 1, 1));
        assert_eq!(lookup(b"mset").unwrap().legacy_range(), (1, -1, 2));
        assert_eq!(lookup(b"zunionstore").unwrap().legacy_range(), (1, 1, 1));
        assert_eq!(lookup(b"xgroup").unwrap().legacy_range(), (0, 0, 0));
        for spec in COMMANDS
            .iter()
            .chain(COMMANDS.iter().flat_map(|s| s.subcommands))
        {
            let movable = crate::key_spec::movable_keys(spec.keys);
            assert_eq!(
                spec.flags.contains(&"movablekeys"),
                movable,
                "{}: movablekeys flag vs key specs",
                spec.name
            );
        }
    }

    #[test]
    fn subcommands_resolve_by_name_in_any_case() {
        let spec = lookup_argv(&argv("xgroup CreateConsumer s g c")).unwrap();
        assert_eq!(spec.name, "xgroup|createconsumer");
        assert!(lookup_argv(&argv("XGROUP NOSUCH s")).is_none());
        assert_eq!(lookup_argv(&argv("XGROUP")).unwrap().name, "xgroup");
        assert_eq!(lookup_argv(&argv("GET k")).unwrap().name, "get");
        assert_eq!(lookup_name(b"XGROUP|Create").unwrap().name, "xgroup|create");
        assert_eq!(lookup_name(b"client|id").unwrap().name, "client|id");
        assert!(lookup_name(b"get|x").is_none() && lookup_name(b"xgroup|").is_none());
    }

    #[test]
    fn classes_blocking_and_script_runner_are_facts_of_the_spec() {
        let spec = |name: &str| lookup(name.as_bytes()).unwrap();
        for heavy in [
            "keys",
            "scan",
            "hgetall",
            "xread",
            "zrange",
            "lrange",
            "eval",
            "evalsha_ro",
        ] {
            assert!(is_heavy(heavy.as_bytes()), "{heavy}");
        }
        for cheap in ["get", "set", "hget", "xadd", "blpop", "flushall"] {
            assert!(!is_heavy(cheap.as_bytes()), "{cheap}");
        }
        assert!(!is_heavy(b"nosuchcommand"));
        for exempt in ["ping", "info", "client", "hello", "auth", "quit"] {
            assert_eq!(spec(exempt).class, Class::Exempt);
        }
        assert_eq!(spec("flushall").class, Class::Admin);
        assert!(spec("eval").uses_script_runner() && spec("script").uses_script_runner());
        assert_eq!(spec("eval").runs, Runs::Script);
        assert_eq!(spec("fcall_ro").runs, Runs::Script);
        assert!(spec("function").uses_script_runner() && is_heavy(b"fcall"));
        assert!(!spec("get").uses_script_runner());
        for name in [
            "blpop",
            "brpop",
            "brpoplpush",
            "blmove",
            "blmpop",
            "bzpopmin",
            "bzpopmax",
            "bzmpop",
        ] {
            assert_eq!(spec(name).class, Class::Blocking, "{name}");
            assert!(spec(name).blocks(&argv(&format!("{name} k 0"))), "{name}");
        }
    }

    #[test]
    fn xread_blocks_only_with_its_block_option() {
        let blocks = |text: &str| {
            let argv = argv(text);
            lookup(&argv[0]).unwrap().blocks(&argv)
        };
        assert!(!blocks("XREAD STREAMS s 0"));
        assert!(blocks("xread COUNT 1 block 0 STREAMS s 0"));
        assert!(!blocks("XREAD STREAMS BLOCK 0"), "a key named BLOCK");
        assert!(
            !blocks("XREAD COUNT BLOCK STREAMS s 0"),
            "BLOCK as COUNT's value"
        );
        assert!(blocks("XREADGROUP GROUP g c BLOCK 10 STREAMS s >"));
        assert!(
            !blocks("XREADGROUP GROUP block c STREAMS s >"),
            "a group named block"
        );
        assert!(
            !blocks("XREAD BLOCK"),
            "BLOCK without a value is a syntax error"
        );
    }

    #[test]
    fn block_timeouts_are_read_from_the_arguments() {
        use std::time::Duration;
        let t = |text: &str| {
            let argv = argv(text);
            lookup(&argv[0]).unwrap().block_timeout(&argv)
        };
        assert_eq!(t("BLPOP a b 1.5"), Some(Some(Duration::from_millis(1500))));
        assert_eq!(t("blpop a 0"), Some(None), "0 blocks forever");
        assert_eq!(t("BLMPOP 2 1 k LEFT"), Some(Some(Duration::from_secs(2))));
        assert_eq!(
            t("XREAD BLOCK 250 STREAMS s $"),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            t("XREADGROUP GROUP g c COUNT 5 BLOCK 100 STREAMS s >"),
            Some(Some(Duration::from_millis(100)))
        );
        assert_eq!(t("XREAD STREAMS s $"), None);
        assert_eq!(t("BLPOP a -1"), None, "the node answers the error");
        assert_eq!(t("GET k"), None);
    }
}
