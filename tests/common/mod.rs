//! Harness for the cross-process integration tests: starts real `rampart node`
//! and `rampart proxy` processes on loopback with temp data dirs and talks to
//! them like a user would (the `redis` crate, raw TCP, `rampart admin`).
//!
//! Every wait is bounded and panics with a message naming what did not
//! happen; the child processes' output goes to files in the temp dir and the
//! tails are printed when a test fails. Children are killed when the
//! [`Cluster`] drops and, as a backstop for panics and for clusters kept in
//! statics, they get SIGKILL from the kernel when the test process exits
//! (`PR_SET_PDEATHSIG`, armed against a spawner thread that lives as long as
//! the process).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Path of the launcher binary built by cargo for this test run.
pub const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");

/// Upper bound for "the cluster becomes usable" style waits. Generous: the
/// machine has two cores shared with other builds.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(45);
/// Upper bound for a single `rampart admin ...` invocation.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `check` every `every` until it returns `Some`, or panics after
/// `timeout` with `what` (and the last failure reason) in the message.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
        }
        thread::sleep(every);
    }
}

/// Ports that were free a moment ago: bound together (so they differ) on
/// 127.0.0.1:0, then released for the child processes to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A base port for `rampart dev --base-port` whose ports (base+1 ..=
/// base+30: clients +1..3, Raft +11..13, node metrics +21..23, proxy
/// metrics +30) are all free right now. Drawn below Linux's default
/// ephemeral range (32768-60999), where other tests' outgoing connections
/// could take one of them before `rampart dev` binds it.
pub fn free_dev_base_port() -> u16 {
    use rand::Rng;
    for _ in 0..200 {
        let base: u16 = rand::thread_rng().gen_range(20_000..32_700);
        if (base + 1..=base + 30).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of 30 ports found");
}

// ---------------------------------------------------------------------------
// Process spawning with a parent-death signal.

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// All long-lived children are spawned by this one thread. PR_SET_PDEATHSIG
/// fires when the *thread* that forked the child exits, so spawning from a
/// test thread would kill a shared cluster when its first test ends; this
/// thread only ends with the process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                let parent = std::process::id() as i32;
                for (mut cmd, reply) in rx {
                    // SAFETY: the closure runs between fork and exec and only
                    // makes async-signal-safe syscalls (prctl, getppid, kill).
                    unsafe {
                        cmd.pre_exec(move || {
                            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                                .map_err(std::io::Error::from)?;
                            // The parent may have died before prctl took effect.
                            if nix::unistd::getppid().as_raw() != parent {
                                return Err(std::io::Error::other("test process already gone"));
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the child-spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it dies with the test process.
pub fn spawn_tied(cmd: Command) -> Child {
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .expect("child-spawner thread is alive");
    rx.recv()
        .expect("child-spawner answered")
        .unwrap_or_else(|e| panic!("spawning {RAMPART} failed: {e}"))
}

/// `Command::new(RAMPART)` without any inherited `RAMPART_*` (or `OTEL_*`:
/// no trace export unless a test asks for it) variables, so the flags the
/// harness passes are the whole configuration.
pub fn rampart_command() -> Command {
    let mut cmd = Command::new(RAMPART);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("RAMPART_") || key_text.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log file {}: {e}", path.display()))
}

fn kill_child(child: &mut Child) {
    // SIGKILL; "already exited" errors are fine.
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `rampart <args>` to completion (bounded by `timeout`) and returns
/// (success, stdout, stderr). A hung invocation is killed and reported as a
/// failure, never waited on forever.
pub fn run_rampart(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut child = rampart_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {RAMPART} {args:?}: {e}"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_child(&mut child);
                break None;
            }
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let mut err = err_reader.join().unwrap_or_default();
    if status.is_none() {
        err.push_str(&format!("\n[harness: killed after {timeout:?}]"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

// ---------------------------------------------------------------------------
// One test cluster at a time per test binary: clusters are heavy for two
// cores, and timing-sensitive steps (elections) get flaky when they overlap.

struct Slot {
    busy: Mutex<bool>,
    freed: Condvar,
}

fn slot() -> &'static Slot {
    static SLOT: OnceLock<Slot> = OnceLock::new();
    SLOT.get_or_init(|| Slot {
        busy: Mutex::new(false),
        freed: Condvar::new(),
    })
}

struct SlotGuard;

impl SlotGuard {
    fn acquire() -> SlotGuard {
        let s = slot();
        let mut busy = s.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy {
            busy = s.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy = true;
        SlotGuard
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let s = slot();
        *s.busy.lock().unwrap_or_else(|p| p.into_inner()) = false;
        s.freed.notify_one();
    }
}

// ---------------------------------------------------------------------------
// The cluster.

/// Knobs passed through to the node and proxy command lines.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// `--snapshot-logs N` on every node.
    pub snapshot_logs: Option<u64>,
    /// `--snapshot-keep-logs N` on every node (log entries kept behind a
    /// snapshot; the node's default of 1000 hides compaction in short tests).
    pub snapshot_keep_logs: Option<u64>,
    /// `--election-timeout-ms MS` on every node.
    pub election_timeout_ms: Option<u64>,
    /// `--retry-deadline-ms MS` on the proxy.
    pub retry_deadline_ms: Option<u64>,
    /// Extra flags for every node, e.g. `["--heavy-threads", "1"]`.
    pub node_args: Vec<String>,
    /// Give every node `--metrics-addr` on a port of its own
    /// ([`Cluster::metrics_addr`]).
    pub node_metrics: bool,
    /// Extra flags for every proxy, e.g. `["--policies", "false"]`.
    pub proxy_args: Vec<String>,
    /// Environment variables for every node and proxy process, e.g.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (tests/tracing.rs).
    pub env: Vec<(String, String)>,
    /// Run the cluster links in plaintext (`--insecure`) instead of the
    /// default mutual TLS with certificates made by `rampart certs`.
    pub insecure: bool,
}

/// `rampart admin status` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u64,
    pub leader_id: u64,
    pub term: u64,
    pub state: String,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

impl NodeStatus {
    pub fn parse(line: &str) -> Result<NodeStatus, String> {
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .map_err(|e| format!("admin status printed non-JSON {line:?}: {e}"))?;
        let num = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("admin status JSON lacks integer {k:?}: {line}"))
        };
        Ok(NodeStatus {
            node_id: num("node_id")?,
            leader_id: num("leader_id")?,
            term: num("term")?,
            state: v
                .get("state")
                .and_then(|x| x.as_str())
                .ok_or_else(|| format!("admin status JSON lacks string \"state\": {line}"))?
                .to_ascii_lowercase(),
            last_log_index: num("last_log_index")?,
            committed_index: num("committed_index")?,
            applied_index: num("applied_index")?,
            snapshot_index: num("snapshot_index")?,
            purged_index: num("purged_index")?,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.state == "leader" && self.leader_id == self.node_id
    }
}

struct Node {
    id: u64,
    raft_addr: String,
    client_addr: String,
    data_dir: PathBuf,
    metrics_addr: String,
    child: Option<Child>,
}

struct Proxy {
    addr: String,
    child: Child,
}

/// Three `rampart node` processes and one or more `rampart proxy` processes.
pub struct Cluster {
    dir: tempfile::TempDir,
    opts: ClusterOptions,
    nodes: Mutex<Vec<Node>>,
    proxies: Mutex<Vec<Proxy>>,
    proxy_addr: String,
    /// `rampart certs` output for this cluster (`None`: `--insecure`).
    certs: Option<PathBuf>,
    _slot: SlotGuard,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(opts: ClusterOptions) -> Cluster {
        let slot = SlotGuard::acquire();
        let dir = tempfile::Builder::new()
            .prefix("rampart-it-")
            .tempdir()
            .expect("create temp dir");
        let ports = free_ports(10);
        let nodes = (1..=3u64)
            .map(|id| {
                let i = (id - 1) as usize;
                Node {
                    id,
                    raft_addr: format!("127.0.0.1:{}", ports[i]),
                    client_addr: format!("127.0.0.1:{}", ports[3 + i]),
                    data_dir: dir.path().join(format!("node{id}")),
                    metrics_addr: format!("127.0.0.1:{}", ports[7 + i]),
                    child: None,
                }
            })
            .collect();
        let certs = (!opts.insecure).then(|| {
            let certs = dir.path().join("certs");
            let certs_arg = certs.to_string_lossy().into_owned();
            let (ok, out, err) = run_rampart(&["certs", "--dir", &certs_arg], ADMIN_TIMEOUT);
            assert!(ok, "rampart certs failed\nstdout: {out}\nstderr: {err}");
            certs
        });
        let mut cluster = Cluster {
            dir,
            certs,
            opts,
            nodes: Mutex::new(nodes),
            proxies: Mutex::new(Vec::new()),
            proxy_addr: format!("127.0.0.1:{}", ports[6]),
            _slot: slot,
        };
        eprintln!(
            "[harness] cluster dir {} (node/proxy logs are there)",
            cluster.dir.path().display()
        );
        for id in 1..=3 {
            cluster.spawn_node(id);
        }
        for id in 1..=3 {
            cluster.wait_node_listening(id);
        }
        cluster.init();
        let leader = cluster.wait_for_leader(STARTUP_TIMEOUT);
        eprintln!("[harness] leader elected: node {leader}");
        let addr = cluster.proxy_addr.clone();
        cluster.spawn_proxy_at(&addr, &[1, 2, 3], None);
        cluster.proxy_addr = addr;
        cluster
    }

    /// The folder of this cluster's certificates (ca.pem, node-N.pem,
    /// proxy.pem, admin.pem and their -key.pem), unless it runs insecure.
    pub fn certs_dir(&self) -> Option<&Path> {
        self.certs.as_deref()
    }

    /// The `--cluster-tls-*` flags of certificate `name` (`node-1`, `proxy`,
    /// `admin`), or `--insecure` for a plaintext cluster.
    pub fn tls_flags(&self, name: &str) -> Vec<String> {
        let Some(dir) = &self.certs else {
            return vec!["--insecure".into()];
        };
        let file = |f: String| dir.join(f).to_string_lossy().into_owned();
        vec![
            "--cluster-tls-ca-file".into(),
            file("ca.pem".into()),
            "--cluster-tls-cert-file".into(),
            file(format!("{name}.pem")),
            "--cluster-tls-key-file".into(),
            file(format!("{name}-key.pem")),
        ]
    }

    /// What a test that starts its own proxy in front of this cluster must
    /// pass for the proxy to reach the nodes.
    pub fn proxy_tls_args(&self) -> Vec<String> {
        self.tls_flags("proxy")
    }

    /// `rampart admin ARGS` with the admin certificate; (ok, stdout, stderr).
    pub fn admin(&self, args: &[&str]) -> (bool, String, String) {
        let tls = self.tls_flags("admin");
        let mut all: Vec<&str> = vec!["admin"];
        all.extend(args);
        all.extend(tls.iter().map(String::as_str));
        run_rampart(&all, ADMIN_TIMEOUT)
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:port` of the main proxy.
    pub fn proxy_addr(&self) -> &str {
        &self.proxy_addr
    }

    pub fn raft_addr(&self, id: u64) -> String {
        self.with_node(id, |n| n.raft_addr.clone())
    }

    pub fn client_addr(&self, id: u64) -> String {
        self.with_node(id, |n| n.client_addr.clone())
    }

    /// Where node `id` serves `/metrics` (with `node_metrics` set).
    pub fn metrics_addr(&self, id: u64) -> String {
        self.with_node(id, |n| n.metrics_addr.clone())
    }

    pub fn redis_client(&self) -> redis::Client {
        redis_client(&self.proxy_addr, None)
    }

    /// A fresh sync RESP2 connection to the main proxy, with I/O timeouts so
    /// a hung proxy fails the test instead of hanging it.
    pub fn connection(&self) -> redis::Connection {
        connect(&self.proxy_addr, None)
    }

    fn with_node<T>(&self, id: u64, f: impl FnOnce(&mut Node) -> T) -> T {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let node = nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node with id {id}"));
        f(node)
    }

    fn spawn_node(&self, id: u64) {
        let dir = self.dir.path().to_path_buf();
        let opts = self.opts.clone();
        let tls = self.tls_flags(&format!("node-{id}"));
        self.with_node(id, |n| {
            assert!(n.child.is_none(), "node {id} is already running");
            let mut cmd = rampart_command();
            cmd.arg("node")
                .args(["--id", &id.to_string()])
                .args(["--raft-addr", &n.raft_addr])
                .args(["--client-addr", &n.client_addr])
                .arg("--data-dir")
                .arg(&n.data_dir);
            if let Some(s) = opts.snapshot_logs {
                cmd.args(["--snapshot-logs", &s.to_string()]);
            }
            if let Some(k) = opts.snapshot_keep_logs {
                cmd.args(["--snapshot-keep-logs", &k.to_string()]);
            }
            if let Some(e) = opts.election_timeout_ms {
                cmd.args(["--election-timeout-ms", &e.to_string()]);
            }
            if opts.node_metrics {
                cmd.args(["--metrics-addr", &n.metrics_addr]);
            }
            cmd.args(&tls);
            cmd.args(&opts.node_args);
            cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
            cmd.stdin(Stdio::null())
                .stdout(log_file(&dir.join(format!("node{id}.stdout.log"))))
                .stderr(log_file(&dir.join(format!("node{id}.stderr.log"))));
            n.child = Some(spawn_tied(cmd));
        });
    }

    /// Panics (with the node's log) if node `id` has exited.
    fn assert_node_alive(&self, id: u64) {
        let exited = self.with_node(id, |n| match n.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        });
        if let Some(status) = exited {
            panic!(
                "node {id} exited unexpectedly with {status}\n{}",
                self.log_tail(&format!("node{id}"), 80)
            );
        }
    }

    fn wait_node_listening(&self, id: u64) {
        let (raft, client) = self.with_node(id, |n| (n.raft_addr.clone(), n.client_addr.clone()));
        wait_for(
            &format!("node {id} to accept TCP on {raft} and {client}"),
            STARTUP_TIMEOUT,
            Duration::from_millis(100),
            || {
                self.assert_node_alive(id);
                for addr in [&raft, &client] {
                    tcp_accepts(addr)?;
                }
                Ok(())
            },
        );
    }

    fn init(&self) {
        let members: Vec<String> = (1..=3)
            .map(|id| format!("{id}={}/{}", self.raft_addr(id), self.client_addr(id)))
            .collect();
        // Admin is served on the Raft listener only.
        let target = self.raft_addr(1);
        let mut args = vec!["init", "--node", target.as_str()];
        for m in &members {
            args.push("--member");
            args.push(m);
        }
        // Retried: the gRPC server may accept TCP a moment before it serves.
        // A retry after a half-successful init may fail with "already
        // initialised"; the leader wait that follows is the real check.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let (ok, out, err) = self.admin(&args);
            if ok {
                return;
            }
            if Instant::now() >= deadline || self.current_leader().is_some() {
                if self.current_leader().is_some() {
                    return;
                }
                panic!(
                    "rampart admin {} failed\nstdout: {out}\nstderr: {err}\n{}",
                    args.join(" "),
                    self.all_logs()
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    fn running_ids(&self) -> Vec<u64> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    /// `rampart admin status` of node `id` (by its Raft address).
    pub fn try_status(&self, id: u64) -> Result<NodeStatus, String> {
        let addr = self.raft_addr(id);
        let (ok, out, err) = self.admin(&["status", "--node", &addr]);
        if !ok {
            return Err(format!("admin status --node {addr} failed: {err}"));
        }
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("admin status printed no JSON line: {out:?}"))?;
        NodeStatus::parse(line)
    }

    pub fn status(&self, id: u64) -> NodeStatus {
        self.try_status(id)
            .unwrap_or_else(|e| panic!("status of node {id}: {e}"))
    }

    /// The id of the running node that reports itself leader (highest term
    /// wins if, transiently, two do), or None.
    pub fn current_leader(&self) -> Option<u64> {
        self.running_ids()
            .into_iter()
            .filter_map(|id| self.try_status(id).ok())
            .filter(|s| s.is_leader())
            .max_by_key(|s| s.term)
            .map(|s| s.node_id)
    }

    /// Waits (bounded) until a running node is leader and a majority of
    /// running nodes agree on it; returns its id.
    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        wait_for(
            "a leader that the running nodes agree on",
            timeout,
            Duration::from_millis(200),
            || {
                let statuses: Vec<NodeStatus> = self
                    .running_ids()
                    .into_iter()
                    .filter_map(|id| self.try_status(id).ok())
                    .collect();
                let leader = statuses
                    .iter()
                    .filter(|s| s.is_leader())
                    .max_by_key(|s| s.term)
                    .ok_or_else(|| format!("no leader among {statuses:?}"))?;
                let agree = statuses
                    .iter()
                    .filter(|s| s.leader_id == leader.node_id && s.term == leader.term)
                    .count();
                if agree >= 2 {
                    Ok(leader.node_id)
                } else {
                    Err(format!("leader not yet agreed on: {statuses:?}"))
                }
            },
        )
    }

    /// The current leader (waits for one, bounded).
    pub fn leader_id(&self) -> u64 {
        self.wait_for_leader(STARTUP_TIMEOUT)
    }

    /// The process id of node `id`, if it is running.
    pub fn node_pid(&self, id: u64) -> Option<u32> {
        self.with_node(id, |n| n.child.as_ref().map(|c| c.id()))
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill_node(&self, id: u64) {
        self.with_node(id, |n| {
            let mut child = n
                .child
                .take()
                .unwrap_or_else(|| panic!("node {id} is not running"));
            kill_child(&mut child);
        });
        eprintln!("[harness] killed node {id}");
    }

    /// Starts node `id` again with the same ports and data dir.
    pub fn restart_node(&self, id: u64) {
        self.spawn_node(id);
        self.wait_node_listening(id);
        eprintln!("[harness] restarted node {id}");
    }

    /// `rampart admin snapshot` on node `id`.
    pub fn snapshot(&self, id: u64) {
        let addr = self.raft_addr(id);
        let (ok, out, err) = self.admin(&["snapshot", "--node", &addr]);
        assert!(
            ok,
            "admin snapshot --node {addr} failed\nstdout: {out}\nstderr: {err}"
        );
    }

    /// Starts another proxy in front of the given nodes; returns its address.
    pub fn start_proxy(&self, node_ids: &[u64], requirepass: Option<&str>) -> String {
        let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
        self.spawn_proxy_at(&addr, node_ids, requirepass);
        addr
    }

    fn spawn_proxy_at(&self, addr: &str, node_ids: &[u64], requirepass: Option<&str>) {
        let nodes: Vec<String> = node_ids.iter().map(|&id| self.client_addr(id)).collect();
        let index = self.proxies.lock().unwrap_or_else(|p| p.into_inner()).len();
        let mut cmd = rampart_command();
        cmd.arg("proxy")
            .args(["--listen", addr])
            .args(["--nodes", &nodes.join(",")]);
        if let Some(pw) = requirepass {
            cmd.args(["--requirepass", pw]);
        }
        if let Some(ms) = self.opts.retry_deadline_ms {
            cmd.args(["--retry-deadline-ms", &ms.to_string()]);
        }
        cmd.args(self.tls_flags("proxy"));
        cmd.args(&self.opts.proxy_args);
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        let dir = self.dir.path();
        cmd.stdin(Stdio::null())
            .stdout(log_file(&dir.join(format!("proxy{index}.stdout.log"))))
            .stderr(log_file(&dir.join(format!("proxy{index}.stderr.log"))));
        let child = spawn_tied(cmd);
        self.proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Proxy {
                addr: addr.to_string(),
                child,
            });
        wait_for(
            &format!("proxy {addr} to answer PING"),
            STARTUP_TIMEOUT,
            Duration::from_millis(200),
            || {
                if let Some(status) = self.proxy_exit_status(addr) {
                    panic!(
                        "proxy {addr} exited with {status}\n{}",
                        self.log_tail(&format!("proxy{index}"), 80)
                    );
                }
                raw_ping(addr, requirepass)
            },
        );
    }

    fn proxy_exit_status(&self, addr: &str) -> Option<std::process::ExitStatus> {
        let mut proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        proxies
            .iter_mut()
            .find(|p| p.addr == addr)
            .and_then(|p| p.child.try_wait().ok().flatten())
    }

    /// Sends `signal` to the proxy process listening on `addr`.
    pub fn signal_proxy(&self, addr: &str, signal: nix::sys::signal::Signal) {
        let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        let proxy = proxies
            .iter()
            .find(|p| p.addr == addr)
            .unwrap_or_else(|| panic!("no proxy at {addr}"));
        let pid = nix::unistd::Pid::from_raw(proxy.child.id() as i32);
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("{signal} to proxy {addr}: {e}"));
    }

    /// True while the proxy process listening on `addr` has not exited.
    pub fn proxy_alive(&self, addr: &str) -> bool {
        self.proxy_exit_status(addr).is_none()
    }

    /// Last `lines` lines of `<name>.stdout.log` and `<name>.stderr.log`.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let mut s = String::new();
        for stream in ["stdout", "stderr"] {
            let path = self.dir.path().join(format!("{name}.{stream}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            s.push_str(&format!(
                "----- {} (last {} lines) -----\n{}\n",
                path.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        s
    }

    fn all_logs(&self) -> String {
        let mut s = String::new();
        for id in 1..=3 {
            s.push_str(&self.log_tail(&format!("node{id}"), 60));
        }
        let n = self.proxies.lock().unwrap_or_else(|p| p.into_inner()).len();
        for i in 0..n {
            s.push_str(&self.log_tail(&format!("proxy{i}"), 60));
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self
            .proxies
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            kill_child(&mut p.child);
        }
        for n in self
            .nodes
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            if let Some(mut c) = n.child.take() {
                kill_child(&mut c);
            }
        }
        if thread::panicking() {
            eprintln!("{}", self.all_logs());
            if std::env::var_os("RAMPART_KEEP_TEST_DIRS").is_some() {
                let kept = std::mem::replace(
                    &mut self.dir,
                    tempfile::tempdir().expect("placeholder temp dir"),
                );
                eprintln!("[harness] kept {}", kept.keep().display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Client helpers.

pub fn redis_client(addr: &str, query: Option<&str>) -> redis::Client {
    let url = match query {
        Some(q) => format!("redis://{addr}/?{q}"),
        None => format!("redis://{addr}/"),
    };
    redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("redis url {url}: {e}"))
}

/// Sync connection to `addr` (`query` e.g. `protocol=resp3`), with 15 s I/O
/// timeouts.
pub fn connect(addr: &str, query: Option<&str>) -> redis::Connection {
    let client = redis_client(addr, query);
    let con = client
        .get_connection_with_timeout(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("connect to {addr} ({query:?}): {e}"));
    con.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("set read timeout");
    con.set_write_timeout(Some(Duration::from_secs(15)))
        .expect("set write timeout");
    con
}

fn tcp_accepts(addr: &str) -> Result<(), String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    TcpStream::connect_timeout(&sa, Duration::from_secs(2))
        .map(|_| ())
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// One PING over a raw socket (AUTH first when a password is set).
fn raw_ping(addr: &str, password: Option<&str>) -> Result<(), String> {
    let mut c = RawConn::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    if let Some(pw) = password {
        c.send(&resp_command(&["AUTH", pw]))
            .map_err(|e| e.to_string())?;
        let r = c.read_reply().map_err(|e| e.to_string())?;
        if r != b"+OK\r\n" {
            return Err(format!("AUTH answered {:?}", String::from_utf8_lossy(&r)));
        }
    }
    c.send(b"*1\r\n$4\r\nPING\r\n").map_err(|e| e.to_string())?;
    let r = c.read_reply().map_err(|e| e.to_string())?;
    if r == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", String::from_utf8_lossy(&r)))
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn resp_command(args: &[&str]) -> Vec<u8> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp_command_bytes(&bytes)
}

/// [`resp_command`] for binary-safe arguments.
pub fn resp_command_bytes(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A raw TCP client that writes bytes and reads whole RESP2/RESP3 replies as
/// the exact bytes the server sent.
pub struct RawConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawConn {
    pub fn connect(addr: &str) -> std::io::Result<RawConn> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
        let stream = TcpStream::connect_timeout(&sa, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_write_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(RawConn {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Connects from the loopback source address `source_ip` (127.0.0.x),
    /// so a test can open more connections than the proxy's per-IP cap.
    pub fn connect_from(source_ip: &str, addr: &str) -> std::io::Result<RawConn> {
        let dest: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
        let source: SocketAddr = format!("{source_ip}:0")
            .parse()
            .map_err(|e| std::io::Error::other(format!("{source_ip}: {e}")))?;
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&source.into())?;
        socket.connect_timeout(&dest.into(), Duration::from_secs(5))?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(RawConn {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Sends `args` as a RESP command and returns the reply bytes.
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(&resp_command(args))
            .unwrap_or_else(|e| panic!("send {args:?}: {e}"));
        self.read_reply()
            .unwrap_or_else(|e| panic!("reply to {args:?}: {e}"))
    }

    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(std::io::Error::other(format!(
                "line not CRLF-terminated: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        Ok(line)
    }

    /// Reads one complete reply, returning its raw bytes.
    pub fn read_reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_reply_into(&mut out)?;
        Ok(out)
    }

    fn read_reply_into(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let line = self.read_line()?;
        out.extend_from_slice(&line);
        let bad = |what: &str| std::io::Error::other(format!("bad {what} header {line:?}"));
        let len = |line: &[u8]| -> Option<i64> {
            std::str::from_utf8(&line[1..line.len() - 2])
                .ok()?
                .parse()
                .ok()
        };
        match line[0] {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(()),
            b'$' | b'!' | b'=' => {
                let n = len(&line).ok_or_else(|| bad("bulk"))?;
                if n < 0 {
                    return Ok(());
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut buf)?;
                out.extend_from_slice(&buf);
                Ok(())
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = len(&line).ok_or_else(|| bad("aggregate"))?;
                let items = if matches!(line[0], b'%' | b'|') {
                    n * 2
                } else {
                    n
                };
                for _ in 0..items.max(0) {
                    self.read_reply_into(out)?;
                }
                // An attribute precedes the real reply.
                if line[0] == b'|' {
                    self.read_reply_into(out)?;
                }
                Ok(())
            }
            _ => Err(bad("reply")),
        }
    }

    /// Reads until the server closes the connection (bounded by `timeout`);
    /// returns everything read. Errors if the connection stays open.
    pub fn read_to_eof(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok(all),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // A reset after the server closed counts as closed.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(all),
                Err(e) => return Err(format!("read error {e} after {all:?}")),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "connection still open after {timeout:?}; read so far: {:?}",
                    String::from_utf8_lossy(&all)
                ));
            }
        }
    }
}

/// `redis::Value` of a server error as its full text, e.g. "ERR syntax error".
pub fn error_text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::ServerError(e) => Some(match e.details() {
            Some(d) => format!("{} {}", e.code(), d),
            None => e.code().to_string(),
        }),
        _ => None,
    }
}

/// Sends one command and returns the raw reply value (server errors come back
/// as `Value::ServerError`, not as `Err`). Panics on I/O errors.
pub fn query(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    use redis::ConnectionLike;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    con.req_command(&cmd)
        .unwrap_or_else(|e| panic!("{args:?} failed at the transport level: {e}"))
}

/// Parses the key/value lines of an INFO reply into a map, by section.
pub fn parse_info(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            section = name.trim().to_ascii_lowercase();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once(':') {
            out.entry(section.clone())
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Blocking commands: a client per waiter, and the proxy's count of them.

/// A raw RESP connection to `addr` (panics when it cannot connect).
pub fn raw_connect(addr: &str) -> RawConn {
    RawConn::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Sends `args` on its own raw connection and thread; returns the raw reply
/// and how long it took.
pub fn spawn_blocked(addr: &str, args: &[&str]) -> thread::JoinHandle<(String, Duration)> {
    let addr = addr.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    thread::spawn(move || {
        let mut c = raw_connect(&addr);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let reply = c.cmd(&args);
        (
            String::from_utf8_lossy(&reply).into_owned(),
            started.elapsed(),
        )
    })
}

/// `blocked_clients` of `INFO clients` on the proxy behind `c`.
pub fn blocked_clients(c: &mut RawConn) -> usize {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "clients"])).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
}

/// Waits until the proxy at `addr` reports at least `n` clients blocked in
/// blocking commands (`INFO clients`).
pub fn wait_blocked(addr: &str, n: usize) {
    let mut c = raw_connect(addr);
    wait_for(
        &format!("{n} blocked clients on {addr}"),
        Duration::from_secs(20),
        Duration::from_millis(20),
        || match blocked_clients(&mut c) {
            blocked if blocked >= n => Ok(()),
            blocked => Err(format!("blocked_clients = {blocked}")),
        },
    );
}

/// Waits until no client is blocked on `addr` (earlier waiters have left),
/// so a following [`wait_blocked`] counts only the next one.
pub fn wait_unblocked(addr: &str) {
    let mut c = raw_connect(addr);
    wait_for(
        &format!("no blocked clients on {addr}"),
        Duration::from_secs(20),
        Duration::from_millis(20),
        || match blocked_clients(&mut c) {
            0 => Ok(()),
            n => Err(format!("blocked_clients = {n}")),
        },
    );
}

// ---------------------------------------------------------------------------
// One cluster shared by all tests of a test binary.

/// What the shared tests talk to: normally a Rampart cluster started by the
/// harness. With `RAMPART_TEST_REDIS_ADDR=127.0.0.1:PORT` they run against an
/// existing server instead, which is how the expected replies were checked
/// against a real Redis; Rampart-only checks are skipped then.
pub struct Target {
    pub cluster: Option<Cluster>,
    pub addr: String,
}

impl Target {
    pub fn is_rampart(&self) -> bool {
        self.cluster.is_some()
    }

    pub fn connection(&self) -> redis::Connection {
        connect(&self.addr, None)
    }
}

static SHARED: OnceLock<Result<Target, String>> = OnceLock::new();

/// Kills the shared cluster's processes and removes its temp dir when the
/// test binary exits (statics are never dropped).
extern "C" fn shutdown_shared() {
    if let Some(Ok(Target {
        cluster: Some(c), ..
    })) = SHARED.get()
    {
        c.shutdown();
    }
}

/// The cluster shared by every test in this binary, started on first use.
/// If starting it failed, every later caller fails fast with the reason.
pub fn shared_target() -> &'static Target {
    let result = SHARED.get_or_init(|| {
        if let Ok(addr) = std::env::var("RAMPART_TEST_REDIS_ADDR") {
            return Ok(Target {
                cluster: None,
                addr,
            });
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(Cluster::start)) {
            Ok(cluster) => {
                // SAFETY: registers a plain extern "C" fn with libc; it only
                // touches the already-initialised static.
                unsafe {
                    nix::libc::atexit(shutdown_shared);
                }
                Ok(Target {
                    addr: cluster.proxy_addr().to_string(),
                    cluster: Some(cluster),
                })
            }
            Err(payload) => Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into())),
        }
    });
    match result {
        Ok(t) => t,
        Err(e) => panic!("the shared test cluster failed to start: {e}"),
    }
}

impl Cluster {
    /// Kills every child and removes the temp dir; for clusters that are
    /// never dropped (the shared one).
    pub fn shutdown(&self) {
        for p in self
            .proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            kill_child(&mut p.child);
        }
        for n in self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            if let Some(mut c) = n.child.take() {
                kill_child(&mut c);
            }
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// Compact, exact rendering of a reply for assertions:
/// `+OK` simple string, `"v"` bulk, `:5` integer, `nil`, `[a, b]` array,
/// `{k: v}` map, `~[..]` set, `,1.5` double, `#t`/`#f` boolean,
/// `-ERR text` error, `=txt:...` verbatim.
pub fn render(v: &redis::Value) -> String {
    use redis::Value as V;
    let list = |items: &[V]| items.iter().map(render).collect::<Vec<_>>().join(", ");
    match v {
        V::Nil => "nil".into(),
        V::Int(i) => format!(":{i}"),
        V::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        V::Array(items) => format!("[{}]", list(items)),
        V::SimpleString(s) => format!("+{s}"),
        V::Okay => "+OK".into(),
        V::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        V::Attribute { data, .. } => render(data),
        V::Set(items) => format!("~[{}]", list(items)),
        V::Double(d) => format!(",{d}"),
        V::Boolean(b) => if *b { "#t" } else { "#f" }.into(),
        V::VerbatimString { format, text } => format!("={format}:{text}"),
        V::BigNumber(n) => format!("({n}"),
        V::Push { kind, data } => format!(">{kind:?}[{}]", list(data)),
        V::ServerError(_) => format!("-{}", error_text(v).unwrap_or_default()),
    }
}

/// Sends `args` and asserts the rendered reply equals `expected`.
#[track_caller]
pub fn check(con: &mut redis::Connection, args: &[&str], expected: &str) {
    let got = render(&query(con, args));
    assert_eq!(got, expected, "reply to {args:?}");
}

/// Sends `args` and returns the rendered reply.
pub fn ask(con: &mut redis::Connection, args: &[&str]) -> String {
    render(&query(con, args))
}

/// Sends `args` and returns the integer reply (panics on anything else).
#[track_caller]
pub fn int(con: &mut redis::Connection, args: &[&str]) -> i64 {
    match query(con, args) {
        redis::Value::Int(i) => i,
        other => panic!(
            "expected an integer reply to {args:?}, got {}",
            render(&other)
        ),
    }
}

/// Sends `args` and returns the bulk/verbatim/simple string reply as text.
#[track_caller]
pub fn text(con: &mut redis::Connection, args: &[&str]) -> String {
    match query(con, args) {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!(
            "expected a string reply to {args:?}, got {}",
            render(&other)
        ),
    }
}

/// A redis-server on a free loopback port, killed when dropped.
pub struct RedisServer {
    child: Child,
    pub addr: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `None` when redis-server is not installed (`./dev.sh` installs it).
pub fn start_redis_server() -> Option<RedisServer> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return None;
    }
    let port = free_ports(1)[0];
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = RedisServer {
        child: spawn_tied(cmd),
        addr: format!("127.0.0.1:{port}"),
    };
    wait_for(
        "redis-server answers",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            std::net::TcpStream::connect(&server.addr)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
    Some(server)
}

/// Runs one transcript (`run(addr, protocol)`: a line per command with its
/// rendered reply) on a real redis-server and on Rampart at `ours`, in RESP2
/// and RESP3, and fails on any line that differs, except those `excused`
/// (protocol, our line) marks as answered differently by the 7.0 server
/// installed here than by Redis 7.2. Without redis-server there is nothing
/// to compare with (`./dev.sh` installs it).
pub fn assert_answers_as_redis(
    ours: &str,
    run: impl Fn(&str, Option<&str>) -> Vec<String>,
    excused: impl Fn(Option<&str>, &str) -> bool,
) {
    let Some(redis) = start_redis_server() else {
        eprintln!("redis-server is not installed: nothing to compare with (./dev.sh installs it)");
        return;
    };
    for protocol in [None, Some("protocol=resp3")] {
        let theirs = run(&redis.addr, protocol);
        let mine = run(ours, protocol);
        assert_eq!(
            mine.len(),
            theirs.len(),
            "{protocol:?}: transcripts of different lengths"
        );
        let differ: Vec<String> = mine
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a != b && !excused(protocol, a))
            .map(|(a, b)| format!("ours:   {a}\ntheirs: {b}"))
            .collect();
        assert!(differ.is_empty(), "{protocol:?}:\n{}", differ.join("\n"));
    }
}

/// The `rampart-loadtest` binary: `RAMPART_LOADTEST_BIN` if set, else next
/// to [`RAMPART`] in the same target dir, built there first with `cargo
/// build -p rampart-loadtest` (same profile) if it is missing. Note that an
/// existing binary is used as is: rebuild it after changing the loadtest.
pub fn loadtest_bin() -> PathBuf {
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
    eprintln!("[tests] {} missing, running {cmd:?}", bin.display());
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building rampart-loadtest failed");
    assert!(
        bin.exists(),
        "cargo build did not produce {}",
        bin.display()
    );
    bin
}
