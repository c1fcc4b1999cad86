//! Prometheus endpoints: `rampart dev` gives every process a metrics port,
//! prints the URLs, registers the nodes' URLs in the membership (shown by
//! `INFO rampart`), and the scraped values move when commands run.

mod common;

use common::{connect, wait_for};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// GET /metrics over a plain TcpStream; the body of a 200 answer.
fn scrape(port: u16) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
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
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

/// Joins the chunks of a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Samples of a text-format page: series (name plus labels) -> value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The one sample named exactly `series`.
fn value(page: &str, series: &str) -> Result<f64, String> {
    samples(page)
        .get(series)
        .copied()
        .ok_or_else(|| format!("no sample {series}"))
}

/// Sum of the samples of `name` whose labels contain every `label="v"`.
fn sum_where(page: &str, name: &str, labels: &[&str]) -> f64 {
    samples(page)
        .iter()
        .filter(|(series, _)| {
            series
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
                && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

fn has_type(page: &str, name: &str, kind: &str) -> bool {
    page.lines().any(|l| l == format!("# TYPE {name} {kind}"))
}

#[test]
fn dev_cluster_exports_proxy_and_raft_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy_port = common::free_ports(1)[0];
    let base = common::free_dev_base_port();
    let proxy_metrics = base + 30;
    let node_metrics: Vec<u16> = (1..=3).map(|i| base + 20 + i).collect();
    let mut cmd = common::rampart_command();
    cmd.arg("dev")
        .args(["--proxy-port", &proxy_port.to_string()])
        .args(["--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--fresh")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = common::spawn_tied(cmd);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[rampart dev] {line}");
            let _ = tx.send(line);
        }
    });

    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("ready") => break,
            Ok(line) => printed.push(line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rampart dev printed no `ready` line within 90 s ({e})");
            }
        }
    }
    // Every process's URL is printed.
    for port in node_metrics.iter().chain([&proxy_metrics]) {
        let url = format!("http://127.0.0.1:{port}/metrics");
        assert!(
            printed.iter().any(|l| l.contains(&url)),
            "{url} not printed in {printed:#?}"
        );
    }

    let addr = format!("127.0.0.1:{proxy_port}");
    let mut c = connect(&addr, None);
    for i in 0..5 {
        common::check(&mut c, &["SET", &format!("m:{i}"), "v"], "+OK");
    }
    common::check(&mut c, &["GET", "m:0"], "\"v\"");
    // Heavy reads (the node runs them on its heavy executor).
    common::check(&mut c, &["HSET", "m:h", "f", "1"], ":1");
    common::check(&mut c, &["HGETALL", "m:h"], "[\"f\", \"1\"]");
    common::check(&mut c, &["KEYS", "m:h"], "[\"m:h\"]");
    // Scripts run on the heavy executor's scripts lane; one calling a heavy
    // command is lowered to the heavy reads' priority.
    common::check(
        &mut c,
        &["EVAL", "return redis.call('GET', KEYS[1])", "1", "m:0"],
        "\"v\"",
    );
    common::check(
        &mut c,
        &["EVAL", "return redis.call('KEYS', 'm:h')", "0"],
        "[\"m:h\"]",
    );

    // INFO rampart lists each node with its metrics URL.
    let info = common::text(&mut c, &["INFO", "rampart"]);
    for port in &node_metrics {
        let url = format!("metrics_url=http://127.0.0.1:{port}/metrics");
        assert!(info.contains(&url), "{url} missing from INFO:\n{info}");
    }

    // The default cap is 128 connections per IP: `c` plus 127 more are
    // admitted, the 129th gets an error and is closed.
    let mut held = Vec::new();
    for _ in 0..127 {
        let mut raw = common::RawConn::connect(&addr).expect("connect");
        assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n".to_vec());
        held.push(raw);
    }
    let mut ninth = common::RawConn::connect(&addr).expect("connect");
    let answer = ninth
        .read_to_eof(Duration::from_secs(5))
        .expect("rejected connection is closed");
    assert!(
        answer.starts_with(b"-"),
        "129th connection got {:?}",
        String::from_utf8_lossy(&answer)
    );

    let page = wait_for(
        "the proxy's metrics to count the SETs and the reject",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let page = scrape(proxy_metrics)?;
            let sets = sum_where(
                &page,
                "rampart_commands_submitted_total",
                &["command=\"set\""],
            );
            let admitted = sum_where(
                &page,
                "rampart_commands_admitted_total",
                &["command=\"set\""],
            );
            let rejected = sum_where(
                &page,
                "rampart_connections_rejected_total",
                &["mode=\"error\""],
            );
            let timed = sum_where(
                &page,
                "rampart_command_duration_seconds_count",
                &["command=\"set\""],
            );
            if sets >= 5.0 && admitted >= 5.0 && rejected >= 1.0 && timed >= 5.0 {
                Ok(page)
            } else {
                Err(format!(
                    "set submitted={sets} admitted={admitted} duration_count={timed} rejected={rejected}"
                ))
            }
        },
    );
    assert!(has_type(
        &page,
        "rampart_commands_submitted_total",
        "counter"
    ));
    assert!(has_type(
        &page,
        "rampart_command_duration_seconds",
        "histogram"
    ));
    assert!(has_type(&page, "rampart_connections_open", "gauge"));
    assert!(value(&page, "rampart_connections_open").expect("open gauge") >= 8.0);
    assert_eq!(
        sum_where(
            &page,
            "rampart_commands_submitted_total",
            &["command=\"zunionstore\""]
        ),
        0.0,
        "an unused command must not count"
    );

    // Nodes: applied index past the SETs everywhere, exactly one leader.
    let pages = wait_for(
        "the nodes' Raft gauges",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let pages = node_metrics
                .iter()
                .map(|p| scrape(*p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut leaders = 0;
            for page in &pages {
                let applied = value(page, "rampart_raft_applied_index")?;
                if applied < 6.0 {
                    return Err(format!("applied index {applied}"));
                }
                leaders += value(page, "rampart_raft_is_leader")? as u32;
            }
            if leaders == 1 {
                Ok(pages)
            } else {
                Err(format!("{leaders} nodes report themselves leader"))
            }
        },
    );
    let leader_page = pages
        .iter()
        .find(|p| value(p, "rampart_raft_is_leader") == Ok(1.0))
        .expect("a leader page");
    assert!(value(leader_page, "rampart_raft_term").expect("term") >= 1.0);
    assert!(value(leader_page, "rampart_raft_committed_index").expect("commit") >= 6.0);
    assert!(has_type(
        leader_page,
        "rampart_raft_write_seconds",
        "histogram"
    ));
    assert!(value(leader_page, "rampart_raft_write_seconds_count").expect("writes") >= 5.0);
    assert!(
        sum_where(
            leader_page,
            "rampart_kv_requests_total",
            &["outcome=\"replies\""]
        ) >= 6.0
    );
    let leader_id = value(leader_page, "rampart_raft_leader_id").expect("leader id");
    for page in &pages {
        assert_eq!(value(page, "rampart_raft_leader_id"), Ok(leader_id));
    }

    // Layer 2 and the node-side metrics of the observability issue.
    for page in &pages {
        for (name, kind) in [
            ("rampart_raft_apply_seconds", "histogram"),
            ("rampart_raft_apply_queue_depth", "gauge"),
            ("rampart_raft_proposal_overflow_total", "counter"),
            ("rampart_heavy_queue_depth", "gauge"),
            ("rampart_heavy_running", "gauge"),
            ("rampart_heavy_threads", "gauge"),
            ("rampart_heavy_queue_capacity", "gauge"),
            ("rampart_heavy_rejected_total", "counter"),
            ("rampart_heavy_submitted_total", "counter"),
            ("rampart_heavy_demoted_total", "counter"),
            ("rampart_grpc_server_seconds", "histogram"),
            ("rampart_rocksdb_sst_bytes", "gauge"),
            ("rampart_rocksdb_live_data_bytes", "gauge"),
            ("rampart_rocksdb_pending_compaction_bytes", "gauge"),
            ("rampart_rocksdb_memtable_bytes", "gauge"),
            ("rampart_rocksdb_delayed_write_rate", "gauge"),
            ("rampart_rocksdb_write_stopped", "gauge"),
        ] {
            assert!(has_type(page, name, kind), "{name} is not a {kind}");
        }
        assert!(value(page, "rampart_raft_apply_seconds_count").expect("applies") >= 6.0);
        assert_eq!(value(page, "rampart_rocksdb_write_stopped"), Ok(0.0));
        for lane in ["reads", "scripts"] {
            let threads = format!("rampart_heavy_threads{{lane=\"{lane}\"}}");
            assert!(value(page, &threads).expect("threads") >= 1.0);
            let capacity = format!("rampart_heavy_queue_capacity{{lane=\"{lane}\"}}");
            assert_eq!(value(page, &capacity), Ok(64.0));
        }
    }
    // Followers serve the leader's AppendEntries.
    for page in pages
        .iter()
        .filter(|p| value(p, "rampart_raft_is_leader") == Ok(0.0))
    {
        assert!(
            sum_where(
                page,
                "rampart_grpc_server_seconds_count",
                &[
                    "service=\"rampart.v1.RaftTransport\"",
                    "method=\"AppendEntries\""
                ]
            ) >= 1.0
        );
    }
    let leader_port = node_metrics[pages
        .iter()
        .position(|p| value(p, "rampart_raft_is_leader") == Ok(1.0))
        .expect("leader index")];
    let leader_page = wait_for(
        "the leader's commit, heavy, gRPC and RocksDB metrics to move",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let page = scrape(leader_port)?;
            let checks = [
                (
                    "commit",
                    value(&page, "rampart_raft_commit_seconds_count")?,
                    6.0,
                ),
                (
                    "heavy submitted",
                    value(&page, "rampart_heavy_submitted_total{lane=\"reads\"}")?,
                    2.0,
                ),
                (
                    "heavy runs",
                    value(&page, "rampart_heavy_run_seconds_count{lane=\"reads\"}")?,
                    2.0,
                ),
                (
                    "scripts run",
                    value(&page, "rampart_heavy_submitted_total{lane=\"scripts\"}")?,
                    1.0,
                ),
                (
                    "scripts lowered (one called KEYS)",
                    value(&page, "rampart_heavy_demoted_total{lane=\"scripts\"}")?,
                    1.0,
                ),
                (
                    "kv execute",
                    sum_where(
                        &page,
                        "rampart_grpc_server_seconds_count",
                        &["service=\"rampart.v1.Kv\"", "method=\"Execute\""],
                    ),
                    8.0,
                ),
                (
                    "data memtable",
                    sum_where(&page, "rampart_rocksdb_memtable_bytes", &["cf=\"data\""]),
                    1.0,
                ),
            ];
            match checks.iter().find(|(_, v, min)| v < min) {
                None => Ok(page),
                Some((what, v, min)) => Err(format!("{what} = {v}, want >= {min}")),
            }
        },
    );
    assert!(has_type(
        &leader_page,
        "rampart_raft_commit_seconds",
        "histogram"
    ));
    assert!(has_type(
        &leader_page,
        "rampart_heavy_run_seconds",
        "histogram"
    ));
    assert!(has_type(
        &leader_page,
        "rampart_raft_proposal_queue_depth",
        "gauge"
    ));
    // Nothing overflowed in this quiet test; the series exist at 0.
    assert_eq!(
        sum_where(&leader_page, "rampart_raft_proposal_overflow_total", &[]),
        0.0
    );
    assert_eq!(
        sum_where(&leader_page, "rampart_heavy_rejected_total", &[]),
        0.0
    );

    // The proxy times its gRPC calls to the nodes.
    let proxy_page = scrape(proxy_metrics).expect("proxy metrics");
    assert!(has_type(
        &proxy_page,
        "rampart_grpc_client_seconds",
        "histogram"
    ));
    assert!(
        sum_where(
            &proxy_page,
            "rampart_grpc_client_seconds_count",
            &[
                "service=\"rampart.v1.Kv\"",
                "method=\"Execute\"",
                "outcome=\"ok\""
            ]
        ) >= 8.0
    );

    drop(held);
    drop(c);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    wait_for(
        "rampart dev to exit after SIGTERM",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    let _ = reader.join();
}
