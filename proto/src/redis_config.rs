//! Redis's `CONFIG` parameters as Rampart serves them (docs/config.md): one
//! [`Param`] row per parameter with its Redis 7.2 name, alias, default,
//! value syntax and where it lives, and the parsing that turns what a
//! client sent into the canonical text `CONFIG GET` shows, with Redis's
//! error texts.
//!
//! Two kinds of parameters:
//! - [`Scope::Cluster`]: cluster state. The proxy sends the canonical values
//!   to the nodes in one internal write ([`internal::SET`]) applied through
//!   the Raft log, so every node and every proxy sees the same value, and
//!   it survives restarts. OBJECT ENCODING reads the encoding thresholds
//!   from there.
//! - [`Scope::Proxy`]: this proxy's own (Redis's per-server settings such
//!   as `timeout`); `CONFIG REWRITE` saves them in the proxy's config file.
//!
//! The node validates a replicated value again with the same code
//! ([`normalize`]), so nothing malformed reaches the state machine even
//! from a misbehaving proxy.

use crate::args::parse_i64;
use crate::glob::glob_match;

/// The internal commands that carry cluster parameters through the Raft
/// log. Not in the command table: no client and no Lua script can send
/// them; the proxy's `CONFIG SET` / `CONFIG GET` do.
pub mod internal {
    /// `rampart.config.set <name> <value> [<name> <value> ...]`: stores
    /// every pair (canonical names and values) all or nothing, bumps the
    /// version; replies OK or the `CONFIG SET failed` error.
    pub const SET: &str = "rampart.config.set";
    /// `rampart.config.get <version>`: a read; nil when the stored version
    /// is still `<version>`, else `[version, name, value, name, value...]`
    /// (the parameters ever set; the others have their default).
    pub const GET: &str = "rampart.config.get";
    /// Prefix shared by both.
    pub const PREFIX: &[u8] = b"rampart.config.";
}

/// Where a parameter's value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Replicated through the Raft log; the same on every proxy and node.
    Cluster,
    /// This proxy's own setting.
    Proxy,
}

/// The syntax of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A strict integer (Redis's `string2ll`) in `min..=max`.
    Int { min: i64, max: i64 },
    /// A byte count with an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`,
    /// `gb`, any case), shown in bytes.
    Memory { min: u64, max: u64 },
    /// A byte count, or a percentage `N%` (0..=100) shown as such
    /// (`maxmemory-clients`).
    MemoryOrPercent,
    /// `yes` / `no`, any case.
    Bool,
    /// One of these words, any case; shown in lower case.
    Enum(&'static [&'static str]),
    /// `notify-keyspace-events` classes.
    KeyspaceEvents,
    /// `save`: pairs of `<seconds> <changes>`, or empty.
    Save,
    /// `latency-tracking-info-percentiles`: numbers in 0..=100.
    Percentiles,
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Redis 7.2's name (what `CONFIG GET *` shows).
    pub name: &'static str,
    /// Redis's other name for it (the pre-7.0 ziplist names, ...).
    pub alias: Option<&'static str>,
    /// The default, as `CONFIG GET` shows it.
    pub default: &'static str,
    pub kind: Kind,
    pub scope: Scope,
    /// `false`: `CONFIG SET` answers `can't set immutable config`.
    pub mutable: bool,
}

/// `size_t` parameters of Redis accept 0..LONG_MAX.
const SIZE: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};
const MAXMEMORY_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

const fn param(
    name: &'static str,
    alias: Option<&'static str>,
    default: &'static str,
    kind: Kind,
    scope: Scope,
) -> Param {
    Param {
        name,
        alias,
        default,
        kind,
        scope,
        mutable: true,
    }
}

/// Every parameter, sorted by name. Defaults are redis-server 7.2's built-in
/// ones (not those of the sample redis.conf), except where a comment says.
pub static PARAMS: &[Param] = &[
    param("appendonly", None, "no", Kind::Bool, Scope::Cluster),
    param(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        "5000",
        SIZE,
        Scope::Cluster,
    ),
    // Rampart serves one database (SELECT 0 only).
    Param {
        mutable: false,
        ..param(
            "databases",
            None,
            "1",
            Kind::Int {
                min: 1,
                max: i32::MAX as i64,
            },
            Scope::Proxy,
        )
    },
    param(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        "512",
        SIZE,
        Scope::Cluster,
    ),
    param(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        "64",
        SIZE,
        Scope::Cluster,
    ),
    param(
        "latency-monitor-threshold",
        None,
        "0",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        Scope::Proxy,
    ),
    param("latency-tracking", None, "yes", Kind::Bool, Scope::Proxy),
    param(
        "latency-tracking-info-percentiles",
        None,
        "50 99 99.9",
        Kind::Percentiles,
        Scope::Proxy,
    ),
    param(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        "-2",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        Scope::Cluster,
    ),
    param(
        "maxmemory",
        None,
        "0",
        Kind::Memory {
            min: 0,
            max: u64::MAX,
        },
        Scope::Cluster,
    ),
    param(
        "maxmemory-clients",
        None,
        "0",
        Kind::MemoryOrPercent,
        Scope::Cluster,
    ),
    param(
        "maxmemory-eviction-tenacity",
        None,
        "10",
        Kind::Int { min: 0, max: 100 },
        Scope::Cluster,
    ),
    param(
        "maxmemory-policy",
        None,
        "noeviction",
        Kind::Enum(MAXMEMORY_POLICIES),
        Scope::Cluster,
    ),
    param(
        "maxmemory-samples",
        None,
        "5",
        Kind::Int { min: 1, max: 64 },
        Scope::Cluster,
    ),
    param(
        "notify-keyspace-events",
        None,
        "",
        Kind::KeyspaceEvents,
        Scope::Cluster,
    ),
    // The proxy's --max-bulk-len; the default shown is the proxy's value
    // (16 MiB unless configured), not Redis's 512 MiB (docs/limits.md).
    // Not changeable at run time: the nodes' --proto-max-bulk-len must
    // agree with it, and both are start-up settings.
    Param {
        mutable: false,
        ..param(
            "proto-max-bulk-len",
            None,
            "16777216",
            Kind::Memory {
                min: 1 << 20,
                max: i64::MAX as u64,
            },
            Scope::Proxy,
        )
    },
    // Redis's built-in default is "3600 1 300 100 60 10000"; Rampart takes
    // no RDB snapshots, so it shows what a server without them shows.
    param("save", None, "", Kind::Save, Scope::Cluster),
    param("set-max-intset-entries", None, "512", SIZE, Scope::Cluster),
    param(
        "set-max-listpack-entries",
        None,
        "128",
        SIZE,
        Scope::Cluster,
    ),
    param("set-max-listpack-value", None, "64", SIZE, Scope::Cluster),
    param(
        "slowlog-log-slower-than",
        None,
        "10000",
        Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        Scope::Proxy,
    ),
    param("slowlog-max-len", None, "128", SIZE, Scope::Proxy),
    param(
        "stream-node-max-bytes",
        None,
        "4096",
        Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
        },
        Scope::Cluster,
    ),
    param("stream-node-max-entries", None, "100", SIZE, Scope::Cluster),
    param(
        "timeout",
        None,
        "0",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        Scope::Proxy,
    ),
    param(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        "128",
        SIZE,
        Scope::Cluster,
    ),
    param(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        "64",
        SIZE,
        Scope::Cluster,
    ),
];

/// The parameter `name` (or its alias) designates, any case.
pub fn lookup(name: &[u8]) -> Option<&'static Param> {
    PARAMS.iter().find(|p| {
        name.eq_ignore_ascii_case(p.name.as_bytes())
            || p.alias
                .is_some_and(|alias| name.eq_ignore_ascii_case(alias.as_bytes()))
    })
}

/// The parameter named exactly `name` (canonical, as stored).
pub fn by_name(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// What `CONFIG GET pattern...` returns: (name shown, parameter) in reply
/// order, each name once (Redis 7's rules: a pattern without `*`, `?` or
/// `[` is a name, shown as the client spelled it; a glob matches names and
/// aliases, any case, and shows them as Redis spells them; a name already
/// returned, in any case, is not returned again).
pub fn matching(patterns: &[Vec<u8>]) -> Vec<(String, &'static Param)> {
    let mut found: Vec<(String, &'static Param)> = Vec::new();
    let add = |found: &mut Vec<(String, &'static Param)>, shown: String, p: &'static Param| {
        if !found.iter().any(|(n, _)| n.eq_ignore_ascii_case(&shown)) {
            found.push((shown, p));
        }
    };
    for pattern in patterns {
        if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            if let Some(p) = lookup(pattern) {
                add(&mut found, String::from_utf8_lossy(pattern).into_owned(), p);
            }
            continue;
        }
        // Redis matches without case; names are lower case.
        let pattern = pattern.to_ascii_lowercase();
        for p in PARAMS {
            for name in std::iter::once(p.name).chain(p.alias) {
                if glob_match(&pattern, name.as_bytes()) {
                    add(&mut found, name.to_string(), p);
                }
            }
        }
    }
    found
}

/// The canonical text of `value` for `param` (what `CONFIG GET` will show),
/// or the reason Redis gives after `CONFIG SET failed (possibly related to
/// argument '...') - `.
pub fn normalize(param: &Param, value: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(value).map_err(|_| invalid_text(param))?;
    match param.kind {
        Kind::Int { min, max } => {
            let n = parse_i64(value).ok_or("argument couldn't be parsed into an integer")?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Memory { min, max } => {
            let n = parse_memory(text).ok_or("argument must be a memory value")?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::MemoryOrPercent => {
            if let Some(percent) = text.strip_suffix('%') {
                let n = parse_i64(percent.as_bytes())
                    .filter(|n| *n >= 0)
                    .ok_or("argument must be a memory or percent value")?;
                if n > 100 {
                    return Err("percentage argument must be less or equal to 100".into());
                }
                return Ok(if n == 0 { "0".into() } else { format!("{n}%") });
            }
            let n = parse_memory(text).ok_or("argument must be a memory or percent value")?;
            if n > isize::MAX as u64 {
                return Err(format!(
                    "argument must be between -100 and {} inclusive",
                    isize::MAX
                ));
            }
            Ok(n.to_string())
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(words) => {
            let lower = text.to_ascii_lowercase();
            words
                .iter()
                .find(|w| **w == lower)
                .map(|w| w.to_string())
                .ok_or_else(|| {
                    format!(
                        "argument(s) must be one of the following: {}",
                        words.join(", ")
                    )
                })
        }
        Kind::KeyspaceEvents => keyspace_events(text),
        Kind::Save => save(text),
        Kind::Percentiles => percentiles(text),
    }
}

fn invalid_text(param: &Param) -> String {
    match param.kind {
        Kind::Int { .. } => "argument couldn't be parsed into an integer".into(),
        Kind::Memory { .. } => "argument must be a memory value".into(),
        Kind::MemoryOrPercent => "argument must be a memory or percent value".into(),
        Kind::Bool => "argument must be 'yes' or 'no'".into(),
        Kind::Enum(words) => format!(
            "argument(s) must be one of the following: {}",
            words.join(", ")
        ),
        Kind::KeyspaceEvents => KEYSPACE_EVENTS_ERROR.into(),
        Kind::Save => SAVE_ERROR.into(),
        Kind::Percentiles => PERCENTILES_ERROR.into(),
    }
}

/// Redis's `memtoull`: digits, then an optional unit.
pub fn parse_memory(text: &str) -> Option<u64> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

const KEYSPACE_EVENTS_ERROR: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Redis's `notify-keyspace-events` flags: parsed, then shown as Redis's
/// `keyspaceEventsFlagsToString` writes them (`KEA` is shown `AKE`).
fn keyspace_events(text: &str) -> Result<String, String> {
    // The classes `A` stands for, in the order Redis writes them.
    const CLASSES: &str = "g$lshzxetd";
    const OTHERS: &str = "n";
    const SUFFIX: &str = "KEm";
    let mut set = std::collections::BTreeSet::new();
    for c in text.chars() {
        match c {
            'A' => set.extend(CLASSES.chars()),
            c if CLASSES.contains(c) || OTHERS.contains(c) || SUFFIX.contains(c) => {
                set.insert(c);
            }
            _ => return Err(KEYSPACE_EVENTS_ERROR.into()),
        }
    }
    let mut shown = String::new();
    if CLASSES.chars().all(|c| set.contains(&c)) {
        // Redis 7.0/7.2 then omits `n` from what it shows (it keeps it).
        shown.push('A');
    } else {
        shown.extend("g$lshzxetdn".chars().filter(|c| set.contains(c)));
    }
    shown.extend(SUFFIX.chars().filter(|c| set.contains(c)));
    Ok(shown)
}

const SAVE_ERROR: &str = "Invalid save parameters";

/// `save`: `<seconds> <changes>` pairs (seconds >= 1, changes >= 0), shown
/// as the numbers Redis parsed.
fn save(text: &str) -> Result<String, String> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    if words.len() % 2 == 1 {
        return Err(SAVE_ERROR.into());
    }
    let mut shown = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let n = strtoll(word).ok_or(SAVE_ERROR)?;
        let least = if i % 2 == 0 { 1 } else { 0 };
        if n < least {
            return Err(SAVE_ERROR.into());
        }
        shown.push(n.to_string());
    }
    Ok(shown.join(" "))
}

/// C's `strtoll` over a whole word: an optional sign, then digits.
fn strtoll(word: &str) -> Option<i64> {
    let digits = word
        .strip_prefix('+')
        .or_else(|| word.strip_prefix('-'))
        .unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.trim_start_matches('+').parse().ok()
}

const PERCENTILES_ERROR: &str = "Invalid latency-tracking-info-percentiles parameters";

/// Numbers in 0..=100, shown with `%f` and the trailing zeros trimmed.
fn percentiles(text: &str) -> Result<String, String> {
    let mut shown = Vec::new();
    for word in text.split_ascii_whitespace() {
        let value: f64 = word
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or(PERCENTILES_ERROR)?;
        if !(0.0..=100.0).contains(&value) {
            return Err(
                "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                    .into(),
            );
        }
        let fixed = format!("{value:.6}");
        let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
        shown.push(trimmed.to_string());
    }
    Ok(shown.join(" "))
}

/// `CONFIG SET failed (possibly related to argument 'x') - why`.
pub fn set_failed(arg: &[u8], why: &str) -> String {
    format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
        String::from_utf8_lossy(arg)
    )
}

/// `Unknown option or number of arguments for CONFIG SET - 'x'`.
pub fn unknown_option(arg: &[u8]) -> String {
    format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        String::from_utf8_lossy(arg)
    )
}

/// One accepted `CONFIG SET` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub param: &'static Param,
    /// The canonical value.
    pub value: String,
}

/// Checks `CONFIG SET name value [name value ...]` as Redis 7 does, all of
/// it before anything changes: first every name (unknown, immutable,
/// duplicate: the first problem wins), then every value. On success, the
/// changes in argument order (a later pair for the same parameter under
/// its other name overrides an earlier one, as in Redis).
pub fn check_set(args: &[Vec<u8>]) -> Result<Vec<Change>, String> {
    if args.len() % 2 == 1 {
        return Err(crate::errors::SYNTAX.into());
    }
    let mut params = Vec::with_capacity(args.len() / 2);
    for (i, pair) in args.chunks(2).enumerate() {
        let name = &pair[0];
        let Some(param) = lookup(name) else {
            return Err(unknown_option(name));
        };
        if !param.mutable {
            return Err(set_failed(name, "can't set immutable config"));
        }
        if args[..i * 2]
            .chunks(2)
            .any(|earlier| earlier[0].eq_ignore_ascii_case(name))
        {
            return Err(set_failed(name, "duplicate parameter"));
        }
        params.push(param);
    }
    params
        .into_iter()
        .zip(args.chunks(2))
        .map(|(param, pair)| {
            normalize(param, &pair[1])
                .map(|value| Change { param, value })
                .map_err(|why| set_failed(&pair[0], &why))
        })
        .collect()
}

/// `CONFIG HELP`, as Redis 7.2 words it.
pub const HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

/// Redis's reply to `CONFIG REWRITE` on a server started without a file.
pub const NO_CONFIG_FILE: &str = "ERR The server is running without a config file";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_table_is_sorted_and_defaults_are_canonical() {
        for pair in PARAMS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} not sorted", pair[1].name);
        }
        for p in PARAMS {
            assert_eq!(
                normalize(p, p.default.as_bytes()).as_deref(),
                Ok(p.default),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn get_follows_redis_matching_rules() {
        let names = |patterns: &str| -> Vec<String> {
            matching(&args(patterns))
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names("TIMEOUT"), ["TIMEOUT"]);
        assert_eq!(names("timeout TIMEOUT"), ["timeout"]);
        assert_eq!(names("TIME*"), ["timeout"]);
        assert_eq!(names("nosuch"), Vec::<String>::new());
        assert_eq!(
            names("hash-max-ziplist-entries hash-max-listpack-entries hash-max-*-entries"),
            ["hash-max-ziplist-entries", "hash-max-listpack-entries"]
        );
        assert_eq!(
            names("hash-max-*"),
            [
                "hash-max-listpack-entries",
                "hash-max-ziplist-entries",
                "hash-max-listpack-value",
                "hash-max-ziplist-value"
            ]
        );
        assert_eq!(
            names("lua-time-limit")[0],
            "lua-time-limit",
            "an alias is shown as asked"
        );
    }

    #[test]
    fn values_are_parsed_and_shown_as_redis_does() {
        let norm =
            |name: &str, value: &str| normalize(lookup(name.as_bytes()).unwrap(), value.as_bytes());
        assert_eq!(norm("maxmemory", "1mb").unwrap(), "1048576");
        assert_eq!(norm("maxmemory", "1GB").unwrap(), "1073741824");
        assert_eq!(norm("maxmemory", "1g").unwrap(), "1000000000");
        assert_eq!(
            norm("maxmemory", "1.5mb").unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            norm("maxmemory", "-1").unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            norm("timeout", "-1").unwrap_err(),
            "argument must be between 0 and 2147483647 inclusive"
        );
        for bad in ["abc", "05", "+5", " 5", "1.5"] {
            assert_eq!(
                norm("timeout", bad).unwrap_err(),
                "argument couldn't be parsed into an integer"
            );
        }
        assert_eq!(
            norm("hash-max-listpack-entries", "-1").unwrap_err(),
            "argument must be between 0 and 9223372036854775807 inclusive"
        );
        assert_eq!(norm("appendonly", "YES").unwrap(), "yes");
        assert_eq!(
            norm("appendonly", "maybe").unwrap_err(),
            "argument must be 'yes' or 'no'"
        );
        assert_eq!(
            norm("maxmemory-policy", "ALLKEYS-LRU").unwrap(),
            "allkeys-lru"
        );
        assert_eq!(
            norm("maxmemory-policy", "foo").unwrap_err(),
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
        );
        assert_eq!(norm("notify-keyspace-events", "KEA").unwrap(), "AKE");
        assert_eq!(norm("notify-keyspace-events", "Ex").unwrap(), "xE");
        assert_eq!(norm("notify-keyspace-events", "").unwrap(), "");
        assert_eq!(
            norm("notify-keyspace-events", "Kg$lshzxet").unwrap(),
            "g$lshzxetK"
        );
        assert_eq!(norm("notify-keyspace-events", "AnmKE").unwrap(), "AKEm");
        assert_eq!(norm("notify-keyspace-events", "mnxK").unwrap(), "xnKm");
        assert_eq!(
            norm("notify-keyspace-events", "Z").unwrap_err(),
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        );
        assert_eq!(norm("save", "").unwrap(), "");
        assert_eq!(norm("save", "10 1 20 2").unwrap(), "10 1 20 2");
        assert_eq!(norm("save", "10").unwrap_err(), "Invalid save parameters");
        assert_eq!(norm("save", "10 x").unwrap_err(), "Invalid save parameters");
        assert_eq!(norm("save", "0 1").unwrap_err(), "Invalid save parameters");
        assert_eq!(
            norm("latency-tracking-info-percentiles", "99.90 50").unwrap(),
            "99.9 50"
        );
        assert_eq!(
            norm("latency-tracking-info-percentiles", "50 x").unwrap_err(),
            "Invalid latency-tracking-info-percentiles parameters"
        );
        assert_eq!(
            norm("latency-tracking-info-percentiles", "101").unwrap_err(),
            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
        );
        assert_eq!(norm("maxmemory-clients", "10%").unwrap(), "10%");
        assert_eq!(norm("maxmemory-clients", "1kb").unwrap(), "1024");
        assert_eq!(norm("maxmemory-clients", "0%").unwrap(), "0");
        assert_eq!(
            norm("maxmemory-clients", "101%").unwrap_err(),
            "percentage argument must be less or equal to 100"
        );
    }

    #[test]
    fn set_is_checked_whole_with_redis_errors() {
        assert_eq!(
            check_set(&args("foo bar")).unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        assert_eq!(
            check_set(&args("timeout x foo bar")).unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
            "names are checked before values"
        );
        assert_eq!(
            check_set(&args("databases 3 foo bar")).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
        );
        assert_eq!(
            check_set(&args("timeout x TIMEOUT 1")).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'TIMEOUT') - duplicate parameter"
        );
        assert_eq!(
            check_set(&args("timeout 1 maxmemory")).unwrap_err(),
            "ERR syntax error"
        );
        assert_eq!(
            check_set(&args("timeout 5 maxmemory 10xb")).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"
        );
        let changes = check_set(&args(
            "hash-max-ziplist-entries 10 hash-max-listpack-entries 11",
        ))
        .unwrap();
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .all(|c| c.param.name == "hash-max-listpack-entries"));
        assert_eq!(changes[1].value, "11");
    }
}
