//! COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS/HELP, built from
//! `rampart_proto::command_table` in Redis 7.2's reply shapes, which
//! redis-cli (hints) and cluster-aware client libraries (key positions) read.

use rampart_proto::command_docs::{self, Arg};
use rampart_proto::command_table::{lookup_argv, lookup_name, CommandSpec, COMMANDS};
use rampart_proto::glob::glob_match;
use rampart_proto::key_spec::{BeginSearch, FindKeys, KeyFlags, KeySpec};
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
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
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
                    .map(|name| {
                        lookup_name(name)
                            .map(info_entry)
                            .unwrap_or_else(reply::null)
                    })
                    .collect(),
            )
        }
        "docs" => {
            let specs: Vec<&CommandSpec> = if rest.is_empty() {
                COMMANDS.iter().collect()
            } else {
                rest.iter().filter_map(|name| lookup_name(name)).collect()
            };
            reply::map(
                specs
                    .into_iter()
                    .map(|s| (reply::bulk(s.name), docs_entry(s)))
                    .collect(),
            )
        }
        "list" => list(rest),
        "getkeys" if !rest.is_empty() => getkeys(rest, false),
        "getkeysandflags" if !rest.is_empty() => getkeys(rest, true),
        "help" if rest.is_empty() => reply::array(HELP.iter().map(|l| reply::status(*l)).collect()),
        "count" | "help" | "getkeys" | "getkeysandflags" => {
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
    let (first, last, step) = spec.legacy_range();
    reply::array(vec![
        reply::bulk(spec.name),
        reply::integer(spec.arity as i64),
        status_set(spec.flags.iter().map(|f| f.to_string())),
        reply::integer(first as i64),
        reply::integer(last as i64),
        reply::integer(step as i64),
        status_set(spec.categories.iter().map(|c| format!("@{c}"))),
        reply::set(Vec::new()),
        reply::set(spec.keys.iter().map(key_spec_entry).collect()),
        reply::array(spec.subcommands.iter().map(info_entry).collect()),
    ])
}

/// One field of a RESP3 map reply.
fn kv(name: &str, value: Reply) -> (Reply, Reply) {
    (reply::bulk(name), value)
}

fn key_flags(flags: KeyFlags) -> Reply {
    status_set(flags.names().into_iter().map(str::to_string))
}

/// One key spec in `COMMAND INFO`'s shape.
fn key_spec_entry(spec: &KeySpec) -> Reply {
    let int = |v: i64| reply::integer(v);
    let begin = match spec.begin {
        BeginSearch::Index(index) => reply::map(vec![
            kv("type", reply::bulk("index")),
            kv("spec", reply::map(vec![kv("index", int(index as i64))])),
        ]),
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => reply::map(vec![
            kv("type", reply::bulk("keyword")),
            kv(
                "spec",
                reply::map(vec![
                    kv("keyword", reply::bulk(keyword)),
                    kv("startfrom", int(start_from as i64)),
                ]),
            ),
        ]),
        BeginSearch::Unknown => unknown_search(),
    };
    let find = match spec.find {
        FindKeys::Range {
            last_key,
            key_step,
            limit,
        } => reply::map(vec![
            kv("type", reply::bulk("range")),
            kv(
                "spec",
                reply::map(vec![
                    kv("lastkey", int(last_key as i64)),
                    kv("keystep", int(key_step as i64)),
                    kv("limit", int(limit as i64)),
                ]),
            ),
        ]),
        FindKeys::Keynum {
            keynum_index,
            first_key,
            key_step,
        } => reply::map(vec![
            kv("type", reply::bulk("keynum")),
            kv(
                "spec",
                reply::map(vec![
                    kv("keynumidx", int(keynum_index as i64)),
                    kv("firstkey", int(first_key as i64)),
                    kv("keystep", int(key_step as i64)),
                ]),
            ),
        ]),
        FindKeys::Unknown => unknown_search(),
    };
    let mut fields = Vec::with_capacity(4);
    if !spec.notes.is_empty() {
        fields.push(kv("notes", reply::bulk(spec.notes)));
    }
    fields.push(kv("flags", key_flags(spec.flags)));
    fields.push(kv("begin_search", begin));
    fields.push(kv("find_keys", find));
    reply::map(fields)
}

/// Redis's `unknown` begin_search / find_keys: the type and an empty spec.
fn unknown_search() -> Reply {
    reply::map(vec![
        kv("type", reply::bulk("unknown")),
        kv("spec", reply::map(Vec::new())),
    ])
}

fn docs_entry(spec: &CommandSpec) -> Reply {
    let mut fields = vec![
        kv("summary", reply::bulk(spec.summary)),
        kv("since", reply::bulk(spec.since)),
        kv("group", reply::bulk(spec.group)),
    ];
    if let Some(docs) = command_docs::docs(spec.name) {
        fields.push(kv("complexity", reply::bulk(docs.complexity)));
        if !docs.doc_flags.is_empty() {
            let flags = docs.doc_flags.iter().map(|f| reply::status(*f)).collect();
            fields.push(kv("doc_flags", reply::set(flags)));
        }
        if let Some(version) = docs.deprecated_since {
            fields.push(kv("deprecated_since", reply::bulk(version)));
        }
        if let Some(other) = docs.replaced_by {
            fields.push(kv("replaced_by", reply::bulk(other)));
        }
        if !docs.history.is_empty() {
            // A set of pairs, as Redis 7 replies.
            let history = docs
                .history
                .iter()
                .map(|(version, change)| reply::bulk_array([*version, *change]))
                .collect();
            fields.push(kv("history", reply::set(history)));
        }
        if !docs.arguments.is_empty() {
            fields.push(kv("arguments", arguments(docs.arguments)));
        }
    }
    if !spec.subcommands.is_empty() {
        fields.push(kv(
            "subcommands",
            reply::map(
                spec.subcommands
                    .iter()
                    .map(|sub| (reply::bulk(sub.name), docs_entry(sub)))
                    .collect(),
            ),
        ));
    }
    reply::map(fields)
}

/// Argument specs in Redis's field order.
fn arguments(args: &[Arg]) -> Reply {
    let entry = |arg: &Arg| {
        let mut fields = vec![
            kv("name", reply::bulk(arg.name)),
            kv("type", reply::bulk(arg.kind.name())),
        ];
        if let Some(text) = arg.display_text {
            fields.push(kv("display_text", reply::bulk(text)));
        }
        if let Some(index) = arg.key_spec_index {
            fields.push(kv("key_spec_index", reply::integer(i64::from(index))));
        }
        let optional = [
            ("token", arg.token),
            ("summary", arg.summary),
            ("since", arg.since),
            ("deprecated_since", arg.deprecated_since),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                fields.push(kv(name, reply::bulk(value)));
            }
        }
        if arg.flags != 0 {
            let flags = arg.flag_names().map(reply::status).collect();
            fields.push(kv("flags", reply::set(flags)));
        }
        if !arg.arguments.is_empty() {
            fields.push(kv("arguments", arguments(arg.arguments)));
        }
        reply::map(fields)
    };
    reply::array(args.iter().map(entry).collect())
}

/// Every command and subcommand, as `COMMAND LIST` names them.
fn all_specs() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS
        .iter()
        .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands))
}

fn list(args: &[Vec<u8>]) -> Reply {
    let names = all_specs().map(|s| s.name);
    match args {
        [] => reply::bulk_array(names),
        [filterby, kind, value] if filterby.eq_ignore_ascii_case(b"FILTERBY") => {
            let value_text = String::from_utf8_lossy(value).to_ascii_lowercase();
            let kind = String::from_utf8_lossy(kind).to_ascii_uppercase();
            match kind.as_str() {
                "MODULE" => reply::array(Vec::new()),
                "ACLCAT" => reply::bulk_array(
                    all_specs()
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

/// COMMAND GETKEYS / GETKEYSANDFLAGS, with Redis 7.2's checks in its order.
fn getkeys(argv: &[Vec<u8>], with_flags: bool) -> Reply {
    let Some(spec) = lookup_argv(argv) else {
        return reply::error("ERR Invalid command specified");
    };
    if !spec.has_keys() {
        return reply::error("ERR The command has no key arguments");
    }
    if !spec.arity_ok(argv.len()) {
        return reply::error("ERR Invalid number of arguments specified for command");
    }
    let keys = spec.find_keys(argv);
    if keys.is_empty() && !spec.flags.contains(&"no_mandatory_keys") {
        return reply::error("ERR Invalid arguments specified for command");
    }
    reply::array(
        keys.into_iter()
            .map(|key| {
                let name = reply::bulk(argv[key.pos].clone());
                if with_flags {
                    reply::array(vec![name, key_flags(key.flags)])
                } else {
                    name
                }
            })
            .collect(),
    )
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
             ~[%{$flags, ~[+RO, +access], $begin_search, %{$type, $index, $spec, %{$index, :1}}, \
             $find_keys, %{$type, $range, $spec, %{$lastkey, :0, $keystep, :1, $limit, :0}}}], *[]], _]"
        );
        let mset = text(&command(&argv(&["INFO", "mset"])));
        assert!(mset.contains("$lastkey, :-1, $keystep, :2"), "{mset}");
        let xread = text(&command(&argv(&["INFO", "xread"])));
        assert!(
            xread.contains(
                "$begin_search, %{$type, $keyword, $spec, %{$keyword, $STREAMS, $startfrom, :1}}"
            ),
            "{xread}"
        );
        let xgroup = text(&command(&argv(&["INFO", "xgroup"])));
        assert!(
            xgroup.starts_with("*[*[$xgroup, :-2, ~[], :0, :0, :0"),
            "{xgroup}"
        );
        assert!(xgroup.contains("*[$xgroup|create, :-5"), "{xgroup}");
        let eval = text(&command(&argv(&["INFO", "eval"])));
        assert!(eval.contains("%{$notes, $We cannot tell"), "{eval}");
    }

    #[test]
    fn docs_list_getkeys() {
        let docs = text(&command(&argv(&["DOCS", "get"])));
        assert_eq!(
            docs,
            "%{$get, %{$summary, $Returns the string value of a key., $since, $1.0.0, $group, $string, \
             $complexity, $O(1), $arguments, *[%{$name, $key, $type, $key, $key_spec_index, :0}]}}"
        );
        let xinfo = text(&command(&argv(&["DOCS", "xinfo"])));
        assert!(
            xinfo.contains("$subcommands, %{$xinfo|consumers, %{$summary"),
            "{xinfo}"
        );
        let list = text(&command(&argv(&["LIST"])));
        assert!(
            list.contains("$incrbyfloat") && list.contains("$xgroup|create"),
            "{list}"
        );
        assert_eq!(
            text(&command(&argv(&["LIST", "FILTERBY", "PATTERN", "get*"]))),
            "*[$get, $getbit, $getdel, $getex, $getrange, $getset]"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "MSET", "a", "1", "b", "2"]))),
            "*[$a, $b]"
        );
        assert_eq!(
            text(&command(&argv(&[
                "GETKEYSANDFLAGS",
                "LMOVE",
                "a",
                "b",
                "LEFT",
                "RIGHT"
            ]))),
            "*[*[$a, ~[+RW, +access, +delete]], *[$b, ~[+RW, +insert]]]"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "EVAL", "s", "0"]))),
            "*[]",
            "EVAL may have no keys"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "ZUNIONSTORE", "d", "5", "a"]))),
            "-ERR Invalid arguments specified for command"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "GET"]))),
            "-ERR Invalid number of arguments specified for command"
        );
        assert_eq!(
            text(&command(&argv(&[
                "GETKEYS", "XGROUP", "CREATE", "s", "g", "$"
            ]))),
            "*[$s]"
        );
        assert_eq!(
            text(&command(&argv(&["GETKEYS", "XGROUP", "NOSUCH", "s"]))),
            "-ERR Invalid command specified"
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
