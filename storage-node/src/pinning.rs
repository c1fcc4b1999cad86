//! Optional CPU pinning for the Raft runtime (SPEC Layer 2).
//!
//! Off by default. With `--pin-cores` (or `--raft-cores LIST`, which implies
//! it) and more than one CPU available to the process:
//! - the Raft runtime's threads (`raft-*`: openraft's core, log I/O, apply,
//!   the Raft transport server) run only on the Raft cores (`--raft-cores`,
//!   default: the first available CPU);
//! - every other thread of the node (the client runtime, the heavy executor,
//!   RocksDB's background threads, which inherit it) runs only on the
//!   remaining CPUs, so no request work competes with Raft for its cores.
//!
//! The CPUs available are the process's affinity mask (a container's cpuset
//! is honoured). On a single CPU, or when the Raft cores are not available,
//! pinning is skipped with a log line; when the Raft cores are all the CPUs
//! there are, only the Raft threads are pinned. Pinning acts on the whole
//! process: do not enable it for nodes embedded several to a process.

/// Largest CPU number accepted in a core list.
pub const MAX_CPU: usize = 1023;

/// Parses a core list such as `0`, `0,2` or `0-1,4`.
pub fn parse_core_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> Result<usize, String> {
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a CPU number"))?;
            if n > MAX_CPU {
                return Err(format!("CPU {n} is above {MAX_CPU}"));
            }
            Ok(n)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("empty CPU range {part:?}"));
                }
                cores.extend(a..=b);
            }
            None => cores.push(num(part)?),
        }
    }
    if cores.is_empty() {
        return Err("the core list is empty".into());
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// Which CPUs the Raft threads and the other threads use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub raft: Vec<usize>,
    /// `None` when the Raft cores are every available CPU.
    pub others: Option<Vec<usize>>,
}

/// Decides the pinning from the available CPUs and the requested Raft cores
/// (`None` = the first available CPU). `None` means "do not pin"; the
/// reason is logged.
pub fn plan(available: &[usize], requested: Option<&[usize]>) -> Option<Plan> {
    if available.len() <= 1 {
        tracing::info!(
            cpus = available.len(),
            "core pinning requested but the node has a single CPU: not pinning"
        );
        return None;
    }
    let raft: Vec<usize> = match requested {
        Some(cores) => {
            let (ok, missing): (Vec<usize>, Vec<usize>) =
                cores.iter().copied().partition(|c| available.contains(c));
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    ?available,
                    "raft cores not available to this process"
                );
            }
            ok
        }
        None => available.first().copied().into_iter().collect(),
    };
    if raft.is_empty() {
        tracing::warn!(
            ?available,
            "none of the raft cores is available: not pinning"
        );
        return None;
    }
    let others: Vec<usize> = available
        .iter()
        .copied()
        .filter(|c| !raft.contains(c))
        .collect();
    if others.is_empty() {
        tracing::warn!(
            ?raft,
            "the raft cores are every CPU available: only the raft threads are pinned"
        );
    }
    Some(Plan {
        raft,
        others: (!others.is_empty()).then_some(others),
    })
}

#[cfg(target_os = "linux")]
mod sys {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    fn cpu_set(cores: &[usize]) -> nix::Result<CpuSet> {
        let mut set = CpuSet::new();
        for &c in cores {
            set.set(c)?;
        }
        Ok(set)
    }

    /// CPUs in this process's affinity mask.
    pub fn available() -> Vec<usize> {
        match sched_getaffinity(Pid::from_raw(0)) {
            Ok(set) => (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the CPU affinity");
                Vec::new()
            }
        }
    }

    /// Restricts the calling thread to `cores`.
    pub fn pin_current(cores: &[usize]) {
        if let Err(e) = cpu_set(cores).and_then(|set| sched_setaffinity(Pid::from_raw(0), &set)) {
            tracing::warn!(error = %e, ?cores, "cannot pin thread");
        }
    }

    /// Restricts every thread the process has now to `cores`; threads
    /// created later inherit the mask of the thread creating them.
    pub fn pin_all_threads(cores: &[usize]) {
        let set = match cpu_set(cores) {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(error = %e, ?cores, "bad CPU set");
                return;
            }
        };
        let tasks = match std::fs::read_dir("/proc/self/task") {
            Ok(dir) => dir,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the process's threads");
                return;
            }
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // A thread may have exited meanwhile: nothing to do then.
            let _ = sched_setaffinity(Pid::from_raw(tid), &set);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn available() -> Vec<usize> {
        tracing::info!("core pinning is only supported on Linux");
        Vec::new()
    }
    pub fn pin_current(_cores: &[usize]) {}
    pub fn pin_all_threads(_cores: &[usize]) {}
}

pub use sys::{available, pin_all_threads, pin_current};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_parse_ranges_and_reject_garbage() {
        assert_eq!(parse_core_list("0"), Ok(vec![0]));
        assert_eq!(parse_core_list("3,1-2, 1"), Ok(vec![1, 2, 3]));
        assert!(parse_core_list("").is_err());
        assert!(parse_core_list("a").is_err());
        assert!(parse_core_list("2-1").is_err());
        assert!(parse_core_list("4096").is_err());
    }

    #[test]
    fn plans_follow_the_available_cpus() {
        assert_eq!(plan(&[0], None), None);
        assert_eq!(
            plan(&[0, 1, 2], None),
            Some(Plan {
                raft: vec![0],
                others: Some(vec![1, 2])
            })
        );
        assert_eq!(
            plan(&[2, 3], Some(&[3, 7])),
            Some(Plan {
                raft: vec![3],
                others: Some(vec![2])
            })
        );
        assert_eq!(plan(&[0, 1], Some(&[5])), None);
        assert_eq!(
            plan(&[0, 1], Some(&[0, 1])),
            Some(Plan {
                raft: vec![0, 1],
                others: None
            })
        );
    }
}
