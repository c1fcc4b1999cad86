//! Ordinary load is paced, never refused (issue 18): an application host's
//! connection pool is not an abuser. redis-benchmark's whole default test
//! set with 50 connections from one address, through a proxy with the
//! default policies, while the incident's abuser (37 connections from
//! another address in a loop of XREAD, KEYS * and HGETALL) runs, must
//! complete with zero error replies: redis-benchmark exits at the first
//! error reply, as most Redis clients give up on `-BUSY`.
//!
//! Timing is never asserted (speed goals are measured by
//! `rampart-loadtest incident`, docs/benchmarks.md).

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{resp_command, Cluster, RawConn};

/// The abuser's address, and the incident's connection count.
const ABUSER_IP: &str = "127.0.0.100";
const ABUSERS: usize = 37;
/// redis-benchmark's bound: far above its normal run (tens of seconds on
/// a busy 2-core machine), so only a hang fails on time.
const BENCH_TIMEOUT: Duration = Duration::from_secs(300);

/// The tests of redis-benchmark 7.0's default set, as its CSV names them.
const DEFAULT_TESTS: &[&str] = &[
    "PING_INLINE",
    "PING_MBULK",
    "SET",
    "GET",
    "INCR",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "HSET",
    "SPOP",
    "ZADD",
    "ZPOPMIN",
    "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)",
    "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)",
    "LRANGE_600 (first 600 elements)",
    "MSET (10 keys)",
];

/// Sends `commands` as one pipeline and checks that no reply is an error.
fn pipeline_ok(c: &mut RawConn, commands: &[Vec<String>]) {
    let mut bytes = Vec::new();
    for args in commands {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        bytes.extend(resp_command(&refs));
    }
    c.send(&bytes).expect("send pipeline");
    for args in commands {
        let reply = c.read_reply().expect("pipeline reply");
        assert!(
            !reply.starts_with(b"-"),
            "{} ...: {}",
            args[0],
            String::from_utf8_lossy(&reply)
        );
    }
}

/// The abuser's data: a 2,000-entry stream, a 300-field hash.
fn prepare(addr: &str) {
    let mut c = RawConn::connect(addr).expect("connect");
    let xadds: Vec<Vec<String>> = (0..2000)
        .map(|i| {
            [
                "XADD",
                "pool:stream",
                "*",
                "n",
                &i.to_string(),
                "v",
                "value",
            ]
            .map(str::to_string)
            .to_vec()
        })
        .collect();
    for chunk in xadds.chunks(250) {
        pipeline_ok(&mut c, chunk);
    }
    let mut hset: Vec<String> = vec!["HSET".into(), "pool:hash".into()];
    for i in 0..300 {
        hset.push(format!("f:{i}"));
        hset.push("value".into());
    }
    pipeline_ok(&mut c, &[hset]);
}

/// What one abusive connection saw.
#[derive(Debug, Default)]
struct Seen {
    ok: u64,
    busy: u64,
    /// Other replies and connection failures (with the first's text).
    other: Vec<String>,
}

/// The `retry after <N>ms` of a `-BUSY` reply.
fn retry_hint(reply: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(reply).ok()?.trim_end();
    let ms = text.rsplit("retry after ").next()?.strip_suffix("ms")?;
    ms.parse().ok().map(Duration::from_millis)
}

/// One abusive connection: the incident's loop (XREAD 8 : KEYS 1 :
/// HGETALL 1), honouring the `-BUSY` hint (at most 1 s), until `stop`.
fn abuse(addr: String, index: usize, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let loops: [&[&str]; 10] = [
        &["KEYS", "*"],
        &["HGETALL", "pool:hash"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
        &["XREAD", "COUNT", "100", "STREAMS", "pool:stream", "0-0"],
    ];
    let mut conn = None;
    let mut i = index;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match RawConn::connect_from(ABUSER_IP, &addr) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    seen.other.push(format!("connect: {e}"));
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let args = loops[i % loops.len()];
        i += 1;
        let reply = c.send(&resp_command(args)).and_then(|()| c.read_reply());
        match reply {
            Ok(r) if r.starts_with(b"-BUSY") => {
                seen.busy += 1;
                let hint = retry_hint(&r).unwrap_or(Duration::from_millis(100));
                thread::sleep(hint.min(Duration::from_secs(1)));
            }
            Ok(r) if r.starts_with(b"-") => {
                seen.other.push(String::from_utf8_lossy(&r).into_owned());
            }
            Ok(_) => seen.ok += 1,
            Err(e) => {
                seen.other.push(format!("{}: {e}", args[0]));
                conn = None;
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    seen
}

#[test]
fn redis_benchmark_default_set_with_50_connections_completes_while_an_abuser_runs() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let port = addr.rsplit(':').next().expect("proxy port").to_string();
    prepare(&addr);

    let stop = Arc::new(AtomicBool::new(false));
    let abusers: Vec<_> = (0..ABUSERS)
        .map(|i| {
            let (addr, stop) = (addr.clone(), stop.clone());
            thread::spawn(move || abuse(addr, i, stop))
        })
        .collect();
    // Let the abuser fill its share of every class first.
    thread::sleep(Duration::from_millis(500));

    // From 127.0.0.1: one application host with a pool of 50 connections.
    let started = Instant::now();
    let mut bench = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port])
        .args(["-c", "50", "-n", "1000", "--csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("redis-benchmark (Debian's redis-tools) must be installed: {e}")
        });
    let status = loop {
        if let Some(status) = bench.try_wait().expect("redis-benchmark status") {
            break status;
        }
        if started.elapsed() > BENCH_TIMEOUT {
            let _ = bench.kill();
            let _ = bench.wait();
            stop.store(true, Ordering::Relaxed);
            panic!("redis-benchmark did not finish within {BENCH_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let out = bench.wait_with_output().expect("redis-benchmark output");
    let seen: Vec<Seen> = abusers
        .into_iter()
        .map(|h| h.join().expect("abuser thread"))
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (ok, busy): (u64, u64) = seen.iter().fold((0, 0), |(o, b), s| (o + s.ok, b + s.busy));
    let other: Vec<&String> = seen.iter().flat_map(|s| &s.other).collect();
    eprintln!(
        "redis-benchmark took {took:?}; abuser: {ok} replies, {busy} BUSY, {} other \
         (first: {:?})\n{stdout}",
        other.len(),
        other.first()
    );

    // redis-benchmark stops at the first error reply with a failure status
    // and "Error from server: ..." on its output.
    assert!(
        status.success(),
        "redis-benchmark failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("Error") && !text.contains("BUSY"),
            "error replies:\n{text}"
        );
    }
    for test in DEFAULT_TESTS {
        assert!(
            stdout.contains(&format!("\"{test}\",")),
            "{test} missing from redis-benchmark's results:\n{stdout}"
        );
    }
    // The abuser really ran next to it, and its connections were admitted
    // (37 is under the default per-IP cap): what held it back was its share
    // of each class, not the connection cap.
    assert!(ok > 0, "the abuser got no reply");
    assert!(
        other.iter().all(|t| !t.contains("max connections")),
        "{other:?}"
    );
}
