//! Long-lived child processes (nodes, proxies): each in its own process
//! group, registered with the [`janitor`](super::janitor), SIGKILLed on drop,
//! and tied to this process with a parent-death signal so that even a
//! SIGKILLed harness leaves no cluster running.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits,
//! not the process; tokio's blocking threads come and go, so every child is
//! forked by one spawner thread that lives as long as the process (the same
//! arrangement as tests/common/mod.rs).

use super::error::ChaosError;
use super::janitor::{self, Resource, Token};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("chaos-spawner".into())
            .spawn(move || {
                let parent = std::process::id() as i32;
                for (mut cmd, reply) in rx {
                    // SAFETY: runs between fork and exec and only makes
                    // async-signal-safe calls (prctl, getppid).
                    unsafe {
                        cmd.pre_exec(move || {
                            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                                .map_err(std::io::Error::from)?;
                            if nix::unistd::getppid().as_raw() != parent {
                                return Err(std::io::Error::other("the harness already exited"));
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the chaos spawner thread");
        Mutex::new(tx)
    })
}

/// A running child process.
pub struct Proc {
    name: String,
    child: Child,
    token: Token,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` in a new process group. `name` is for messages.
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Proc, ChaosError> {
        cmd.process_group(0);
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((cmd, tx))
            .map_err(|_| ChaosError::Setup("the spawner thread is gone".into()))?;
        let child = rx
            .recv()
            .map_err(|_| ChaosError::Setup("the spawner thread is gone".into()))?
            .map_err(|e| ChaosError::Setup(format!("start {name}: {e}")))?;
        let token = janitor::register(Resource::ProcessGroup(child.id() as i32));
        Ok(Proc {
            name: name.to_string(),
            child,
            token,
            exited: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the process (not its group: `ip netns exec` execs
    /// the node, so the pid is the node's).
    pub fn signal(&self, signal: Signal) -> Result<(), ChaosError> {
        kill(Pid::from_raw(self.pid()), signal)
            .map_err(|e| ChaosError::Setup(format!("{signal} to {}: {e}", self.name)))
    }

    /// The exit status if the process has ended (reaped once, remembered).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                // Reaped: its pid (and group id) may be reused from now on.
                janitor::release(self.token);
            }
        }
        self.exited
    }

    /// SIGKILLs the whole group and reaps the process.
    pub fn kill(&mut self) {
        if self.exit_status().is_none() {
            let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.exited = Some(status);
            }
        }
        janitor::release(self.token);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn killed_child_is_reaped_and_reports_its_status() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut p = Proc::spawn(cmd, "sleep").expect("spawn sleep");
        assert!(p.exit_status().is_none());
        p.signal(Signal::SIGSTOP).expect("stop");
        p.signal(Signal::SIGCONT).expect("continue");
        let t = Instant::now();
        p.kill();
        assert!(p.exit_status().is_some());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
