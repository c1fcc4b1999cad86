//! The cluster under test: N `rampart node` processes, each in its own
//! network namespace ([`super::netns`]), and proxies in the root namespace
//! on 127.0.0.1, which is where the workload clients connect.
//!
//! Every node listens on the same ports (its namespace has its own
//! address), Raft on 7000 and client gRPC on 7001. A node's data dir is its
//! own tmpfs when the disk nemesis is on, so it can be filled without
//! touching the host's disks.
//!
//! ## Why libfaketime for the clock nemesis
//! The leader stamps Raft entries with its wall clock, so the faults worth
//! injecting are one node's wall clock jumping or drifting while the others
//! keep the real time. The host clock is shared by every node and by the
//! harness, and Linux time namespaces offset only CLOCK_MONOTONIC and
//! CLOCK_BOOTTIME, never CLOCK_REALTIME; so the wall clock has to be faked
//! per process. Debian's libfaketime does that through LD_PRELOAD, and
//! reads its offset from a file the harness rewrites
//! (`FAKETIME_TIMESTAMP_FILE`, re-read on every call with
//! `FAKETIME_NO_CACHE=1`, measured at ~4 µs per wall-clock read here).
//! `FAKETIME_DONT_FAKE_MONOTONIC=1` leaves the monotonic clock real, so
//! tokio timers, election timeouts and heartbeats behave; only the time the
//! node believes it is (and stamps on entries, and judges expiry by) moves;
//! `NO_FAKE_STAT=1` keeps file timestamps real.
//! Only offsets (`+N`/`-N` seconds) are written: an absolute `@date` in the
//! file would restart from that date at every process start.

use super::client::{oneshot, text};
use super::error::ChaosError;
use super::firewall::{proxy_uid, Firewall};
use super::janitor::{self, Resource, Token};
use super::netns::Network;
use super::procs::Proc;
use super::sys::run;
use super::RunClock;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod faults;

use faults::write_clock_file;
pub use faults::{clock_file_text, strip_ansi};

pub const RAFT_PORT: u16 = 7000;
pub const CLIENT_PORT: u16 = 7001;
/// Debian's libfaketime.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Name of the balloon file next to a node's data dir on its tmpfs.
const BALLOON: &str = "balloon";

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub nodes: usize,
    pub proxies: usize,
    pub rampart_bin: PathBuf,
    /// Data dirs and logs go here.
    pub dir: PathBuf,
    pub election_timeout_ms: u64,
    /// `--retry-deadline-ms` of the proxies.
    pub proxy_retry_deadline_ms: u64,
    /// Start the nodes under libfaketime (this library).
    pub faketime: Option<PathBuf>,
    /// Give every node a tmpfs data dir of this many MiB.
    pub tmpfs_mib: Option<u64>,
    /// Run proxy `j` as uid/gid [`proxy_uid`]`(j)`, so that the partition
    /// nemesis can cut one proxy from nodes ([`super::firewall`]).
    pub proxy_uids: bool,
}

/// Something that happened to the cluster that the harness did not do
/// (a node exiting by itself), or a note about what a fault did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub t_ns: u64,
    pub text: String,
}

struct Node {
    /// 1-based; also the Raft id.
    id: usize,
    ip: Ipv4Addr,
    ns: String,
    /// The node's directory: log, clock file, and the (tmpfs) disk.
    home: PathBuf,
    proc: Option<Proc>,
    paused: bool,
    mount: Option<Token>,
    clock_offset_secs: i64,
    blocked: Vec<Ipv4Addr>,
}

impl Node {
    fn disk(&self) -> PathBuf {
        self.home.join("disk")
    }
    fn data_dir(&self) -> PathBuf {
        self.disk().join("data")
    }
    fn log(&self) -> PathBuf {
        self.home.join("node.log")
    }
    fn clock_file(&self) -> PathBuf {
        self.home.join("faketime")
    }
    fn client_addr(&self) -> String {
        format!("{}:{CLIENT_PORT}", self.ip)
    }
    fn raft_addr(&self) -> String {
        format!("{}:{RAFT_PORT}", self.ip)
    }
}

struct Proxy {
    addr: String,
    log: PathBuf,
    proc: Option<Proc>,
}

pub struct Cluster {
    cfg: ClusterConfig,
    clock: RunClock,
    firewall: Firewall,
    nodes: Vec<Node>,
    proxies: Vec<Proxy>,
    events: Vec<Event>,
    /// The root namespace's nft table cutting proxies from nodes, once
    /// created, and what it drops now (proxy -> nodes).
    proxy_table: Option<Token>,
    proxy_blocked: BTreeMap<usize, std::collections::BTreeSet<usize>>,
    // Dropped last: the processes and mounts go first.
    net: Network,
}

/// `rampart admin` and other one-shot commands get this long.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

impl Cluster {
    /// Creates the network, starts the nodes, initialises the cluster,
    /// starts the proxies and waits for a leader.
    pub async fn start(
        cfg: ClusterConfig,
        clock: RunClock,
        firewall: Firewall,
    ) -> Result<Cluster, ChaosError> {
        if !(1..=9).contains(&cfg.nodes) {
            return Err(ChaosError::Setup(format!(
                "--nodes must be between 1 and 9, not {}",
                cfg.nodes
            )));
        }
        let net = Network::create(cfg.nodes).await?;
        let nodes = (1..=cfg.nodes)
            .map(|id| Node {
                id,
                ip: net.node_ip(id),
                ns: net.ns(id),
                home: cfg.dir.join(format!("n{id}")),
                proc: None,
                paused: false,
                mount: None,
                clock_offset_secs: 0,
                blocked: Vec::new(),
            })
            .collect();
        let ports = free_ports(cfg.proxies)?;
        let proxies = ports
            .iter()
            .enumerate()
            .map(|(i, port)| Proxy {
                addr: format!("127.0.0.1:{port}"),
                log: cfg.dir.join(format!("proxy{i}.log")),
                proc: None,
            })
            .collect();
        let mut c = Cluster {
            cfg,
            clock,
            firewall,
            nodes,
            proxies,
            events: Vec::new(),
            proxy_table: None,
            proxy_blocked: BTreeMap::new(),
            net,
        };
        for i in 0..c.nodes.len() {
            c.prepare_node_dirs(i).await?;
        }
        for i in 0..c.nodes.len() {
            c.spawn_node(i)?;
        }
        for i in 0..c.nodes.len() {
            c.wait_listening(i, STARTUP_TIMEOUT).await?;
        }
        c.init().await?;
        for j in 0..c.proxies.len() {
            c.spawn_proxy(j)?;
        }
        for j in 0..c.proxies.len() {
            c.wait_proxy(j, STARTUP_TIMEOUT).await?;
        }
        c.wait_leader(STARTUP_TIMEOUT).await?;
        Ok(c)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn proxy_addrs(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.addr.clone()).collect()
    }

    pub fn subnet(&self) -> String {
        self.net.subnet_text()
    }

    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.election_timeout_ms)
    }

    pub fn has_tmpfs(&self) -> bool {
        self.cfg.tmpfs_mib.is_some()
    }

    pub fn has_faketime(&self) -> bool {
        self.cfg.faketime.is_some()
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn note(&mut self, text: String) {
        self.events.push(Event {
            t_ns: self.clock.now_ns(),
            text,
        });
    }

    async fn prepare_node_dirs(&mut self, i: usize) -> Result<(), ChaosError> {
        let pid = std::process::id();
        let node = &mut self.nodes[i];
        let disk = node.disk();
        std::fs::create_dir_all(&disk)
            .map_err(|e| ChaosError::io(format!("create {}", disk.display()), e))?;
        if let Some(mib) = self.cfg.tmpfs_mib {
            let source = super::names::tmpfs_source(pid, node.id);
            let size = format!("size={mib}m");
            let target = disk.to_string_lossy().into_owned();
            run("mount", &["-t", "tmpfs", "-o", &size, &source, &target]).await?;
            node.mount = Some(janitor::register(Resource::Mount(disk.clone())));
        }
        let data = node.data_dir();
        std::fs::create_dir_all(&data)
            .map_err(|e| ChaosError::io(format!("create {}", data.display()), e))?;
        if self.cfg.faketime.is_some() {
            write_clock_file(&node.clock_file(), 0)?;
        }
        Ok(())
    }

    /// Starts node `i` (0-based) with its data dir as it is.
    fn spawn_node(&mut self, i: usize) -> Result<(), ChaosError> {
        let t = self.clock.now_ns();
        let node = &mut self.nodes[i];
        if node.proc.is_some() {
            return Ok(());
        }
        let log = open_log(
            &node.log(),
            &format!("node n{} starting at t={}", node.id, secs(t)),
        )?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns, "env"]);
        if let Some(lib) = &self.cfg.faketime {
            cmd.arg(format!("LD_PRELOAD={}", lib.display()))
                .arg(format!(
                    "FAKETIME_TIMESTAMP_FILE={}",
                    node.clock_file().display()
                ))
                .arg("FAKETIME_NO_CACHE=1")
                .arg("FAKETIME_DONT_FAKE_MONOTONIC=1")
                // File times stay real: the fault is the clock, not RocksDB
                // seeing odd mtimes.
                .arg("NO_FAKE_STAT=1");
        }
        cmd.arg(&self.cfg.rampart_bin)
            .arg("node")
            .args(["--id", &node.id.to_string()])
            .args(["--raft-addr", &node.raft_addr()])
            .args(["--client-addr", &node.client_addr()])
            .arg("--data-dir")
            .arg(node.data_dir())
            .args([
                "--election-timeout-ms",
                &self.cfg.election_timeout_ms.to_string(),
            ])
            // Plaintext cluster links: the faults under test are Raft's and
            // the proxies', not TLS (docs/security.md).
            .arg("--insecure");
        clean_env(&mut cmd);
        let err = log
            .try_clone()
            .map_err(|e| ChaosError::io("clone a log handle", e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        node.proc = Some(Proc::spawn(cmd, &format!("node n{}", node.id))?);
        node.paused = false;
        Ok(())
    }

    async fn wait_listening(&mut self, i: usize, timeout: Duration) -> Result<(), ChaosError> {
        let addr = self.nodes[i].client_addr();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.nodes[i].proc.as_mut().and_then(Proc::exit_status) {
                return Err(ChaosError::Setup(format!(
                    "node n{} exited with {status} at startup; see {}",
                    i + 1,
                    self.nodes[i].log().display()
                )));
            }
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(&addr),
            )
            .await;
            if matches!(probe, Ok(Ok(_))) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChaosError::Timeout(format!(
                    "node n{} to listen on {addr}",
                    i + 1
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn init(&mut self) -> Result<(), ChaosError> {
        let members: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}={}/{}", n.id, n.raft_addr(), n.client_addr()))
            .collect();
        // Admin is served on the Raft address.
        let target = self.nodes[0].raft_addr();
        let mut args = vec![
            "admin".to_string(),
            "init".into(),
            "--insecure".into(),
            "--node".into(),
            target,
        ];
        for m in members {
            args.push("--member".into());
            args.push(m);
        }
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let result = self.rampart(&args).await;
            match result {
                Ok(_) => return Ok(()),
                // A retry after a half-done init says "already initialised";
                // the leader wait that follows is the real check.
                Err(e) if e.to_string().contains("already") => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Runs `rampart <args>` in the root namespace, bounded.
    async fn rampart(&self, args: &[String]) -> Result<String, ChaosError> {
        let bin = self.cfg.rampart_bin.to_string_lossy().into_owned();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tokio::time::timeout(ADMIN_TIMEOUT, run(&bin, &refs))
            .await
            .map_err(|_| ChaosError::Timeout(format!("rampart {}", args.join(" "))))?
    }

    fn spawn_proxy(&mut self, j: usize) -> Result<(), ChaosError> {
        let t = self.clock.now_ns();
        let nodes: Vec<String> = self.nodes.iter().map(Node::client_addr).collect();
        let proxy = &mut self.proxies[j];
        if proxy.proc.is_some() {
            return Ok(());
        }
        let log = open_log(&proxy.log, &format!("proxy {j} starting at t={}", secs(t)))?;
        let mut cmd = Command::new(&self.cfg.rampart_bin);
        cmd.arg("proxy")
            .args(["--listen", &proxy.addr])
            .args(["--nodes", &nodes.join(",")])
            // Every workload client connects from 127.0.0.1.
            .args(["--per-ip-max-connections", "0"])
            .arg("--insecure")
            .args([
                "--retry-deadline-ms",
                &self.cfg.proxy_retry_deadline_ms.to_string(),
            ]);
        clean_env(&mut cmd);
        if self.cfg.proxy_uids {
            use std::os::unix::process::CommandExt;
            cmd.uid(proxy_uid(j)).gid(proxy_uid(j));
        }
        let err = log
            .try_clone()
            .map_err(|e| ChaosError::io("clone a log handle", e))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        proxy.proc = Some(Proc::spawn(cmd, &format!("proxy {j}"))?);
        Ok(())
    }

    async fn wait_proxy(&mut self, j: usize, timeout: Duration) -> Result<(), ChaosError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let addr = self.proxies[j].addr.clone();
        loop {
            if let Some(status) = self.proxies[j].proc.as_mut().and_then(Proc::exit_status) {
                return Err(ChaosError::Setup(format!(
                    "proxy {j} exited with {status}; see {}",
                    self.proxies[j].log.display()
                )));
            }
            if oneshot(&addr, &["PING"], Duration::from_millis(500))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChaosError::Timeout(format!(
                    "proxy {j} on {addr} to answer PING"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader (1-based) as the proxies see it: the node reporting
    /// itself leader with the highest term in `INFO rampart`.
    pub async fn leader(&self) -> Option<usize> {
        for p in &self.proxies {
            if p.proc.is_none() {
                continue;
            }
            if let Ok(v) = oneshot(&p.addr, &["INFO", "rampart"], Duration::from_secs(2)).await {
                if let Some(info) = text(&v) {
                    if let Some((id, _term)) = parse_leader(&info) {
                        if (1..=self.nodes.len() as u64).contains(&id) {
                            return Some(id as usize);
                        }
                    }
                }
            }
        }
        None
    }

    /// Waits until some node is leader; returns it.
    pub async fn wait_leader(&mut self, timeout: Duration) -> Result<usize, ChaosError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                return Ok(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChaosError::Timeout(format!(
                    "a leader (logs in {})",
                    self.cfg.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn node_running(&self, id: usize) -> bool {
        self.nodes[id - 1].proc.is_some()
    }

    /// Each node as the proxies see it (`INFO rampart` lines), for the
    /// report's picture of the cluster at the end.
    pub async fn status_lines(&self) -> Vec<String> {
        for p in &self.proxies {
            if p.proc.is_none() {
                continue;
            }
            if let Ok(v) = oneshot(&p.addr, &["INFO", "rampart"], Duration::from_secs(3)).await {
                if let Some(info) = text(&v) {
                    return info
                        .lines()
                        .filter(|l| {
                            l.split_once(':').is_some_and(|(k, _)| {
                                k.strip_prefix("node")
                                    .is_some_and(|n| n.parse::<u32>().is_ok())
                            })
                        })
                        .map(|l| l.trim_end().to_string())
                        .collect();
                }
            }
        }
        vec!["no proxy answered INFO rampart".into()]
    }
    /// Notes processes that exited without the harness asking (a node
    /// that stopped itself on a full disk, a crash) and forgets them, so
    /// [`heal_all`](Self::heal_all) restarts them.
    pub fn poll_exits(&mut self) {
        let t = self.clock.now_ns();
        let mut notes = Vec::new();
        for n in &mut self.nodes {
            if let Some(status) = n.proc.as_mut().and_then(Proc::exit_status) {
                notes.push(format!(
                    "node n{} exited by itself with {status} (log: {})",
                    n.id,
                    n.log().display()
                ));
                n.proc = None;
            }
        }
        for (j, p) in self.proxies.iter_mut().enumerate() {
            if let Some(status) = p.proc.as_mut().and_then(Proc::exit_status) {
                notes.push(format!("proxy {j} exited by itself with {status}"));
                p.proc = None;
            }
        }
        for text in notes {
            self.events.push(Event { t_ns: t, text });
        }
    }

    /// Restarts every node and proxy that is down (after a fault's heal,
    /// nothing should be); returns what it restarted.
    pub async fn revive(&mut self) -> Result<Vec<String>, ChaosError> {
        self.poll_exits();
        let mut revived = Vec::new();
        for id in 1..=self.nodes.len() {
            if self.nodes[id - 1].proc.is_none() {
                self.restart_node(id)?;
                revived.push(format!("n{id}"));
            }
        }
        for j in 0..self.proxies.len() {
            if self.proxies[j].proc.is_none() {
                self.restart_proxy(j).await?;
                revived.push(format!("proxy {j}"));
            }
        }
        Ok(revived)
    }

    /// Undoes every fault: continue paused nodes, drop no packets, real
    /// clocks, no balloons, every node and proxy running.
    pub async fn heal_all(&mut self) -> Result<(), ChaosError> {
        self.poll_exits();
        for id in 1..=self.nodes.len() {
            self.resume_node(id)?;
        }
        self.set_drops(&BTreeMap::new()).await?;
        self.set_proxy_drops(&BTreeMap::new()).await?;
        for id in 1..=self.nodes.len() {
            if self.cfg.faketime.is_some() && self.nodes[id - 1].clock_offset_secs != 0 {
                self.set_clock(id, 0)?;
            }
            if self.cfg.tmpfs_mib.is_some() {
                self.free_disk(id)?;
            }
            if self.nodes[id - 1].proc.is_none() {
                self.restart_node(id)?;
            }
        }
        for j in 0..self.proxies.len() {
            if self.proxies[j].proc.is_none() {
                self.restart_proxy(j).await?;
            }
        }
        Ok(())
    }

    /// Stops every process (the network and mounts go when the cluster is
    /// dropped).
    pub fn stop(&mut self) {
        for p in &mut self.proxies {
            if let Some(mut proc) = p.proc.take() {
                proc.kill();
            }
        }
        for n in &mut self.nodes {
            if let Some(mut proc) = n.proc.take() {
                proc.kill();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        for n in &mut self.nodes {
            if let Some(t) = n.mount.take() {
                janitor::cleanup(t);
            }
        }
        if let Some(t) = self.proxy_table.take() {
            janitor::cleanup(t);
        }
        // `net` drops after this, removing links and namespaces.
    }
}

/// The leader's (id, term) in `INFO rampart` text: lines
/// `nodeN:id=..,addr=..,role=leader,term=..,...`; the highest term wins
/// when an old leader has not noticed yet.
pub fn parse_leader(info: &str) -> Option<(u64, u64)> {
    info.lines()
        .filter_map(|line| {
            let (key, fields) = line.trim_end().split_once(':')?;
            if !key.starts_with("node") || key[4..].parse::<u32>().is_err() {
                return None;
            }
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            };
            if field("role")? != "leader" {
                return None;
            }
            Some((field("id")?.parse().ok()?, field("term")?.parse().ok()?))
        })
        .max_by_key(|&(_, term)| term)
}

fn open_log(path: &Path, banner: &str) -> Result<std::fs::File, ChaosError> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ChaosError::io(format!("open {}", path.display()), e))?;
    let _ = writeln!(f, "===== chaos: {banner} =====");
    Ok(f)
}

/// Children get only the flags the harness passes: no inherited RAMPART_*
/// settings, no trace export.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("RAMPART_") || k.starts_with("OTEL_") {
            cmd.env_remove(&key);
        }
    }
}

/// Ports for the proxies, free right now and below Linux's default
/// ephemeral range (32768-60999): a proxy restarted on its port must not
/// find it taken as the local port of some outgoing connection.
fn free_ports(n: usize) -> Result<Vec<u16>, ChaosError> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut held = Vec::new();
    for _ in 0..2000 {
        if held.len() == n {
            break;
        }
        let port: u16 = rng.gen_range(20_000..32_700);
        // Held until all are chosen, so the ports differ.
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(ChaosError::Setup("no free ports for the proxies".into()));
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ChaosError::io("local address", e))
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_is_the_highest_term_claim() {
        let info = "# Rampart\r\nproxy_id:abc\r\nleader_addr:10.0.0.11:7001\r\nnodes:3\r\n\
            node0:id=1,addr=10.0.0.11:7001,role=leader,term=3,leader_id=1,last_log_index=9,applied_index=9,metrics_url=\r\n\
            node1:id=2,addr=10.0.0.12:7001,role=leader,term=5,leader_id=2,last_log_index=9,applied_index=9,metrics_url=\r\n\
            node2:addr=10.0.0.13:7001,role=unreachable,error=timeout\r\n";
        assert_eq!(parse_leader(info), Some((2, 5)));
        assert_eq!(
            parse_leader("node0:id=1,addr=x,role=follower,term=3,leader_id=2"),
            None
        );
        assert_eq!(parse_leader(""), None);
        assert_eq!(parse_leader("node0:id=x,role=leader,term=1"), None);
    }
}
