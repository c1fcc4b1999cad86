//! COMMAND GETKEYS / GETKEYSANDFLAGS and the key specs of COMMAND INFO,
//! through a real proxy. The expectations are Redis's own answers; ACL key
//! patterns and hash-slot routing will rely on exactly these keys.
//!
//! `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT cargo test --test command_keys`
//! runs the same expectations against a real Redis; and where
//! `redis-server` is installed, `key_specs_match_a_real_redis_server`
//! compares every command's key specs with it.

mod common;

use common::{connect, query, render, shared_target, start_redis_server};

/// (command, GETKEYSANDFLAGS answer as "key flag|flag; ...", or "-ERR ...").
/// Checked against redis-server (Debian's 7.0.15) with the same command.
const CASES: &[(&str, &str)] = &[
    ("GET k", "k RO|access"),
    ("SET k v", "k OW|update"),
    ("SET k v GET", "k RW|access|update"),
    ("SET k v EX 10 get", "k RW|access|update"),
    ("MSET a 1 b 2", "a OW|update; b OW|update"),
    ("DEL a b", "a RM|delete; b RM|delete"),
    ("LMOVE a b LEFT RIGHT", "a RW|access|delete; b RW|insert"),
    (
        "EVAL s 2 k1 k2 a",
        "k1 RW|access|update; k2 RW|access|update",
    ),
    ("EVAL s 0", ""),
    ("EVAL s -1 a", ""),
    ("EVALSHA_RO abc 1 k", "k RO|access"),
    (
        "ZUNIONSTORE d 2 a b WEIGHTS 1 2",
        "d OW|update; a RO|access; b RO|access",
    ),
    (
        "ZUNIONSTORE d 3 a b",
        "-ERR Invalid arguments specified for command",
    ),
    // Redis's fallback rule reads "2x" as 2 and gives flagless keys.
    ("ZUNIONSTORE d 2x a b", "a ; b ; d "),
    ("ZINTER 2 a b", "a RO|access; b RO|access"),
    (
        "XREAD COUNT 1 BLOCK 0 STREAMS s1 s2 0 0",
        "s1 RO|access; s2 RO|access",
    ),
    ("XREAD STREAMS s 0 1", "s RO|access"),
    ("XREADGROUP GROUP g c STREAMS s >", "s RO|access"),
    (
        "XREADGROUP GROUP streams STREAMS STREAMS s >",
        "s RO|access",
    ),
    ("XGROUP CREATE s g $ MKSTREAM", "s RW|insert"),
    ("XGROUP HELP", "-ERR The command has no key arguments"),
    ("XINFO STREAM s FULL", "s RO|access"),
    ("OBJECT ENCODING k", "k RO"),
    (
        "BLMPOP 0 2 a b LEFT",
        "a RW|access|delete; b RW|access|delete",
    ),
    ("BZPOPMIN a b 0", "a RW|access|delete; b RW|access|delete"),
    ("SPUBLISH ch m", "-ERR The command has no key arguments"),
    ("NOSUCH k", "-ERR Invalid command specified"),
    ("XGROUP NOSUCH s", "-ERR Invalid command specified"),
    ("SINTERCARD 2 a b LIMIT 1", "a RO|access; b RO|access"),
    ("RENAME a b", "a RW|access|delete; b OW|update"),
    ("COPY a b", "a RO|access; b OW|update"),
    ("WATCH a b", "a RO; b RO"),
    ("SINTERSTORE d a b", "d RW|update; a RO|access; b RO|access"),
    ("ZRANGESTORE d s 0 -1", "d OW|update; s RO|access"),
    ("LMPOP 1 l LEFT COUNT 2", "l RW|access|delete"),
    ("GETEX k PERSIST", "k RW|access|update"),
    ("XADD s * f v", "s RW|update"),
    ("HSET h f v", "h RW|update"),
    ("INCR n", "n RW|access|update"),
    ("EXPIRE k 10", "k RW|update"),
    ("SMOVE a b m", "a RW|access|delete; b RW|insert"),
    ("KEYS *", "-ERR The command has no key arguments"),
    ("BITFIELD k GET u8 0 OVERFLOW SAT", "k RO|access"),
    ("BITFIELD k GET u8 0 INCRBY u8 0 1", "k RW|access|update"),
    ("BITFIELD k GET u8", "k RW|access|update"),
    ("BITOP AND d a b", "d OW|update; a RO|access; b RO|access"),
    ("LCS a b IDX", "a RO|access; b RO|access"),
    // SORT's specs are "unknown" past the key: Redis's sortGetKeys decides.
    ("SORT k BY w_* GET # STORE d", "k RO|access; d OW|update"),
    ("SORT k LIMIT store x STORE d2", "k RO|access; d2 OW|update"),
    ("SORT k store a store b", "k RO|access; b OW|update"),
    ("SORT_RO k BY w_* GET #", "k RO|access"),
    ("TOUCH a b", "a RO; b RO"),
];

/// A GETKEYSANDFLAGS reply in the compact form of [`CASES`].
fn compact(reply: &redis::Value) -> String {
    use redis::Value as V;
    let word = |v: &V| match v {
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        V::SimpleString(s) => s.clone(),
        other => render(other),
    };
    match reply {
        V::Array(keys) => keys
            .iter()
            .map(|entry| match entry {
                V::Array(pair) if pair.len() == 2 => {
                    let flags = match &pair[1] {
                        V::Array(f) | V::Set(f) => f.iter().map(word).collect::<Vec<_>>(),
                        other => vec![render(other)],
                    };
                    format!("{} {}", word(&pair[0]), flags.join("|"))
                }
                other => render(other),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => render(other),
    }
}

fn getkeys_and_flags(con: &mut redis::Connection, command: &str) -> String {
    let mut args = vec!["COMMAND", "GETKEYSANDFLAGS"];
    args.extend(command.split_whitespace());
    compact(&query(con, &args))
}

#[test]
fn getkeysandflags_answer_as_redis_does() {
    let mut con = shared_target().connection();
    for (command, expected) in CASES {
        assert_eq!(getkeys_and_flags(&mut con, command), *expected, "{command}");
    }
}

#[test]
fn getkeys_lists_the_same_keys_without_flags() {
    let mut con = shared_target().connection();
    for (command, expected) in CASES {
        let mut args = vec!["COMMAND", "GETKEYS"];
        args.extend(command.split_whitespace());
        let got = render(&query(&mut con, &args));
        let want = if expected.starts_with('-') {
            expected.to_string()
        } else {
            let keys: Vec<String> = expected
                .split("; ")
                .filter(|k| !k.is_empty())
                .map(|k| format!("{:?}", k.split(' ').next().unwrap_or("")))
                .collect();
            format!("[{}]", keys.join(", "))
        };
        assert_eq!(got, want, "{command}");
    }
}

/// The names of every command and subcommand Rampart reports.
fn rampart_commands(con: &mut redis::Connection) -> Vec<String> {
    match query(con, &["COMMAND", "LIST"]) {
        redis::Value::Array(names) => names
            .iter()
            .map(|n| match n {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => render(other),
            })
            .collect(),
        other => panic!("COMMAND LIST answered {}", render(&other)),
    }
}

/// COMMAND INFO's legacy key range (elements 3-5) and key specs (element 8)
/// of `name`, or of its subcommand (`parent|sub`).
fn key_facts(con: &mut redis::Connection, name: &str) -> String {
    use redis::Value as V;
    let (parent, sub) = match name.split_once('|') {
        Some((p, _)) => (p, Some(name)),
        None => (name, None),
    };
    let V::Array(entries) = query(con, &["COMMAND", "INFO", parent]) else {
        panic!("COMMAND INFO {parent}");
    };
    let Some(V::Array(mut entry)) = entries.into_iter().next() else {
        return format!("{name}: unknown");
    };
    if let Some(sub) = sub {
        let V::Array(subs) = entry[9].clone() else {
            panic!("{parent}: no subcommand list");
        };
        let found = subs.into_iter().find_map(|s| match s {
            V::Array(e) if render(&e[0]).trim_matches('"') == sub => Some(e),
            _ => None,
        });
        match found {
            Some(e) => entry = e,
            None => return format!("{name}: unknown"),
        }
    }
    format!(
        "{name}: range {} {} {}, specs {}",
        render(&entry[3]),
        render(&entry[4]),
        render(&entry[5]),
        render(&entry[8])
    )
}

#[test]
fn key_specs_match_a_real_redis_server() {
    let target = shared_target();
    if !target.is_rampart() {
        return; // comparing Redis with itself proves nothing
    }
    let Some(redis) = start_redis_server() else {
        eprintln!("redis-server is not installed: nothing to compare with (./dev.sh installs it)");
        return;
    };
    let mut ours = connect(&target.addr, Some("protocol=resp3"));
    let mut theirs = connect(&redis.addr, Some("protocol=resp3"));
    let names = rampart_commands(&mut ours);
    assert!(names.len() > 150, "COMMAND LIST: {names:?}");
    let mut compared = 0;
    for name in names.iter().filter(|n| !n.starts_with("rampart.")) {
        let expected = key_facts(&mut theirs, name);
        if expected.ends_with(": unknown") {
            continue; // Redis 7.2 only: nothing to compare with
        }
        assert_eq!(key_facts(&mut ours, name), expected);
        compared += 1;
    }
    assert!(compared > 150);
    let mut ours = connect(&target.addr, None);
    let mut theirs = connect(&redis.addr, None);
    for (command, _) in CASES {
        assert_eq!(
            getkeys_and_flags(&mut ours, command),
            getkeys_and_flags(&mut theirs, command),
            "{command}"
        );
    }
}

/// `reply` as text with map entries and set members sorted, so replies
/// whose dictionaries Redis walks in hash order compare equal. Left out:
/// summaries (Rampart's rows carry Redis 7.2's wording, the installed
/// server may be older) and subcommand maps (Rampart implements a subset of
/// some containers' subcommands; each one it has is compared on its own).
fn canonical(reply: &redis::Value) -> String {
    use redis::Value as V;
    match reply {
        V::Map(pairs) => {
            let mut items: Vec<String> = pairs
                .iter()
                .filter(|(k, _)| !matches!(k, V::BulkString(b) if b == b"summary" || b == b"subcommands"))
                .map(|(k, v)| format!("{}: {}", canonical(k), canonical(v)))
                .collect();
            items.sort();
            format!("{{{}}}", items.join(", "))
        }
        V::Set(members) => {
            let mut items: Vec<String> = members.iter().map(canonical).collect();
            items.sort();
            format!("~[{}]", items.join(", "))
        }
        V::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(", "))
        }
        other => render(other),
    }
}

#[test]
fn command_docs_match_a_real_redis_server() {
    let target = shared_target();
    if !target.is_rampart() {
        return;
    }
    let Some(redis) = start_redis_server() else {
        eprintln!("redis-server is not installed: nothing to compare with (./dev.sh installs it)");
        return;
    };
    let mut ours = connect(&target.addr, Some("protocol=resp3"));
    let mut theirs = connect(&redis.addr, Some("protocol=resp3"));
    let names = rampart_commands(&mut ours);
    let (mut compared, mut newer) = (0, Vec::new());
    let mut differ = Vec::new();
    for name in names.iter().filter(|n| !n.starts_with("rampart.")) {
        let docs = |con: &mut redis::Connection| query(con, &["COMMAND", "DOCS", name]);
        let (ours, theirs) = (docs(&mut ours), docs(&mut theirs));
        if matches!(&theirs, redis::Value::Map(m) if m.is_empty()) {
            newer.push(name.clone()); // Redis 7.2 only: nothing to compare with
            continue;
        }
        let (ours, theirs) = (canonical(&ours), canonical(&theirs));
        if ours != theirs {
            differ.push(format!(
                "COMMAND DOCS {name}\n ours:   {ours}\n theirs: {theirs}"
            ));
        }
        compared += 1;
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(compared > 150, "compared {compared}");
    eprintln!("compared {compared}; newer than the server: {newer:?}");
}
