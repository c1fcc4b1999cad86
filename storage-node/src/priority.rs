//! CPU priority of the node's background work (SPEC Layer 2).
//!
//! When the host's CPUs are contended, the scheduler shares them by weight.
//! The heavy executor's threads (full-collection reads, scans, scripts) and
//! snapshot builds run at a higher nice value than the rest of the node, so
//! the Raft threads and the cheap-request path get the CPU first and heavy
//! work takes what is left. On an idle host this changes nothing: a niced
//! thread still runs at full speed when no other thread wants the CPU.
//!
//! Linux keeps the nice value per thread, so the calls below affect only
//! the thread that makes them. Raising it needs no privilege.

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
}
