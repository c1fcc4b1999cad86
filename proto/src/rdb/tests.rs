//! Payloads captured from a real redis-server 7.0 (testdata/redis70.txt,
//! built as the comments below say), hand-built payloads of the 7.2-only
//! encodings, round trips and corruption.

use super::io::Writer;
use super::types as t;
use super::*;

fn captured(key: &str) -> Vec<u8> {
    let line = include_str!("testdata/redis70.txt")
        .lines()
        .find(|l| l.split(' ').next() == Some(key))
        .unwrap_or_else(|| panic!("no capture {key}"));
    let hex = line.split(' ').nth(1).unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// A payload around `body` (type byte included) with a valid footer.
fn seal(body: &[u8], version: u16) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn round_trip(v: &Value) {
    assert_eq!(&decode(&encode(v)).unwrap(), v);
}

#[test]
fn strings_from_redis() {
    // SET s_raw hello; SET s_int 12345; SET s_neg -7;
    // SET s_big 9999999999999; SET s_lzf ("abcdefgh" x 100).
    for (key, want) in [
        ("s_raw", b("hello")),
        ("s_int", b("12345")),
        ("s_neg", b("-7")),
        ("s_big", b("9999999999999")),
        ("s_lzf", b(&"abcdefgh".repeat(100))),
    ] {
        let payload = captured(key);
        let got = decode(&payload).unwrap();
        assert_eq!(got, Value::String(want), "{key}");
        round_trip(&got);
    }
    // Rampart writes integers as Redis does.
    assert_eq!(encode(&Value::String(b("12345"))), captured("s_int"));
    assert_eq!(encode(&Value::String(b("hello"))), captured("s_raw"));
}

#[test]
fn lists_from_redis() {
    // RPUSH l_small a 1 bb -300 70000
    let small = decode(&captured("l_small")).unwrap();
    assert_eq!(
        small,
        Value::List(vec![b("a"), b("1"), b("bb"), b("-300"), b("70000")])
    );
    // RPUSH l_big with 1,000 elements: i, or "elem-i" unless i % 3 == 0
    // (compressed listpack nodes).
    let want: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            if i % 3 == 0 {
                i.to_string()
            } else {
                format!("elem-{i}")
            }
        })
        .map(String::into_bytes)
        .collect();
    let big = decode(&captured("l_big")).unwrap();
    assert_eq!(big, Value::List(want));
    // RPUSH l_plain ("x" x 100)
    assert_eq!(
        decode(&captured("l_plain")).unwrap(),
        Value::List(vec![vec![b'x'; 100]])
    );
    round_trip(&small);
    round_trip(&big);
    // Rampart's encoding of the small list is byte for byte Redis's
    // (an uncompressed packed node).
    assert_eq!(encode(&small), captured("l_small"));
}

#[test]
fn sets_from_redis() {
    // SADD set_int 1 2 -5 100000 9999999999 (intset, LZF compressed)
    let ints = decode(&captured("set_int")).unwrap();
    let Value::Set(members) = &ints else {
        panic!("{ints:?}")
    };
    assert_eq!(
        sorted(members.clone()),
        sorted(vec![b("1"), b("2"), b("-5"), b("100000"), b("9999999999")])
    );
    // SADD set_str a b c (hashtable in 7.0)
    let strs = decode(&captured("set_str")).unwrap();
    let Value::Set(members) = &strs else { panic!() };
    assert_eq!(sorted(members.clone()), vec![b("a"), b("b"), b("c")]);
    // SADD set_big m0..m299
    let big = decode(&captured("set_big")).unwrap();
    let Value::Set(members) = &big else { panic!() };
    assert_eq!(
        sorted(members.clone()),
        sorted((0..300).map(|i| format!("m{i}").into_bytes()).collect())
    );
    round_trip(&ints);
    round_trip(&big);
}

#[test]
fn zsets_from_redis() {
    // ZADD z_small 1 a 2.5 b -inf c inf d (listpack)
    let small = decode(&captured("z_small")).unwrap();
    assert_eq!(
        small,
        Value::ZSet(vec![
            (b("c"), f64::NEG_INFINITY),
            (b("a"), 1.0),
            (b("b"), 2.5),
            (b("d"), f64::INFINITY),
        ])
    );
    // ZADD z_big with member-i at i * 0.5 for i < 200 (ZSET_2)
    let big = decode(&captured("z_big")).unwrap();
    let Value::ZSet(items) = &big else { panic!() };
    let mut items = items.clone();
    items.sort_by(|a, b| a.1.total_cmp(&b.1));
    let want: Vec<(Vec<u8>, f64)> = (0..200)
        .map(|i| (format!("member-{i}").into_bytes(), i as f64 * 0.5))
        .collect();
    assert_eq!(items, want);
    round_trip(&small);
    round_trip(&big);
}

#[test]
fn hashes_from_redis() {
    // HSET h_small f1 v1 f2 2 (listpack)
    let small = decode(&captured("h_small")).unwrap();
    assert_eq!(
        small,
        Value::Hash(vec![(b("f1"), b("v1")), (b("f2"), b("2"))])
    );
    // HSET h_big f1 ("v" x 100) f2 x (hashtable, value LZF compressed)
    let big = decode(&captured("h_big")).unwrap();
    let Value::Hash(mut pairs) = big.clone() else {
        panic!()
    };
    pairs.sort();
    assert_eq!(pairs, vec![(b("f1"), vec![b'v'; 100]), (b("f2"), b("x"))]);
    round_trip(&small);
    round_trip(&big);
}

#[test]
fn streams_from_redis() {
    // XADD st 1-1 a 1 b 2; 1-2 a 3 b 4; 2-0 c 5; 3-0 a 6 b 7; XDEL st 1-2;
    // XGROUP CREATE st g1 0; alice reads 2, bob reads 1;
    // XGROUP CREATE st g2 $; XGROUP CREATECONSUMER st g2 carol.
    let v = decode(&captured("st")).unwrap();
    let Value::Stream(s) = &v else { panic!() };
    let ids: Vec<StreamId> = s.entries.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        vec![
            StreamId::new(1, 1),
            StreamId::new(2, 0),
            StreamId::new(3, 0)
        ]
    );
    assert_eq!(
        s.entries[0].field_values,
        vec![b("a"), b("1"), b("b"), b("2")]
    );
    assert_eq!(s.entries[1].field_values, vec![b("c"), b("5")]);
    assert_eq!(
        s.entries[2].field_values,
        vec![b("a"), b("6"), b("b"), b("7")]
    );
    assert_eq!(s.last_id, StreamId::new(3, 0));
    assert_eq!(s.first_id, StreamId::new(1, 1));
    assert_eq!(s.max_deleted_id, StreamId::new(1, 2));
    assert_eq!(s.entries_added, 4);
    assert_eq!(s.groups.len(), 2);
    let g1 = &s.groups[0];
    assert_eq!(g1.name, b("g1"));
    assert_eq!(g1.last_id, StreamId::new(3, 0));
    let owners: Vec<(StreamId, Vec<u8>, u64)> = g1
        .pending
        .iter()
        .map(|p| (p.id, p.consumer.clone(), p.delivery_count))
        .collect();
    assert_eq!(
        owners,
        vec![
            (StreamId::new(1, 1), b("alice"), 1),
            (StreamId::new(2, 0), b("alice"), 1),
            (StreamId::new(3, 0), b("bob"), 1),
        ]
    );
    let names: Vec<&[u8]> = g1.consumers.iter().map(|c| c.name.as_slice()).collect();
    assert_eq!(names, vec![b"alice".as_slice(), b"bob".as_slice()]);
    let g2 = &s.groups[1];
    assert_eq!(
        (g2.name.as_slice(), g2.last_id),
        (b"g2".as_slice(), StreamId::new(3, 0))
    );
    // Redis 7.0 leaves a group created at `$` with entries-read unknown.
    assert_eq!(g2.entries_read, -1);
    assert!(g2.pending.is_empty());
    assert_eq!(g2.consumers[0].name, b("carol"));
    round_trip(&v);

    // 250 XADD * field value-i n i: several nodes, SAMEFIELDS entries.
    let big = decode(&captured("st_big")).unwrap();
    let Value::Stream(s) = &big else { panic!() };
    assert_eq!(s.entries.len(), 250);
    for (i, e) in s.entries.iter().enumerate() {
        assert_eq!(
            e.field_values,
            vec![
                b("field"),
                format!("value-{i}").into_bytes(),
                b("n"),
                i.to_string().into_bytes()
            ]
        );
    }
    assert!(s.entries.windows(2).all(|w| w[0].id < w[1].id));
    round_trip(&big);

    // XADD st_empty 5-5 a b; XDEL st_empty 5-5: an empty stream.
    let empty = decode(&captured("st_empty")).unwrap();
    let Value::Stream(s) = &empty else { panic!() };
    assert!(s.entries.is_empty());
    assert_eq!(s.last_id, StreamId::new(5, 5));
    assert_eq!(s.max_deleted_id, StreamId::new(5, 5));
    assert_eq!(s.entries_added, 1);
    assert_eq!(encode(&empty), captured("st_empty"));
}

#[test]
fn redis_72_encodings() {
    // SET_LISTPACK (Redis 7.2's small non-integer sets).
    let mut lp = compact::ListpackBuilder::default();
    for m in ["a", "b", "7"] {
        lp.push(m.as_bytes());
    }
    let mut w = Writer::default();
    w.u8(t::SET_LISTPACK);
    w.raw_string(&lp.finish());
    assert_eq!(
        decode(&seal(&w.buf, 11)).unwrap(),
        Value::Set(vec![b("a"), b("b"), b("7")])
    );

    // STREAM_LISTPACKS_3: as _2 plus each consumer's active time. Take
    // Rampart's _2 encoding of the captured stream and add active times.
    let Value::Stream(s) = decode(&captured("st")).unwrap() else {
        panic!()
    };
    let mut v3 = Writer::default();
    v3.u8(t::STREAM_LISTPACKS_3);
    let nodes = super::encode::stream_nodes(&s);
    v3.len(nodes.len() as u64);
    for (master, blob) in &nodes {
        v3.raw_string(&master.to_bytes());
        v3.raw_string(blob);
    }
    v3.len(s.entries.len() as u64);
    for id in [s.last_id, s.first_id, s.max_deleted_id] {
        v3.len(id.ms);
        v3.len(id.seq);
    }
    v3.len(s.entries_added);
    v3.len(s.groups.len() as u64);
    for g in &s.groups {
        v3.string(&g.name);
        v3.len(g.last_id.ms);
        v3.len(g.last_id.seq);
        v3.len(g.entries_read as u64);
        v3.len(g.pending.len() as u64);
        for p in &g.pending {
            v3.raw(&p.id.to_bytes());
            v3.millis(p.delivery_time_ms);
            v3.len(p.delivery_count);
        }
        v3.len(g.consumers.len() as u64);
        for (i, c) in g.consumers.iter().enumerate() {
            v3.string(&c.name);
            v3.millis(c.seen_time_ms);
            v3.millis(1_000 + i as i64);
            let own: Vec<_> = g.pending.iter().filter(|p| p.consumer == c.name).collect();
            v3.len(own.len() as u64);
            for p in own {
                v3.raw(&p.id.to_bytes());
            }
        }
    }
    let Value::Stream(got) = decode(&seal(&v3.buf, 11)).unwrap() else {
        panic!()
    };
    assert_eq!(got.entries, s.entries);
    assert_eq!(got.groups[0].consumers[1].active_time_ms, 1_001);
    assert_eq!(got.groups[0].pending, s.groups[0].pending);
}

#[test]
fn older_encodings() {
    // LIST (type 1), HASH_ZIPMAP and ZSET (type 3) with text doubles.
    let mut w = Writer::default();
    w.u8(t::LIST);
    w.len(2);
    w.string(b"x");
    w.string(b"42");
    assert_eq!(
        decode(&seal(&w.buf, 6)).unwrap(),
        Value::List(vec![b("x"), b("42")])
    );

    let mut w = Writer::default();
    w.u8(t::ZSET);
    w.len(3);
    for (m, s) in [("a", "1.5"), ("b", "")] {
        w.string(m.as_bytes());
        if s.is_empty() {
            w.u8(255);
        } else {
            w.u8(s.len() as u8);
            w.raw(s.as_bytes());
        }
    }
    w.string(b"c");
    w.u8(254);
    assert_eq!(
        decode(&seal(&w.buf, 6)).unwrap(),
        Value::ZSet(vec![
            (b("a"), 1.5),
            (b("b"), f64::NEG_INFINITY),
            (b("c"), f64::INFINITY)
        ])
    );

    // zipmap: zmlen, "f" -> "val" with one free byte, end.
    let zipmap = [1, 1, b'f', 3, 1, b'v', b'a', b'l', 0, 0xff];
    let mut w = Writer::default();
    w.u8(t::HASH_ZIPMAP);
    w.raw_string(&zipmap);
    assert_eq!(
        decode(&seal(&w.buf, 3)).unwrap(),
        Value::Hash(vec![(b("f"), b("val"))])
    );
}

#[test]
fn footer_errors() {
    let good = captured("s_raw");
    assert_eq!(decode(&good[..9]), Err(RdbError::VersionOrChecksum));
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(decode(&bad_crc), Err(RdbError::VersionOrChecksum));
    let mut body = good[..good.len() - 10].to_vec();
    assert_eq!(decode(&seal(&body, 12)), Err(RdbError::VersionOrChecksum));
    assert!(decode(&seal(&body, 11)).is_ok());
    // Checksummed garbage is a format error.
    body[0] = 99;
    assert_eq!(decode(&seal(&body, 10)), Err(RdbError::BadFormat));
}

#[test]
fn malformed_values_are_refused() {
    let reject = |body: &[u8]| {
        assert_eq!(
            decode(&seal(body, 10)),
            Err(RdbError::BadFormat),
            "{body:?}"
        )
    };
    // Empty collections, duplicates, NaN scores.
    reject(&[t::LIST, 0]);
    reject(&[t::SET, 2, 1, b'a', 1, b'a']);
    reject(&[t::HASH, 2, 1, b'a', 1, b'1', 1, b'a', 1, b'2']);
    let mut w = Writer::default();
    w.u8(t::ZSET_2);
    w.len(1);
    w.string(b"m");
    w.binary_double(f64::NAN);
    reject(&w.buf);
    // A count far beyond the input.
    reject(&[
        t::LIST,
        0x81,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
    ]);
    // Every truncation of every captured payload fails cleanly.
    for key in [
        "l_big", "set_int", "z_small", "h_big", "st", "st_big", "s_lzf",
    ] {
        let payload = captured(key);
        let body = &payload[..payload.len() - 10];
        for cut in 1..body.len() {
            let result = decode(&seal(&body[..cut], 10));
            // A cut can land on a shorter but valid value only for
            // collections whose count is read first; none of these.
            assert!(result.is_err(), "{key} cut at {cut}");
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    // A cheap in-test fuzz: flip each byte of real payloads (fixing the
    // checksum) and decode; any result but a panic is fine.
    for key in ["l_small", "set_int", "z_small", "h_small", "st", "s_lzf"] {
        let payload = captured(key);
        let body = &payload[..payload.len() - 10];
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut m = body.to_vec();
                m[i] ^= flip;
                let _ = decode(&seal(&m, 10));
            }
        }
    }
}
