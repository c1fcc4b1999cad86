//! One write run: its commands committed whole in ONE Raft entry, possibly
//! together with runs of other concurrent requests ([`proposals`]), and
//! answered after apply.
//!
//! Why one entry per run: a pipeline of 1,000 SETs then costs one commit,
//! not 1,000, and the run keeps one dedup identity
//! `(client_id, seq, part)`, so a retried run is answered from the state
//! machine's dedup records instead of being applied twice.
//!
//! [`proposals`]: super::proposals

use rampart_proto::limits::{replicated_size, MAX_REPLICATED_BYTES};
use rampart_proto::{errors, reply, Argv, Reply};
use tracing::Instrument;

use super::heavy::Slot;
use super::{propose_failure, ExecCtx, Failure};
use crate::engine::{keys, DataRead};
use crate::raft::types::WriteRun;

/// Commits `run` as part `part` of request `(client_id, seq)`; one reply
/// per command. An empty `client_id` means no dedup identity.
///
/// A run too large to replicate is never proposed (an entry that cannot
/// reach the followers in time stalls replication, see
/// [`MAX_REPLICATED_BYTES`]): each command too large on its own gets the
/// error, and the others still run, so one huge value does not fail the
/// commands pipelined with it.
pub(crate) async fn write_run(
    ctx: &ExecCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    run: Vec<Argv>,
) -> Result<Vec<Reply>, Failure> {
    let (kept, refused) = refuse_oversized(run);
    if kept.is_empty() {
        return Ok(refused.into_iter().flatten().collect());
    }
    if refused.iter().all(Option::is_none) {
        return commit_run(ctx, client_id, seq, part, kept).await;
    }
    let mut committed = commit_run(ctx, client_id, seq, part, kept)
        .await?
        .into_iter();
    Ok(refused
        .into_iter()
        .map(|r| {
            r.or_else(|| committed.next())
                .unwrap_or_else(|| reply::error("ERR internal error: no reply for the command"))
        })
        .collect())
}

/// Splits `run` into the commands to propose and, per command in order,
/// `Some(error)` for one refused as too large to replicate. When the run
/// fits, nothing is refused.
fn refuse_oversized(run: Vec<Argv>) -> (Vec<Argv>, Vec<Option<Reply>>) {
    let total = replicated_size(&run);
    if total <= MAX_REPLICATED_BYTES {
        let n = run.len();
        return (run, vec![None; n]);
    }
    let mut kept = Vec::new();
    let mut refused = Vec::with_capacity(run.len());
    let mut kept_bytes = 0;
    for argv in run {
        let size = replicated_size(std::iter::once(&argv));
        if size > MAX_REPLICATED_BYTES || kept_bytes + size > MAX_REPLICATED_BYTES {
            // Alone too large, or too much together with what precedes it
            // (only a client that sends huge batches itself; the proxy cuts
            // its batches far below the limit).
            let bytes = if size > MAX_REPLICATED_BYTES {
                size
            } else {
                total
            };
            refused.push(Some(reply::error(errors::too_large_to_replicate(bytes))));
        } else {
            kept_bytes += size;
            kept.push(argv);
            refused.push(None);
        }
    }
    (kept, refused)
}

async fn commit_run(
    ctx: &ExecCtx,
    client_id: &str,
    seq: u64,
    part: u32,
    run: Vec<Argv>,
) -> Result<Vec<Reply>, Failure> {
    let len = run.len();
    let run = WriteRun {
        client_id: client_id.to_string(),
        seq,
        part,
        commands: run,
    };
    // Propose, replicate to a quorum, commit and apply: one span, since the
    // proposal batcher answers after apply.
    let span = tracing::debug_span!(
        "raft.propose",
        rampart.run.part = i64::from(part),
        rampart.run.commands = len as i64,
    );
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(ctx.write_timeout, ctx.proposals.submit(run))
        .instrument(span.clone())
        .await;
    metrics::histogram!(crate::metrics::RAFT_WRITE_SECONDS).record(started.elapsed());
    match &result {
        Err(_) => rampart_telemetry::record_error(&span, "timed out waiting for the commit"),
        Ok(Err(e)) => rampart_telemetry::record_error(&span, e.to_string()),
        Ok(Ok(_)) => {}
    }
    match result {
        Err(_) => Err(Failure::Unavailable(
            "timed out waiting for the write to commit".into(),
        )),
        Ok(Ok(replies)) => {
            if replies.len() == len {
                Ok(replies)
            } else {
                // Only possible when a client reuses (client_id, seq) for a
                // different batch: the stored replies belong to another one.
                Ok(vec![
                    reply::error(
                        "ERR request id reused for a different batch"
                    );
                    len
                ])
            }
        }
        Ok(Err(e)) => Err(propose_failure(ctx, e)),
    }
}

/// The stream keys a stream write command changes (empty for any other
/// command).
fn stream_write_keys(argv: &[Vec<u8>]) -> Vec<&[u8]> {
    let Some(name) = argv.first() else {
        return Vec::new();
    };
    let name = name.to_ascii_lowercase();
    match name.as_slice() {
        b"xadd" | b"xdel" | b"xtrim" | b"xsetid" | b"xack" | b"xclaim" | b"xautoclaim" => {
            argv.get(1).map(|k| vec![k.as_slice()]).unwrap_or_default()
        }
        b"xgroup" => argv.get(2).map(|k| vec![k.as_slice()]).unwrap_or_default(),
        b"xreadgroup" => {
            // XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS k1 k2 id1 id2
            let Some(at) = argv.iter().position(|a| a.eq_ignore_ascii_case(b"streams")) else {
                return Vec::new();
            };
            let rest = &argv[at + 1..];
            rest[..rest.len() / 2].iter().map(Vec::as_slice).collect()
        }
        _ => Vec::new(),
    }
}

/// Heavy class for writes to legacy streams (SPEC Layer 4): when a write
/// of `run` changes a stream that still has a legacy marker (its write
/// pays a migration step), a place of the heavy executor is taken for the
/// run's proposal; `Err` is the `-BUSY` reply when the executor is full.
/// Other runs cost one point read per stream write and nothing else.
pub fn legacy_write_slot(ctx: &ExecCtx, run: &[Argv]) -> Result<Option<Slot>, Reply> {
    let mut targets = run
        .iter()
        .flat_map(|argv| stream_write_keys(argv))
        .peekable();
    if targets.peek().is_none() {
        return Ok(None);
    }
    let view = ctx.engine.read_view();
    let legacy = targets.any(|key| {
        // A failed read counts as legacy: the safe side is the heavy class.
        !matches!(view.get(&keys::legacy_stream_marker(key)), Ok(None))
    });
    if !legacy {
        return Ok(None);
    }
    ctx.heavy
        .try_reserve()
        .map(Some)
        .map_err(|full| full.reply())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_too_large_to_replicate_are_refused() {
        let small = vec![b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()];
        let big = vec![
            b"SET".to_vec(),
            b"b".to_vec(),
            vec![0; MAX_REPLICATED_BYTES],
        ];
        let (kept, refused) = refuse_oversized(vec![small.clone(), small.clone()]);
        assert_eq!(kept.len(), 2);
        assert!(refused.iter().all(Option::is_none));

        let (kept, refused) = refuse_oversized(vec![small.clone(), big.clone(), small.clone()]);
        assert_eq!(kept, vec![small.clone(), small]);
        assert!(refused[0].is_none() && refused[2].is_none());
        let text = refused[1]
            .as_ref()
            .and_then(|r| r.error_text().map(str::to_string))
            .expect("refused");
        let size = replicated_size(std::iter::once(&big));
        assert_eq!(
            text,
            format!(
                "ERR request of {size} bytes exceeds the replication limit of {MAX_REPLICATED_BYTES} bytes"
            )
        );
    }

    #[test]
    fn stream_write_keys_by_command() {
        let argv = |s: &str| -> Argv {
            s.split_whitespace()
                .map(|p| p.as_bytes().to_vec())
                .collect()
        };
        assert_eq!(
            stream_write_keys(&argv("XADD s * f v")),
            vec![b"s".as_slice()]
        );
        assert_eq!(
            stream_write_keys(&argv("xgroup CREATE s g $")),
            vec![b"s".as_slice()]
        );
        assert_eq!(
            stream_write_keys(&argv("XREADGROUP GROUP g c COUNT 1 STREAMS a b > >")),
            vec![b"a".as_slice(), b"b".as_slice()]
        );
        assert!(stream_write_keys(&argv("SET s v")).is_empty());
        assert!(stream_write_keys(&argv("XREADGROUP GROUP g c")).is_empty());
        assert!(stream_write_keys(&argv("XADD")).is_empty());
    }
}
