//! `ttl`: keys that expire. `SET key value PX t` of unique values, `PEXPIRE`,
//! `EXPIRE` and `PEXPIREAT` on a few keys, read with `GET`, `PTTL` and
//! `EXISTS`. TTLs are short (0.2-2 s) and writes rare enough per key that
//! keys do expire between writes, so the reads see keys appear, live and
//! expire. Checked by `check::ttl`: an expired key must not come back, a key
//! must not expire before its TTL (beyond the documented clock bounds), and
//! every value read must have been written.
//!
//! `PEXPIREAT` sends the client's wall clock plus the TTL; the history keeps
//! the TTL relative to the operation's start (the wall clock was read right
//! after the start was stamped).

use super::{Ctx, Pacer, Recorded, WorkloadKind};
use crate::chaos::client::{argv, int, write_error_outcome, Call, Client};
use crate::chaos::history::{ExpireVia, Op, OpKind, Outcome, TtlReadVia};
use crate::conn::Value;
use rand::{Rng, SeedableRng};

/// Keys: with 150 ops/s over the workload, each sees about one SET and one
/// expire per second.
pub const KEYS: usize = 8;

pub fn key(i: usize) -> String {
    format!("chaos:ttl:{i}")
}

pub async fn client(mut ctx: Ctx, index: usize) -> Recorded {
    let mut rng = rand::rngs::StdRng::seed_from_u64(ctx.client_seed(WorkloadKind::Ttl, index));
    let mut client = ctx.new_client(index);
    let mut pacer = Pacer::new(&ctx, index);
    let mut out = Recorded::default();
    while pacer.next(&mut ctx.stop).await {
        let k = key(rng.gen_range(0..KEYS));
        let ttl_ms = rng.gen_range(200..=2_000u64);
        let op = match rng.gen_range(0..100) {
            0..=5 => {
                let value = ctx.next_unique() + 1;
                set(&mut client, k, value, ttl_ms).await
            }
            6..=8 => expire(&mut client, k, ExpireVia::Pexpire, ttl_ms).await,
            9 => {
                let secs = rng.gen_range(1..=2u64);
                expire(&mut client, k, ExpireVia::Expire, secs * 1000).await
            }
            10..=11 => expire(&mut client, k, ExpireVia::Pexpireat, ttl_ms).await,
            12..=51 => read(&mut client, k, TtlReadVia::Get).await,
            52..=75 => read(&mut client, k, TtlReadVia::Pttl).await,
            _ => read(&mut client, k, TtlReadVia::Exists).await,
        };
        out.ops.push(op);
    }
    out
}

async fn set(client: &mut Client, key: String, value: u64, ttl_ms: u64) -> Op {
    let start = client.clock().now_ns();
    let command = argv(&["SET", &key, &value.to_string(), "PX", &ttl_ms.to_string()]);
    let (outcome, error) = match client.call(&[command]).await {
        Call::Replies(r) if r[0] == Value::Simple("OK".into()) => (Outcome::Ok, None),
        Call::Replies(r) => {
            let e = super::describe(&r[0]);
            (write_error_outcome(&e), Some(e))
        }
        Call::NotSent(e) => (Outcome::Fail, Some(e)),
        Call::Unknown(e) => (Outcome::Info, Some(e)),
    };
    let kind = OpKind::TtlSet { key, value, ttl_ms };
    client.finish(start, outcome, kind, error)
}

async fn expire(client: &mut Client, key: String, via: ExpireVia, ttl_ms: u64) -> Op {
    let start = client.clock().now_ns();
    let command = match via {
        ExpireVia::Pexpire => argv(&["PEXPIRE", &key, &ttl_ms.to_string()]),
        ExpireVia::Expire => argv(&["EXPIRE", &key, &(ttl_ms / 1000).to_string()]),
        ExpireVia::Pexpireat => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            argv(&["PEXPIREAT", &key, &(now_ms + ttl_ms).to_string()])
        }
    };
    let (outcome, applied, error) = match client.call(&[command]).await {
        Call::Replies(r) => match &r[0] {
            Value::Int(1) => (Outcome::Ok, Some(true), None),
            Value::Int(0) => (Outcome::Ok, Some(false), None),
            v => {
                let e = super::describe(v);
                (write_error_outcome(&e), None, Some(e))
            }
        },
        Call::NotSent(e) => (Outcome::Fail, None, Some(e)),
        Call::Unknown(e) => (Outcome::Info, None, Some(e)),
    };
    let kind = OpKind::TtlExpire {
        key,
        via,
        ttl_ms,
        applied,
    };
    client.finish(start, outcome, kind, error)
}

async fn read(client: &mut Client, key: String, via: TtlReadVia) -> Op {
    let start = client.clock().now_ns();
    let name = match via {
        TtlReadVia::Get => "GET",
        TtlReadVia::Pttl => "PTTL",
        TtlReadVia::Exists => "EXISTS",
    };
    let mut kind = OpKind::TtlRead {
        key: key.clone(),
        via,
        value: None,
        pttl: None,
        exists: None,
    };
    let reply = match client.call(&[argv(&[name, &key])]).await {
        Call::Replies(r) => r.into_iter().next().unwrap_or(Value::Nil),
        // A read has no effect: whatever went wrong, it failed.
        Call::NotSent(e) | Call::Unknown(e) => {
            return client.finish(start, Outcome::Fail, kind, Some(e));
        }
    };
    let (mut value, mut pttl, mut exists) = (None, None, None);
    let understood = match (via, &reply) {
        (TtlReadVia::Get, Value::Nil) => {
            value = Some(None);
            true
        }
        (TtlReadVia::Get, Value::Error(_)) => false,
        (TtlReadVia::Get, v) => {
            // Data that is not one of our values is recorded as 0, which
            // no SET writes: the checker reports it as never written.
            value = Some(Some(int(v).filter(|&n| n > 0).map_or(0, |n| n as u64)));
            true
        }
        (TtlReadVia::Pttl, Value::Int(n)) => {
            pttl = Some(*n);
            true
        }
        (TtlReadVia::Exists, Value::Int(n @ (0 | 1))) => {
            exists = Some(*n == 1);
            true
        }
        _ => false,
    };
    if !understood {
        return client.finish(start, Outcome::Fail, kind, Some(super::describe(&reply)));
    }
    kind = OpKind::TtlRead {
        key,
        via,
        value,
        pttl,
        exists,
    };
    client.finish(start, Outcome::Ok, kind, None)
}
