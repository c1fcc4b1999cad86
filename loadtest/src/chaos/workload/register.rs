//! `register`: GET, SET of unique values and compare-and-set on a few hot
//! keys, checked for linearizability per key.
//!
//! Every key starts at 0 (written during setup and recorded, so the checker
//! knows the initial state); a CAS can only compare with a value, never
//! with "absent", so the keys are never absent during the run. The CAS is a
//! Lua script (one Raft entry, atomic on the node); it answers 1 when it
//! swapped and 0 when the current value differed, which is recorded as a
//! `Fail` (known not applied). A client compares with the last value it
//! read or wrote for that key, so CAS succeeds often enough to matter.

use super::{Ctx, Pacer, Recorded, WorkloadKind};
use crate::chaos::client::{argv, int, write_error_outcome, Call, Client};
use crate::chaos::error::ChaosError;
use crate::chaos::history::{Op, OpKind, Outcome};
use crate::conn::Value;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;

/// Hot keys: few enough that clients contend on each.
pub const KEYS: usize = 4;

const CAS_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end";

pub fn key(i: usize) -> String {
    format!("chaos:reg:{i}")
}

/// Writes 0 to every key (recorded), retrying until each write is Ok.
pub async fn setup(ctx: &Ctx, deadline: Duration) -> Result<Recorded, ChaosError> {
    let mut out = Recorded::default();
    let until = tokio::time::Instant::now() + deadline;
    let mut client = ctx.new_client(ctx.concurrency);
    for i in 0..KEYS {
        let k = key(i);
        loop {
            let start = client.clock().now_ns();
            let kind = OpKind::RegWrite {
                key: k.clone(),
                value: 0,
            };
            let (outcome, error) = match client.call(&[argv(&["SET", &k, "0"])]).await {
                Call::Replies(r) if r[0] == Value::Simple("OK".into()) => (Outcome::Ok, None),
                Call::Replies(r) => {
                    let e = super::describe(&r[0]);
                    (write_error_outcome(&e), Some(e))
                }
                Call::NotSent(e) => (Outcome::Fail, Some(e)),
                Call::Unknown(e) => (Outcome::Info, Some(e)),
            };
            out.ops
                .push(client.finish(start, outcome, kind, error.clone()));
            if outcome == Outcome::Ok {
                break;
            }
            if tokio::time::Instant::now() >= until {
                return Err(ChaosError::Timeout(format!(
                    "register setup: SET {k} 0 ({})",
                    error.unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(out)
}

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.client_seed(WorkloadKind::Register, index));
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    // The last value this client saw per key: the `from` of its CASes.
    let mut known: HashMap<usize, i64> = HashMap::new();
    let mut out = Recorded::default();
    while pacer.next(&mut ctx.stop).await {
        let k = rng.gen_range(0..KEYS);
        let roll = rng.gen_range(0..10);
        let op = if roll < 4 || (roll >= 7 && !known.contains_key(&k)) {
            read(&mut client, k, &mut known).await
        } else if roll < 7 {
            let value = ctx.next_unique() as i64 + 1;
            write(&mut client, k, value, &mut known).await
        } else {
            let from = known[&k];
            let to = ctx.next_unique() as i64 + 1;
            cas(&mut client, k, from, to, &mut known).await
        };
        out.ops.push(op);
    }
    out
}

async fn read(client: &mut Client, k: usize, known: &mut HashMap<usize, i64>) -> Op {
    let start = client.clock().now_ns();
    let name = key(k);
    let mut kind = OpKind::RegRead {
        key: name.clone(),
        value: None,
    };
    let (outcome, error) = match client.call(&[argv(&["GET", &name])]).await {
        Call::Replies(r) => match &r[0] {
            Value::Nil => (Outcome::Ok, None),
            v => match int(v) {
                Some(n) => {
                    kind = OpKind::RegRead {
                        key: name,
                        value: Some(n),
                    };
                    known.insert(k, n);
                    (Outcome::Ok, None)
                }
                // A read has no effect: whatever went wrong, it failed.
                None => (Outcome::Fail, Some(super::describe(v))),
            },
        },
        Call::NotSent(e) | Call::Unknown(e) => (Outcome::Fail, Some(e)),
    };
    client.finish(start, outcome, kind, error)
}

async fn write(client: &mut Client, k: usize, value: i64, known: &mut HashMap<usize, i64>) -> Op {
    let start = client.clock().now_ns();
    let name = key(k);
    let kind = OpKind::RegWrite {
        key: name.clone(),
        value,
    };
    let (outcome, error) = match client
        .call(&[argv(&["SET", &name, &value.to_string()])])
        .await
    {
        Call::Replies(r) if r[0] == Value::Simple("OK".into()) => {
            known.insert(k, value);
            (Outcome::Ok, None)
        }
        Call::Replies(r) => {
            let e = super::describe(&r[0]);
            (write_error_outcome(&e), Some(e))
        }
        Call::NotSent(e) => (Outcome::Fail, Some(e)),
        Call::Unknown(e) => (Outcome::Info, Some(e)),
    };
    if outcome == Outcome::Info {
        known.remove(&k);
    }
    client.finish(start, outcome, kind, error)
}

async fn cas(
    client: &mut Client,
    k: usize,
    from: i64,
    to: i64,
    known: &mut HashMap<usize, i64>,
) -> Op {
    let start = client.clock().now_ns();
    let name = key(k);
    let kind = OpKind::RegCas {
        key: name.clone(),
        from,
        to,
    };
    let command = argv(&[
        "EVAL",
        CAS_SCRIPT,
        "1",
        &name,
        &from.to_string(),
        &to.to_string(),
    ]);
    let (outcome, error) = match client.call(&[command]).await {
        Call::Replies(r) => match &r[0] {
            Value::Int(1) => {
                known.insert(k, to);
                (Outcome::Ok, None)
            }
            Value::Int(0) => {
                // Our idea of the value is stale; read before the next CAS.
                known.remove(&k);
                (Outcome::Fail, Some("value differed".into()))
            }
            v => {
                let e = super::describe(v);
                (write_error_outcome(&e), Some(e))
            }
        },
        Call::NotSent(e) => (Outcome::Fail, Some(e)),
        Call::Unknown(e) => (Outcome::Info, Some(e)),
    };
    if outcome == Outcome::Info {
        known.remove(&k);
    }
    client.finish(start, outcome, kind, error)
}
