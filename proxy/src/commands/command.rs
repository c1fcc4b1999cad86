//! COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS/HELP, built from
//! `rampart_proto::command_table` in Redis 7.2's reply shapes, which
//! redis-cli (hints) and cluster-aware client libraries (key positions) read.

use rampart_proto::command_table::{lookup, CommandSpec, COMMANDS};
use rampart_proto::glob::glob_match;
use rampart_proto::{errors, reply, Reply};

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "HELP",
    "    Print this help.",
];

pub fn command(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.first() else {
        return reply::array(COMMANDS.iter().map(info_entry).collect());
    };
    let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let rest = &args[1..];
    match sub_name.as_str() {
        "count" if rest.is_empty() => reply::integer(COMMANDS.len() as i64),
        "info" => {
            if rest.is_empty() {
                return reply::array(COMMANDS.iter().map(info_entry).collect());
            }
            reply::array(
                rest.iter()
                    .map(|name| lookup(name).map(info_entry).unwrap_or_else(reply::null))
                    .collect(),
            )
        }
        "docs" => {
            let specs: Vec<&CommandSpec> = if rest.is_empty() {
                COMMANDS.iter().collect()
            } else {
                rest.iter().filter_map(|name| lookup(name)).collect()
            };
            reply::map(
                specs
                    .into_iter()
                    .map(|s| (reply::bulk(s.name), docs_entry(s)))
                    .collect(),
            )
        }
        "list" => list(rest),
        "getkeys" if !rest.is_empty() => getkeys(rest),
        "help" if rest.is_empty() => reply::array(HELP.iter().map(|l| reply::status(*l)).collect()),
        "count" | "help" | "getkeys" => {
            reply::error(errors::wrong_arity(&format!("command|{sub_name}")))
        }
        _ => reply::error(errors::unknown_subcommand("command", sub)),
    }
}

fn status_set(items: impl IntoIterator<Item = String>) -> Reply {
    reply::set(items.into_iter().map(reply::status).collect())
}

/// Redis 7.2's 10-element command entry.
fn info_entry(spec: &CommandSpec) -> Reply {
    reply::array(vec![
        reply::bulk(spec.name),
        reply::integer(spec.arity as i64),
        status_set(spec.flags.iter().map(|f| f.to_string())),
        reply::integer(spec.first_key as i64),
        reply::integer(spec.last_key as i64),
        reply::integer(spec.step as i64),
        status_set(spec.categories.iter().map(|c| format!("@{c}"))),
        reply::set(Vec::new()),
        key_specs(spec),
        reply::array(Vec::new()),
    ])
}

/// Key specs derived from (first, last, step): one "index" begin-search and a
/// "range" find-keys, which is how Redis describes these simple commands.
fn key_specs(spec: &CommandSpec) -> Reply {
    if spec.first_key <= 0 {
        return reply::array(Vec::new());
    }
    let flags: &[&str] = if spec.is_write() {
        &["RW", "UPDATE"]
    } else {
        &["RO", "ACCESS"]
    };
    let last = if spec.last_key < 0 {
        spec.last_key as i64
    } else {
        (spec.last_key - spec.first_key) as i64
    };
    let kv = |k: &str, v: Reply| (reply::bulk(k), v);
    reply::array(vec![reply::map(vec![
        kv("flags", status_set(flags.iter().map(|f| f.to_string()))),
        kv(
            "begin_search",
            reply::map(vec![
                kv("type", reply::bulk("index")),
                kv(
                    "spec",
                    reply::map(vec![kv("index", reply::integer(spec.first_key as i64))]),
                ),
            ]),
        ),
        kv(
            "find_keys",
            reply::map(vec![
                kv("type", reply::bulk("range")),
                kv(
                    "spec",
                    reply::map(vec![
                        kv("lastkey", reply::integer(last)),
                        kv("keystep", reply::integer(spec.step as i64)),
                        kv("limit", reply::integer(0)),
                    ]),
                ),
            ]),
        ),
    ])])
}

fn docs_entry(spec: &CommandSpec) -> Reply {
    reply::map(vec![
        (reply::bulk("summary"), reply::bulk(spec.summary)),
        (reply::bulk("since"), reply::bulk(spec.since)),
        (reply::bulk("group"), reply::bulk(spec.group)),
    ])
}

fn list(args: &[Vec<u8>]) -> Reply {
    let names = COMMANDS.iter().map(|s| s.name);
    match args {
        [] => reply::bulk_array(names),
        [filterby, kind, value] if filterby.eq_ignore_ascii_case(b"FILTERBY") => {
            let value_text = String::from_utf8_lossy(value).to_ascii_lowercase();
            let kind = String::from_utf8_lossy(kind).to_ascii_uppercase();
            match kind.as_str() {
                "MODULE" => reply::array(Vec::new()),
                "ACLCAT" => reply::bulk_array(
                    COMMANDS
                        .iter()
                        .filter(|s| s.categories.contains(&value_text.as_str()))
                        .map(|s| s.name),
                ),
                "PATTERN" => reply::bulk_array(
                    names.filter(|n| glob_match(value_text.as_bytes(), n.as_bytes())),
                ),
                _ => reply::error(errors::SYNTAX),
            }
        }
        _ => reply::error(errors::SYNTAX),
    }
}

fn getkeys(argv: &[Vec<u8>]) -> Reply {
    let Some(spec) = lookup(&argv[0]) else {
        return reply::error("ERR Invalid command specified");
    };
    if !spec.arity_ok(argv.len()) {
        return reply::error("ERR Invalid number of arguments specified for command");
    }
    let positions = spec.key_positions(argv.len());
    if positions.is_empty() {
        return reply::error("ERR The command has no key arguments");
    }
    reply::bulk_array(positions.into_iter().map(|i| argv[i].clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::text;
    use rampart_proto::pb::reply::Kind;

    fn argv(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn count_equals_the_table_length() {
        assert_eq!(
            text(&command(&argv(&["COUNT"]))),
            format!(":{}", COMMANDS.len())
        );
        let Some(Kind::Array(all)) = command(&[]).kind else {
            panic!()
        };
        assert_eq!(all.items.len(), COMMANDS.len());
    }

    #[test]
    fn info_entry_has_redis_shape() {
        let r = command(&argv(&["INFO", "get", "nosuch"]));
        assert_eq!(
            text(&r),
            "*[*[$get, :2, ~[+readonly, +fast], :1, :1, :1, ~[+@read, +@string, +@fast], ~[], \
             *[%{$flags, ~[+RO, +ACCESS], $begin_search, %{$type, $index, $spec, %{$index, :1}}, \
             $find_keys, %{$type, $range, $spec, %{$lastkey, :0, $keystep, :1, $limit, :0}}}], *[]], _]"
        );
        let mset = text(&command(&argv(&["INFO", "mset"])));
        assert!(mset.contains("$lastkey, :-1, $keystep, :2"), "{mset}");
    }

    #[test]
    fn docs_list_getkeys() {
        let docs = text(&command(&argv(&["DOCS", "get"])));
        assert_eq!(
            docs,
            "%{$get, %{$summary, $Returns the string value of a key., $since, $1.0.0, $group, $string}}"
        );
        assert!(text(&command(&argv(&["LIST"]))).contains("$incrbyfloat"));
        assert_eq!(
            text(&command(&argv(&["LIST", "FILTERBY", "PATTERN", "ge*"]))),
            "*[$get, $getdel, $getex, $getrange, $getset]"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "MSET", "a", "1", "b", "2"]))),
            "*[$a, $b]"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "PING"]))),
            "-ERR The command has no key arguments"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "nosuch"]))),
            "-ERR Invalid command specified"
        );
        assert_eq!(
            text(&command(&argv(&["FOO"]))),
            "-ERR unknown subcommand 'FOO'. Try COMMAND HELP."
        );
        assert_eq!(
            text(&command(&argv(&["COUNT", "x"]))),
            "-ERR wrong number of arguments for 'command|count' command"
        );
    }
}
