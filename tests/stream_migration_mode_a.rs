//! Mode A migration (`--stream-migration-mode a`): the first write to a
//! legacy stream rewrites it whole, so it goes legacy -> per-entry in one
//! step, and every read equals the never-migrated reference's before and
//! after. Also RAMPART.STREAMIMPORT of a client-built blob.

mod common;
mod stream_migration_support;

use common::{check, render, Cluster, ClusterOptions};
use stream_migration_support::{q, wait_for_mode, wait_for_zero_legacy_keys, Pair};

#[test]
fn mode_a_migrates_a_stream_on_its_first_write() {
    let cluster = Cluster::start_with(ClusterOptions {
        node_metrics: true,
        node_args: ["--stream-migration-mode", "a", "--stream-drain-rate", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..ClusterOptions::default()
    });
    let mut con = cluster.connection();
    wait_for_mode(&mut con, "per-entry");
    for n in [0u64, 1, 1025, 20_000] {
        let mut pair = Pair::new(&format!("a{n}"), n);
        pair.create(&mut con);
        pair.round(&mut con, true);
        assert_eq!(
            pair.formats,
            vec!["legacy".to_string(), "per-entry".to_string()],
            "n={n}"
        );
        pair.migrate(&mut con, 3, 1);
    }
    import_through_the_proxy(&mut con);
    wait_for_zero_legacy_keys(&cluster, &[1, 2, 3]);
}

/// Protobuf encoding by hand (the test crate has no prost): a varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(tag) << 3, out);
    varint(v, out);
}

fn field_bytes(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint((u64::from(tag) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A `LegacyStream` (docs/streams.md) with entries `ms-0 f v<ms>`, last id
/// `last-0`, and one group `g` at `0-0` without pending entries.
fn legacy_blob(ms_ids: &[u64], last: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for &ms in ms_ids {
        let mut entry = Vec::new();
        field_varint(1, ms, &mut entry);
        field_bytes(3, b"f", &mut entry);
        field_bytes(3, format!("v{ms}").as_bytes(), &mut entry);
        field_bytes(1, &entry, &mut out);
    }
    field_varint(2, last, &mut out);
    field_varint(6, ms_ids.len() as u64, &mut out);
    let mut group = Vec::new();
    field_bytes(1, b"g", &mut group);
    field_bytes(7, &group, &mut out);
    out
}

fn import(con: &mut redis::Connection, key: &str, blob: &[u8], replace: bool) -> String {
    let mut cmd = redis::cmd("RAMPART.STREAMIMPORT");
    cmd.arg(key).arg(blob);
    if replace {
        cmd.arg("REPLACE");
    }
    let v = redis::ConnectionLike::req_command(con, &cmd)
        .unwrap_or_else(|e| panic!("RAMPART.STREAMIMPORT {key}: {e}"));
    render(&v)
}

fn import_through_the_proxy(con: &mut redis::Connection) {
    let blob = legacy_blob(&[1, 2, 5], 9);
    assert_eq!(import(con, "imported", &blob, false), ":3");
    check(con, &["RAMPART.STREAMFORMAT", "imported"], "\"legacy\"");
    check(con, &["TYPE", "imported"], "+stream");
    check(con, &["XLEN", "imported"], ":3");
    check(
        con,
        &["XRANGE", "imported", "-", "+", "COUNT", "2"],
        "[[\"1-0\", [\"f\", \"v1\"]], [\"2-0\", [\"f\", \"v2\"]]]",
    );
    let groups = render(&q(
        con,
        &["XINFO".into(), "GROUPS".into(), "imported".into()],
    ));
    assert!(
        groups.starts_with(
            "[[\"name\", \"g\", \"consumers\", :0, \"pending\", :0, \"last-delivered-id\", \"0-0\""
        ),
        "{groups}"
    );
    assert_eq!(
        import(con, "imported", &blob, false),
        "-BUSYKEY Target key name already exists."
    );
    assert!(import(con, "bad", b"\x0a\xff", false).starts_with("-ERR invalid legacy stream blob"));
    check(con, &["EXISTS", "bad"], ":0");
    // The first write migrates it (Mode A: whole).
    check(con, &["XADD", "imported", "10-0", "f", "v10"], "\"10-0\"");
    check(con, &["RAMPART.STREAMFORMAT", "imported"], "\"per-entry\"");
    check(con, &["XLEN", "imported"], ":4");
    let replaced = legacy_blob(&[7], 7);
    assert_eq!(import(con, "imported", &replaced, true), ":1");
    check(
        con,
        &["XRANGE", "imported", "-", "+"],
        "[[\"7-0\", [\"f\", \"v7\"]]]",
    );
    check(con, &["DEL", "imported"], ":1");
    let gone = render(&q(
        con,
        &["RAMPART.STREAMFORMAT".to_string(), "imported".to_string()],
    ));
    assert_eq!(gone, "nil");
}
