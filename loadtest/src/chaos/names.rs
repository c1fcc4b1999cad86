//! Names of everything the harness creates outside its run dir, all
//! carrying the owning process id so leftovers of a run that died (SIGKILL,
//! power cut) can be recognised and removed by the next run:
//!
//! - network namespaces `rch-<pid>-n<i>` (node i) and `rch-<pid>-hub`;
//! - the one link in the root namespace, `rch<pid>r` (interface names are
//!   limited to 15 bytes, hence no dashes);
//! - tmpfs mounts whose source is `rch-<pid>-n<i>` (visible in
//!   /proc/mounts, wherever the run dir is).

pub const PREFIX: &str = "rch";

pub fn node_ns(pid: u32, node: usize) -> String {
    format!("{PREFIX}-{pid}-n{node}")
}

pub fn hub_ns(pid: u32) -> String {
    format!("{PREFIX}-{pid}-hub")
}

pub fn root_link(pid: u32) -> String {
    format!("{PREFIX}{pid}r")
}

/// Source name of node `node`'s tmpfs data dir.
pub fn tmpfs_source(pid: u32, node: usize) -> String {
    node_ns(pid, node)
}

/// The pid that owns a harness name (namespace, link or mount source), or
/// None if the name is not one of ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    if let Some(rest) = rest.strip_prefix('-') {
        // rch-<pid>-<suffix>
        let (pid, suffix) = rest.split_once('-')?;
        let known = suffix == "hub"
            || suffix
                .strip_prefix('n')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        return if known { parse_pid(pid) } else { None };
    }
    // rch<pid>r
    parse_pid(rest.strip_suffix('r')?)
}

fn parse_pid(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p| p > 0)
}

/// Whether `pid` is a live chaos run: the process exists and is this same
/// program (a reused pid of an unrelated process does not count).
pub fn run_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
        return false;
    };
    let ours = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    comm.trim() == ours.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_to_their_owner() {
        assert_eq!(owner_pid(&node_ns(4242, 1)), Some(4242));
        assert_eq!(owner_pid(&node_ns(7, 5)), Some(7));
        assert_eq!(owner_pid(&hub_ns(4194304)), Some(4194304));
        assert_eq!(owner_pid(&root_link(123)), Some(123));
        assert!(root_link(4194304).len() <= 15, "interface name limit");
    }

    #[test]
    fn foreign_names_are_left_alone() {
        for name in [
            "",
            "rch",
            "rch-",
            "rch--n1",
            "rch-12",
            "rch-12-",
            "rch-12-x1",
            "rch-12-n",
            "rch-ab-n1",
            "rch-0-n1",
            "rchr",
            "rch12",
            "rch12x",
            "docker0",
            "rchx-hub",
            "rch-12-hubby",
            "orch-12-n1",
        ] {
            assert_eq!(owner_pid(name), None, "{name:?}");
        }
    }

    #[test]
    fn this_run_is_alive_and_a_dead_pid_is_not() {
        assert!(run_alive(std::process::id()));
        // pid_max is at most 2^22 on Linux.
        assert!(!run_alive(4_194_305));
    }
}
