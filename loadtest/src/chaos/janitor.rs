//! Cleanup of everything a run creates outside its own memory: processes,
//! tmpfs mounts, the root-namespace link and the network namespaces.
//!
//! Every such resource is registered here when it is created and
//! unregistered when its owner removes it. Whatever is still registered is
//! removed by [`cleanup_all`], which runs from three places: the
//! [`CleanupGuard`] of a run (normal end, error return, panic unwind), the
//! SIGINT/SIGTERM handler, and, for runs that died without either
//! (SIGKILL), [`sweep_leftovers`] at the start of the next run. Children are
//! also spawned with a parent-death signal ([`super::procs`]).

use super::names;
use super::sys::run_blocking;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A child process group (`pgid` = the leader's pid).
    ProcessGroup(i32),
    /// A tmpfs mounted at this path.
    Mount(PathBuf),
    /// A link in the root namespace.
    RootLink(String),
    /// A network namespace.
    Netns(String),
    /// An nft table (family inet) in the root namespace.
    RootNftTable(String),
}

impl Resource {
    /// Removal order: processes before the mounts they hold open and the
    /// namespaces they live in; the root link before the namespace holding
    /// its peer.
    fn rank(&self) -> u8 {
        match self {
            Resource::ProcessGroup(_) => 0,
            Resource::Mount(_) => 1,
            Resource::RootLink(_) | Resource::RootNftTable(_) => 2,
            Resource::Netns(_) => 3,
        }
    }

    /// Removes the resource; errors are reported, not returned (cleanup goes
    /// on with the rest).
    fn remove(&self) {
        let result = match self {
            Resource::ProcessGroup(pgid) => {
                use nix::sys::signal::{killpg, Signal};
                use nix::unistd::Pid;
                // ESRCH = already gone, which is the goal.
                match killpg(Pid::from_raw(*pgid), Signal::SIGKILL) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(e) => Err(format!("SIGKILL process group {pgid}: {e}")),
                }
            }
            Resource::Mount(path) => unmount(path),
            Resource::RootLink(name) => {
                delete_ignoring_missing("ip", &["link", "del", name.as_str()])
            }
            Resource::Netns(name) => {
                kill_netns_pids(name);
                delete_ignoring_missing("ip", &["netns", "del", name.as_str()])
            }
            Resource::RootNftTable(name) => {
                delete_ignoring_missing("nft", &["delete", "table", "inet", name.as_str()])
            }
        };
        if let Err(e) = result {
            eprintln!("chaos cleanup: {e}");
        }
    }
}

fn delete_ignoring_missing(program: &str, args: &[&str]) -> Result<(), String> {
    match run_blocking(program, args) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            if text.contains("Cannot find device")
                || text.contains("No such file")
                || text.contains("does not exist")
            {
                Ok(())
            } else {
                Err(text)
            }
        }
    }
}

/// Unmounts, lazily if something still holds the mount (the data is a
/// tmpfs: nothing to flush).
fn unmount(path: &Path) -> Result<(), String> {
    let p = path.to_string_lossy();
    if !is_mounted(path) {
        return Ok(());
    }
    if run_blocking("umount", &[&p]).is_ok() {
        return Ok(());
    }
    run_blocking("umount", &["-l", &p])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let target = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|m| unescape_mount_path(m) == target)
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SIGKILLs whatever still runs inside namespace `name` (a node whose
/// handle was lost); deleting a namespace does not stop its processes.
fn kill_netns_pids(name: &str) {
    let Ok(out) = run_blocking("ip", &["netns", "pids", name]) else {
        return;
    };
    for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A registration; hand it back to [`release`] or [`cleanup`].
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
pub struct Token(u64);

struct Janitor {
    items: Mutex<Vec<(Token, Resource)>>,
    next: AtomicU64,
    /// Set once [`cleanup_all`] started: a resource registered afterwards
    /// (a race with the signal handler) is removed at once.
    closed: AtomicBool,
}

fn janitor() -> &'static Janitor {
    static J: OnceLock<Janitor> = OnceLock::new();
    J.get_or_init(|| Janitor {
        items: Mutex::new(Vec::new()),
        next: AtomicU64::new(1),
        closed: AtomicBool::new(false),
    })
}

fn items() -> std::sync::MutexGuard<'static, Vec<(Token, Resource)>> {
    janitor().items.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a resource that now exists.
pub fn register(resource: Resource) -> Token {
    let j = janitor();
    let token = Token(j.next.fetch_add(1, Ordering::Relaxed));
    if j.closed.load(Ordering::SeqCst) {
        resource.remove();
        return token;
    }
    items().push((token, resource));
    token
}

/// Forgets a resource its owner removed itself.
pub fn release(token: Token) {
    items().retain(|(t, _)| *t != token);
}

/// Removes one resource now (idempotent).
pub fn cleanup(token: Token) {
    let taken = {
        let mut items = items();
        let pos = items.iter().position(|(t, _)| *t == token);
        pos.map(|i| items.remove(i).1)
    };
    if let Some(r) = taken {
        r.remove();
    }
}

/// Removes everything still registered, in dependency order. Further
/// registrations are removed immediately.
pub fn cleanup_all() {
    janitor().closed.store(true, Ordering::SeqCst);
    let mut all: Vec<Resource> = std::mem::take(&mut *items())
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    all.sort_by_key(Resource::rank);
    for r in all {
        r.remove();
    }
}

/// Runs [`cleanup_all`] when dropped (end of a run, error or panic).
pub struct CleanupGuard(());

impl CleanupGuard {
    pub fn new() -> CleanupGuard {
        CleanupGuard(())
    }
}

impl Default for CleanupGuard {
    fn default() -> Self {
        CleanupGuard::new()
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        cleanup_all();
    }
}

/// On SIGINT/SIGTERM: clean up and exit (130 / 143, the shell's
/// convention). Must be called inside the tokio runtime.
pub fn install_signal_handler() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let (name, code) = tokio::select! {
            _ = int.recv() => ("SIGINT", 130),
            _ = term.recv() => ("SIGTERM", 143),
        };
        eprintln!("chaos: {name} received, removing the cluster, namespaces and mounts");
        // Blocking commands on a runtime thread: the process ends right after.
        cleanup_all();
        std::process::exit(code);
    });
    Ok(())
}

/// What [`sweep_leftovers`] removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub removed: Vec<String>,
}

/// Removes namespaces, root links and tmpfs mounts left by chaos runs whose
/// process is gone. Runs before a new run creates anything.
pub fn sweep_leftovers() -> Swept {
    let mut swept = Swept::default();
    let dead = |name: &str| names::owner_pid(name).is_some_and(|pid| !names::run_alive(pid));

    // Mounts first: a mount may keep a dead node's files busy.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(target), Some(fstype)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if fstype == "tmpfs" && dead(source) {
            let path = PathBuf::from(unescape_mount_path(target));
            Resource::Mount(path.clone()).remove();
            swept.removed.push(format!("mount {}", path.display()));
        }
    }
    if let Ok(out) = run_blocking("ip", &["-o", "link", "show"]) {
        for name in link_names(&out) {
            if dead(&name) {
                Resource::RootLink(name.clone()).remove();
                swept.removed.push(format!("link {name}"));
            }
        }
    }
    if let Ok(out) = run_blocking("nft", &["list", "tables", "inet"]) {
        for name in nft_table_names(&out) {
            if dead(&name) {
                Resource::RootNftTable(name.clone()).remove();
                swept.removed.push(format!("nft table inet {name}"));
            }
        }
    }
    if let Ok(out) = run_blocking("ip", &["netns", "list"]) {
        for name in netns_names(&out) {
            if dead(&name) {
                Resource::Netns(name.clone()).remove();
                swept.removed.push(format!("netns {name}"));
            }
        }
    }
    swept
}

/// Interface names in `ip -o link show` output (`8: name@if3: <...> ...`).
pub fn link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let rest = l.split_once(": ")?.1;
            let name = rest.split(':').next()?;
            Some(name.split('@').next()?.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Table names in `nft list tables inet` output (`table inet name`).
pub fn nft_table_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .map(|n| n.trim().to_string())
        .collect()
}

/// Namespace names in `ip netns list` output (`name (id: 3)` or `name`).
pub fn netns_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_listings() {
        let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
                     8: rch123r@if3: <BROADCAST,MULTICAST,UP> mtu 1500\n\
                     9: eth0: <BROADCAST> mtu 1500\n";
        assert_eq!(link_names(links), vec!["lo", "rch123r", "eth0"]);
        let ns = "rch-77-n2 (id: 2)\nrch-77-hub (id: 0)\nother\n";
        assert_eq!(netns_names(ns), vec!["rch-77-n2", "rch-77-hub", "other"]);
        let tables = "table inet rch77r\ntable inet filter\n";
        assert_eq!(nft_table_names(tables), vec!["rch77r", "filter"]);
    }

    #[test]
    fn sweep_picks_only_dead_owners() {
        let me = std::process::id();
        let dead = 4_194_305u32;
        let names = [
            names::node_ns(me, 1),
            names::node_ns(dead, 1),
            "eth0".into(),
        ];
        let picked: Vec<&String> = names
            .iter()
            .filter(|n| names::owner_pid(n).is_some_and(|p| !names::run_alive(p)))
            .collect();
        assert_eq!(picked, vec![&names::node_ns(dead, 1)]);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/end\\"), "/end\\");
    }

    #[test]
    fn removal_order_puts_processes_first() {
        let mut v = [
            Resource::Netns("n".into()),
            Resource::RootLink("l".into()),
            Resource::Mount("/m".into()),
            Resource::ProcessGroup(1),
        ];
        v.sort_by_key(Resource::rank);
        assert_eq!(v[0], Resource::ProcessGroup(1));
        assert_eq!(v[3], Resource::Netns("n".into()));
    }
}
