//! Live policy reload: on SIGHUP, and when the config file's modification
//! time or size changes (polled every [`FILE_POLL`]), the `[policies]`
//! section is re-read and applied with the same flag/env overrides as at
//! start. Open connections are kept; new limits apply to new admissions. A
//! file that does not parse or resolve is rejected with a log line and the
//! running policy stays. SIGHUP also reloads the client TLS certificates
//! (`reload_tls`). Also runs the connection limiter's periodic upkeep.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_policies::Policies;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ProxyArgs};
use crate::tls::ClientTls;

const FILE_POLL: Duration = Duration::from_secs(2);
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// Applies the current file now; returns whether it was accepted.
pub fn reload_now(policies: &Policies, args: &ProxyArgs, why: &str) -> bool {
    match Config::reload_policies(args).and_then(|cfg| {
        policies
            .reload(&cfg)
            .map_err(|e| crate::error::ProxyError::Config(format!("policies: {e}")))
    }) {
        Ok(()) => {
            tracing::info!(trigger = why, "policies reloaded");
            true
        }
        Err(e) => {
            tracing::warn!(trigger = why, error = %e, "policy reload rejected; the previous policy stays");
            false
        }
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Re-reads the client TLS certificate, key and CA; on error the running
/// ones stay (existing connections are never touched either way).
pub fn reload_tls(tls: &ClientTls) -> bool {
    match tls.reload() {
        Ok(()) => {
            tracing::info!("client TLS certificates reloaded");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "client TLS reload failed; the previous certificates stay");
            false
        }
    }
}

/// Runs until `stop` is cancelled. `tls` (the client TLS listener's
/// certificates) is reloaded on SIGHUP only: a file poll could catch a
/// certificate and key halfway through being replaced.
pub async fn watch(
    policies: Arc<Policies>,
    tls: Option<Arc<ClientTls>>,
    args: ProxyArgs,
    stop: CancellationToken,
) {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
            None
        }
    };
    let path = args.config.clone();
    let mut stamp = path.as_deref().and_then(file_stamp);
    let mut poll = tokio::time::interval(FILE_POLL);
    let mut upkeep = tokio::time::interval(HOUSEKEEPING);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangup => {
                stamp = path.as_deref().and_then(file_stamp);
                reload_now(&policies, &args, "SIGHUP");
                if let Some(tls) = &tls {
                    reload_tls(tls);
                }
            }
            _ = poll.tick() => {
                if let Some(p) = path.as_deref() {
                    let now = file_stamp(p);
                    if now.is_some() && now != stamp {
                        stamp = now;
                        reload_now(&policies, &args, "file change");
                    }
                }
            }
            _ = upkeep.tick() => policies.connections.housekeeping(),
        }
    }
}
