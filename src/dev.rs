//! `rampart dev`: a three-node cluster and a proxy on loopback, as child
//! processes, for trying Rampart with redis-cli in one command.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use rampart_proto::cluster_tls::{ClusterTls, TlsFiles};

use crate::{admin, certs};

const NODES: u64 = 3;

#[derive(Args)]
pub struct DevArgs {
    /// Port of the RESP proxy on 127.0.0.1.
    #[arg(long, default_value_t = 6379)]
    proxy_port: u16,
    /// Folder for the nodes' data and the processes' logs.
    #[arg(long, default_value = "rampart-data")]
    data_dir: PathBuf,
    /// Delete the data folder first.
    #[arg(long)]
    fresh: bool,
    /// Node i listens for clients on BASE+i, for Raft on BASE+10+i and serves
    /// metrics on BASE+20+i; the proxy serves metrics on BASE+30.
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Password clients must give with AUTH / HELLO AUTH.
    #[arg(long)]
    requirepass: Option<String>,
    /// Open connections per client IP at the proxy (0 = unlimited; default:
    /// the proxy's, 128, which fits `redis-benchmark -c 50` from 127.0.0.1).
    #[arg(long)]
    per_ip_max_connections: Option<u32>,
    /// Proxy configuration file (TOML; policies are reloaded on SIGHUP).
    #[arg(long)]
    proxy_config: Option<PathBuf>,
    /// Run the links between proxy, nodes and admin in plaintext instead of
    /// mutual TLS with the throwaway certificates in DATA_DIR/certs.
    #[arg(long)]
    insecure: bool,
}

/// How the children and the admin calls secure the cluster links.
struct Security {
    /// The certificate folder; `None` with --insecure.
    certs: Option<PathBuf>,
    /// The admin identity for this process's own Admin calls.
    admin: Option<ClusterTls>,
}

impl Security {
    /// Makes the certificates on first use (kept across restarts of the
    /// same data folder, so the nodes' data and certificates stay together).
    fn prepare(args: &DevArgs) -> Result<Security> {
        if args.insecure {
            return Ok(Security {
                certs: None,
                admin: None,
            });
        }
        let dir = args.data_dir.join("certs");
        if !certs::exists(&dir) {
            certs::generate(&dir, NODES as u32)?;
        }
        let (cert, key) = certs::pair(&dir, "admin");
        let admin = ClusterTls::load(&TlsFiles {
            ca: certs::ca(&dir),
            cert,
            key,
        })?;
        Ok(Security {
            certs: Some(dir),
            admin: Some(admin),
        })
    }

    /// The flags of a child whose certificate is `name`.
    fn flags(&self, name: &str) -> Vec<String> {
        match &self.certs {
            Some(dir) => certs::flags(dir, name),
            None => vec!["--insecure".into()],
        }
    }
}

struct NodePorts {
    id: u64,
    client: String,
    raft: String,
    metrics: String,
}

fn metrics_url(addr: &str) -> String {
    format!("http://{addr}/metrics")
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Managed {
    name: String,
    child: Child,
    log: PathBuf,
}

pub async fn run(args: DevArgs) -> Result<()> {
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot delete {}", args.data_dir.display()))?;
    }
    let logs = args.data_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let exe = std::env::current_exe()?;
    let security = Security::prepare(&args)?;

    let nodes: Vec<NodePorts> = (1..=NODES)
        .map(|id| NodePorts {
            id,
            client: format!("127.0.0.1:{}", args.base_port + id as u16),
            raft: format!("127.0.0.1:{}", args.base_port + 10 + id as u16),
            metrics: format!("127.0.0.1:{}", args.base_port + 20 + id as u16),
        })
        .collect();

    let mut children = Vec::new();
    for node in &nodes {
        let data = args.data_dir.join(format!("node-{}", node.id));
        let name = format!("node-{}", node.id);
        let tls = security.flags(&name);
        let id = node.id.to_string();
        let mut node_args = vec![
            "node",
            "--id",
            &id,
            "--raft-addr",
            &node.raft,
            "--client-addr",
            &node.client,
        ];
        let data = data.to_string_lossy();
        node_args.extend(["--data-dir", &data, "--metrics-addr", &node.metrics]);
        node_args.extend(tls.iter().map(String::as_str));
        let child = spawn(&exe, &name, &logs, &node_args)?;
        println!("node-{} metrics {}", node.id, metrics_url(&node.metrics));
        children.push(child);
    }

    let result = start_cluster(&args, &security, &exe, &logs, &nodes, &mut children).await;
    if let Err(err) = result {
        eprintln!("rampart dev: {err:#}");
        for child in &children {
            eprintln!(
                "--- last lines of {} ---\n{}",
                child.log.display(),
                tail(&child.log, 20)
            );
        }
        stop_all(&mut children).await;
        return Err(err);
    }

    let mut sigterm = signal(SignalKind::terminate())?;
    let exited = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            _ = sigterm.recv() => break None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(name) = exited_child(&mut children) {
                    break Some(name);
                }
            }
        }
    };
    if let Some(name) = &exited {
        eprintln!(
            "rampart dev: {name} exited; stopping the others (see {})",
            logs.display()
        );
    } else {
        println!("stopping...");
    }
    stop_all(&mut children).await;
    match exited {
        Some(name) => bail!("{name} exited unexpectedly"),
        None => {
            println!("stopped");
            Ok(())
        }
    }
}

async fn start_cluster(
    args: &DevArgs,
    security: &Security,
    exe: &Path,
    logs: &Path,
    nodes: &[NodePorts],
    children: &mut Vec<Managed>,
) -> Result<()> {
    // Admin is served on the Raft listener, to the admin certificate.
    let tls = security.admin.as_ref();
    for node in nodes {
        wait_until(
            Duration::from_secs(60),
            &format!("node {} to start", node.id),
            children,
            || admin::status(&node.raft, tls),
        )
        .await?;
    }

    let first = admin::status(&nodes[0].raft, tls).await?;
    if first.voter_ids.is_empty() && first.leader_id == 0 {
        let members = nodes
            .iter()
            .map(|n| {
                admin::parse_member(&format!(
                    "{}={}/{}/{}",
                    n.id,
                    n.raft,
                    n.client,
                    metrics_url(&n.metrics)
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let reply = admin::connect(&nodes[0].raft, tls)
            .await?
            .initialize(rampart_proto::pb::InitializeRequest { members })
            .await?
            .into_inner();
        if !reply.ok {
            bail!("cluster initialisation failed: {}", reply.message);
        }
    }

    let leader = wait_until(
        Duration::from_secs(60),
        "a Raft leader",
        children,
        || async {
            let status = admin::status(&nodes[0].raft, tls).await?;
            if status.leader_id == 0 {
                bail!("no leader yet");
            }
            Ok(status.leader_id)
        },
    )
    .await?;

    let proxy_addr = format!("127.0.0.1:{}", args.proxy_port);
    let node_list = nodes
        .iter()
        .map(|n| n.client.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let proxy_metrics = format!("127.0.0.1:{}", args.base_port + 30);
    let mut proxy_args = vec![
        "proxy",
        "--listen",
        &proxy_addr,
        "--nodes",
        &node_list,
        "--metrics-addr",
        &proxy_metrics,
    ];
    if let Some(pass) = &args.requirepass {
        proxy_args.extend(["--requirepass", pass.as_str()]);
    }
    let per_ip = args.per_ip_max_connections.map(|n| n.to_string());
    if let Some(n) = &per_ip {
        proxy_args.extend(["--per-ip-max-connections", n.as_str()]);
    }
    let config = args
        .proxy_config
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    if let Some(path) = &config {
        proxy_args.extend(["--config", path.as_str()]);
    }
    let proxy_tls = security.flags("proxy");
    proxy_args.extend(proxy_tls.iter().map(String::as_str));
    children.push(spawn(exe, "proxy", logs, &proxy_args)?);
    println!("proxy metrics {}", metrics_url(&proxy_metrics));
    wait_until(
        Duration::from_secs(30),
        "the proxy to answer PING",
        children,
        || ping(&proxy_addr),
    )
    .await?;

    println!("rampart dev: 3 storage nodes (leader: node {leader}), 1 proxy");
    for node in nodes {
        println!(
            "  node {}  client {}  raft {}  metrics {}",
            node.id,
            node.client,
            node.raft,
            metrics_url(&node.metrics)
        );
    }
    println!(
        "  proxy   {proxy_addr}  metrics {}",
        metrics_url(&proxy_metrics)
    );
    println!("  logs    {}", logs.display());
    match &security.certs {
        Some(dir) => println!(
            "  cluster links: mutual TLS (certificates in {}; admin: rampart admin {} ...)",
            dir.display(),
            certs::flags(dir, "admin").join(" ")
        ),
        None => println!("  cluster links: plaintext (--insecure)"),
    }
    println!("ready: redis-cli -p {}", args.proxy_port);
    Ok(())
}

fn spawn(exe: &Path, name: &str, logs: &Path, args: &[&str]) -> Result<Managed> {
    let log = logs.join(format!("{name}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let mut child = Command::new(exe);
    child
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    // kill_on_drop does not run when `rampart dev` itself is killed with
    // SIGKILL; the kernel's parent-death signal stops the cluster then too.
    // SAFETY: prctl is async-signal-safe and touches no state of ours.
    unsafe {
        child.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let child = child
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Managed {
        name: name.to_string(),
        child,
        log,
    })
}

/// Retries `probe` until it succeeds, a child dies, or `limit` passes.
async fn wait_until<T, F, Fut>(
    limit: Duration,
    what: &str,
    children: &mut [Managed],
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last_error = match probe().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if let Some(name) = exited_child(children) {
            bail!("{name} exited while waiting for {what}");
        }
        if Instant::now() > deadline {
            return Err(last_error.context(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ping(addr: &str) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await??;
    if buf[..n].starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(anyhow!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}

fn exited_child(children: &mut [Managed]) -> Option<String> {
    children.iter_mut().find_map(|c| match c.child.try_wait() {
        Ok(Some(_)) => Some(c.name.clone()),
        _ => None,
    })
}

async fn stop_all(children: &mut [Managed]) {
    for c in children.iter() {
        if let Some(pid) = c.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for c in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(10), c.child.wait())
            .await
            .is_err()
        {
            let _ = c.child.kill().await;
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
