//! The chaos tool's error type. A `ChaosError` is always a harness problem
//! (the tool could not do what it meant to), never a finding about the
//! cluster: findings go into the history and the report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Network namespaces cannot be created here (not root, no `ip`, no
    /// kernel support).
    #[error("network namespaces are unavailable: {0}")]
    NoNamespaces(String),
    /// A tool the run needs is missing.
    #[error("{0}")]
    MissingTool(String),
    /// An external command (ip, nft, mount...) failed.
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The cluster did not reach a state the run needs, in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// Anything else that stops the harness (bad settings, a process that
    /// could not be started...).
    #[error("{0}")]
    Setup(String),
    /// SIGINT or SIGTERM arrived.
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    #[error("history file {path}: {reason}")]
    HistoryFile { path: PathBuf, reason: String },
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

impl ChaosError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ChaosError {
        ChaosError::Io {
            what: what.into(),
            source,
        }
    }
}
