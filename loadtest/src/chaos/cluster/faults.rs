//! The fault primitives of the [`Cluster`]: what the nemeses do to nodes
//! and proxies (kill, pause, packet drops, clock, disk) and how the harness
//! reads back what a node made of it (its log).

use super::{Cluster, BALLOON};
use crate::chaos::error::ChaosError;
use crate::chaos::firewall::{nft_proxy_script, proxy_uid, Firewall};
use crate::chaos::janitor::{self, Resource};
use crate::chaos::names;
use crate::chaos::sys::run_with_input;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

impl Cluster {
    pub fn kill_node(&mut self, id: usize) {
        if let Some(mut p) = self.nodes[id - 1].proc.take() {
            p.kill();
        }
        self.nodes[id - 1].paused = false;
    }

    /// Starts a stopped node again (no-op if it runs).
    pub fn restart_node(&mut self, id: usize) -> Result<(), ChaosError> {
        self.spawn_node(id - 1)
    }

    pub fn pause_node(&mut self, id: usize) -> Result<(), ChaosError> {
        let node = &mut self.nodes[id - 1];
        if let Some(p) = &node.proc {
            p.signal(Signal::SIGSTOP)?;
            node.paused = true;
        }
        Ok(())
    }

    pub fn resume_node(&mut self, id: usize) -> Result<(), ChaosError> {
        let node = &mut self.nodes[id - 1];
        if let (Some(p), true) = (&node.proc, node.paused) {
            p.signal(Signal::SIGCONT)?;
        }
        node.paused = false;
        Ok(())
    }

    /// Installs `drops` (receiver -> senders, 1-based) and clears every
    /// other node's rules.
    pub async fn set_drops(
        &mut self,
        drops: &BTreeMap<usize, BTreeSet<usize>>,
    ) -> Result<(), ChaosError> {
        for i in 0..self.nodes.len() {
            let id = i + 1;
            let blocked: Vec<Ipv4Addr> = drops
                .get(&id)
                .map(|s| s.iter().map(|&j| self.net.node_ip(j)).collect())
                .unwrap_or_default();
            if blocked == self.nodes[i].blocked {
                continue;
            }
            self.firewall.apply(&self.nodes[i].ns, &blocked).await?;
            self.nodes[i].blocked = blocked;
        }
        Ok(())
    }

    /// Makes proxy `j` (0-based) unable to reach the nodes in `drops[j]`
    /// (1-based), and every other proxy reach every node. Needs nft and the
    /// proxies under their own uids ([`super::ClusterConfig::proxy_uids`]).
    pub async fn set_proxy_drops(
        &mut self,
        drops: &BTreeMap<usize, BTreeSet<usize>>,
    ) -> Result<(), ChaosError> {
        if *drops == self.proxy_blocked {
            return Ok(());
        }
        if !drops.is_empty() {
            if self.firewall != Firewall::Nft {
                return Err(ChaosError::MissingTool(
                    "cutting proxies from nodes needs nft".into(),
                ));
            }
            if !self.cfg.proxy_uids {
                return Err(ChaosError::Setup(
                    "the proxies do not run under their own uids".into(),
                ));
            }
        }
        let table = names::root_link(std::process::id());
        let rules: Vec<(u32, Vec<Ipv4Addr>)> = drops
            .iter()
            .map(|(&j, nodes)| {
                let ips = nodes.iter().map(|&n| self.net.node_ip(n)).collect();
                (proxy_uid(j), ips)
            })
            .collect();
        if self.proxy_table.is_none() {
            if drops.is_empty() {
                return Ok(());
            }
            // Registered first: a script that fails halfway is removed too.
            self.proxy_table = Some(janitor::register(Resource::RootNftTable(table.clone())));
        }
        let script = nft_proxy_script(&table, &rules);
        run_with_input("nft", &["-f", "-"], Some(&script)).await?;
        self.proxy_blocked = drops.clone();
        Ok(())
    }

    /// Sets node `id`'s wall-clock offset (seconds; needs faketime).
    pub fn set_clock(&mut self, id: usize, offset_secs: i64) -> Result<(), ChaosError> {
        let node = &mut self.nodes[id - 1];
        write_clock_file(&node.clock_file(), offset_secs)?;
        node.clock_offset_secs = offset_secs;
        Ok(())
    }

    /// Fills node `id`'s tmpfs with a balloon file until ENOSPC; the bytes
    /// written.
    pub async fn fill_disk(&mut self, id: usize) -> Result<u64, ChaosError> {
        let path = self.nodes[id - 1].disk().join(BALLOON);
        tokio::task::spawn_blocking(move || fill(&path))
            .await
            .map_err(|e| ChaosError::Setup(format!("disk filler: {e}")))?
    }

    /// Size of node `id`'s log now: a mark for [`log_lines_since`].
    ///
    /// [`log_lines_since`]: Self::log_lines_since
    pub fn log_mark(&self, id: usize) -> u64 {
        std::fs::metadata(self.nodes[id - 1].log()).map_or(0, |m| m.len())
    }

    /// Lines of node `id`'s log written since `mark` that contain any of
    /// `needles`: how many, and the first (trimmed).
    pub fn log_lines_since(
        &self,
        id: usize,
        mark: u64,
        needles: &[&str],
    ) -> (usize, Option<String>) {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = Vec::new();
        if let Ok(mut f) = std::fs::File::open(self.nodes[id - 1].log()) {
            if f.seek(SeekFrom::Start(mark)).is_ok() {
                // Bounded: a node stuck in an error loop logs a lot.
                let _ = f.take(64 << 20).read_to_end(&mut text);
            }
        }
        let text = String::from_utf8_lossy(&text);
        let mut hits = text
            .lines()
            .filter(|l| needles.iter().any(|n| l.contains(n)));
        let first = hits
            .next()
            .map(|l| strip_ansi(l).chars().take(300).collect());
        (first.is_some() as usize + hits.count(), first)
    }

    pub fn free_disk(&mut self, id: usize) -> Result<(), ChaosError> {
        let path = self.nodes[id - 1].disk().join(BALLOON);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ChaosError::io(format!("remove {}", path.display()), e)),
        }
    }

    pub fn kill_proxy(&mut self, j: usize) {
        if let Some(mut p) = self.proxies[j].proc.take() {
            p.kill();
        }
    }

    pub async fn restart_proxy(&mut self, j: usize) -> Result<(), ChaosError> {
        self.spawn_proxy(j)?;
        self.wait_proxy(j, Duration::from_secs(20)).await
    }
}

/// libfaketime's relative offset syntax: `+30`, `-120` (seconds).
pub fn clock_file_text(offset_secs: i64) -> String {
    format!("{offset_secs:+}\n")
}

pub(super) fn write_clock_file(path: &Path, offset_secs: i64) -> Result<(), ChaosError> {
    // Write then rename, so the node never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, clock_file_text(offset_secs))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| ChaosError::io(format!("write {}", path.display()), e))
}

fn fill(path: &Path) -> Result<u64, ChaosError> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ChaosError::io(format!("create {}", path.display()), e))?;
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => return Ok(written),
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => return Ok(written),
            Err(e) => return Err(ChaosError::io(format!("fill {}", path.display()), e)),
        }
    }
}

/// Log lines without terminal colour codes (tracing colours its output).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m x"),
            "2026 ERROR x"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn clock_offsets_in_faketime_syntax() {
        assert_eq!(clock_file_text(0), "+0\n");
        assert_eq!(clock_file_text(120), "+120\n");
        assert_eq!(clock_file_text(-30), "-30\n");
    }
}
