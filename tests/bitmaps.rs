//! Bitmaps, LCS and SUBSTR through a real proxy, compared reply by reply
//! with a real redis-server running the same script (where one is
//! installed; `./dev.sh` installs Debian's). Cases where Redis 7.2 differs
//! from the 7.0 server are asserted against 7.2's documented answer.

mod common;

use common::{assert_answers_as_redis, connect, query, render, shared_target};

/// Each line is one command; both servers start empty.
const SCRIPT: &[&str] = &[
    "SETBIT bm 7 1",
    "SETBIT bm 7 0",
    "SETBIT bm 100 1",
    "GETBIT bm 100",
    "GETBIT bm 1000",
    "GET bm",
    "SETBIT bm 4294967296 1",
    "SETBIT bm x 1",
    "SETBIT bm 1 2",
    "SETBIT bm 1 -1",
    "SET s foobar",
    "BITCOUNT s",
    "BITCOUNT s 0 0",
    "BITCOUNT s 1 1",
    "BITCOUNT s 1 -2 BYTE",
    "BITCOUNT s 5 30 BIT",
    "BITCOUNT s -40 -2 BIT",
    "BITCOUNT s -2 -3",
    "BITCOUNT s 100 200",
    "BITCOUNT s 0",
    "BITCOUNT s 0 1 WORD",
    "BITPOS s 1",
    "BITPOS s 0",
    "BITPOS s 1 2",
    "BITPOS s 0 2 -1",
    "BITPOS s 1 7 15 BIT",
    "BITPOS s 0 7 15 BIT",
    "BITPOS s 1 -1 -1 BIT",
    "BITPOS s 1 200",
    "BITPOS s 0 200",
    "BITPOS s 3",
    "SET ones \u{7f}",
    "BITPOS ones 0 1",
    "BITPOS ones 0",
    "BITPOS ones 0 0 -1",
    "BITPOS ones 0 1 7 BIT",
    "BITPOS nokey 0",
    "BITPOS nokey 1",
    "SET t abc",
    "BITOP AND d1 s t",
    "GET d1",
    "BITOP OR d2 s t nokey",
    "GET d2",
    "BITOP XOR d3 s t",
    "GET d3",
    "BITOP NOT d4 t",
    "GET d4",
    "BITOP NOT d4 s t",
    "BITOP NAND d4 s",
    "BITOP OR d5 nokey",
    "EXISTS d5",
    "BITFIELD bf SET i8 0 -100 GET u8 0 INCRBY i8 0 -100",
    "BITFIELD bf OVERFLOW SAT INCRBY i8 0 100 OVERFLOW FAIL INCRBY i8 0 1",
    "BITFIELD bf GET u4 #1 GET i64 0 GET i5 3",
    "BITFIELD bf OVERFLOW WRAP INCRBY u2 100 7 INCRBY u2 100 7",
    "BITFIELD bf OVERFLOW SAT SET u8 #2 -1 SET i4 40 100 SET i4 44 -100",
    "BITFIELD bf GET u8 16 GET i4 40 GET i4 44",
    "BITFIELD bf INCRBY i64 200 9223372036854775807 OVERFLOW WRAP INCRBY i64 200 1",
    "BITFIELD bf OVERFLOW SAT INCRBY u63 300 -1 INCRBY u63 300 9223372036854775807",
    "BITFIELD bf SET u64 0 1",
    "BITFIELD bf SET i0 0 1",
    "BITFIELD bf OVERFLOW MAYBE",
    "BITFIELD bf GET u8",
    "BITFIELD bf GET u8 -1",
    "BITFIELD bf GET u8 #-1",
    "BITFIELD bf FROB",
    "BITFIELD_RO bf GET u8 0 GET i3 #5",
    "BITFIELD_RO bf SET u8 0 1",
    "BITFIELD missing GET u8 0",
    "BITFIELD missing",
    "BITFIELD created OVERFLOW FAIL INCRBY u2 0 10",
    "STRLEN created",
    "MSET key1 ohmytext key2 mynewtext",
    "LCS key1 key2",
    "LCS key1 key2 LEN",
    "LCS key1 key2 IDX",
    "LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN",
    "LCS key1 key2 idx withmatchlen",
    "LCS key1 key2 LEN IDX",
    "LCS key1 key2 MINMATCHLEN",
    "LCS key1 nokey",
    "LCS nokey nokey2 IDX",
    "SET a ABCBDAB",
    "SET b BDCABA",
    "LCS a b IDX WITHMATCHLEN",
    "SUBSTR key1 0 1",
    "SUBSTR key1 -3 -1",
    "SUBSTR nokey 0 1",
    "HSET h f v",
    "SETBIT h 0 1",
    "GETBIT h 0",
    "BITCOUNT h",
    "BITPOS h 1",
    "BITOP AND d6 s h",
    "BITFIELD h GET u8 0",
    "LCS key1 h",
];

fn run_script(addr: &str, protocol: Option<&str>) -> Vec<String> {
    let mut con = connect(addr, protocol);
    let _ = query(&mut con, &["FLUSHALL"]);
    SCRIPT
        .iter()
        .map(|line| {
            let args: Vec<&str> = line.split(' ').collect();
            format!("{line} -> {}", render(&query(&mut con, &args)))
        })
        .collect()
}

#[test]
fn bitmaps_lcs_and_substr_answer_as_redis() {
    let target = shared_target();
    let ours = run_script(&target.addr, None);
    // A few answers every server must give, whatever is installed.
    for expected in [
        "BITCOUNT s -> :26",
        "BITCOUNT s 5 30 BIT -> :17",
        "LCS key1 key2 -> \"mytext\"",
        "LCS key1 key2 LEN -> :6",
        "BITOP NOT d4 s t -> -ERR BITOP NOT must be called with a single source key.",
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
