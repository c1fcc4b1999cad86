//! CPU priority of the node's background work (SPEC Layer 2).
//!
//! When the host's CPUs are contended, the scheduler shares them by weight.
//! The heavy executor's threads (full-collection reads, scans, scripts) and
//! snapshot builds run at a higher nice value than the rest of the node, so
//! the Raft threads and the cheap-request path get the CPU first and heavy
//! work takes what is left. On an idle host this changes nothing: a niced
//! thread still runs at full speed when no other thread wants the CPU.
//!
//! A nice value alone shares CPU time by weight but does not make a waking
//! Raft or request thread preempt a heavy thread at once: under EEVDF (Linux
//! 6.6+) the heavy thread may finish its slice first, a few milliseconds
//! that showed as ordinary-client p99 in the incident run. The heavy
//! executor's threads therefore also use `SCHED_IDLE` by default
//! (`--heavy-sched-idle`): any normal thread that wakes preempts them at
//! once, and they get only a small share while normal threads want all of
//! the CPU. Snapshot builds keep the normal policy (with the nice value):
//! log compaction must not starve under sustained load.
//!
//! Linux keeps the nice value and the policy per thread, so the calls below
//! affect only the thread that makes them. Lowering either needs no
//! privilege.

/// Default `--heavy-nice`: a nice-10 thread gets about a tenth of the CPU
/// share of a nice-0 one when both want to run.
pub const DEFAULT_HEAVY_NICE: i32 = 10;
/// Highest nice value Linux accepts.
pub const MAX_NICE: i32 = 19;

/// Raises the calling thread's nice value by `by` (0 = leave it; relative,
/// so a node started under `nice` keeps its offset and never asks for a
/// privilege). Failures are logged, never fatal: priority is an
/// optimisation.
pub fn lower_current_thread_priority(by: i32) {
    if by <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let nice = (current_thread_nice().unwrap_or(0) + by).min(MAX_NICE);
        // SAFETY: gettid and setpriority only read their arguments.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc != 0 {
            tracing::warn!(
                nice,
                error = %std::io::Error::last_os_error(),
                "cannot lower this thread's CPU priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        tracing::debug!(by, "per-thread nice values are Linux-only: ignored");
    }
}

/// Puts the calling thread in the `SCHED_IDLE` policy (Linux; a no-op
/// elsewhere). Failures are logged, never fatal.
pub fn make_current_thread_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot put this thread in the SCHED_IDLE policy"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        tracing::debug!("SCHED_IDLE is Linux-only: ignored");
    }
}

/// Whether the calling thread runs in the `SCHED_IDLE` policy (Linux;
/// `None` elsewhere or on error).
pub fn current_thread_is_idle() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pid 0 is the calling thread.
        let policy = unsafe { libc::sched_getscheduler(0) };
        (policy >= 0).then_some(policy == libc::SCHED_IDLE)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The calling thread's nice value (Linux; `None` elsewhere or on error).
pub fn current_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // getpriority can legitimately return -1: errno tells.
        // SAFETY: as above; errno is thread-local.
        unsafe {
            *libc::__errno_location() = 0;
            let tid = libc::gettid();
            let v = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            (*libc::__errno_location() == 0).then_some(v)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn nice_applies_to_the_calling_thread_only() {
        let before = current_thread_nice().expect("getpriority");
        let inside = std::thread::spawn(|| {
            lower_current_thread_priority(5);
            current_thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(inside, Some((before + 5).min(MAX_NICE)));
        assert_eq!(
            current_thread_nice(),
            Some(before),
            "other threads keep theirs"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_policy_applies_to_the_calling_thread_only() {
        assert_eq!(current_thread_is_idle(), Some(false));
        let inside = std::thread::spawn(|| {
            make_current_thread_idle();
            current_thread_is_idle()
        })
        .join()
        .expect("thread");
        assert_eq!(inside, Some(true));
        assert_eq!(
            current_thread_is_idle(),
            Some(false),
            "other threads keep theirs"
        );
    }
}
