//! Shared by tests/stream_migration.rs and tests/stream_migration_mode_a.rs:
//! a stream under migration ("mig:*") next to an identical never-migrated
//! reference ("ref:*"), the same commands sent to both, and every read
//! command's reply compared after each write (docs/streams.md, "Operations").

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redis::Value;

use crate::common::{self, render, wait_for, Cluster};

/// Field name of every entry; the value is `v<ms>`.
const FIELD: &str = "f";

/// Sends one command given as strings.
pub fn q(con: &mut redis::Connection, args: &[String]) -> Value {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    common::query(con, &refs)
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// A stream being migrated and its reference.
pub struct Pair {
    pub n: u64,
    pub mig: String,
    pub refk: String,
    /// Next id (ms part) to add: above every id of the stream.
    pub next_ms: u64,
    pub step: u64,
    /// RAMPART.STREAMFORMAT replies seen, in order (consecutive repeats
    /// collapsed).
    pub formats: Vec<String>,
    rng: u64,
}

impl Pair {
    pub fn new(tag: &str, n: u64) -> Pair {
        Pair {
            n,
            mig: format!("mig:{tag}"),
            refk: format!("ref:{tag}"),
            next_ms: n + 1,
            step: 0,
            formats: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ n,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: deterministic, no dependency.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A pseudo-random id (ms) in `1..next_ms`.
    fn some_ms(&mut self) -> u64 {
        1 + self.next_rand() % self.next_ms.max(2).saturating_sub(1)
    }

    /// Runs `argv` (with `{K}` standing for the key) on both streams and
    /// asserts the replies are equal; returns the reference's reply.
    pub fn both(&self, con: &mut redis::Connection, argv: &[String]) -> Value {
        let on =
            |key: &str| -> Vec<String> { argv.iter().map(|a| a.replace("{K}", key)).collect() };
        let r = q(con, &on(&self.refk));
        let m = q(con, &on(&self.mig));
        let (rs, ms) = (self.show(&r, &self.refk), self.show(&m, &self.mig));
        assert_eq!(
            ms,
            rs,
            "{} (n={}, step {}, format {:?}): {:?} differs from the reference",
            self.mig,
            self.n,
            self.step,
            self.formats.last(),
            argv
        );
        r
    }

    /// The rendering compared: key names made equal, times removed.
    fn show(&self, v: &Value, key: &str) -> String {
        render(&normalize(v.clone())).replace(key, "{K}")
    }

    /// Creates both streams with entries `1-0 ..= n-0` (pipelined), a group
    /// `g` with entries delivered to alice and bob, then rewrites `mig` in
    /// the legacy layout.
    pub fn create(&mut self, con: &mut redis::Connection) {
        for key in [&self.refk, &self.mig] {
            let mut i = 1;
            while i <= self.n {
                let mut pipe = redis::pipe();
                for ms in i..=(i + 999).min(self.n) {
                    pipe.cmd("XADD")
                        .arg(key)
                        .arg(format!("{ms}-0"))
                        .arg(FIELD)
                        .arg(format!("v{ms}"))
                        .ignore();
                }
                let _: () = pipe
                    .query(con)
                    .unwrap_or_else(|e| panic!("XADD pipeline to {key}: {e}"));
                i += 1000;
            }
        }
        self.both(
            con,
            &cmd(&["XGROUP", "CREATE", "{K}", "g", "0", "MKSTREAM"]),
        );
        self.both(
            con,
            &cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "alice",
                "COUNT",
                "3",
                "STREAMS",
                "{K}",
                ">",
            ]),
        );
        self.both(
            con,
            &cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "bob",
                "COUNT",
                "2",
                "STREAMS",
                "{K}",
                ">",
            ]),
        );
        if self.n >= 2 {
            self.both(con, &cmd(&["XACK", "{K}", "g", "2-0"]));
        }
        let converted = q(con, &cmd(&["RAMPART.STREAMTOLEGACY", &self.mig]));
        assert_eq!(
            render(&converted),
            format!(":{}", self.n),
            "STREAMTOLEGACY {}",
            self.mig
        );
        // (With a drain rate the drainer may already have taken a step.)
        self.note_format(con);
        self.compare(con, true);
    }

    /// RAMPART.STREAMFORMAT of the migrating stream.
    pub fn format(&self, con: &mut redis::Connection) -> String {
        match q(con, &cmd(&["RAMPART.STREAMFORMAT", &self.mig])) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("RAMPART.STREAMFORMAT {}: {}", self.mig, render(&other)),
        }
    }

    pub fn note_format(&mut self, con: &mut redis::Connection) -> String {
        let f = self.format(con);
        if self.formats.last() != Some(&f) {
            self.formats.push(f.clone());
        }
        f
    }

    /// Every read command on both streams; `full` adds whole-stream reads.
    pub fn compare(&mut self, con: &mut redis::Connection, full: bool) {
        let (a, b) = {
            let (x, y) = (self.some_ms(), self.some_ms());
            (x.min(y), x.max(y))
        };
        let (a, b) = (a.to_string(), b.to_string());
        let reads: Vec<Vec<String>> = vec![
            cmd(&["XLEN", "{K}"]),
            cmd(&["XRANGE", "{K}", "-", "+", "COUNT", "20"]),
            cmd(&["XREVRANGE", "{K}", "+", "-", "COUNT", "20"]),
            cmd(&["XRANGE", "{K}", &a, &b, "COUNT", "50"]),
            cmd(&["XREVRANGE", "{K}", &b, &a, "COUNT", "7"]),
            cmd(&["XRANGE", "{K}", &format!("({a}-0"), "+", "COUNT", "5"]),
            cmd(&["XREAD", "COUNT", "10", "STREAMS", "{K}", &a]),
            cmd(&[
                "XREAD",
                "COUNT",
                "3",
                "STREAMS",
                "{K}",
                &format!("{}-0", self.next_ms),
            ]),
            cmd(&["XINFO", "STREAM", "{K}"]),
            cmd(&["XINFO", "GROUPS", "{K}"]),
            cmd(&["XINFO", "CONSUMERS", "{K}", "g"]),
            cmd(&["XPENDING", "{K}", "g"]),
            cmd(&["XPENDING", "{K}", "g", "-", "+", "1000"]),
            cmd(&["XPENDING", "{K}", "g", "-", "+", "10", "alice"]),
        ];
        for argv in &reads {
            self.both(con, argv);
        }
        if full {
            self.both(con, &cmd(&["XRANGE", "{K}", "-", "+"]));
            self.both(con, &cmd(&["XREVRANGE", "{K}", "+", "-"]));
            self.both(con, &cmd(&["XREAD", "STREAMS", "{K}", "0-0"]));
        }
    }

    /// One round of writes (each one a migration step of the migrating
    /// stream), comparing every read after each; returns the format after.
    pub fn round(&mut self, con: &mut redis::Connection, full: bool) -> String {
        self.step += 1;
        let step = self.step;
        let mut writes: Vec<Vec<String>> = Vec::new();
        let id = format!("{}-0", self.next_ms);
        self.next_ms += 1;
        writes.push(cmd(&["XADD", "{K}", &id, FIELD, &format!("v{id}")]));
        if step.is_multiple_of(3) {
            let victim = format!("{}-0", self.some_ms());
            let other = format!("{}-0", self.some_ms());
            writes.push(cmd(&["XDEL", "{K}", &victim, &other]));
        }
        if step.is_multiple_of(5) {
            writes.push(cmd(&["XTRIM", "{K}", "MAXLEN", "=", "LEN-2"]));
        }
        if step.is_multiple_of(7) {
            writes.push(cmd(&["XTRIM", "{K}", "MINID", "FIRST+3"]));
        }
        if step.is_multiple_of(2) {
            writes.push(cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "alice",
                "COUNT",
                "4",
                "STREAMS",
                "{K}",
                ">",
            ]));
            writes.push(cmd(&["XACK", "{K}", "g", "ACKFIRST"]));
        }
        if step % 4 == 1 {
            writes.push(cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "bob",
                "COUNT",
                "2",
                "STREAMS",
                "{K}",
                "0",
            ]));
        }
        if step % 6 == 3 {
            writes.push(cmd(&[
                "XAUTOCLAIM",
                "{K}",
                "g",
                "carol",
                "0",
                "0-0",
                "COUNT",
                "2",
            ]));
        }
        for mut argv in writes {
            self.resolve(con, &mut argv);
            self.both(con, &argv);
            self.note_format(con);
            self.compare(con, full);
        }
        self.formats.last().cloned().unwrap_or_default()
    }

    /// Fills the placeholders computed from the reference's state.
    fn resolve(&self, con: &mut redis::Connection, argv: &mut [String]) {
        for arg in argv.iter_mut() {
            match arg.as_str() {
                "LEN-2" => {
                    let len = common::int(con, &["XLEN", &self.refk]);
                    *arg = (len - 2).max(0).to_string();
                }
                "FIRST+3" => {
                    let first = first_ms(&q(
                        con,
                        &cmd(&["XRANGE", &self.refk, "-", "+", "COUNT", "1"]),
                    ));
                    *arg = format!("{}-0", first.unwrap_or(0) + 3);
                }
                "ACKFIRST" => {
                    let first = first_ms(&q(
                        con,
                        &cmd(&["XPENDING", &self.refk, "g", "-", "+", "1", "alice"]),
                    ));
                    *arg = format!("{}-0", first.unwrap_or(1));
                }
                _ => {}
            }
        }
    }

    /// Writes until the migrating stream is per-entry (at least `min`
    /// rounds); checks the formats went legacy -> mixed (shrinking) ->
    /// per-entry. `full_every`: whole-stream comparisons every that many
    /// rounds (1 = always).
    pub fn migrate(&mut self, con: &mut redis::Connection, min: u64, full_every: u64) {
        let mut rounds = 0u64;
        loop {
            rounds += 1;
            assert!(rounds < 10_000, "{} never finished migrating", self.mig);
            let f = self.round(con, rounds.is_multiple_of(full_every));
            if f == "per-entry" && rounds >= min {
                break;
            }
        }
        self.compare(con, true);
        self.check_progression();
    }

    /// legacy, then `mixed N` with N shrinking, then per-entry.
    pub fn check_progression(&self) {
        let f = &self.formats;
        assert_eq!(f.first().map(String::as_str), Some("legacy"), "{f:?}");
        assert_eq!(f.last().map(String::as_str), Some("per-entry"), "{f:?}");
        let mixed: Vec<u64> = f[1..f.len() - 1]
            .iter()
            .map(|s| {
                s.strip_prefix("mixed ")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected format {s:?} in {f:?}"))
            })
            .collect();
        assert!(
            mixed.windows(2).all(|w| w[0] > w[1]),
            "suffix must shrink: {f:?}"
        );
    }
}

/// The ms of the first id in a reply shaped like XRANGE's or XPENDING's
/// extended form.
fn first_ms(v: &Value) -> Option<u64> {
    let Value::Array(items) = v else { return None };
    let Value::Array(first) = items.first()? else {
        return None;
    };
    let Value::BulkString(id) = first.first()? else {
        return None;
    };
    String::from_utf8_lossy(id).split('-').next()?.parse().ok()
}

/// Removes what legitimately differs between two identical streams read a
/// moment apart: idle times (XPENDING's extended entries, XINFO
/// CONSUMERS' `idle`/`inactive`).
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Array(items) => {
            let xpending_entry = items.len() == 4
                && matches!(items[0], Value::BulkString(_))
                && matches!(items[1], Value::BulkString(_))
                && matches!(items[2], Value::Int(_))
                && matches!(items[3], Value::Int(_));
            let mut out = Vec::with_capacity(items.len());
            let mut blank_next = false;
            for (i, item) in items.into_iter().enumerate() {
                if blank_next || (xpending_entry && i == 2) {
                    out.push(Value::Int(0));
                    blank_next = false;
                    continue;
                }
                if let Value::BulkString(b) = &item {
                    blank_next = matches!(
                        b.as_slice(),
                        b"idle" | b"inactive" | b"seen-time" | b"active-time"
                    );
                }
                out.push(normalize(item));
            }
            Value::Array(out)
        }
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let timed = matches!(&k, Value::BulkString(b) if matches!(b.as_slice(), b"idle" | b"inactive"));
                    (k, if timed { Value::Int(0) } else { normalize(v) })
                })
                .collect(),
        ),
        other => other,
    }
}

/// Waits until the replicated migration mode is the expected one, seen
/// from its behaviour: a legacy probe stream of 1025 entries takes one
/// write. `expect` is the format after that write (`per-entry` for Mode A,
/// `mixed <1025 - chunk>` for Mode B with a chunk below 1025).
pub fn wait_for_mode(con: &mut redis::Connection, expect: &str) {
    let mut attempt = 0;
    wait_for(
        "the replicated stream migration mode",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            attempt += 1;
            let key = format!("probe:{attempt}");
            let mut pipe = redis::pipe();
            for ms in 1..=1025 {
                pipe.cmd("XADD")
                    .arg(&key)
                    .arg(format!("{ms}-0"))
                    .arg("f")
                    .arg("v")
                    .ignore();
            }
            let _: () = pipe.query(con).map_err(|e| e.to_string())?;
            q(con, &cmd(&["RAMPART.STREAMTOLEGACY", &key]));
            q(con, &cmd(&["XADD", &key, "2000-0", "f", "v"]));
            let got = render(&q(con, &cmd(&["RAMPART.STREAMFORMAT", &key])));
            q(con, &cmd(&["DEL", &key]));
            if got == format!("{expect:?}") {
                Ok(())
            } else {
                Err(format!("probe stream is {got}"))
            }
        },
    );
}

/// GET /metrics of `addr`: the body.
pub fn scrape(addr: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header end in {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected answer {head:?}"));
    }
    Ok(body.to_string())
}

/// The value of the unlabelled series `name` in a metrics page. (Chunked
/// transfer encoding only adds size lines, which never start with a
/// metric name.)
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until every node reports no legacy stream left, and checks that
/// at least one node counted legacy reads.
pub fn wait_for_zero_legacy_keys(cluster: &Cluster, ids: &[u64]) {
    for &id in ids {
        let addr = cluster.metrics_addr(id);
        wait_for(
            &format!("rampart_stream_legacy_format_keys 0 on node {id}"),
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                let page = scrape(&addr)?;
                match sample(&page, "rampart_stream_legacy_format_keys") {
                    Some(0.0) => Ok(()),
                    other => Err(format!("gauge is {other:?}")),
                }
            },
        );
    }
    let reads: f64 = ids
        .iter()
        .filter_map(|&id| scrape(&cluster.metrics_addr(id)).ok())
        .filter_map(|page| sample(&page, "rampart_stream_legacy_format_reads_total"))
        .sum();
    assert!(reads > 0.0, "legacy reads were not counted");
}
