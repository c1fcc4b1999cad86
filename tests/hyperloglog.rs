//! HyperLogLog through a real proxy, compared reply by reply with a real
//! redis-server running the same commands: estimates to the unit and the
//! stored bytes (sparse and dense) exactly, so values move between the two.

mod common;

use common::{assert_answers_as_redis, connect, query, render, shared_target};

fn cmd(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

fn pfadd(key: &str, elements: impl Iterator<Item = String>) -> Vec<String> {
    let mut args = vec!["PFADD".to_string(), key.to_string()];
    args.extend(elements);
    args
}

/// The commands both servers run, in order.
fn script() -> Vec<Vec<String>> {
    let mut s = vec![
        cmd("PFADD hll a b c d e f g"),
        cmd("GET hll"),
        cmd("PFCOUNT hll"),
        cmd("PFADD hll a b c"),
        cmd("PFADD hll h"),
        cmd("GET hll"),
        cmd("PFCOUNT hll"),
        cmd("PFCOUNT nokey"),
        cmd("PFADD empty"),
        cmd("PFADD empty"),
        cmd("GET empty"),
        cmd("PFCOUNT empty"),
        cmd("EXISTS empty"),
    ];
    // Sparse values of growing size, then promotion to dense past 3,000
    // bytes; the bytes must match after every step.
    let mut next = 0;
    for size in [1, 4, 10, 30, 60, 100, 200, 400, 800, 1500, 3000] {
        s.push(pfadd("grow", (next..size).map(|i| format!("e{i}"))));
        s.push(cmd("GET grow"));
        s.push(cmd("STRLEN grow"));
        s.push(cmd("PFCOUNT grow"));
        next = size;
    }
    for (key, range) in [("u1", 0..500), ("u2", 250..900), ("u3", 800..20_000)] {
        for chunk in range.collect::<Vec<_>>().chunks(1000) {
            s.push(pfadd(key, chunk.iter().map(|i| i.to_string())));
        }
        s.push(cmd(&format!("GET {key}")));
    }
    s.extend([
        cmd("PFCOUNT u1"),
        cmd("PFCOUNT u1 u2"),
        cmd("PFCOUNT u1 u2 u3 nokey"),
        cmd("PFMERGE m1 u1 u2"),
        cmd("GET m1"),
        cmd("PFCOUNT m1"),
        cmd("PFMERGE m2 u1 u3"),
        cmd("GET m2"),
        cmd("PFMERGE m1"),
        cmd("GET m1"),
        cmd("PFMERGE m3 nokey"),
        cmd("GET m3"),
        cmd("PFMERGE hll u1"),
        cmd("GET hll"),
        cmd("PFCOUNT hll"),
        // Type and format errors.
        cmd("SET str foobar"),
        cmd("PFADD str a"),
        cmd("PFCOUNT str"),
        cmd("PFCOUNT hll str"),
        cmd("PFMERGE hll str"),
        cmd("PFMERGE str hll"),
        cmd("SET num 12345678901234567"),
        cmd("PFADD num a"),
        cmd("RPUSH list a"),
        cmd("PFADD list a"),
        cmd("PFCOUNT list"),
        cmd("PFMERGE list hll"),
        cmd("PFADD broken a b c"),
        cmd("APPEND broken hello"),
        cmd("PFCOUNT broken"),
        cmd("PFMERGE dest broken"),
        cmd("PFADD magic a"),
        cmd("SETRANGE magic 0 0123"),
        cmd("PFCOUNT magic"),
        cmd("PFADD encoding a"),
        cmd("SETRANGE encoding 4 x"),
        cmd("PFCOUNT encoding"),
        cmd("PFADD dense a b c"),
        cmd("SETRANGE dense 4 \u{0}"),
        cmd("PFCOUNT dense"),
        cmd("PFADD ttl a"),
        cmd("EXPIRE ttl 100"),
        cmd("PFADD ttl b"),
        cmd("TTL ttl"),
        cmd("PFADD"),
        cmd("PFCOUNT"),
        cmd("PFMERGE"),
    ]);
    s
}

/// Bulk strings as hex, so binary register bytes compare exactly. An HLL's
/// cached estimate (bytes 8..16) is blanked but for its "stale" bit: Redis's
/// PFCOUNT writes the estimate there and an update only marks it stale,
/// Rampart's PFCOUNT never writes (docs/compatibility.md).
fn show(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(bytes) => {
            let mut bytes = bytes.clone();
            if bytes.starts_with(b"HYLL") && bytes.len() >= 16 {
                let stale = bytes[15] & 0x80;
                bytes[8..16].fill(0);
                bytes[15] = stale;
            }
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        }
        other => render(other),
    }
}

fn run(addr: &str, protocol: Option<&str>) -> Vec<String> {
    let mut con = connect(addr, protocol);
    let _ = query(&mut con, &["FLUSHALL"]);
    script()
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let shown = if args.len() > 12 {
                format!("{} {} ... ({} args)", args[0], args[1], args.len())
            } else {
                args.join(" ")
            };
            format!("{shown} -> {}", show(&query(&mut con, &args)))
        })
        .collect()
}

#[test]
fn hyperloglog_answers_and_stores_as_redis() {
    let target = shared_target();
    let ours = run(&target.addr, None);
    for expected in [
        "PFADD hll a b c d e f g -> :1",
        "PFCOUNT hll -> :7",
        "PFADD hll a b c -> :0",
        "PFADD empty -> :1",
        "PFCOUNT nokey -> :0",
        "STRLEN grow -> :12304",
        "PFADD str a -> -WRONGTYPE Key is not a valid HyperLogLog string value.",
        "PFCOUNT broken -> -INVALIDOBJ Corrupted HLL object detected",
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
    assert_answers_as_redis(&target.addr, run, |_, _| false);
}
