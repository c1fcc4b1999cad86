//! `list-append`: MULTI/EXEC transactions of 1-4 micro-operations, each an
//! `RPUSH key value` (values unique across the run) or an `LRANGE key 0 -1`,
//! over a few keys; checked the way Elle checks list-append.
//!
//! The keys share a hash tag so a transaction never spans hash slots.
//! An `EXEC` that answers a null array or `EXECABORT` applied nothing
//! (Fail). An `EXEC` array holding an error for one command is a partial
//! transaction the history cannot express (the others applied), so it is
//! recorded as unknown and noted; with these commands it should not happen.

use super::{Ctx, Pacer, Recorded, WorkloadKind};
use crate::chaos::client::{argv, write_error_outcome, Call, Client};
use crate::chaos::history::{Mop, Op, OpKind, Outcome};
use crate::conn::Value;
use rand::{Rng, SeedableRng};

pub const KEYS: usize = 8;
const MAX_MOPS: usize = 4;

pub fn key(i: usize) -> String {
    format!("{{chaos-la}}:{i}")
}

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(ctx.client_seed(WorkloadKind::ListAppend, index));
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    let mut out = Recorded::default();
    while pacer.next(&mut ctx.stop).await {
        let n = rng.gen_range(1..=MAX_MOPS);
        let mops: Vec<Mop> = (0..n)
            .map(|_| {
                let key = key(rng.gen_range(0..KEYS));
                if rng.gen_bool(0.5) {
                    Mop::Append {
                        key,
                        value: ctx.next_unique(),
                    }
                } else {
                    Mop::Read { key, value: None }
                }
            })
            .collect();
        let (op, note) = transaction(&mut client, mops).await;
        out.ops.push(op);
        out.notes.extend(note);
    }
    out
}

fn command(m: &Mop) -> Vec<Vec<u8>> {
    match m {
        Mop::Append { key, value } => argv(&["RPUSH", key, &value.to_string()]),
        Mop::Read { key, .. } => argv(&["LRANGE", key, "0", "-1"]),
    }
}

async fn transaction(client: &mut Client, mut mops: Vec<Mop>) -> (Op, Option<String>) {
    let start = client.clock().now_ns();
    let mut commands = vec![argv(&["MULTI"])];
    commands.extend(mops.iter().map(command));
    commands.push(argv(&["EXEC"]));
    let mut note = None;
    let (outcome, error) = match client.call(&commands).await {
        Call::Replies(replies) => {
            let exec = replies.last().cloned().unwrap_or(Value::Nil);
            match exec {
                Value::Array(items) => match fill_reads(&mut mops, &items) {
                    Ok(()) => (Outcome::Ok, None),
                    Err(e) => {
                        note = Some(format!("list-append EXEC reply not understood: {e}"));
                        // The connection may be out of step; start afresh.
                        client.reconnect();
                        (Outcome::Info, Some(e))
                    }
                },
                Value::Nil => (Outcome::Fail, Some("EXEC aborted (null reply)".into())),
                Value::Error(e) => (write_error_outcome(&e), Some(e)),
                other => {
                    client.reconnect();
                    (Outcome::Info, Some(super::describe(&other)))
                }
            }
        }
        Call::NotSent(e) => (Outcome::Fail, Some(e)),
        Call::Unknown(e) => (Outcome::Info, Some(e)),
    };
    if outcome != Outcome::Ok {
        // Values read are filled only for Ok transactions.
        for m in &mut mops {
            if let Mop::Read { value, .. } = m {
                *value = None;
            }
        }
    }
    (
        client.finish(start, outcome, OpKind::Txn { mops }, error),
        note,
    )
}

/// Fills the reads of `mops` from the `EXEC` array; an error if the array
/// does not have the expected shape (or holds a per-command error).
fn fill_reads(mops: &mut [Mop], items: &[Value]) -> Result<(), String> {
    if items.len() != mops.len() {
        return Err(format!(
            "EXEC returned {} replies for {} commands",
            items.len(),
            mops.len()
        ));
    }
    for (m, item) in mops.iter_mut().zip(items) {
        match (m, item) {
            (_, Value::Error(e)) => return Err(format!("a command in EXEC failed: {e}")),
            (Mop::Append { .. }, Value::Int(_)) => {}
            (Mop::Read { value, .. }, Value::Array(elems)) => {
                let parsed: Option<Vec<u64>> = elems
                    .iter()
                    .map(|e| match e {
                        Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                        _ => None,
                    })
                    .collect();
                *value = Some(parsed.ok_or_else(|| format!("LRANGE returned {elems:?}"))?);
            }
            (m, other) => return Err(format!("{m:?} answered {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_replies_fill_the_reads() {
        let mut mops = vec![
            Mop::Append {
                key: key(0),
                value: 7,
            },
            Mop::Read {
                key: key(0),
                value: None,
            },
        ];
        let items = vec![
            Value::Int(2),
            Value::Array(vec![Value::Bulk(b"3".to_vec()), Value::Bulk(b"7".to_vec())]),
        ];
        fill_reads(&mut mops, &items).expect("well-formed");
        assert_eq!(
            mops[1],
            Mop::Read {
                key: key(0),
                value: Some(vec![3, 7])
            }
        );
    }

    #[test]
    fn odd_exec_replies_are_rejected() {
        let mut mops = vec![Mop::Read {
            key: key(1),
            value: None,
        }];
        assert!(fill_reads(&mut mops, &[]).is_err());
        assert!(fill_reads(&mut mops, &[Value::Error("WRONGTYPE".into())]).is_err());
        assert!(fill_reads(&mut mops, &[Value::Array(vec![Value::Bulk(b"x".to_vec())])]).is_err());
        assert!(fill_reads(&mut mops, &[Value::Int(1)]).is_err());
    }
}
