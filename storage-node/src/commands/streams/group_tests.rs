//! Consumer-group commands against a real engine, with the clock (`now`)
//! under the test's control: PEL and consumer bookkeeping, idle times,
//! claims, lag, and the same results on a legacy-layout stream.

use crate::commands::test_support::{check, show, Node};

const T: i64 = 1_700_000_000_000;

fn run(node: &Node, now: i64, cmd: &str) -> String {
    show(&node.run(now, cmd))
}

/// A stream `s` with entries 1-0..=n-0 (field `f`, value = ms) and group `g` at 0.
fn stream_with_group(node: &Node, n: u64) {
    for ms in 1..=n {
        assert_eq!(
            run(node, T, &format!("XADD s {ms}-0 f {ms}")),
            format!("\"{ms}-0\"")
        );
    }
    assert_eq!(run(node, T, "XGROUP CREATE s g 0"), "+OK");
}

#[test]
fn xgroup_subcommands_and_errors() {
    let node = Node::new();
    check(
        &node,
        T,
        &[
            ("XGROUP CREATE s g $", "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."),
            ("XGROUP CREATE s g $ MKSTREAM", "+OK"),
            ("XGROUP CREATE s g $ MKSTREAM", "-BUSYGROUP Consumer Group name already exists"),
            ("XGROUP CREATE s g2 + ", "-ERR Invalid stream ID specified as stream command argument"),
            ("XGROUP CREATE s g2 0 foo", "-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."),
            ("XGROUP create s", "-ERR wrong number of arguments for 'xgroup|create' command"),
            ("XGROUP foo", "-ERR unknown subcommand 'foo'. Try XGROUP HELP."),
            ("XGROUP SETID s nog 0", "-NOGROUP No such consumer group 'nog' for key name 's'"),
            ("XGROUP CREATECONSUMER s nog c", "-NOGROUP No such consumer group 'nog' for key name 's'"),
            ("XGROUP DELCONSUMER s nog c", "-NOGROUP No such consumer group 'nog' for key name 's'"),
            ("XGROUP DESTROY s nog", ":0"),
            ("XGROUP DESTROY nokey g", "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."),
            ("XGROUP SETID s g $ ENTRIESREAD", "-ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."),
            ("XGROUP SETID s g $ ENTRIESREAD -2", "-ERR value for ENTRIESREAD must be positive or -1"),
            ("XGROUP SETID s g $ ENTRIESREAD x", "-ERR value is not an integer or out of range"),
            ("XGROUP SETID s g $ MKSTREAM", "-ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP."),
            ("XGROUP SETID s g -", "+OK"),
            ("XGROUP HELP x", "-ERR wrong number of arguments for 'xgroup|help' command"),
            ("SET str v", "+OK"),
            ("XGROUP CREATE str g $", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
            ("XGROUP CREATECONSUMER s g alice", ":1"),
            ("XGROUP CREATECONSUMER s g alice", ":0"),
            ("XGROUP DELCONSUMER s g bob", ":0"),
            ("XGROUP DELCONSUMER s g alice", ":0"),
            ("XGROUP CREATE s a 0 ENTRIESREAD 0", "+OK"),
            // Groups are listed in name order.
            ("XINFO GROUPS s", "[[\"name\", \"a\", \"consumers\", :0, \"pending\", :0, \"last-delivered-id\", \"0-0\", \"entries-read\", :0, \"lag\", :0], [\"name\", \"g\", \"consumers\", :0, \"pending\", :0, \"last-delivered-id\", \"0-0\", \"entries-read\", nil, \"lag\", :0]]"),
            ("XGROUP DESTROY s a", ":1"),
            ("XGROUP DESTROY s a", ":0"),
            ("TYPE s", "+stream"),
        ],
    );
    let help = run(&node, T, "XGROUP HELP");
    assert!(
        help.starts_with(
            "[+XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:, +CREATE"
        ),
        "{help}"
    );
    assert!(help.ends_with("+HELP, +    Prints this help.]"), "{help}");
}

#[test]
fn two_consumers_share_a_group_and_ack() {
    let node = Node::new();
    stream_with_group(&node, 3);
    check(
        &node,
        T + 10,
        &[
            (
                "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
                "[[\"s\", [[\"1-0\", [\"f\", \"1\"]]]]]",
            ),
            (
                "XREADGROUP GROUP g bob STREAMS s >",
                "[[\"s\", [[\"2-0\", [\"f\", \"2\"]], [\"3-0\", [\"f\", \"3\"]]]]]",
            ),
            // Nothing new: a null array (what BLOCK waits on).
            ("XREADGROUP GROUP g alice STREAMS s >", "nil"),
            (
                "XPENDING s g",
                "[:3, \"1-0\", \"3-0\", [[\"alice\", \"1\"], [\"bob\", \"2\"]]]",
            ),
        ],
    );
    check(
        &node,
        T + 110,
        &[
            ("XPENDING s g - + 10", "[[\"1-0\", \"alice\", :100, :1], [\"2-0\", \"bob\", :100, :1], [\"3-0\", \"bob\", :100, :1]]"),
            ("XPENDING s g - + 10 bob", "[[\"2-0\", \"bob\", :100, :1], [\"3-0\", \"bob\", :100, :1]]"),
            ("XPENDING s g - + 10 nobody", "[]"),
            ("XPENDING s g (1-0 + 1", "[[\"2-0\", \"bob\", :100, :1]]"),
            ("XPENDING s g IDLE 101 - + 10", "[]"),
            ("XPENDING s g IDLE 100 - + 0", "[]"),
            ("XACK s g 2-0 2-0 9-0", ":1"),
            ("XACK s g 1-0 x", "-ERR Invalid stream ID specified as stream command argument"),
            ("XACK s nog x", ":0"),
            ("XACK nokey g x", ":0"),
            ("XPENDING s g", "[:2, \"1-0\", \"3-0\", [[\"alice\", \"1\"], [\"bob\", \"1\"]]]"),
            ("XINFO GROUPS s", "[[\"name\", \"g\", \"consumers\", :2, \"pending\", :2, \"last-delivered-id\", \"3-0\", \"entries-read\", :3, \"lag\", :0]]"),
            ("XINFO CONSUMERS s g", "[[\"name\", \"alice\", \"pending\", :1, \"idle\", :100, \"inactive\", :100], [\"name\", \"bob\", \"pending\", :1, \"idle\", :100, \"inactive\", :100]]"),
            ("XACK s g 1-0 3-0", ":2"),
            ("XPENDING s g", "[:0, nil, nil, nil]"),
            ("XADD s 4-0 f 4", "\"4-0\""),
            ("XINFO GROUPS s", "[[\"name\", \"g\", \"consumers\", :2, \"pending\", :0, \"last-delivered-id\", \"3-0\", \"entries-read\", :3, \"lag\", :1]]"),
        ],
    );
}

#[test]
fn history_reads_noack_and_deleted_entries() {
    let node = Node::new();
    stream_with_group(&node, 3);
    check(
        &node,
        T,
        &[
            (
                "XREADGROUP GROUP g c COUNT 2 STREAMS s >",
                "[[\"s\", [[\"1-0\", [\"f\", \"1\"]], [\"2-0\", [\"f\", \"2\"]]]]]",
            ),
            ("XDEL s 1-0", ":1"),
            // History: the consumer's own PEL, deleted entries as [id, nil].
            (
                "XREADGROUP GROUP g c STREAMS s 0",
                "[[\"s\", [[\"1-0\", nil], [\"2-0\", [\"f\", \"2\"]]]]]",
            ),
            (
                "XREADGROUP GROUP g c COUNT 1 STREAMS s 1-0",
                "[[\"s\", [[\"2-0\", [\"f\", \"2\"]]]]]",
            ),
            ("XREADGROUP GROUP g other STREAMS s 0", "[[\"s\", []]]"),
            (
                "XPENDING s g - + 10",
                "[[\"1-0\", \"c\", :0, :1], [\"2-0\", \"c\", :0, :3]]",
            ),
            // NOACK: delivered, nothing pending.
            (
                "XREADGROUP GROUP g c NOACK STREAMS s >",
                "[[\"s\", [[\"3-0\", [\"f\", \"3\"]]]]]",
            ),
            ("XPENDING s g", "[:2, \"1-0\", \"2-0\", [[\"c\", \"2\"]]]"),
            // XDEL does not touch the PEL; DELCONSUMER drops it.
            ("XGROUP DELCONSUMER s g c", ":2"),
            ("XPENDING s g", "[:0, nil, nil, nil]"),
            (
                "XINFO CONSUMERS s g",
                "[[\"name\", \"other\", \"pending\", :0, \"idle\", :0, \"inactive\", :-1]]",
            ),
        ],
    );
}

#[test]
fn xreadgroup_argument_errors() {
    let node = Node::new();
    stream_with_group(&node, 1);
    check(
        &node,
        T,
        &[
            ("XREADGROUP GROUP g c STREAMS s $", "-ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."),
            ("XREADGROUP GROUP nog c STREAMS s >", "-NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option"),
            ("XREADGROUP GROUP g c STREAMS nokey >", "-NOGROUP No such key 'nokey' or consumer group 'g' in XREADGROUP with GROUP option"),
            ("XREADGROUP GROUP g c COUNT x STREAMS s >", "-ERR value is not an integer or out of range"),
            ("XREADGROUP GROUP g c BLOCK x STREAMS s >", "-ERR timeout is not an integer or out of range"),
            ("XREADGROUP GROUP g c BLOCK -1 STREAMS s >", "-ERR timeout is negative"),
            ("XREADGROUP GROUP g c FOO STREAMS s >", "-ERR syntax error"),
            ("XREADGROUP GROUP g c STREAMS s + ", "-ERR Invalid stream ID specified as stream command argument"),
            ("XREADGROUP GROUP g c STREAMS s > >", "-ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."),
            ("XREADGROUP COUNT 1 NOACK STREAMS s >", "-ERR Missing GROUP option for XREADGROUP"),
            ("XREADGROUP GROUP g c COUNT 1 BLOCK 10", "-ERR syntax error"),
            ("SET str v", "+OK"),
            ("XREADGROUP GROUP g c STREAMS str >", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
            // BLOCK is parsed, never waited on here.
            ("XREADGROUP GROUP g c BLOCK 0 COUNT -5 STREAMS s s > >", "[[\"s\", [[\"1-0\", [\"f\", \"1\"]]]]]"),
            ("XREADGROUP GROUP g c BLOCK 100 STREAMS s >", "nil"),
        ],
    );
}

#[test]
fn setid_back_redelivers_to_the_new_reader() {
    let node = Node::new();
    stream_with_group(&node, 2);
    check(
        &node,
        T,
        &[
            ("XREADGROUP GROUP g a STREAMS s >", "[[\"s\", [[\"1-0\", [\"f\", \"1\"]], [\"2-0\", [\"f\", \"2\"]]]]]"),
            ("XGROUP SETID s g 1-0", "+OK"),
            ("XREADGROUP GROUP g b STREAMS s >", "[[\"s\", [[\"2-0\", [\"f\", \"2\"]]]]]"),
            ("XPENDING s g", "[:2, \"1-0\", \"2-0\", [[\"a\", \"1\"], [\"b\", \"1\"]]]"),
            ("XPENDING s g - + 10 a", "[[\"1-0\", \"a\", :0, :1]]"),
            ("XINFO GROUPS s", "[[\"name\", \"g\", \"consumers\", :2, \"pending\", :2, \"last-delivered-id\", \"2-0\", \"entries-read\", :2, \"lag\", :0]]"),
        ],
    );
}

#[test]
fn xclaim_moves_idle_entries() {
    let node = Node::new();
    stream_with_group(&node, 3);
    check(
        &node,
        T,
        &[("XREADGROUP GROUP g a STREAMS s >", "[[\"s\", [[\"1-0\", [\"f\", \"1\"]], [\"2-0\", [\"f\", \"2\"]], [\"3-0\", [\"f\", \"3\"]]]]]")],
    );
    check(
        &node,
        T + 500,
        &[
            // Not idle long enough.
            ("XCLAIM s g b 1000 1-0", "[]"),
            ("XCLAIM s g b 400 1-0 9-0", "[[\"1-0\", [\"f\", \"1\"]]]"),
            ("XPENDING s g - + 10", "[[\"1-0\", \"b\", :0, :2], [\"2-0\", \"a\", :500, :1], [\"3-0\", \"a\", :500, :1]]"),
            // JUSTID does not count a delivery; IDLE sets the idle time.
            ("XCLAIM s g b 0 2-0 IDLE 50 JUSTID", "[\"2-0\"]"),
            ("XCLAIM s g b 0 3-0 TIME 1 RETRYCOUNT 7", "[[\"3-0\", [\"f\", \"3\"]]]"),
            ("XPENDING s g - + 10", "[[\"1-0\", \"b\", :0, :2], [\"2-0\", \"b\", :50, :1], [\"3-0\", \"b\", :1700000000499, :7]]"),
            ("XPENDING s g", "[:3, \"1-0\", \"3-0\", [[\"b\", \"3\"]]]"),
            // A deleted entry leaves the PEL instead of being claimed.
            ("XDEL s 2-0", ":1"),
            ("XCLAIM s g a 0 2-0", "[]"),
            ("XPENDING s g", "[:2, \"1-0\", \"3-0\", [[\"b\", \"2\"]]]"),
            // FORCE creates a PEL entry for an existing entry only.
            ("XADD s 4-0 f 4", "\"4-0\""),
            ("XCLAIM s g a 0 4-0 2-0 FORCE", "[[\"4-0\", [\"f\", \"4\"]]]"),
            ("XPENDING s g - + 10 a", "[[\"4-0\", \"a\", :0, :2]]"),
            ("XCLAIM s g a 0 1-0 LASTID 9-0 JUSTID", "[\"1-0\"]"),
            ("XINFO GROUPS s", "[[\"name\", \"g\", \"consumers\", :2, \"pending\", :3, \"last-delivered-id\", \"9-0\", \"entries-read\", :3, \"lag\", :1]]"),
            ("XCLAIM s nog a 0 1-0", "-NOGROUP No such key 's' or consumer group 'nog'"),
            ("XCLAIM nokey g a x 1-0", "-NOGROUP No such key 'nokey' or consumer group 'g'"),
            ("XCLAIM s g a x 1-0", "-ERR Invalid min-idle-time argument for XCLAIM"),
            ("XCLAIM s g a 0 1-0 IDLE x", "-ERR Invalid IDLE option argument for XCLAIM"),
            ("XCLAIM s g a 0 1-0 TIME x", "-ERR Invalid TIME option argument for XCLAIM"),
            ("XCLAIM s g a 0 1-0 RETRYCOUNT x", "-ERR Invalid RETRYCOUNT option argument for XCLAIM"),
            ("XCLAIM s g a 0 1-0 LASTID x", "-ERR Invalid stream ID specified as stream command argument"),
            ("XCLAIM s g a 0 1-0 IDLE", "-ERR Unrecognized XCLAIM option 'IDLE'"),
            ("XCLAIM s g a 0 1-0 FOO 2-0", "-ERR Unrecognized XCLAIM option 'FOO'"),
        ],
    );
}

#[test]
fn xautoclaim_walks_the_pel_with_a_cursor() {
    let node = Node::new();
    stream_with_group(&node, 5);
    check(
        &node,
        T,
        &[("XREADGROUP GROUP g a COUNT 5 STREAMS s >", "[[\"s\", [[\"1-0\", [\"f\", \"1\"]], [\"2-0\", [\"f\", \"2\"]], [\"3-0\", [\"f\", \"3\"]], [\"4-0\", [\"f\", \"4\"]], [\"5-0\", [\"f\", \"5\"]]]]]")],
    );
    check(
        &node,
        T + 1000,
        &[
            ("XDEL s 2-0", ":1"),
            ("XAUTOCLAIM s g b 500 0 COUNT 2", "[\"3-0\", [[\"1-0\", [\"f\", \"1\"]]], [\"2-0\"]]"),
            ("XAUTOCLAIM s g b 500 3-0 COUNT 2 JUSTID", "[\"5-0\", [\"3-0\", \"4-0\"], []]"),
            ("XAUTOCLAIM s g b 500 5-0", "[\"0-0\", [[\"5-0\", [\"f\", \"5\"]]], []]"),
            // Just claimed: not idle any more.
            ("XAUTOCLAIM s g c 500 0", "[\"0-0\", [], []]"),
            ("XPENDING s g", "[:4, \"1-0\", \"5-0\", [[\"b\", \"4\"]]]"),
            ("XPENDING s g - + 10", "[[\"1-0\", \"b\", :0, :2], [\"3-0\", \"b\", :0, :1], [\"4-0\", \"b\", :0, :1], [\"5-0\", \"b\", :0, :2]]"),
            ("XINFO CONSUMERS s g", "[[\"name\", \"a\", \"pending\", :0, \"idle\", :1000, \"inactive\", :1000], [\"name\", \"b\", \"pending\", :4, \"idle\", :0, \"inactive\", :0], [\"name\", \"c\", \"pending\", :0, \"idle\", :0, \"inactive\", :-1]]"),
            ("XAUTOCLAIM s g b 0 0 COUNT 0", "-ERR COUNT must be > 0"),
            ("XAUTOCLAIM s g b 0 0 COUNT x", "-ERR COUNT must be > 0"),
            ("XAUTOCLAIM s g b 0 0 COUNT 576460752303423488", "-ERR COUNT must be > 0"),
            ("XAUTOCLAIM s g b 0 0 FOO", "-ERR syntax error"),
            ("XAUTOCLAIM s g b x 0", "-ERR Invalid min-idle-time argument for XAUTOCLAIM"),
            ("XAUTOCLAIM s g b 0 x", "-ERR Invalid stream ID specified as stream command argument"),
            ("XAUTOCLAIM s nog b 0 0", "-NOGROUP No such key 's' or consumer group 'nog'"),
        ],
    );
}

#[test]
fn xpending_and_xinfo_errors() {
    let node = Node::new();
    stream_with_group(&node, 1);
    check(
        &node,
        T,
        &[
            (
                "XPENDING s nog",
                "-NOGROUP No such key 's' or consumer group 'nog'",
            ),
            (
                "XPENDING nokey g",
                "-NOGROUP No such key 'nokey' or consumer group 'g'",
            ),
            ("XPENDING s g - +", "-ERR syntax error"),
            ("XPENDING s g IDLE 10 - + ", "-ERR syntax error"),
            (
                "XPENDING s g IDLE x - + 10",
                "-ERR value is not an integer or out of range",
            ),
            (
                "XPENDING s g - + x",
                "-ERR value is not an integer or out of range",
            ),
            (
                "XPENDING s g x + 10",
                "-ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "XPENDING s g (18446744073709551615-18446744073709551615 + 10",
                "-ERR invalid start ID for the interval",
            ),
            (
                "XPENDING s g - (0-0 10",
                "-ERR invalid end ID for the interval",
            ),
            ("XINFO GROUPS nokey", "-ERR no such key"),
            ("XINFO CONSUMERS nokey g", "-ERR no such key"),
            (
                "XINFO CONSUMERS s nog",
                "-NOGROUP No such consumer group 'nog' for key name 's'",
            ),
        ],
    );
}

#[test]
fn lag_follows_deletes_like_redis() {
    let node = Node::new();
    stream_with_group(&node, 4);
    let groups = |node: &Node| run(node, T, "XINFO GROUPS s");
    assert!(
        groups(&node).contains("\"entries-read\", nil, \"lag\", :4"),
        "{}",
        groups(&node)
    );
    run(&node, T, "XREADGROUP GROUP g a COUNT 1 STREAMS s >");
    assert!(
        groups(&node).contains("\"entries-read\", :1, \"lag\", :3"),
        "{}",
        groups(&node)
    );
    // A tombstone after the group's position makes the lag unknown.
    run(&node, T, "XDEL s 3-0");
    assert!(
        groups(&node).contains("\"entries-read\", :1, \"lag\", nil"),
        "{}",
        groups(&node)
    );
    run(&node, T, "XREADGROUP GROUP g a STREAMS s >");
    assert!(
        groups(&node).contains("\"last-delivered-id\", \"4-0\", \"entries-read\", :4, \"lag\", :0"),
        "{}",
        groups(&node)
    );
}

#[test]
fn group_state_on_a_legacy_stream_reads_and_migrates() {
    let node = Node::new();
    stream_with_group(&node, 3);
    run(&node, T, "XREADGROUP GROUP g a COUNT 2 STREAMS s >");
    let before = (
        run(&node, T + 5, "XPENDING s g - + 10"),
        run(&node, T + 5, "XINFO GROUPS s"),
        run(&node, T + 5, "XINFO CONSUMERS s g"),
    );
    assert_eq!(run(&node, T, "RAMPART.STREAMTOLEGACY s"), ":3");
    assert_eq!(run(&node, T, "RAMPART.STREAMFORMAT s"), "\"legacy\"");
    let legacy = (
        run(&node, T + 5, "XPENDING s g - + 10"),
        run(&node, T + 5, "XINFO GROUPS s"),
        run(&node, T + 5, "XINFO CONSUMERS s g"),
    );
    assert_eq!(before, legacy);
    // The first write migrates, and the group goes on where it was.
    check(
        &node,
        T + 5,
        &[
            (
                "XREADGROUP GROUP g b STREAMS s >",
                "[[\"s\", [[\"3-0\", [\"f\", \"3\"]]]]]",
            ),
            ("XACK s g 1-0", ":1"),
            (
                "XPENDING s g",
                "[:2, \"2-0\", \"3-0\", [[\"a\", \"1\"], [\"b\", \"1\"]]]",
            ),
        ],
    );
    assert_ne!(run(&node, T, "RAMPART.STREAMFORMAT s"), "\"legacy\"");
}

#[test]
fn destroy_and_recreate_leaves_no_records_behind() {
    let node = Node::new();
    stream_with_group(&node, 2);
    run(&node, T, "XREADGROUP GROUP g a STREAMS s >");
    check(
        &node,
        T,
        &[
            ("XGROUP DESTROY s g", ":1"),
            ("XGROUP CREATE s g 0", "+OK"),
            ("XPENDING s g", "[:0, nil, nil, nil]"),
            ("XINFO CONSUMERS s g", "[]"),
            ("XREADGROUP GROUP g a STREAMS s 0", "[[\"s\", []]]"),
        ],
    );
}

#[test]
fn random_arguments_answer_without_panicking() {
    let node = Node::new();
    stream_with_group(&node, 3);
    run(&node, T, "XREADGROUP GROUP g a COUNT 2 STREAMS s >");
    let words = [
        "s",
        "g",
        "a",
        "b",
        "0",
        "1-0",
        "-",
        "+",
        "(",
        "(1-0",
        "$",
        ">",
        "COUNT",
        "BLOCK",
        "NOACK",
        "STREAMS",
        "GROUP",
        "IDLE",
        "TIME",
        "RETRYCOUNT",
        "FORCE",
        "JUSTID",
        "LASTID",
        "-1",
        "18446744073709551615-18446744073709551615",
        "9223372036854775807",
        "x",
        "MKSTREAM",
        "ENTRIESREAD",
        "CREATE",
        "SETID",
        "DESTROY",
        "CREATECONSUMER",
        "DELCONSUMER",
        "HELP",
        "GROUPS",
        "CONSUMERS",
    ];
    let commands = [
        "XGROUP",
        "XREADGROUP",
        "XACK",
        "XPENDING",
        "XCLAIM",
        "XAUTOCLAIM",
        "XINFO",
    ];
    // A fixed-seed generator: the same cases on every run.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for i in 0..4000 {
        let mut argv = vec![commands[next(commands.len())].as_bytes().to_vec()];
        for _ in 0..next(10) {
            argv.push(words[next(words.len())].as_bytes().to_vec());
        }
        let reply = node.run_at(T + i, &argv);
        assert!(reply.kind.is_some(), "no reply to {argv:?}");
    }
    // The bookkeeping still agrees with the records.
    let summary = run(&node, T + 5000, "XPENDING s g");
    if let Some(rest) = summary.strip_prefix("[:") {
        let total: u64 = rest.split(',').next().unwrap().parse().unwrap();
        let rows = node.run(T + 5000, "XPENDING s g - + 1000000");
        let listed = rows.array_items().map_or(0, |items| items.len() as u64);
        assert_eq!(total, listed, "{summary}");
        // And each consumer's count is the number of entries it owns.
        use rampart_proto::pb::reply::Kind;
        let consumers = node.run(T + 5000, "XINFO CONSUMERS s g");
        for consumer in consumers.array_items().unwrap_or_default() {
            let Some(Kind::Map(fields)) = consumer.kind else {
                panic!("consumer is not a map");
            };
            let name = match &fields.items[1].kind {
                Some(Kind::Bulk(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => panic!("no name"),
            };
            let pending = fields.items[3].integer_value().unwrap();
            let owned = node.run(T + 5000, &format!("XPENDING s g - + 1000000 {name}"));
            let owned = owned.array_items().map_or(0, |items| items.len() as i64);
            assert_eq!(pending, owned, "consumer {name}");
        }
    }
}

/// Applies an internal (log-only) command the way the state machine does.
fn apply_internal(node: &Node, argv: &[Vec<u8>]) {
    let mut txn = node.engine.txn();
    crate::commands::apply_write(&mut txn, argv, T);
    node.engine
        .write_batch(txn.into_batch().unwrap(), false)
        .unwrap();
}

#[test]
fn group_commands_on_a_mixed_stream_match_a_per_entry_one() {
    use super::admin::settings_command;
    use super::legacy::MigrationMode;
    // The same history on a reference node and on one whose stream is
    // turned legacy and migrated two entries per write (Mode B).
    let setup = |node: &Node| {
        stream_with_group(node, 8);
        run(node, T, "XREADGROUP GROUP g a COUNT 6 STREAMS s >");
        run(node, T, "XDEL s 2-0");
    };
    let reference = Node::new();
    setup(&reference);
    let mixed = Node::new();
    setup(&mixed);
    apply_internal(&mixed, &settings_command(MigrationMode::B { chunk: 2 }));
    assert_eq!(run(&mixed, T, "RAMPART.STREAMTOLEGACY s"), ":7");
    let steps = [
        "XREADGROUP GROUP g a STREAMS s 0",
        "XPENDING s g - + 100",
        "XCLAIM s g b 0 1-0 2-0 5-0",
        "XINFO CONSUMERS s g",
        "XAUTOCLAIM s g c 0 0 COUNT 3",
        "XREADGROUP GROUP g b COUNT 1 STREAMS s >",
        "XACK s g 3-0 4-0",
        "XPENDING s g",
        "XREADGROUP GROUP g c STREAMS s 0",
        "XINFO GROUPS s",
        "XAUTOCLAIM s g d 0 0",
        "XPENDING s g - + 100",
    ];
    let mut saw_mixed = false;
    for (i, step) in steps.iter().enumerate() {
        let now = T + 10 * i as i64;
        assert_eq!(run(&mixed, now, step), run(&reference, now, step), "{step}");
        saw_mixed |= run(&mixed, now, "RAMPART.STREAMFORMAT s").starts_with("\"mixed");
    }
    assert!(saw_mixed, "the stream never was in the mixed state");
}
