//! Running the host tools the harness drives (`ip`, `nft`, `iptables`,
//! `mount`): an async form for the run and a blocking form for cleanup,
//! which also runs from `Drop` and from the signal handler.

use super::error::ChaosError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn describe(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn check(program: &str, args: &[&str], out: Output) -> Result<String, ChaosError> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = match stderr.trim() {
        "" => out.status.to_string(),
        text => format!("{} ({})", text, out.status),
    };
    Err(ChaosError::Command {
        cmd: describe(program, args),
        detail,
    })
}

fn spawn_error(program: &str, args: &[&str], e: std::io::Error) -> ChaosError {
    ChaosError::Command {
        cmd: describe(program, args),
        detail: e.to_string(),
    }
}

/// Runs `program args` to completion; its stdout on success.
pub async fn run(program: &str, args: &[&str]) -> Result<String, ChaosError> {
    run_with_input(program, args, None).await
}

/// Like [`run`], feeding `input` on stdin (nft scripts).
pub async fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ChaosError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| spawn_error(program, args, e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| spawn_error(program, args, e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| spawn_error(program, args, e))?;
    check(program, args, out)
}

/// Blocking [`run`], for cleanup paths that cannot await.
pub fn run_blocking(program: &str, args: &[&str]) -> Result<String, ChaosError> {
    run_blocking_with_input(program, args, None)
}

pub fn run_blocking_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ChaosError> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(program, args, e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| spawn_error(program, args, e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| spawn_error(program, args, e))?;
    check(program, args, out)
}

/// `program` found on PATH (or the path itself if it has a slash).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether this process runs with uid 0 (namespaces, mounts and firewall
/// rules all need it).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid (and needs no
    // extra nix feature, unlike geteuid).
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
