//! `rampart-loadtest` as a user runs it: the built binary against a real
//! cluster. `populate` must leave the collection it promised, `bench` must
//! exit 0 and write a well-formed JSON report with measured operations;
//! `incident --smoke` (alone and `--compare`d against a second proxy with
//! every policy off) must write the report of issue 7 and a plot.
//! Nothing here asserts speed.
//!
//! The binary is found next to `rampart` in the same target dir (`cargo
//! nextest run --workspace --release` builds it); if it is missing it is
//! built with `cargo build -p rampart-loadtest` first.
//! `RAMPART_LOADTEST_BIN=/path` overrides the lookup.

mod common;

use common::{int, loadtest_bin, Cluster};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The nine per-phase fields of issue 7.
const PHASE_FIELDS: [&str; 9] = [
    "cheap_p50_ms",
    "cheap_p99_ms",
    "cheap_p999_ms",
    "cheap_errors",
    "abuser_ops",
    "abuser_busy",
    "abuser_conn_rejects",
    "raft_commit_p99_ms",
    "apply_overflow",
];

/// Checks one run's report: `{"phases": {baseline, abuse, recovery}}` with
/// exactly the fields, ordinary clients measured in every phase,
/// the stream prepared. `raft_metrics`: whether the Raft fields must be
/// numbers (nodes scraped) rather than `null`.
fn check_incident(report: &serde_json::Value, entries: u64, raft_metrics: bool) {
    let phases = report["phases"]
        .as_object()
        .unwrap_or_else(|| panic!("no phases object: {report}"));
    let names: Vec<&str> = phases.keys().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["baseline", "abuse", "recovery"] {
        let phase = phases[name]
            .as_object()
            .unwrap_or_else(|| panic!("phase {name} missing: {report}"));
        let mut keys: Vec<&str> = phase.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let mut want = PHASE_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "fields of phase {name}");
        for f in &PHASE_FIELDS[..7] {
            assert!(phase[*f].is_number(), "{name}.{f}: {}", phase[*f]);
        }
        let (p50, p99, p999) = (
            phase["cheap_p50_ms"].as_f64().unwrap(),
            phase["cheap_p99_ms"].as_f64().unwrap(),
            phase["cheap_p999_ms"].as_f64().unwrap(),
        );
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999,
            "{name}: percentiles {p50} {p99} {p999}"
        );
        for f in ["raft_commit_p99_ms", "apply_overflow"] {
            if !raft_metrics {
                assert!(phase[f].is_null(), "{name}.{f}: {}", phase[f]);
            } else if name == "baseline" {
                // The calm phase: every node answers, writes commit.
                assert!(phase[f].is_number(), "{name}.{f} not scraped: {report}");
            } else {
                // Under abuse a scrape may time out: a number or null.
                assert!(phase[f].is_number() || phase[f].is_null(), "{name}.{f}");
            }
        }
        let detail = &report["phase_details"][name];
        assert!(
            detail["cheap_ops"].as_u64().is_some_and(|n| n > 0),
            "{name}: no ordinary replies: {detail}"
        );
        if name != "abuse" {
            for f in ["abuser_ops", "abuser_busy", "abuser_conn_rejects"] {
                assert_eq!(phase[f], 0, "{name}.{f}");
            }
        }
    }
    // The big stream is there (fails with `unknown command 'xadd'` until the
    // node implements streams).
    let prepare = &report["prepare"];
    assert_eq!(prepare["errors"], 0, "prepare errors: {prepare}");
    assert_eq!(prepare["stream_len"].as_u64(), Some(entries), "{prepare}");
    let abuser = &report["abuser"];
    assert_eq!(
        abuser["commands"].as_array().map(Vec::len),
        Some(3),
        "{abuser}"
    );
    let timeline = report["timeline"].as_array().expect("timeline array");
    assert_eq!(
        timeline.len() as f64,
        3.0 * report["settings"]["phase_secs"].as_f64().unwrap()
    );
    assert!(
        timeline.iter().any(|p| p["cheap_p99_ms"].is_number()),
        "{report}"
    );
}

fn check_plot(path: &Path, magic: &[u8]) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{} is tiny", path.display());
    assert!(
        bytes.windows(magic.len()).take(200).any(|w| w == magic),
        "{} lacks {:?}",
        path.display(),
        String::from_utf8_lossy(magic)
    );
}

/// A second proxy in front of the cluster's nodes with every policy off
/// (what `--compare` is for: policies on vs off on the same data).
struct OpenProxy {
    addr: String,
    child: Child,
}

impl OpenProxy {
    fn start(cluster: &Cluster) -> OpenProxy {
        let addr = format!("127.0.0.1:{}", common::free_ports(1)[0]);
        let nodes: Vec<String> = (1..=3).map(|id| cluster.client_addr(id)).collect();
        let log = std::fs::File::create(cluster.dir().join("open-proxy.log")).expect("log file");
        let mut cmd = common::rampart_command();
        cmd.arg("proxy")
            .args(["--listen", &addr])
            .args(["--nodes", &nodes.join(",")])
            .args(cluster.proxy_tls_args())
            .args(["--policies", "false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let child = common::spawn_tied(cmd);
        common::wait_for(
            &format!("policy-free proxy {addr} to answer PING"),
            common::STARTUP_TIMEOUT,
            Duration::from_millis(200),
            || {
                let mut c = common::RawConn::connect(&addr).map_err(|e| e.to_string())?;
                match c.cmd(&["PING"]).as_slice() {
                    b"+PONG\r\n" => Ok(()),
                    other => Err(String::from_utf8_lossy(other).into_owned()),
                }
            },
        );
        OpenProxy { addr, child }
    }
}

impl Drop for OpenProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn incident_smoke_and_compare_against_a_cluster() {
    let cluster = Cluster::start();
    let guarded = cluster.proxy_addr().to_string();
    let open = OpenProxy::start(&cluster);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();

    // One run against the proxy with the default policies; the harness's
    // nodes serve no metrics, so the Raft fields are null.
    let (json, svg) = (path("incident.json"), path("incident.svg"));
    let out = run_ok(&[
        "incident",
        "--smoke",
        "--quiet",
        "--endpoint",
        &guarded,
        "--seed",
        "7",
        "--json",
        &s(&json),
        "--plot",
        &s(&svg),
    ]);
    assert!(
        out.contains("baseline") && out.contains("recovery") && out.contains("abuse / baseline"),
        "table:\n{out}"
    );
    let report = read_json(&json);
    check_incident(&report, 2000, false);
    assert_eq!(report["endpoint"], guarded.as_str());
    // The abuser's 37 connections from one address fit under the default
    // cap of 128 per IP: what bounds it is its share and time budget of each
    // class (its requests wait in its own line or get -BUSY), and its
    // commands still run.
    let abuse = &report["phases"]["abuse"];
    assert_eq!(abuse["abuser_conn_rejects"], 0, "{report}");
    assert!(
        abuse["abuser_ops"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    check_plot(&svg, b"<svg");

    // --compare: the same scenario through the policy-free proxy, data
    // reused; PNG this time.
    let (json, png) = (path("compare.json"), path("compare.png"));
    let out = run_ok(&[
        "incident",
        "--smoke",
        "--quiet",
        "--reuse-data",
        "--endpoint",
        &guarded,
        "--compare",
        &open.addr,
        "--name",
        "on",
        "--compare-name",
        "off",
        "--json",
        &s(&json),
        "--plot",
        &s(&png),
    ]);
    assert!(
        out.contains("=== on ===") && out.contains("=== off ===") && out.contains("off / on"),
        "table:\n{out}"
    );
    let report = read_json(&json);
    assert_eq!(report["order"], serde_json::json!(["on", "off"]));
    check_incident(&report["runs"]["on"], 2000, false);
    check_incident(&report["runs"]["off"], 2000, false);
    assert_eq!(report["runs"]["off"]["endpoint"], open.addr.as_str());
    assert_eq!(report["runs"]["on"]["prepare"]["reused"], true);
    // No per-IP cap on the open proxy.
    assert_eq!(
        report["runs"]["off"]["phases"]["abuse"]["abuser_conn_rejects"],
        0
    );
    for phase in ["baseline", "abuse", "recovery"] {
        let row = &report["ratios"]["second_over_first"][phase];
        for f in PHASE_FIELDS {
            assert!(
                row.get(f).is_some_and(|v| v.is_number() || v.is_null()),
                "ratio {phase}.{f}: {row}"
            );
        }
    }
    for name in ["on", "off"] {
        assert!(
            report["ratios"]["abuse_over_baseline"][name]["cheap_p99_ms"].is_number(),
            "{report}"
        );
    }
    check_plot(&png, b"PNG");
}

/// `rampart dev` registers each node's metrics URL, so `incident` finds the
/// nodes through the proxy's INFO and reports Raft commit p99 and overflow.
#[test]
fn incident_scrapes_node_metrics_of_a_dev_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy_port = common::free_ports(1)[0];
    let base = common::free_dev_base_port();
    let mut cmd = common::rampart_command();
    cmd.arg("dev")
        .args(["--proxy-port", &proxy_port.to_string()])
        .args(["--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--fresh")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = common::spawn_tied(cmd);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("ready") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rampart dev printed no `ready` line within 90 s ({e})");
            }
        }
    }
    let json = dir.path().join("incident.json");
    let endpoint = format!("127.0.0.1:{proxy_port}");
    let result = std::panic::catch_unwind(|| {
        run_ok(&[
            "incident",
            "--smoke",
            "--quiet",
            "--endpoint",
            &endpoint,
            "--json",
            json.to_str().expect("utf-8 path"),
        ]);
        let report = read_json(&json);
        let urls = report["node_metrics"]["urls"]
            .as_array()
            .expect("node_metrics.urls");
        assert_eq!(urls.len(), 3, "{report}");
        check_incident(&report, 2000, true);
        let baseline = &report["phase_details"]["baseline"];
        assert_eq!(baseline["nodes_scraped"], 3, "{baseline}");
        assert!(
            baseline["raft_commits"].as_u64().is_some_and(|n| n > 0),
            "{baseline}"
        );
        assert!(
            report["timeline"]
                .as_array()
                .expect("timeline")
                .iter()
                .any(|p| p["raft_commit_p99_ms"].is_number()),
            "{report}"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
