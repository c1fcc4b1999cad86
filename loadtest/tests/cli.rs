//! The `rampart-loadtest` binary against a tiny in-process RESP server (no
//! cluster needed): pipelining, the mix, error counting and the JSON report.
//! The cluster-backed smoke test is `tests/loadtest.rs` in the root package.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;

const BIN: &str = env!("CARGO_BIN_EXE_rampart-loadtest");

/// Reads one RESP array of bulk strings; `None` at EOF.
fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0; len + 2];
        r.read_exact(&mut buf).ok()?;
        buf.truncate(len);
        args.push(buf);
    }
    Some(args)
}

/// Answers PING with PONG, `FAIL` and `XREAD` with a BUSY error, `XADD`
/// as a server without streams, anything else with `+OK`, one reply per
/// command, in order.
fn fake_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                while let Some(args) = read_command(&mut reader) {
                    let reply: &[u8] = match args[0].to_ascii_uppercase().as_slice() {
                        b"PING" => b"+PONG\r\n",
                        b"FAIL" | b"XREAD" => b"-BUSY test class full retry after 1ms\r\n",
                        b"XADD" => b"-ERR unknown command 'xadd', with args beginning with: \r\n",
                        _ => b"+OK\r\n",
                    };
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run rampart-loadtest");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bench_counts_replies_and_errors_by_template() {
    let addr = fake_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("r.json");
    let (ok, out, err) = run(&[
        "bench",
        "--endpoint",
        &addr,
        "--requests",
        "2000",
        "--connections",
        "3",
        "--pipeline",
        "7",
        "--command",
        "SET k:__key__ __data__",
        "--command",
        "FAIL __rand_int__",
        "--weights",
        "3,1",
        "--seed",
        "7",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("errors by prefix") && out.contains("BUSY"),
        "{out}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert_eq!(report["total"]["ops"], 2000, "{report}");
    let set = &report["commands"][0];
    let fail = &report["commands"][1];
    assert_eq!(set["errors"], 0);
    let failed = fail["ops"].as_u64().expect("ops");
    assert!(failed > 0 && failed < 1000, "{report}");
    assert_eq!(fail["errors"], failed);
    assert_eq!(fail["errors_by_prefix"]["BUSY"]["count"], failed);
    assert_eq!(
        fail["errors_by_prefix"]["BUSY"]["example"],
        "BUSY test class full retry after 1ms"
    );
    assert_eq!(report["total"]["errors"], failed);
}

#[test]
fn bench_by_duration_with_warmup() {
    let addr = fake_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("r.json");
    let (ok, out, err) = run(&[
        "bench",
        "--endpoint",
        &addr,
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--connections",
        "2",
        "--command",
        "GET x",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert!(
        report["total"]["ops"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(report["settings"]["warmup_secs"], 0.2);
    assert!(report["commands"][0].get("weight").is_none(), "{report}");
}

#[test]
fn populate_sends_every_element() {
    let addr = fake_server();
    let (ok, out, err) = run(&[
        "populate",
        "--endpoint",
        &addr,
        "--type",
        "zset",
        "--key",
        "z",
        "--elements",
        "2500",
        "--batch",
        "1000",
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("2500 elements in 3 commands"), "{out}");
}

#[test]
fn bad_input_is_rejected() {
    let (ok, _, err) = run(&["bench", "--command", "SET \"unterminated"]);
    assert!(!ok);
    assert!(err.contains("unterminated quote"), "{err}");
    let (ok, _, err) = run(&["bench", "--command", "GET a", "--weights", "1,2"]);
    assert!(!ok);
    assert!(err.contains("2 weights given for 1 commands"), "{err}");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let (ok, _, err) = run(&["bench", "--endpoint", &addr, "--command", "PING"]);
    assert!(!ok);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn incident_survives_error_replies_and_writes_its_reports() {
    let addr = fake_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("incident.json");
    let svg = dir.path().join("incident.svg");
    let (ok, out, err) = run(&[
        "incident",
        "--smoke",
        "--phase-secs",
        "1",
        "--stream-entries",
        "300",
        "--endpoint",
        &addr,
        "--node-metrics",
        "",
        "--cheap-source-ips",
        "none",
        "--abuser-source-ip",
        "none",
        "--abusers",
        "3",
        "--seed",
        "3",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("unknown command 'xadd'"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert_eq!(report["prepare"]["errors"], 300, "{report}");
    assert!(report["prepare"]["stream_len"].is_null(), "{report}");
    let abuse = &report["phases"]["abuse"];
    assert!(
        abuse["abuser_busy"].as_u64().is_some_and(|n| n > 0),
        "{abuse}"
    );
    assert!(
        abuse["abuser_ops"].as_u64().is_some_and(|n| n > 0),
        "{abuse}"
    );
    assert_eq!(abuse["abuser_conn_rejects"], 0, "{abuse}");
    for phase in ["baseline", "abuse", "recovery"] {
        let p = &report["phases"][phase];
        assert!(p["raft_commit_p99_ms"].is_null() && p["apply_overflow"].is_null());
        assert_eq!(p["cheap_errors"], 0, "{p}");
        assert!(p["cheap_p99_ms"].as_f64().is_some_and(|v| v > 0.0), "{p}");
    }
    let plot = std::fs::read_to_string(&svg).expect("plot written");
    assert!(plot.contains("<svg") && plot.contains("abuse"), "{plot}");
}
