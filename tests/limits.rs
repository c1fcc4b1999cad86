//! Hard limits against hostile commands (docs/limits.md):
//! - writes too large to replicate are refused before they are proposed
//!   (`rampart_proto::limits`): a clear error for that command, the commands
//!   pipelined with it still run, the connection stays usable, and a write
//!   just under the limit is replicated and committed;
//! - random picks with huge counts, string growth past
//!   `--proto-max-bulk-len` and range replies past `--max-reply-bytes` get
//!   Redis-style errors while another connection's GETs keep being served;
//! - a client that pipelines without reading its replies is closed at the
//!   proxy's output buffer limits.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{resp_command, resp_command_bytes, Cluster, ClusterOptions, RawConn};
use rampart_proto::limits::{replicated_size, MAX_REPLICATED_BYTES};

/// A `SET key value` of exactly `size` replicated bytes.
fn set_of_size(key: &[u8], size: usize) -> Vec<Vec<u8>> {
    let overhead = replicated_size(&vec![vec![b"SET".to_vec(), key.to_vec(), Vec::new()]]);
    vec![b"SET".to_vec(), key.to_vec(), vec![b'v'; size - overhead]]
}

fn send(conn: &mut RawConn, argv: &[Vec<u8>]) {
    let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    conn.send(&resp_command_bytes(&args)).expect("send");
}

#[test]
fn a_write_over_the_replication_limit_is_refused_and_others_go_on() {
    let cluster = Cluster::start();
    let mut conn = RawConn::connect(cluster.proxy_addr()).expect("connect");

    // One pipeline: a small write, one just over the limit, a small write.
    let over = set_of_size(b"big", MAX_REPLICATED_BYTES + 1);
    send(&mut conn, &[b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()]);
    send(&mut conn, &over);
    send(&mut conn, &[b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()]);
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    let refused = String::from_utf8_lossy(&conn.read_reply().expect("reply")).to_string();
    assert_eq!(
        refused,
        format!(
            "-ERR request of {} bytes exceeds the replication limit of {MAX_REPLICATED_BYTES} bytes\r\n",
            MAX_REPLICATED_BYTES + 1
        )
    );
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    assert_eq!(conn.cmd(&["EXISTS", "big"]), b":0\r\n");
    assert_eq!(
        conn.cmd(&["MGET", "a", "b"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    );

    // Inside MULTI it aborts the transaction, as a queueing error does.
    assert_eq!(conn.cmd(&["MULTI"]), b"+OK\r\n");
    send(&mut conn, &over);
    assert!(conn
        .read_reply()
        .expect("reply")
        .starts_with(b"-ERR request of "));
    assert!(conn.cmd(&["EXEC"]).starts_with(b"-EXECABORT"));

    // Just under the limit: committed, replicated, readable.
    let under = set_of_size(b"fits", MAX_REPLICATED_BYTES);
    let len = under[2].len();
    send(&mut conn, &under);
    assert_eq!(conn.read_reply().expect("reply"), b"+OK\r\n");
    assert_eq!(
        conn.cmd(&["STRLEN", "fits"]),
        format!(":{len}\r\n").into_bytes()
    );
    // Replication did not stall behind it.
    assert_eq!(conn.cmd(&["SET", "after", "x"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "after"]), b"$1\r\nx\r\n");
}

/// The nodes' limits in [`hostile_commands_get_errors_while_gets_go_on`]:
/// small, so the test data stays small.
const BULK_LIMIT: usize = 1 << 20;
const REPLY_LIMIT: usize = 4 << 20;

fn reply_too_large() -> Vec<u8> {
    format!(
        "-ERR reply exceeds the limit of {REPLY_LIMIT} bytes (max-reply-bytes); \
         read a smaller range or use SCAN\r\n"
    )
    .into_bytes()
}

/// GETs on their own connection until `stop`; returns each latency.
fn get_load(addr: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Duration>> {
    thread::spawn(move || {
        let mut conn = RawConn::connect(&addr).expect("load connect");
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            let reply = conn.cmd(&["GET", "load:key"]);
            latencies.push(start.elapsed());
            assert_eq!(reply, b"$5\r\nvalue\r\n", "GET under load");
        }
        latencies
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `n` arguments of `size` bytes each, distinct.
fn payloads(prefix: &str, n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = format!("{prefix}{i:06}").into_bytes();
            v.resize(size, b'x');
            v
        })
        .collect()
}

fn cmd_bytes(conn: &mut RawConn, argv: Vec<Vec<u8>>) -> Vec<u8> {
    send(conn, &argv);
    conn.read_reply().expect("reply")
}

#[test]
fn hostile_commands_get_errors_while_gets_go_on() {
    let cluster = Cluster::start_with(ClusterOptions {
        node_args: vec![
            "--proto-max-bulk-len".into(),
            BULK_LIMIT.to_string(),
            "--max-reply-bytes".into(),
            REPLY_LIMIT.to_string(),
        ],
        // The pipeline of ranges below must reach the node as one batch,
        // not be shed -BUSY by the proxy's heavy class.
        proxy_args: vec!["--policies".into(), "false".into()],
        ..Default::default()
    });
    let addr = cluster.proxy_addr().to_string();
    let mut c = RawConn::connect(&addr).expect("connect");
    assert_eq!(c.cmd(&["SET", "load:key", "value"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SADD", "s", "a", "b", "c"]), b":3\r\n");
    assert_eq!(c.cmd(&["HSET", "h", "f", "v"]), b":1\r\n");
    assert_eq!(c.cmd(&["ZADD", "z", "1", "m"]), b":1\r\n");
    // Collections of about 6 MB each: over the 4 MiB reply limit.
    for round in 0..6 {
        let items = payloads(&format!("e{round}-"), 1000, 1000);
        let mut rpush = vec![b"RPUSH".to_vec(), b"big:list".to_vec()];
        rpush.extend(items.iter().cloned());
        assert!(cmd_bytes(&mut c, rpush).starts_with(b":"));
        let mut sadd = vec![b"SADD".to_vec(), b"big:set".to_vec()];
        sadd.extend(items.iter().cloned());
        assert!(cmd_bytes(&mut c, sadd).starts_with(b":"));
        let mut hset = vec![b"HSET".to_vec(), b"big:hash".to_vec()];
        for item in &items {
            hset.push(item[..12].to_vec());
            hset.push(item.clone());
        }
        assert!(cmd_bytes(&mut c, hset).starts_with(b":"));
        for item in items.iter().take(100) {
            let xadd = vec![
                b"XADD".to_vec(),
                b"big:stream".to_vec(),
                b"*".to_vec(),
                b"f".to_vec(),
                item.repeat(10),
            ];
            assert!(cmd_bytes(&mut c, xadd).starts_with(b"$"));
        }
    }

    // Strings live in the key records KEYS walks: 6 of 900 KB.
    for i in 0..6 {
        let set = vec![
            b"SET".to_vec(),
            format!("big:str:{i}").into_bytes(),
            vec![b's'; 900_000],
        ];
        assert_eq!(cmd_bytes(&mut c, set), b"+OK\r\n");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = get_load(addr.clone(), stop.clone());
    let started = Instant::now();

    let out_of_range = b"-ERR value is out of range\r\n".to_vec();
    let too_long = b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n".to_vec();
    let bad_bit = b"-ERR bit offset is not an integer or out of range\r\n".to_vec();
    let (byte_limit, bit_limit) = (BULK_LIMIT.to_string(), (BULK_LIMIT * 8).to_string());
    let cases: Vec<(Vec<&str>, Vec<u8>)> = vec![
        // CVE-2023-25155's class: counts beyond ±LONG_MAX/2 ...
        (
            vec!["SRANDMEMBER", "s", "-4611686018427387904"],
            out_of_range.clone(),
        ),
        (
            vec!["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"],
            out_of_range.clone(),
        ),
        (
            vec!["ZRANDMEMBER", "z", "4611686018427387904", "WITHSCORES"],
            out_of_range.clone(),
        ),
        // ... and counts that would build a 2e9-element reply.
        (vec!["SRANDMEMBER", "s", "-2000000000"], reply_too_large()),
        (
            vec!["HRANDFIELD", "h", "-2000000000", "WITHVALUES"],
            reply_too_large(),
        ),
        (
            vec!["ZRANDMEMBER", "z", "-2000000000", "WITHSCORES"],
            reply_too_large(),
        ),
        // Growing a string past proto-max-bulk-len from a tiny request.
        (vec!["SETRANGE", "grow", &byte_limit, "x"], too_long.clone()),
        (vec!["SETBIT", "bits", &bit_limit, "1"], bad_bit.clone()),
        (
            vec!["BITFIELD", "bits", "SET", "u8", &bit_limit, "1"],
            bad_bit,
        ),
        // Range replies over max-reply-bytes.
        (vec!["LRANGE", "big:list", "0", "-1"], reply_too_large()),
        (vec!["SMEMBERS", "big:set"], reply_too_large()),
        (vec!["HGETALL", "big:hash"], reply_too_large()),
        (vec!["XRANGE", "big:stream", "-", "+"], reply_too_large()),
        (vec!["KEYS", "*"], reply_too_large()),
        (vec!["SUNION", "big:set", "s"], reply_too_large()),
    ];
    for (argv, want) in &cases {
        let got = c.cmd(argv);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "{argv:?}"
        );
        // Redis keeps the connection after these errors; so do we.
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n", "after {argv:?}");
    }

    // APPEND up to the limit works; one byte more is refused and the
    // value is unchanged.
    let half = vec![b'a'; BULK_LIMIT / 2];
    assert_eq!(
        cmd_bytes(
            &mut c,
            vec![b"APPEND".to_vec(), b"app".to_vec(), half.clone()]
        ),
        format!(":{}\r\n", BULK_LIMIT / 2).into_bytes()
    );
    assert_eq!(
        cmd_bytes(&mut c, vec![b"APPEND".to_vec(), b"app".to_vec(), half]),
        format!(":{BULK_LIMIT}\r\n").into_bytes()
    );
    assert_eq!(c.cmd(&["APPEND", "app", "x"]), too_long);
    assert_eq!(
        c.cmd(&["STRLEN", "app"]),
        format!(":{BULK_LIMIT}\r\n").into_bytes()
    );
    assert_eq!(
        c.cmd(&["SETRANGE", "grow", &(BULK_LIMIT - 1).to_string(), "x"]),
        format!(":{BULK_LIMIT}\r\n").into_bytes()
    );

    // Smaller ranges of the same collections are served.
    assert!(c
        .cmd(&["LRANGE", "big:list", "0", "9"])
        .starts_with(b"*10\r\n"));
    assert!(c
        .cmd(&["SSCAN", "big:set", "0", "COUNT", "10"])
        .starts_with(b"*2\r\n"));
    assert!(c
        .cmd(&["XRANGE", "big:stream", "-", "+", "COUNT", "5"])
        .starts_with(b"*5\r\n"));

    // A pipeline of ranges shares one budget: the first replies come, the
    // rest are refused, every command is answered and the connection lives.
    let range = resp_command(&["LRANGE", "big:list", "0", "999"]);
    let pipeline: Vec<u8> = range
        .iter()
        .copied()
        .cycle()
        .take(range.len() * 20)
        .collect();
    c.send(&pipeline).expect("send pipeline");
    let replies: Vec<Vec<u8>> = (0..20).map(|_| c.read_reply().expect("reply")).collect();
    assert!(replies[0].starts_with(b"*1000\r\n"));
    assert_eq!(replies[19], reply_too_large());
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");

    stop.store(true, Ordering::Relaxed);
    let mut latencies = load.join().expect("GET load thread");
    latencies.sort();
    assert!(!latencies.is_empty());
    eprintln!(
        "[limits] {} GETs during {:.1?} of hostile commands: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        started.elapsed(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
}

#[test]
fn clients_that_do_not_read_their_replies_are_closed() {
    let cluster = Cluster::start_with(ClusterOptions {
        proxy_args: vec![
            "--client-output-buffer-limit".into(),
            (64 << 20).to_string(),
            "--client-output-buffer-soft-limit".into(),
            (256 << 10).to_string(),
            "--client-output-buffer-soft-seconds".into(),
            "1".into(),
        ],
        ..Default::default()
    });
    let addr = cluster.proxy_addr().to_string();
    let mut c = RawConn::connect(&addr).expect("connect");
    send(
        &mut c,
        &[b"SET".to_vec(), b"v128k".to_vec(), vec![b'x'; 128 << 10]],
    );
    assert_eq!(c.read_reply().expect("reply"), b"+OK\r\n");
    send(
        &mut c,
        &[b"SET".to_vec(), b"v1m".to_vec(), vec![b'y'; 1 << 20]],
    );
    assert_eq!(c.read_reply().expect("reply"), b"+OK\r\n");

    // Hard limit: 600 GETs of 128 KiB (75 MiB of replies) in one pipeline
    // are over 64 MiB: closed at once, nothing sent.
    let mut hard = RawConn::connect(&addr).expect("connect");
    let get = resp_command(&["GET", "v128k"]);
    let pipeline: Vec<u8> = get.iter().copied().cycle().take(get.len() * 600).collect();
    hard.send(&pipeline).expect("send");
    let got = hard
        .read_to_eof(Duration::from_secs(20))
        .expect("closed at the hard limit");
    assert!(got.len() < 64 << 20, "{} bytes delivered", got.len());

    // Soft limit: 40 GETs of 1 MiB stay unread for longer than a second:
    // closed before every reply is delivered.
    let mut soft = RawConn::connect(&addr).expect("connect");
    let get = resp_command(&["GET", "v1m"]);
    let pipeline: Vec<u8> = get.iter().copied().cycle().take(get.len() * 40).collect();
    soft.send(&pipeline).expect("send");
    thread::sleep(Duration::from_secs(3));
    let got = soft
        .read_to_eof(Duration::from_secs(20))
        .expect("closed at the soft limit");
    assert!(got.len() < 40 << 20, "{} bytes delivered", got.len());

    // Everyone else is still served, including a reader of large replies.
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    let reply = c.cmd(&["GET", "v1m"]);
    assert_eq!(reply.len(), (1 << 20) + "$1048576\r\n\r\n".len());
    assert!(cluster.proxy_alive(&addr));
}
