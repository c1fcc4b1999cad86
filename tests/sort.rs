//! SORT, SORT_RO and TOUCH through a real proxy, compared reply by reply
//! with a real redis-server running the same script in RESP2 and RESP3
//! (where one is installed; `./dev.sh` installs Debian's 7.0.15, whose
//! SORT is 7.2's). The script avoids the one order Redis leaves
//! unspecified: a set with `BY nosort` whose result is returned (Redis
//! walks its hash table or listpack, Rampart its stored hash order), and
//! ALPHA ties under BY.

mod common;

use common::{assert_answers_as_redis, connect, query, render, shared_target};

/// Each line is one command (arguments split on spaces); both servers
/// start empty.
const SCRIPT: &[&str] = &[
    // Lists: numeric, ALPHA, DESC, LIMIT, and their errors.
    "RPUSH l 3 1 2 10 -5 2.5",
    "SORT l",
    "SORT l DESC",
    "SORT l ALPHA",
    "SORT l ALPHA DESC",
    "SORT l asc alpha desc ASC",
    "SORT l LIMIT 1 3",
    "SORT l LIMIT -2 3",
    "SORT l LIMIT 10 3",
    "SORT l LIMIT 2 -1",
    "SORT l LIMIT 0 0",
    "SORT l LIMIT 5 1",
    "SORT l DESC LIMIT 1 2",
    "SORT l LIMIT 0 2 LIMIT 3 2",
    "SORT_RO l DESC LIMIT 0 2",
    "SORT_RO l ALPHA",
    "SORT l BY nosort",
    "SORT l BY nosort DESC",
    "SORT l BY nosort LIMIT 2 2",
    "SORT l BY nosort DESC LIMIT 1 3",
    "SORT l BY nosort LIMIT 7 1",
    "SORT l LIMIT 1",
    "SORT l LIMIT x 1",
    "SORT l LIMIT 1 y",
    "SORT l LIMIT 1.5 1",
    "SORT l FOO",
    "SORT l STORE",
    "SORT_RO l STORE d",
    "SORT l BY",
    "SORT l GET",
    "SORT l DESC FOO LIMIT x y",
    "SORT nokey",
    "SORT nokey DESC LIMIT 0 1",
    "SORT_RO nokey",
    "SORT nokey STORE d",
    "EXISTS d",
    // Weights read like strtod.
    "RPUSH nums 0x10 1e1 inf -inf .5 5. -0 +3",
    "SORT nums",
    "SORT nums DESC LIMIT 0 3",
    "RPUSH nan 1 nan",
    "SORT nan",
    "SORT nan ALPHA",
    "RPUSH big 1 1e400",
    "SORT big",
    "RPUSH tiny 1e-400",
    "SORT tiny",
    "RPUSH blank 1 2x",
    "SORT blank",
    "SORT blank LIMIT 0 1",
    // BY and GET: string keys, hash fields, missing keys.
    "RPUSH names c a b d",
    "MSET w_a 30 w_b 10 w_c 20 v_a A v_c C",
    "HSET h_a f 3 g x",
    "HSET h_b f 1",
    "HSET h_c f 2",
    "HSET h_d f 0",
    "SORT names",
    "SORT names ALPHA",
    "SORT names BY w_*",
    "SORT names BY w_* DESC",
    "SORT names BY w_* LIMIT 1 2",
    "SORT names BY h_*->f",
    "SORT names BY h_*->f DESC LIMIT 0 2",
    "SORT names BY h_*->g ALPHA LIMIT 3 1",
    "SORT names BY w_* GET # GET v_* GET h_*->f GET h_*->nofield",
    "SORT names BY h_*->f GET w_*->f GET h_*",
    "SORT names BY v_* ALPHA LIMIT 2 2",
    "SORT names BY v_* ALPHA DESC LIMIT 0 2",
    "SORT names BY nosort GET # GET v_*",
    "SORT names BY nosort DESC GET w_*",
    "SORT names ALPHA GET nostar",
    "SORT names BY nosort GET nostar GET #",
    "SORT names BY w_* BY nosort",
    "SORT names BY nosort BY w_*",
    "SORT names BY w_*->",
    "SORT names BY missing_*",
    "SORT names BY missing_* DESC",
    "SORT_RO names BY w_* GET # GET h_*->f",
    "SET w_b notnum",
    "SORT names BY w_*",
    "SORT names BY w_* LIMIT 0 1",
    "SORT names BY w_* ALPHA LIMIT 1 3",
    "HSET h_b f bad",
    "SORT names BY h_*->f",
    // Sorted sets: BY nosort keeps score order and takes the LIMIT range.
    "ZADD z 3 a 1 b 2 c 1 bb -inf m +inf n",
    "SORT z BY nosort",
    "SORT z BY nosort DESC",
    "SORT z BY nosort LIMIT 1 3",
    "SORT z BY nosort DESC LIMIT 2 2",
    "SORT z BY nosort LIMIT -3 100",
    "SORT z BY nosort GET #",
    "SORT z ALPHA",
    "SORT z ALPHA DESC LIMIT 0 3",
    "SORT z",
    "SORT z BY nosort STORE zd",
    "LRANGE zd 0 -1",
    "SORT z BY nosort DESC LIMIT 1 2 STORE zd",
    "LRANGE zd 0 -1",
    "ZADD zn 1 10 2 9 3 100",
    "SORT zn",
    "SORT zn DESC",
    // Sets: sorted; BY nosort with STORE is sorted ALPHA (Redis forces it).
    "SADD s 5 3 100 -1",
    "SORT s",
    "SORT s DESC LIMIT 1 2",
    "SORT s ALPHA",
    "SORT s BY nosort STORE sd",
    "LRANGE sd 0 -1",
    "SORT s BY nosort DESC STORE sd",
    "LRANGE sd 0 -1",
    "SORT s BY nosort LIMIT 1 2 STORE sd",
    "LRANGE sd 0 -1",
    "SADD one x",
    "SORT one BY nosort",
    "SORT one BY nosort LIMIT 1 1",
    // STORE: a list (whatever the destination held), or no key at all.
    "SORT l STORE ld",
    "LRANGE ld 0 -1",
    "TYPE ld",
    "SORT names BY w_* ALPHA GET # GET v_* STORE ld",
    "LRANGE ld 0 -1",
    "SET ld x",
    "EXPIRE ld 100",
    "SORT l LIMIT 0 2 STORE ld",
    "TYPE ld",
    "TTL ld",
    "LRANGE ld 0 -1",
    "SORT l LIMIT 0 0 STORE ld",
    "EXISTS ld",
    "SORT l GET nostar STORE ld",
    "LRANGE ld 0 -1",
    "SORT l STORE a1 STORE b1",
    "EXISTS a1",
    "LRANGE b1 0 -1",
    "SORT l DESC STORE l",
    "LRANGE l 0 -1",
    "SORT nan STORE ld",
    "LRANGE ld 0 -1",
    // Wrong types: options are parsed first.
    "HSET hash f v",
    "SORT hash",
    "SORT_RO hash",
    "SET str x",
    "SORT str",
    "SORT str BY",
    "SORT str STORE d",
    "SORT str BY nosort",
    "XADD st 1-1 f v",
    "SORT st",
    "SORT l BY str GET str",
    // TOUCH counts the keys that exist.
    "TOUCH l names nokey z s l",
    "TOUCH nokey",
    "TOUCH",
    "SORT",
    "SORT_RO",
    // A user who may not read every key cannot use BY patterns or GET.
    "ACL SETUSER sortlim on nopass +@all ~names ~sd",
    "AUTH sortlim x",
    "SORT names BY nosort",
    "SORT names BY nosort LIMIT 0 2",
    "SORT names BY w_*",
    "SORT names BY nosort GET #",
    "SORT_RO names GET # BY w_*",
    "SORT names LIMIT x y GET #",
    "SORT names FOO BY w_*",
    "SORT names ALPHA STORE sd",
    "MULTI",
    "SORT names GET #",
    "SORT names ALPHA BY nosort",
    "EXEC",
    "AUTH default x",
    "ACL DELUSER sortlim",
];

fn run_script(addr: &str, protocol: Option<&str>) -> Vec<String> {
    let mut con = connect(addr, protocol);
    let _ = query(&mut con, &["FLUSHALL"]);
    let _ = query(&mut con, &["ACL", "DELUSER", "sortlim"]);
    SCRIPT
        .iter()
        .map(|line| {
            let args: Vec<&str> = line.split(' ').collect();
            format!("{line} -> {}", render(&query(&mut con, &args)))
        })
        .collect()
}

#[test]
fn sort_sort_ro_and_touch_answer_as_redis() {
    let target = shared_target();
    let ours = run_script(&target.addr, None);
    // A few answers every server must give, whatever is installed.
    for expected in [
        r#"SORT l -> ["-5", "1", "2", "2.5", "3", "10"]"#,
        r#"SORT l BY nosort DESC LIMIT 1 3 -> ["-5", "10", "2"]"#,
        r#"SORT names BY w_* -> ["d", "b", "c", "a"]"#,
        r#"SORT z BY nosort LIMIT 1 3 -> ["b", "bb", "c"]"#,
        "SORT nan -> -ERR One or more scores can't be converted into double",
        "SORT_RO l STORE d -> -ERR syntax error",
        "SORT names BY w_* GET # GET v_* GET h_*->f GET h_*->nofield -> \
         [\"d\", nil, \"0\", nil, \"b\", nil, \"1\", nil, \"c\", \"C\", \"2\", nil, \"a\", \"A\", \"3\", nil]",
        "SORT names BY w_* ALPHA GET # GET v_* STORE ld -> :8",
        "TOUCH l names nokey z s l -> :5",
        "SORT names BY w_* -> -ERR BY option of SORT denied due to insufficient ACL permissions.",
        "SORT names BY nosort GET # -> -ERR GET option of SORT denied due to insufficient ACL permissions.",
    ] {
        assert!(
            ours.iter().any(|line| line == expected),
            "missing {expected:?} in\n{}",
            ours.join("\n")
        );
    }
    if !target.is_rampart() {
        return;
    }
    assert_answers_as_redis(&target.addr, run_script, |_, _| false);
}

/// COMMAND GETKEYS for SORT follows Redis's `sortGetKeys`: the sorted key
/// and the last STORE target, never the BY/GET pattern keys.
#[test]
fn sort_keys_are_the_sorted_key_and_the_store_target() {
    let mut con = shared_target().connection();
    let keys = |con: &mut redis::Connection, command: &str| {
        let mut args = vec!["COMMAND", "GETKEYS"];
        args.extend(command.split(' '));
        render(&query(con, &args))
    };
    assert_eq!(
        keys(&mut con, "SORT k BY w_* LIMIT 0 1 GET # STORE d"),
        r#"["k", "d"]"#
    );
    assert_eq!(
        keys(&mut con, "SORT k LIMIT store x STORE d2"),
        r#"["k", "d2"]"#
    );
    assert_eq!(keys(&mut con, "SORT_RO k GET h_*->f"), r#"["k"]"#);
    assert_eq!(keys(&mut con, "TOUCH a b"), r#"["a", "b"]"#);
}
