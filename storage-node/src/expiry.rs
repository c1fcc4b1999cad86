//! Active expiry: the leader finds keys whose TTL has passed and deletes
//! them through the Raft log, so every replica removes the same keys at the
//! same log position (reads already hide expired keys on their own).

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;

use crate::raft::{Op, Request};
use crate::NodeCtx;

const TICK: Duration = Duration::from_millis(100);
/// Keys deleted per log entry at most.
const BATCH: usize = 256;

/// Runs until `shutdown` turns true (or its sender is dropped).
pub async fn run(ctx: Arc<NodeCtx>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        let is_leader = {
            let m = ctx.raft.metrics();
            let m = m.borrow();
            m.state == ServerState::Leader && m.current_leader == Some(ctx.id)
        };
        if !is_leader {
            continue;
        }
        // Drain a backlog quickly: go on while full batches come back.
        loop {
            // Not above the time the entry will be applied at, so every key
            // listed is still expired when it is applied. Not tracked as in
            // flight: this entry only removes keys already expired, so no
            // read must judge time below it.
            let now = ctx.clock.stamp_ms();
            let engine = ctx.engine.clone();
            let keys =
                match tokio::task::spawn_blocking(move || engine.expired_keys(now, BATCH)).await {
                    Ok(Ok(keys)) => keys,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "active expiry: cannot scan the expiry index");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "active expiry: scan task failed");
                        break;
                    }
                };
            if keys.is_empty() {
                break;
            }
            let full = keys.len() >= BATCH;
            let req = Request {
                now_ms: now,
                op: Op::ExpireKeys { keys },
            };
            match tokio::time::timeout(ctx.write_timeout, ctx.raft.client_write(req)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "active expiry: write not committed");
                    break;
                }
                Err(_) => {
                    tracing::debug!("active expiry: write timed out");
                    break;
                }
            }
            if !full || *shutdown.borrow() {
                break;
            }
        }
    }
}
