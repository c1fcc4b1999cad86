//! Geo commands through a real proxy, compared reply by reply with a real
//! redis-server running the same commands: positions, hashes, distances and
//! the members every search finds, in Redis's order.

mod common;

use common::{assert_answers_as_redis, connect, query, render, shared_target};

fn cmd(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

const FIXED: &[&str] = &[
    "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
    "GEODIST Sicily Palermo Catania",
    "GEODIST Sicily Palermo Catania km",
    "GEODIST Sicily Palermo Catania MI",
    "GEODIST Sicily Palermo Catania ft",
    "GEODIST Sicily Palermo Nowhere",
    "GEODIST Nokey a b",
    "GEODIST Sicily Palermo Catania parsec",
    "GEODIST Sicily Palermo Catania km extra",
    "GEORADIUS Sicily 15 37 200 km WITHDIST",
    "GEORADIUS Sicily 15 37 200 km WITHCOORD",
    "GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH",
    "GEOADD Sicily 13.583333 37.316667 Agrigento",
    "GEORADIUSBYMEMBER Sicily Agrigento 100 km",
    "GEORADIUSBYMEMBER Sicily Nowhere 100 km",
    "GEORADIUSBYMEMBER Nokey Nowhere 100 parsec",
    "GEOHASH Sicily Palermo Catania Nowhere",
    "GEOHASH Nokey a",
    "GEOPOS Sicily Palermo Catania NonExisting",
    "GEOPOS Nokey a",
    "GEOPOS Sicily",
    "GEOADD Sicily 12.758489 38.788135 edge1 17.241510 38.788135 edge2",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST",
    "GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 400 400 km DESC WITHHASH",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km COUNT 2",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km COUNT 2 ANY",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km COUNT 2 DESC",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km ANY",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km COUNT 0",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 500 km COUNT x",
    "GEOSEARCH Sicily FROMLONLAT 15 37",
    "GEOSEARCH Sicily BYRADIUS 10 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 FROMMEMBER Palermo BYRADIUS 10 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 10 km BYBOX 1 1 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS -1 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS x km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX x 1 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 x km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX -1 1 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1 yards",
    "GEOSEARCH Sicily FROMLONLAT 200 37 BYRADIUS 1 km",
    "GEOSEARCH Sicily FROMMEMBER Nowhere BYRADIUS 1 km",
    "GEOSEARCH Nokey FROMMEMBER Nowhere BYRADIUS 1 km",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 10 km STORE x",
    "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 10 km STOREDIST",
    "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km",
    "ZRANGE dst 0 -1 WITHSCORES",
    "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
    // Distances as scores: members in distance order, and each score's
    // neighbourhood (RESP2 score digits differ between Redis 7.0 and 7.2).
    "ZRANGE dst 0 -1",
    "ZCOUNT dst 56.44125 56.44126",
    "ZCOUNT dst 190.44242 190.44243",
    "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST",
    "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 1 m",
    "EXISTS dst",
    "GEOSEARCHSTORE dst Nokey FROMLONLAT 15 37 BYRADIUS 1 m",
    "GEORADIUS Sicily 15 37 200 km STORE dst2",
    "ZRANGE dst2 0 -1 WITHSCORES",
    "GEORADIUS Sicily 15 37 200 km STOREDIST dst2 COUNT 1",
    "ZRANGE dst2 0 -1",
    "ZCOUNT dst2 56.44125 56.44126",
    "GEORADIUS Sicily 15 37 200 km STORE dst2 WITHDIST",
    "GEORADIUS_RO Sicily 15 37 200 km STORE dst2",
    "GEORADIUS_RO Sicily 15 37 200 km ASC",
    "GEORADIUSBYMEMBER_RO Sicily Palermo 200 km ASC",
    "GEORADIUSBYMEMBER Sicily Palermo 200 km DESC STORE dst3",
    "ZRANGE dst3 0 -1",
    "GEORADIUS Sicily 200 37 10 km",
    "GEORADIUS Sicily 15 37 10 furlong",
    "GEORADIUS Sicily 15 37 -10 km",
    "GEOADD pts 181 0 a",
    "GEOADD pts 0 85.06 a",
    "GEOADD pts x 0 a",
    "GEOADD pts 0 nan a",
    "GEOADD pts 0 0",
    "GEOADD pts NX XX 0 0 a",
    "GEOADD pts 0 0 a 1",
    "GEOADD pts 0 0 a",
    "GEOADD pts NX 1 1 a 2 2 b",
    "GEOADD pts XX 3 3 a 4 4 c",
    "GEOADD pts CH 5 5 a 5 5 b 6 6 d",
    "GEOADD pts XX CH 7 7 a",
    "GEOPOS pts a b c d",
    "GEOADD pts -180 -85.05112878 sw 180 85.05112878 ne",
    "GEOPOS pts sw ne",
    "GEOHASH pts sw ne",
    "GEOSEARCH pts FROMLONLAT 0 0 BYRADIUS 20000 km ASC",
    "GEOSEARCH pts FROMLONLAT 179 84 BYBOX 1000 1000 km ASC WITHDIST",
    "GEOSEARCH pts FROMLONLAT 0 0 BYRADIUS 0 m",
    "GEOADD pts 0 0 zero",
    "GEOSEARCH pts FROMLONLAT 0 0 BYRADIUS 0 m WITHDIST",
    "SET str x",
    "GEOADD str 0 0 a",
    "GEOPOS str a",
    "GEODIST str a b",
    "GEOHASH str a",
    "GEOSEARCH str FROMLONLAT 0 0 BYRADIUS 1 km",
    "GEORADIUS str 0 0 1 km",
    "GEOSEARCHSTORE dst str FROMLONLAT 0 0 BYRADIUS 1 km",
];

/// A deterministic cloud of points and searches over it (xorshift).
fn random_script() -> Vec<Vec<String>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut s = Vec::new();
    for batch in 0..10 {
        let mut args = vec!["GEOADD".to_string(), "cloud".to_string()];
        for i in 0..50 {
            let long = -10.0 + next() * 20.0;
            let lat = 40.0 + next() * 10.0;
            args.extend([
                format!("{long:.6}"),
                format!("{lat:.6}"),
                format!("p{batch}_{i}"),
            ]);
        }
        s.push(args);
    }
    for _ in 0..40 {
        let long = -12.0 + next() * 24.0;
        let lat = 38.0 + next() * 14.0;
        let size = 1.0 + next() * 600.0;
        s.push(cmd(&format!(
            "GEOSEARCH cloud FROMLONLAT {long:.5} {lat:.5} BYRADIUS {size:.3} km ASC WITHDIST WITHHASH"
        )));
        s.push(cmd(&format!(
            "GEOSEARCH cloud FROMLONLAT {long:.5} {lat:.5} BYBOX {size:.3} {:.3} km DESC WITHDIST",
            size / 2.0
        )));
        s.push(cmd(&format!(
            "GEOSEARCH cloud FROMMEMBER p3_7 BYRADIUS {size:.3} mi COUNT 5"
        )));
    }
    s
}

fn script() -> Vec<Vec<String>> {
    let mut s: Vec<Vec<String>> = FIXED.iter().map(|l| cmd(l)).collect();
    s.extend(random_script());
    s
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
            format!("{shown} -> {}", render(&query(&mut con, &args)))
        })
        .collect()
}

#[test]
fn geo_commands_answer_as_redis() {
    let target = shared_target();
    let ours = run(&target.addr, None);
    // Redis's documented answers, whatever server is compared with.
    for expected in [
        "GEODIST Sicily Palermo Catania -> \"166274.1516\"",
        "GEODIST Sicily Palermo Catania km -> \"166.2742\"",
        "GEOHASH Sicily Palermo Catania Nowhere -> [\"sqc8b49rny0\", \"sqdtr74hyu0\", nil]",
        "GEOPOS Sicily Palermo Catania NonExisting -> [[\"13.36138933897018433\", \"38.11555639549629859\"], [\"15.08726745843887329\", \"37.50266842333162032\"], nil]",
        "GEORADIUS Sicily 15 37 200 km WITHDIST -> [[\"Palermo\", \"190.4424\"], [\"Catania\", \"56.4413\"]]",
        "GEOADD pts 181 0 a -> -ERR invalid longitude,latitude pair 181.000000,0.000000",
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
    assert_answers_as_redis(&target.addr, run, |protocol, line| {
        // RESP3 coordinates are doubles: Redis 7.2 (and Rampart) print
        // the shortest digits, the 7.0 server compared with prints 17.
        protocol.is_some() && (line.contains("WITHCOORD") || line.starts_with("GEOPOS"))
    });
}
