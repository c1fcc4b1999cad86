//! docker-compose smoke test: the cluster of `docker-compose.yml`, run from
//! an image holding the binary cargo built for this test run
//! (`deploy/docker/build-image.sh --prebuilt`, on a base image made locally
//! from Debian packages, so no registry is needed).
//!
//! Through the published proxy port, with a real Redis client: SET/GET, kill
//! the leader's container, writes continue after the election, start it
//! again and it catches up. The compose project (containers, network,
//! volumes) and the test image are removed at the end, also on failure.
//!
//! Without a Docker engine (`docker info` fails) or without a compose tool
//! the test prints why it was skipped and passes.

mod common;

use common::{free_ports, wait_for, RAMPART};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Cluster up: nodes healthy, init done, proxy answering.
const UP_TIMEOUT: Duration = Duration::from_secs(180);
/// Writes must succeed again within this after the leader's container dies:
/// election timeout (1-2 s) plus the proxy's retry deadline, with room for a
/// busy 2-core machine.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and panics with its output when it fails; returns stdout.
fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker compose` (v2 plugin) or `docker-compose` (v1 or v2 standalone).
fn compose_tool() -> Option<Vec<String>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|tool| {
            Command::new(tool[0])
                .args(&tool[1..])
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|tool| tool.into_iter().map(String::from).collect())
}

/// A compose project of docker-compose.yml under a unique name; `down -v`
/// and the test image's removal happen on drop.
struct Project {
    tool: Vec<String>,
    name: String,
    image: String,
    port: u16,
}

impl Project {
    fn compose(&self) -> Command {
        let mut cmd = Command::new(&self.tool[0]);
        cmd.args(&self.tool[1..])
            .arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(repo_root().join("docker-compose.yml"))
            .current_dir(repo_root());
        // The compose file's settings: only what this test chooses.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("RAMPART_") || key.starts_with("OTEL_") {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.env("RAMPART_IMAGE", &self.image)
            .env("RAMPART_PORT", self.port.to_string())
            .env("RAMPART_BIND_ADDR", "127.0.0.1")
            .env("COMPOSE_PROJECT_NAME", &self.name);
        cmd
    }

    fn container(&self, service: &str) -> String {
        let id = check(self.compose().args(["ps", "-q", service]));
        let id = id.trim().to_string();
        assert!(!id.is_empty(), "no container for service {service}");
        id
    }

    /// Containers, network and volumes of the project, then its image.
    fn down(&self) {
        let mut down = self.compose();
        down.args(["down", "--volumes", "--remove-orphans", "--timeout", "10"]);
        let out = run(&mut down);
        if !out.status.success() {
            eprintln!("compose down failed:\n{}", text(&out));
        }
        let _ = run(Command::new("docker").args(["image", "rm", &self.image]));
    }

    /// One node's `rampart admin status` line, run inside its container.
    fn node_status(&self, container: &str) -> Result<String, String> {
        let out = run(Command::new("docker").args([
            "exec",
            container,
            "rampart",
            "admin",
            "status",
            "--node",
            // Admin: the Raft port, the admin certificate (docker-compose.yml).
            "127.0.0.1:7111",
            "--cluster-tls-cert-file",
            "/certs/admin.pem",
            "--cluster-tls-key-file",
            "/certs/admin-key.pem",
        ]));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(text(&out))
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let out = run(self.compose().args(["logs", "--no-color", "--tail", "40"]));
            eprintln!("--- compose logs ---\n{}", text(&out));
        }
        self.down();
    }
}

/// Removes what earlier runs left behind when they were killed before their
/// drop guard ran (e.g. by nextest's timeout): projects and images named
/// after a test process that no longer exists.
fn remove_stale_runs(tool: &[String]) {
    let dead = |name: &str| -> Option<String> {
        let pid = name.strip_prefix("compose-test-")?;
        let alive =
            pid.parse::<u32>().ok()? == std::process::id() || Path::new("/proc").join(pid).exists();
        (!alive).then(|| name.to_string())
    };
    let projects = check(Command::new("docker").args([
        "ps",
        "--all",
        "--format",
        "{{.Label \"com.docker.compose.project\"}}",
    ]));
    let mut stale: Vec<String> = projects
        .lines()
        .filter_map(|p| dead(p.strip_prefix("rampart-")?))
        .collect();
    stale.sort();
    stale.dedup();
    for tag in stale {
        eprintln!("removing the leftovers of an earlier run: rampart-{tag}");
        // Its drop guard runs `down --volumes` and removes the image.
        drop(Project {
            tool: tool.to_vec(),
            name: format!("rampart-{tag}"),
            image: format!("rampart:{tag}"),
            port: 0,
        });
    }
    let images =
        check(Command::new("docker").args(["image", "ls", "rampart", "--format", "{{.Tag}}"]));
    for tag in images.lines().filter_map(dead) {
        let _ = run(Command::new("docker").args(["image", "rm", &format!("rampart:{tag}")]));
    }
}

fn json_u64(status: &str, field: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(status).ok()?;
    value.get(field)?.as_u64()
}

fn client(port: u16) -> redis::Client {
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url")
}

fn connection(port: u16) -> Result<redis::Connection, String> {
    let con = client(port)
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    con.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    con.set_write_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    Ok(con)
}

/// SET then GET on a fresh connection; any error is returned, not retried.
fn set_get(port: u16, key: &str, value: &str) -> Result<(), String> {
    let mut con = connection(port)?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(&mut con)
        .map_err(|e| format!("SET {key}: {e}"))?;
    let got: Option<String> = redis::cmd("GET")
        .arg(key)
        .query(&mut con)
        .map_err(|e| format!("GET {key}: {e}"))?;
    if got.as_deref() == Some(value) {
        Ok(())
    } else {
        Err(format!("GET {key} = {got:?}, wanted {value:?}"))
    }
}

fn get(port: u16, key: &str) -> Result<Option<String>, String> {
    let mut con = connection(port)?;
    redis::cmd("GET")
        .arg(key)
        .query(&mut con)
        .map_err(|e| format!("GET {key}: {e}"))
}

#[test]
fn compose_cluster_survives_a_killed_node() {
    let info = Command::new("docker")
        .arg("info")
        .stdin(Stdio::null())
        .output();
    let why = match &info {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(text(out).lines().last().unwrap_or("no output").to_string()),
        Err(e) => Some(format!("cannot run docker: {e}")),
    };
    if let Some(why) = why {
        println!("skipped: no Docker engine (`docker info` failed: {why})");
        return;
    }
    let Some(tool) = compose_tool() else {
        println!("skipped: no compose tool (neither `docker compose` nor `docker-compose`)");
        return;
    };
    remove_stale_runs(&tool);
    let root = repo_root();
    let binary = Path::new(RAMPART);
    let tag = format!("compose-test-{}", std::process::id());
    let image = format!("rampart:{tag}");

    // Base image (debootstrap, minutes on the first run) and the image from
    // the binary of this test run.
    let started = Instant::now();
    check(
        Command::new(root.join("deploy/docker/build-image.sh"))
            .arg("--prebuilt")
            .env("RAMPART_IMAGE", &image)
            .env("RAMPART_BINARY", binary)
            .env_remove("RAMPART_DOCKER_TARGET")
            .env_remove("RAMPART_BASE_IMAGE"),
    );
    println!("image {image} built in {:?}", started.elapsed());

    let port = free_ports(1)[0];
    let project = Project {
        tool,
        name: format!("rampart-{tag}"),
        image,
        port,
    };

    let started = Instant::now();
    check(project.compose().args(["up", "-d", "--no-build"]));
    wait_for(
        "SET/GET through the published proxy port",
        UP_TIMEOUT,
        Duration::from_millis(500),
        || set_get(port, "hello", "world"),
    );
    println!(
        "cluster up, SET/GET ok on 127.0.0.1:{port} after {:?}",
        started.elapsed()
    );

    // Kill the leader's container: the worst case, an election must happen.
    let containers: Vec<(u64, String)> = (1..=3)
        .map(|id| (id, project.container(&format!("node{id}"))))
        .collect();
    let leader = wait_for(
        "a leader known to node1",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let status = project.node_status(&containers[0].1)?;
            match json_u64(&status, "leader_id") {
                Some(id) if (1..=3).contains(&id) => Ok(id),
                _ => Err(status),
            }
        },
    );
    let victim = containers[(leader - 1) as usize].1.clone();
    check(Command::new("docker").args(["kill", &victim]));
    let killed_at = Instant::now();
    println!("killed node{leader} (the leader), container {victim}");

    wait_for(
        "writes to continue after the leader's container was killed",
        FAILOVER_TIMEOUT,
        Duration::from_millis(500),
        || set_get(port, "after-kill", "still-writable"),
    );
    println!("writes continue {:?} after the kill", killed_at.elapsed());
    for i in 0..20 {
        let key = format!("k{i}");
        set_get(port, &key, &i.to_string()).unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    assert_eq!(get(port, "hello").expect("GET hello"), Some("world".into()));

    // Start it again: it rejoins (same volume) and catches up.
    check(Command::new("docker").args(["start", &victim]));
    let others: Vec<&String> = containers
        .iter()
        .filter(|(id, _)| *id != leader)
        .map(|(_, c)| c)
        .collect();
    let status = wait_for(
        "the restarted node to follow a leader and catch up",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let mine = project.node_status(&victim)?;
            let target = others
                .iter()
                .filter_map(|c| project.node_status(c).ok())
                .filter_map(|s| json_u64(&s, "committed_index"))
                .max()
                .ok_or_else(|| "no status from the other nodes".to_string())?;
            let leader_id = json_u64(&mine, "leader_id").unwrap_or(0);
            let applied = json_u64(&mine, "applied_index").unwrap_or(0);
            if leader_id != 0 && applied >= target {
                Ok(mine)
            } else {
                Err(format!("{mine} (others committed {target})"))
            }
        },
    );
    println!("node{leader} back: {status}");
    set_get(port, "after-restart", "ok").expect("write after the restart");
    println!("compose smoke test done in {:?}", started.elapsed());
}
