//! A pipelined batch, run in order.
//!
//! The batch is split into maximal runs of consecutive writes or reads, so
//! that a pipeline of 1,000 SETs costs one Raft commit, not 1,000 (see
//! [`write`](super::write)); each read run pays one ReadIndex round (see
//! [`read`](super::read)). A run is identified by
//! `(client_id, request_seq, part)` where `part` is the run's position in
//! the batch: an identical retried batch gets identical part numbers, and
//! the state machine answers parts it already applied from its dedup
//! records instead of applying them again.

use rampart_proto::pb::execute_response::Outcome;
use rampart_proto::pb::Replies;
use rampart_proto::{reply, Argv, Reply};

use super::{blocking, read_run, write_run, ExecCtx, Failure, OnWaiting};
use crate::commands;

/// Runs a batch without scripting commands (those go to `scripting`, which
/// runs its other commands through the same write and read paths). A
/// blocking command sent alone waits ([`blocking`]); anywhere else it is a
/// single attempt, as Redis runs it inside MULTI.
pub(crate) async fn run_batch(
    ctx: &ExecCtx,
    client_id: &str,
    seq: u64,
    commands: Vec<Argv>,
    on_waiting: OnWaiting<'_>,
) -> Outcome {
    if commands.is_empty() {
        return Outcome::Replies(Replies {
            replies: vec![reply::error("ERR empty command batch")],
            ..Default::default()
        });
    }
    if commands.len() == 1 && commands::is_blocking(&commands[0]) {
        let argv = commands.into_iter().next().unwrap_or_default();
        return match blocking::blocking_command(ctx, client_id, seq, argv, on_waiting).await {
            Ok(reply) => Outcome::Replies(Replies {
                replies: vec![reply],
                ..Default::default()
            }),
            Err(failure) => failure.into_outcome(),
        };
    }
    let mut replies = BatchReplies::new(commands.len(), client_id);
    for (part, (write, run)) in split_runs(commands).into_iter().enumerate() {
        let len = run.len();
        let result = if write {
            // A write to a legacy stream pays its migration: heavy class,
            // -BUSY (nothing proposed) when the heavy executor is full.
            let _slot = match super::write::legacy_write_slot(ctx, &run) {
                Ok(slot) => slot,
                Err(busy) => {
                    replies.answer_all(busy, len);
                    continue;
                }
            };
            // Batches have far fewer than 2^32 runs (gRPC message size).
            write_run(ctx, client_id, seq, part as u32, run).await
        } else {
            read_run(ctx, run).await
        };
        debug_assert!(result.as_ref().map_or(true, |r| r.len() == len));
        match replies.record(result, write) {
            Ok(true) => {}
            Ok(false) => break,
            Err(outcome) => return outcome,
        }
    }
    replies.finish()
}

/// The replies of a batch run piece by piece, and the one rule for a piece
/// that fails: while nothing was applied, or when the client has an id (its
/// retry is deduplicated), the whole batch answers the failure so the proxy
/// may retry it elsewhere; otherwise every command not run yet answers the
/// failure's error.
pub(crate) struct BatchReplies<'a> {
    replies: Vec<Reply>,
    total: usize,
    applied_any: bool,
    client_id: &'a str,
}

impl<'a> BatchReplies<'a> {
    pub(crate) fn new(total: usize, client_id: &'a str) -> Self {
        BatchReplies {
            replies: Vec::with_capacity(total),
            total,
            applied_any: false,
            client_id,
        }
    }

    /// `count` commands answered `reply` without running.
    pub(crate) fn answer_all(&mut self, reply: Reply, count: usize) {
        self.replies.extend(std::iter::repeat_n(reply, count));
    }

    /// Records one piece's result (`may_write`: it could have applied
    /// something). `Ok(true)`: go on; `Ok(false)`: stop, the remaining
    /// commands are answered; `Err`: answer the batch with this outcome.
    pub(crate) fn record(
        &mut self,
        result: Result<Vec<Reply>, Failure>,
        may_write: bool,
    ) -> Result<bool, Outcome> {
        match result {
            Ok(replies) => {
                self.replies.extend(replies);
                self.applied_any |= may_write;
                Ok(true)
            }
            Err(failure) if !self.applied_any || !self.client_id.is_empty() => {
                Err(failure.into_outcome())
            }
            Err(failure) => {
                let err = failure.error_reply();
                self.replies.resize(self.total, err);
                Ok(false)
            }
        }
    }

    pub(crate) fn finish(self) -> Outcome {
        Outcome::Replies(Replies {
            replies: self.replies,
            ..Default::default()
        })
    }
}

/// Splits `commands` into maximal runs of consecutive writes / reads.
fn split_runs(commands: Vec<Argv>) -> Vec<(bool, Vec<Argv>)> {
    let mut runs: Vec<(bool, Vec<Argv>)> = Vec::new();
    for argv in commands {
        let write = commands::is_write(&argv);
        match runs.last_mut() {
            Some((w, run)) if *w == write => run.push(argv),
            _ => runs.push((write, vec![argv])),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Argv {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn runs_group_consecutive_reads_and_writes_in_order() {
        let batch = vec![
            argv(&["SET", "a", "1"]),
            argv(&["INCR", "a"]),
            argv(&["GET", "a"]),
            argv(&[]),
            argv(&["NOSUCHCMD"]),
            argv(&["DEL", "a"]),
        ];
        let runs = split_runs(batch);
        let shape: Vec<(bool, usize)> = runs.iter().map(|(w, r)| (*w, r.len())).collect();
        assert_eq!(shape, vec![(true, 2), (false, 3), (true, 1)]);
        assert_eq!(runs[1].1[0], argv(&["GET", "a"]));
    }
}
