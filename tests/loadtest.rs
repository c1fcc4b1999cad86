//! `rampart-loadtest` as a user runs it: the built binary against a real
//! cluster. `populate` must leave the collection it promised, `bench` must
//! exit 0 and write a well-formed JSON report with measured operations.
//! Nothing here asserts speed.
//!
//! The binary is found next to `rampart` in the same target dir (`cargo
//! nextest run --workspace --release` builds it); if it is missing it is
//! built with `cargo build -p rampart-loadtest` first.
//! `RAMPART_LOADTEST_BIN=/path` overrides the lookup.

mod common;

use common::{int, Cluster, RAMPART};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn loadtest_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RAMPART_LOADTEST_BIN") {
        return PathBuf::from(p);
    }
    let rampart = Path::new(RAMPART);
    let bin = rampart.with_file_name("rampart-loadtest");
    if bin.exists() {
        return bin;
    }
    // target/<profile>/rampart -> build the loadtest into the same place.
    let profile_dir = rampart.parent().expect("rampart has a parent dir");
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-p",
        "rampart-loadtest",
        "--bin",
        "rampart-loadtest",
    ])
    .env("CARGO_TARGET_DIR", target_dir)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    eprintln!("[loadtest] {} missing, running {cmd:?}", bin.display());
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building rampart-loadtest failed");
    assert!(
        bin.exists(),
        "cargo build did not produce {}",
        bin.display()
    );
    bin
}

/// Runs `rampart-loadtest <args>`; returns (success, stdout, stderr).
fn run_loadtest(args: &[&str]) -> (bool, String, String) {
    let bin = loadtest_bin();
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for rampart-loadtest") {
            Some(status) => break Some(status),
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let mut err = err.join().unwrap_or_default();
    if status.is_none() {
        err.push_str(&format!("\n[test: killed after {RUN_TIMEOUT:?}]"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

fn run_ok(args: &[&str]) -> String {
    let (ok, out, err) = run_loadtest(args);
    assert!(
        ok,
        "rampart-loadtest {args:?} failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    eprintln!("[loadtest] {args:?}\n{out}{err}");
    out
}

fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

/// Checks one row of the report: ops counted, percentiles present and
/// ordered, no errors.
fn check_summary(row: &serde_json::Value, what: &str) -> u64 {
    let ops = row["ops"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no ops in {row}"));
    assert!(ops > 0, "{what}: no operations measured: {row}");
    assert!(
        row["ops_per_sec"].as_f64().is_some_and(|v| v > 0.0),
        "{what}: {row}"
    );
    assert_eq!(row["errors"].as_u64(), Some(0), "{what}: errors: {row}");
    assert!(row["errors_by_prefix"].is_object(), "{what}: {row}");
    let lat = &row["latency_ms"];
    let get = |k: &str| {
        lat[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: latency_ms.{k} missing: {row}"))
    };
    let (p50, p90, p99, p999, max) = (get("p50"), get("p90"), get("p99"), get("p999"), get("max"));
    assert!(get("mean") > 0.0, "{what}: {row}");
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{what}: percentiles out of order: {lat}"
    );
    ops
}

#[test]
fn bench_and_populate_against_a_cluster() {
    let cluster = Cluster::start();
    let addr = cluster.proxy_addr().to_string();
    let dir = tempfile::tempdir().expect("temp dir");

    // A SET/GET mix, 4 connections × 4 in flight, for 2 s.
    let json = dir.path().join("bench.json");
    let out = run_ok(&[
        "bench",
        "--endpoint",
        &addr,
        "--duration",
        "2",
        "--connections",
        "4",
        "--pipeline",
        "4",
        "--keyspace",
        "100",
        "--command",
        "SET key:__key__ __data__",
        "--command",
        "GET key:__key__",
        "--weights",
        "1,3",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.contains("GET key:__key__") && out.contains("ALL"),
        "table:\n{out}"
    );
    let report = read_json(&json);
    assert_eq!(report["settings"]["connections"], 4, "{report}");
    assert_eq!(report["settings"]["pipeline"], 4, "{report}");
    assert_eq!(report["settings"]["endpoint"], addr.as_str(), "{report}");
    assert!(
        report["elapsed_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{report}"
    );
    let total = check_summary(&report["total"], "total");
    let commands = report["commands"].as_array().expect("commands array");
    assert_eq!(commands.len(), 2, "{report}");
    assert_eq!(commands[0]["command"], "SET key:__key__ __data__");
    assert_eq!(commands[0]["weight"], 1);
    assert_eq!(commands[1]["weight"], 3);
    let per_command: u64 = commands
        .iter()
        .enumerate()
        .map(|(i, c)| check_summary(c, &format!("commands[{i}]")))
        .sum();
    assert_eq!(per_command, total, "{report}");
    assert_eq!(report["connection_errors"]["broken"], 0, "{report}");

    // One big hash, then reads of its fields.
    let out = run_ok(&[
        "populate",
        "--endpoint",
        &addr,
        "--type",
        "hash",
        "--key",
        "lt:hash",
        "--elements",
        "1000",
        "--batch",
        "64",
        "--value-size",
        "10",
    ]);
    assert!(out.contains("1000 elements"), "{out}");
    let mut con = cluster.connection();
    assert_eq!(int(&mut con, &["HLEN", "lt:hash"]), 1000);
    assert_eq!(int(&mut con, &["HSTRLEN", "lt:hash", "f:999"]), 10);

    // Through a password-protected proxy, from two source addresses, a fixed
    // number of requests that all hit existing fields.
    let secured = cluster.start_proxy(&[1, 2, 3], Some("s3cret"));
    let json = dir.path().join("hget.json");
    run_ok(&[
        "bench",
        "--endpoint",
        &secured,
        "--password",
        "s3cret",
        "--source-ip",
        "127.0.0.2,127.0.0.3",
        "--connections",
        "2",
        "--pipeline",
        "8",
        "--requests",
        "500",
        "--keyspace",
        "1000",
        "--command",
        "HGET lt:hash f:__key__",
        "--quiet",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]);
    let report = read_json(&json);
    assert_eq!(
        check_summary(&report["total"], "hget total"),
        500,
        "{report}"
    );
    assert_eq!(
        report["settings"]["source_ips"],
        serde_json::json!(["127.0.0.2", "127.0.0.3"])
    );

    // A wrong address fails fast with a non-zero exit.
    let unused = common::free_ports(1)[0];
    let (ok, _, err) = run_loadtest(&[
        "bench",
        "--endpoint",
        &format!("127.0.0.1:{unused}"),
        "--requests",
        "1",
        "--command",
        "PING",
    ]);
    assert!(!ok, "bench against a closed port succeeded");
    assert!(err.contains("cannot reach"), "{err}");
}
